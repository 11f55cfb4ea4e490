"""Mid-transfer failure: the snapshot stream is cut after chunk k, and resumes from the verified offset.

A fourth node joins and needs a snapshot of about five chunks of 1 MiB
(``--chunk-size`` changes the chunk; the snapshot grows with it). Right
after chunk ``k`` arrives (``--param k=...``, 3 by default) the stream is
cut: every later chunk is lost until the receiver asks again.

What to watch: the newcomer has written and verified (checksum) every
chunk it received, so it knows exactly how far it got. After a second
without progress it asks the leader again, from that verified offset, not
from the start. At most the one chunk that was in flight crosses the wire
twice: compare "re-sent" with the chunk size in the summary.

Why streaming only: in embedded mode the snapshot is a single Raft
message. There is no chunk k, no verified offset, nothing partial to keep:
a message cut on the way is lost whole, and all of it must cross the wire
again.
"""

from simulator import WorkflowExecutor
from transports import Constant, LinkConfig

CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001), bandwidth=12_500_000)}
PARAMS = {"k": 3}
MODES = ("streaming",)
WORKFLOWS = 20


async def scenario(sim):
    cluster = sim.cluster
    k = sim.params["k"]
    chunk_size = cluster.snapshot_mode.chunk_size
    # A snapshot a little under max(5, k + 2) chunks: chunk k is never the last.
    payload = max(0, max(5, k + 2) * chunk_size // WORKFLOWS - 128)
    leader = await cluster.wait_for_leader()
    sim.say(f"n{leader} leads; the cluster takes {WORKFLOWS} workflows of {payload:,} bytes each")
    for number in range(WORKFLOWS):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch"], bytes([number]) * payload),
                              timeout=60)
    await cluster.wait_caught_up()
    cluster.compact(leader)

    newcomer = max(cluster.node_ids) + 1
    cluster.fail_chunk(k, "cut", to=newcomer)
    await cluster.add_node(timeout=60)
    await cluster.wait_caught_up()

    [transfer] = [t for t in cluster.transfers() if t.to == newcomer]
    retries = [r for r in cluster.trace.of_kind("transfer_retry") if r.node == newcomer]
    sim.say(f"n{newcomer} got {transfer.size:,} bytes for {transfer.bytes_sent:,} sent: "
            f"{transfer.resent_bytes:,} re-sent after {transfer.retries} "
            f"retr{'y' if transfer.retries == 1 else 'ies'}; "
            f"the whole snapshot again would have been {transfer.size:,}")
    sim.check(transfer.outcome.value == "installed", f"n{newcomer} installed the snapshot")
    sim.check([r.get("offset") for r in retries] == [k * chunk_size],
              f"n{newcomer} asked again from its verified offset, after chunk {k}")
    sim.check(transfer.resent_bytes <= chunk_size, "at most one chunk crossed the wire twice")
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              "every node holds the same state")
