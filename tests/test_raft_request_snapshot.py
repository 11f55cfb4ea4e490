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

from simulator import Config, MessageType, ProgressState, RequestSnapshotDroppedError
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
