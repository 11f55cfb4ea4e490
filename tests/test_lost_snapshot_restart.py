"""A node whose newest disk snapshot is gone or damaged does not claim its index (issue 15, item 1).

The issue's reproduction: 3 nodes streaming through disk stores, compaction
every 20 entries keeping 2, 50 workflows; a follower compacts, crashes, its
newest snapshot is damaged on disk, it restarts, 5 more workflows follow.
Before the fix the follower reported applied 56 with a state that held only
the last 5 workflows (or crashed the run with a ``DecodeError`` on a flipped
byte). Now it comes up empty, asks the leader for a snapshot, and ends with
the leader's state; and the monitor's new invariant catches a planted
divergence between replicas that applied the same index.
"""

from __future__ import annotations

import pytest

from simulator import Cluster, CompactionPolicy, InvariantViolation
from simulator.checks.monitor import InvariantMonitor
from simulator.machines.state_machines import WorkflowExecutor
from simulator.snapshots.files import BIN, META, file_name
from transports import Streaming

FOLLOWER = 3


def _damage(directory, index: int, how: str) -> None:
    meta, data = directory / file_name(index, META), directory / file_name(index, BIN)
    if how == "metadata deleted":
        meta.unlink()
    elif how == "data deleted":
        data.unlink()
    elif how == "data truncated":
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    else:  # one byte flipped, same size: only the digest can tell
        raw = bytearray(data.read_bytes())
        raw[len(raw) // 3] ^= 0x01
        data.write_bytes(bytes(raw))


async def _workflows(cluster, first: int, count: int) -> None:
    for number in range(first, first + count):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["build", "test"], b"x" * 200))


@pytest.mark.parametrize("how", ["metadata deleted", "data deleted", "data truncated", "one byte flipped"])
async def test_a_follower_that_lost_its_newest_snapshot_is_caught_up_by_the_leader(autojump_clock, tmp_path, how):
    mode = Streaming.on_disk(tmp_path, chunk_size=4096)
    async with Cluster.open(nodes=3, seed=7, state_machine=WorkflowExecutor, snapshot_mode=mode,
                            compaction=CompactionPolicy(every=20, keep_entries=2)) as cluster:
        leader = await cluster.wait_for_leader()
        follower = next(n for n in cluster.node_ids if n != leader)
        await _workflows(cluster, 0, 50)
        await cluster.wait_caught_up()
        lost = cluster.compact(follower)
        cluster.crash(follower)
        _damage(tmp_path / f"node-{follower}", lost, how)
        cluster.restart(follower)
        await _workflows(cluster, 50, 5)
        await cluster.check_liveness(within=10)

        events = [(e.kind, e.fields) for e in cluster.trace.records if e.node == follower]
        kinds = [kind for kind, _ in events]
        assert "snapshot_lost" in kinds and "snapshot_recovered" in kinds
        applied = {n: cluster.runners[n].node.raft.raft_log.applied for n in cluster.node_ids}
        digests = {n: cluster.state_machine(n).digest() for n in cluster.node_ids}
        assert len(set(applied.values())) == 1, applied
        assert len(set(digests.values())) == 1, digests
        assert cluster.runners[follower].snapshot_wait is None


def test_replicas_that_applied_the_same_index_must_hold_the_same_state():
    monitor = InvariantMonitor()
    monitor.state_at(1, 40, "sha256:aa")
    assert monitor.wants_state_at(40) and not monitor.wants_state_at(41)
    monitor.state_at(2, 40, "sha256:aa")
    with pytest.raises(InvariantViolation) as raised:
        monitor.state_at(3, 40, "sha256:bb")
    assert raised.value.invariant == "replicas that applied the same index hold the same state"
    assert "node 3 applied up to 40 and holds state sha256:bb; node 1 held sha256:aa there" in str(raised.value)


async def test_a_replica_that_silently_lost_state_is_caught_at_the_next_snapshot_point(autojump_clock):
    """The class of item 1 without the disk: a follower's state machine forgets a workflow."""
    with pytest.raises(InvariantViolation) as raised:
        async with Cluster.open(nodes=3, seed=11, state_machine=WorkflowExecutor,
                                compaction=CompactionPolicy(every=20, keep_entries=2)) as cluster:
            leader = await cluster.wait_for_leader()
            follower = next(n for n in cluster.node_ids if n != leader)
            await _workflows(cluster, 0, 5)
            await cluster.wait_caught_up()
            del cluster.state_machine(follower).workflows["wf-0"]  # what a lost snapshot looks like
            await _workflows(cluster, 5, 40)
            pytest.fail("the divergent replica went unnoticed")
    assert raised.value.invariant == "replicas that applied the same index hold the same state"


