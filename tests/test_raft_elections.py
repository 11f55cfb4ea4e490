"""Tests of leader election, pre-vote, check-quorum, leader transfer and bad input.

Modeled on the election cases of raft-rs ``test_raft.rs`` and etcd
``raft_test.go`` / ``raft_paper_test.go``, driven through the synchronous
harness (:class:`simulator.testing.Network`), whose invariant checker runs
after every step. Most tests start from :func:`elected`: a cluster whose
node 1 won an election at once through ``net.campaign``.

Time only moves when a test ticks. :func:`run` ticks and lets the network
settle after every tick, which is how a cluster with working links behaves;
tests that care about message order deliver by hand instead.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from simulator import (
    CAMPAIGN_TRANSFER,
    Config,
    ConfigError,
    ConfState,
    Entry,
    HardState,
    MemStorage,
    Message,
    MessageType,
    ProposalDroppedError,
    RawNode,
    ReadyMisuseError,
    Role,
    Snapshot,
)
from simulator.testing import Network

MT = MessageType
ELECTION_TICK = 10


# -- helpers -------------------------------------------------------------------


def network(voters: Iterable[int] = (1, 2, 3), *, learners=(), seed=0, **config_fields) -> Network:
    """A cluster whose nodes all use ``Config(id=..., **config_fields)``."""
    return Network(
        voters,
        learners=learners,
        seed=seed,
        config=lambda node_id: Config(id=node_id, **config_fields),
    )


def elected(voters: Iterable[int] = (1, 2, 3), *, learners=(), seed=0, **config_fields) -> Network:
    """A settled cluster where node 1 campaigned and leads term 1."""
    net = network(voters, learners=learners, seed=seed, **config_fields)
    net.campaign(1)
    assert net.leader_id() == 1 and net.node(1).raft.term == 1
    return net


def run(net: Network, ticks: int, nodes: Iterable[int] | None = None) -> None:
    """Tick ``nodes`` (default: every live node) ``ticks`` times, settling after each tick."""
    for _ in range(ticks):
        for node_id in nodes if nodes is not None else net.live_ids():
            net.node(node_id).tick()
        net.stabilize()


def leaders(net: Network) -> list[int]:
    return [i for i in net.live_ids() if net.node(i).raft.role is Role.LEADER]


def run_until_single_leader(net: Network, max_ticks: int = 200) -> int:
    """Tick every node until exactly one leader is known to all live nodes; return it."""
    for _ in range(max_ticks):
        run(net, 1)
        found = leaders(net)
        if len(found) == 1:
            leader = found[0]
            term = net.node(leader).raft.term
            if all(
                net.node(i).raft.leader_id == leader and net.node(i).raft.term == term
                for i in net.live_ids()
            ):
                return leader
    raise AssertionError(f"no single leader after {max_ticks} ticks; leaders: {leaders(net)}")


def stats(net: Network, node_id: int):
    return net.node(node_id).statistics()


def persisted_log(net: Network, node_id: int) -> list[Entry]:
    storage = net.nodes[node_id].storage
    return storage.entries(storage.first_index(), storage.last_index() + 1)


def assert_settled_behind(net: Network, leader: int, term: int) -> None:
    """Everyone follows ``leader`` in ``term``; its empty entry of ``term`` is committed on all."""
    last = net.node(leader).raft.raft_log.last_index()
    for node_id in net.live_ids():
        s = stats(net, node_id)
        assert (s.role, s.term, s.leader_id) == (
            Role.LEADER if node_id == leader else Role.FOLLOWER,
            term,
            leader,
        ), f"node {node_id}"
        log = persisted_log(net, node_id)
        assert log[-1] == Entry(term=term, index=last), f"node {node_id} log {log!r}"
        assert s.commit == last and net.hard_state(node_id).commit == last, f"node {node_id}"


def in_flight_of(net: Network, msg_type: MessageType) -> list[Message]:
    return [m for m in net.in_flight if m.msg_type is msg_type]


def node_state(node: RawNode) -> tuple:
    """What bad input must never change."""
    raft = node.raft
    return (
        raft.role,
        raft.term,
        raft.vote,
        raft.leader_id,
        raft.raft_log.committed,
        tuple(raft.raft_log.all_entries()),
    )


# -- elections -----------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 5])
def test_campaign_elects_the_candidate_in_term_1(size):
    voters = range(1, size + 1)
    net = network(voters)
    net.campaign(1)
    # Pre-vote does not spend a term: the real election is term 1.
    assert_settled_behind(net, leader=1, term=1)
    assert persisted_log(net, 1) == [Entry(term=1, index=1)]
    assert stats(net, 1).event("pre_elections") == 1
    assert stats(net, 1).event("elections") == 1
    for node_id in voters:
        assert net.hard_state(node_id) == HardState(term=1, vote=1, commit=1)


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ticks_alone_elect_exactly_one_leader(size, seed):
    net = network(range(1, size + 1), seed=seed)
    leader = run_until_single_leader(net)
    term = net.node(leader).raft.term
    assert term >= 1
    assert_settled_behind(net, leader=leader, term=term)
    assert stats(net, leader).event("became_leader") == 1


def test_split_vote_resolves_in_a_later_term():
    """Two candidates of term 1 each get half of 4 votes; randomized timeouts break the tie."""
    net = network((1, 2, 3, 4), pre_vote=False)
    net.node(1).campaign()
    net.node(2).campaign()
    # Node 3 hears only from candidate 1, node 4 only from candidate 2.
    net.drop(1, 4)
    net.drop(2, 3)
    net.stabilize()
    assert [net.node(i).raft.role for i in (1, 2, 3, 4)] == [
        Role.CANDIDATE,
        Role.CANDIDATE,
        Role.FOLLOWER,
        Role.FOLLOWER,
    ]
    assert [net.hard_state(i) for i in (1, 2, 3, 4)] == [
        HardState(term=1, vote=1),
        HardState(term=1, vote=2),
        HardState(term=1, vote=1),
        HardState(term=1, vote=2),
    ]
    assert leaders(net) == []

    net.heal()
    leader = run_until_single_leader(net)
    term = net.node(leader).raft.term
    assert term >= 2
    assert_settled_behind(net, leader=leader, term=term)


def test_single_node_elects_itself_at_once_and_commits_alone():
    net = network((1,))
    net.node(1).campaign()
    assert net.node(1).raft.role is Role.LEADER
    assert net.node(1).raft.term == 1
    net.propose(1, b"alone")
    assert net.in_flight == []
    assert net.applied(1) == [b"alone"]
    assert net.hard_state(1) == HardState(term=1, vote=1, commit=2)


def test_single_node_elects_itself_by_ticking():
    net = network((1,))
    run(net, 2 * ELECTION_TICK)
    assert net.node(1).raft.role is Role.LEADER
    assert net.node(1).raft.term == 1
    assert stats(net, 1).event("became_leader") == 1


# -- voting rules (§5.2, §5.4.1) -----------------------------------------------


def follower_with_log() -> RawNode:
    """Node 1 of (1, 2, 3), term 2, log [(index 1, term 1), (index 2, term 2)], no leader."""
    storage = MemStorage.new_with_conf_state(ConfState.of([1, 2, 3]))
    storage.append([Entry(term=1, index=1), Entry(term=2, index=2)])
    storage.set_hard_state(HardState(term=2, commit=0))
    return RawNode(Config(id=1), storage, random.Random(0))


@pytest.mark.parametrize("vote_type", [MT.REQUEST_VOTE, MT.REQUEST_PRE_VOTE])
@pytest.mark.parametrize(
    ("last_index", "last_term", "granted"),
    [
        (2, 2, True),  # same last entry
        (3, 2, True),  # same last term, longer
        (1, 3, True),  # newer last term wins even with a shorter log
        (1, 2, False),  # same last term, shorter
        (1, 1, False),  # older last term
        (5, 1, False),  # longer but older last term
    ],
)
def test_vote_granted_only_to_an_up_to_date_log(vote_type, last_index, last_term, granted):
    node = follower_with_log()
    node.step(Message(vote_type, to=1, from_=2, term=3, index=last_index, log_term=last_term))
    ready = node.ready()
    response_type = (
        MT.REQUEST_VOTE_RESPONSE if vote_type is MT.REQUEST_VOTE else MT.REQUEST_PRE_VOTE_RESPONSE
    )
    assert [(m.msg_type, m.to, m.reject) for m in ready.messages] == [
        (response_type, 2, not granted)
    ]
    if vote_type is MT.REQUEST_VOTE:
        assert node.raft.term == 3
        assert node.raft.vote == (2 if granted else 0)
    else:
        # A pre-vote moves neither term nor vote.
        assert (node.raft.term, node.raft.vote) == (2, 0)


def test_node_with_stale_log_cannot_win():
    net = elected(pre_vote=False, check_quorum=False)
    net.isolate(3)
    net.propose(1, b"x")
    net.stabilize()
    assert net.node(3).raft.raft_log.last_index() == 1
    assert net.node(2).raft.raft_log.last_index() == 2

    net.heal()
    net.isolate(1)
    net.node(3).campaign()
    net.process_readies()
    net.deliver_at(net.in_flight.index(next(m for m in net.in_flight if m.to == 2)))
    [response] = in_flight_of(net, MT.REQUEST_VOTE_RESPONSE)
    assert (response.from_, response.to, response.term, response.reject) == (2, 3, 2, True)
    # Node 2 moved to the candidate's term but kept its vote for nobody.
    assert net.hard_state(2) == HardState(term=2, vote=0, commit=2)
    net.stabilize()
    assert net.node(3).raft.role is Role.CANDIDATE
    assert stats(net, 3).event("became_leader") == 0

    # The up-to-date node wins instead, and the stale node takes its entry.
    net.campaign(2)
    assert net.node(2).raft.role is Role.LEADER
    assert net.applied(3) == [b"x"]


def test_vote_granted_at_most_once_per_term():
    net = network(pre_vote=False)
    net.node(1).campaign()
    net.node(3).campaign()
    net.process_readies()
    request_from_1 = next(m for m in net.in_flight if m.from_ == 1 and m.to == 2)
    request_from_3 = next(m for m in net.in_flight if m.from_ == 3 and m.to == 2)
    assert request_from_1.term == request_from_3.term == 1

    net.node(2).step(request_from_1)
    net.node(2).step(request_from_3)
    # A repeat of the request already granted is granted again (lost response).
    net.node(2).step(request_from_1)
    responses = net.node(2).ready().messages
    assert [(m.to, m.term, m.reject) for m in responses] == [
        (1, 1, False),
        (3, 1, True),
        (1, 1, False),
    ]
    assert net.node(2).raft.vote == 1


def test_vote_is_remembered_across_a_restart():
    """The vote is persisted in the hard state, so a restart cannot grant a second one."""
    net = network(pre_vote=False)
    net.node(1).campaign()
    net.node(3).campaign()
    net.process_readies()
    request_from_1 = next(m for m in net.in_flight if m.from_ == 1 and m.to == 2)
    request_from_3 = next(m for m in net.in_flight if m.from_ == 3 and m.to == 2)
    net.in_flight.clear()
    net.node(2).step(request_from_1)
    net.process_ready(2)
    assert net.hard_state(2) == HardState(term=1, vote=1)

    net.crash(2)
    net.restart(2)
    net.in_flight.clear()
    net.node(2).step(request_from_3)
    [response] = net.node(2).ready().messages
    assert (response.to, response.term, response.reject) == (3, 1, True)
    assert net.node(2).raft.vote == 1


def test_candidate_rejects_a_rival_of_its_own_term():
    net = network(pre_vote=False)
    net.node(1).campaign()
    net.node(2).campaign()
    net.process_readies()
    rival = next(m for m in net.in_flight if m.from_ == 2 and m.to == 1)
    net.in_flight.clear()
    net.node(1).step(rival)
    [response] = net.node(1).ready().messages
    assert (response.msg_type, response.to, response.reject) == (MT.REQUEST_VOTE_RESPONSE, 2, True)
    assert (net.node(1).raft.role, net.node(1).raft.vote) == (Role.CANDIDATE, 1)


# -- pre-vote ------------------------------------------------------------------


def test_partitioned_node_with_pre_vote_keeps_its_term():
    net = elected()
    net.isolate(3)
    run(net, 10 * ELECTION_TICK)
    s = stats(net, 3)
    assert (s.role, s.term) == (Role.PRE_CANDIDATE, 1)
    assert s.event("pre_elections") >= 4
    assert s.event("elections") == 0
    assert net.hard_state(3).term == 1
    assert leaders(net) == [1] and net.node(1).raft.term == 1


def test_rejoining_pre_candidate_does_not_disrupt_the_leader():
    net = elected()
    net.isolate(3)
    run(net, 5 * ELECTION_TICK)
    assert net.node(3).raft.role is Role.PRE_CANDIDATE
    net.heal()
    # Let node 3 ask again now that the links are back.
    for _ in range(2 * ELECTION_TICK):
        net.tick(3)
        if in_flight_of(net, MT.REQUEST_PRE_VOTE):
            break
    assert {m.to for m in in_flight_of(net, MT.REQUEST_PRE_VOTE)} == {1, 2}
    net.stabilize()
    # Both heard from the leader within an election timeout: the pre-vote is ignored.
    assert stats(net, 1).rejected("vote_ignored_in_leader_lease") == 1
    assert stats(net, 2).rejected("vote_ignored_in_leader_lease") == 1
    run(net, 1)
    assert_settled_behind(net, leader=1, term=1)


def test_rejoining_node_without_pre_vote_or_check_quorum_forces_a_new_term():
    net = elected(pre_vote=False, check_quorum=False)
    net.isolate(3)
    run(net, 5 * ELECTION_TICK)
    disrupting_term = net.node(3).raft.term
    assert net.node(3).raft.role is Role.CANDIDATE
    assert disrupting_term > 2
    assert net.node(1).raft.term == 1

    net.heal()
    leader = run_until_single_leader(net)
    term = net.node(leader).raft.term
    assert term >= disrupting_term
    assert_settled_behind(net, leader=leader, term=term)


# -- check-quorum --------------------------------------------------------------


def test_isolated_leader_steps_down_and_majority_elects_a_new_one():
    net = elected()
    net.isolate(1)
    for ticks in range(1, 3 * ELECTION_TICK):
        run(net, 1)
        if net.node(1).raft.role is not Role.LEADER:
            break
    # Quorum is checked every election timeout; the first check may still see old answers.
    assert ticks <= 2 * ELECTION_TICK
    s = stats(net, 1)
    assert (s.role, s.term, s.leader_id) == (Role.FOLLOWER, 1, 0)
    assert s.event("stepped_down_no_quorum") == 1

    for _ in range(5 * ELECTION_TICK):
        if [i for i in leaders(net) if i != 1]:
            break
        run(net, 1)
    [new_leader] = leaders(net)
    assert new_leader in (2, 3)
    assert net.node(new_leader).raft.term == 2
    assert net.node(1).raft.term == 1


@pytest.mark.parametrize("pre_vote", [True, False])
def test_followers_in_leader_lease_ignore_vote_requests(pre_vote):
    net = elected(pre_vote=pre_vote)
    request_type = MT.REQUEST_PRE_VOTE if pre_vote else MT.REQUEST_VOTE
    # Only node 3's clock runs: it stops hearing heartbeats and campaigns.
    for _ in range(2 * ELECTION_TICK):
        net.tick(3)
        if in_flight_of(net, request_type):
            break
    requests = in_flight_of(net, request_type)
    assert {(m.to, m.term) for m in requests} == {(1, 2), (2, 2)}
    net.deliver()
    net.deliver()
    assert stats(net, 1).rejected("vote_ignored_in_leader_lease") == 1
    assert stats(net, 2).rejected("vote_ignored_in_leader_lease") == 1
    assert in_flight_of(net, MT.REQUEST_VOTE_RESPONSE) == []
    assert in_flight_of(net, MT.REQUEST_PRE_VOTE_RESPONSE) == []
    assert net.hard_state(1) == HardState(term=1, vote=1, commit=1)
    assert net.hard_state(2) == HardState(term=1, vote=1, commit=1)
    assert net.node(1).raft.role is Role.LEADER


def test_stale_leader_steps_down_on_the_response_to_its_heartbeat():
    net = elected()
    net.isolate(1)
    # Only 2 and 3 tick: the old leader never notices it lost its quorum.
    for _ in range(5 * ELECTION_TICK):
        run(net, 1, nodes=(2, 3))
        if [i for i in leaders(net) if i != 1]:
            break
    [new_leader] = [i for i in leaders(net) if i != 1]
    assert net.node(new_leader).raft.term == 2
    assert (net.node(1).raft.role, net.node(1).raft.term) == (Role.LEADER, 1)

    net.heal()
    net.tick(1)  # a heartbeat of term 1
    for _ in range(len(net.in_flight)):
        net.deliver()
    replies = [m for m in net.in_flight if m.to == 1]
    assert {(m.msg_type, m.term) for m in replies} == {(MT.APPEND_RESPONSE, 2)}
    assert stats(net, 2).rejected("stale_term") + stats(net, 3).rejected("stale_term") == 2
    net.deliver()
    s = stats(net, 1)
    assert (s.role, s.term) == (Role.FOLLOWER, 2)
    net.stabilize()
    run(net, 1)
    assert_settled_behind(net, leader=new_leader, term=2)


# -- leader transfer -----------------------------------------------------------


def test_transfer_to_up_to_date_follower():
    net = elected()
    net.propose(1, b"a")
    net.stabilize()
    net.node(1).transfer_leader(2)
    net.process_readies()
    assert net.in_flight == [Message(MT.TIMEOUT_NOW, to=2, from_=1, term=1)]
    net.stabilize()
    assert_settled_behind(net, leader=2, term=2)
    assert stats(net, 1).event("leader_transfers_started") == 1
    assert stats(net, 2).event("timeout_now_received") == 1
    assert net.applied(2) == [b"a"]


def test_transfer_campaign_passes_the_leader_lease():
    net = elected()
    net.node(1).transfer_leader(3)
    net.stabilize()
    assert net.leader_id() == 3
    assert stats(net, 2).rejected("vote_ignored_in_leader_lease") == 0


def test_transfer_to_lagging_follower_catches_it_up_first():
    net = elected()
    net.drop(1, 3)
    net.propose(1, b"a")
    net.propose(1, b"b")
    net.stabilize()
    assert net.node(3).raft.raft_log.last_index() == 1
    net.heal()

    net.node(1).transfer_leader(3)
    net.process_readies()
    assert in_flight_of(net, MT.TIMEOUT_NOW) == []
    assert [m.to for m in in_flight_of(net, MT.APPEND)] == [3]
    while not in_flight_of(net, MT.TIMEOUT_NOW):
        net.deliver()
    # TIMEOUT_NOW goes out only once node 3 holds everything the leader has.
    assert net.node(3).raft.raft_log.last_index() == net.node(1).raft.raft_log.last_index() == 3
    net.stabilize()
    assert_settled_behind(net, leader=3, term=2)
    assert net.applied(3) == [b"a", b"b"]


def test_proposals_are_dropped_during_a_transfer():
    net = elected()
    net.drop(1, 3)
    net.propose(1, b"a")
    net.stabilize()
    net.heal()
    net.node(1).transfer_leader(3)
    last = net.node(1).raft.raft_log.last_index()
    with pytest.raises(ProposalDroppedError):
        net.node(1).propose(b"refused")
    assert stats(net, 1).rejected("proposal_dropped") == 1
    assert net.node(1).raft.raft_log.last_index() == last
    net.stabilize()
    assert net.leader_id() == 3
    assert b"refused" not in net.applied(3)


@pytest.mark.parametrize("transferee", [4, 9], ids=["learner", "non_member"])
def test_transfer_to_non_voter_is_ignored(transferee):
    net = elected(learners=(4,))
    net.node(1).transfer_leader(transferee)
    net.process_readies()
    s = stats(net, 1)
    assert s.rejected("transfer_to_non_voter") == 1
    assert s.lead_transferee is None
    assert net.in_flight == []
    net.propose(1, b"still leading")
    net.stabilize()
    assert net.applied(2) == [b"still leading"]
    assert (net.leader_id(), net.node(1).raft.term) == (1, 1)


def test_transfer_to_unreachable_follower_is_aborted_after_an_election_timeout():
    net = elected()
    net.isolate(3)
    net.node(1).transfer_leader(3)
    net.stabilize()
    assert stats(net, 1).lead_transferee == 3
    run(net, ELECTION_TICK - 1, nodes=(1,))
    assert stats(net, 1).lead_transferee == 3
    run(net, 1, nodes=(1,))
    s = stats(net, 1)
    assert s.lead_transferee is None
    assert s.event("leader_transfer_aborted") == 1
    assert (s.role, s.term) == (Role.LEADER, 1)
    net.propose(1, b"after abort")
    net.stabilize()
    assert net.applied(2) == [b"after abort"]


def test_transfer_requested_on_follower_is_forwarded_to_leader():
    net = elected()
    net.node(2).transfer_leader(2)
    net.process_readies()
    assert net.in_flight == [Message(MT.TRANSFER_LEADER, to=1, from_=2)]
    net.stabilize()
    assert_settled_behind(net, leader=2, term=2)


def test_transfer_requested_on_follower_without_leader_is_dropped():
    net = network()
    net.node(2).transfer_leader(3)
    net.process_readies()
    assert net.in_flight == []
    assert stats(net, 2).rejected("proposal_dropped") == 1


# -- learners ------------------------------------------------------------------


def test_learner_never_campaigns_by_ticking():
    net = network(learners=(4,))
    run(net, 20 * ELECTION_TICK, nodes=(4,))
    s = stats(net, 4)
    assert (s.role, s.term, s.leader_id) == (Role.FOLLOWER, 0, 0)
    assert s.event("pre_elections") == s.event("elections") == 0
    assert net.delivered == 0


def test_learner_refuses_to_campaign_when_asked():
    net = network(learners=(4,))
    net.node(4).campaign()
    net.process_readies()
    s = stats(net, 4)
    assert (s.role, s.term) == (Role.FOLLOWER, 0)
    assert s.event("campaign_refused_not_voter") == 1
    assert net.in_flight == []


@pytest.mark.parametrize(
    ("pre_vote", "request_type"), [(True, MT.REQUEST_PRE_VOTE), (False, MT.REQUEST_VOTE)]
)
def test_vote_requests_are_not_sent_to_learners(pre_vote, request_type):
    net = network(learners=(4,), pre_vote=pre_vote)
    net.node(1).campaign()
    net.process_readies()
    assert sorted(m.to for m in net.in_flight) == [2, 3]
    assert all(m.msg_type is request_type for m in net.in_flight)
    net.stabilize()
    # The learner still follows the leader once it replicates.
    assert_settled_behind(net, leader=1, term=1)


def test_learner_votes_do_not_count():
    net = network(learners=(4, 5), pre_vote=False)
    net.node(1).campaign()
    net.process_readies()
    net.in_flight.clear()
    for learner in (4, 5):
        net.node(1).step(Message(MT.REQUEST_VOTE_RESPONSE, to=1, from_=learner, term=1))
    net.process_readies()
    # Three "yes" out of five members, but only one of three voters.
    assert net.node(1).raft.role is Role.CANDIDATE
    assert stats(net, 1).rejected("unknown_sender") == 2
    net.node(1).step(Message(MT.REQUEST_VOTE_RESPONSE, to=1, from_=2, term=1))
    assert net.node(1).raft.role is Role.LEADER


# -- bad input at RawNode.step -------------------------------------------------


def established() -> Network:
    """Leader 1 in term 3 (two transfers after the first election), log 1..4 committed."""
    net = elected()
    net.node(1).transfer_leader(2)
    net.stabilize()
    net.node(2).transfer_leader(1)
    net.stabilize()
    net.propose(1, b"a")
    net.stabilize()
    for node_id in (1, 2, 3):
        assert stats(net, node_id).term == 3
        assert stats(net, node_id).commit == stats(net, node_id).last_index == 4
    return net


def step_bad(net: Network, target: int, message: object, reason: str) -> None:
    """Step ``message`` into ``target``; it must be counted under ``reason`` and change nothing."""
    node = net.node(target)
    before = node_state(node)
    counted = node.statistics().rejected(reason)
    node.step(message)
    assert node.statistics().rejected(reason) == counted + 1
    assert node_state(node) == before


@pytest.mark.parametrize(
    "message",
    [
        Message(MT.HEARTBEAT, to=3, from_=1, term=3, commit=4),
        Message(MT.HEARTBEAT, to=2, from_=2, term=3, commit=4),
        Message(MT.HEARTBEAT, to=2, from_=0, term=3, commit=4),
        Message(MT.REQUEST_VOTE, to=2, from_=2, term=9, index=9, log_term=9),
        Message(MT.REQUEST_VOTE, to=0, from_=3, term=9, index=9, log_term=9),
    ],
    ids=["wrong_to", "from_self", "from_nobody", "vote_from_self", "vote_to_nobody"],
)
def test_misaddressed_message_is_counted_and_ignored(message):
    net = established()
    step_bad(net, 2, message, "misaddressed")
    net.process_readies()
    assert net.in_flight == []


@pytest.mark.parametrize("target", [1, 2], ids=["leader", "follower"])
@pytest.mark.parametrize(
    "msg_type",
    [MT.HUP, MT.BEAT, MT.CHECK_QUORUM, MT.SNAP_STATUS, MT.UNREACHABLE],
    ids=lambda t: t.name,
)
def test_local_message_from_network_is_counted_and_ignored(target, msg_type):
    net = established()
    sender = 3
    message = Message(msg_type, to=target, from_=sender, term=3)
    step_bad(net, target, message, "local_message_from_network")
    net.process_readies()
    assert net.in_flight == []


@pytest.mark.parametrize(
    "msg_type",
    [
        MT.APPEND_RESPONSE,
        MT.HEARTBEAT_RESPONSE,
        MT.REQUEST_VOTE_RESPONSE,
        MT.REQUEST_PRE_VOTE_RESPONSE,
    ],
    ids=lambda t: t.name,
)
def test_response_from_non_member_is_counted_and_ignored(msg_type):
    net = established()
    step_bad(net, 1, Message(msg_type, to=1, from_=9, term=3, index=4), "unknown_sender")
    net.process_readies()
    assert net.in_flight == []


@pytest.mark.parametrize(
    ("target", "message", "answer"),
    [
        (
            2,
            Message(MT.APPEND, to=2, from_=1, term=2, index=4, log_term=2, commit=4),
            MT.APPEND_RESPONSE,
        ),
        (2, Message(MT.HEARTBEAT, to=2, from_=1, term=1, commit=4), MT.APPEND_RESPONSE),
        (2, Message(MT.REQUEST_VOTE, to=2, from_=3, term=2, index=9, log_term=3), None),
        (
            2,
            Message(MT.REQUEST_PRE_VOTE, to=2, from_=3, term=2, index=9, log_term=3),
            MT.REQUEST_PRE_VOTE_RESPONSE,
        ),
        (1, Message(MT.APPEND_RESPONSE, to=1, from_=2, term=2, index=4), None),
        (1, Message(MT.REQUEST_VOTE_RESPONSE, to=1, from_=2, term=2), None),
        (1, Message(MT.HEARTBEAT_RESPONSE, to=1, from_=2, term=1), None),
    ],
    ids=[
        "append",
        "heartbeat",
        "vote",
        "pre_vote",
        "append_response",
        "vote_response",
        "heartbeat_response",
    ],
)
def test_stale_term_message_is_counted_and_ignored(target, message, answer):
    net = established()
    step_bad(net, target, message, "stale_term")
    net.process_readies()
    if answer is None:
        assert net.in_flight == []
    else:
        # The sender learns the current term (and, for a pre-vote, a refusal).
        [reply] = net.in_flight
        assert (reply.msg_type, reply.to, reply.from_, reply.term) == (
            answer,
            message.from_,
            target,
            3,
        )
        if answer is MT.REQUEST_PRE_VOTE_RESPONSE:
            assert reply.reject


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        b"append",
        "heartbeat",
        42,
        {"msg_type": "append"},
        Entry(term=3, index=5),
        (MT.APPEND, 2),
    ],
    ids=["none", "bytes", "str", "int", "dict", "entry", "tuple"],
)
def test_non_message_is_malformed(garbage):
    net = established()
    step_bad(net, 2, garbage, "malformed")
    net.process_readies()
    assert net.in_flight == []


def _append(*entries: Entry, index=4, log_term=3, term=3) -> Message:
    """An append from leader 1 to node 2 after entry 4 of term 3, claiming commit 6."""
    return Message(
        MT.APPEND,
        to=2,
        from_=1,
        term=term,
        index=index,
        log_term=log_term,
        entries=entries,
        commit=6,
    )


@pytest.mark.parametrize(
    "message",
    [
        _append(Entry(term=3, index=5), Entry(term=3, index=7)),
        _append(Entry(term=3, index=6)),
        _append(Entry(term=3, index=5), Entry(term=3, index=5)),
        _append(Entry(term=4, index=5)),
        _append(Entry(term=3, index=5), Entry(term=2, index=6)),
        _append(Entry(term=3, index=5), index=4, log_term=4),
    ],
    ids=[
        "gap_between_entries",
        "first_entry_not_after_index",
        "repeated_index",
        "entry_term_above_message_term",
        "entry_terms_decrease",
        "log_term_above_message_term",
    ],
)
def test_malformed_append_is_counted_and_ignored(message):
    net = established()
    step_bad(net, 2, message, "malformed")
    net.process_readies()
    assert net.in_flight == []


@pytest.mark.parametrize(
    "message",
    [
        _append(Entry(term=7, index=5), Entry(term=7, index=7), term=7),
        _append(Entry(term=9, index=5), term=7),
        Message(MT.SNAPSHOT, to=2, from_=1, term=7),
    ],
    ids=["gap_between_entries", "entry_term_above_message_term", "snapshot_missing"],
)
def test_malformed_message_of_a_higher_term_does_not_move_the_term(message):
    """A garbled message is dropped whole: adopting its term would make the node
    refuse the real leader's messages as stale and force an election."""
    net = established()
    step_bad(net, 2, message, "malformed")
    net.process_readies()
    assert net.hard_state(2) == HardState(term=3, vote=1, commit=4)


