"""The pytest plugin, run the way a user's suite runs it: pytester, a real pytest session.

The plugin comes from its ``pytest11`` entry point when raftsim's installed
metadata has it, else with ``-p simulator.testing.pytest_plugin`` (the entry
point itself is checked by the packaging test).
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest

from simulator import read_jsonl

pytest_plugins = ["pytester"]
# An editable install made before the plugin existed lacks its entry point: then load it by name.
_INSTALLED = any(entry.name == "raftsim" for entry in entry_points(group="pytest11"))
PLUGIN = (() if _INSTALLED else ("-p", "simulator.testing.pytest_plugin")) + ("-p", "no:randomly")

COUNTER = '''
import json
import pytest


class Counter:
    def __init__(self):
        self.applied_index, self.value = 0, 0

    def apply(self, index, command):
        self.applied_index = index
        if command != b"inc":
            return "error: expected b'inc'"
        self.value += 1
        return str(self.value)

    def snapshot_chunks(self, index):
        yield json.dumps({"index": index, "value": self.value}).encode()

    def restore_from_snapshot(self, chunks):
        state = json.loads(b"".join(chunks))
        self.applied_index, self.value = state["index"], state["value"]

    def digest(self):
        return str(self.value)
'''


def test_the_cluster_fixture_runs_on_virtual_time_without_a_clock_fixture(pytester):
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(COUNTER + '''
import trio


@pytest.mark.raftsim(nodes=5, seed=3, state_machine=Counter)
async def test_counter(raftsim_cluster):
    leader = await raftsim_cluster.wait_for_leader()
    await trio.sleep(3600)  # an hour of cluster life: instant on the virtual clock
    result = await raftsim_cluster.propose(b"inc")
    assert result.result == "1" and len(raftsim_cluster.node_ids) == 5
    assert raftsim_cluster.now() >= 3600
''')
    result = pytester.runpytest(*PLUGIN, "-q")
    result.assert_outcomes(passed=1)


def test_a_failing_test_leaves_its_trace_behind(pytester):
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(COUNTER + '''
@pytest.mark.raftsim(seed=5, state_machine=Counter)
async def test_counter_goes_wrong(raftsim_cluster):
    await raftsim_cluster.wait_for_leader()
    result = await raftsim_cluster.propose(b"inc")
    assert result.result == "2"
''')
    result = pytester.runpytest(*PLUGIN, "-q", "--raftsim-failures", "traces")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*trace of the cluster (* events) written to traces*test_counter_goes_wrong.jsonl*"])
    [path] = list((pytester.path / "traces").glob("*.jsonl"))
    records = read_jsonl(path)
    assert any(record.kind == "role" and record.get("role") == "leader" for record in records)
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_a_passing_test_leaves_no_trace(pytester):
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile('''
async def test_fine(raftsim_cluster):
    await raftsim_cluster.wait_for_leader()
''')
    result = pytester.runpytest(*PLUGIN, "-q")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "raftsim-failures").exists()


@pytest.mark.parametrize("profile, examples", [("dev", 10), ("thorough", 1000)])
def test_the_hypothesis_profile_switch(pytester, profile, examples):
    pytester.makepyfile(f'''
from hypothesis import settings

def test_profile():
    assert settings().max_examples == {examples}
''')
    result = pytester.runpytest(*PLUGIN, "-q", f"--raftsim-hypothesis={profile}")
    result.assert_outcomes(passed=1)
