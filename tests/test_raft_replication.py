"""Log replication, commitment, flow control, snapshots, membership and restarts.

Every test drives a :class:`~simulator.testing.Network` of ``RawNode`` s with
fixed seeds and asserts exact roles, terms, indexes, applied data, counters
in ``statistics()`` and messages in ``net.in_flight``. The cases follow the
Raft paper (§5.3 log replication, §5.4.2 committing entries from previous
terms, §6 membership, §7 compaction) and the ones raft-rs / etcd raft test:
fast backtracking, inflight windows, snapshot status reporting, learners.

Reading guide: a node's own log is ``net.node(i).raft.raft_log``; what it
persisted is ``net.nodes[i].storage``; the leader's view of its followers is
``statistics().progress``.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from simulator import (
    ConfChange,
    ConfChangePendingError,
    ConfChangeType,
    ConfState,
    Config,
    Entry,
    InvalidConfChangeError,
    Message,
    MessageType,
    PeerProgress,
    ProgressState,
    Role,
    snapshot_digest,
)
from simulator.testing import Network

MT = MessageType


# -- helpers ---------------------------------------------------------------


def make_network(
    voters=(1, 2, 3), *, seed: int = 0, learners=(), embed_snapshots: bool = True, **config
) -> Network:
    """A network whose nodes all use ``Config(id=..., **config)``."""
    return Network(
        voters,
        learners=learners,
        seed=seed,
        config=lambda node_id: Config(id=node_id, **config),
        embed_snapshots=embed_snapshots,
    )


def elect(net: Network, leader: int) -> None:
    net.campaign(leader)
    assert net.node(leader).raft.role is Role.LEADER


def committed(net: Network, node_id: int) -> int:
    return net.node(node_id).raft.raft_log.committed


def log_entries(net: Network, node_id: int) -> list[Entry]:
    return net.node(node_id).raft.raft_log.all_entries()


def log_terms(net: Network, node_id: int) -> list[int]:
    return [entry.term for entry in log_entries(net, node_id)]


def progress(net: Network, leader: int, follower: int) -> PeerProgress:
    """The leader's view of ``follower``, as ``statistics()`` reports it."""
    (found,) = [p for p in net.node(leader).statistics().progress if p.node_id == follower]
    return found


def record(net: Network, wanted: Callable[[Message], bool]) -> list[Message]:
    """Collect every message matching ``wanted`` that reaches the delivery check.

    A filter that keeps everything, so it changes nothing; ``heal()`` removes it.
    """
    seen: list[Message] = []

    def keep(message: Message) -> bool:
        if wanted(message):
            seen.append(message)
        return True

    net.add_filter(keep)
    return seen


def appends(from_: int, to: int) -> Callable[[Message], bool]:
    return lambda m: m.msg_type is MT.APPEND and m.from_ == from_ and m.to == to


def in_flight(net: Network, msg_type: MessageType, to: int | None = None) -> list[Message]:
    return [m for m in net.in_flight if m.msg_type is msg_type and (to is None or m.to == to)]


def propose_all(net: Network, leader: int, payloads) -> None:
    for data in payloads:
        net.propose(leader, data)
        net.stabilize()


# -- replication and commit --------------------------------------------------


@pytest.mark.parametrize("voters", [(1, 2, 3), (1, 2, 3, 4, 5)])
def test_proposals_reach_every_state_machine_in_order(voters):
    net = make_network(voters, seed=1)
    elect(net, 1)
    payloads = [f"cmd-{n}".encode() for n in range(10)]
    for data in payloads:
        net.propose(1, data)  # proposed back to back, delivered together
    net.stabilize()
    last = 1 + len(payloads)  # the leader's empty entry of its term, then the commands
    for node_id in voters:
        assert net.applied(node_id) == payloads
        assert committed(net, node_id) == last
        assert [e.index for e in log_entries(net, node_id)] == list(range(1, last + 1))
        assert net.nodes[node_id].state_machine.history == [
            (index, data) for index, data in zip(range(2, last + 1), payloads)
        ]


def test_proposal_to_a_follower_is_forwarded_to_the_leader():
    net = make_network(seed=1)
    elect(net, 1)
    net.propose(3, b"via-3")
    assert [(m.msg_type, m.to) for m in net.in_flight] == [(MT.PROPOSE, 1)]
    net.stabilize()
    assert [net.applied(i) for i in (1, 2, 3)] == [[b"via-3"]] * 3


@pytest.mark.parametrize(("voters", "acks_needed"), [((1, 2, 3), 1), ((1, 2, 3, 4, 5), 2)])
def test_commit_index_moves_only_when_a_majority_stored_the_entry(voters, acks_needed):
    """Deliver one append and one acknowledgement at a time and watch the leader's commit."""
    net = make_network(voters, seed=2)
    elect(net, 1)
    net.propose(1, b"x")
    followers = [v for v in voters if v != 1]
    # Every follower stores the entry, but the acknowledgements wait in the queue.
    for _ in followers:
        net.deliver()
    assert all(net.node(f).raft.raft_log.last_index() == 2 for f in followers)
    assert committed(net, 1) == 1
    responses = in_flight(net, MT.APPEND_RESPONSE, to=1)
    assert [m.index for m in responses] == [2] * len(followers)
    for ack in range(1, len(followers) + 1):
        net.deliver_at(net.in_flight.index(responses[ack - 1]))
        # Leader plus `ack` followers stored it.
        assert committed(net, 1) == (2 if ack >= acks_needed else 1), f"after {ack} acks"
    # The followers learn the commit index from the next append.
    net.stabilize()
    assert [committed(net, f) for f in followers] == [2] * len(followers)


