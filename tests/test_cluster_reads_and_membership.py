"""The cluster's linearizable reads and joint membership changes (issue 17), on virtual time.

``await cluster.read(key)`` goes through ReadIndex and is checked by the
cluster's ``ReadChecker`` (every acknowledged write is reflected);
``cluster.stale_read(key, node)`` shows what a node's own state says, stale
or not. ``await cluster.change_membership(add=..., remove=...)`` replaces
members through a joint configuration; new nodes catch up by snapshot in
both snapshot modes.
"""

from __future__ import annotations

import pytest

from simulator import (
    Cluster,
    CompactionPolicy,
    Config,
    InvariantViolation,
    ReadOnlyOption,
    ReadTimeoutError,
    WorkflowExecutor,
)
from simulator.checks.invariants import InvariantViolation as Violation
from simulator.checks.reads import LINEARIZABLE_READ, ReadChecker
from transports import Embedded, Streaming


def start(number: int) -> bytes:
    return WorkflowExecutor.start(f"wf-{number}", ["fetch", "build"], b"p" * 200)


# -- reads ----------------------------------------------------------------------------------


async def test_read_reflects_every_write_acknowledged_before_it(autojump_clock):
    async with Cluster.open(nodes=3, seed=4) as cluster:
        await cluster.wait_for_leader()
        for number in range(1, 6):
            written = await cluster.propose(start(number))
            read = await cluster.read(f"wf-{number}")
            assert read.value == "running"
            assert read.read_index >= written.index
            assert read.applied_index >= read.read_index
        assert cluster.read_checker.reads_checked == 5
        assert (await cluster.read("wf-missing")).value is None


async def test_read_through_a_follower_is_confirmed_by_the_leader(autojump_clock):
    async with Cluster.open(nodes=3, seed=5) as cluster:
        leader = await cluster.wait_for_leader()
        written = await cluster.propose(start(1))
        follower = next(n for n in cluster.node_ids if n != leader)
        read = await cluster.read("wf-1", node=follower)
        assert (read.node_id, read.value) == (follower, "running")
        assert read.read_index >= written.index
        assert cluster.statistics(leader).event("reads_served") == 1


@pytest.mark.parametrize("option", [ReadOnlyOption.SAFE, ReadOnlyOption.LEASE_BASED])
async def test_partitioned_old_leader_answers_stale_but_its_read_index_read_moves_on(autojump_clock, option):
    config = lambda node_id: Config(id=node_id, read_only_option=option)
    async with Cluster.open(nodes=3, seed=6, config=config) as cluster:
        old = await cluster.wait_for_leader()
        await cluster.propose(start(1))
        await cluster.wait_caught_up()
        cluster.isolate(old)
        await cluster.wait_until(lambda: cluster.leader_id() not in (None, old), timeout=10,
                                 what="a new leader")
        await cluster.propose(start(2))
        assert cluster.stale_read("wf-2", old) is None  # the old leader's own state is stale
        read = await cluster.read("wf-2", node=old)
        assert read.value == "running"
        assert read.node_id != old and read.attempts >= 2


async def test_read_without_a_quorum_times_out(autojump_clock):
    async with Cluster.open(nodes=3, seed=7) as cluster:
        await cluster.wait_for_leader()
        await cluster.propose(start(1))
        cluster.partition([1], [2], [3])
        with pytest.raises(ReadTimeoutError, match="not answered within 3"):
            await cluster.read("wf-1", timeout=3)


def test_read_checker_flags_a_read_below_an_acknowledged_write():
    checker = ReadChecker(Violation)
    checker.write_acknowledged(7)
    started = checker.read_started()
    with pytest.raises(InvariantViolation) as caught:
        checker.read_served(node_id=1, key="k", started_after=started, read_index=6, applied_index=9)
    assert caught.value.invariant == LINEARIZABLE_READ


def test_read_checker_flags_a_read_served_before_its_index_was_applied():
    checker = ReadChecker(Violation)
    with pytest.raises(InvariantViolation, match="before reaching its read index"):
        checker.read_served(node_id=1, key="k", started_after=0, read_index=5, applied_index=4)


def test_read_checker_accepts_a_read_that_reflects_every_acknowledged_write():
    checker = ReadChecker(Violation)
    checker.write_acknowledged(7)
    started = checker.read_started()
    checker.write_acknowledged(9)  # acknowledged after the read began: need not be seen
    checker.read_served(node_id=1, key="k", started_after=started, read_index=7, applied_index=7)
    assert checker.reads_checked == 1


# -- membership ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Embedded, Streaming], ids=["embedded", "streaming"])
async def test_change_membership_replaces_three_nodes_through_a_joint_configuration(autojump_clock, mode):
    options = {"compaction": CompactionPolicy(every=10, keep_entries=2), "snapshot_mode": mode()}
    async with Cluster.open(nodes=3, seed=8, **options) as cluster:
        await cluster.wait_for_leader()
        for number in range(1, 31):
            await cluster.propose(start(number))
        new = await cluster.change_membership(add=3, remove=[1, 2, 3])
        assert new == [4, 5, 6]
        assert cluster.members() == [4, 5, 6]
        assert cluster.leader_id() in new
        joint = [r for r in cluster.trace.of_kind("conf_change") if r.get("voters_outgoing")]
        assert joint and joint[0].get("voters_outgoing") == [1, 2, 3]
        assert all(cluster.transfers()[i].to in new for i in range(len(cluster.transfers())))
        assert {t.to for t in cluster.transfers() if t.outcome.value == "installed"} == set(new)
        await cluster.propose(start(99))
        assert (await cluster.read("wf-99")).value == "running"
        await cluster.wait_caught_up()
        assert len({cluster.state_machine(n).digest() for n in new}) == 1


async def test_change_membership_refuses_nodes_it_cannot_change(autojump_clock):
    async with Cluster.open(nodes=3, seed=9) as cluster:
        await cluster.wait_for_leader()
        with pytest.raises(ValueError, match="not members"):
            await cluster.change_membership(remove=[7])
        with pytest.raises(ValueError, match="exist already"):
            await cluster.change_membership(add=[2])


async def test_change_membership_can_stay_joint_until_told_to_leave(autojump_clock):
    async with Cluster.open(nodes=3, seed=10) as cluster:
        await cluster.wait_for_leader()
        await cluster.propose(start(1))
        new = await cluster.change_membership(add=1, remove=[1], leave=False)
        conf = cluster.statistics(cluster.leader_id()).conf_state
        assert (conf.voters, conf.voters_outgoing) == ((2, 3, 4), (1, 2, 3))
        await cluster.propose(start(2))  # both halves have their majority
        assert cluster.is_up(1)  # still an outgoing voter
        await cluster.leave_joint()
        assert cluster.members() == [2, 3, *new]
        assert not cluster.is_up(1)
        with pytest.raises(RuntimeError, match="no joint configuration to leave"):
            await cluster.leave_joint()
