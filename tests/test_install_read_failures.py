"""A node whose own store fails while it installs a snapshot: retried, then a clean stop and restart.

Found by a 10,000-seed sweep (issue 21): a read failing part way through an
install escaped the node and crashed the whole run. A failing read is now
tried again; if the store keeps failing, the node stops, as a real server
would, and is restarted a second later from its storage; the leader then
catches it up. The run goes on and every node ends with the same state.
"""

from __future__ import annotations

import pytest
import trio

from simulator import Cluster, FaultyStore, MemorySnapshotStore, load_state, run
from transports import Streaming

CHUNK = 4096


async def join_with_failing_reads(failures: int):
    stores = {}

    def store(node_id):
        stores[node_id] = FaultyStore(MemorySnapshotStore(chunk_size=CHUNK), name=f"n{node_id}")
        return stores[node_id]

    async with Cluster.open(nodes=3, seed=0, snapshot_mode=Streaming(store=store, chunk_size=CHUNK)) as cluster:
        leader = await load_state(cluster, 64 * 1024)
        cluster.compact(leader)
        newcomer = max(cluster.node_ids) + 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: cluster.add_node(timeout=60))
            await cluster.wait_until(lambda: newcomer in stores, timeout=10, what="the newcomer's store")
            stores[newcomer].fail_reads(failures)
        await cluster.wait_caught_up(timeout=60)
        retried = sum(1 for r in cluster.trace.records if r.node == newcomer and r.kind == "install_read_failed")
        stopped = [r for r in cluster.trace.of_kind("fault") if r.get("fault") == "fail_stop"]
        digests = {cluster.state_machine(node).digest() for node in cluster.node_ids}
        return retried, stopped, digests


def test_a_read_that_fails_once_is_tried_again():
    retried, stopped, digests = run(join_with_failing_reads, 1)
    assert retried == 1 and stopped == [] and len(digests) == 1


@pytest.mark.parametrize("failures", [3, 5])
def test_a_store_that_keeps_failing_stops_the_node_which_restarts_and_catches_up(failures):
    retried, stopped, digests = run(join_with_failing_reads, failures)
    assert retried == failures
    assert len(stopped) >= 1 and "could not read snapshot" in stopped[0].get("reason")
    assert len(digests) == 1
