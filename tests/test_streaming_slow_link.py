"""A link slower than one chunk per idle timeout must not make every chunk cross it twice.

Found by the snapshot-liveness checks of issue 22: at 1 MB/s with 1 MiB
chunks, each chunk took longer than the 1 s idle timeout, so the receiver
asked again; the sender re-sent the chunk still on the wire, the duplicate
delayed the next chunk past the timeout, and so on: 100 % of the snapshot
was re-sent. A duplicate now shows the stream is alive (it resets the idle
timer) and times a chunk on the link (the patience grows to fit).
"""

from __future__ import annotations

from simulator import Cluster, load_state, run
from transports import Constant, LinkConfig, Streaming

MIB = 2**20


async def catch_up_over(bandwidth: float, size: int):
    link = LinkConfig(latency=Constant(0.001), bandwidth=bandwidth)
    async with Cluster.open(nodes=3, seed=0, snapshot_mode=Streaming(chunk_size=MIB), link=link) as cluster:
        leader = await load_state(cluster, size, timeout=600)
        cluster.compact(leader)
        newcomer = await cluster.add_node(timeout=120)
        await cluster.wait_caught_up(timeout=60)
        [transfer] = [t for t in cluster.transfers() if t.to == newcomer]
        return transfer


def test_a_slow_link_costs_at_most_the_first_chunk_twice():
    transfer = run(catch_up_over, 1_000_000, 6 * MIB)
    assert transfer.outcome.value == "installed"
    # The first chunk is the only one the receiver cannot time: at most it crosses twice.
    assert transfer.resent_bytes <= MIB, transfer
    assert transfer.retries <= 1, transfer


def test_a_fast_link_re_sends_nothing():
    transfer = run(catch_up_over, 100_000_000, 6 * MIB)
    assert transfer.resent_bytes == 0 and transfer.retries == 0
