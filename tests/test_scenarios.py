"""The scenario library through the ``raftsim`` command line: list, run, compare, replay.

Each scenario's seed-0 run in each of its modes is checked byte for byte by
``test_golden.py``; the tests here cover the rest of the command line's
contract (exit codes, one-line errors, ``--json``, ``--trace`` and
``replay``, ``compare``, scenario files given by path) with short runs.
"""

from __future__ import annotations

import io
import json

import pytest

from scenarios import first_election
from simulator.cli import main

SCENARIOS = (
    "basic", "node_join", "large_snapshot", "mid_transfer_failure", "partition_during_transfer",
    "leader_change_during_transfer", "compaction_race", "follower_restart_disk", "snapshot_unavailable",
    "pysyncobj_empty_snapshot_loop", "pysyncobj_large_command", "pysyncobj_receiver_crash",
    "stale_read", "joint_consensus_swap", "stale_lease_read", "slow_link_catch_up", "flaky_link_catch_up",
    "auto_threshold", "distant_leader_catch_up", "duplicating_link_catch_up", "disk_faults",
)
#: node_join, small: 120 workflows of 256 bytes.
SMALL_JOIN = ["node_join", "--param", "workflows=120", "--param", "payload=256"]


def raftsim(*argv: str) -> tuple[int, str]:
    """Run the CLI as without a terminal; (exit code, standard output)."""
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def story(output: str) -> list[str]:
    """The narrated lines of a run (the summary after them left out)."""
    return [line for line in output.splitlines() if line.startswith("[")]


