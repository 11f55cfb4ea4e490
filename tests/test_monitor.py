"""The InvariantMonitor fails when it should: one violating history per check (issue 15, item 14).

The monitor guards every cluster run, so a check that never fires could be
switched off without any run noticing. Each test here feeds the monitor the
smallest history that breaks one property — real ``RawNode`` s over
``MemStorage``, with their logs, terms and roles set by hand — and asserts
the violation it names; a consistent history of the same shape passes, so a
monitor that raises on everything fails too.
"""

from __future__ import annotations

import pytest

from simulator import (
    Config,
    ConfState,
    Entry,
    HardState,
    InvariantMonitor,
    InvariantViolation,
    MemStorage,
    RawNode,
    Role,
    snapshot_digest,
)

VOTERS = ConfState.of((1, 2, 3))


def node(node_id: int, terms=(), *, commit: int = 0, term: int | None = None, role=Role.FOLLOWER,
         data: bytes = b"") -> RawNode:
    """A node whose log holds one entry per term in ``terms`` (indexes 1, 2, ...)."""
    storage = MemStorage.new_with_conf_state(VOTERS)
    entries = [Entry(term=t, index=i, data=data) for i, t in enumerate(terms, start=1)]
    storage.append(entries)
    last_term = terms[-1] if terms else 0
    storage.set_hard_state(HardState(term=term if term is not None else last_term, commit=commit))
    raw = RawNode(Config(id=node_id), storage, _rng())
    raw.raft.role = role
    return raw


def _rng():
    import random

    return random.Random(0)


def leader(node_id: int, terms, *, term: int, commit: int = 0) -> RawNode:
    return node(node_id, terms, term=term, commit=commit, role=Role.LEADER)


def violation(action) -> str:
    with pytest.raises(InvariantViolation) as caught:
        action()
    return caught.value.invariant


# -- election safety --------------------------------------------------------------------


def test_two_leaders_in_one_term_violate_election_safety():
    monitor = InvariantMonitor()
    monitor.role_changed(1, leader(1, [1], term=1))
    assert violation(lambda: monitor.role_changed(2, leader(2, [1], term=1))) == "election safety"


def test_leaders_of_different_terms_are_fine():
    monitor = InvariantMonitor()
    monitor.role_changed(1, leader(1, [1], term=1))
    monitor.role_changed(2, leader(2, [1, 2], term=2))


# -- leader completeness ------------------------------------------------------------------


def test_new_leader_missing_a_committed_entry_violates_leader_completeness():
    monitor = InvariantMonitor()
    monitor.committed(1, node(1, [1, 1], commit=2, term=1), 2)
    # Elected in term 2 with term 2 at index 2, where term 1 was committed.
    new = leader(2, [1, 2], term=2)
    assert violation(lambda: monitor.role_changed(2, new)) == "leader completeness"


def test_new_leader_holding_every_committed_entry_is_fine():
    monitor = InvariantMonitor()
    monitor.committed(1, node(1, [1, 1], commit=2, term=1), 2)
    monitor.role_changed(2, leader(2, [1, 1, 2], term=2))


def test_entry_committed_late_that_a_later_leader_lacks_violates_leader_completeness():
    monitor = InvariantMonitor()
    monitor.role_changed(2, leader(2, [1, 2], term=2))
    # A node still in term 1 learns only now that index 2 (term 1) is committed.
    old = node(1, [1, 1], commit=2, term=1)
    assert violation(lambda: monitor.committed(1, old, 2)) == "leader completeness"


# -- log matching -------------------------------------------------------------------------


def test_same_index_and_term_with_different_data_violates_log_matching():
    monitor = InvariantMonitor()
    first = node(1, [1], data=b"a")
    monitor.appended(1, first, first.raft.raft_log.all_entries())
    second = node(2, [1], data=b"b")
    assert violation(lambda: monitor.appended(2, second, second.raft.raft_log.all_entries())) == "log matching"


def test_same_index_and_term_after_a_different_term_violates_log_matching():
    monitor = InvariantMonitor()
    first = node(1, [1, 2])
    monitor.appended(1, first, first.raft.raft_log.all_entries())
    second = node(2, [2, 2])  # (2, term 2) follows term 2 here, term 1 there
    assert violation(lambda: monitor.appended(2, second, second.raft.raft_log.all_entries()[1:])) == "log matching"


def test_identical_entries_on_two_nodes_are_fine():
    monitor = InvariantMonitor()
    for node_id in (1, 2):
        raw = node(node_id, [1, 2], data=b"x")
        monitor.appended(node_id, raw, raw.raft.raft_log.all_entries())