def test_leader_commits_with_one_of_three_cut():
    net = make_network(seed=3)
    elect(net, 1)
    net.cut(1, 3)
    net.propose(1, b"x")
    net.stabilize()
    assert committed(net, 1) == 2
    assert committed(net, 2) == 2
    assert net.applied(1) == net.applied(2) == [b"x"]
    assert net.node(3).raft.raft_log.last_index() == 1
    assert net.applied(3) == []


def test_leader_does_not_commit_with_two_of_three_cut():
    net = make_network(seed=3)
    elect(net, 1)
    net.cut(1, 2)
    net.cut(1, 3)
    net.propose(1, b"x")
    net.stabilize()
    assert net.node(1).raft.raft_log.last_index() == 2
    assert committed(net, 1) == 1
    assert net.applied(1) == []
    # Once the links heal, the next heartbeat round gets the entry out and committed.
    net.heal()
    net.tick(1)
    net.stabilize()
    assert [committed(net, i) for i in (1, 2, 3)] == [2, 2, 2]
    assert [net.applied(i) for i in (1, 2, 3)] == [[b"x"]] * 3


# -- Figure 8: committing entries from previous terms (§5.4.2) -------------------


def deliver_trimming_appends(net: Network, max_term_for: dict[int, int]) -> None:
    """Stabilize, but strip entries newer than ``max_term_for[node]`` off appends to ``node``.

    The trimmed append is a valid prefix of what the leader sent, as if its
    size limit had cut the message there; it lets old-term entries reach a
    follower while the leader's current-term entry does not.
    """
    net.process_readies()
    while net.in_flight:
        message = net.in_flight[0]
        if message.msg_type is MT.APPEND and message.to in max_term_for:
            max_term = max_term_for[message.to]
            kept = tuple(e for e in message.entries if e.term <= max_term)
            net.in_flight[0] = attrs.evolve(message, entries=kept)
        net.deliver()


def figure8_term2_entry_on_a_majority() -> Network:
    """Build Figure 8 (a)-(c) on 5 nodes; return with node 1 leading term 4.

    (a) node 1 leads term 2 and its term-2 entries reach node 2 only;
    (b) node 5 leads term 3 with votes of 3 and 4 and appends without replicating;
    (c) node 1 restarts, leads term 4 and gets its term-2 entries onto node 3.
    Nodes 1, 2, 3 (a majority) then hold index 3 of term 2; node 1 alone holds
    its term-4 entry at index 4.
    """
    # Without pre-vote and leases, terms move exactly as the figure needs.
    net = make_network((1, 2, 3, 4, 5), seed=8, pre_vote=False, check_quorum=False)
    elect(net, 2)  # term 1: index 1 of term 1 is committed everywhere
    # (a)
    net.add_filter(lambda m: not (m.msg_type is MT.APPEND and m.from_ == 1 and m.to != 2))
    elect(net, 1)
    net.propose(1, b"term-2")
    net.stabilize()
    assert net.node(1).raft.term == 2
    assert log_terms(net, 1) == log_terms(net, 2) == [1, 2, 2]
    # (b)
    net.heal()
    net.isolate(1)
    net.add_filter(lambda m: not (m.msg_type is MT.APPEND and m.from_ == 5))
    elect(net, 5)
    assert net.node(5).raft.term == 3
    assert log_terms(net, 5) == [1, 3]
    # (c)
    net.heal()
    net.isolate(5)
    net.crash(1)
    net.restart(1)
    net.node(1).campaign()  # term 3: nodes 3 and 4 already voted for 5
    net.stabilize()
    assert net.node(1).raft.role is Role.CANDIDATE
    net.node(1).campaign()  # term 4: nodes 2, 3, 4 vote for node 1
    # Node 3 gets the term-2 entries; node 4 gets nothing new.
    deliver_trimming_appends(net, {2: 2, 3: 2, 4: 1})
    assert net.node(1).raft.role is Role.LEADER
    assert net.node(1).raft.term == 4
    return net


def test_figure8_old_term_entry_on_a_majority_is_not_committed():
    net = figure8_term2_entry_on_a_majority()
    assert log_terms(net, 1) == [1, 2, 2, 4]
    assert log_terms(net, 2) == log_terms(net, 3) == [1, 2, 2]
    assert log_terms(net, 4) == [1]
    replicas = [i for i in (1, 2, 3, 4, 5) if net.node(i).raft.raft_log.term_or_zero(3) == 2]
    assert replicas == [1, 2, 3]  # 3 of 5: counting replicas would call it committed
    assert [progress(net, 1, i).match_index for i in (2, 3)] == [3, 3]
    # ...but index 3 is of term 2, not the leader's term 4: only index 1 is committed.
    assert [committed(net, i) for i in (1, 2, 3)] == [1, 1, 1]
    assert [net.applied(i) for i in (1, 2, 3)] == [[], [], []]


def test_figure8_uncommitted_old_term_entry_can_still_be_overwritten():
    """Figure 8 (d): why it must not count as committed: node 5 can still win and replace it."""
    net = figure8_term2_entry_on_a_majority()
    net.crash(1)
    net.crash(5)  # node 5 still thinks it leads term 3; restarting makes it a follower
    net.restart(5)
    net.heal()
    net.node(5).campaign()  # term 4: nodes 2, 3, 4 already voted for node 1
    net.stabilize()
    assert (net.node(5).raft.role, net.node(5).raft.term) == (Role.FOLLOWER, 4)
    elect(net, 5)  # term 5: 2, 3 and 4 hold no entry newer than term 2
    assert net.node(5).raft.term == 5
    net.propose(5, b"term-5")
    net.stabilize()
    for node_id in (2, 3, 4, 5):
        # Index 2 is node 5's term-3 entry; the term-2 entries of nodes 2 and 3 are gone.
        assert log_terms(net, node_id) == [1, 3, 5, 5]
        assert net.applied(node_id) == [b"term-5"]


