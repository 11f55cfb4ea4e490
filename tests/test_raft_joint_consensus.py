"""Joint consensus (``ConfChangeV2``): several members changed safely at once (issue 17).

A change of more than one voter first enters a joint configuration, where
every decision (commit, election, check-quorum) needs a majority of the old
voters (``voters_outgoing``) *and* of the new ones, and then leaves it —
automatically (``AUTO`` / ``IMPLICIT``) or when the application asks
(``EXPLICIT``). The cases follow raft-rs ``test_raft.rs`` (joint
configuration tests) and etcd's ``confchange`` data-driven tests.
"""

from __future__ import annotations

import pytest

from simulator import (
    ConfChange,
    ConfChangePendingError,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfChangeV2,
    Config,
    ConfState,
    Entry,
    EntryType,
    InvalidConfChangeError,
    Message,
    MessageType,
    Role,
    changed_conf_state,
    decode_conf_change,
)
from simulator.testing import Network

EXPLICIT = ConfChangeTransition.EXPLICIT
IMPLICIT = ConfChangeTransition.IMPLICIT


def elected(voters=(1, 2, 3), learners=(), **config) -> Network:
    net = Network(voters, learners=learners, config=lambda node_id: Config(id=node_id, **config))
    net.campaign(1)
    assert net.leader_id() == 1
    return net


def conf(net: Network, node_id: int) -> ConfState:
    return net.node(node_id).raft.conf_state


def committed(net: Network, node_id: int = 1) -> int:
    return net.node(node_id).raft.raft_log.committed


def settle(net: Network, ticks: int = 3) -> None:
    for _ in range(ticks):
        net.tick_all()
        net.stabilize()


def joint_1_45_over_1_2_3(transition=EXPLICIT, **config) -> Network:
    """Voters {1,2,3}, learners 4 and 5 caught up, then 4 and 5 replace 2 and 3 jointly."""
    net = elected(**config)
    net.propose(1, b"before")
    net.stabilize()
    net.compact(1)
    for learner in (4, 5):
        net.propose_conf_change(1, ConfChange(ConfChangeType.ADD_LEARNER_NODE, learner))
        net.stabilize()
        net.compact(1)
        net.add_node(learner)
        settle(net)
    net.propose_conf_change(1, ConfChangeV2.of(add=(4, 5), remove=(2, 3), transition=transition))
    net.stabilize()
    return net


# -- entering and leaving --------------------------------------------------------------------


def test_explicit_joint_configuration_needs_both_halves_and_stays_until_left():
    net = joint_1_45_over_1_2_3(EXPLICIT)
    joint = ConfState.of((1, 4, 5), voters_outgoing=(1, 2, 3))
    assert all(conf(net, n) == joint for n in (1, 2, 3, 4, 5))
    assert net.nodes[1].storage.conf_state == joint
    settle(net, 5)
    assert conf(net, 1) == joint  # explicit: no automatic leave
    net.propose_conf_change(1, ConfChangeV2())
    net.stabilize()
    assert all(conf(net, n) == ConfState.of((1, 4, 5)) for n in (1, 4, 5))
    assert net.node(1).statistics().event("joint_configurations_left") == 1


@pytest.mark.parametrize("transition", [ConfChangeTransition.AUTO, IMPLICIT])
def test_joint_configuration_is_left_automatically_once_applied(transition):
    net = joint_1_45_over_1_2_3(transition)
    assert conf(net, 1) == ConfState.of((1, 4, 5))
    stats = net.node(1).statistics()
    assert stats.event("joint_auto_leave_proposed") == 1
    types = [e.entry_type for e in net.node(1).raft.raft_log.all_entries()]
    assert types[-2:] == [EntryType.CONF_CHANGE_V2, EntryType.CONF_CHANGE_V2]
    # Nodes 2 and 3 are no longer members of the leader's configuration.
    assert sorted(net.node(1).raft.prs.progress) == [1, 4, 5]


def test_joint_commit_needs_a_majority_of_the_outgoing_voters():
    net = joint_1_45_over_1_2_3()
    net.cut(1, 2)
    net.cut(1, 3)
    before = committed(net)
    net.propose(1, b"needs-old-half")
    net.stabilize()
    assert committed(net) == before  # 1, 4, 5 agree: a majority of the new half only
    net.heal()
    net.cut(1, 3)
    net.tick(1)
    net.stabilize()
    assert committed(net) == before + 1  # 1 and 2: the old half has its majority too


