"""Fault programs, their checks, and the scenario files the property search writes."""

from __future__ import annotations

import io
import json

import attrs
import pytest
from hypothesis import given, settings

import simulator
from simulator import (
    AddNode,
    Cluster,
    CompactionPolicy,
    Crash,
    FailChunk,
    Partition,
    Program,
    ProgramRun,
    Propose,
    RemoveNode,
    SearchSpace,
    Wait,
    fault_programs,
)
from simulator.cli import main as raftsim
from simulator.explore.search import run_example, scenario_source, write_scenario
from simulator.checks.invariants import InvariantViolation
from simulator.explore.programs import AcknowledgedWrite
from simulator.scenario import ScenarioError, load_module
from transports import Streaming

# -- programs as values ------------------------------------------------------------------


@settings(max_examples=50)
@given(program=fault_programs(SearchSpace(nodes=5)))
def test_the_repr_of_a_program_builds_an_equal_program(program):
    namespace = {name: getattr(simulator, name) for name in simulator.__all__}
    assert eval(repr(program), namespace) == program


def test_a_scenario_file_holds_the_program_the_space_and_the_replay_command(tmp_path):
    space = SearchSpace(mode="streaming", store="disk", nodes=5, chunk_size=2048, defects=("resume_from_zero",))
    program = Program((Propose(count=2), FailChunk(k=2, action="cut"), AddNode()), liveness_within=12.0)
    path = write_scenario(tmp_path / "example.py", program, space, 42, headline="a headline")
    module = load_module(path)
    assert module.PROGRAM == program
    assert module.CLUSTER["nodes"] == 5
    assert module.MODES == ("streaming",)
    assert module.STREAMING == {"chunk_size": 2048}
    assert module.DEFECTS == ("resume_from_zero",)
    assert module.__doc__.startswith("Counterexample: a headline")
    assert all(len(line) <= 100 for line in module.__doc__.splitlines()[:3])
    assert f"raftsim run {path}\n" in module.__doc__
    assert module.DEFAULTS == {"seed": 42, "mode": "streaming", "store": "disk"}


def test_a_search_space_refuses_what_it_cannot_run():
    with pytest.raises(ScenarioError, match="mode must be embedded, streaming or auto"):
        SearchSpace(mode="carrier-pigeon")
    with pytest.raises(ValueError, match="unknown defect 'typo'; expected one of commit_old_term"):
        SearchSpace(defects=("typo",))


# -- running them ------------------------------------------------------------------------


def test_an_example_runs_exactly_as_raftsim_run_runs_its_file(tmp_path):
    space = SearchSpace(mode="streaming", store="disk")
    program = Program((Crash(node=2), Propose(count=12), Wait(seconds=1.0), FailChunk(k=2, action="drop")))
    first = run_example(program, space, 5, tmp_path)
    second = run_example(program, space, 5, tmp_path)
    assert first.ok and second.ok
    assert first.summary["trace_sha256"] == second.summary["trace_sha256"]
    # The liveness phase restarted node 2, which caught up by a streamed snapshot.
    assert [t["outcome"] for t in first.summary["transfers"]] == ["installed"]
    path = write_scenario(tmp_path / "replay.py", program, space, 5)
    captured = io.StringIO()
    assert raftsim(["run", str(path), "--json"], out=captured) == 0  # seed, mode, store: its DEFAULTS
    summary = json.loads(captured.getvalue())
    assert (summary["seed"], summary["mode"]) == (5, "streaming")
    assert summary["trace_sha256"] == first.summary["trace_sha256"]
    # The command line still wins over the file's defaults.
    assert raftsim(["run", str(path), "--seed", "6", "--json"], out=(other := io.StringIO())) == 0
    assert json.loads(other.getvalue())["trace_sha256"] != first.summary["trace_sha256"]


def test_a_streaming_only_scenario_runs_streaming_without_being_told():
    captured = io.StringIO()
    assert raftsim(["run", "partition_during_transfer", "--json"], out=captured) == 0
    assert json.loads(captured.getvalue())["mode"] == "streaming"


def test_defaults_may_set_only_seed_mode_and_store(tmp_path):
    path = tmp_path / "odd.py"
    path.write_text(scenario_source(Program(), SearchSpace(), 0).replace('DEFAULTS = {', 'DEFAULTS = {"nodes": 5, '))
    assert raftsim(["run", str(path)], out=io.StringIO()) == 2


