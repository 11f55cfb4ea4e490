"""Snapshot transfer on a real ``Cluster``: Embedded against Streaming.

A 4th node joins a 3-node cluster whose log was compacted, so it can only
catch up by installing a snapshot. The tests check how the bytes travel in
each mode (inside the Raft message, or out of band in checksummed chunks),
what a bandwidth-limited link does to heartbeats, that every chunk fault is
survived by resuming from the verified offset (re-sending at most one chunk),
restarts on a ``DiskSnapshotStore``, leader changes and compaction during a
transfer, timeouts, the per-sender concurrency limit, memory, forged stream
messages, a 100 MB+ snapshot, and that both modes end in the same state.

Every test runs on virtual time (``autojump_clock``) with a fixed seed. The
common scenario (``loaded_cluster``): seed 1, 100 workflows of 200 bytes,
compaction every 50 entries; node 3 leads and snapshot 100 is 24 495 bytes,
six chunks of ``CHUNK`` bytes.
"""

from __future__ import annotations

import math
import signal
from contextlib import asynccontextmanager

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import Cluster, CompactionPolicy, WorkflowExecutor, run
from transports import (
    Constant,
    Embedded,
    InMemoryClusterTransport,
    LinkConfig,
    SnapshotChunk,
    SnapshotRequest,
    Streaming,
)
from simulator.snapshots import DiskSnapshotStore
from simulator.snapshots.progress_trailer import TRAILER_BYTES
from transports.streaming import Outcome, chunk_checksum

CHUNK = 4096
MIB = 1024 * 1024
#: The id ``add_node`` gives the first node to join a 3-node cluster.
NEW = 4
LATENCY = 0.001
#: Wall-clock seconds before a stuck run fails instead of hanging the suite.
WATCHDOG_SECONDS = 120  # generous: only a hung run gets near it


class WatchdogExpired(BaseException):
    """A run did not return. A BaseException, so hypothesis does not shrink (re-run) it."""


