"""Snapshot unavailable: the leader's state machine is not ready to hand out a snapshot, so the leader retries.

A fourth node joins a cluster whose log was compacted, so it needs a
snapshot. But the leader's storage answers "not ready yet" the first
``--param refusals=...`` times it is asked (3 by default), as a storage
still busy writing a snapshot would.

What to watch: nothing breaks. Raft does not treat "temporarily
unavailable" as an error: the leader leaves the newcomer waiting and asks
its storage again the next time the newcomer answers a heartbeat, a tenth
of a second later. The leader's statistics count each refusal under
``snapshot_temporarily_unavailable``. Once the storage is ready, the
snapshot goes out as usual and the join completes, only a little later.
Try ``refusals=20`` and watch the join wait for two seconds.
"""

from simulator import CompactionPolicy, WorkflowExecutor

CLUSTER = {"nodes": 3, "compaction": CompactionPolicy(every=50, keep_entries=5)}
PARAMS = {"refusals": 3}
WORKFLOWS = 60
REASON = "snapshot_temporarily_unavailable"


async def scenario(sim):
    cluster = sim.cluster
    refusals = sim.params["refusals"]
    leader = await cluster.wait_for_leader()
    sim.say(f"n{leader} leads; the cluster takes {WORKFLOWS} workflows and compacts its log")
    for number in range(WORKFLOWS):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch", "build"], b"x" * 200))
    await cluster.wait_caught_up()

    leader = cluster.leader_id()
    cluster.storage(leader).make_snapshot_unavailable(refusals)
    sim.say(f"n{leader}'s storage will answer 'not ready yet' to the next {refusals} snapshot requests")
    newcomer = await cluster.add_node()
    await cluster.wait_caught_up()

    refused = cluster.statistics(leader).rejected(REASON)
    added = next(r.time for r in cluster.trace.of_kind("conf_change")
                 if r.node == leader and r.get("node_id") == newcomer)
    sent = next(r.time for r in cluster.trace.of_kind("snapshot_sent") if r.get("to") == newcomer)
    sim.say(f"n{leader} counted {refused} refusals ({REASON}); it added n{newcomer} at {added:.3f} s "
            f"and could send the snapshot at {sent:.3f} s, {sent - added:.3f} s later")
    transfers = [t for t in cluster.transfers() if t.to == newcomer]
    sim.check(refused == refusals, f"the leader retried after each of the {refusals} refusals")
    sim.check([t.outcome.value for t in transfers] == ["installed"],
              f"n{newcomer} installed the snapshot once the storage was ready")
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              "every node holds the same state")
