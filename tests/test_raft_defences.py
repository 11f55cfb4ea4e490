"""Defects found by attacking the core (issue 15, items 3, 12 and 13), one regression test each.

- A membership change reaching the leader in a forwarded proposal is checked
  against the leader's own configuration, exactly as ``propose_conf_change``
  checks a local one: data that does not decode, or a change that does not
  apply (a follower's stale view, a forgery), never enters the log, and the
  refusal is counted.
- A committed change that would leave no voter is refused when it is
  applied, on every node alike, and the configuration keeps its voter.
- A newly elected leader with check-quorum that hears from no quorum steps
  down after one election timeout, not two (raft-rs marks every peer
  inactive when a node becomes leader).
"""

from __future__ import annotations

import pytest

from simulator import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Role,
    Snapshot,
    SnapshotMetadata,
)
from simulator.raft.reasons import (
    CONF_CHANGE_INVALID,
    CONF_CHANGE_REFUSED_AT_APPLY,
    LOCAL_FROM_NETWORK,
    MALFORMED,
    MISADDRESSED,
    UNKNOWN_SENDER,
)
from simulator.testing import Network

MT = MessageType
ELECTION_TICK = 10


def elected(voters=(1, 2, 3), learners=(), **config) -> Network:
    net = Network(voters, learners=learners, config=lambda node_id: Config(id=node_id, **config))
    net.campaign(1)
    assert net.leader_id() == 1
    return net


def conf_change_entries(net: Network, node_id: int) -> list[Entry]:
    log = net.node(node_id).raft.raft_log
    return [e for e in log.all_entries() if e.entry_type is not EntryType.NORMAL]


def forged_proposal(data: bytes, *, from_: int = 2) -> Message:
    entry = Entry(term=0, index=0, data=data, entry_type=EntryType.CONF_CHANGE)
    return Message(MT.PROPOSE, to=1, from_=from_, entries=(entry,))


# -- item 3: the leader checks forwarded membership changes ------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"\x07", b"\x09" + bytes(8), b"\x00" + bytes(8)],
    ids=["empty", "too_short", "unknown_type", "node_zero"],
)
def test_forwarded_conf_change_that_does_not_decode_is_refused_and_counted(data):
    net = elected()
    before = net.node(1).raft.raft_log.last_index()
    net.send(forged_proposal(data))
    net.stabilize()
    leader = net.node(1).statistics()
    assert leader.rejected(MALFORMED) == 1
    assert all(conf_change_entries(net, n) == [] for n in (1, 2, 3))
    # The slot holds an empty entry; the cluster goes on committing.
    assert net.node(1).raft.raft_log.committed == before + 1
    net.propose(1, b"after")
    net.stabilize()
    assert all(net.applied(n) == [b"after"] for n in (1, 2, 3))


@pytest.mark.parametrize(
    "change",
    [
        ConfChange(ConfChangeType.ADD_NODE, 3),
        ConfChange(ConfChangeType.ADD_LEARNER_NODE, 2),
        ConfChange(ConfChangeType.REMOVE_NODE, 9),
    ],
    ids=["add_existing_voter", "demote_voter_to_learner", "remove_non_member"],
)
def test_forwarded_conf_change_that_does_not_apply_is_refused_and_counted(change):
    net = elected()
    net.send(forged_proposal(change.encode()))
    net.stabilize()
    assert net.node(1).statistics().rejected(CONF_CHANGE_INVALID) == 1
    assert all(conf_change_entries(net, n) == [] for n in (1, 2, 3))
    assert all(net.node(n).raft.conf_state == ConfState.of((1, 2, 3)) for n in (1, 2, 3))


