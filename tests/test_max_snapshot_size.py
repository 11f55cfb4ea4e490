"""The maximum snapshot size: 10 GiB by default (the seed's promise), a clear refusal beyond it.

A store refuses a larger snapshot when it is saved (counted as the chunks
stream in; nothing is left behind) and when a transfer of one is offered to
it (before a byte is received). In a cluster, a leader whose state is over
its store's limit keeps its log and says why; a receiver whose limit is
smaller refuses the offer with the reason in the trace.
"""

from __future__ import annotations

import os

import pytest

from simulator import Cluster, CompactionPolicy, DiskSnapshotStore, MemorySnapshotStore, WorkflowExecutor
from simulator.cluster.client import LivenessError
from simulator.snapshots import DEFAULT_MAX_SNAPSHOT_SIZE, SnapshotTooLargeError, digest_of
from transports import Embedded, Streaming


def test_the_default_limit_is_the_seeds_ten_gib(tmp_path):
    assert DEFAULT_MAX_SNAPSHOT_SIZE == 10 * 1024**3
    store = DiskSnapshotStore(tmp_path)
    assert store.max_snapshot_size == DEFAULT_MAX_SNAPSHOT_SIZE == MemorySnapshotStore().max_snapshot_size
    assert DiskSnapshotStore(tmp_path, max_snapshot_size=5).reopened().max_snapshot_size == 5
    with pytest.raises(ValueError, match="max_snapshot_size must be an integer >= 0"):
        DiskSnapshotStore(tmp_path, max_snapshot_size=-1)


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_saving_more_than_the_limit_is_refused_and_leaves_nothing(tmp_path, kind):
    store = DiskSnapshotStore(tmp_path / "s", chunk_size=4, max_snapshot_size=10) if kind == "disk" else (
        MemorySnapshotStore(chunk_size=4))
    store.max_snapshot_size = 10
    store.save_snapshot(1, b"x" * 10, term=1)  # exactly the limit is fine
    with pytest.raises(SnapshotTooLargeError, match=r"snapshot 2 is over 12 bytes, more than this store's "
                                                      r"max_snapshot_size 10"):
        store.save_snapshot(2, (b"abcd" for _ in range(5)), term=1)
    assert [snapshot.index for snapshot in store.list_snapshots()] == [1]
    if kind == "disk":
        assert sorted(os.listdir(tmp_path / "s")) == ["snapshot-0000000000000001.bin",
                                                      "snapshot-0000000000000001.meta.json"]


def test_a_transfer_of_more_than_the_limit_is_refused_before_a_byte_arrives(tmp_path):
    store = DiskSnapshotStore(tmp_path, max_snapshot_size=100)
    data = b"y" * 101
    with pytest.raises(SnapshotTooLargeError, match="snapshot 3 of 101 bytes is larger than this store's "
                                                    "max_snapshot_size 100"):
        store.open_writer(3, term=1, size=len(data), digest=digest_of(data), snapshot_id="big")
    assert store.partial_transfers() == [] and os.listdir(tmp_path) == []


async def load(cluster, count: int = 60) -> None:
    await cluster.wait_for_leader()
    for number in range(count):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["a"], bytes(300)), timeout=30)
    await cluster.wait_caught_up()


async def test_a_leader_over_its_limit_keeps_its_log_and_says_why(autojump_clock, tmp_path):
    mode = Streaming.on_disk(tmp_path, chunk_size=4096, max_snapshot_size=4096)
    async with Cluster.open(nodes=3, seed=1, snapshot_mode=mode,
                            compaction=CompactionPolicy(every=50, keep_entries=5)) as cluster:
        await load(cluster)
        failed = cluster.trace.of_kind("compaction_failed")
        assert failed and all("max_snapshot_size 4096" in record.get("reason") for record in failed)
        assert not cluster.trace.of_kind("snapshot_created")
        for node in cluster.node_ids:
            assert cluster.storage(node).first_index() == 1  # nothing compacted away
        await cluster.propose(WorkflowExecutor.start("after", ["a"]), timeout=30)  # the cluster goes on


async def test_a_receiver_with_a_smaller_limit_refuses_the_offer_by_name(autojump_clock, tmp_path):
    def store(node_id: int) -> DiskSnapshotStore:
        limit = 1000 if node_id == 4 else DEFAULT_MAX_SNAPSHOT_SIZE
        return DiskSnapshotStore(tmp_path / f"node-{node_id}", chunk_size=4096, max_snapshot_size=limit)

    async with Cluster.open(nodes=3, seed=1, snapshot_mode=Streaming(store=store, chunk_size=4096),
                            compaction=CompactionPolicy(every=50, keep_entries=5)) as cluster:
        await load(cluster)
        with pytest.raises(LivenessError):  # the newcomer cannot catch up: that is the point
            await cluster.add_node(timeout=5)
        refused = [record for record in cluster.trace.of_kind("transfer_refused") if record.node == 4]
        assert refused
        assert "larger than this store's max_snapshot_size 1000" in refused[0].get("reason")
        assert not cluster.store(4).list_snapshots() and not cluster.store(4).partial_transfers()


async def test_an_embedded_leader_over_the_limit_keeps_its_log_and_says_why(autojump_clock):
    with pytest.raises(ValueError, match="max_snapshot_size must be > 0"):
        Embedded(max_snapshot_size=0)
    assert Embedded().max_snapshot_size == DEFAULT_MAX_SNAPSHOT_SIZE
    async with Cluster.open(nodes=3, seed=1, snapshot_mode=Embedded(max_snapshot_size=4096),
                            compaction=CompactionPolicy(every=50, keep_entries=5)) as cluster:
        await load(cluster)
        failed = cluster.trace.of_kind("compaction_failed")
        assert failed and all(
            "more than Embedded's max_snapshot_size 4096" in record.get("reason") for record in failed
        )
        assert not cluster.trace.of_kind("snapshot_created")
        for node in cluster.node_ids:
            assert cluster.storage(node).first_index() == 1  # nothing compacted away
        await cluster.propose(WorkflowExecutor.start("after", ["a"]), timeout=30)  # the cluster goes on


async def test_an_embedded_snapshot_within_the_limit_is_made_as_before(autojump_clock):
    async with Cluster.open(nodes=3, seed=1, snapshot_mode=Embedded(max_snapshot_size=10**6),
                            compaction=CompactionPolicy(every=50, keep_entries=5)) as cluster:
        await load(cluster)
        assert cluster.trace.of_kind("snapshot_created") and not cluster.trace.of_kind("compaction_failed")