@pytest.fixture(autouse=True)
def watchdog():
    """Fail a test whose run never returns (e.g. timers re-armed forever within one
    virtual instant: no trio deadline can interrupt that). Not a timing assertion."""

    def expire(signum, frame):
        raise WatchdogExpired(
            f"still running after {WATCHDOG_SECONDS} s of wall time; the run is stuck "
            "(an endless loop within one virtual instant?)"
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(WATCHDOG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- helpers -------------------------------------------------------------------------


def start(number: int, payload: bytes = b"") -> bytes:
    return WorkflowExecutor.start(f"wf-{number}", ["fetch", "build"], payload)


async def load(proposer, count: int, *, payload_size: int = 200, first: int = 0) -> None:
    """``count`` workflows, one after the other, through ``proposer`` (cluster or client)."""
    for number in range(first, first + count):
        await proposer.propose(start(number, bytes([number % 251]) * payload_size), timeout=30)


@asynccontextmanager
async def loaded_cluster(*, workflows: int = 100, payload_size: int = 200, seed: int = 1, **options):
    """A 3-node cluster that applied ``workflows`` workflows and compacted its log."""
    options.setdefault("compaction", CompactionPolicy(every=50, keep_entries=5))
    async with Cluster.open(nodes=3, seed=seed, **options) as cluster:
        await cluster.wait_for_leader()
        await load(cluster, workflows, payload_size=payload_size)
        await cluster.wait_caught_up()
        yield cluster


def digests(cluster, node_ids=None) -> dict[int, str]:
    ids = cluster.node_ids if node_ids is None else node_ids
    return {node_id: cluster.state_machine(node_id).digest() for node_id in ids}


async def assert_converged(cluster, node_ids=None) -> None:
    """Once the nodes applied the leader's commit index, they hold one state."""
    await cluster.wait_caught_up(node_ids, timeout=30)
    found = digests(cluster, node_ids)
    assert len(set(found.values())) == 1, found


def transfers_to(cluster, node_id: int):
    return [progress for progress in cluster.transfers() if progress.to == node_id]


def only_transfer_to(cluster, node_id: int):
    found = transfers_to(cluster, node_id)
    assert len(found) == 1, found
    return found[0]


def node_events(cluster, node_id: int, *kinds: str):
    return [record for record in cluster.trace.of_kind(*kinds) if record.node == node_id]


def sends(cluster, src: int, dst: int, msg_type: str):
    return [
        record
        for record in cluster.trace.of_kind("send")
        if record.get("from") == src and record.get("to") == dst and record.get("type") == msg_type
    ]


def by_kind(cluster, src: int, dst: int) -> dict[str, tuple[int, int]]:
    """Link ``src -> dst``: message kind -> (messages, bytes) sent."""
    link = cluster.transport.statistics().link(src, dst)
    return {kind: (messages, size) for kind, messages, size in link.by_kind}


def snapshot_index(cluster, node_id: int) -> int:
    return cluster.storage(node_id).snapshot_metadata.index


def snapshot_id(cluster, node_id: int) -> str:
    return cluster.storage(node_id).snapshot_metadata.snapshot_id


def installed_indexes(cluster, node_id: int) -> list[int]:
    return [record.get("index") for record in node_events(cluster, node_id, "snapshot_installed")]


async def wait_streamed(cluster, node_id: int, at_least: int) -> None:
    """Until ``at_least`` bytes of a transfer to ``node_id`` are verified."""
    await cluster.wait_until(
        lambda: any(p.bytes_done >= at_least for p in transfers_to(cluster, node_id)),
        timeout=30,
        what=f"{at_least} bytes streamed to node {node_id}",
    )


def assert_accounted(progress) -> None:
    """Every byte sent is either new or counted as resent."""
    assert progress.bytes_sent == progress.size + progress.resent_bytes, progress


# -- both modes: a node joins and installs the snapshot -----------------------------------


async def test_embedded_join_carries_the_whole_snapshot_inside_the_raft_message(autojump_clock):
    transport = InMemoryClusterTransport.with_embedded_snapshots(seed=1)
    async with loaded_cluster(transport=transport) as cluster:
        assert cluster.snapshot_mode == Embedded()
        leader = cluster.leader_id()
        index = snapshot_index(cluster, leader)
        assert await cluster.add_node() == NEW

        progress = only_transfer_to(cluster, NEW)
        assert (progress.mode, progress.snapshot_index) == ("embedded", index)
        assert progress.outcome is Outcome.INSTALLED
        size = progress.size
        assert size == cluster.storage(leader).snapshot_metadata.size
        assert installed_indexes(cluster, NEW) == [index]
        await assert_converged(cluster)
        # The snapshot message itself is at least as big as the snapshot.
        [message] = sends(cluster, leader, NEW, "snapshot")
        assert message.get("size") >= size
        kinds = by_kind(cluster, leader, NEW)
        assert kinds["snapshot"][0] == 1 and kinds["snapshot"][1] >= size
        assert "snapshot_chunk" not in kinds


async def test_streaming_join_sends_metadata_in_raft_and_exactly_ceil_size_over_chunk_chunks(autojump_clock):
    transport = InMemoryClusterTransport.with_streaming_snapshots(seed=1, chunk_size=CHUNK)
    async with loaded_cluster(transport=transport) as cluster:
        assert isinstance(cluster.snapshot_mode, Streaming)
        assert cluster.snapshot_mode.chunk_size == CHUNK
        leader = cluster.leader_id()
        index = snapshot_index(cluster, leader)
        assert await cluster.add_node() == NEW

        progress = only_transfer_to(cluster, NEW)
        assert (progress.mode, progress.snapshot_index) == ("streaming", index)
        assert progress.outcome is Outcome.INSTALLED
        size = progress.size
        assert size > 5 * CHUNK  # several chunks, or the test says little
        assert (progress.bytes_done, progress.bytes_sent) == (size, size)
        assert (progress.resent_bytes, progress.retries) == (0, 0)
        assert installed_indexes(cluster, NEW) == [index]
        await assert_converged(cluster)
        # The Raft message carries metadata only; the bytes travel as chunks.
        [message] = sends(cluster, leader, NEW, "snapshot")
        assert message.get("size") < 1024
        kinds = by_kind(cluster, leader, NEW)
        assert kinds["snapshot"][0] == 1 and kinds["snapshot"][1] < 1024
        chunks, chunk_bytes = kinds["snapshot_chunk"]
        assert chunks == math.ceil(size / CHUNK)
        assert chunk_bytes >= size
        offsets = [record.get("offset") for record in sends(cluster, leader, NEW, "snapshot_chunk")]
        assert offsets == list(range(0, size, CHUNK))


# -- bandwidth: what a snapshot does to a heartbeat on the same link ------------------------

BANDWIDTH = 200_000  # bytes per second on the leader -> new node link


@asynccontextmanager
async def joined_over_slow_link(mode):
    async with loaded_cluster(seed=2, workflows=50, payload_size=2000, snapshot_mode=mode) as cluster:
        leader = cluster.leader_id()
        cluster.set_link(leader, NEW, LinkConfig(latency=Constant(LATENCY), bandwidth=BANDWIDTH))
        await cluster.add_node()
        await assert_converged(cluster)
        yield cluster, leader


async def test_embedded_snapshot_delays_a_heartbeat_behind_the_whole_snapshot(autojump_clock):
    async with joined_over_slow_link(Embedded()) as (cluster, leader):
        [snapshot] = sends(cluster, leader, NEW, "snapshot")
        busy_until = snapshot.time + snapshot.get("size") / BANDWIDTH
        queued = [h for h in sends(cluster, leader, NEW, "heartbeat") if snapshot.time <= h.time < busy_until]
        assert queued, "no heartbeat was sent while the snapshot occupied the link"
        for heartbeat in queued:
            assert heartbeat.get("arrives") >= busy_until, heartbeat
        # Far longer than a chunk would have made it wait.
        assert queued[0].get("arrives") - queued[0].time > 10 * (CHUNK + 64) / BANDWIDTH


async def test_streaming_heartbeat_waits_at_most_about_one_chunk(autojump_clock):
    async with joined_over_slow_link(Streaming(chunk_size=2 * CHUNK)) as (cluster, leader):
        chunks = sends(cluster, leader, NEW, "snapshot_chunk")
        assert len(chunks) > 10
        largest_chunk = max(chunk.get("size") for chunk in chunks)
        during = [
            h for h in sends(cluster, leader, NEW, "heartbeat") if chunks[0].time <= h.time <= chunks[-1].time
        ]
        assert len(during) >= 3, "heartbeats should be sent while the snapshot streams"
        for heartbeat in during:
            waited = heartbeat.get("arrives") - heartbeat.time
            assert waited <= (largest_chunk + heartbeat.get("size")) / BANDWIDTH + LATENCY + 1e-9, heartbeat


# -- resumability: every chunk fault ------------------------------------------------------

#: action -> (fault options, retries expected, (trace kind on the new node, offset) or None).
#: The fault hits chunk 3: the first two (2 * CHUNK bytes) are verified by then.
CHUNK_FAULTS = {
    # Chunk 3 is lost: the receiver, idle, asks again from the two chunks it has.
    "drop": ({}, 1, ("transfer_retry", 2 * CHUNK)),
    # Chunk 3 arrives, then the stream is cut: ask again after three chunks.
    "cut": ({}, 1, ("transfer_retry", 3 * CHUNK)),
    # Chunk 3 fails its checksum: rejected, asked again at once.
    "corrupt": ({}, 1, ("chunk_rejected", 2 * CHUNK)),
    # The receiver dies as chunk 3 is sent (it is lost) and resumes its partial.
    "crash_receiver": ({"restart_after": 0.5}, 0, ("transfer_resumed", 2 * CHUNK)),
    # Chunk 3 arrives, the sender dies; the receiver asks again once it is back.
    "crash_sender": ({"restart_after": 0.5}, 1, ("transfer_retry", 3 * CHUNK)),
    # Late by less than the idle timeout: nothing to retry.
    "delay": ({"delay": 0.5}, 0, None),
    # The copy is recognised and ignored.
    "duplicate": ({}, 0, None),
}


@pytest.mark.parametrize("action", list(CHUNK_FAULTS))
async def test_chunk_fault_is_survived_by_resuming_and_resending_at_most_one_chunk(autojump_clock, action):
    options, retries, evidence = CHUNK_FAULTS[action]
    async with loaded_cluster(snapshot_mode=Streaming(chunk_size=CHUNK, chunks_in_flight=1)) as cluster:
        cluster.fail_chunk(3, action, **options)
        await cluster.add_node(timeout=60)
        await cluster.wait_caught_up(timeout=30)

        progress = only_transfer_to(cluster, NEW)
        assert progress.outcome is Outcome.INSTALLED
        assert progress.bytes_done == progress.size
        assert progress.resent_bytes <= CHUNK
        assert_accounted(progress)
        assert progress.retries == retries
        assert installed_indexes(cluster, NEW) == [progress.snapshot_index]
        await assert_converged(cluster)
        if evidence is not None:
            kind, offset = evidence
            records = node_events(cluster, NEW, kind)
            assert [record.get("offset") for record in records] == [offset], records
        else:
            assert node_events(cluster, NEW, "transfer_retry", "chunk_rejected", "transfer_resumed") == []
            assert progress.resent_bytes == 0


async def test_corrupt_chunk_is_rejected_for_its_checksum(autojump_clock):
    async with loaded_cluster(snapshot_mode=Streaming(chunk_size=CHUNK)) as cluster:
        cluster.fail_chunk(3, "corrupt")
        await cluster.add_node()
        [rejected] = node_events(cluster, NEW, "chunk_rejected")
        assert "checksum" in rejected.get("reason")
        assert cluster.runners[NEW].snapshots.endpoint.counters["rejected_chunk"] == 1


async def test_duplicated_chunk_is_counted_and_ignored(autojump_clock):
    async with loaded_cluster(snapshot_mode=Streaming(chunk_size=CHUNK)) as cluster:
        cluster.fail_chunk(3, "duplicate")
        await cluster.add_node()
        counters = cluster.runners[NEW].snapshots.endpoint.counters
        assert counters["duplicate_chunk"] == 1
        assert counters["rejected_chunk"] == 0


async def test_delayed_chunk_arrives_late_and_is_accepted_without_a_retry(autojump_clock):
    async with loaded_cluster(snapshot_mode=Streaming(chunk_size=CHUNK)) as cluster:
        cluster.fail_chunk(3, "delay", delay=0.5)
        await cluster.add_node()
        third = sends(cluster, cluster.leader_id(), NEW, "snapshot_chunk")[2]
        assert third.get("offset") == 2 * CHUNK
        assert third.get("arrives") - third.time >= 0.5
        assert only_transfer_to(cluster, NEW).retries == 0


# -- restarts with a DiskSnapshotStore ----------------------------------------------------


async def test_receiver_restarted_on_disk_store_resumes_from_its_recorded_offset(autojump_clock, tmp_path):
    async with loaded_cluster(snapshot_mode=Streaming.on_disk(tmp_path, chunk_size=CHUNK)) as cluster:
        index = snapshot_index(cluster, cluster.leader_id())
        folder = tmp_path / f"node-{NEW}"
        partial = folder / f"snapshot-{index:016}.partial"
        progress_file = folder / f"snapshot-{index:016}.partial.json"
        cluster.fail_chunk(3, "crash_receiver")  # no restart: we look at the disk first
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.add_node)
            await cluster.wait_until(
                lambda: NEW in cluster.runners and not cluster.is_up(NEW), timeout=30, what="receiver crash"
            )
            assert partial.exists() and progress_file.exists()
            # The offset is in the partial's trailer (one fsync per chunk); a store opened on the folder reads it.
            [found] = DiskSnapshotStore(folder, chunk_size=CHUNK).partial_transfers()
            recorded = found.offset
            assert recorded == 2 * CHUNK  # chunk 3 was lost with the receiver
            assert partial.stat().st_size == found.size + TRAILER_BYTES
            await trio.sleep(0.5)
            cluster.restart(NEW)

        [reopened] = node_events(cluster, NEW, "store_reopened")
        assert reopened.get("snapshots") == [] and reopened.get("partials") == [index]
        assert reopened.get("problems") == 0
        [resumed] = node_events(cluster, NEW, "transfer_resumed")
        assert resumed.get("offset") == recorded
        progress = only_transfer_to(cluster, NEW)
        assert progress.outcome is Outcome.INSTALLED
        assert progress.resent_bytes <= CHUNK
        assert_accounted(progress)
        assert installed_indexes(cluster, NEW) == [index]
        # The partial became the complete snapshot.
        assert not partial.exists() and not progress_file.exists()
        assert (folder / f"snapshot-{index:016}.bin").exists()
        await assert_converged(cluster)


async def test_sender_restarted_on_disk_store_reopens_it_and_the_transfer_completes(autojump_clock, tmp_path):
    async with loaded_cluster(snapshot_mode=Streaming.on_disk(tmp_path, chunk_size=CHUNK)) as cluster:
        leader = cluster.leader_id()
        index = snapshot_index(cluster, leader)
        cluster.fail_chunk(3, "crash_sender", restart_after=0.5)
        await cluster.add_node(timeout=60)
        await cluster.wait_caught_up(timeout=30)

        [reopened] = node_events(cluster, leader, "store_reopened")
        assert index in reopened.get("snapshots")
        assert reopened.get("problems") == 0
        progress = only_transfer_to(cluster, NEW)
        assert progress.outcome is Outcome.INSTALLED
        assert progress.resent_bytes <= CHUNK
        assert installed_indexes(cluster, NEW) == [index]
        await assert_converged(cluster)


# -- leader change and newer snapshots during a transfer ------------------------------------

#: Slow enough that a transfer of snapshot 100 lasts about a second.
SLOW = Streaming(chunk_size=CHUNK, rate_limit=20_000)


async def test_new_leader_holding_the_same_snapshot_continues_the_same_transfer(autojump_clock):
    async with loaded_cluster(snapshot_mode=SLOW) as cluster:
        leader = cluster.leader_id()
        other = min(n for n in cluster.node_ids if n != leader)
        assert snapshot_id(cluster, other) == snapshot_id(cluster, leader)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.add_node)
            await wait_streamed(cluster, NEW, 2 * CHUNK)
            cluster.transfer_leader(other)
            await cluster.wait_until(lambda: cluster.leader_id() == other, timeout=10, what="new leader")

        # DESIGN section 6 step 4: one transfer, continued from the verified offset.
        progress = only_transfer_to(cluster, NEW)
        assert progress.snapshot_id == snapshot_id(cluster, leader)
        assert (progress.from_, progress.outcome) == (other, Outcome.INSTALLED)
        assert progress.resent_bytes <= CHUNK
        assert_accounted(progress)
        [resumed] = node_events(cluster, NEW, "transfer_resumed")
        assert resumed.get("source") == other
        assert resumed.get("offset") >= 2 * CHUNK and resumed.get("offset") % CHUNK == 0
        assert node_events(cluster, NEW, "transfer_started")[0].get("source") == leader
        assert installed_indexes(cluster, NEW) == [progress.snapshot_index]
        await assert_converged(cluster)


