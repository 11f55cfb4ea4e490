"""Stale lease read: a leader whose clock runs slow serves a read from a lease it no longer holds.

With lease-based reads (``ReadOnlyOption.LEASE_BASED``) a leader answers a
linearizable read without a round of heartbeats, as long as a majority
acknowledged one of its heartbeats less than ``election_tick - 2`` ticks
ago: no follower can have timed out and elected someone else in that time.
That reasoning counts the leader's ticks against its followers' ticks, so
it holds only while the clocks run at nearly the same speed. Here the
election timeout is 10 to 20 ticks and the lease 8, so the margin is about
20 %: a leader clock up to about 15 % slow is safe, and beyond 20 % it is not.

The story: the leader's clock starts running ``--param drift`` percent slow
(default -50: half speed), and the leader is cut off from the other two.
They time out on true time, elect a new leader and commit a new workflow.
The old leader, counting slowly, still believes its lease holds, and a
read sent to it is answered from its old state: a stale read. The read
checker, which verifies that every read reflects each write acknowledged
before it began, catches it, so by default the run fails on purpose (exit 1),
as the theory predicts. With ``--param drift=-10`` the lease runs out in
time; the old leader cannot confirm the read and the client's retry on the
new leader sees the workflow: the run passes.

Try next: ``raftsim run stale_read``, the same partition with safe
ReadIndex reads, which need no bound on clocks at all.
"""

from simulator import Config, Param, ReadOnlyOption, WorkflowExecutor


def lease_reads(node_id: int) -> Config:
    return Config(id=node_id, check_quorum=True, pre_vote=True, read_only_option=ReadOnlyOption.LEASE_BASED)


CLUSTER = {"nodes": 3, "config": lease_reads}
FAILS_ON_PURPOSE = "a lease read goes stale past the clock-drift bound; --param drift=-10 stays within it"
PARAMS = {"drift": Param(-50.0, minimum=-95.0, maximum=100.0, help="the leader's clock drift, in percent")}


async def scenario(sim):
    cluster = sim.cluster
    drift = sim.params["drift"]
    old = await cluster.wait_for_leader()
    for number in range(3):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch", "build"]))
    await cluster.wait_caught_up()
    sim.say(f"n{old} leads and serves reads from its lease: 8 of its ticks after a majority's acknowledgement")

    cluster.drift_clock(old, drift)
    cluster.isolate(old)
    sim.say(f"n{old}'s clock now runs {abs(drift):g}% {'slow' if drift < 0 else 'fast'}, and n{old} is cut off")
    await cluster.wait_until(lambda: cluster.leader_id() not in (None, old), timeout=10, what="a new leader")
    new = cluster.leader_id()
    await cluster.propose(WorkflowExecutor.start("wf-late", ["fetch", "build"]))
    seen = cluster.statistics(old)
    sim.say(f"the others elected n{new}, which committed wf-late; n{old} is still a {seen.role.value} "
            f"of term {seen.term} by its own clock")

    read = await cluster.read("wf-late", node=old)
    sim.say(f"the read of wf-late sent to n{old} was served by n{read.node_id} after {read.attempts} "
            f"attempt(s), at read index {read.read_index}: wf-late is {read.value}")
    sim.check(read.node_id != old, f"n{old}'s lease ran out before the others could elect a new leader")
    sim.check(read.value == "running", "the read saw the write acknowledged before it began")

    cluster.drift_clock(old, 0)
    cluster.heal()
    await cluster.check_liveness(within=10)
