"""Dedup in a real simulated run: ``Streaming(dedup=True)`` sends a follower only what it lacks.

A follower cut off for a while holds an older snapshot of its own; when it
comes back the leader's log has been compacted past it, so it needs the
leader's newer snapshot. With dedup it asks for the manifest, copies the
pieces it holds from its own store and is sent only the missing ranges; the
snapshot it installs is verified whole, so the state ends equal either way.
"""

from __future__ import annotations

import random

import pytest

from simulator import Cluster, CompactionPolicy, WorkflowExecutor
from transports import Streaming


def payload(number: int) -> bytes:
    # Varied bytes: content-defined cuts need content (a run of zeros has no cut points).
    return random.Random(number).randbytes(1500)


async def behind_by_a_compaction(dedup: bool, *, changed: int = 30) -> dict:
    mode = Streaming(chunk_size=16 * 1024, dedup=dedup)
    async with Cluster.open(nodes=3, seed=3, snapshot_mode=mode,
                            compaction=CompactionPolicy(every=50, keep_entries=5)) as cluster:
        leader = await cluster.wait_for_leader()
        for number in range(150):
            await cluster.propose(WorkflowExecutor.start(f"wf-{number:04}", ["a"], payload(number)), timeout=30)
        await cluster.wait_caught_up()
        follower = next(node for node in cluster.node_ids if node != leader)
        held = cluster.store(follower).latest()
        assert held is not None  # it snapshotted its own state: the older snapshot dedup can use
        cluster.isolate(follower)
        for number in range(150, 150 + changed):
            await cluster.propose(WorkflowExecutor.start(f"wf-{number:04}", ["a"], payload(number)), timeout=30)
        for _ in range(60 - changed):  # no new state: only moves the log past the follower
            await cluster.propose(WorkflowExecutor.start("wf-0000", ["a"]), timeout=30)
        assert cluster.storage(leader).first_index() > held.index + 1
        cluster.heal()
        await cluster.wait_caught_up()
        link = cluster.transport.statistics().link(leader, follower)
        by_kind = {kind: size for kind, _, size in link.by_kind}
        installed = [record for record in cluster.trace.of_kind("snapshot_installed") if record.node == follower]
        assert installed, "the follower must have caught up by snapshot"
        return {
            "chunk_bytes": by_kind.get("snapshot_chunk", 0),
            "manifest_bytes": by_kind.get("snapshot_manifest", 0),
            "size": installed[-1].get("size"),
            "digests": {cluster.state_machine(node).digest() for node in cluster.node_ids},
            "dedup": [dict(record.fields)
                      for record in cluster.trace.of_kind("transfer_dedup") if record.node == follower],
        }


async def test_a_follower_a_compaction_behind_is_sent_only_what_it_lacks(autojump_clock):
    plain = await behind_by_a_compaction(dedup=False)
    deduped = await behind_by_a_compaction(dedup=True)
    assert len(plain["digests"]) == 1 and deduped["digests"] == plain["digests"]  # equal state, both ways
    assert plain["manifest_bytes"] == 0 and plain["chunk_bytes"] >= plain["size"]
    [dedup] = deduped["dedup"]
    assert dedup["held_bytes"] > deduped["size"] // 2  # most of the new snapshot was already there
    # Fewer bytes on the link, manifest included: at most what was not held, plus chunk framing.
    sent = deduped["chunk_bytes"] + deduped["manifest_bytes"]
    assert sent < plain["chunk_bytes"] // 2
    assert deduped["chunk_bytes"] < deduped["size"] - dedup["held_bytes"] + 64 * 1024


def test_dedup_needs_a_sender_to_cut_the_manifest():
    from simulator.snapshots import MemorySnapshotStore

    with pytest.raises(ValueError, match="dedup=True needs the leader to stream"):
        Streaming(dedup=True, pull=MemorySnapshotStore())
    assert Streaming().dedup is False  # off by default: golden traces stay as they are


def test_a_ranged_request_stops_the_sender_at_its_end_and_a_bad_end_is_refused():
    from transports.streaming import SnapshotRequest
    from transports.streaming.protocol import OutgoingTransfer

    transfer = OutgoingTransfer(me=1, to=2, snapshot_index=5, snapshot_term=1, snapshot_id="s", total_size=100,
                                chunk_size=30, window=10, last_activity_at=0.0)

    def request(offset, end):
        return SnapshotRequest(from_=2, to=1, snapshot_index=5, snapshot_term=1, snapshot_id="s",
                               offset=offset, end=end)

    assert transfer.on_request(request(10, 50), 0.0) is None
    sent = []
    while transfer.wants_chunk():
        length = min(30, 50 - transfer.next_offset)  # what the sender's reader cuts at the range's end
        sent.append(transfer.make_chunk(bytes(length)))
    assert [(chunk.offset, len(chunk.data), chunk.is_final) for chunk in sent] == [(10, 30, False), (40, 10, False)]
    assert transfer.on_request(request(50, 50), 0.0) == "end must lie in (50, 100], got 50"
    assert transfer.on_request(request(50, 101), 0.0) == "end must lie in (50, 100], got 101"


def test_the_receiver_copies_held_runs_and_asks_for_the_rest():
    from simulator.snapshots import MemorySnapshotStore, SnapshotChunkError, digest_of
    from simulator.snapshots.dedup import HeldCopier, HeldPieces, manifest

    old = b"".join(random.Random(n).randbytes(3000) for n in range(60))
    new = old[:60_000] + random.Random(99).randbytes(5000) + old[60_000:]  # an insertion in the middle
    store = MemorySnapshotStore(chunk_size=8192)
    store.save_snapshot(1, old, term=1)
    pieces = manifest([new], average=4096)
    copier = HeldCopier(store, HeldPieces.of(store, 1, average=4096), pieces, len(new))
    writer = store.open_writer(2, term=1, size=len(new), digest=digest_of(new), snapshot_id="new")
    sent = 0
    while writer.offset < len(new):
        copier.copy_held(writer, 8192)
        if writer.offset == len(new):
            break
        end = copier.missing_until(writer.offset)
        assert end > writer.offset
        sent += end - writer.offset
        writer.write(writer.offset, new[writer.offset : end])  # what the sender's chunks carry
    assert writer.commit().digest == digest_of(new)
    assert store.read_snapshot(2) == new
    assert copier.copied_bytes + sent == len(new)
    assert sent < len(new) * 0.2  # only the pieces around the insertion were sent
    with pytest.raises(SnapshotChunkError, match="pieces must follow each other"):
        HeldCopier(store, HeldPieces.of(store, 1), tuple(reversed(pieces)), len(new))