def test_first_election_story_ends_with_every_node_in_agreement(capsys):
    assert first_election.main(["--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "won term" in out
    assert "sends it the snapshot" in out
    assert "Every node applied the same 10 commands: True" in out


# -- list ---------------------------------------------------------------------------------


def test_list_names_every_scenario_with_its_description():
    code, out = raftsim("list", "--json")
    assert code == 0
    described = {row["name"]: row["description"] for row in json.loads(out)}
    assert sorted(described) == sorted(SCENARIOS)  # first_election has no 'async def scenario'
    assert described["node_join"].startswith("Node join: a fourth node joins")
    assert all(len(description) > 20 for description in described.values()), described


# -- run ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["embedded", "streaming"])
def test_node_join_newcomer_catches_up_by_snapshot(mode):
    code, out = raftsim("run", *SMALL_JOIN, "--seed", "2", "--mode", mode)
    assert code == 0, out
    assert "n4 installed snapshot" in out
    assert "check passed: all 4 nodes hold the same workflow state" in out
    assert f"node_join (seed 2, {mode}): ok" in out


def test_node_join_streaming_holds_at_most_a_chunk_of_snapshot_in_memory():
    code, out = raftsim("run", *SMALL_JOIN, "--mode", "streaming", "--chunk-size", "4KiB")
    assert code == 0, out
    assert "most snapshot bytes n4 held in memory at once: 4,096" in out
    code, out = raftsim("run", *SMALL_JOIN, "--mode", "embedded")
    assert code == 0, out
    assert "most snapshot bytes n4 held in memory at once: 4,096" not in out


def test_same_seed_tells_the_same_story():
    first = raftsim("run", *SMALL_JOIN, "--seed", "5", "--mode", "streaming")
    assert raftsim("run", *SMALL_JOIN, "--seed", "5", "--mode", "streaming") == first
    assert raftsim("run", *SMALL_JOIN, "--seed", "6", "--mode", "streaming")[1] != first[1]


def test_json_prints_one_summary_object_with_the_documented_keys():
    code, out = raftsim("run", *SMALL_JOIN, "--mode", "streaming", "--json")
    assert code == 0
    summary = json.loads(out)  # the whole output is one JSON object
    assert {"scenario", "seed", "mode", "ok", "violations", "virtual_seconds", "trace_sha256",
            "nodes", "transfers", "peak_snapshot_memory_bytes"} <= set(summary)
    assert (summary["scenario"], summary["seed"], summary["mode"], summary["ok"]) == (
        "node_join", 0, "streaming", True)
    assert summary["violations"] == []
    assert [node["id"] for node in summary["nodes"]] == [1, 2, 3, 4]
    for node in summary["nodes"]:
        assert {"id", "role", "term", "commit", "applied", "snapshot_index", "state_digest"} <= set(node)
    assert len({node["state_digest"] for node in summary["nodes"]}) == 1
    [transfer] = summary["transfers"]
    assert {"from", "to", "snapshot_index", "size", "bytes_sent", "resent_bytes", "retries",
            "outcome"} <= set(transfer)
    assert (transfer["to"], transfer["outcome"]) == (4, "installed")
    assert set(summary["peak_snapshot_memory_bytes"]) == {"1", "2", "3", "4"}
    assert len(summary["trace_sha256"]) == 64


def test_trace_file_replays_as_the_same_story(tmp_path):
    trace = tmp_path / "run.jsonl"
    code, out = raftsim("run", *SMALL_JOIN, "--mode", "streaming", "--trace", str(trace))
    assert code == 0 and trace.is_file()
    code, replayed = raftsim("replay", str(trace))
    assert code == 0
    assert replayed.splitlines() == story(out)
    assert any("n4 installed snapshot" in line for line in story(out))


def test_compare_prints_both_modes_side_by_side():
    code, out = raftsim("compare", *SMALL_JOIN)
    assert code == 0, out
    header = next(line for line in out.splitlines() if "embedded" in line)
    assert "streaming" in header
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines() if "  " in line}
    assert rows["result"][-2:] == ["ok", "ok"]
    assert rows["snapshot transfers"][-2:] == ["1", "1"]
    assert "peak snapshot memory n4" in out
    assert rows["invariants"][-2:] == ["held", "held"]


# -- scenario files given by path ------------------------------------------------------------

PASSING = '''"""Tiny: elect a leader and check it."""

async def scenario(sim):
    leader = await sim.cluster.wait_for_leader()
    sim.say(f"n{leader} leads")
    sim.check(leader is not None, "a leader was elected")
'''

FAILING = '''"""Always fails its own check."""

async def scenario(sim):
    await sim.cluster.wait_for_leader()
    sim.check(False, "this scenario expects the impossible")
'''


def test_a_scenario_file_given_by_path_runs(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(PASSING)
    code, out = raftsim("run", str(path), "--mode", "streaming")
    assert code == 0, out
    assert "check passed: a leader was elected" in out
    assert "tiny (seed 0, streaming): ok" in out


def test_a_failed_check_makes_the_run_exit_1(tmp_path):
    path = tmp_path / "doomed.py"
    path.write_text(FAILING)
    code, out = raftsim("run", str(path))
    assert code == 1
    assert "check FAILED: this scenario expects the impossible" in out
    assert "doomed (seed 0, embedded): FAILED" in out
    assert "  check failed: this scenario expects the impossible" in out


# -- usage errors: exit 2, one line, no traceback ------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no_such_scenario"], "unknown scenario 'no_such_scenario'; known: "),
        (["run", "node_join", "--param", "colour=blue"], "scenario has no parameter 'colour'"),
        (["run", "node_join", "--param", "workflows"], "--param expects KEY=VALUE"),
        (["run", "node_join", "--chunk-size", "4XB"], "size '4XB' not understood"),
        (["run", "node_join", "--mode", "sideways"], "invalid choice: 'sideways'"),
        (["run", "partition_during_transfer", "--mode", "embedded"], "runs in streaming mode only"),
        (["run", "node_join", "--store", "tape"], "store must be memory, disk or disk:DIR"),
        (["replay", "missing.jsonl"], "no trace file 'missing.jsonl'"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    code, out = raftsim(*argv)
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("raftsim: error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == ""


def test_a_scenario_that_gets_stuck_fails_in_one_line_with_exit_code_1(tmp_path):
    path = tmp_path / "stuck.py"
    path.write_text(
        '"""Stuck: no majority can ever form."""\n'
        "from simulator import WorkflowExecutor\n"
        "async def scenario(sim):\n"
        "    await sim.cluster.wait_for_leader()\n"
        "    sim.cluster.partition([1], [2], [3])\n"
        "    await sim.cluster.propose(WorkflowExecutor.start('x', ['a']), timeout=3)\n"
    )
    out = io.StringIO()
    assert main(["run", str(path), "--quiet"], out=out) == 1
    assert "check failed: the story got stuck: command not applied within 3 s" in out.getvalue()


def test_a_scenario_sets_its_own_streaming_options_and_the_command_line_overrides_the_chunk_size(tmp_path):
    path = tmp_path / "options.py"
    path.write_text(
        '"""Options: streaming settings of the scenario reach the cluster."""\n'
        "STREAMING = {'rate_limit': 5000, 'chunk_size': 2048}\n"
        "MODES = ('streaming',)\n"
        "async def scenario(sim):\n"
        "    mode = sim.cluster.snapshot_mode\n"
        "    sim.check(mode.rate_limit == 5000, 'rate limit from the scenario')\n"
        "    sim.check(mode.chunk_size == 4096, 'chunk size from --chunk-size')\n"
    )
    out = io.StringIO()
    assert main(["run", str(path), "--mode", "streaming", "--chunk-size", "4KiB"], out=out) == 0
    assert "check passed: rate limit from the scenario" in out.getvalue()


def test_realtime_paces_the_same_virtual_time_run(tmp_path):
    # --realtime only paces the run (tests/test_pacing.py): the clock stays virtual.
    path = tmp_path / "quick.py"
    path.write_text(
        '"""Quick: a leader, on virtual time even when paced."""\n'
        "import trio\n"
        "CLUSTER = {'tick_interval': 0.01}\n"
        "async def scenario(sim):\n"
        "    clock = trio.lowlevel.current_clock()\n"
        "    sim.check(isinstance(clock, trio.testing.MockClock), 'the virtual clock')\n"
        "    await sim.cluster.wait_for_leader(timeout=30)\n"
    )
    out = io.StringIO()
    assert main(["run", str(path), "--realtime", "--speed", "100", "--quiet"], out=out) == 0
    assert "FAILED" not in out.getvalue()


@pytest.mark.parametrize(
    "fields, sentence",
    [
        ({"fault": "compact", "node_id": 2, "index": 40}, "n2 is told to compact its log now (snapshot at 40)"),
        # pysyncobj compacts on its own schedule and reports no index.
        ({"fault": "compact", "node_id": 2, "index": None}, "n2 is told to compact its log now"),
    ],
)
def test_a_compaction_is_told_with_its_index_when_there_is_one(fields, sentence):
    from simulator.observe.narration import _fault

    assert _fault(fields) == sentence
