"""Leader change during transfer: the leader crashes while sending a snapshot; the new leader finishes the job.

Three nodes take about five chunks' worth of workflows (5 MiB unless
``--chunk-size`` says otherwise) and each compacts its log at the same
index, so all three hold the same snapshot. A fourth node joins and the
leader starts sending it that snapshot; in the middle, the leader crashes.

What to watch: the survivors notice the silence and elect a new
leader. The newcomer is still a learner; it keeps what it has and waits
for whoever leads next. In streaming mode the new leader holds the very
same snapshot, so when the newcomer asks it for the rest, it continues the
same transfer from the newcomer's verified offset (chunk ``--param k=...``
was the last the old leader sent); at most one chunk is sent twice. In
embedded mode the crash came after the whole snapshot had been handed to
the network as one message, which still arrives; the newcomer installs it,
and the new leader, which knows nothing of it, finds out from the
newcomer's reply to its first append and goes on from there.

On pysyncobj (``--engine pysyncobj``) the snapshot travels in pieces
inside append_entries; the leader crashes right after piece ``k``. Each
node compacts when pysyncobj decides, pysyncobj has no learners (the
newcomer votes at once), and nothing of a partial snapshot is kept: the
new leader starts the same snapshot again from its first piece. Compare
the three with ``raftsim compare leader_change_during_transfer --engine
pysyncobj``.

Finally the old leader restarts and catches up as a follower (on
pysyncobj it restarts empty: its default keeps nothing on disk).
"""


import trio

from simulator import CompactionPolicy, Param
from transports import Constant, LinkConfig

WORKFLOWS = 20
CLUSTER = {
    "nodes": 3,
    "link": LinkConfig(latency=Constant(0.001), bandwidth=12_500_000),
    # Every node snapshots after the 20 workflows (and the first leader's empty entry).
    "compaction": CompactionPolicy(every=WORKFLOWS + 1),
}
PARAMS = {"k": Param(2, minimum=1, help="the chunk after which the leader crashes")}
ENGINES = ("native", "pysyncobj")


async def scenario(sim):
    cluster = sim.cluster
    chunk_size = sim.chunk_size
    payload = sim.workflow_payload(chunks=5, workflows=WORKFLOWS)  # a snapshot a little under five chunks
    pysyncobj = sim.options.engine == "pysyncobj"
    leader = await cluster.wait_for_leader()
    sim.say(f"n{leader} leads; the cluster takes {WORKFLOWS} workflows of {payload:,} bytes each")
    # pysyncobj gzips its snapshot: repeated bytes would shrink to kilobytes; random ones do not.
    await sim.load_workflows(WORKFLOWS, payload, random_bytes=pysyncobj)
    await cluster.wait_caught_up()
    if pysyncobj:
        indexes = [cluster.storage(n).snapshot_metadata.index for n in cluster.node_ids]
        sim.say(f"each pysyncobj node compacts when it decides to: their snapshots are at {indexes}")
    else:
        ids = {cluster.storage(n).snapshot_metadata.snapshot_id for n in cluster.node_ids}
        sim.say(f"all {len(cluster.node_ids)} nodes hold the same snapshot: {len(ids) == 1}")

    newcomer = max(cluster.node_ids) + 1
    if pysyncobj:
        cluster.fail_piece(sim.params["k"], "crash_sender", to=newcomer)
        await cluster.add_node(timeout=60)
        [crash] = cluster.trace.of_kind("piece_fault")
        sim.say(f"n{leader} crashed right after piece {sim.params['k']} of its snapshot (at {crash.time:.3f} s); "
                f"pysyncobj has no learners, n{newcomer} already votes, and n{newcomer} with the two "
                f"survivors is a majority of four")
    elif sim.mode == "streaming":
        cluster.fail_chunk(sim.params["k"], "crash_sender", to=newcomer)
        await cluster.add_node(timeout=60)
        if cluster.is_up(leader):
            # A policy that moves the snapshot in fewer pieces (KRaft's one response, Zeebe's
            # one file) never reaches chunk k: the story's premise does not happen.
            sim.say(f"n{leader} never sent a chunk {sim.params['k']}: under this policy the snapshot "
                    f"crossed in fewer pieces, so the planned crash did not happen")
    else:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cluster.add_node)
            await sim.wait_for_transfer(newcomer)
            [message] = [r for r in cluster.trace.of_kind("send")
                         if (r.get("to"), r.get("type")) == (newcomer, "snapshot")]
            await trio.sleep((message.get("arrives") - cluster.now()) / 2)  # half way there
            cluster.crash(leader)
            sim.say(f"n{leader} had handed the whole snapshot to the network as one message at "
                    f"{message.time:.3f} s; it is still on its way and arrives at {message.get('arrives'):.3f} s")
    await cluster.wait_caught_up(timeout=30)

    new_leader = cluster.leader_id()
    transfers = [t for t in cluster.transfers() if t.to == newcomer]
    for transfer in transfers:
        sim.say(f"transfer of snapshot {transfer.snapshot_index} to n{newcomer}: {transfer.outcome.value}, "
                f"last sent by n{transfer.from_}, {transfer.bytes_sent:,} bytes sent for "
                f"{transfer.size:,}, {transfer.resent_bytes:,} of them twice")
    sim.check(new_leader not in (None, leader), f"n{new_leader} took over from n{leader}")
    sim.check([t.outcome.value for t in transfers] == ["installed"],
              f"n{newcomer} installed the snapshot, once")
    if pysyncobj:
        sim.say(f"pysyncobj restarts the snapshot from its first piece: n{newcomer} kept no verified "
                f"offset to resume from, so what n{leader} had sent crossed the wire twice")
        sim.check(transfers[0].from_ == new_leader and transfers[0].retries == 1
                  and 0 < transfers[0].resent_bytes < transfers[0].size,
                  f"n{new_leader} sent the same snapshot again from its first piece")
    elif sim.mode == "streaming":
        sim.check(transfers[0].from_ == new_leader and transfers[0].resent_bytes <= chunk_size,
                  f"n{new_leader} finished the same transfer, re-sending at most one chunk")

    if not cluster.is_up(leader):
        cluster.restart(leader)
    await cluster.check_liveness(within=30)
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              f"all {len(cluster.node_ids)} nodes, the restarted n{leader} too, hold the same state")