def test_figure8_current_term_entry_on_a_majority_commits_the_old_one_too():
    net = figure8_term2_entry_on_a_majority()
    net.tick(1)  # heartbeat: the responses make node 1 send its term-4 entry
    net.stabilize()
    assert progress(net, 1, 2).match_index == 4
    assert progress(net, 1, 3).match_index == 4
    assert committed(net, 1) == 4
    for node_id in (1, 2, 3):
        assert log_terms(net, node_id) == [1, 2, 2, 4]
        assert committed(net, node_id) == 4
        assert net.applied(node_id) == [b"term-2"]
    # Now node 5 can no longer win: a majority holds a newer log than its own.
    net.crash(1)
    net.crash(5)
    net.restart(5)
    net.heal()
    for _ in range(2):  # terms 4 and 5
        net.node(5).campaign()
        net.stabilize()
        assert net.node(5).raft.role is not Role.LEADER
    assert log_terms(net, 2) == log_terms(net, 3) == [1, 2, 2, 4]


# -- conflicting follower logs ------------------------------------------------------


@pytest.mark.parametrize("stale_entries", [5, 60])
def test_stale_leader_entries_are_replaced_in_one_rejected_round(stale_entries):
    """Fast backtracking: the reject hint skips a whole term, however many entries it has.

    Walking back one index per rejection would take ``stale_entries + 6`` rounds here.
    """
    net = make_network(seed=4, check_quorum=False)
    elect(net, 1)
    propose_all(net, 1, [b"c1", b"c2"])  # indexes 2, 3: committed everywhere
    net.isolate(1)
    for n in range(stale_entries):  # term 1, only on node 1, never committed
        net.propose(1, f"stale-{n}".encode())
    net.stabilize()
    elect(net, 2)  # term 2
    term2 = [f"t2-{n}".encode() for n in range(stale_entries + 5)]
    for data in term2:
        net.propose(2, data)
    net.stabilize()
    elect(net, 3)  # term 3: its next index for node 1 starts after its own log
    leader_log = log_entries(net, 3)
    leader_last = 3 + 1 + len(term2) + 1
    assert log_terms(net, 3) == [1, 1, 1] + [2] * (1 + len(term2)) + [3]
    assert net.node(1).raft.raft_log.last_index() == 3 + stale_entries

    net.heal()
    to_node_1 = record(net, appends(3, 1))
    rejections = record(net, lambda m: m.msg_type is MT.APPEND_RESPONSE and m.reject)
    net.tick(3)  # heartbeat; its response makes node 3 send an append
    net.stabilize()

    (rejection,) = rejections
    # The follower names its last entry of a term <= the probed one (term 2): its last, of term 1...
    assert (rejection.index, rejection.reject_hint, rejection.log_term) == (
        leader_last - 1,
        3 + stale_entries,
        1,
    )
    # ...so the leader jumps straight to its own last entry of term <= 1, index 3.
    assert [(m.index, m.log_term, len(m.entries)) for m in to_node_1[:2]] == [
        (leader_last - 1, 2, 1),
        (3, 1, leader_last - 3),
    ]
    assert net.node(1).statistics().rejected("append_log_mismatch") == 1
    assert net.nodes[1].storage.entries(1, leader_last + 1) == leader_log
    assert net.nodes[1].storage.last_index() == leader_last
    assert net.applied(1) == [b"c1", b"c2", *term2]


def test_delayed_duplicate_append_does_not_truncate_newer_entries():
    """An old append that matches must not cut the entries after it (they may be acked)."""
    net = make_network(seed=4)
    elect(net, 1)
    net.propose(1, b"a")
    first = in_flight(net, MT.APPEND, to=2)[0]
    net.stabilize()
    propose_all(net, 1, [b"b", b"c"])
    entries = log_entries(net, 2)
    assert [e.index for e in entries] == [1, 2, 3, 4]
    net.send(first)  # carries index 2 only
    net.stabilize()
    assert log_entries(net, 2) == entries
    assert net.nodes[2].storage.last_index() == 4
    assert net.applied(2) == [b"a", b"b", b"c"]


FIGURE7_LEADER_TERMS = (1, 1, 1, 4, 4, 5, 5, 6, 6, 6)


def terms_to_entries(terms) -> list[Entry]:
    return [
        Entry(term=term, index=index, data=f"{index}@{term}".encode())
        for index, term in enumerate(terms, start=1)
    ]


def with_logs(net: Network, logs: dict[int, tuple[int, ...]], term: int) -> None:
    """Restart nodes from storages holding the given logs (terms per index), nothing committed."""
    for node_id, terms in logs.items():
        net.crash(node_id)
        storage = net.nodes[node_id].storage
        storage.append(terms_to_entries(terms))
        storage.set_hard_state(attrs.evolve(storage.hard_state, term=term))
        net.restart(node_id)


