"""Large snapshot: a new node needs a big snapshot; watch memory and the link while it travels.

The cluster holds ``--param size=...`` bytes of workflow state (8 MiB by
default; try ``size=64MiB``), the leader compacts its log, and a fourth
node joins. It can only catch up by receiving the whole snapshot over a
100 Mbit/s link, which moves about 12 MB per second.

What to watch in embedded mode: the snapshot is one Raft message. The
newcomer holds all of it in memory at once, and while it crosses the link
nothing else can: a heartbeat the leader sends meanwhile waits behind it
for most of a second (a heartbeat normally takes a millisecond). A large
enough snapshot on a slow enough link holds heartbeats back for longer
than the election timeout (1 to 2 s here): a voter in the newcomer's place
would believe the leader dead and try to start an election.

What to watch in streaming mode: the data moves in chunks (1 MiB unless
``--chunk-size`` says otherwise). Memory stays flat at a chunk or two,
the transfer progresses steadily, and a heartbeat waits at most about one
chunk. Compare both with ``raftsim compare large_snapshot``.
"""

import random

from simulator import Param, WorkflowExecutor
from transports import Constant, LinkConfig

BANDWIDTH = 12_500_000  # bytes per second: 100 Mbit/s
LATENCY = 0.001
CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(LATENCY), bandwidth=BANDWIDTH)}
ENGINES = ("native", "pysyncobj")
PARAMS = {"size": Param(8 * 1024 * 1024, minimum=1, help="bytes of workflow state")}
#: Also on node processes over gRPC: ``raftsim run NAME --transport grpc``.
NETWORKS = ("simulated", "grpc")
#: State is loaded in workflows of up to this many bytes each (payload and bookkeeping).
PIECE = 256 * 1024
#: About what the state machine keeps per workflow besides its payload.
BOOKKEEPING = 128


def mib(count: int) -> str:
    return f"{count / 2**20:.1f} MiB"


def sends(cluster, src: int, dst: int, msg_type: str):
    return [r for r in cluster.trace.of_kind("send")
            if (r.get("from"), r.get("to"), r.get("type")) == (src, dst, msg_type)]


async def scenario(sim):
    cluster = sim.cluster
    size = sim.params["size"]
    leader = await cluster.wait_for_leader()
    pieces = max(1, -(-size // PIECE))
    sim.say(f"n{leader} leads; the cluster takes {pieces} workflows carrying {mib(size)} of state")
    for number in range(pieces):
        share = min(PIECE, size - number * PIECE)
        payload = bytes([number % 251]) * max(0, share - BOOKKEEPING)
        if sim.options.engine == "pysyncobj":
            # pysyncobj gzips its snapshot: repeated bytes would shrink to kilobytes; random ones do not.
            payload = random.Random(number).randbytes(len(payload))
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch"], payload), timeout=60)
    await cluster.wait_caught_up(timeout=60)
    leader = cluster.leader_id()
    cluster.compact(leader)

    transfer_time = size / BANDWIDTH
    newcomer = await cluster.add_node(timeout=60 + 10 * transfer_time)
    await cluster.wait_caught_up(timeout=60)
    [transfer] = [t for t in cluster.transfers() if t.to == newcomer]
    peak = cluster.snapshot_memory()[newcomer][1]
    if sim.network == "grpc":
        # A real network records no message's send and arrival: the transfer is told by its time,
        # and memory by the process's peak resident memory (it cannot tell snapshot bytes apart).
        seconds = max(transfer.updated_at - transfer.started_at, 1e-3)
        sim.say(f"the snapshot ({mib(transfer.size)}) took {seconds:.3f} s to arrive over loopback gRPC between "
                f"processes ({transfer.size / seconds / 1e6:,.0f} MB/s); "
                f"n{newcomer}'s process grew by {mib(peak)} at most (its peak resident memory)")
        sim.check(transfer.outcome.value == "installed"
                  and len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
                  f"n{newcomer} installed the snapshot and holds the same state as the others")
        return

    sim.say(f"the snapshot ({mib(transfer.size)}) took {transfer.updated_at - transfer.started_at:.3f} s "
            f"to arrive; n{newcomer} held at most {mib(peak)} of it in memory at once")

    # Heartbeats the leader sent the newcomer while the snapshot was on its way.
    pysyncobj = sim.options.engine == "pysyncobj"
    carrier = "snapshot_piece" if pysyncobj else "snapshot" if sim.mode == "embedded" else "snapshot_chunk"
    carried = sends(cluster, leader, newcomer, carrier)
    start, end = carried[0].time, carried[-1].get("arrives")
    heartbeats = [h for h in sends(cluster, leader, newcomer, "heartbeat") if start <= h.time < end]
    worst = max((h.get("arrives") - h.time for h in heartbeats), default=0.0)
    sim.say(f"{len(heartbeats)} heartbeats were sent to n{newcomer} meanwhile; the unluckiest "
            f"took {worst:.3f} s to arrive (an idle link delivers one in {LATENCY:.3f} s)")

    if pysyncobj:
        ticks = len({record.time for record in carried})
        sim.say(f"pysyncobj sent the snapshot (its state pickled, then gzipped: larger than the state for "
                f"random bytes) as {len(carried)} pieces inside append_entries, in {ticks} "
                f"tick{'' if ticks == 1 else 's'}, none acknowledged: on the link they queue like one message")
        sim.check(peak >= transfer.size, f"n{newcomer} held the whole snapshot in memory at once")
        sim.check(worst >= 0.5 * transfer_time,
                  "a heartbeat waited behind the snapshot's pieces for most of its transfer time")
    elif sim.mode == "embedded":
        sim.check(peak >= transfer.size, f"n{newcomer} held the whole snapshot in memory at once")
        sim.check(worst >= 0.5 * transfer_time,
                  "a heartbeat waited behind the snapshot for most of its transfer time")
    else:
        chunk_size = cluster.snapshot_mode.chunk_size
        arrivals = [r for r in cluster.trace.of_kind("deliver")
                    if (r.get("to"), r.get("type")) == (newcomer, "snapshot_chunk")]
        done = [(r.get("offset") + r.get("bytes"), r.time) for r in arrivals]
        milestones = [next((b, t) for b, t in done if 4 * b >= quarter * transfer.size)
                      for quarter in (1, 2, 3, 4)]
        steps = ", ".join(f"{100 * b // transfer.size}% at {t:.3f} s" for b, t in milestones)
        sim.say(f"the data came in {len(arrivals)} chunks, steadily: {steps}")
        sim.check(peak <= 2 * chunk_size, f"n{newcomer} never held more than two chunks in memory")
        sim.check(worst <= (chunk_size + 1024) / BANDWIDTH + LATENCY,
                  "no heartbeat waited longer than one chunk takes on the link")
    sim.check(transfer.outcome.value == "installed"
              and len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              f"n{newcomer} installed the snapshot and holds the same state as the others")