async def test_leader_crash_mid_transfer_new_leader_continues_the_same_transfer(autojump_clock):
    async with loaded_cluster(snapshot_mode=SLOW) as cluster:
        leader = cluster.leader_id()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.add_node)
            await wait_streamed(cluster, NEW, 2 * CHUNK)
            cluster.crash(leader)

        new_leader = cluster.leader_id()
        assert new_leader not in (None, leader)
        progress = only_transfer_to(cluster, NEW)
        assert (progress.from_, progress.outcome) == (new_leader, Outcome.INSTALLED)
        assert progress.resent_bytes <= CHUNK
        assert_accounted(progress)
        assert node_events(cluster, NEW, "transfer_resumed")[-1].get("source") == new_leader
        up = cluster.up_nodes()
        await assert_converged(cluster, up)
        cluster.restart(leader)
        await cluster.wait_caught_up(timeout=30)
        await assert_converged(cluster)


async def test_new_leader_with_a_newer_snapshot_supersedes_the_transfer_and_removes_its_partial(
    autojump_clock, tmp_path
):
    mode = Streaming.on_disk(tmp_path, chunk_size=CHUNK, rate_limit=SLOW.rate_limit)
    async with loaded_cluster(snapshot_mode=mode) as cluster:
        leader = cluster.leader_id()
        old_index = snapshot_index(cluster, leader)
        other = min(n for n in cluster.node_ids if n != leader)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.add_node)
            await wait_streamed(cluster, NEW, 2 * CHUNK)
            await load(cluster.client(1), 30, first=100)
            new_index = cluster.compact(other)
            assert new_index > old_index
            cluster.transfer_leader(other)
            await cluster.wait_until(lambda: cluster.leader_id() == other, timeout=10, what="new leader")

        old, new = transfers_to(cluster, NEW)
        assert (old.snapshot_index, old.outcome) == (old_index, Outcome.SUPERSEDED)
        assert old.bytes_done < old.size
        assert (new.snapshot_index, new.from_, new.outcome) == (new_index, other, Outcome.INSTALLED)
        assert [r.get("index") for r in node_events(cluster, NEW, "transfer_superseded")] == [old_index]
        assert installed_indexes(cluster, NEW) == [new_index]
        store = cluster.store(NEW)
        assert store.partial_transfers() == []
        assert not store.has_snapshot(old_index)
        assert sorted(path.name for path in (tmp_path / f"node-{NEW}").iterdir()) == [
            f"snapshot-{new_index:016}.bin", f"snapshot-{new_index:016}.meta.json"
        ]
        await assert_converged(cluster)


