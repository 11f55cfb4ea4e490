"""pysyncobj empty-snapshot loop: right after a log compaction, a leader that owes a snapshot never returns.

Real pysyncobj 0.3.17 nodes (``--engine pysyncobj``). The cluster takes 40
workflows and compacts its log; a fourth node joins and needs a snapshot.
The moment the newcomer tells the leader how short its log is, the leader
compacts again. At its next tick the leader owes the newcomer a snapshot,
but its serializer reports "no data yet" until the end of that tick. The
leader's send loop then sends ``append_entries`` with ``serialized=None``
and goes round again: the loop ends only when ``appendEntriesPeriod`` of
time has passed, or the connection drops. On a clock that stands still
during a call (this simulator, or a paused VM) it never returns; on a
wall clock it floods the follower with empty messages for 0.1 s per tick,
for as long as a compaction is pending (seconds, with ``useFork``).

By default the adapter's workaround is off and the run fails (exit 1): the
adapter stops the leader after 1000 empty messages in one call. With
``--param workaround=on`` the adapter reports the follower disconnected at
the second empty message, which is the loop's own exit; the snapshot goes
at the next tick. See ``docs/pysyncobj-bugs.md``.
"""

import trio

from simulator import Param, PysyncobjWorkarounds, WorkflowExecutor
from transports import Constant, LinkConfig

ENGINES = ("pysyncobj",)
FAILS_ON_PURPOSE = "a pysyncobj bug; --param workaround=on avoids it"
CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001))}
PARAMS = {"workaround": Param("off", choices=("on", "off")), "workflows": 40}


def pysyncobj_options(params):
    return {"workarounds": PysyncobjWorkarounds(break_empty_snapshot_loop=params["workaround"] == "on")}


def reported_its_log(cluster, node_id: int, since: float) -> bool:
    """``node_id`` told the leader where its log ends (a ``next_node_idx`` reply) after ``since``."""
    return any(r.node == node_id and r.time > since and r.get("type") == "next_node_idx"
               for r in cluster.trace.of_kind("send"))


def snapshot_installed(cluster, node_id: int, since: float) -> bool:
    return any(r.node == node_id and r.time > since for r in cluster.trace.of_kind("snapshot_installed"))


async def scenario(sim):
    cluster = sim.cluster
    tick = cluster.tick_interval
    leader = await cluster.wait_for_leader()
    for number in range(sim.params["workflows"]):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch"]))
    cluster.compact(leader)
    await trio.sleep(1)
    newcomer = await cluster.add_node()
    sim.say(f"n{leader} leads and compacted its log; n{newcomer} joined by snapshot")

    # pysyncobj keeps nothing on disk here, so a restarted node is empty and needs a
    # snapshot again. The leader must compact on the tick just before one of its
    # sending ticks; which tick that is depends on timing, so try each phase in turn.
    for phase in (1, 2, 3):
        await cluster.propose(WorkflowExecutor.start(f"wf-again-{phase}", ["fetch"]))
        cluster.crash(newcomer)
        since = cluster.now()
        cluster.restart(newcomer)
        with trio.fail_after(10):
            while not reported_its_log(cluster, newcomer, since):
                await trio.sleep(0.001)
        await trio.sleep((phase - 0.5) * tick)
        sim.say(f"n{newcomer} restarted empty and told n{leader} where its log ends; "
                f"{phase - 0.5} ticks later n{leader} compacts")
        cluster.compact(leader)
        with trio.move_on_after(3):
            while not (cluster.engine_problems() or snapshot_installed(cluster, newcomer, since)):
                await trio.sleep(0.01)
        if cluster.engine_problems():
            break

    empty = [r for r in cluster.trace.of_kind("send") if r.get("type") == "snapshot_empty"]
    problems = cluster.engine_problems()
    sim.say(f"n{leader} sent {len(empty)} append_entries with serialized=None in all")
    for problem in problems:
        sim.say(f"pysyncobj: {problem}")
    sim.check(not problems,
              f"n{leader} returned from every call (pysyncobj's snapshot loop ends only when its "
              "clock moves or the follower disconnects)")
    if not problems:
        await cluster.check_liveness(within=20)
        sim.check(len(empty) >= 1, "the race happened: the leader owed a snapshot it did not have yet")
        sim.check(snapshot_installed(cluster, newcomer, 0.0), f"n{newcomer} installed a snapshot")
        sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
                  "every node holds the same state")