def test_heartbeat_commit_past_log_leaves_commit_unchanged():
    net = established()
    step_bad(net, 2, Message(MT.HEARTBEAT, to=2, from_=1, term=3, commit=9), "commit_past_log")
    assert net.node(2).raft.raft_log.committed == 4
    net.process_readies()
    [reply] = net.in_flight
    assert (reply.msg_type, reply.to) == (MT.HEARTBEAT_RESPONSE, 1)


@pytest.mark.parametrize("snapshot", [None, Snapshot()], ids=["missing", "empty"])
def test_snapshot_message_without_snapshot_is_malformed(snapshot):
    net = established()
    step_bad(net, 2, Message(MT.SNAPSHOT, to=2, from_=1, term=3, snapshot=snapshot), "malformed")
    net.process_readies()
    assert net.in_flight == []


# -- API misuse ----------------------------------------------------------------


def standalone_node() -> RawNode:
    """Node 1 of (1, 2, 3) outside any network, with a Ready waiting (it campaigned)."""
    node = RawNode(
        Config(id=1), MemStorage.new_with_conf_state(ConfState.of([1, 2, 3])), random.Random(0)
    )
    node.campaign()
    assert node.has_ready()
    return node


def test_advance_without_ready_raises():
    node = standalone_node()
    ready = node.ready()
    node.advance(ready)
    with pytest.raises(ReadyMisuseError, match="without an outstanding Ready"):
        node.advance(ready)


