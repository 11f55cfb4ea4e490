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

In embedded mode the snapshot is a single Raft message. There is no chunk
k, no verified offset, nothing partial to keep: a message lost on the way
is lost whole. (A cut link loses what is sent while it is cut, and this
message was sent before; so here the newcomer itself goes down half way
through the message and comes back right after it would have arrived.)
All of it crosses the wire again.

On pysyncobj (``--engine pysyncobj``) the snapshot travels in 64 KiB
pieces inside append_entries, none acknowledged: the link to the newcomer
is cut both ways for a second right after piece ``k``. pysyncobj keeps
no partial snapshot and learns of no offset: once the link is back it
restarts the snapshot from its first piece. ``raftsim compare
mid_transfer_failure --engine pysyncobj`` puts the three side by side.
"""


import trio

from simulator import Param
from transports import Constant, LinkConfig

CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001), bandwidth=12_500_000)}
PARAMS = {"k": Param(3, minimum=1, help="the chunk after which the stream is cut")}
ENGINES = ("native", "pysyncobj")
#: ``raftsim run mid_transfer_failure`` tells the chunked story unless told otherwise.
DEFAULTS = {"mode": "streaming"}
#: Also on node processes over gRPC: ``raftsim run NAME --transport grpc``.
NETWORKS = ("simulated", "grpc")
#: Over gRPC the stream is cut by the fault proxy; the embedded story times a simulated message.
GRPC_MODES = ("streaming",)
WORKFLOWS = 20


async def scenario(sim):
    cluster = sim.cluster
    k = sim.params["k"]
    engine = "pysyncobj" if sim.options.engine == "pysyncobj" else sim.mode
    chunk_size = sim.chunk_size
    # A snapshot a little under max(5, k + 2) chunks: chunk k is never the last.
    payload = sim.workflow_payload(chunks=max(5, k + 2), workflows=WORKFLOWS)
    leader = await cluster.wait_for_leader()
    sim.say(f"n{leader} leads; the cluster takes {WORKFLOWS} workflows of {payload:,} bytes each")
    # pysyncobj gzips its snapshot: repeated bytes would shrink to kilobytes; random ones do not.
    await sim.load_workflows(WORKFLOWS, payload, random_bytes=engine == "pysyncobj")
    await cluster.wait_caught_up()
    cluster.compact(leader)

    newcomer = max(cluster.node_ids) + 1
    if engine == "streaming":
        cluster.fail_chunk(k, "cut", to=newcomer)
        await cluster.add_node(timeout=60)
    elif engine == "pysyncobj":
        cluster.fail_piece(k, "cut", to=newcomer, cut_for=1.0)
        await cluster.add_node(timeout=60)
        [cut] = cluster.trace.of_kind("piece_fault")
        sim.say(f"right after piece {k} the link n{leader}<->n{newcomer} was cut for a second "
                f"(at {cut.time:.3f} s); pysyncobj went on sending the pieces into the cut link")
    else:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: cluster.add_node(timeout=60))
            await sim.wait_for_transfer(newcomer)
            [message] = [r for r in cluster.trace.of_kind("send")
                         if (r.get("to"), r.get("type")) == (newcomer, "snapshot")]
            arrives = message.get("arrives")
            await trio.sleep((arrives - cluster.now()) / 2)  # half way there
            sim.say(f"the one snapshot message is half way to n{newcomer}; n{newcomer} goes down until "
                    f"just after it would have arrived ({arrives:.3f} s), so it is lost whole")
            cluster.crash(newcomer)
            await trio.sleep(arrives - cluster.now() + 0.01)
            cluster.restart(newcomer)
    await cluster.wait_caught_up()

    transfers = [t for t in cluster.transfers() if t.to == newcomer]
    transfer = transfers[-1]
    sent, resent = sum(t.bytes_sent for t in transfers), sum(t.resent_bytes for t in transfers)
    retries = sum(t.retries for t in transfers)  # a native embedded re-send is not a receiver's retry
    after = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
    sim.say(f"n{newcomer} got {transfer.size:,} bytes for {sent:,} sent: {resent:,} re-sent{after}; "
            f"the whole snapshot again would have been {transfer.size:,}")
    sim.check(transfer.outcome.value == "installed", f"n{newcomer} installed the snapshot")
    if engine == "streaming":
        asked = [r for r in cluster.trace.of_kind("transfer_retry") if r.node == newcomer]
        sim.check([r.get("offset") for r in asked] == [k * chunk_size],
                  f"n{newcomer} asked again from its verified offset, after chunk {k}")
        sim.check(transfer.resent_bytes <= chunk_size, "at most one chunk crossed the wire twice")
    else:
        sim.say(f"check skipped: no verified offset to ask again from ({engine} keeps nothing "
                f"of a snapshot that did not arrive whole)")
        restarted = "pysyncobj restarted from its first piece" if engine == "pysyncobj" else \
            "the leader sent the one message again"
        sim.check(resent >= transfer.size,
                  f"{restarted}: the whole snapshot crossed the wire twice")
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              "every node holds the same state")
