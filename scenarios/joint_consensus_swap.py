"""Joint consensus swap: three nodes replaced by three others in one membership change, through a partition.

Nodes n1-n3 hold a compacted log. Three new nodes n4-n6 start empty, join
as learners and catch up by snapshot (the entries they would need are
gone). Then one change makes n4-n6 the voters and removes n1-n3. Changing
more than one voter at once safely needs a *joint configuration*: while it
is in force, every decision needs a majority of the old voters (n1-n3) and
a majority of the new ones (n4-n6), so no moment exists where two disjoint
majorities could each decide alone.

In the middle, n2 and n5 are cut off: one voter of each half. Each half
still has its majority, so the cluster keeps committing. When n3 is cut off
too, the old half has lost its majority and nothing commits, though the new
half is complete. Healed, the cluster leaves the joint configuration: n4-n6
alone decide, the old leader hands over to one of them, and n1-n3 stop.

What to watch: in streaming mode the new nodes fetch the snapshot in chunks
out of band; in embedded mode it travels inside the Raft message. The
membership story is the same in both.
"""

from simulator import CompactionPolicy, ProposalTimeoutError, WorkflowExecutor
from transports import Constant, LinkConfig

CLUSTER = {
    "nodes": 3,
    "link": LinkConfig(latency=Constant(0.002)),
    "compaction": CompactionPolicy(every=20, keep_entries=5),
}
PARAMS = {"workflows": 60, "payload": 2048}


def conf_state(cluster):
    """The membership as the current leader sees it."""
    return cluster.statistics(cluster.leader_id()).conf_state


def names(ids) -> str:
    return ", ".join(f"n{n}" for n in ids)


async def scenario(sim):
    cluster = sim.cluster
    leader = await cluster.wait_for_leader()
    workflows, payload = sim.params["workflows"], sim.params["payload"]
    for number in range(workflows):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch", "build"], b"x" * payload))
    await cluster.wait_caught_up()
    sim.say(f"n{leader} leads n1-n3 through {workflows} workflows; the log now starts at entry "
            f"{cluster.statistics(leader).first_index}")

    new = await cluster.change_membership(add=3, remove=[1, 2, 3], leave=False)
    conf = conf_state(cluster)
    sim.say(f"joint configuration in force: old voters {names(conf.voters_outgoing)}, "
            f"new voters {names(conf.voters)}; every decision needs a majority of each")

    cluster.partition([2, 5], [1, 3, 4, 6])
    before = cluster.statistics(cluster.leader_id()).commit
    await cluster.propose(WorkflowExecutor.start("wf-split", ["fetch"]))
    sim.say(f"with n2 and n5 cut off, n1+n3 and n4+n6 are still majorities: wf-split committed "
            f"(commit {before} -> {cluster.statistics(cluster.leader_id()).commit})")

    cluster.partition([2, 3, 5], [1, 4, 6])
    stuck = False
    try:
        await cluster.propose(WorkflowExecutor.start("wf-stuck", ["fetch"]), timeout=1.0)
    except ProposalTimeoutError:
        stuck = True
    sim.say(f"with n3 cut off too, the old half has only n1: wf-stuck "
            f"{'did not commit within a second' if stuck else 'committed'}, though n4-n6 are all there")

    cluster.heal()
    await cluster.leave_joint()
    leader = cluster.leader_id()
    sim.say(f"the joint configuration is left: {names(conf_state(cluster).voters)} decide alone, "
            f"n{leader} leads, and n1-n3 are stopped")
    await cluster.propose(WorkflowExecutor.start("wf-after", ["fetch"]))
    await cluster.check_liveness(within=10)

    installed = sorted({t.to for t in cluster.transfers() if t.outcome.value == "installed"})
    sim.check(installed == new, f"{names(new)} caught up by installing a snapshot")
    sim.check(stuck, "nothing committed without a majority of the old voters")
    sim.check(cluster.members() == new and leader in new, f"{names(new)} are the cluster now")
    sim.check(len({cluster.state_machine(n).digest() for n in new}) == 1,
              "the new nodes hold the same workflow state")