@pytest.mark.parametrize(
    ("follower_terms", "rejections"),
    [
        pytest.param((1, 1, 1, 4, 4, 5, 5, 6, 6), 1, id="a-missing-one"),
        pytest.param((1, 1, 1, 4), 1, id="b-missing-many"),
        pytest.param((1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6), 0, id="c-extra-uncommitted"),
        pytest.param((1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7), 0, id="d-extra-newer-term"),
        pytest.param((1, 1, 1, 4, 4, 4, 4), 1, id="e-missing-and-extra"),
        pytest.param((1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3), 1, id="f-three-stale-terms"),
    ],
)
def test_figure7_follower_log_is_made_identical_to_the_leaders(follower_terms, rejections):
    """Figure 7 of the paper: every follower converges, in at most one rejected round here."""
    net = make_network(seed=7)
    with_logs(net, {1: FIGURE7_LEADER_TERMS, 2: follower_terms, 3: FIGURE7_LEADER_TERMS}, term=7)
    elect(net, 1)  # term 8, with node 3's vote
    assert net.node(1).raft.term == 8
    expected = [*FIGURE7_LEADER_TERMS, 8]
    assert log_terms(net, 2) == expected
    assert net.nodes[2].storage.entries(1, 12) == net.nodes[1].storage.entries(1, 12)
    assert net.node(2).statistics().rejected("append_log_mismatch") == rejections
    assert committed(net, 2) == 11
    leader_data = [e.data for e in terms_to_entries(FIGURE7_LEADER_TERMS)]
    assert net.applied(2) == net.applied(1) == leader_data


# -- flow control -------------------------------------------------------------------


def test_leader_pauses_after_max_inflight_appends_to_a_silent_follower():
    net = make_network(seed=5, max_inflight_msgs=2)
    elect(net, 1)
    net.drop(2, 1)  # node 2 receives but its answers never arrive
    to_node_2 = record(net, appends(1, 2))
    propose_all(net, 1, [f"x{n}".encode() for n in range(5)])
    # Only the first two proposals (indexes 2 and 3) went to node 2; the rest wait.
    assert [[e.index for e in m.entries] for m in to_node_2 if m.entries] == [[2], [3]]
    assert net.node(2).raft.raft_log.last_index() == 3
    assert progress(net, 1, 2) == PeerProgress(
        node_id=2,
        state=ProgressState.REPLICATE,
        match_index=1,
        next_index=4,
        pending_snapshot=0,
        is_learner=False,
        recently_active=True,
    )
    assert net.node(1).raft.prs.progress[2].is_paused()  # the window of 2 is full
    # Node 3 answers, so it has everything and the leader committed through it.
    assert net.node(3).raft.raft_log.last_index() == 6
    assert committed(net, 1) == 6


def test_heartbeat_response_reopens_a_full_inflight_window():
    net = make_network(seed=5, max_inflight_msgs=2)
    elect(net, 1)
    net.drop(2, 1)
    propose_all(net, 1, [f"x{n}".encode() for n in range(5)])
    net.heal()
    to_node_2 = record(net, appends(1, 2))
    net.tick(1)
    net.stabilize()
    assert [[e.index for e in m.entries] for m in to_node_2 if m.entries] == [[4, 5, 6]]
    assert progress(net, 1, 2).match_index == 6
    assert net.applied(2) == [f"x{n}".encode() for n in range(5)]


def test_max_size_per_msg_limits_entries_per_append_but_sends_at_least_one():
    net = make_network(seed=5, max_size_per_msg=10)
    elect(net, 1)
    net.cut(1, 2)
    payloads = [b"abcd"] * 7 + [b"z" * 50, b"ef"]  # indexes 2..8, then 9 and 10
    propose_all(net, 1, payloads)
    net.heal()
    to_node_2 = record(net, appends(1, 2))
    net.tick(1)
    net.stabilize()
    batches = [[e.index for e in m.entries] for m in to_node_2 if m.entries]
    # 4+4 bytes fit in 10, a third entry would not; the 50-byte entry goes alone.
    assert batches == [[2, 3], [4, 5], [6, 7], [8], [9], [10]]
    assert net.applied(2) == payloads


# -- snapshots ----------------------------------------------------------------------


def lagging_follower_after_compaction(*, embed_snapshots: bool = True, seed: int = 6) -> Network:
    """Node 1 leads; node 3 missed indexes 2..6, which node 1 compacted into a snapshot at 6.

    Index 7 (``b"after"``) follows the snapshot in node 1's log.
    """
    net = make_network(seed=seed, embed_snapshots=embed_snapshots)
    elect(net, 1)
    net.isolate(3)
    propose_all(net, 1, [f"x{n}".encode() for n in range(5)])
    net.compact(1)
    propose_all(net, 1, [b"after"])
    net.heal()
    assert net.node(1).statistics().snapshot_index == 6
    assert net.node(3).raft.raft_log.last_index() == 1
    return net


def deliver_until(net: Network, msg_type: MessageType) -> Message:
    """Deliver messages until one of ``msg_type`` is first in the queue; return it, undelivered."""
    while net.in_flight[0].msg_type is not msg_type:
        net.deliver()
    return net.in_flight[0]


LEADER_HISTORY = [f"x{n}".encode() for n in range(5)] + [b"after"]