def test_advance_with_an_old_ready_raises():
    node = standalone_node()
    first = node.ready()
    node.advance(first)
    second = node.ready()
    expected = f"got Ready {first.number}, expected Ready {second.number}"
    with pytest.raises(ReadyMisuseError, match=expected):
        node.advance(first)
    node.advance(second)  # the right one is still accepted


def test_ready_twice_without_advance_raises():
    node = standalone_node()
    first = node.ready()
    with pytest.raises(ReadyMisuseError, match=f"Ready {first.number} was not advanced"):
        node.ready()


def test_propose_on_follower_without_leader_raises():
    net = network()
    with pytest.raises(ProposalDroppedError, match="knows no leader"):
        net.node(2).propose(b"x")
    assert stats(net, 2).rejected("proposal_dropped") == 1
    assert stats(net, 2).last_index == 0


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"id": 0}, "id"),
        ({"id": -1}, "id"),
        ({"heartbeat_tick": 0}, "heartbeat_tick"),
        ({"heartbeat_tick": -1}, "heartbeat_tick"),
        ({"election_tick": 1}, "election_tick"),
        ({"election_tick": 5, "heartbeat_tick": 5}, "election_tick"),
        ({"election_tick": 0}, "election_tick"),
        ({"max_size_per_msg": 0}, "max_size_per_msg"),
        ({"max_inflight_msgs": 0}, "max_inflight_msgs"),
        ({"applied": -1}, "applied"),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else value,
)
def test_invalid_config_raises_config_error_naming_the_field(fields, named):
    config = Config(**{"id": 1, **fields})
    storage = MemStorage.new_with_conf_state(ConfState.of([1, 2, 3]))
    with pytest.raises(ConfigError, match=rf"\b{named}\b"):
        RawNode(config, storage, random.Random(0))


def test_only_a_transfer_campaign_carries_the_transfer_context():
    """The context lets a candidate through the leader lease; plain campaigns must not send it."""
    net = network(pre_vote=False)
    net.node(1).campaign()
    net.process_readies()
    assert {m.context for m in in_flight_of(net, MT.REQUEST_VOTE)} == {b""}
    net.stabilize()
    net.node(1).transfer_leader(2)
    net.process_readies()
    net.deliver()  # TIMEOUT_NOW
    requests = in_flight_of(net, MT.REQUEST_VOTE)
    assert {(m.from_, m.to, m.term, m.context) for m in requests} == {
        (2, 1, 2, CAMPAIGN_TRANSFER),
        (2, 3, 2, CAMPAIGN_TRANSFER),
    }
