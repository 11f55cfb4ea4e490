"""A full disk fails one operation with a named reason; the cluster goes on (issue 15, item 2).

Whole clusters on disk stores whose disk fills up: the leader's own
compaction, the pruning of old snapshots, and a follower receiving a
streamed snapshot. Each failure is an event naming ``ENOSPC``; nothing
escapes the node, and the work is done once there is room again.
"""

from __future__ import annotations

import errno

from simulator import Cluster, CompactionPolicy
from simulator.machines.state_machines import WorkflowExecutor
from simulator.snapshots import DiskSnapshotStore
from transports import Streaming


class Disk:
    """Makes chosen methods of one store raise ENOSPC while ``full``."""

    def __init__(self, monkeypatch, store: DiskSnapshotStore, *names: str) -> None:
        self.full = True
        self.failures = 0
        for name in names:
            real = getattr(store, name)

            def failing(*args, _real=real, **kwargs):
                if self.full:
                    self.failures += 1
                    raise OSError(errno.ENOSPC, "No space left on device")
                return _real(*args, **kwargs)

            monkeypatch.setattr(store, name, failing)


async def _propose(cluster, first: int, count: int) -> None:
    for number in range(first, first + count):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["a"], b"p" * 100))


def _events(cluster, node: int, kind: str) -> list[dict]:
    return [dict(record.fields) for record in cluster.trace.records if record.node == node and record.kind == kind]


def _open(tmp_path, **options):
    return Cluster.open(nodes=3, seed=21, state_machine=WorkflowExecutor,
                        snapshot_mode=Streaming.on_disk(tmp_path, chunk_size=512),
                        compaction=CompactionPolicy(every=10, keep_entries=2), **options)


async def test_the_leaders_compaction_on_a_full_disk_keeps_the_log_and_succeeds_later(
        autojump_clock, tmp_path, monkeypatch):
    async with _open(tmp_path) as cluster:
        leader = await cluster.wait_for_leader()
        disk = Disk(monkeypatch, cluster.store(leader), "save_snapshot")
        await _propose(cluster, 0, 25)

        failed = _events(cluster, leader, "compaction_failed")
        assert failed and all("No space left on device" in event["reason"] for event in failed)
        assert len(failed) <= 3  # retried once per round of entries, not at every step
        assert cluster.storage(leader).snapshot_metadata.index == 0
        assert cluster.storage(leader).first_index() == 1  # nothing discarded without a snapshot

        disk.full = False
        await _propose(cluster, 25, 15)
        assert cluster.storage(leader).snapshot_metadata.index > 0
        await cluster.check_liveness(within=10)


async def test_pruning_old_snapshots_on_a_full_disk_loses_nothing(autojump_clock, tmp_path, monkeypatch):
    async with _open(tmp_path) as cluster:
        leader = await cluster.wait_for_leader()
        store = cluster.store(leader)
        Disk(monkeypatch, store, "compact_snapshots")
        await _propose(cluster, 0, 45)

        storage = cluster.storage(leader)
        assert storage.prune_failures > 0
        assert store.has_snapshot(storage.snapshot_metadata.index)
        assert len(store.list_snapshots()) > storage.keep_snapshots  # kept, not lost
        await cluster.check_liveness(within=10)


async def test_a_follower_whose_disk_fills_during_a_transfer_is_caught_up_once_there_is_room(
        autojump_clock, tmp_path, monkeypatch):
    async with _open(tmp_path) as cluster:
        leader = await cluster.wait_for_leader()
        follower = next(node for node in cluster.node_ids if node != leader)
        cluster.crash(follower)
        await _propose(cluster, 0, 30)  # the leader compacts: the follower needs a snapshot
        cluster.restart(follower)
        disk = Disk(monkeypatch, cluster.store(follower), "_append_partial")
        await cluster.wait_until(lambda: disk.failures >= 2, timeout=10, what="the full disk refusing chunks")

        rejected = _events(cluster, follower, "chunk_rejected")
        assert any("No space left on device" in event["reason"] for event in rejected)
        await _propose(cluster, 30, 3)  # the cluster goes on meanwhile

        disk.full = False
        await cluster.check_liveness(within=30)
        assert cluster.state_machine(follower).digest() == cluster.state_machine(leader).digest()