@pytest.mark.parametrize("embed_snapshots", [True, False], ids=["embedded", "out-of-band"])
def test_lagging_follower_catches_up_by_snapshot(embed_snapshots):
    net = lagging_follower_after_compaction(embed_snapshots=embed_snapshots)
    leader_storage = net.nodes[1].storage
    net.tick(1)  # heartbeat; node 3's response makes the leader look for index 2: compacted
    message = deliver_until(net, MT.SNAPSHOT)
    assert (message.from_, message.to) == (1, 3)
    assert (message.snapshot.index, message.snapshot.term) == (6, 1)
    assert message.snapshot.metadata.conf_state == ConfState(voters=(1, 2, 3))
    data = leader_storage.full_snapshot().data
    if embed_snapshots:
        assert message.snapshot.data == data
    else:
        # Metadata only: enough to fetch the data out of band and check it.
        assert message.snapshot.data is None
        metadata = message.snapshot.metadata
        assert metadata.size == len(data)
        assert metadata.digest == snapshot_digest(data, like=metadata.digest, digests=leader_storage.digests)
        assert metadata.snapshot_id == leader_storage.snapshot_metadata.snapshot_id != ""
    in_transfer = progress(net, 1, 3)
    assert (in_transfer.state, in_transfer.pending_snapshot) == (ProgressState.SNAPSHOT, 6)

    net.stabilize()
    assert net.nodes[3].storage.snapshot_metadata.index == 6
    assert net.nodes[3].storage.full_snapshot().data == data
    assert net.node(3).statistics().event("snapshot_accepted") == 1
    assert net.nodes[3].state_machine.history == net.nodes[1].state_machine.history
    assert net.applied(3) == LEADER_HISTORY
    done = progress(net, 1, 3)
    assert (done.state, done.match_index, done.pending_snapshot) == (ProgressState.REPLICATE, 7, 0)
    assert net.node(1).statistics().event("snapshots_sent") == 1


def test_snapshot_temporarily_unavailable_is_retried_on_later_heartbeats():
    net = lagging_follower_after_compaction()
    net.nodes[1].storage.make_snapshot_unavailable(2)
    snapshots = record(net, lambda m: m.msg_type is MT.SNAPSHOT)
    for attempt in (1, 2):
        net.tick(1)
        net.stabilize()
        stats = net.node(1).statistics()
        assert stats.rejected("snapshot_temporarily_unavailable") == attempt
        assert stats.event("snapshots_sent") == 0
        assert progress(net, 1, 3).state is ProgressState.PROBE
        assert snapshots == []
        assert net.applied(3) == []
    net.tick(1)
    net.stabilize()
    assert len(snapshots) == 1
    assert net.node(1).statistics().event("snapshots_sent") == 1
    assert net.node(1).statistics().rejected("snapshot_temporarily_unavailable") == 2
    assert progress(net, 1, 3).state is ProgressState.REPLICATE
    assert net.applied(3) == LEADER_HISTORY


def test_failed_snapshot_report_moves_to_probe_and_a_later_heartbeat_retries():
    net = lagging_follower_after_compaction()
    dropped: list[Message] = []

    def drop_first_snapshot(message: Message) -> bool:
        if message.msg_type is MT.SNAPSHOT and not dropped:
            dropped.append(message)
            return False  # the harness reports SnapshotStatus.FAILURE for it
        return True

    net.add_filter(drop_first_snapshot)
    net.tick(1)
    net.stabilize()
    assert len(dropped) == 1
    stats = net.node(1).statistics()
    assert (stats.event("snapshots_sent"), stats.event("snapshot_failures_reported")) == (1, 1)
    after_failure = progress(net, 1, 3)
    assert (after_failure.state, after_failure.pending_snapshot) == (ProgressState.PROBE, 0)
    assert net.node(1).raft.prs.progress[3].paused  # nothing more until the next heartbeat
    assert net.in_flight == []
    assert net.applied(3) == []

    net.tick(1)
    net.stabilize()
    stats = net.node(1).statistics()
    assert (stats.event("snapshots_sent"), stats.event("snapshot_failures_reported")) == (2, 1)
    assert stats.event("snapshot_finishes_reported") == 1
    assert progress(net, 1, 3).state is ProgressState.REPLICATE
    assert net.applied(3) == LEADER_HISTORY


def test_no_second_snapshot_goes_out_while_one_is_in_flight():
    net = lagging_follower_after_compaction()
    net.tick(1)
    held = net.in_flight.pop(net.in_flight.index(deliver_until(net, MT.SNAPSHOT)))
    for _ in range(3):  # heartbeats go back and forth; the follower stays in SNAPSHOT
        net.tick(1)
        net.stabilize()
    assert net.node(1).statistics().event("snapshots_sent") == 1
    assert progress(net, 1, 3).state is ProgressState.SNAPSHOT
    assert net.applied(3) == []
    net.send(held)  # the transfer completes late
    net.stabilize()
    assert progress(net, 1, 3).state is ProgressState.REPLICATE
    assert net.applied(3) == LEADER_HISTORY


def test_out_of_band_snapshot_replaced_in_transit_fails_and_the_newer_one_is_sent():
    """The leader compacts again while metadata travels: the fetch fails, Raft retries."""
    net = lagging_follower_after_compaction(embed_snapshots=False)
    net.tick(1)
    held = net.in_flight.pop(net.in_flight.index(deliver_until(net, MT.SNAPSHOT)))
    propose_all(net, 1, [b"more"])
    net.compact(1)  # snapshot at 8 replaces the one at 6, data and all
    net.send(held)
    net.stabilize()
    stats = net.node(1).statistics()
    assert (stats.event("snapshots_sent"), stats.event("snapshot_failures_reported")) == (1, 1)
    assert progress(net, 1, 3).state is ProgressState.PROBE
    net.tick(1)
    net.stabilize()
    assert net.node(1).statistics().event("snapshots_sent") == 2
    assert net.nodes[3].storage.snapshot_metadata.index == 8
    assert net.applied(3) == [*LEADER_HISTORY, b"more"]