async def test_leader_compacting_again_supersedes_the_transfer_of_its_older_snapshot(autojump_clock):
    # The issue: a transfer whose snapshot's index was superseded is aborted cleanly
    # and reported to Raft, which offers the newer snapshot.
    async with loaded_cluster(snapshot_mode=SLOW) as cluster:
        leader = cluster.leader_id()
        old_index = snapshot_index(cluster, leader)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.add_node)
            await wait_streamed(cluster, NEW, CHUNK)
            await load(cluster.client(1), 30, first=100)
            new_index = cluster.compact(leader)
            assert new_index > old_index and only_transfer_to(cluster, NEW).outcome is Outcome.IN_PROGRESS

        old = next(p for p in transfers_to(cluster, NEW) if p.snapshot_index == old_index)
        assert old.outcome in (Outcome.SUPERSEDED, Outcome.ABORTED), old
        assert old_index not in installed_indexes(cluster, NEW)
        assert installed_indexes(cluster, NEW)[-1] >= new_index
        assert not any(p.index == old_index for p in cluster.store(NEW).partial_transfers())
        await assert_converged(cluster)


async def test_compaction_deleting_the_streamed_snapshot_aborts_the_transfer_and_raft_sends_the_newer(
    autojump_clock,
):
    # The leader's store keeps two snapshots: compacting twice deletes the one streaming.
    async with loaded_cluster(snapshot_mode=Streaming(chunk_size=1024, rate_limit=10_000)) as cluster:
        leader = cluster.leader_id()
        old_index = snapshot_index(cluster, leader)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.add_node)
            await wait_streamed(cluster, NEW, 1024)
            client = cluster.client(1)
            await load(client, 20, first=100)
            cluster.compact(leader)
            await load(client, 20, first=120)
            newest = cluster.compact(leader)
            assert not cluster.store(leader).has_snapshot(old_index)
            assert only_transfer_to(cluster, NEW).outcome is Outcome.IN_PROGRESS

        failed = [r for r in node_events(cluster, leader, "transfer_failed") if r.get("index") == old_index]
        assert [r.get("to") for r in failed] == [NEW]
        assert sends(cluster, leader, NEW, "snapshot_abort"), "the receiver was not told"
        old = next(p for p in transfers_to(cluster, NEW) if p.snapshot_index == old_index)
        assert old.outcome is Outcome.ABORTED
        # Raft offered the snapshot again, now the newest one, and it was installed.
        offered = [
            r.get("index") for r in node_events(cluster, leader, "snapshot_sent") if r.get("to") == NEW
        ]
        assert offered[0] == old_index and offered[-1] == newest
        assert old_index not in installed_indexes(cluster, NEW)
        assert installed_indexes(cluster, NEW)[-1] == newest
        assert cluster.store(NEW).partial_transfers() == []
        await assert_converged(cluster)


