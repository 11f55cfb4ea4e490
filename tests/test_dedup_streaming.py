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
