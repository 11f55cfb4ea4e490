"""Clock faults: drift and jumps of one node's clock, and what Raft does about them.

A node knows time only by its ticks, so a clock fault changes when its ticks
come (:mod:`simulator.cluster.clocks`). Raft's safety never depends on
clocks; liveness and lease-based reads do, and these tests show both sides:
a leader whose clock stops long enough is replaced, a follower whose clock
leaps ahead is kept in line by pre-vote and check-quorum, and a leader whose
clock runs slower than the lease's margin serves a stale lease read, which
the read checker catches.
"""

from __future__ import annotations

import pytest
import trio

from simulator import (
    ClockDrift,
    ClockJump,
    Cluster,
    Config,
    InvariantViolation,
    Program,
    ReadOnlyOption,
    WorkflowExecutor,
    run,
)
from simulator.cluster.clocks import NodeClocks
from simulator.observe.narration import narrate


def terms(cluster) -> list[int]:
    return [cluster.statistics(node).term for node in cluster.node_ids]


# -- the clock itself -----------------------------------------------------------------------


def test_a_perfect_clock_ticks_exactly_every_interval():
    clocks = NodeClocks(0.1)
    assert clocks.next_tick(1, 5.0) == 5.0 + 0.1
    assert clocks.ticks_due(1, 5.0) == 1


def test_drift_changes_the_tick_interval_and_zero_heals_it():
    clocks = NodeClocks(0.1)
    clocks.drift(1, 100)  # twice as fast
    assert clocks.next_tick(1, 0.0) == pytest.approx(0.05)
    clocks.drift(1, -50)  # half speed
    assert clocks.next_tick(1, 0.0) == pytest.approx(0.2)
    clocks.drift(1, 0)
    assert clocks.next_tick(1, 0.0) == 0.1 and clocks.rate(1) == 1.0


def test_a_leap_ahead_brings_its_ticks_at_once_and_a_step_back_withholds_them():
    clocks = NodeClocks(0.1)
    assert clocks.jump(1, 1.0, now=0.0) == 10
    assert clocks.ticks_due(1, 0.1) == 11
    assert clocks.ticks_due(1, 0.2) == 1
    assert clocks.jump(1, -0.5, now=1.0) == -5
    assert [clocks.ticks_due(1, t) for t in (1.1, 1.4, 1.5, 1.6)] == [0, 0, 1, 1]


@pytest.mark.parametrize(("method", "value"), [("drift", -100), ("drift", float("nan")), ("jump", 0)])
def test_impossible_clock_faults_are_refused(method, value):
    clocks = NodeClocks(0.1)
    with pytest.raises(ValueError):
        clocks.drift(1, value) if method == "drift" else clocks.jump(1, value, now=0.0)


# -- in a cluster ---------------------------------------------------------------------------


def test_a_leader_whose_clock_is_set_back_stops_heartbeating_and_is_replaced():
    async def story():
        async with Cluster.open(nodes=3, seed=1) as cluster:
            old = await cluster.wait_for_leader()
            cluster.jump_clock(old, -5.0)
            await cluster.wait_until(lambda: cluster.leader_id() not in (None, old), timeout=5,
                                     what="a new leader")
            await cluster.propose(WorkflowExecutor.start("after", ["fetch"]))
            await trio.sleep(6)  # the old leader's clock runs again: it learns the new term
            await cluster.wait_caught_up()
            return old, cluster.leader_id(), terms(cluster)

    old, new, seen = run(story)
    assert new != old
    assert len(set(seen)) == 1 and seen[0] >= 2


def test_a_follower_leaping_ahead_cannot_disrupt_a_healthy_leader():
    async def story():
        async with Cluster.open(nodes=3, seed=1) as cluster:
            leader = await cluster.wait_for_leader()
            follower = next(node for node in cluster.node_ids if node != leader)
            cluster.drift_clock(follower, 300)  # four times fast
            cluster.jump_clock(follower, 3.0)  # and 30 ticks at once
            await trio.sleep(5)
            return leader, cluster.leader_id(), terms(cluster)

    leader, after, seen = run(story)
    # Pre-vote: the others heard from their leader recently and refuse to vote.
    assert after == leader and seen == [1, 1, 1]


def test_a_leader_clock_slowed_past_its_election_timeout_is_replaced():
    async def story(percent):
        async with Cluster.open(nodes=3, seed=2) as cluster:
            old = await cluster.wait_for_leader()
            cluster.drift_clock(old, percent)
            await trio.sleep(10)
            return old, cluster.leader_id()

    old, leader = run(story, -10.0)
    assert leader == old  # 10 % slow: heartbeats still come well within the followers' timeouts
    old, leader = run(story, -95.0)
    assert leader != old  # 20 times slow: a heartbeat every 2 s, beyond their 1-2 s timeouts


def lease_reads(node_id: int) -> Config:
    return Config(id=node_id, check_quorum=True, pre_vote=True, read_only_option=ReadOnlyOption.LEASE_BASED)


async def read_from_a_cut_off_leader(percent: float):
    async with Cluster.open(nodes=3, seed=0, config=lease_reads) as cluster:
        old = await cluster.wait_for_leader()
        await cluster.propose(WorkflowExecutor.start("early", ["fetch"]))
        await cluster.wait_caught_up()
        cluster.drift_clock(old, percent)
        cluster.isolate(old)
        await cluster.wait_until(lambda: cluster.leader_id() not in (None, old), timeout=10, what="a new leader")
        await cluster.propose(WorkflowExecutor.start("late", ["fetch"]))
        return old, await cluster.read("late", node=old)


def test_lease_reads_stay_linearizable_while_drift_is_within_the_lease_margin():
    old, read = run(read_from_a_cut_off_leader, -10.0)
    assert read.node_id != old and read.value == "running"


def test_a_lease_read_goes_stale_past_the_drift_bound_and_the_checker_catches_it():
    with pytest.raises(InvariantViolation, match="linearizable read: node 1 served a read of 'late'"):
        run(read_from_a_cut_off_leader, -50.0)


def test_clock_fault_steps_run_in_programs_and_replay_identically():
    from simulator import run_program
    from simulator.scenario import RunOptions, Sim

    program = Program((ClockDrift(node=2, percent=-50.0), ClockJump(node=3, seconds=2.0),
                       ClockJump(node=1, seconds=-1.0), ClockDrift(node=9, percent=10.0)))
    assert eval(repr(program)) == program  # noqa: S307 - a program's repr is the Python that builds it

    async def story():
        async with Cluster.open(nodes=3, seed=4) as cluster:
            await cluster.wait_for_leader()
            await run_program(Sim(cluster, {}, RunOptions()), program)
            return cluster.trace.sha256(), [r.get("fault") for r in cluster.trace.of_kind("fault")]

    first, faults = run(story)
    assert run(story)[0] == first
    assert faults[:3] == ["clock_drift", "clock_jump", "clock_jump"]  # node 9 does not exist: nothing


def test_clock_faults_are_told_in_words():
    from simulator import TraceRecord

    def told(**fields):
        return narrate(TraceRecord(1.0, 0, 1, "fault", tuple(fields.items())))

    assert told(fault="clock_drift", node_id=2, percent=-25.0) == (
        "n2's clock now runs 25% slow: its timeouts pass later than its peers'")
    assert told(fault="clock_jump", node_id=1, seconds=2.0, ticks=20) == (
        "n1's clock leaps 2 s ahead: 20 ticks pass for it at once")
    assert "set back 1 s" in told(fault="clock_jump", node_id=1, seconds=-1.0, ticks=-10)
