"""Property tests of the Raft core, driven through the synchronous harness.

Theory of operation: every fault the harness offers is a small frozen value
(``Tick(node=2, times=5)``, ``Partition(group=(1, 3))``...) whose ``repr`` is
the Python that builds it and whose ``apply`` performs it on a
:class:`~simulator.testing.Network`. Two tests use them:

- :class:`RaftMachine`, a hypothesis ``RuleBasedStateMachine``: one rule per
  fault. The harness runs the :class:`~simulator.invariants.InvariantChecker`
  after every step (election safety, log matching, leader completeness,
  state machine safety, monotonic commit / applied), so a breach fails the
  step with ``InvariantViolation``; the ``@invariant`` adds the per-node
  bookkeeping the checker does not look at.
- :func:`test_cluster_commits_again_once_faults_heal`: a drawn schedule of
  faults, then heal everything and check the cluster makes progress again.

A fault naming a node the cluster lacks (ids 4 and 5 of a 3-node cluster), a
crashed node where a live one is needed, or a live one where a crashed one is
needed, does nothing: every drawn program is valid, and the shrinker drops
those steps from a failing example anyway. Message positions are taken modulo
the queue length, so every position names a message.

The last test checks the checker itself: hand-made views that break each
property must raise ``InvariantViolation`` naming it.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from simulator import Entry, MessageType, ProposalDroppedError, Role, SnapshotStatus
from simulator.checks.invariants import InvariantChecker, InvariantViolation, NodeView
from simulator.testing import Network

# -- faults as values ---------------------------------------------------------------

#: Node ids a fault may name: a 5-node cluster has them all, a 3-node one the first three.
NODE_IDS = st.integers(min_value=1, max_value=5)
#: Queue positions, reduced modulo the queue length when applied.
POSITIONS = st.integers(min_value=0, max_value=63)
#: Small readable payloads; never empty, because ``AppliedLog`` skips empty data.
PAYLOADS = st.sampled_from([b"x", b"y", b"z", b"xy", b"yz"])


def _is_up(net: Network, node: int) -> bool:
    return node in net.nodes and net.nodes[node].is_up


@attrs.frozen
class Propose:
    """Propose ``data`` at a leader: ``node`` if it leads, else the newest leader.

    With no leader at all, propose at ``node`` anyway. Letting a deposed leader
    that has not noticed yet take proposals is what grows divergent log tails.
    """

    data: bytes
    node: int

    def apply(self, net: Network) -> None:
        node = self.node
        if not (_is_up(net, node) and net.node(node).raft.role is Role.LEADER):
            node = net.leader_id() or node
        if not _is_up(net, node):
            return
        try:
            net.propose(node, self.data)
        except ProposalDroppedError:
            pass  # no leader known there: the client would retry elsewhere


@attrs.frozen
class Tick:
    node: int
    times: int

    def apply(self, net: Network) -> None:
        if _is_up(net, self.node):
            net.tick(self.node, self.times)


@attrs.frozen
class TickAll:
    times: int

    def apply(self, net: Network) -> None:
        net.tick_all(self.times)


@attrs.frozen
class Deliver:
    """Deliver one message, not necessarily the oldest: this is how messages get reordered."""

    position: int

    def apply(self, net: Network) -> None:
        if net.in_flight:
            net.deliver_at(self.position % len(net.in_flight))


@attrs.frozen
class Drop:
    """Lose one message in flight without delivering it."""

    position: int

    def apply(self, net: Network) -> None:
        if not net.in_flight:
            return
        message = net.in_flight.pop(self.position % len(net.in_flight))
        net.dropped += 1
        if message.msg_type is MessageType.SNAPSHOT and _is_up(net, message.from_):
            # A transport learns that its snapshot stream broke and says so, as the
            # harness does for snapshots dropped by link faults; without the report
            # the leader would wait for that follower forever (etcd and raft-rs too).
            net.node(message.from_).report_snapshot(message.to, SnapshotStatus.FAILURE)
            net.process_readies()


@attrs.frozen
class Duplicate:
    """Queue a second copy of a message in flight (a network may deliver twice)."""

    position: int

    def apply(self, net: Network) -> None:
        if net.in_flight:
            net.in_flight.append(net.in_flight[self.position % len(net.in_flight)])


@attrs.frozen
class Isolate:
    node: int

    def apply(self, net: Network) -> None:
        if self.node in net.nodes:
            net.isolate(self.node)


@attrs.frozen
class Partition:
    """Split the cluster in two: the nodes of ``group`` against all the others."""

    group: tuple[int, ...]

    def apply(self, net: Network) -> None:
        inside = [node for node in self.group if node in net.nodes]
        outside = [node for node in net.nodes if node not in inside]
        net.partition(inside, outside)


@attrs.frozen
class Heal:
    def apply(self, net: Network) -> None:
        net.heal()


@attrs.frozen
class Crash:
    """Crash a live node, unless it is the last one up."""

    node: int

    def apply(self, net: Network) -> None:
        if _is_up(net, self.node) and len(net.live_ids()) > 1:
            net.crash(self.node)


@attrs.frozen
class Restart:
    """Restart a crashed node from its storage."""

    node: int

    def apply(self, net: Network) -> None:
        if self.node in net.nodes and not net.nodes[self.node].is_up:
            net.restart(self.node)


@attrs.frozen
class Compact:
    """Snapshot a node's state machine at its applied index and discard the log before it."""

    node: int

    def apply(self, net: Network) -> None:
        if not _is_up(net, self.node):
            return
        applied = net.node(self.node).raft.raft_log.applied
        if applied > net.nodes[self.node].storage.snapshot_metadata.index:
            net.compact(self.node)
            net.check()


