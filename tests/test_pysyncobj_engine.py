"""The pysyncobj engine: real pysyncobj nodes under raftsim's transport, faults, checks and trace."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import trio

from simulator import (
    CompactionPolicy,
    InvariantViolation,
    KeyValueStore,
    WorkflowExecutor,
)
from simulator.cli import main
from simulator.engines import PYSYNCOBJ_VERSION, PysyncobjCluster, PysyncobjWorkarounds
from simulator.engines.pysyncobj_adapter import SimNode, engine_session, wire_size
from simulator.engines.pysyncobj_checks import PysyncobjMonitor
from transports import Constant, LinkConfig

ROOT = Path(__file__).parent.parent
LINK = LinkConfig(latency=Constant(0.001))


def raftsim(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_the_pinned_pysyncobj_is_the_one_installed_and_declared():
    from pysyncobj.version import VERSION

    assert VERSION == PYSYNCOBJ_VERSION
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"pysyncobj=={PYSYNCOBJ_VERSION}" in dependencies


async def test_three_nodes_elect_a_leader_replicate_and_agree(autojump_clock):
    async with PysyncobjCluster.open(nodes=3, seed=5, link=LINK) as cluster:
        leader = await cluster.wait_for_leader()
        native = WorkflowExecutor()
        for number in range(10):
            command = WorkflowExecutor.start(f"wf-{number}", ["fetch", "build"], b"p" * 100)
            result = await cluster.propose(command)
            assert result.result == "ok" and result.node_id == leader
        await cluster.wait_caught_up()
        digests = {cluster.state_machine(n).digest() for n in cluster.node_ids}
        assert len(digests) == 1
        assert sorted(cluster.state_machine(1).workflows) == sorted(f"wf-{n}" for n in range(10))
        # The same commands through the native machine give the same workflows.
        for number in range(10):
            native.apply(number + 1, WorkflowExecutor.start(f"wf-{number}", ["fetch", "build"], b"p" * 100))
        assert cluster.state_machine(2).workflows == native.workflows
        roles = cluster.trace.of_kind("role")
        assert any(r.get("role") == "leader" and r.node == leader for r in roles)
        assert cluster.monitor.checks > 10


async def test_replicated_methods_of_the_key_value_store_apply_everywhere(autojump_clock):
    async with PysyncobjCluster.open(nodes=3, seed=2, link=LINK, state_machine=KeyValueStore) as cluster:
        leader = await cluster.wait_for_leader()
        done = trio.Event()
        cluster.syncobj(leader).put("colour", b"blue", callback=lambda result, error: done.set())
        await done.wait()
        await cluster.wait_caught_up()
        assert {cluster.syncobj(n).get("colour") for n in cluster.node_ids} == {b"blue"}


async def test_a_joining_node_catches_up_by_pysyncobj_snapshot_and_it_is_counted(autojump_clock):
    link = LinkConfig(latency=Constant(0.001), bandwidth=12_500_000)
    async with PysyncobjCluster.open(nodes=3, seed=1, link=link, compaction=CompactionPolicy(every=30)) as cluster:
        await cluster.wait_for_leader()
        for number in range(70):
            await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["a"], bytes([number]) * 2000))
        await cluster.wait_caught_up()
        leader = cluster.leader_id()
        assert cluster.statistics(leader).first_index > 1  # the log was compacted
        newcomer = await cluster.add_node()
        await cluster.wait_caught_up()
        [transfer] = [t for t in cluster.transfers() if t.to == newcomer]
        assert transfer.mode == "pysyncobj" and transfer.outcome.value == "installed"
        assert transfer.bytes_sent == transfer.size > 0 and transfer.resent_bytes == 0
        assert cluster.snapshot_memory()[newcomer][1] >= transfer.size
        installed = cluster.trace.of_kind("snapshot_installed")
        assert [r.node for r in installed] == [newcomer]
        assert len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1


async def test_partitions_crashes_and_restarts_heal_with_no_safety_violation(autojump_clock):
    async with PysyncobjCluster.open(nodes=5, seed=3, link=LINK, compaction=CompactionPolicy(every=40)) as cluster:
        leader = await cluster.wait_for_leader()
        for number in range(20):
            await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["a"]))
        cluster.partition([leader], [n for n in cluster.node_ids if n != leader])
        await trio.sleep(5)
        new_leader = cluster.leader_id()
        assert new_leader not in (None, leader)
        for number in range(20, 60):
            await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["a"]))
        follower = next(n for n in cluster.node_ids if n not in (leader, new_leader))
        cluster.crash(follower)
        cluster.heal()
        await trio.sleep(2)
        cluster.restart(follower)
        await cluster.check_liveness(within=30)
        assert len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1
        assert sorted(cluster.state_machine(follower).workflows) == sorted(f"wf-{n}" for n in range(60))


def test_the_monitor_flags_two_commands_at_one_index_and_a_lost_acknowledged_write():
    monitor = PysyncobjMonitor()
    monitor.entry_applied(1, 5, b"a")
    with pytest.raises(InvariantViolation, match="state machine safety"):
        monitor.entry_applied(2, 5, b"b")
    monitor = PysyncobjMonitor()
    monitor.entry_applied(1, 5, b"a")
    monitor.write_acknowledged(5, b"a")
    with pytest.raises(InvariantViolation, match="no lost acknowledged write"):
        monitor.entry_applied(2, 5, b"b")
    with pytest.raises(InvariantViolation, match="election safety"):
        monitor.leader_elected(1, 3), monitor.leader_elected(2, 3)
    assert monitor.lost_acknowledged_writes({1: 5, 2: 4}) == ["n2 applied up to 4, below acknowledged index 5"]


def test_nodes_hash_the_same_under_any_hash_seed_and_messages_are_sized_as_on_tcp():
    assert hash(SimNode(7)) == 7 and SimNode(7) == SimNode(7) and SimNode(7).id == "n7"
    import pickle
    import zlib

    message = {"type": "append_entries", "term": 1, "entries": [(b"x" * 100, 2, 1)]}
    assert wire_size(message) == 4 + len(zlib.compress(pickle.dumps(message, 2), 3))


async def test_one_pysyncobj_session_at_a_time_and_the_clock_is_put_back(autojump_clock):
    import pysyncobj.syncobj as syncobj_module

    original = syncobj_module.monotonicTime
    with engine_session(trio.current_time):
        assert syncobj_module.monotonicTime is trio.current_time
        with pytest.raises(RuntimeError, match="one pysyncobj cluster at a time"):
            with engine_session(trio.current_time):
                pass
    assert syncobj_module.monotonicTime is original


# -- the two pysyncobj bugs, and the adapter's workarounds ----------------------------------


def test_empty_snapshot_loop_is_reproduced_without_the_workaround():
    code, out = raftsim("run", "pysyncobj_empty_snapshot_loop", "--engine", "pysyncobj")
    assert code == 1
    assert "sent n4 1001 messages in one call (last: snapshot_empty) while its clock stood still" in out
    assert "check failed: n1 returned from every call" in out


def test_empty_snapshot_loop_workaround_sends_one_empty_message_and_the_snapshot_follows():
    code, out = raftsim("run", "pysyncobj_empty_snapshot_loop", "--engine", "pysyncobj",
                        "--param", "workaround=on", "--seed", "1")
    assert code == 0, out
    assert "sent 1 append_entries with serialized=None in all" in out
    assert "check passed: n4 installed a snapshot" in out


def test_large_command_makes_followers_raise_without_the_workaround():
    code, out = raftsim("run", "pysyncobj_large_command", "--engine", "pysyncobj")
    assert code == 1
    assert "check failed: no follower raised while receiving the command's pieces" in out
    assert out.count("pysyncobj: n") >= 2  # each follower raised


def test_large_command_workaround_keeps_commands_whole():
    code, out = raftsim("run", "pysyncobj_large_command", "--engine", "pysyncobj", "--param", "workaround=on")
    assert code == 0, out
    assert "it travelled in 0 pieces" in out


async def test_a_command_too_large_for_the_workaround_is_refused_with_a_clear_error(autojump_clock):
    workarounds = PysyncobjWorkarounds(max_command_bytes=10_000)
    async with PysyncobjCluster.open(nodes=3, seed=1, link=LINK, workarounds=workarounds) as cluster:
        await cluster.wait_for_leader()
        with pytest.raises(Exception, match="refused: the adapter keeps commands under 10,000 bytes"):
            await cluster.propose(WorkflowExecutor.start("big", ["a"], b"x" * 20_000), timeout=1)


# -- the command line ---------------------------------------------------------------------


def test_a_native_only_scenario_refuses_the_pysyncobj_engine_in_one_line(capsys):
    code, _ = raftsim("run", "basic", "--engine", "pysyncobj")
    assert code == 2
    assert "scenario 'basic' runs on the native engine only" in capsys.readouterr().err


def test_run_json_summary_on_pysyncobj_has_the_native_keys():
    code, out = raftsim("run", "pysyncobj_receiver_crash", "--engine", "pysyncobj", "--json",
                        "--param", "size=1MiB")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["mode"] == "pysyncobj" and summary["ok"]
    [transfer] = summary["transfers"]
    assert transfer["mode"] == "pysyncobj" and transfer["outcome"] == "installed"
    assert transfer["retries"] == 1 and transfer["resent_bytes"] > 0  # restarted from the first piece
    assert summary["peak_snapshot_memory_bytes"]["4"] >= transfer["size"]


def test_compare_puts_embedded_streaming_and_pysyncobj_side_by_side():
    code, out = raftsim("compare", "pysyncobj_receiver_crash", "--engine", "pysyncobj", "--param", "size=1MiB")
    assert code == 0, out
    header = out.splitlines()[2].split()
    assert header == ["embedded", "streaming", "pysyncobj"]
    resent = next(line for line in out.splitlines() if line.startswith("snapshot bytes re-sent"))
    assert resent.count("B") == 3  # one size per column


# -- determinism ------------------------------------------------------------------------------

PROGRAM = """
import sys, trio
from simulator import CompactionPolicy, WorkflowExecutor, run
from simulator.engines import PysyncobjCluster
from transports import LinkConfig, Uniform