# -- timeouts, concurrency ------------------------------------------------------------------


async def test_slow_transfer_that_keeps_progressing_is_never_timed_out(autojump_clock):
    # 48 chunks of 512 bytes, one every ~0.26 s: about 12 s in all, progress every 0.26 s.
    mode = Streaming(chunk_size=512, rate_limit=2_000, idle_timeout=0.5, max_idle_retries=2)
    async with loaded_cluster(snapshot_mode=mode) as cluster:
        await cluster.add_node(timeout=120)
        progress = only_transfer_to(cluster, NEW)
        duration = progress.updated_at - progress.started_at
        # Far longer than the receiver's whole patience without progress.
        assert duration > 10 * mode.idle_timeout * mode.max_idle_retries
        assert (progress.outcome, progress.retries, progress.resent_bytes) == (Outcome.INSTALLED, 0, 0)
        assert cluster.trace.of_kind("transfer_retry", "transfer_failed", "transfer_aborted") == []
        await assert_converged(cluster)


async def test_one_transfer_per_sender_at_a_time_streams_joining_nodes_in_turn(autojump_clock):
    mode = Streaming(chunk_size=CHUNK, rate_limit=40_000, max_concurrent_per_sender=1)
    async with loaded_cluster(snapshot_mode=mode) as cluster:
        leader = cluster.leader_id()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.add_node)
            await wait_streamed(cluster, NEW, CHUNK)
            nursery.start_soon(cluster.add_node)  # node 5 asks while node 4 streams

        assert cluster.node_ids == [1, 2, 3, 4, 5]
        outcomes = [p.outcome for p in transfers_to(cluster, 4) + transfers_to(cluster, 5)]
        assert outcomes == [Outcome.INSTALLED] * 2
        to_4 = sends(cluster, leader, 4, "snapshot_chunk")
        to_5 = sends(cluster, leader, 5, "snapshot_chunk")
        assert to_4 and to_5
        assert to_4[-1].time <= to_5[0].time, "the two transfers overlapped"
        assert cluster.runners[leader].snapshots.endpoint.counters["request_queued"] == 1
        await assert_converged(cluster)


