"""Property search: random fault programs, shrunk failures, replayable scenario files.

:func:`programs` is a hypothesis strategy for :class:`~simulator.programs.Program`
values over a :class:`SearchSpace` (cluster size, snapshot mode, store,
chunk size, defects switched on). :func:`run_example` renders a program as a
scenario file and runs it exactly as ``raftsim run`` would, so the file a
failing example leaves behind replays it byte for byte (same trace hash).
:func:`search` asks hypothesis for the smallest failing program and returns
it as a :class:`Counterexample`.

hypothesis is imported only when a strategy is built: ``import simulator``
does not need it (it comes with the ``test`` and ``notebooks`` extras).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import attrs

from . import programs as steps_module
from .cluster import run
from .programs import FailChunk, Program
from .raft import defects
from .scenario import RunOptions, ScenarioResult, resolve, run_scenario

CHUNK_ACTIONS = ("drop", "duplicate", "corrupt", "corrupt_source", "delay", "cut",
                 "crash_sender", "crash_receiver")
WAITS = (0.1, 0.5, 1.0, 2.0, 5.0)


@attrs.frozen
class SearchSpace:
    """What kind of cluster the programs run on."""

    nodes: int = 3
    mode: str = "streaming"
    store: str = "memory"
    chunk_size: int = 4096
    payload_size: int = 1024
    compaction_every: int = 20
    keep_entries: int = 5
    max_steps: int = 12
    liveness_within: float = 30.0
    defects: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        RunOptions(mode=self.mode, store=self.store)  # validates both, with their error messages
        unknown = sorted(set(self.defects) - defects.DEFECTS.keys())
        if unknown:
            raise ValueError(f"unknown defect {unknown[0]!r}; expected one of {', '.join(sorted(defects.DEFECTS))}")
        if self.nodes < 1 or self.max_steps < 0:
            raise ValueError(f"need nodes >= 1 and max_steps >= 0, got {self.nodes} and {self.max_steps}")


def programs(space: SearchSpace = SearchSpace()):
    """A hypothesis strategy of :class:`Program` values for ``space``."""
    from hypothesis import strategies as st

    # Ids of the first members and of up to two nodes a program may add.
    node = st.integers(min_value=1, max_value=space.nodes + 2)
    step = st.one_of(
        st.builds(steps_module.Propose, count=st.integers(1, 8)),
        st.builds(steps_module.Propose, count=st.integers(1, 8)),
        st.builds(steps_module.Wait, seconds=st.sampled_from(WAITS)),
        st.builds(steps_module.Wait, seconds=st.sampled_from(WAITS)),
        st.builds(steps_module.Partition,
                  group=st.lists(node, min_size=1, max_size=space.nodes, unique=True)
                  .map(lambda ids: tuple(sorted(ids)))),
        st.just(steps_module.Heal()),
        st.builds(steps_module.Isolate, node=node),
        st.builds(steps_module.OneWay, src=node, dst=node),
        st.builds(steps_module.Crash, node=node),
        st.builds(steps_module.Restart, node=node),
        st.builds(steps_module.Pause, node=node),
        st.builds(steps_module.Resume, node=node),
        st.just(steps_module.AddNode()),
        st.builds(steps_module.RemoveNode, node=node),
        st.builds(steps_module.Compact, node=node),
        st.builds(FailChunk, k=st.integers(1, 6), action=st.sampled_from(CHUNK_ACTIONS)),
        st.builds(steps_module.TransferLeader, node=node),
    )
    return st.lists(step, max_size=space.max_steps).map(
        lambda drawn: Program(tuple(drawn), liveness_within=space.liveness_within)
    )


def seeds():
    """Run seeds; they shrink towards 0."""
    from hypothesis import strategies as st

    return st.integers(min_value=0, max_value=2**16)


# -- scenario files ----------------------------------------------------------------


def scenario_source(program: Program, space: SearchSpace, seed: int, *, headline: str = "") -> str:
    """The text of a scenario file that runs ``program`` on ``space``'s cluster."""
    used = sorted({type(step).__name__ for step in program.steps} | {"CompactionPolicy", "Program",
                                                                    "run_program"})
    steps = "".join(f"        {step!r},\n" for step in program.steps)
    store = f" --store {space.store}" if space.store != "memory" else ""
    title = headline or "a fault program for raftsim's property search"
    return (
        f'"""Counterexample: {title}\n\n'
        "Written by raftsim's property search (simulator.exploration). Replay it with\n\n"
        f"    raftsim run THIS_FILE --seed {seed} --mode {space.mode}{store}\n\n"
        "and it runs exactly as it did in the search, trace hash and all.\n"
        '"""\n\n'
        f"from simulator import {', '.join(used)}\n\n"
        f"CLUSTER = {{\"nodes\": {space.nodes}, \"compaction\": CompactionPolicy(every={space.compaction_every}, "
        f"keep_entries={space.keep_entries})}}\n"
        f"MODES = ({space.mode!r},)\n"
        f"STREAMING = {{\"chunk_size\": {space.chunk_size}}}\n"
        f"DEFECTS = {tuple(space.defects)!r}\n\n"
        "PROGRAM = Program(\n"
        "    steps=(\n"
        f"{steps}"
        "    ),\n"
        f"    liveness_within={program.liveness_within!r},\n"
        ")\n\n\n"
        "async def scenario(sim):\n"
        f"    await run_program(sim, PROGRAM, payload_size={space.payload_size})\n"
    )


