"""The smaller raft-rs options, each with what it changes (issue 17).

Every option defaults to the behaviour the core always had (the golden
traces check that byte for byte); each test here shows the difference the
option makes against the default in the same run.
"""

from __future__ import annotations

import random

import pytest

from simulator import (
    Config,
    ConfigError,
    ConfState,
    MemStorage,
    MessageType,
    ProposalDroppedError,
    RawNode,
    Role,
)
from simulator.raft.reasons import PROPOSAL_NOT_FORWARDED, UNCOMMITTED_SIZE_EXCEEDED
from simulator.testing import Network

MT = MessageType


def elected(voters=(1, 2, 3), config_for=None, **config) -> Network:
    net = Network(voters, config=config_for or (lambda node_id: Config(id=node_id, **config)))
    net.campaign(1)
    assert net.leader_id() == 1
    return net


def timeouts(config: Config, draws: int = 400) -> set[int]:
    node = RawNode(config, MemStorage.new_with_conf_state(ConfState.of((1, 2, 3))), random.Random(7))
    seen = set()
    for _ in range(draws):
        node.raft._reset_randomized_election_timeout()
        seen.add(node.raft.randomized_election_timeout)
    return seen


# -- min_election_tick / max_election_tick ----------------------------------------------------


def test_election_timeouts_are_drawn_from_election_tick_to_twice_it_by_default():
    assert timeouts(Config(id=1, election_tick=10)) == set(range(10, 20))


def test_min_and_max_election_tick_bound_the_randomized_timeout():
    assert timeouts(Config(id=1, election_tick=10, min_election_tick=12, max_election_tick=15)) == {12, 13, 14}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"min_election_tick": 5}, "min_election_tick must be >= election_tick"),
        ({"min_election_tick": 12, "max_election_tick": 12}, "max_election_tick must be >"),
        ({"max_uncommitted_size": 0}, "max_uncommitted_size"),
    ],
)
def test_option_out_of_range_is_a_config_error_naming_it(fields, named):
    with pytest.raises(ConfigError, match=named):
        Config(id=1, election_tick=10, **fields).validate()


# -- max_uncommitted_size --------------------------------------------------------------------


def test_max_uncommitted_size_refuses_proposals_until_entries_commit():
    net = elected(max_uncommitted_size=10)
    net.add_filter(lambda m: m.msg_type is not MT.APPEND_RESPONSE)  # nothing commits
    net.propose(1, b"123456")
    net.propose(1, b"1234")  # 10 bytes wait: still within the limit
    with pytest.raises(ProposalDroppedError, match="max_uncommitted_size"):
        net.propose(1, b"x")
    assert net.node(1).statistics().rejected(UNCOMMITTED_SIZE_EXCEEDED) == 1
    net.heal()
    net.tick(1)
    net.stabilize()
    net.propose(1, b"x")  # everything committed: room again
    net.stabilize()
    assert net.applied(2) == [b"123456", b"1234", b"x"]


def test_max_uncommitted_size_always_takes_one_proposal_into_an_empty_tail():
    net = elected(max_uncommitted_size=4)
    net.propose(1, b"larger than the limit")
    net.stabilize()
    assert net.applied(3) == [b"larger than the limit"]


def test_without_max_uncommitted_size_proposals_pile_up():
    net = elected()
    net.add_filter(lambda m: m.msg_type is not MT.APPEND_RESPONSE)
    for _ in range(50):
        net.propose(1, b"0123456789")
    assert net.node(1).statistics().rejected(UNCOMMITTED_SIZE_EXCEEDED) == 0


# -- skip_bcast_commit -------------------------------------------------------------------------


@pytest.mark.parametrize("skip", [False, True])
def test_skip_bcast_commit_lets_followers_learn_the_commit_with_the_next_message(skip):
    net = elected(skip_bcast_commit=skip)
    net.propose(1, b"w")
    net.stabilize()
    leader_commit = net.node(1).raft.raft_log.committed
    follower_commit = net.node(2).raft.raft_log.committed
    if skip:
        assert follower_commit == leader_commit - 1  # not told yet
        net.tick(1)  # the next heartbeat carries it
        net.stabilize()
        assert net.node(2).raft.raft_log.committed == leader_commit
    else:
        assert follower_commit == leader_commit


# -- batch_append -----------------------------------------------------------------------------


@pytest.mark.parametrize(("batch", "appends_per_follower"), [(False, 2), (True, 1)])
def test_batch_append_merges_appends_waiting_in_one_ready(batch, appends_per_follower):
    net = elected(batch_append=batch)
    net.node(1).propose(b"one")
    net.node(1).propose(b"two")
    net.process_ready(1)
    appends = [m for m in net.in_flight if m.msg_type is MT.APPEND and m.to == 2]
    assert len(appends) == appends_per_follower
    assert [e.data for m in appends for e in m.entries] == [b"one", b"two"]
    net.stabilize()
    assert net.applied(3) == [b"one", b"two"]


# -- disable_proposal_forwarding --------------------------------------------------------------


def test_disable_proposal_forwarding_drops_proposals_on_followers():
    net = elected(disable_proposal_forwarding=True)
    with pytest.raises(ProposalDroppedError, match="forwarding is disabled"):
        net.propose(2, b"via-follower")
    assert net.node(2).statistics().rejected(PROPOSAL_NOT_FORWARDED) == 1
    assert not [m for m in net.in_flight if m.msg_type is MT.PROPOSE]
    net.propose(1, b"at-leader")
    net.stabilize()
    assert net.applied(2) == [b"at-leader"]


def test_followers_forward_proposals_by_default():
    net = elected()
    net.propose(2, b"via-follower")
    net.stabilize()
    assert net.applied(1) == [b"via-follower"]


# -- election priority -----------------------------------------------------------------------


def prioritised(priorities: dict[int, int]) -> Network:
    return Network(
        (1, 2, 3),
        config=lambda node_id: Config(
            id=node_id, priority=priorities[node_id], pre_vote=False, check_quorum=False
        ),
    )


def test_voters_refuse_a_candidate_of_lower_priority_with_an_equal_log():
    net = prioritised({1: 1, 2: 5, 3: 5})
    net.campaign(1)
    assert net.node(1).raft.role is not Role.LEADER
    net.campaign(2)
    assert net.leader_id() == 2


def test_a_longer_log_wins_over_priority():
    net = prioritised({1: 5, 2: 5, 3: 1})
    net.campaign(1)
    net.cut(1, 2)
    net.propose(1, b"only-1-and-3")
    net.stabilize()
    net.heal()
    net.crash(1)
    # Node 3 has the longer log; node 2 (priority 5) still votes for it.
    net.node(3).campaign()
    net.stabilize()
    assert net.leader_id() == 3


def test_equal_priorities_change_nothing():
    net = prioritised({1: 0, 2: 0, 3: 0})
    net.campaign(1)
    assert net.leader_id() == 1