def caught_up_cluster(seed: int = 7) -> Network:
    """Node 1 leads term 1; indexes 1..6 are committed and applied everywhere."""
    net = make_network(seed=seed)
    elect(net, 1)
    propose_all(net, 1, [f"x{n}".encode() for n in range(5)])
    assert [committed(net, i) for i in (1, 2, 3)] == [6, 6, 6]
    return net


@pytest.mark.parametrize("snapshot_index", [4, 6], ids=["older", "equal"])
def test_follower_refuses_snapshot_not_newer_than_its_commit(snapshot_index):
    net = caught_up_cluster()
    net.compact(1, snapshot_index)
    snapshot = net.nodes[1].storage.full_snapshot()
    entries_before = log_entries(net, 2)
    net.send(Message(MT.SNAPSHOT, to=2, from_=1, term=1, snapshot=snapshot))
    net.stabilize()
    stats = net.node(2).statistics()
    assert stats.rejected("snapshot_not_newer") == 1
    assert stats.event("snapshot_accepted") == 0
    assert net.nodes[2].storage.snapshot_metadata.index == 0
    assert log_entries(net, 2) == entries_before
    assert (stats.commit, stats.applied) == (6, 6)


def test_snapshot_of_an_entry_the_follower_holds_only_fast_forwards_commit():
    net = make_network(seed=7)
    elect(net, 1)
    for n in range(5):
        net.propose(1, f"x{n}".encode())
    # Node 2 stores indexes 2..6; the commit index never reaches it.
    for message in list(net.in_flight):
        if message.to == 2:
            net.deliver_at(net.in_flight.index(message))
    net.drop(1, 2)
    net.stabilize()
    assert committed(net, 1) == 6
    assert (net.node(2).raft.raft_log.last_index(), committed(net, 2)) == (6, 1)
    net.compact(1, 5)
    net.heal()
    net.send(
        Message(MT.SNAPSHOT, to=2, from_=1, term=1, snapshot=net.nodes[1].storage.full_snapshot())
    )
    net.deliver()
    stats = net.node(2).statistics()
    assert stats.event("snapshot_fast_forward") == 1
    assert stats.event("snapshot_accepted") == 0
    assert (stats.commit, stats.applied, stats.snapshot_index) == (5, 5, 0)
    assert net.nodes[2].storage.snapshot_metadata.index == 0
    assert [e.index for e in log_entries(net, 2)] == [1, 2, 3, 4, 5, 6]
    assert net.applied(2) == [b"x0", b"x1", b"x2", b"x3"]
    (response,) = in_flight(net, MT.APPEND_RESPONSE, to=1)
    assert (response.index, response.reject) == (5, False)


# -- membership ----------------------------------------------------------------------


def add_learner(node_id: int) -> ConfChange:
    return ConfChange(ConfChangeType.ADD_LEARNER_NODE, node_id)


def add_voter(node_id: int) -> ConfChange:
    return ConfChange(ConfChangeType.ADD_NODE, node_id)


def remove(node_id: int) -> ConfChange:
    return ConfChange(ConfChangeType.REMOVE_NODE, node_id)


def change_membership(net: Network, leader: int, change: ConfChange) -> None:
    net.propose_conf_change(leader, change)
    net.stabilize()


def test_learner_acks_do_not_count_toward_the_quorum():
    net = make_network((1, 2, 3), learners=(4,), seed=9)
    elect(net, 1)
    net.cut(1, 2)
    net.cut(1, 3)
    net.propose(1, b"x")
    net.stabilize()
    assert net.node(4).raft.raft_log.last_index() == 2
    assert progress(net, 1, 4).match_index == 2
    assert committed(net, 1) == 1


def test_new_learner_catches_up_by_snapshot_then_promoted_counts_toward_quorum():
    net = make_network(seed=9)
    elect(net, 1)
    propose_all(net, 1, [b"x0", b"x1", b"x2"])
    change_membership(net, 1, add_learner(4))  # index 5; node 4 does not run yet
    expected_conf = ConfState(voters=(1, 2, 3), learners=(4,))
    for node_id in (1, 2, 3):
        assert net.node(node_id).statistics().conf_state == expected_conf
        assert net.nodes[node_id].storage.conf_state == expected_conf
    propose_all(net, 1, [b"x3"])
    net.compact(1)  # snapshot at 6 includes the learner in its membership
    assert net.nodes[1].storage.snapshot_metadata.conf_state == expected_conf

    net.add_node(4)
    net.tick(1)
    net.stabilize()
    learner = net.node(4).statistics()
    assert (learner.role, learner.conf_state, learner.snapshot_index) == (
        Role.FOLLOWER,
        expected_conf,
        6,
    )
    assert net.node(1).statistics().event("snapshots_sent") == 1
    assert net.applied(4) == [b"x0", b"x1", b"x2", b"x3"]
    assert progress(net, 1, 4).is_learner

    change_membership(net, 1, add_voter(4))  # index 7
    for node_id in (1, 2, 3, 4):
        assert net.node(node_id).statistics().conf_state == ConfState(voters=(1, 2, 3, 4))
    assert not progress(net, 1, 4).is_learner
    # Four voters need three: with node 2 cut, node 4's acknowledgement makes the difference.
    net.cut(1, 2)
    net.drop(4, 1)
    net.propose(1, b"y")
    net.stabilize()
    assert (net.node(1).raft.raft_log.last_index(), committed(net, 1)) == (8, 7)
    net.heal()
    net.cut(1, 2)
    net.tick(1)
    net.stabilize()
    assert committed(net, 1) == 8
    assert net.applied(4) == net.applied(1) == [b"x0", b"x1", b"x2", b"x3", b"y"]