@attrs.frozen
class Stabilize:
    def apply(self, net: Network) -> None:
        net.stabilize()


def run(net: Network, action) -> None:
    """Apply ``action``; a safety breach names the action that revealed it."""
    try:
        action.apply(net)
    except InvariantViolation as violation:
        violation.add_note(f"while applying {action!r}")
        raise


FAULTS = st.one_of(
    st.builds(Propose, data=PAYLOADS, node=NODE_IDS),
    st.builds(Tick, node=NODE_IDS, times=st.integers(1, 20)),
    st.builds(TickAll, times=st.integers(1, 10)),
    st.builds(Deliver, position=POSITIONS),
    st.builds(Drop, position=POSITIONS),
    st.builds(Duplicate, position=POSITIONS),
    st.builds(Isolate, node=NODE_IDS),
    st.builds(Partition, group=st.sets(NODE_IDS, min_size=1, max_size=4).map(sorted).map(tuple)),
    st.just(Heal()),
    st.builds(Crash, node=NODE_IDS),
    st.builds(Restart, node=NODE_IDS),
    st.builds(Compact, node=NODE_IDS),
    st.just(Stabilize()),
)


# -- the state machine ----------------------------------------------------------------


class RaftMachine(RuleBasedStateMachine):
    """A cluster under every fault at once; the harness checks safety after each step."""

    @initialize(
        seed=st.integers(min_value=0, max_value=2**16),
        size=st.sampled_from([3, 5]),
        first_leader=st.integers(min_value=1, max_value=3),
    )
    def start_cluster(self, seed: int, size: int, first_leader: int) -> None:
        self.net = Network(range(1, size + 1), seed=seed)
        # Start from a working cluster: without it most short programs never get past
        # the first election, and proposals, commits and compaction go untested.
        self.net.campaign(first_leader)

    # Preconditions keep rules that could only be no-ops out of the draw.

    def has_messages(self) -> bool:
        return bool(self.net.in_flight)

    def has_spare_node(self) -> bool:
        return len(self.net.live_ids()) > 1

    def has_crashed_node(self) -> bool:
        return len(self.net.live_ids()) < len(self.net.nodes)

    def has_link_faults(self) -> bool:
        return bool(self.net.blocked)

    def has_compactable_log(self) -> bool:
        return any(
            self.net.node(i).raft.raft_log.applied > self.net.nodes[i].storage.snapshot_metadata.index
            for i in self.net.live_ids()
        )

    @rule(data=PAYLOADS, node=NODE_IDS)
    def propose(self, data: bytes, node: int) -> None:
        run(self.net, Propose(data, node))

    @rule(node=NODE_IDS, times=st.integers(1, 20))
    def tick(self, node: int, times: int) -> None:
        run(self.net, Tick(node, times))

    @rule(times=st.integers(1, 10))
    def tick_all(self, times: int) -> None:
        run(self.net, TickAll(times))

    @precondition(has_messages)
    @rule(position=POSITIONS)
    def deliver(self, position: int) -> None:
        run(self.net, Deliver(position))

    @precondition(has_messages)
    @rule(position=POSITIONS)
    def drop(self, position: int) -> None:
        run(self.net, Drop(position))

    @precondition(has_messages)
    @rule(position=POSITIONS)
    def duplicate(self, position: int) -> None:
        run(self.net, Duplicate(position))

    @rule(node=NODE_IDS)
    def isolate(self, node: int) -> None:
        run(self.net, Isolate(node))

    @rule(group=st.sets(NODE_IDS, min_size=1, max_size=4).map(sorted).map(tuple))
    def partition(self, group: tuple[int, ...]) -> None:
        run(self.net, Partition(group))

    @precondition(has_link_faults)
    @rule()
    def heal(self) -> None:
        run(self.net, Heal())

    @precondition(has_spare_node)
    @rule(node=NODE_IDS)
    def crash(self, node: int) -> None:
        run(self.net, Crash(node))

    @precondition(has_crashed_node)
    @rule(node=NODE_IDS)
    def restart(self, node: int) -> None:
        run(self.net, Restart(node))

    @precondition(has_compactable_log)
    @rule(node=NODE_IDS)
    def compact(self, node: int) -> None:
        run(self.net, Compact(node))

    @rule()
    def stabilize(self) -> None:
        run(self.net, Stabilize())

    # One invariant for the three checks: hypothesis prints every invariant call
    # after every step of a failing program, so one keeps that program readable.
    @invariant()
    def logs_are_consistent(self) -> None:
        for node_id in self.net.live_ids():
            raft = self.net.node(node_id).raft
            log = raft.raft_log
            assert log.committed <= log.last_index(), (
                f"node {node_id} committed {log.committed} past its last index {log.last_index()}"
            )
            assert log.applied <= log.committed, (
                f"node {node_id} applied {log.applied} past its commit index {log.committed}"
            )
            if raft.role is Role.LEADER:
                own = raft.prs.progress[node_id].match_index
                assert own == log.last_index(), (
                    f"leader {node_id} has match {own} for itself, "
                    f"but its last index is {log.last_index()}"
                )