# -- memory -----------------------------------------------------------------------------------


async def join_with_big_snapshot(mode):
    """A ~3 MB snapshot sent to a joining node; returns (transfer, snapshot memory, leader)."""
    async with loaded_cluster(seed=2, workflows=30, payload_size=100_000, snapshot_mode=mode,
                              compaction=CompactionPolicy(every=30, keep_entries=2)) as cluster:
        leader = cluster.leader_id()
        await cluster.add_node()
        await assert_converged(cluster)
        return only_transfer_to(cluster, NEW), cluster.snapshot_memory(), leader


async def test_embedded_receiver_holds_the_whole_snapshot_in_memory(autojump_clock):
    progress, memory, _ = await join_with_big_snapshot(Embedded())
    assert progress.size > 2 * MIB
    assert memory[NEW][1] >= progress.size


async def test_streaming_receiver_and_sender_hold_at_most_two_chunks_in_memory(autojump_clock):
    chunk_size = 64 * 1024
    progress, memory, leader = await join_with_big_snapshot(Streaming(chunk_size=chunk_size))
    assert progress.size > 2 * MIB
    assert 0 < memory[NEW][1] <= 2 * chunk_size
    assert 0 < memory[leader][1] <= 2 * chunk_size


async def test_embedded_wire_copy_raises_the_senders_peak_by_a_whole_snapshot(autojump_clock):
    plain, plain_memory, plain_leader = await join_with_big_snapshot(Embedded())
    wired, wired_memory, wired_leader = await join_with_big_snapshot(Embedded(wire_copy=True))
    assert plain_leader == wired_leader and plain.size == wired.size
    assert wired_memory[wired_leader][1] >= plain_memory[plain_leader][1] + plain.size