def test_learner_added_after_compaction_catches_up_by_snapshot():
    """The only snapshot predates the learner's ADD entry, so its membership lacks the learner.

    raft-rs's MemStorage builds the snapshot it hands out from the current
    membership, and etcd's raftexample updates the ConfState before sending
    (etcd-io/etcd#13741); either way the newcomer must be able to install it.
    """
    net = make_network(seed=9)
    elect(net, 1)
    propose_all(net, 1, [b"x0", b"x1", b"x2"])
    net.compact(1)  # snapshot at 4, membership (1, 2, 3)
    change_membership(net, 1, add_learner(4))  # index 5
    net.add_node(4)
    for _ in range(3):
        net.tick(1)
        net.stabilize()
    learner = net.node(4).statistics()
    assert learner.conf_state == ConfState(voters=(1, 2, 3), learners=(4,))
    assert net.applied(4) == [b"x0", b"x1", b"x2"]
    assert progress(net, 1, 4).state is ProgressState.REPLICATE
    assert progress(net, 1, 4).match_index == 5
    assert net.node(1).statistics().event("snapshots_sent") == 1


def test_conf_change_forwarded_while_one_is_pending_is_dropped_by_the_leader():
    net = make_network(seed=12)
    elect(net, 1)
    net.propose_conf_change(1, add_learner(4))  # index 2, pending
    net.propose_conf_change(3, add_learner(5))  # node 3 forwards it
    net.stabilize()
    stats = net.node(1).statistics()
    assert stats.rejected("conf_change_dropped_while_pending") == 1
    assert stats.conf_state == ConfState(voters=(1, 2, 3), learners=(4,))
    # The dropped change keeps its slot in the log as an empty normal entry.
    assert log_entries(net, 1)[-1] == Entry(term=1, index=3)


def test_new_leader_refuses_conf_change_until_the_one_in_its_log_is_applied():
    net = make_network(seed=12, check_quorum=False)
    elect(net, 1)
    net.drop(2, 1)
    net.drop(3, 1)
    change_membership(net, 1, add_learner(4))  # index 2 on every node, committed nowhere
    assert [committed(net, i) for i in (1, 2, 3)] == [1, 1, 1]
    net.heal()
    net.isolate(1)
    net.node(2).campaign()
    net.process_readies()
    while net.node(2).raft.role is not Role.LEADER:
        net.deliver()
    with pytest.raises(ConfChangePendingError):
        net.propose_conf_change(2, add_learner(5))
    net.stabilize()  # node 2's own entry commits index 2 with it
    assert net.node(2).statistics().conf_state == ConfState(voters=(1, 2, 3), learners=(4,))
    change_membership(net, 2, add_learner(5))
    assert net.node(2).statistics().conf_state == ConfState(voters=(1, 2, 3), learners=(4, 5))


def test_learner_never_campaigns():
    net = make_network((1, 2, 3), learners=(4,), seed=12)
    for node_id in (1, 2, 3):
        net.isolate(node_id)  # no one leads; the voters keep campaigning in vain
    for _ in range(100):
        net.tick_all()
    learner = net.node(4).statistics()
    assert (learner.role, learner.term) == (Role.FOLLOWER, 0)
    assert (learner.event("pre_elections"), learner.event("elections")) == (0, 0)
    assert net.node(1).statistics().event("pre_elections") > 0


def test_second_conf_change_while_one_is_pending_raises():
    net = make_network(seed=9)
    elect(net, 1)
    net.propose_conf_change(1, add_learner(4))  # appended, not yet committed
    last = net.node(1).raft.raft_log.last_index()
    with pytest.raises(ConfChangePendingError):
        net.propose_conf_change(1, add_learner(5))
    assert net.node(1).raft.raft_log.last_index() == last
    net.stabilize()  # the first change commits and is applied: the slot frees
    change_membership(net, 1, add_learner(5))
    assert net.node(1).statistics().conf_state == ConfState(voters=(1, 2, 3), learners=(4, 5))


@pytest.mark.parametrize(
    ("voters", "learners", "change"),
    [
        pytest.param((1, 2, 3), (), add_voter(2), id="add-existing-voter"),
        pytest.param((1, 2, 3), (4,), add_learner(4), id="add-existing-learner"),
        pytest.param((1, 2, 3), (), add_learner(2), id="demote-voter-to-learner"),
        pytest.param((1, 2, 3), (), remove(9), id="remove-non-member"),
        pytest.param((1,), (), remove(1), id="remove-last-voter"),
    ],
)
def test_invalid_conf_change_raises_and_appends_nothing(voters, learners, change):
    net = make_network(voters, learners=learners, seed=9)
    elect(net, 1)
    last = net.node(1).raft.raft_log.last_index()
    with pytest.raises(InvalidConfChangeError):
        net.propose_conf_change(1, change)
    assert net.node(1).raft.raft_log.last_index() == last
    assert net.node(1).statistics().conf_state == ConfState.of(voters, learners)