def test_joint_commit_needs_a_majority_of_the_incoming_voters():
    net = joint_1_45_over_1_2_3()
    net.cut(1, 4)
    net.cut(1, 5)
    before = committed(net)
    net.propose(1, b"needs-new-half")
    net.stabilize()
    assert committed(net) == before  # 1, 2, 3 agree: only the old half
    net.heal()
    net.cut(1, 5)
    net.tick(1)
    net.stabilize()
    assert committed(net) == before + 1


def test_election_in_a_joint_configuration_needs_both_majorities():
    # Without leader leases, so votes are decided by the configuration alone.
    net = joint_1_45_over_1_2_3(check_quorum=False, pre_vote=False)
    net.crash(1)
    net.partition([4, 5], [2, 3])
    net.node(4).campaign()
    net.stabilize()
    # 4 and 5 are a majority of {1, 4, 5} but none of {1, 2, 3}.
    assert net.node(4).raft.role is not Role.LEADER
    net.heal()
    net.node(4).campaign()
    net.stabilize()
    assert net.leader_id() == 4


def test_demoted_voter_stays_an_outgoing_voter_until_the_joint_configuration_is_left():
    net = elected()
    net.propose_conf_change(1, ConfChangeV2.of(add_learners=(3,), transition=EXPLICIT))
    net.stabilize()
    joint = ConfState.of((1, 2), voters_outgoing=(1, 2, 3), learners_next=(3,))
    assert conf(net, 1) == joint
    assert net.node(3).raft.promotable  # still votes in the old half
    net.propose_conf_change(1, ConfChangeV2())
    net.stabilize()
    assert all(conf(net, n) == ConfState.of((1, 2), (3,)) for n in (1, 2, 3))
    assert not net.node(3).raft.promotable


def test_leader_removed_by_a_joint_change_hands_over_after_leaving():
    net = elected()
    for node_id in (4, 5):
        net.propose_conf_change(1, ConfChange(ConfChangeType.ADD_LEARNER_NODE, node_id))
        net.stabilize()
    net.compact(1)
    for node_id in (4, 5):
        net.add_node(node_id)
    settle(net)
    net.propose_conf_change(1, ConfChangeV2.of(add=(4, 5), remove=(1,)))
    net.stabilize()
    settle(net)
    assert conf(net, 2) == ConfState.of((2, 3, 4, 5))
    assert net.node(1).statistics().event("leader_removed_itself") == 1
    leader = net.leader_id()
    assert leader in (2, 3, 4, 5)
    net.propose(leader, b"after-handover")
    net.stabilize()
    assert net.applied(4)[-1] == b"after-handover"


def test_learner_added_after_a_joint_change_catches_up_by_snapshot():
    net = joint_1_45_over_1_2_3()
    net.propose(1, b"x")
    net.stabilize()
    net.add_node(6)
    net.propose_conf_change(1, ConfChangeV2())  # leave, then add 6 as learner
    net.stabilize()
    net.propose_conf_change(1, ConfChange(ConfChangeType.ADD_LEARNER_NODE, 6))
    net.stabilize()
    net.compact(1)
    settle(net)
    assert conf(net, 6) == ConfState.of((1, 4, 5), (6,))


def test_snapshot_taken_in_a_joint_configuration_restores_it():
    net = joint_1_45_over_1_2_3()
    net.crash(5)
    net.propose(1, b"while-5-is-down")
    net.stabilize()
    net.compact(1)
    snapshot_conf = net.nodes[1].storage.snapshot_metadata.conf_state
    assert snapshot_conf.is_joint
    net.restart(5)
    settle(net)
    assert conf(net, 5) == snapshot_conf
    assert net.applied(5)[-1] == b"while-5-is-down"


# -- the rules -----------------------------------------------------------------------------


def test_one_membership_change_at_a_time_holds_for_joint_changes():
    net = elected()
    net.add_filter(lambda m: m.msg_type.value != "append_response")
    net.propose_conf_change(1, ConfChangeV2.of(add_learners=(4,), transition=EXPLICIT))
    with pytest.raises(ConfChangePendingError):
        net.propose_conf_change(1, ConfChangeV2())