# -- bad input: forged stream messages ----------------------------------------------------------


def forged_chunk(cluster, *, offset: int, data: bytes, snapshot_id: str | None = None) -> SnapshotChunk:
    """A chunk from the leader to the new node for its current transfer, unless told otherwise."""
    offer = cluster.runners[NEW].snapshots.endpoint.incoming.offer
    return SnapshotChunk(
        from_=offer.source,
        to=NEW,
        snapshot_index=offer.index,
        snapshot_term=offer.term,
        snapshot_id=snapshot_id or offer.snapshot_id,
        offset=offset,
        total_size=offer.size,
        is_final=offset + len(data) == offer.size,
        checksum=chunk_checksum(data),
        data=data,
    )


@asynccontextmanager
async def forging_mid_transfer():
    """Yields (cluster, receiver endpoint) while snapshot 100 streams slowly to the new node;
    afterwards the transfer must have completed and everything must agree."""
    async with loaded_cluster(snapshot_mode=SLOW) as cluster:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.add_node)
            await wait_streamed(cluster, NEW, 2 * CHUNK)
            yield cluster, cluster.runners[NEW].snapshots.endpoint
        progress = only_transfer_to(cluster, NEW)
        assert progress.outcome is Outcome.INSTALLED
        assert installed_indexes(cluster, NEW) == [progress.snapshot_index]
        await load(cluster, 5, first=100)  # still live
        await cluster.check_liveness()
        await assert_converged(cluster)


async def test_forged_chunk_at_a_wrong_offset_is_rejected_as_a_gap(autojump_clock):
    async with forging_mid_transfer() as (cluster, endpoint):
        verified = endpoint.incoming.verified_offset
        cluster.transport.send(forged_chunk(cluster, offset=verified + CHUNK, data=b"z" * CHUNK))
        await trio.sleep(0.01)
        assert endpoint.counters["rejected_chunk"] == 1
        assert endpoint.incoming.rejections == {"gap": 1}
        assert endpoint.incoming.verified_offset == verified
        [rejected] = node_events(cluster, NEW, "chunk_rejected")
        assert rejected.get("reason") == f"chunk at offset {verified} expected, got {verified + CHUNK}"


async def test_forged_chunk_of_an_unknown_snapshot_is_ignored_as_stray(autojump_clock):
    async with forging_mid_transfer() as (cluster, endpoint):
        verified = endpoint.incoming.verified_offset
        cluster.transport.send(
            forged_chunk(cluster, offset=verified, data=b"z" * CHUNK, snapshot_id="9-999-forged")
        )
        await trio.sleep(0.01)
        assert endpoint.counters["stray_chunk"] == 1
        assert endpoint.counters["rejected_chunk"] == 0
        assert endpoint.incoming.verified_offset == verified


async def test_forged_chunk_with_more_bytes_than_total_size_is_rejected(autojump_clock):
    async with forging_mid_transfer() as (cluster, endpoint):
        verified = endpoint.incoming.verified_offset
        size = endpoint.incoming.offer.size
        cluster.transport.send(forged_chunk(cluster, offset=verified, data=b"z" * (size - verified + 1)))
        await trio.sleep(0.01)
        assert endpoint.counters["rejected_chunk"] == 1
        assert endpoint.incoming.rejections == {"too long": 1}
        assert endpoint.incoming.verified_offset == verified
        [rejected] = node_events(cluster, NEW, "chunk_rejected")
        assert rejected.get("reason") == f"chunk ends at byte {size + 1}, more than total_size {size}"