def test_removed_follower_gets_no_more_messages_and_the_quorum_shrinks():
    net = make_network((1, 2, 3, 4), seed=10)
    elect(net, 1)
    change_membership(net, 1, remove(4))
    assert net.node(1).statistics().conf_state == ConfState(voters=(1, 2, 3))
    assert [p.node_id for p in net.node(1).statistics().progress] == [1, 2, 3]
    to_node_4 = record(net, lambda m: m.to == 4)
    net.propose(1, b"x")
    net.tick(1)
    net.stabilize()
    assert to_node_4 == []
    # Three voters need two: nodes 1 and 2 commit alone (with four they could not).
    net.cut(1, 3)
    net.cut(1, 4)
    net.propose(1, b"y")
    net.stabilize()
    assert committed(net, 1) == committed(net, 2) == net.node(1).raft.raft_log.last_index()
    assert net.applied(2) == [b"x", b"y"]


def test_removed_leader_steps_down_and_hands_over_with_timeout_now():
    net = make_network(seed=10)
    elect(net, 1)
    propose_all(net, 1, [b"a"])
    timeout_now = record(net, lambda m: m.msg_type is MT.TIMEOUT_NOW)
    change_membership(net, 1, remove(1))  # no tick: the hand-over needs no election timeout
    old = net.node(1).statistics()
    assert (old.role, old.term, old.conf_state) == (Role.FOLLOWER, 1, ConfState(voters=(2, 3)))
    assert old.event("leader_removed_itself") == 1
    assert [(m.from_, m.to) for m in timeout_now] == [(1, 2)]
    new = net.node(2).statistics()
    assert (new.role, new.term, new.event("timeout_now_received")) == (Role.LEADER, 2, 1)
    assert net.node(3).statistics().leader_id == 2
    net.propose(2, b"b")
    net.stabilize()
    assert net.applied(2) == net.applied(3) == [b"a", b"b"]


def test_entry_waiting_for_a_removed_voter_commits_when_the_removal_applies():
    """Removing a voter shrinks the quorum at once: what waited for its ack commits."""
    net = make_network((1, 2), seed=10)
    elect(net, 1)
    net.propose_conf_change(1, remove(2))  # index 2
    net.propose(1, b"x")  # index 3
    assert [[e.index for e in m.entries] for m in in_flight(net, MT.APPEND, to=2)] == [[2], [3]]
    net.in_flight.pop(1)  # node 2 never gets index 3
    net.deliver()  # node 2 stores index 2
    net.deliver()  # its ack commits index 2; applying it leaves node 1 the only voter
    assert net.node(1).statistics().conf_state == ConfState(voters=(1,))
    assert committed(net, 1) == 3
    assert net.applied(1) == [b"x"]
    assert net.node(2).raft.raft_log.last_index() == 2


def test_removed_leader_hands_over_to_the_most_up_to_date_voter():
    net = make_network(seed=10)
    elect(net, 1)
    net.drop(1, 2)  # node 2 falls behind; node 3 keeps up
    propose_all(net, 1, [b"a"])
    timeout_now = record(net, lambda m: m.msg_type is MT.TIMEOUT_NOW)
    change_membership(net, 1, remove(1))
    assert [(m.from_, m.to) for m in timeout_now] == [(1, 3)]
    assert (net.leader_id(), net.node(3).raft.term) == (3, 2)
    net.heal()
    net.propose(3, b"b")
    net.stabilize()
    assert net.applied(2) == net.applied(3) == [b"a", b"b"]


def test_removed_leader_never_campaigns_again():
    net = make_network(seed=10)
    elect(net, 1)
    change_membership(net, 1, remove(1))
    from_node_1 = record(net, lambda m: m.from_ == 1)
    for _ in range(100):  # five times the longest election timeout
        net.tick_all()
        net.stabilize()
    old = net.node(1).statistics()
    assert (old.role, old.term) == (Role.FOLLOWER, 1)
    assert (old.event("elections"), old.event("pre_elections")) == (1, 1)  # from its own first win
    assert from_node_1 == []
    assert net.leader_id() == 2
    assert net.node(2).raft.term == 2


# -- crash and restart ---------------------------------------------------------------------


def test_restarted_follower_keeps_log_and_hard_state_and_catches_up():
    net = make_network(seed=11)
    elect(net, 1)
    propose_all(net, 1, [b"a0", b"a1", b"a2"])
    hard_state, entries = net.hard_state(3), log_entries(net, 3)
    assert hard_state.commit == 4
    net.crash(3)
    propose_all(net, 1, [b"b0", b"b1"])  # committed by nodes 1 and 2
    net.restart(3)
    restarted = net.node(3).statistics()
    assert (restarted.term, restarted.vote, restarted.commit) == (
        hard_state.term,
        hard_state.vote,
        hard_state.commit,
    )
    assert restarted.role is Role.FOLLOWER
    assert log_entries(net, 3) == entries
    # The state machine is rebuilt by applying the committed entries again.
    assert net.applied(3) == [b"a0", b"a1", b"a2"]
    net.tick(1)
    net.stabilize()
    assert committed(net, 3) == 6
    assert net.applied(3) == [b"a0", b"a1", b"a2", b"b0", b"b1"]


def test_restarted_node_restores_its_state_machine_from_its_snapshot():
    net = lagging_follower_after_compaction()
    net.tick(1)
    net.stabilize()  # node 3 installs the leader's snapshot at 6, then index 7
    assert net.nodes[3].storage.snapshot_metadata.index == 6
    history = list(net.nodes[3].state_machine.history)
    net.crash(3)
    net.restart(3)
    restarted = net.node(3).statistics()
    assert (restarted.snapshot_index, restarted.first_index, restarted.last_index) == (6, 7, 7)
    assert (restarted.commit, restarted.applied) == (7, 7)
    # Indexes 2..6 exist only in the snapshot now; index 7 is replayed from the log.
    assert net.nodes[3].state_machine.history == history
    assert net.applied(3) == LEADER_HISTORY