def test_single_server_change_in_a_joint_configuration_is_refused():
    net = joint_1_45_over_1_2_3()
    with pytest.raises(InvalidConfChangeError, match="joint"):
        net.propose_conf_change(1, ConfChange(ConfChangeType.ADD_LEARNER_NODE, 6))
    with pytest.raises(InvalidConfChangeError, match="already in a joint"):
        net.propose_conf_change(1, ConfChangeV2.of(add_learners=(6,), transition=EXPLICIT))


def test_leaving_a_configuration_that_is_not_joint_is_refused():
    net = elected()
    with pytest.raises(InvalidConfChangeError, match="not in a joint"):
        net.propose_conf_change(1, ConfChangeV2())


def test_joint_change_removing_every_new_voter_is_refused():
    with pytest.raises(InvalidConfChangeError, match="every voter"):
        changed_conf_state(ConfState.of((1, 2)), ConfChangeV2.of(remove=(1, 2)))


def test_single_change_v2_applies_directly_and_keeps_the_single_server_checks():
    net = elected()
    net.propose_conf_change(1, ConfChangeV2.of(add_learners=(4,)))
    net.stabilize()
    assert conf(net, 1) == ConfState.of((1, 2, 3), (4,))
    with pytest.raises(InvalidConfChangeError, match="already a voter"):
        net.propose_conf_change(1, ConfChangeV2.of(add=(2,)))


def test_forwarded_joint_change_that_does_not_apply_is_refused_by_the_leader():
    net = elected()
    entry = Entry(0, 0, ConfChangeV2().encode(), EntryType.CONF_CHANGE_V2)  # leave, not joint
    net.send(Message(MessageType.PROPOSE, to=1, from_=2, entries=(entry,)))
    net.stabilize()
    assert net.node(1).statistics().rejected("conf_change_invalid") == 1


# -- the encoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        ConfChangeV2(),
        ConfChangeV2.of(add=(4, 5), remove=(2,), transition=EXPLICIT),
        ConfChangeV2((ConfChangeSingle(ConfChangeType.ADD_LEARNER_NODE, 2**64 - 1),), IMPLICIT, b"ctx"),
    ],
)
def test_conf_change_v2_round_trips(change):
    entry = Entry(0, 0, change.encode(), EntryType.CONF_CHANGE_V2)
    assert decode_conf_change(entry) == change


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"\x02\x00", "at least 4 bytes"),
        (b"\x01\x00\x00\x00", "version must be 2"),
        (b"\x02\x07\x00\x00", "transition must be one of"),
        (b"\x02\x00\x00\x02" + bytes(9), "announces 2 changes"),
        (b"\x02\x00\x00\x01\x05" + bytes(8), "type must be one of"),
        (b"\x02\x00\x00\x01\x00" + bytes(8), "node id must be in"),
    ],
)
def test_conf_change_v2_that_does_not_decode_names_what_is_wrong(data, named):
    with pytest.raises(ValueError, match=named):
        ConfChangeV2.decode(data)


# -- proposal-time strictness, apply-time leniency ---------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4),  # already a learner
        ConfChange(ConfChangeType.ADD_NODE, 1),  # already a voter
        ConfChange(ConfChangeType.REMOVE_NODE, 9),  # not a member
        ConfChange(ConfChangeType.ADD_LEARNER_NODE, 2),  # a voter: single changes never demote
    ],
)
def test_a_no_op_change_is_refused_when_proposed_but_applied_as_a_no_op(change):
    """A newcomer that installed a snapshot already listing it applies its own "add" as a no-op."""
    conf = ConfState.of((1, 2, 3), (4,))
    with pytest.raises(InvalidConfChangeError):
        changed_conf_state(conf, change)
    assert changed_conf_state(conf, change, strict=False) == conf


def test_removing_the_last_voter_is_refused_even_when_applying():
    with pytest.raises(InvalidConfChangeError, match="last voter"):
        changed_conf_state(ConfState.of((1,), (2,)), ConfChange(ConfChangeType.REMOVE_NODE, 1), strict=False)
