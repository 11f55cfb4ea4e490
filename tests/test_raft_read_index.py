"""Linearizable reads through ReadIndex, in raft-rs's two flavours (issue 17).

``RawNode.read_index(ctx)`` asks for a read; ``Ready.read_states`` answers
with ``ReadState(index, ctx)`` once the leader has confirmed it still leads:
by a heartbeat round a quorum answers (``ReadOnlyOption.SAFE``) or by its
check-quorum lease (``LEASE_BASED``). The harness records every node's read
states in ``net.read_states``. The cases follow raft-rs ``test_read_only*``
and etcd's ``TestReadOnlyOptionSafe`` / ``TestReadOnlyForNewLeader``.
"""

from __future__ import annotations

import pytest

from simulator import (
    Config,
    ConfigError,
    Entry,
    Message,
    MessageType,
    ReadOnlyOption,
    ReadState,
    Role,
)
from simulator.raft.read_only import lease_context
from simulator.raft.reasons import MALFORMED, READ_DROPPED
from simulator.testing import Network

MT = MessageType
SAFE, LEASE = ReadOnlyOption.SAFE, ReadOnlyOption.LEASE_BASED
ELECTION_TICK = 10


def elected(voters=(1, 2, 3), **config) -> Network:
    net = Network(voters, config=lambda node_id: Config(id=node_id, **config))
    net.campaign(1)
    assert net.leader_id() == 1
    return net


def committed(net: Network, node_id: int = 1) -> int:
    return net.node(node_id).raft.raft_log.committed


def reads(net: Network, node_id: int) -> list[ReadState]:
    return net.read_states.get(node_id, [])


# -- Safe: a heartbeat round confirms leadership --------------------------------------------


def test_safe_read_on_the_leader_waits_for_a_heartbeat_quorum():
    net = elected(read_only_option=SAFE)
    net.node(1).read_index(b"r1")
    net.process_readies()
    assert reads(net, 1) == []  # not before the followers answered
    beats = [m for m in net.in_flight if m.msg_type is MT.HEARTBEAT]
    assert sorted(m.to for m in beats) == [2, 3] and all(m.context == b"r1" for m in beats)
    net.deliver()  # heartbeat to 2
    net.deliver()  # heartbeat to 3
    net.deliver()  # 2 answers: with the leader, a quorum
    assert reads(net, 1) == [ReadState(committed(net), b"r1")]


def test_safe_read_is_not_served_by_a_leader_cut_off_from_the_quorum():
    net = elected(read_only_option=SAFE)
    net.isolate(1)
    net.node(1).read_index(b"stale?")
    net.stabilize()
    net.tick(1, 5)
    net.stabilize()
    assert reads(net, 1) == []


def test_safe_read_index_includes_every_write_acknowledged_before_the_read():
    net = elected(read_only_option=SAFE)
    net.propose(1, b"w1")
    net.stabilize()
    write_index = committed(net)
    net.node(2).read_index(b"after-w1")
    net.stabilize()
    (state,) = reads(net, 2)
    assert state.index >= write_index
    assert net.applied(2)[-1] == b"w1"


def test_reads_queued_before_an_acknowledged_one_are_released_with_it():
    net = elected(read_only_option=SAFE)
    net.add_filter(lambda m: m.msg_type is not MT.HEARTBEAT_RESPONSE)
    net.node(1).read_index(b"a")
    net.node(1).read_index(b"b")
    net.stabilize()
    assert reads(net, 1) == []
    net.heal()
    net.node(1).read_index(b"c")
    net.stabilize()
    assert [s.request_ctx for s in reads(net, 1)] == [b"a", b"b", b"c"]


def test_read_pending_on_a_leader_that_steps_down_is_never_served():
    net = elected(read_only_option=SAFE)
    net.add_filter(lambda m: m.msg_type is not MT.HEARTBEAT_RESPONSE)
    net.node(1).read_index(b"lost")
    net.stabilize()
    net.node(1).transfer_leader(2)
    net.stabilize()
    assert net.leader_id() == 2 and net.node(1).raft.role is Role.FOLLOWER
    net.heal()
    net.stabilize()
    assert reads(net, 1) == []


# -- LeaseBased: the check-quorum lease stands in for the round trip --------------------------


def lease_holder(ticks: int = 1) -> Network:
    """A lease-based leader whose followers acknowledged its heartbeats for ``ticks`` ticks."""
    net = elected(read_only_option=LEASE)
    for _ in range(ticks):
        net.tick(1)
        net.stabilize()
    return net


def heartbeats_in_flight(net: Network) -> list:
    return [m for m in net.in_flight if m.msg_type is MT.HEARTBEAT]


def test_lease_based_read_is_served_without_a_heartbeat_round():
    net = lease_holder()
    net.node(1).read_index(b"fast")
    net.process_readies()
    assert reads(net, 1) == [ReadState(committed(net), b"fast")]
    assert not heartbeats_in_flight(net)


def test_lease_based_leader_without_acknowledged_heartbeats_takes_a_heartbeat_round():
    net = elected(read_only_option=LEASE)  # elected, but no lease heartbeat answered yet
    net.node(1).read_index(b"first")
    net.process_readies()
    assert reads(net, 1) == []
    assert [m.context for m in heartbeats_in_flight(net)] == [b"first", b"first"]
    net.stabilize()
    assert [s.request_ctx for s in reads(net, 1)] == [b"first"]


