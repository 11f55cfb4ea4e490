"""Partition during transfer: the receiving node is cut off mid-snapshot, then the network heals.

A fourth node joins and is streamed a snapshot of about five chunks of
1 MiB (``--chunk-size`` changes the chunk; the snapshot grows with it).
Once two chunks are in, the network splits: the newcomer on one side, the
others on the other, for ``--param seconds=...`` (5 by default). Chunks
sent into the partition are lost.

What to watch: both ends keep their place. The newcomer asks again every
second from its verified offset, and nobody answers. The leader hears
nothing for three of those periods, gives up on this transfer and tells
Raft, which will offer the snapshot again once the node is reachable.
Meanwhile the rest of the cluster carries on: it has a majority. When the
network heals, the newcomer continues from the offset it had verified, so
the chunks it already holds never cross the wire again: only the one lost
in the partition does. Try a short partition (``seconds=0.5``) to see the
transfer barely notice, and a long one (``seconds=15``) to see the
newcomer give up too, keep its partial data, and still resume from it
after the heal.

Why streaming only: in embedded mode there is no middle of a transfer for
the partition to land in. The snapshot is one Raft message, delivered whole
or lost whole; nothing partial is kept, so after a loss all of it must
cross the wire again.
"""

import trio

from simulator import WorkflowExecutor
from transports import Constant, LinkConfig

CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001), bandwidth=12_500_000)}
PARAMS = {"seconds": 5}
MODES = ("streaming",)
WORKFLOWS = 20


async def scenario(sim):
    cluster = sim.cluster
    chunk_size = sim.chunk_size
    payload = sim.workflow_payload(chunks=5, workflows=WORKFLOWS)  # a snapshot a little under five chunks
    leader = await cluster.wait_for_leader()
    sim.say(f"n{leader} leads; the cluster takes {WORKFLOWS} workflows of {payload:,} bytes each")
    await sim.load_workflows(WORKFLOWS, payload)
    await cluster.wait_caught_up()
    cluster.compact(leader)

    newcomer = max(cluster.node_ids) + 1
    others = list(cluster.node_ids)

    def received() -> int:
        return max((t.bytes_done for t in cluster.transfers() if t.to == newcomer), default=0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cluster.add_node)
        await sim.wait_for_transfer(newcomer, chunks=2)
        cluster.partition(others, [newcomer])
        await trio.sleep(sim.params["seconds"])
        await cluster.propose(WorkflowExecutor.start("during-partition", ["fetch"]))
        kept = received()
        sim.say(f"the majority side committed a command without n{newcomer}; "
                f"n{newcomer} still holds {kept:,} verified bytes")
        cluster.heal()
    await cluster.wait_caught_up()

    transfers = [t for t in cluster.transfers() if t.to == newcomer]
    installed = [t for t in transfers if t.outcome.value == "installed"]
    requests = [r for r in cluster.trace.of_kind("snapshot_request") if r.node == newcomer]
    resent = sum(t.resent_bytes for t in transfers)
    sim.say(f"n{newcomer} got the {transfers[-1].size:,}-byte snapshot for "
            f"{sum(t.bytes_sent for t in transfers):,} bytes sent, {resent:,} of them twice")
    sim.check(len(installed) == 1, f"n{newcomer} installed the snapshot after the partition healed")
    sim.check(requests[-1].get("offset") == kept > 0,
              f"n{newcomer} asked to continue from its verified offset, not from the start")
    sim.check(resent <= chunk_size, "at most one chunk crossed the wire twice")
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              "every node holds the same state")