# -- state machine safety -----------------------------------------------------------------


def test_two_terms_committed_at_one_index_violate_state_machine_safety():
    monitor = InvariantMonitor()
    monitor.committed(1, node(1, [1], commit=1), 1)
    assert violation(lambda: monitor.committed(2, node(2, [2], commit=1), 1)) == "state machine safety"


def test_two_entries_applied_at_one_index_violate_state_machine_safety():
    monitor = InvariantMonitor()
    monitor.applied(1, Entry(term=1, index=1, data=b"a"))
    assert violation(lambda: monitor.applied(2, Entry(term=1, index=1, data=b"b"))) == "state machine safety"


def test_the_same_entry_applied_on_two_nodes_is_fine():
    monitor = InvariantMonitor()
    monitor.applied(1, Entry(term=1, index=1, data=b"a"))
    monitor.applied(2, Entry(term=1, index=1, data=b"a"))


def test_two_snapshots_at_one_index_with_different_data_violate_state_machine_safety():
    monitor = InvariantMonitor()
    monitor.committed(1, node(1, [1], commit=1), 1)
    monitor.committed(2, node(2, [1], commit=1), 1)
    monitor.snapshot_created(1, 1, snapshot_digest(b"state-a"))
    assert violation(lambda: monitor.snapshot_created(2, 1, snapshot_digest(b"state-b"))) == "state machine safety"


# -- commit and applied never go back -----------------------------------------------------


def test_commit_going_back_violates_commit_monotonic():
    monitor = InvariantMonitor()
    monitor.committed(1, node(1, [1, 1], commit=2), 2)
    assert violation(lambda: monitor.committed(1, node(1, [1, 1], commit=1), 1)) == "commit monotonic"


def test_restart_with_an_older_commit_violates_commit_monotonic():
    monitor = InvariantMonitor()
    monitor.committed(1, node(1, [1, 1], commit=2), 2)
    assert violation(lambda: monitor.node_started(1, node(1, [1, 1], commit=1))) == "commit monotonic"


def test_applying_an_index_again_violates_applied_monotonic():
    monitor = InvariantMonitor()
    monitor.applied(1, Entry(term=1, index=1))
    monitor.applied(1, Entry(term=1, index=2))
    assert violation(lambda: monitor.applied(1, Entry(term=1, index=2))) == "applied monotonic"


# -- index order --------------------------------------------------------------------------


def test_applied_past_commit_violates_index_order():
    monitor = InvariantMonitor()
    raw = node(1, [1, 1], commit=1)
    raw.raft.raft_log.applied = 2  # what a driver applying uncommitted entries would leave
    assert violation(lambda: monitor.advanced(1, raw)) == "index order"


def test_commit_past_the_last_index_violates_index_order():
    monitor = InvariantMonitor()
    raw = node(1, [1], commit=1)
    raw.raft.raft_log.committed = 5
    assert violation(lambda: monitor.advanced(1, raw)) == "index order"


def test_ordered_indexes_are_fine():
    InvariantMonitor().advanced(1, node(1, [1, 1], commit=2))


# -- snapshots ----------------------------------------------------------------------------


def test_snapshot_created_past_the_nodes_commit_violates_snapshot_rule():
    monitor = InvariantMonitor()
    monitor.committed(1, node(1, [1, 1], commit=1), 1)
    invariant = violation(lambda: monitor.snapshot_created(1, 2, snapshot_digest(b"state")))
    assert invariant == "snapshot covers committed entries only"


def test_snapshot_installed_past_every_commit_violates_snapshot_rule():
    monitor = InvariantMonitor()
    monitor.committed(1, node(1, [1, 1], commit=1), 1)
    invariant = violation(lambda: monitor.snapshot_installed(2, 2, snapshot_digest(b"state")))
    assert invariant == "snapshot covers committed entries only"


def test_installed_snapshot_differing_from_the_one_made_violates_equality():
    monitor = InvariantMonitor()
    monitor.committed(1, node(1, [1, 1], commit=2), 2)
    monitor.snapshot_created(1, 2, snapshot_digest(b"state"))
    invariant = violation(lambda: monitor.snapshot_installed(2, 2, snapshot_digest(b"other")))
    assert invariant == "installed snapshot equals the leader's state"


def test_installing_the_snapshot_that_was_made_is_fine():
    monitor = InvariantMonitor()
    monitor.committed(1, node(1, [1, 1], commit=2), 2)
    monitor.snapshot_created(1, 2, snapshot_digest(b"state"))
    monitor.snapshot_installed(2, 2, snapshot_digest(b"state"))
    assert monitor.highest_applied[2] == 2
