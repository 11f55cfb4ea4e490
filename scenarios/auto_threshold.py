"""Auto mode: a small snapshot rides in the Raft message, a large one streams.

``Auto(threshold=...)`` follows the seed's "when to upgrade" advice one
snapshot at a time. Here the threshold is 100 kB. A fourth node joins while
the state is small: the leader's snapshot is under the threshold, so it is
embedded, one message and no stream. The cluster then takes many more
workflows, and a fifth node joins: now the snapshot is over the threshold,
so the leader offers metadata only and the newcomer pulls the data in
checksummed chunks. The trace's ``snapshot_sent`` events say which way each
snapshot went and why.

What to watch: the two "sent snapshot" lines name the choice and its reason;
the second newcomer holds a chunk or two in memory, the first the whole
snapshot. In Python: ``Cluster.open(snapshot_mode=Auto(threshold=...))``.
"""

from simulator import CompactionPolicy, WorkflowExecutor
from transports import Constant, LinkConfig

CLUSTER = {
    "nodes": 3,
    "link": LinkConfig(latency=Constant(0.001), bandwidth=12_500_000),
    "compaction": CompactionPolicy(every=50, keep_entries=10),
}
MODES = ("auto",)
#: Auto's options (it is Streaming with a threshold): 100 kB here, 10 MB by default.
STREAMING = {"chunk_size": 16 * 1024, "threshold": 100_000}
PARAMS = {"payload": 1024}


async def join_and_tell(sim) -> int:
    cluster = sim.cluster
    newcomer = await cluster.add_node()
    await cluster.wait_caught_up()
    [sent] = [record for record in cluster.trace.of_kind("snapshot_sent") if record.get("to") == newcomer]
    peak = cluster.snapshot_memory()[newcomer][1]
    sim.say(f"n{newcomer} got snapshot {sent.get('index')} ({sent.get('size'):,} bytes) {sent.get('mode')}: "
            f"{sent.get('why')}; it held at most {peak:,} snapshot bytes at once")
    return newcomer


async def scenario(sim):
    cluster = sim.cluster
    threshold, payload = cluster.snapshot_mode.threshold, sim.params["payload"]
    leader = await cluster.wait_for_leader()
    sim.say(f"n{leader} leads; auto mode embeds snapshots up to {threshold:,} bytes and streams larger ones")

    for number in range(60):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch"], b"s" * payload))
    await cluster.wait_caught_up()
    small = await join_and_tell(sim)

    for number in range(60, 400):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch"], b"l" * payload))
    await cluster.wait_caught_up()
    large = await join_and_tell(sim)

    modes = {record.get("to"): record.get("mode") for record in cluster.trace.of_kind("snapshot_sent")}
    sizes = {record.get("to"): record.get("size") for record in cluster.trace.of_kind("snapshot_sent")}
    sim.check(modes.get(small) == ("embedded" if sizes.get(small, 0) <= threshold else "streaming"),
              f"n{small}'s snapshot went the way its size says")
    sim.check(modes.get(large) == ("embedded" if sizes.get(large, 0) <= threshold else "streaming"),
              f"n{large}'s snapshot went the way its size says")
    sim.check([modes.get(small), modes.get(large)] == ["embedded", "streaming"],
              "the small snapshot was embedded and the large one streamed")
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              f"all {len(cluster.node_ids)} nodes hold the same workflow state")