@pytest.mark.parametrize(("silent_ticks", "served_at_once"), [(ELECTION_TICK - 3, True), (ELECTION_TICK - 1, False)])
def test_lease_lasts_election_tick_minus_two_ticks_after_the_last_acknowledged_heartbeat(
    silent_ticks, served_at_once
):
    net = lease_holder()
    net.add_filter(lambda m: m.msg_type is not MT.HEARTBEAT_RESPONSE)
    net.tick(1, silent_ticks)
    net.stabilize()
    net.node(1).read_index(b"in-lease?")
    net.process_readies()
    assert (reads(net, 1) != []) is served_at_once


def test_lease_based_read_during_a_leader_transfer_takes_a_heartbeat_round():
    net = lease_holder()
    net.add_filter(lambda m: m.msg_type is not MT.TIMEOUT_NOW)
    net.cut(1, 3)
    net.propose(1, b"3-lags")
    net.stabilize()
    net.node(1).transfer_leader(3)  # 3 lags: the transfer waits for it to catch up
    net.process_readies()
    assert net.node(1).raft.lead_transferee == 3
    net.node(1).read_index(b"during")
    net.process_readies()
    assert reads(net, 1) == []
    assert any(m.context == b"during" for m in heartbeats_in_flight(net))


def test_lease_heartbeat_answer_from_the_future_is_ignored():
    net = elected(read_only_option=LEASE)
    forged = lease_context(10**6)
    net.send(Message(MT.HEARTBEAT_RESPONSE, to=1, from_=2, term=1, context=forged))
    net.send(Message(MT.HEARTBEAT_RESPONSE, to=1, from_=3, term=1, context=forged))
    net.stabilize()
    net.add_filter(lambda m: m.msg_type is not MT.HEARTBEAT_RESPONSE)
    net.node(1).read_index(b"no-lease")
    net.process_readies()
    assert reads(net, 1) == []


def test_lease_based_read_needs_check_quorum():
    with pytest.raises(ConfigError, match="check_quorum"):
        Config(id=1, read_only_option=LEASE, check_quorum=False).validate()


# -- followers forward reads --------------------------------------------------------------


@pytest.mark.parametrize("option", [SAFE, LEASE])
def test_read_on_a_follower_is_forwarded_and_answered_with_the_leaders_index(option):
    net = elected(read_only_option=option)
    net.propose(1, b"w")
    net.stabilize()
    net.node(3).read_index(b"from-3")
    net.process_readies()
    (forwarded,) = [m for m in net.in_flight if m.msg_type is MT.READ_INDEX]
    assert (forwarded.from_, forwarded.to) == (3, 1)
    net.stabilize()
    assert reads(net, 3) == [ReadState(committed(net), b"from-3")]
    assert reads(net, 1) == []


def test_read_on_a_follower_without_a_leader_is_dropped_and_counted():
    net = Network((1, 2, 3))
    net.node(2).read_index(b"nobody")
    net.stabilize()
    assert net.node(2).statistics().rejected(READ_DROPPED) == 1
    assert reads(net, 2) == []


# -- a new leader serves no read before it commits an entry of its term ---------------------


@pytest.mark.parametrize("option", [SAFE, LEASE])
def test_new_leader_serves_no_read_before_committing_an_entry_of_its_term(option):
    net = Network((1, 2, 3), config=lambda node_id: Config(id=node_id, read_only_option=option))
    net.add_filter(lambda m: m.msg_type is not MT.APPEND_RESPONSE)  # its entry cannot commit
    net.campaign(1)
    assert net.node(1).raft.role is Role.LEADER
    net.node(1).read_index(b"early")
    net.stabilize()
    assert reads(net, 1) == []
    assert net.node(1).statistics().event("reads_deferred_until_term_commit") == 1
    net.heal()
    net.tick(1)  # a heartbeat; its answer brings the append through
    net.stabilize()
    (state,) = reads(net, 1)
    assert state.request_ctx == b"early"
    raft = net.node(1).raft
    assert raft.raft_log.term(state.index) == raft.term  # the entry of its own term


def test_single_voter_serves_reads_at_once():
    net = elected(voters=(1,))
    net.node(1).read_index(b"alone")
    net.process_readies()
    assert reads(net, 1) == [ReadState(committed(net), b"alone")]


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("context", [b"", "text", None, lease_context(1)])
def test_read_index_needs_a_non_empty_bytes_context(context):
    net = elected()
    with pytest.raises(ValueError, match="read context"):
        net.node(1).read_index(context)


@pytest.mark.parametrize(
    "message",
    [
        Message(MT.READ_INDEX, to=1, from_=2),
        Message(MT.READ_INDEX, to=1, from_=2, entries=(Entry(term=0, index=0),)),
        Message(MT.READ_INDEX, to=1, from_=2, entries=(Entry(0, 0, b"a"), Entry(0, 0, b"b"))),
    ],
    ids=["no_context", "empty_context", "two_contexts"],
)
def test_malformed_read_request_is_counted_and_ignored(message):
    net = elected()
    net.send(message)
    net.stabilize()
    assert net.node(1).statistics().rejected(MALFORMED) == 1
    assert not any(reads(net, n) for n in (1, 2, 3))


def test_malformed_read_answer_is_counted_and_ignored():
    net = elected()
    term = net.node(1).raft.term
    net.send(Message(MT.READ_INDEX_RESPONSE, to=2, from_=1, term=term, index=1))
    net.stabilize()
    assert net.node(2).statistics().rejected(MALFORMED) == 1
    assert reads(net, 2) == []
