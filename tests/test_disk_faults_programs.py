"""Disk faults as fault-program steps on whole clusters (issue 22).

Each step (:mod:`simulator.explore.disk_faults`) runs in a program on a
three-node cluster whose snapshot stores are on disk: the fault must hit (its
injection counter moves), be detected (an event names it, or a snapshot is
refused), and the program's checks must pass, acknowledged writes and the
end-of-run read-back of every snapshot included. The read-back check is
shown to fail when the store's own read-back is switched off, the search and
the swarm draw the steps, and a program with them replays with the same
trace hash.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from simulator import (
    Cluster,
    CompactionPolicy,
    Compact,
    Crash,
    DiskError,
    FillDisk,
    FlipBitOnRead,
    FreeDisk,
    LostFsync,
    MisdirectedWrite,
    Program,
    Propose,
    Restart,
    SearchSpace,
    Wait,
    run_example,
    run_program,
)
from simulator.checks.invariants import InvariantViolation
from simulator.explore.disk_faults import DISK_STEPS
from simulator.explore.swarm import draw
from simulator.machines.state_machines import WorkflowExecutor
from simulator.snapshots import DiskSnapshotStore
from transports import Streaming

FOLLOWER = 2

#: name -> (program, the injection counter that must move, a trace event that shows it was caught)
PROGRAMS = {
    "full disk": ((FillDisk(FOLLOWER), Propose(12), Crash(FOLLOWER), Wait(1.0), Restart(FOLLOWER), Propose(5),
                   FreeDisk(FOLLOWER)), "enospc", "compaction_failed"),
    "EIO on write": ((DiskError(FOLLOWER, "write"), Propose(12), Crash(FOLLOWER), Restart(FOLLOWER), Propose(12)),
                     "eio_write", "compaction_failed"),
    "EIO on fsync": ((DiskError(FOLLOWER, "fsync"), Propose(12), Crash(FOLLOWER), Restart(FOLLOWER), Propose(12)),
                     "eio_fsync", "compaction_failed"),
    "EIO on read": ((Crash(FOLLOWER), Propose(15), DiskError(1, "read"), DiskError(3, "read"), Restart(FOLLOWER),
                     Propose(3)), "eio_read", "transfer_failed"),
    "flipped bit on read": ((Crash(FOLLOWER), Propose(15), FlipBitOnRead(1), FlipBitOnRead(3), Restart(FOLLOWER),
                             Propose(3), Wait(2.0)), "flipped_bit", "transfer_failed"),
    "misdirected write": ((Propose(3), MisdirectedWrite(1), MisdirectedWrite(2), MisdirectedWrite(3), Compact(1),
                           Compact(2), Compact(3)), "misdirected_write", "compaction_failed"),
    "lost fsync": ((LostFsync(FOLLOWER), Propose(15), Crash(FOLLOWER), Restart(FOLLOWER), Propose(3), Wait(2.0)),
                   "lost_fsync", "snapshot_lost"),
}


def _open(tmp_path):
    return Cluster.open(nodes=3, seed=5, state_machine=WorkflowExecutor,
                        snapshot_mode=Streaming.on_disk(tmp_path, chunk_size=1024),
                        compaction=CompactionPolicy(every=10, keep_entries=2))


def _injected(cluster, counter: str) -> int:
    return sum(getattr(cluster.store(n).files, "injected", {}).get(counter, 0) for n in cluster.node_ids)


@pytest.mark.parametrize("name", PROGRAMS)
async def test_each_disk_fault_is_hit_caught_and_survived(autojump_clock, tmp_path, name):
    steps, counter, caught = PROGRAMS[name]
    async with _open(tmp_path) as cluster:
        run = await run_program(SimpleNamespace(cluster=cluster), Program(steps, liveness_within=30.0), warmup=25)
        assert _injected(cluster, counter) > 0, f"the {name} fault never hit"
        assert caught in {record.kind for record in cluster.trace.records}
        says = [record.get("text") for record in cluster.trace.records if record.kind == "say"]
        assert any("disk" in (text or "") and "step" not in (text or "") for text in says)  # narrated
        assert run.acknowledged  # and the end-of-run checks, read-back included, passed


async def test_the_read_back_check_catches_a_corrupt_snapshot_the_store_did_not_notice(
        autojump_clock, tmp_path, monkeypatch):
    monkeypatch.setattr(DiskSnapshotStore, "_check_written", lambda *args, **kwargs: None)
    steps = PROGRAMS["misdirected write"][0]
    with pytest.raises(InvariantViolation) as raised:
        async with _open(tmp_path) as cluster:
            await run_program(SimpleNamespace(cluster=cluster), Program(steps, liveness_within=30.0), warmup=25)
    assert raised.value.invariant == "a node's snapshot is backed by its store"
    assert "does not read back as recorded" in str(raised.value)


async def test_a_lying_disk_waits_its_turn(autojump_clock, tmp_path):
    async with _open(tmp_path) as cluster:
        program = Program((LostFsync(1), LostFsync(FOLLOWER), Propose(3)), liveness_within=30.0)
        await run_program(SimpleNamespace(cluster=cluster), program, warmup=12)
        lying = [n for n in cluster.node_ids if getattr(cluster.store(n).files, "lying", False)]
        assert lying == [1]  # one lying disk at a time: a majority of them is the documented limit


def test_the_property_search_draws_every_disk_fault():
    from hypothesis import given, settings

    from simulator import fault_programs

    seen = set()

    @settings(max_examples=300, database=None, derandomize=True)
    @given(fault_programs())
    def collect(program):
        seen.update(type(step) for step in program.steps if type(step) in DISK_STEPS)

    collect()
    assert seen == set(DISK_STEPS)


def test_the_swarm_draws_disk_faults_only_on_disk_stores():
    kinds = {step.__name__ for step in DISK_STEPS}
    drawn = set()
    for seed in range(200):
        config, program = draw(seed)
        names = {type(step).__name__ for step in program.steps} & kinds
        if config.store != "disk":
            assert not names and not set(config.steps) & kinds, seed
        drawn |= names
    assert drawn == kinds


MIXED = (Crash(FOLLOWER), Propose(8), FlipBitOnRead(1), DiskError(3, "read"), MisdirectedWrite(1),
         Restart(FOLLOWER), LostFsync(3, torn=True), Propose(4), Crash(3), Restart(3), Propose(2))


@pytest.mark.parametrize("steps", [MIXED, PROGRAMS["flipped bit on read"][0]], ids=["mixed", "flipped bit"])
def test_a_program_with_disk_faults_replays_with_the_same_trace_hash(tmp_path, steps):
    # Each run gets its own store directory: a path in an error message would change the hash
    # (the flipped bit's digest error did, before messages named files instead of paths).
    space = SearchSpace(store="disk", chunk_size=1024, warmup=25, max_steps=12)
    program = Program(steps, liveness_within=30.0)
    first = run_example(program, space, 5, tmp_path / "a")
    second = run_example(program, space, 5, tmp_path / "b")
    assert first.ok and second.ok, (first.violations, first.failed_checks)
    assert first.summary["trace_sha256"] == second.summary["trace_sha256"]


def test_disk_fault_steps_print_as_the_python_that_builds_them():
    rng = random.Random(0)
    for kind in DISK_STEPS:
        step = kind(node=rng.randint(1, 3))
        assert eval(repr(step), {kind.__name__: kind}) == step  # noqa: S307 - our own repr


async def test_the_read_back_check_does_not_consume_a_fault_armed_for_the_run(autojump_clock):
    """Found by the 300-seed sweep (seed 169): a store read failure armed by FailStoreRead and
    never reached made the end-of-run read-back fail. The check reads past the fault wrapper."""
    from simulator import faulty_memory_stores
    from simulator.checks.stores import unbacked_snapshots

    async with Cluster.open(nodes=3, seed=5, state_machine=WorkflowExecutor,
                            snapshot_mode=Streaming(chunk_size=512, store=faulty_memory_stores),
                            compaction=CompactionPolicy(every=10, keep_entries=2)) as cluster:
        await run_program(SimpleNamespace(cluster=cluster), Program((), liveness_within=30.0), warmup=12)
        for node in cluster.node_ids:
            cluster.store(node).fail_reads(1)
        assert unbacked_snapshots(cluster, cluster.node_ids) == []
        assert all(cluster.store(node).injected["failed_read"] == 0 for node in cluster.node_ids)