async def main():
    link = LinkConfig(latency=Uniform(0.001, 0.01), loss=0.01)
    async with PysyncobjCluster.open(nodes=5, seed=int(sys.argv[1]), link=link,
                                     compaction=CompactionPolicy(every=25)) as cluster:
        leader = await cluster.wait_for_leader()
        for number in range(40):
            await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["a"], b"p" * 300))
        cluster.isolate(leader)
        await trio.sleep(4)
        cluster.heal()
        await cluster.add_node()
        await cluster.check_liveness(within=30)
        print(cluster.trace.sha256(), len(cluster.trace))

run(main)
"""


def trace_hash(seed: int, hash_seed: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(seed)], env=dict(os.environ, PYTHONHASHSEED=hash_seed),
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return completed.stdout.strip()


def test_same_seed_same_trace_across_processes_and_hash_seeds():
    first, second = trace_hash(7, "1"), trace_hash(7, "977")
    assert first == second
    assert int(first.split()[1]) > 1000
    assert trace_hash(8, "1") != first


def test_node_join_runs_on_pysyncobj_with_its_snapshot_in_pieces():
    code, out = raftsim("run", "node_join", "--engine", "pysyncobj", "--param", "workflows=120",
                        "--param", "payload=256")
    assert code == 0, out
    assert "check passed: n4 caught up by installing a snapshot" in out
    assert "in pieces inside append_entries, none acknowledged (pysyncobj)" in out


#: The four comparison scenarios, run on every engine.
COMPARED = ("node_join", "large_snapshot", "mid_transfer_failure", "leader_change_during_transfer")


def compare_rows(out: str) -> dict[str, list[str]]:
    """``raftsim compare``'s table: label -> the three cells (each column is 16 characters wide)."""
    rows = {}
    for line in out.splitlines()[3:]:
        label, cells = line[:-48], line[-48:]
        rows[label.strip()] = [cells[start:start + 16].strip() for start in (0, 16, 32)]
    return rows