TestRaftMachine = RaftMachine.TestCase
# About 15 s here; with it the liveness test below, the file takes 20-25 s. Longer
# programs find deeper bugs but shrink slowly (minutes), so programs stay at 100 steps.
# No deadline: one step can run a whole election, and its time varies with the queue.
TestRaftMachine.settings = settings(max_examples=800, stateful_step_count=100, deadline=None)


# -- liveness after healing -------------------------------------------------------------

#: Rounds of one tick everywhere plus delivery; elections take 10 to 20 ticks.
RECOVERY_ROUNDS = 200


def _settled_leader(net: Network) -> int | None:
    """The one leader every live node follows in the same term, or ``None`` if not there yet."""
    leaders = [i for i in net.live_ids() if net.node(i).raft.role is Role.LEADER]
    if len(leaders) != 1:
        return None
    leader = net.node(leaders[0]).raft
    for node_id in net.live_ids():
        raft = net.node(node_id).raft
        if raft.leader_id != leader.id or raft.term != leader.term:
            return None
    return leader.id


@settings(max_examples=400, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**16),
    size=st.sampled_from([3, 5]),
    first_leader=st.integers(min_value=1, max_value=3),
    # Hypothesis keeps lists short unless told otherwise; a few faults prove little.
    schedule=st.lists(FAULTS, min_size=10, max_size=60),
)
def test_cluster_commits_again_once_faults_heal(seed, size, first_leader, schedule):
    """Whatever happened, a healed cluster elects one leader and every node applies a new entry."""
    net = Network(range(1, size + 1), seed=seed)
    net.campaign(first_leader)
    for action in schedule:
        run(net, action)

    net.heal()
    for node_id in sorted(net.nodes):
        run(net, Restart(node_id))
    net.stabilize()
    for _ in range(RECOVERY_ROUNDS):
        leader = _settled_leader(net)
        if leader is not None:
            break
        net.tick_all()
        net.stabilize()
    else:
        roles = {i: (net.node(i).raft.role, net.node(i).raft.term) for i in net.live_ids()}
        pytest.fail(f"no settled leader after {RECOVERY_ROUNDS} rounds: {roles}")

    net.propose(leader, b"final")
    net.stabilize()

    assert net.live_ids() == list(range(1, size + 1))
    expected = net.nodes[leader].state_machine.history
    assert expected[-1] == (net.node(leader).raft.raft_log.last_index(), b"final")
    for node_id in net.live_ids():
        assert net.nodes[node_id].state_machine.history == expected, f"node {node_id}"


