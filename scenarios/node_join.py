"""Node join: a fourth node joins a cluster whose log was compacted, and catches up by snapshot.

Three nodes take a few hundred workflow commands and compact their logs,
so the entries a newcomer would need are gone. A fourth node starts empty,
joins as a learner, and the leader cannot send it the log: it sends its
snapshot instead. The newcomer installs it, replays the few entries after
it, and is promoted to voter.

What to watch: in embedded mode the snapshot travels inside one Raft
message, and the newcomer holds all of it in memory at once. In streaming
mode the Raft message carries only the snapshot's metadata; the newcomer
then asks for the data and receives it in checksummed chunks, holding at
most a chunk or two in memory. Both end in the same state. Try
``--mode streaming --chunk-size 64KiB`` and ``raftsim compare node_join``.

On pysyncobj (``raftsim compare node_join --engine pysyncobj`` adds it as
a third column) the newcomer has no learner stage: it votes as soon as
the membership change applies. The leader sends its snapshot (the state
pickled and gzipped) in pieces inside append_entries, none acknowledged,
and the newcomer holds the whole of it in memory, as in embedded mode.
"""

from simulator import CompactionPolicy, WorkflowExecutor
from transports import Constant, LinkConfig

#: 1 ms latency, 100 Mbit/s: a large snapshot visibly occupies the link.
CLUSTER = {
    "nodes": 3,
    "link": LinkConfig(latency=Constant(0.001), bandwidth=12_500_000),
    "compaction": CompactionPolicy(every=100, keep_entries=20),
}
ENGINES = ("native", "pysyncobj")
PARAMS = {"workflows": 300, "payload": 1024}
#: Also on node processes over gRPC: ``raftsim run NAME --transport grpc``.
NETWORKS = ("simulated", "grpc")


async def scenario(sim):
    cluster = sim.cluster
    workflows, payload = sim.params["workflows"], sim.params["payload"]
    leader = await cluster.wait_for_leader()
    sim.say(f"n{leader} leads; the cluster takes {workflows} workflows of {payload} bytes each")
    for number in range(workflows):
        await cluster.propose(
            WorkflowExecutor.start(f"wf-{number}", ["fetch", "build", "ship"], b"x" * payload)
        )
    await cluster.wait_caught_up()
    leader = cluster.leader_id()
    first_kept = cluster.statistics(leader).first_index
    sim.say(f"the leader's log now starts at entry {first_kept}: "
            f"a new node cannot catch up from the log alone")

    newcomer = await cluster.add_node()
    await cluster.wait_caught_up()
    transfers = [t for t in cluster.transfers() if t.to == newcomer]
    for transfer in transfers:
        sim.say(f"{transfer.mode} transfer n{transfer.from_}->n{newcomer}: snapshot "
                f"{transfer.snapshot_index}, {transfer.size:,} bytes, {transfer.bytes_sent:,} sent, "
                f"{transfer.updated_at - transfer.started_at:.3f} s")
    peak = cluster.snapshot_memory()[newcomer][1]
    sim.say(f"most snapshot bytes n{newcomer} held in memory at once: {peak:,}")
    if sim.options.engine == "pysyncobj":
        sim.say(f"pysyncobj gzips its snapshot: the repeated payload bytes shrink to a few bytes each; "
                f"n{newcomer} was never a learner, it voted once the membership change applied")

    sim.check(any(t.outcome.value == "installed" for t in transfers),
              f"n{newcomer} caught up by installing a snapshot")
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              f"all {len(cluster.node_ids)} nodes hold the same workflow state")