async def test_forged_request_for_a_snapshot_the_leader_does_not_hold_is_refused(autojump_clock):
    async with forging_mid_transfer() as (cluster, endpoint):
        leader = cluster.leader_id()
        follower = min(n for n in (1, 2, 3) if n != leader)
        cluster.transport.send(
            SnapshotRequest(from_=follower, to=leader, snapshot_index=999, snapshot_term=1,
                            snapshot_id="1-999-forged", offset=0)
        )
        await trio.sleep(0.01)
        [refused] = node_events(cluster, leader, "transfer_refused")
        assert (refused.get("to"), refused.get("index")) == (follower, 999)
        assert "999 is no longer held" in refused.get("reason")
        [abort] = sends(cluster, leader, follower, "snapshot_abort")
        assert abort.get("reason") == refused.get("reason")
        # The real transfer to the new node goes on untouched.
        assert endpoint.incoming is not None and endpoint.incoming.retries == 0


# -- 100 MB+ ----------------------------------------------------------------------------------


async def test_node_joins_by_streaming_a_snapshot_over_100_mb(autojump_clock):
    chunk_size = 4 * MIB
    async with Cluster.open(
        nodes=3,
        seed=3,
        snapshot_mode=Streaming(chunk_size=chunk_size),
        record_messages=False,
        link=LinkConfig(latency=Constant(LATENCY), bandwidth=125_000_000),
        compaction=CompactionPolicy(every=50),
    ) as cluster:
        leader = await cluster.wait_for_leader()
        for number in range(110):
            await cluster.propose(start(number, number.to_bytes(4, "big") * (MIB // 4)), timeout=30)
        await cluster.add_node(timeout=60)
        await cluster.wait_caught_up(timeout=60)

        progress = only_transfer_to(cluster, NEW)
        assert progress.size > 100_000_000
        assert progress.outcome is Outcome.INSTALLED
        assert (progress.bytes_done, progress.resent_bytes) == (progress.size, 0)
        assert by_kind(cluster, leader, NEW)["snapshot_chunk"][0] == math.ceil(progress.size / chunk_size)
        assert installed_indexes(cluster, NEW) == [progress.snapshot_index]
        assert cluster.snapshot_memory()[NEW][1] <= 2 * chunk_size
        await assert_converged(cluster)


# -- Embedded and Streaming agree ------------------------------------------------------------------


def final_digests(mode, seed: int, workflows: int, payload_sizes: list[int]) -> dict[int, str]:
    """Run one workload in ``mode``: load, join a node by snapshot, load more; every node's digest."""

    async def scenario():
        async with Cluster.open(nodes=3, seed=seed, snapshot_mode=mode,
                                compaction=CompactionPolicy(every=4, keep_entries=1)) as cluster:
            await cluster.wait_for_leader()
            for number in range(workflows):
                size = payload_sizes[number % len(payload_sizes)]
                await cluster.propose(start(number, bytes([number % 251]) * size))
            await cluster.add_node(timeout=60)
            for number in range(workflows, workflows + 3):
                await cluster.propose(start(number, b"after"))
            await cluster.wait_caught_up(timeout=30)
            assert installed_indexes(cluster, NEW), f"node {NEW} caught up without a snapshot in {mode}"
            assert only_transfer_to(cluster, NEW).outcome is Outcome.INSTALLED
            return digests(cluster)

    return run(scenario)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**16),
    workflows=st.integers(6, 30),
    payload_sizes=st.lists(st.integers(0, 5000), min_size=1, max_size=4),
    chunk_size=st.integers(256, 16 * 1024),
)
def test_embedded_and_streaming_give_every_node_the_same_state(seed, workflows, payload_sizes, chunk_size):
    embedded = final_digests(Embedded(), seed, workflows, payload_sizes)
    streaming = final_digests(Streaming(chunk_size=chunk_size), seed, workflows, payload_sizes)
    assert embedded == streaming
    assert sorted(embedded) == [1, 2, 3, 4] and len(set(embedded.values())) == 1


async def test_embedded_snapshot_lost_with_its_receiver_is_reported_and_sent_again(autojump_clock):
    """The leader hears that the embedded snapshot never arrived (FAILURE) and offers it again."""
    link = LinkConfig(latency=Constant(0.001), bandwidth=1_000_000)
    async with loaded_cluster(snapshot_mode=Embedded(), link=link, payload_size=20_000) as cluster:
        leader = cluster.leader_id()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: cluster.add_node(timeout=60))
            newcomer = max(cluster.runners) + 1
            await cluster.wait_until(
                lambda: any(r.kind == "snapshot_sent" and r.get("to") == newcomer
                            for r in cluster.trace.records),
                timeout=30, what="the snapshot on its way",
            )
            cluster.crash(newcomer)
            # Down until after the 2 MB message would have arrived: it is dropped.
            await trio.sleep(3)
            cluster.restart(newcomer)
        sent = [r for r in cluster.trace.of_kind("snapshot_sent") if r.get("to") == newcomer]
        assert len(sent) >= 2
        assert cluster.statistics(leader).event("snapshot_failures_reported") >= 1
        await assert_converged(cluster)
