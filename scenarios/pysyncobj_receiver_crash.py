"""Receiver crash mid-transfer, on either engine: what does a failure cost native Embedded, Streaming and pysyncobj?

A cluster holds ``--param size=...`` bytes of workflow state (8 MiB by
default; the README's figures use ``size=50MB``) in incompressible
payloads, and every node compacts its log. A fourth node joins and can
only catch up by snapshot over a 100 Mbit/s link. Half way through the
expected transfer time the newcomer crashes; it restarts half a second
after the whole snapshot would have arrived, so what was on the wire to
it is lost.

Run it on each engine and compare: ``raftsim compare pysyncobj_receiver_crash
--engine pysyncobj``. What to watch: native Streaming keeps the chunks the
newcomer verified and resumes from its verified offset; native Embedded
sends the whole snapshot again; pysyncobj keeps nothing on disk by default,
so the restarted node is empty and the leader starts its in-band transfer
from the first piece. pysyncobj also pickles the state with protocol 2,
which stores bytes above 0x7f as two, before gzip: its snapshot is larger
than the state for random data.
"""

import random

import trio

from simulator import Param, WorkflowExecutor
from transports import Constant, LinkConfig

BANDWIDTH = 12_500_000  # bytes per second: 100 Mbit/s
ENGINES = ("native", "pysyncobj")
CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001), bandwidth=BANDWIDTH),
           "record_messages": False}
PARAMS = {"size": Param(8 * 1024 * 1024, minimum=1), "piece": Param(256 * 1024, minimum=129)}


def mib(count: int) -> str:
    return f"{count / 2**20:.1f} MiB"


async def scenario(sim):
    cluster = sim.cluster
    size, piece = sim.params["size"], sim.params["piece"]
    leader = await cluster.wait_for_leader()
    pieces = max(1, -(-size // piece))
    sim.say(f"n{leader} leads; the cluster takes {pieces} workflows carrying {mib(size)} of random bytes")
    for number in range(pieces):
        share = min(piece, size - number * piece)
        payload = random.Random(number).randbytes(max(0, share - 128))
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch"], payload), timeout=120)
    await cluster.wait_caught_up(timeout=120)
    for node_id in cluster.node_ids:
        cluster.compact(node_id)
    await trio.sleep(1)

    newcomer = max(cluster.node_ids) + 1
    joined_at = cluster.now()
    transfer_time = size / BANDWIDTH
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: cluster.add_node(timeout=120 + 20 * transfer_time))
        await sim.wait_for_transfer(newcomer, timeout=60)
        await trio.sleep(transfer_time / 2)
        sim.say(f"half way through the expected {transfer_time:.2f} s, n{newcomer} crashes; it stays "
                f"down until half a second after the whole snapshot would have arrived")
        cluster.crash(newcomer)
        await trio.sleep(transfer_time / 2 + 0.5)
        cluster.restart(newcomer)
    await cluster.wait_caught_up(timeout=60)
    caught_up = cluster.now() - joined_at

    transfers = [t for t in cluster.transfers() if t.to == newcomer]
    sent = sum(t.bytes_sent for t in transfers)
    resent = sum(t.resent_bytes for t in transfers)
    largest = max(t.size for t in transfers)
    peak = cluster.snapshot_memory()[newcomer][1]
    sim.say(f"snapshot {mib(largest)}: {mib(sent)} sent, {mib(resent)} of it again after the crash; "
            f"n{newcomer} caught up {caught_up:.2f} s after it started and held at most {mib(peak)} "
            f"of snapshot in memory")
    sim.check(any(t.outcome.value == "installed" for t in transfers), f"n{newcomer} installed a snapshot")
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              "every node holds the same state")