def test_only_failing_examples_leave_their_file_behind(tmp_path):
    run_example(Program((Propose(),)), SearchSpace(), 1, tmp_path)
    assert list(tmp_path.glob("*.py")) == []
    failing = run_example(Program((FailChunk(k=1, action="corrupt_source"), AddNode())),
                          SearchSpace(defects=("install_unverified",)), 1, tmp_path)
    assert not failing.ok
    assert len(list(tmp_path.glob("program_*.py"))) == 1


@pytest.mark.parametrize(
    "program",
    [
        # A node that joined by replaying the log took "make n4 a voter" for a cluster of
        # n4 alone and elected itself beside the real leader (election safety).
        Program((AddNode(), Partition(group=(1, 2)), Propose(count=1))),
        # A node whose join never committed was counted as a member that must catch up.
        Program((Crash(node=1), Partition(group=(2,)), AddNode())),
    ],
)
@pytest.mark.parametrize("mode", ["embedded", "streaming"])
def test_programs_the_search_found_failing_now_pass(program, mode, tmp_path):
    result = run_example(program, SearchSpace(mode=mode), 0, tmp_path)
    assert result.ok, result.violations + result.failed_checks


def test_a_scenario_with_an_unknown_defect_is_bad_input(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(scenario_source(Program(), SearchSpace(), 0).replace("DEFECTS = ()", "DEFECTS = ('typo',)"))
    captured = io.StringIO()
    assert raftsim(["run", str(path), "--mode", "streaming"], out=captured) == 2


# -- the checks after every step can fail --------------------------------------------------


@pytest.fixture
async def finished(autojump_clock):
    async with Cluster.open(nodes=3, seed=3, snapshot_mode=Streaming(chunk_size=1024),
                            compaction=CompactionPolicy(every=10, keep_entries=2)) as cluster:
        run = ProgramRun(cluster, payload_size=512)
        await run.run(Program((Propose(count=25), Crash(node=3), Propose(count=5), Wait(seconds=1.0)),
                              liveness_within=20.0))
        yield run


async def test_a_finished_run_passes_every_check(finished, autojump_clock):
    assert len(finished.acknowledged) == 30
    finished.checks.after_step()
    finished.checks.acknowledged_writes_applied()


async def test_an_acknowledged_write_replaced_by_another_term_is_reported(finished, autojump_clock):
    write = finished.acknowledged[-1]
    finished.acknowledged.append(attrs.evolve(write, term=write.term + 7))
    with pytest.raises(InvariantViolation, match=r"^no acknowledged write is lost: the client was told"):
        finished.checks.no_acknowledged_write_lost()


async def test_an_acknowledged_write_nobody_applied_is_reported(finished, autojump_clock):
    finished.acknowledged.append(AcknowledgedWrite(index=10_000, term=1, command=b"never proposed"))
    with pytest.raises(InvariantViolation, match="write acknowledged at index 10000"):
        finished.checks.acknowledged_writes_applied()


async def test_a_resume_that_asks_for_too_much_again_is_reported(finished, autojump_clock):
    registry = finished.cluster.transfers_registry
    record = registry._started[0]
    record.largest_resend = 4096
    with pytest.raises(InvariantViolation, match="asking for 4096 bytes again; at most 1024"):
        finished.checks.resumes_resend_at_most_one_chunk()


async def test_a_log_compacted_without_its_snapshot_in_the_store_is_reported(finished, autojump_clock):
    cluster = finished.cluster
    covered = cluster.storage(1).snapshot_metadata.index
    assert covered > 0
    store = cluster.store(1)
    snapshot = store.snapshot_metadata(covered)
    store._unpublish_snapshot(snapshot)
    store._snapshots.pop(covered)
    store._delete_snapshot_data(snapshot)
    with pytest.raises(InvariantViolation, match=f"no longer holds snapshot {covered}"):
        finished.checks.log_discarded_only_under_a_durable_snapshot()


async def test_remove_node_never_shrinks_the_cluster_below_three(finished, autojump_clock):
    before = finished.members()
    await RemoveNode(node=2).apply(finished)
    assert finished.members() == before