@pytest.mark.parametrize("scenario", COMPARED)
def test_compare_runs_the_four_scenarios_on_both_engines_and_every_column_passes(scenario):
    code, out = raftsim("compare", scenario, "--engine", "pysyncobj")
    assert code == 0, out
    assert out.splitlines()[2].split() == ["embedded", "streaming", "pysyncobj"]
    rows = compare_rows(out)
    assert rows["result"] == ["ok", "ok", "ok"], out
    assert rows["invariants"] == ["held", "held", "held"], out
    if scenario == "mid_transfer_failure":
        # Streaming resumes at its verified offset; embedded and pysyncobj send the whole snapshot again.
        assert rows["transfer retries"] == ["0", "1", "1"], out
        assert rows["snapshot bytes re-sent"][1] == "1 MiB", out


@pytest.mark.parametrize(("scenario", "options"), [
    ("node_join", ["--param", "workflows=120", "--param", "payload=256"]),
    ("large_snapshot", ["--param", "size=4MiB"]),
    ("mid_transfer_failure", ["--chunk-size", "256KiB"]),
    ("leader_change_during_transfer", ["--chunk-size", "256KiB"]),
])
def test_the_four_compared_scenarios_replay_on_pysyncobj_with_the_same_trace_hash(scenario, options):
    def run_hash(hash_seed: str) -> str:
        completed = subprocess.run(
            [sys.executable, "-m", "simulator.cli", "run", scenario, "--engine", "pysyncobj", "--json", *options],
            env=dict(os.environ, PYTHONHASHSEED=hash_seed), capture_output=True, text=True, cwd=ROOT,
        )
        summary = json.loads(completed.stdout)
        assert summary["ok"], summary["failed_checks"]
        return summary["trace_sha256"]

    assert run_hash("2") == run_hash("8191")