@pytest.mark.parametrize("how", ["delete_metadata", "delete_data", "truncate_data", "flip_byte"])
async def test_store_damage_between_crash_and_restart_is_a_program_step_the_checks_pass(
        autojump_clock, tmp_path, how):
    from types import SimpleNamespace

    from simulator import Crash, DamageStore, Program, Propose, Restart, run_program

    mode = Streaming.on_disk(tmp_path, chunk_size=1024)
    async with Cluster.open(nodes=3, seed=5, state_machine=WorkflowExecutor, snapshot_mode=mode,
                            compaction=CompactionPolicy(every=10, keep_entries=2)) as cluster:
        program = Program((Crash(node=FOLLOWER), DamageStore(node=FOLLOWER, how=how), Restart(node=FOLLOWER),
                           Propose(count=3)), liveness_within=30.0)
        await run_program(SimpleNamespace(cluster=cluster), program, warmup=25)
        kinds = [e.kind for e in cluster.trace.records if e.node == FOLLOWER]
        assert "snapshot_lost" in kinds and "snapshot_recovered" in kinds


def test_the_property_search_draws_store_damage():
    from hypothesis import given, settings

    from simulator import DamageStore, fault_programs

    seen = []

    @settings(max_examples=400, database=None, derandomize=True)
    @given(fault_programs())
    def draw(program):
        seen.extend(step for step in program.steps if isinstance(step, DamageStore))

    draw()
    assert {step.how for step in seen} == {"delete_metadata", "delete_data", "truncate_data", "flip_byte"}


def test_an_embedded_snapshot_is_checked_against_its_digest_before_it_is_decoded():
    from simulator.cluster.snapshot_handling import NodeSnapshots
    from simulator.raft import ConfState, MemStorageWithSnapshot, Snapshot, SnapshotMetadata
    from simulator.raft.snapshot_storage import snapshot_digest
    from transports import Embedded
    from transports.streaming import TransferRegistry

    source = WorkflowExecutor()
    source.apply(1, WorkflowExecutor.start("wf", ["a"], b"payload"))
    data = b"".join(source.snapshot_chunks(1))
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    metadata = SnapshotMetadata(index=1, term=1, conf_state=ConfState(voters=(1, 2, 3)), size=len(data),
                                digest=snapshot_digest(data), snapshot_id="1-1-x")
    decoded = []

    class Recording(WorkflowExecutor):
        def restore_from_snapshot(self, chunks):
            decoded.append(True)
            super().restore_from_snapshot(chunks)

    class Runner:
        node_id = 2
        storage = MemStorageWithSnapshot.new_with_conf_state(ConfState(voters=(1, 2, 3)))
        make_state_machine = Recording

    handling = NodeSnapshots(Runner(), Embedded(), TransferRegistry())
    with pytest.raises(ValueError, match=f"snapshot 1 data digest is {snapshot_digest(bytes(flipped))}"):
        handling.install_from_ready(Snapshot(metadata, bytes(flipped)))
    assert decoded == [] and Runner.storage.snapshot_metadata.index == 0


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_requested_snapshot_is_fetched_even_when_the_nodes_log_already_covers_it(
        autojump_clock, tmp_path, seed):
    """Found by hunting with DamageStore: nothing was proposed while the node was down, so the
    leader's snapshot lay below the node's commit index and its offer went to Raft without
    data, which Raft (having requested it) installed: the data must be fetched first."""
    from types import SimpleNamespace

    from simulator import Crash, DamageStore, Program, Propose, Restart, Wait, run_program

    mode = Streaming.on_disk(tmp_path, chunk_size=1024)
    async with Cluster.open(nodes=3, seed=seed, state_machine=WorkflowExecutor, snapshot_mode=mode,
                            compaction=CompactionPolicy(every=10, keep_entries=2)) as cluster:
        steps = (Crash(node=2), DamageStore(node=2, how="flip_byte"), Restart(node=2), Wait(seconds=0.5),
                 Crash(node=3), Restart(node=3), Propose(count=2))
        await run_program(SimpleNamespace(cluster=cluster), Program(steps, liveness_within=30.0), warmup=22)
        kinds = [e.kind for e in cluster.trace.records if e.node == 2]
        assert "snapshot_lost" in kinds and "snapshot_recovered" in kinds