def test_follower_with_a_stale_view_forwards_a_change_the_leader_refuses():
    net = elected()
    net.isolate(3)  # node 3 misses the change below and keeps the old view
    net.propose_conf_change(1, ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    net.stabilize()
    assert net.node(1).raft.conf_state == ConfState.of((1, 2, 3), (4,))
    assert net.node(3).raft.conf_state == ConfState.of((1, 2, 3))
    net.heal()
    net.add_filter(lambda m: not (m.to == 3 and m.msg_type in (MT.APPEND, MT.HEARTBEAT)))
    # Node 3 still knows node 1 as leader; by its view adding learner 4 is fine.
    net.propose_conf_change(3, ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    net.stabilize()
    assert net.node(1).statistics().rejected(CONF_CHANGE_INVALID) == 1
    assert len(conf_change_entries(net, 1)) == 1  # only the first, valid change


def test_forwarded_conf_change_while_one_is_pending_keeps_the_old_rule():
    net = elected()
    net.add_filter(lambda m: m.msg_type is not MT.APPEND_RESPONSE)  # nothing commits
    net.propose_conf_change(1, ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    net.send(forged_proposal(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 5).encode()))
    net.stabilize()
    stats = net.node(1).statistics()
    assert stats.rejected("conf_change_dropped_while_pending") == 1
    assert stats.rejected(CONF_CHANGE_INVALID) == 0
    assert len(conf_change_entries(net, 1)) == 1


# -- item 13: no committed change may remove the last voter ---------------------------------


def test_applying_a_change_that_removes_the_last_voter_is_refused():
    net = elected(voters=(1,), learners=(2,))
    conf = net.node(1).apply_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    assert conf == ConfState.of((1,), (2,))
    assert net.node(1).raft.conf_state == conf
    assert net.node(1).statistics().rejected(CONF_CHANGE_REFUSED_AT_APPLY) == 1


def test_committed_change_removing_the_last_voter_is_refused_on_every_node():
    net = elected(voters=(1,), learners=(2,))
    # An entry that got into the log past every proposal-time check (an old
    # leader's log, a forgery): it commits, and applying it must not empty the cluster.
    removal = Entry(
        term=0, index=0, data=ConfChange(ConfChangeType.REMOVE_NODE, 1).encode(),
        entry_type=EntryType.CONF_CHANGE,
    )
    net.node(1).raft.append_entries([removal])
    net.node(1).raft.broadcast_append()
    net.stabilize()
    for node_id in (1, 2):
        node = net.node(node_id)
        assert node.raft.conf_state == ConfState.of((1,), (2,))
        assert node.statistics().rejected(CONF_CHANGE_REFUSED_AT_APPLY) == 1
    assert net.nodes[1].storage.conf_state == ConfState.of((1,), (2,))
    assert net.node(1).raft.role is Role.LEADER
    net.propose(1, b"still-serving")
    net.stabilize()
    assert net.applied(2) == [b"still-serving"]


# -- item 12: check-quorum deposes a new leader after one election timeout -------------------


def test_new_leader_that_hears_from_no_quorum_steps_down_after_one_election_timeout():
    net = Network((1, 2, 3), config=lambda node_id: Config(id=node_id, election_tick=ELECTION_TICK))
    # Votes get through, but nothing the followers answer to the leader afterwards.
    net.add_filter(lambda m: m.msg_type not in (MT.APPEND_RESPONSE, MT.HEARTBEAT_RESPONSE))
    net.campaign(1)
    assert net.node(1).raft.role is Role.LEADER
    net.tick(1, ELECTION_TICK - 1)
    assert net.node(1).raft.role is Role.LEADER
    net.tick(1)
    assert net.node(1).raft.role is Role.FOLLOWER
    assert net.node(1).statistics().event("stepped_down_no_quorum") == 1


def test_new_leader_that_hears_from_a_quorum_keeps_leading():
    net = Network((1, 2, 3), config=lambda node_id: Config(id=node_id, election_tick=ELECTION_TICK))
    net.add_filter(lambda m: not (m.from_ == 3 and m.to == 1))  # node 2 alone answers: a quorum
    net.campaign(1)
    for _ in range(3 * ELECTION_TICK):
        net.tick(1)
        net.stabilize()
    assert net.node(1).raft.role is Role.LEADER
    assert net.node(1).statistics().event("stepped_down_no_quorum") == 0


# -- the new message fields are checked like the old ones ---------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        Message(MT.REQUEST_VOTE, to=1, from_=2, term=5, priority="high"),
        Message(MT.REQUEST_VOTE, to=1, from_=2, term=5, priority=1.5),
        Message(MT.APPEND_RESPONSE, to=1, from_=2, term=1, reject=True, request_snapshot=-1),
        Message(MT.APPEND_RESPONSE, to=1, from_=2, term=1, reject=True, request_snapshot="3"),
    ],
    ids=["priority_text", "priority_float", "request_snapshot_negative", "request_snapshot_text"],
)
def test_garbled_priority_or_snapshot_request_from_a_peer_is_counted_as_malformed(message):
    net = elected()
    net.node(1).step(message)
    assert net.node(1).statistics().rejected(MALFORMED) == 1
    assert net.node(1).raft.role is Role.LEADER


# -- a message that needs a term and has none ----------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        Message(MT.SNAPSHOT, to=2, from_=1, term=0, snapshot=Snapshot(
            SnapshotMetadata(index=50, term=1, conf_state=ConfState(voters=(1, 2, 3))), data=b"x")),
        Message(MT.APPEND, to=2, from_=1, term=0, index=1, log_term=1, commit=40),
        Message(MT.HEARTBEAT, to=2, from_=1, term=0, commit=40),
        Message(MT.REQUEST_VOTE, to=2, from_=3, term=0, index=99, log_term=9),
        Message(MT.APPEND_RESPONSE, to=2, from_=1, term=0, index=40),
    ],
    ids=["snapshot", "append", "heartbeat", "request_vote", "append_response"],
)
def test_a_peer_message_without_a_term_is_counted_as_malformed_and_changes_nothing(message):
    # Found by the reliability sweep: a forged snapshot of term 0 slipped past the stale-term
    # check and crashed the commit step. Only local messages and forwarded requests lack a term.
    net = elected()
    before = (net.node(2).raft.term, net.node(2).raft.raft_log.committed, net.node(2).raft.leader_id)
    net.node(2).step(message)
    assert net.node(2).statistics().rejected(MALFORMED) == 1
    assert (net.node(2).raft.term, net.node(2).raft.raft_log.committed, net.node(2).raft.leader_id) == before


def test_forwarded_requests_and_local_messages_still_carry_no_term():
    net = elected()
    net.node(1).step(Message(MT.PROPOSE, to=1, from_=2, entries=(Entry(term=0, index=0, data=b"forwarded"),)))
    assert net.node(1).statistics().rejected(MALFORMED) == 0


# -- step_typed: the in-memory transport's path skips only the type check ---------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (Message(MT.HUP, to=1, from_=2, term=1), LOCAL_FROM_NETWORK),
        (Message(MT.HEARTBEAT_RESPONSE, to=3, from_=2, term=1), MISADDRESSED),
        (Message(MT.HEARTBEAT_RESPONSE, to=1, from_=9, term=1), UNKNOWN_SENDER),
    ],
    ids=["local_kind", "misaddressed", "unknown_sender"],
)
def test_step_typed_still_refuses_what_depends_on_the_receiver(message, reason):
    net = elected()
    leader = net.node(1)
    before = leader.raft.term, leader.raft.role
    leader.step_typed(message)
    assert leader.statistics().rejected(reason) == 1
    assert (leader.raft.term, leader.raft.role) == before

