"""raftsim's pytest plugin: fixtures for testing your own system on a simulated cluster.

pytest loads it by itself once raftsim is installed (a ``pytest11`` entry
point named ``raftsim``); ``pip install 'raftsim[testing]'`` brings what it
uses: pytest-trio for async tests (``trio_mode = true`` in your pytest
configuration, or ``@pytest.mark.trio``) and hypothesis for the search.

Fixtures:

``raftsim_cluster``
    An open :class:`~simulator.Cluster` on virtual time, closed after the
    test. No clock fixture is needed: a test that uses it runs under
    ``trio.testing.MockClock(autojump_threshold=0)`` (an hour of cluster life
    takes seconds). Configure it per test with the ``raftsim`` marker, whose
    keywords go to ``Cluster.open``::

        @pytest.mark.raftsim(nodes=5, seed=7, state_machine=Counter)
        async def test_counter(raftsim_cluster):
            await raftsim_cluster.wait_for_leader()
            ...

``raftsim_search``
    ``raftsim_search(space, max_examples=100, seed=0)`` runs the property search
    (:func:`simulator.search`) over ``space`` (a :class:`~simulator.SearchSpace`,
    your own system's included) and fails the test if it finds a failing
    program, naming what broke and the counterexample scenario file it wrote
    (``raftsim-failures/<test id>.py``; ``raftsim run FILE`` replays it).

``raftsim_failures_dir``
    Where those files go (``--raftsim-failures``, default ``raftsim-failures/``).

On failure, the trace of the test's cluster is written as JSON lines to
``raftsim-failures/<test id>.jsonl`` (same format as ``raftsim run --trace``;
``simulator.read_jsonl`` reads it back, the plots draw it) and the report
names the file. A test is deterministic under a fixed ``seed``, so the trace
is the counterexample.

Options:

``--raftsim-hypothesis=PROFILE``
    Load a hypothesis settings profile for property tests: ``dev`` (few
    examples, quick feedback), ``ci`` (more examples, derandomized so a CI
    run is repeatable), ``thorough`` (many examples, for a nightly run).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trio
import trio.testing

HYPOTHESIS_PROFILES = {
    "dev": dict(max_examples=10, deadline=None),
    "ci": dict(max_examples=50, deadline=None, derandomize=True, print_blob=True),
    "thorough": dict(max_examples=1000, deadline=None),
}
_CLUSTER_KEY = pytest.StashKey[object]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("raftsim")
    group.addoption("--raftsim-failures", default="raftsim-failures", metavar="DIR",
                    help="where traces of failing raftsim_cluster tests and counterexamples of raftsim_search go")
    group.addoption("--raftsim-hypothesis", choices=sorted(HYPOTHESIS_PROFILES), default=None,
                    help="load this hypothesis settings profile (dev, ci, thorough)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "raftsim(**options): options for the raftsim_cluster fixture (Cluster.open)")
    profile = config.getoption("--raftsim-hypothesis")
    if profile is not None:
        from hypothesis import settings

        settings.register_profile(f"raftsim-{profile}", **HYPOTHESIS_PROFILES[profile])
        settings.load_profile(f"raftsim-{profile}")


def run_on_virtual_time(fn, *args, clock=None, instruments=(), **kwargs):
    """``trio.run`` with the autojumping mock clock unless the test brought its own clock."""
    return trio.run(fn, *args, clock=clock or trio.testing.MockClock(autojump_threshold=0),
                    instruments=instruments, **kwargs)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "raftsim_cluster" in getattr(item, "fixturenames", ()):
            # pytest-trio takes the runner from the first trio marker: ours goes first.
            item.add_marker(pytest.mark.trio(run=run_on_virtual_time), append=False)


@pytest.fixture
def raftsim_failures_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.getoption("--raftsim-failures"))


@pytest.fixture
def raftsim_search(request: pytest.FixtureRequest, raftsim_failures_dir: Path):
    from simulator.explore.search import search

    def run(space, *, max_examples: int = 100, seed: int = 0) -> None:
        found = search(space, raftsim_failures_dir, max_examples=max_examples, seed=seed)
        if found is not None:
            path = found.write_scenario(raftsim_failures_dir / (_file_name(request.node.nodeid)[: -len(".jsonl")] + ".py"))
            pytest.fail(f"{found.failure}\ncounterexample ({len(found.program.steps)} steps, seed {found.seed}) "
                        f"written to {path}; replay it with: raftsim run {path}", pytrace=False)

    return run


@pytest.fixture
async def raftsim_cluster(request: pytest.FixtureRequest):
    from simulator.cluster.cluster import Cluster

    marker = request.node.get_closest_marker("raftsim")
    options = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        raise pytest.UsageError(f"{request.node.nodeid}: the raftsim marker takes keywords only "
                                f"(options of Cluster.open), got {marker.args!r}")
    async with Cluster.open(**options) as cluster:
        request.node.stash[_CLUSTER_KEY] = cluster
        yield cluster


def _file_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:180] + ".jsonl"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    cluster = item.stash.get(_CLUSTER_KEY, None)
    if cluster is None or report.when != "call" or not report.failed:
        return
    directory = Path(item.config.getoption("--raftsim-failures"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / _file_name(item.nodeid)
    cluster.trace.write_jsonl(path)
    report.sections.append(("raftsim", f"trace of the cluster ({len(cluster.trace.records)} events) "
                                        f"written to {path}"))
