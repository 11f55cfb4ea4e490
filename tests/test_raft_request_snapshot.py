"""Follower-requested snapshots: a follower that knows its state is bad asks for a fresh one (issue 17).

``RawNode.request_snapshot()`` (raft-rs ``request_snapshot``) sends the
leader a rejecting append response naming the index the snapshot must reach.
The leader sends a snapshot even though the follower's log matches, waiting
(``SnapshotTemporarilyUnavailable``) until it holds one recent enough; the
follower takes nothing but that snapshot meanwhile and installs it even
though its own log already covers that index.
"""

from __future__ import annotations

import pytest

from simulator import Config, Message, MessageType, ProgressState, RequestSnapshotDroppedError
from simulator.testing import Network

MT = MessageType


def elected_with_data(**config) -> Network:
    net = Network((1, 2, 3), config=lambda node_id: Config(id=node_id, **config))
    net.campaign(1)
    for data in (b"a", b"b", b"c"):
        net.propose(1, data)
    net.stabilize()
    return net


def test_requested_snapshot_is_sent_and_installed_although_the_log_matches():
    net = elected_with_data()
    net.compact(1)
    commit = net.node(2).raft.raft_log.committed
    net.nodes[2].state_machine.history.clear()  # the follower's state is known to be bad
    net.node(2).request_snapshot()
    net.stabilize()
    leader = net.node(1).statistics()
    assert leader.event("snapshot_requests_received") == 1
    assert leader.event("requested_snapshots_sent") == 1
    follower = net.node(2).statistics()
    assert follower.event("requested_snapshot_installed") == 1
    assert follower.snapshot_index == commit
    assert net.applied(2) == [b"a", b"b", b"c"]  # restored from the snapshot
    assert net.node(2).raft.pending_request_snapshot == 0


def test_leader_waits_until_it_holds_a_snapshot_recent_enough():
    net = elected_with_data()
    net.node(2).request_snapshot()
    net.stabilize()
    assert net.node(1).statistics().rejected("snapshot_temporarily_unavailable") >= 1
    assert net.node(2).raft.pending_request_snapshot > 0
    net.compact(1)
    net.tick(1)  # a heartbeat; its answer retries the snapshot
    net.stabilize()
    assert net.node(2).statistics().event("requested_snapshot_installed") == 1


def test_follower_takes_no_appends_while_its_snapshot_request_is_pending():
    net = elected_with_data()
    before = net.node(2).raft.raft_log.last_index()
    net.node(2).request_snapshot()
    net.propose(1, b"d")
    net.stabilize()
    assert net.node(2).raft.raft_log.last_index() == before
    assert net.node(3).raft.raft_log.last_index() == before + 1
    net.compact(1)
    net.tick(1)
    net.stabilize()
    assert net.applied(2) == [b"a", b"b", b"c", b"d"]


def test_leader_sends_one_snapshot_for_a_repeated_request():
    net = elected_with_data()
    net.compact(1)
    net.node(2).request_snapshot()
    net.process_readies()
    net.node(2).raft._send_request_snapshot()  # the reminder an append would trigger
    net.stabilize()
    assert net.node(1).statistics().event("requested_snapshots_sent") == 1


@pytest.mark.parametrize("who", ["leader", "no_leader", "twice"])
def test_request_snapshot_refused_when_it_cannot_be_served(who):
    net = elected_with_data()
    if who == "leader":
        node = net.node(1)
    elif who == "no_leader":
        node = Network((1, 2, 3)).node(2)
    else:
        node = net.node(2)
        node.request_snapshot()
    with pytest.raises(RequestSnapshotDroppedError):
        node.request_snapshot()


def test_progress_of_a_follower_that_requested_a_snapshot_goes_through_snapshot_state():
    net = elected_with_data()
    net.compact(1)
    net.node(2).request_snapshot()
    net.process_readies()
    net.deliver_at(next(i for i, m in enumerate(net.in_flight) if m.to == 1))
    states = {p.node_id: p.state for p in net.node(1).statistics().progress}
    assert states[2] is ProgressState.SNAPSHOT
    assert any(m.msg_type is MT.SNAPSHOT and m.to == 2 for m in net.in_flight)


# -- found by the 10,000-seed sweep (issue 21, seeds 2067, 3432, 8809) ------------------


def acknowledged_but_not_committed_on_follower(net: Network) -> int:
    """Leader 1 holds a snapshot at commit ``c``; follower 2 appended and acknowledged entry
    ``c + 1`` (the leader committed it) but has not heard of that commit yet. Returns ``c``."""
    net.compact(1)
    c = net.node(1).raft.raft_log.committed
    net.propose(1, b"d")
    net.process_readies()
    while net.node(1).raft.raft_log.committed == c:
        net.deliver()
    assert net.node(1).raft.prs.progress[2].match_index == c + 1
    assert net.node(2).raft.raft_log.committed == c  # the premise: 2 does not know yet
    return c


def test_requested_snapshot_keeps_the_entries_the_follower_acknowledged():
    # Seeds 2067 and 3432: the restore dropped entry c + 1, which the follower had
    # acknowledged; the leader, counting it as held, never sent it again (a stall).
    net = elected_with_data()
    c = acknowledged_but_not_committed_on_follower(net)
    net.node(2).request_snapshot()
    net.stabilize()
    follower = net.node(2)
    assert follower.statistics().event("requested_snapshot_installed") == 1
    assert follower.statistics().snapshot_index == c
    assert follower.raft.raft_log.last_index() == c + 1  # kept through the install
    net.tick(1)  # the next heartbeat carries the commit of c + 1
    net.stabilize()
    assert net.applied(2) == [b"a", b"b", b"c", b"d"]


def test_requested_snapshot_replaces_a_log_that_does_not_hold_its_last_entry():
    # Without a matching entry at the snapshot's index, nothing after it can be kept.
    net = elected_with_data()
    net.node(2).request_snapshot()
    net.propose(1, b"d")  # the follower takes no appends meanwhile
    net.stabilize()
    net.compact(1)
    net.tick(1)
    net.stabilize()
    follower = net.node(2).raft.raft_log
    assert follower.first_index() == follower.last_index() + 1 == net.node(1).raft.raft_log.last_index() + 1
    assert net.applied(2) == [b"a", b"b", b"c", b"d"]


def test_commit_waits_for_the_requested_snapshot():
    # Seed 8809: a heartbeat moved the commit index past the requested index, and
    # Raft then refused the very snapshot it had asked for: the node waited for ever.
    net = elected_with_data()
    c = acknowledged_but_not_committed_on_follower(net)
    follower = net.node(2)
    follower.request_snapshot()
    follower.step(Message(MT.HEARTBEAT, to=2, from_=1, term=follower.raft.term, commit=c + 1))
    assert follower.raft.raft_log.committed == c
    net.stabilize()
    assert follower.statistics().event("requested_snapshot_installed") == 1
    net.tick(1)
    net.stabilize()
    assert net.applied(2) == [b"a", b"b", b"c", b"d"]


def test_refusing_the_snapshot_we_asked_for_is_loud():
    net = elected_with_data()
    c = acknowledged_but_not_committed_on_follower(net)
    follower = net.node(2)
    follower.request_snapshot()
    follower.raft.raft_log.commit_to(c + 1)  # what the heartbeat used to do
    with pytest.raises(AssertionError, match=f"asked for a snapshot at or past {c} and refuses {c}"):
        net.stabilize()