async def test_a_piece_fault_cuts_the_link_after_piece_k_and_pysyncobj_starts_again(autojump_clock):
    async with PysyncobjCluster.open(nodes=3, seed=2, link=LinkConfig(latency=Constant(0.001),
                                                                      bandwidth=12_500_000)) as cluster:
        await cluster.wait_for_leader()
        for number in range(8):
            payload = random.Random(number).randbytes(100_000)  # gzip cannot shrink it: many pieces
            await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["a"], payload))
        leader = cluster.leader_id()
        cluster.compact(leader)
        await trio.sleep(0.2)
        cluster.fail_piece(2, "cut", to=4, cut_for=0.5)
        await cluster.add_node(timeout=30)
        [fired] = cluster.trace.of_kind("piece_fault")
        assert (fired.get("src"), fired.get("to"), fired.get("k")) == (leader, 4, 2)
        [mended] = cluster.trace.of_kind("piece_cut_mended")
        assert mended.time - fired.time == pytest.approx(0.5)
        dropped = [r for r in cluster.trace.of_kind("drop")
                   if r.get("type") == "snapshot_piece" and r.get("reason") == "link blocked"]
        assert dropped and all(fired.time <= r.time < mended.time for r in dropped)
        [transfer] = cluster.transfers()
        assert (transfer.retries, transfer.outcome.value) == (1, "installed")
        assert len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1


@pytest.mark.parametrize(("options", "expected"), [
    ({"k": 0, "action": "cut"}, "piece numbers start at 1, got k=0"),
    ({"k": 1, "action": "drop"}, "unknown piece fault 'drop'; expected one of cut, crash_sender"),
    ({"k": 1, "action": "cut", "cut_for": 0}, "a cut needs cut_for > 0 seconds, got 0"),
])
async def test_a_bad_piece_fault_is_refused_with_what_was_expected(autojump_clock, options, expected):
    async with PysyncobjCluster.open(nodes=3, seed=1, link=LINK) as cluster:
        with pytest.raises(ValueError, match=expected.replace("(", r"\(")):
            cluster.fail_piece(options.pop("k"), options.pop("action"), **options)


def test_readme_pysyncobj_example_runs(tmp_path):
    import re

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    [example] = [block for block in blocks if "PysyncobjCluster" in block]
    script = tmp_path / "example.py"
    script.write_text(example)
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT,
                               check=True)
    assert re.fullmatch(r"[0-9a-f]{64}", completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("scenario", ["pysyncobj_receiver_crash", "pysyncobj_empty_snapshot_loop"])
def test_pysyncobj_scenarios_replay_with_the_same_trace_hash_in_two_processes(scenario):
    def run_hash(hash_seed: str) -> str:
        completed = subprocess.run(
            [sys.executable, "-m", "simulator.cli", "run", scenario, "--engine", "pysyncobj", "--json",
             "--param", "size=1MiB" if scenario == "pysyncobj_receiver_crash" else "workaround=on"],
            env=dict(os.environ, PYTHONHASHSEED=hash_seed), capture_output=True, text=True, cwd=ROOT,
        )
        return json.loads(completed.stdout)["trace_sha256"]

    assert run_hash("1") == run_hash("31337")


async def test_the_live_view_shows_pysyncobj_nodes_and_its_transfer_progress(autojump_clock):
    import re

    from rich.console import Console

    from simulator.observe.live_view import LiveView

    console = Console(file=io.StringIO(), force_terminal=True, width=140, record=True)
    link = LinkConfig(latency=Constant(0.001), bandwidth=12_500_000)
    async with PysyncobjCluster.open(nodes=3, seed=1, link=link, compaction=CompactionPolicy(every=30)) as cluster:
        view = LiveView(cluster, console, scenario="pysyncobj join")
        view.start()
        await cluster.wait_for_leader()
        for number in range(40):
            await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["a"], bytes([number]) * 2000))
        newcomer = await cluster.add_node()
        await cluster.wait_caught_up()
        index = cluster.statistics(newcomer).snapshot_index
        view.stop()
    text = console.export_text()
    frame = text[text.rindex("raftsim · "):]
    assert frame.startswith("raftsim · pysyncobj join · pysyncobj · seed 1")
    [row] = [line for line in frame.splitlines() if re.match(rf"^\W*n{newcomer}\s", line)]
    assert str(index) in row and "follower" in row and index > 0
    assert re.search(r"pysyncobj · .* · 0 retries · 0 B re-sent · installed", frame)