# -- the checker catches what it should ------------------------------------------------------


def view(node_id, *, role=Role.FOLLOWER, term=1, commit=0, applied=0, entries=(), history=()):
    """A node's view with its log starting at index 1 (no snapshot)."""
    return NodeView(
        node_id=node_id,
        role=role,
        term=term,
        commit=commit,
        applied=applied,
        base=(0, 0),
        entries=tuple(entries),
        applied_history=tuple(history),
    )


E = Entry  # short for the tables below


@pytest.mark.parametrize(
    ("observations", "invariant_name"),
    [
        pytest.param(
            [[view(1, role=Role.LEADER, term=2), view(2, role=Role.LEADER, term=2)]],
            "election safety",
            id="two-leaders-one-term",
        ),
        pytest.param(
            # The leader of term 2 was seen once; a later view of another leader in term 2.
            [[view(1, role=Role.LEADER, term=2)], [view(2, role=Role.LEADER, term=2)]],
            "election safety",
            id="two-leaders-one-term-at-different-times",
        ),
        pytest.param(
            [[
                view(1, entries=[E(1, 1, b"a"), E(2, 2, b"b")]),
                view(2, entries=[E(1, 1, b"x"), E(2, 2, b"b")]),
            ]],
            "log matching",
            id="agree-at-2-differ-at-1",
        ),
        pytest.param(
            [[view(1, entries=[E(1, 1, b"a")]), view(2, entries=[E(1, 1, b"b")])]],
            "log matching",
            id="same-index-and-term-different-data",
        ),
        pytest.param(
            [[
                view(1, commit=1, entries=[E(1, 1, b"a")]),
                view(2, term=2, commit=1, entries=[E(2, 1, b"b")]),
            ]],
            "state machine safety",
            id="index-1-committed-with-two-terms",
        ),
        pytest.param(
            [[
                view(1, commit=1, applied=1, history=[(1, b"a")]),
                view(2, commit=1, applied=1, history=[(1, b"b")]),
            ]],
            "state machine safety",
            id="different-applied-histories",
        ),
        pytest.param(
            [
                [view(1, term=1, commit=2, entries=[E(1, 1), E(1, 2, b"a")])],
                [view(2, role=Role.LEADER, term=2, entries=[E(1, 1)])],
            ],
            "leader completeness",
            id="later-leader-lacks-committed-entry",
        ),
        pytest.param(
            [
                [view(1, commit=2, entries=[E(1, 1), E(1, 2)])],
                [view(1, commit=1, entries=[E(1, 1), E(1, 2)])],
            ],
            "commit monotonic",
            id="commit-goes-back",
        ),
        pytest.param(
            [
                [view(1, commit=2, applied=2, entries=[E(1, 1), E(1, 2)])],
                [view(1, commit=2, applied=1, entries=[E(1, 1), E(1, 2)])],
            ],
            "applied monotonic",
            id="applied-goes-back",
        ),
    ],
)
def test_invariant_checker_catches_violation(observations, invariant_name):
    checker = InvariantChecker()
    with pytest.raises(InvariantViolation) as caught:
        for views in observations:
            checker.observe(views)
    assert caught.value.invariant == invariant_name


def test_invariant_checker_accepts_consistent_views():
    """The control for the test above: a follower lagging behind its leader is fine."""
    checker = InvariantChecker()
    leader = view(1, role=Role.LEADER, term=2, commit=2, applied=2,
                  entries=[E(1, 1, b"a"), E(2, 2, b"b"), E(2, 3, b"c")],
                  history=[(1, b"a"), (2, b"b")])
    follower = view(2, term=2, commit=1, applied=1, entries=[E(1, 1, b"a")], history=[(1, b"a")])
    checker.observe([leader, follower])
    checker.observe([leader, attrs.evolve(follower, entries=leader.entries, commit=2)])
    assert checker.checks == 2
    assert checker.leaders == {2: 1}

