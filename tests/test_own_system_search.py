"""Property search over a user's own system: SearchSpace(state_machine, commands, store_factory, checks).

The documented example (``examples/test_own_counter.py``) runs as a user would
run it, under pytest in a fresh process: the search finds the counter's lost
field, and the scenario file it leaves imports the counter by its dotted path
and replays the failure with ``raftsim run``. A correct counter passes the
same search with the user's store and checks in play; a user check that
fails is found, named and replayed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import own_system_objects as user
import pytest

from simulator import KeyValueStore, SearchSpace, search

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# An editable install made before the plugin existed lacks its entry point: then load it by name.
PLUGIN_OPTION = () if any(e.name == "raftsim" for e in entry_points(group="pytest11")) else (
    "-p", "simulator.testing.pytest_plugin")


def raftsim(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(EXAMPLES))
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300)


def test_the_documented_example_finds_the_bug_and_its_file_replays_it(tmp_path):
    source = (EXAMPLES / "test_own_counter.py").read_text()
    assert len(source.split("class Counter:", 1)[1].splitlines()) <= 25  # about 20 lines, machine included
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *PLUGIN_OPTION,
         str(EXAMPLES / "test_own_counter.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 1, completed.stdout[-3000:]
    assert "replicas that applied the same index hold the same state" in completed.stdout
    [written] = (tmp_path / "raftsim-failures").glob("*test_the_counter_survives_faults.py")
    assert f"replay it with: raftsim run raftsim-failures/{written.name}" in completed.stdout
    scenario = written.read_text()
    assert "from test_own_counter import Counter" in scenario
    assert '"state_machine": Counter' in scenario
    assert "ProposeCommands(commands=(b'add " in scenario  # the counter got its own commands
    assert "WorkflowExecutor" not in scenario
    first = raftsim("run", f"raftsim-failures/{written.name}", cwd=tmp_path)
    second = raftsim("run", f"raftsim-failures/{written.name}", cwd=tmp_path)
    assert first.returncode == 1, first.stdout[-2000:] + first.stderr[-2000:]
    assert "replicas that applied the same index hold the same state" in first.stdout
    assert first.stdout == second.stdout  # same trace hash and all


def test_a_correct_machine_passes_with_the_users_store_and_checks(tmp_path):
    user.STORES_MADE.clear()
    space = SearchSpace(state_machine=user.GoodCounter, commands=user.COMMANDS, store_factory=user.disk_store,
                        checks=(user.totals_agree,), max_steps=5, vocabulary="transfers")
    assert search(space, tmp_path, max_examples=8) is None
    assert sorted(set(user.STORES_MADE)) >= [1, 2, 3]  # the nodes' stores came from the user's factory


def test_a_failing_user_check_is_found_named_and_replayed(tmp_path):
    space = SearchSpace(state_machine=user.GoodCounter, commands=user.COMMANDS, checks=(user.total_below_40,),
                        max_steps=4, vocabulary="transfers")
    found = search(space, tmp_path, max_examples=40)
    assert found is not None
    assert found.failure.startswith("check total_below_40") and "counted to" in found.failure
    text = found.write_scenario(tmp_path / "found.py").read_text()
    assert "from own_system_objects import GoodCounter\nfrom own_system_objects import total_below_40\n" in text
    assert "CHECKS = (total_below_40,)" in text
    replayed = found.replay(tmp_path / "replay")
    assert not replayed.ok and replayed.summary["trace_sha256"] == found.trace_sha256 != ""


def test_a_kv_store_can_be_searched_with_the_linearizability_check(tmp_path):
    from hypothesis import strategies as st

    from simulator import linearizable

    commands = st.builds(KeyValueStore.put, st.sampled_from(["a", "b"]), st.binary(max_size=3))
    space = SearchSpace(state_machine=KeyValueStore, commands=commands, checks=(linearizable,), max_steps=4)
    assert search(space, tmp_path, max_examples=5) is None


@pytest.mark.parametrize("options, message", [
    (dict(state_machine=lambda: user.GoodCounter(), commands=user.COMMANDS), "must be defined at the top level"),
    (dict(state_machine=user.GoodCounter), "state_machine needs commands"),
    (dict(commands=user.COMMANDS), "go with your own state_machine"),
    (dict(state_machine=user.GoodCounter, commands=[b"add 1"]), "must be a hypothesis strategy"),
    (dict(state_machine=user.GoodCounter, commands=user.COMMANDS, store_factory=user.disk_store, store="disk"),
     "store_factory replaces the store"),
])
def test_a_space_the_file_could_not_replay_is_refused_with_the_reason(options, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace(**options)