def write_scenario(path: Path, program: Program, space: SearchSpace, seed: int, *, headline: str = "") -> Path:
    path = Path(path)
    text = scenario_source(program, space, seed, headline=headline).replace("THIS_FILE", str(path))
    path.write_text(text, encoding="utf-8")
    return path


def run_example(program: Program, space: SearchSpace, seed: int, directory: Path) -> ScenarioResult:
    """Run ``program`` as the scenario file it is written to in ``directory``, as ``raftsim run`` does."""
    text = scenario_source(program, space, seed)
    name = "program_" + hashlib.sha256(f"{seed}\n{text}".encode()).hexdigest()[:12]
    path = write_scenario(Path(directory) / f"{name}.py", program, space, seed)
    options = RunOptions(seed=seed, mode=space.mode, store=space.store)
    return run(run_scenario, resolve(str(path)), options)


def failure_of(result: ScenarioResult) -> str:
    """One line saying what went wrong, or "" for a run that passed."""
    if result.ok:
        return ""
    return (list(result.violations) + list(result.failed_checks))[0]


# -- search -----------------------------------------------------------------------------


@attrs.frozen
class Counterexample:
    program: Program
    seed: int
    space: SearchSpace
    failure: str
    trace_sha256: str
    examples_until_found: int
    examples_run: int

    def write_scenario(self, path: Path) -> Path:
        return write_scenario(path, self.program, self.space, self.seed, headline=self.failure)


def search(space: SearchSpace, directory: Path, *, max_examples: int = 100, seed: int = 0) -> Counterexample | None:
    """The smallest failing (program, seed) hypothesis finds in ``max_examples`` tries, or None.

    Deterministic for a given ``seed``: hypothesis draws from its own seeded
    generator and keeps no example database here.
    """
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample

    counts = {"run": 0, "first": 0}
    last: dict = {}

    def fails(example) -> bool:
        program, run_seed = example
        counts["run"] += 1
        result = run_example(program, space, run_seed, directory)
        failed = not result.ok
        if failed:
            counts["first"] = counts["first"] or counts["run"]
            last[(program, run_seed)] = result
        return failed

    config = settings(
        max_examples=max_examples, database=None, deadline=None, derandomize=False,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    try:
        program, run_seed = find(st.tuples(programs(space), seeds()), fails, settings=config,
                                 random=random.Random(seed))
    except NoSuchExample:
        return None
    result = last.get((program, run_seed)) or run_example(program, space, run_seed, directory)
    return Counterexample(
        program=program, seed=run_seed, space=space, failure=failure_of(result),
        trace_sha256=result.summary.get("trace_sha256", ""),
        examples_until_found=counts["first"], examples_run=counts["run"],
    )
