"""Stale read: a partitioned old leader answers a local read with old data; a ReadIndex read does not.

A leader is cut off from the other two nodes. It does not know yet: it
still believes it leads until its check-quorum timer runs out. Meanwhile
the other two elect a new leader and commit a new workflow. Asked for that
workflow, the old leader's state machine says it does not exist: a read
from a node's local state can be stale.

A ReadIndex read is linearizable: the node asks the leader for the current
commit index, and the leader first proves it still leads (a round of
heartbeats a majority answers) before the node serves the read from a state
that reached that index. The cut-off node cannot get that proof, so the
read does not come back from it; the client retries on the new leader and
sees the workflow. Every such read in every run is checked: it must
reflect each write acknowledged before it began.

With ``Config(read_only_option=ReadOnlyOption.LEASE_BASED)`` the leader
confirms reads by its lease instead (no round trip while a majority
answered a heartbeat recently); the outcome is the same, because the lease
runs out before the others may elect someone else
(``tests/test_cluster_reads_and_membership.py`` runs this story both ways).
"""

from simulator import WorkflowExecutor

PARAMS = {"workflows": 5}


async def scenario(sim):
    cluster = sim.cluster
    old = await cluster.wait_for_leader()
    for number in range(sim.params["workflows"]):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch", "build"]))
    await cluster.wait_caught_up()
    sim.say(f"n{old} leads; every node holds {sim.params['workflows']} workflows")

    cluster.isolate(old)
    sim.say(f"n{old} does not know it yet: it still believes it leads")
    await cluster.wait_until(lambda: cluster.leader_id() not in (None, old), timeout=10,
                             what="a new leader")
    new = cluster.leader_id()
    await cluster.propose(WorkflowExecutor.start("wf-late", ["fetch", "build"]))
    sim.say(f"the new leader n{new} commits workflow wf-late")

    stale = cluster.stale_read("wf-late", old)
    seen = cluster.statistics(old)
    sim.say(f"a local read of wf-late at n{old} (still a {seen.role.value} of term {seen.term}) finds "
            f"{stale or 'nothing'}: its state stops at index {seen.applied}")
    read = await cluster.read("wf-late", node=old)
    sim.say(f"a ReadIndex read sent to n{old} was not confirmed there; after {read.attempts} attempts "
            f"n{read.node_id} served it at read index {read.read_index}: wf-late is {read.value}")

    sim.check(stale is None, f"the local read at the cut-off n{old} was stale")
    sim.check(read.value == "running" and read.node_id != old,
              "the ReadIndex read saw the write acknowledged before it began")

    cluster.heal()
    await cluster.check_liveness(within=10)
    sim.check(cluster.stale_read("wf-late", old) == "running", f"once healed, n{old} caught up")
