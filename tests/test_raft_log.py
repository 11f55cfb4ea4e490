"""Tests of ``RaftLog`` / ``Unstable`` and of the leader's flow control in ``progress``.

Modeled on raft-rs ``raft_log.rs``, ``log_unstable.rs`` and ``tracker/progress.rs``
(and etcd ``log_test.go``, ``progress_test.go``). Entries are written
``E(term, index)``; a log "with terms (1, 2, 3)" holds entry 1 of term 1,
entry 2 of term 2 and entry 3 of term 3. Logs are built through
:func:`make_log`, which puts a snapshot and stable entries in ``MemStorage``
and appends the rest as unstable, the way a running node has them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from simulator.raft.errors import CompactedError, UnavailableError
from simulator.raft.log import RaftLog, Unstable
from simulator.raft.messages import (
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
)
from simulator.raft.progress import (
    Inflights,
    Progress,
    ProgressState,
    ProgressTracker,
    VoteResult,
)
from simulator.raft.storage import MemStorage

E = Entry


def entries(first_index: int, terms: Sequence[int], data: bytes = b"") -> list[Entry]:
    """Contiguous entries from ``first_index``, one per term in ``terms``."""
    return [E(term, first_index + offset, data) for offset, term in enumerate(terms)]


def snapshot(index: int, term: int) -> Snapshot:
    return Snapshot(SnapshotMetadata(index=index, term=term, conf_state=ConfState(voters=(1,))))


def make_log(
    stable: Sequence[Entry] = (),
    unstable: Sequence[Entry] = (),
    *,
    snapshot_at: tuple[int, int] | None = None,
) -> RaftLog:
    """A log whose storage holds ``snapshot_at`` (index, term) and ``stable``, plus ``unstable``."""
    storage = MemStorage()
    if snapshot_at is not None:
        storage.apply_snapshot(snapshot(*snapshot_at))
    storage.append(list(stable))
    log = RaftLog.new(storage)
    log.append(list(unstable))
    return log


# -- RaftLog.new, term, first / last index ---------------------------------------------


def test_new_log_starts_committed_and_applied_at_the_snapshot():
    log = make_log(entries(6, (2, 3)), snapshot_at=(5, 2))
    assert (log.first_index(), log.last_index()) == (6, 7)
    assert (log.committed, log.applied) == (5, 5)
    assert log.unstable.offset == 8
    assert log.unstable_entries() == []
    assert log.all_entries() == entries(6, (2, 3))


@pytest.mark.parametrize(
    ("index", "term"),
    [
        (3, 2),  # the snapshot's own index: its term is known
        (4, 2),  # stable, from storage
        (5, 3),
        (6, 3),  # unstable
        (7, 0),  # past the last index
        (100, 0),
    ],
)
def test_term_reads_snapshot_storage_and_unstable(index, term):
    log = make_log(entries(4, (2, 3)), entries(6, (3,)), snapshot_at=(3, 2))
    assert log.term(index) == term


@pytest.mark.parametrize("index", [0, 1, 2])
def test_term_below_the_snapshot_is_compacted(index):
    log = make_log(entries(4, (2, 3)), entries(6, (3,)), snapshot_at=(3, 2))
    with pytest.raises(CompactedError):
        log.term(index)
    assert log.term_or_zero(index) == 0
    assert not log.match_term(index, 0)


def test_term_after_storage_compaction_reads_the_remaining_entries():
    """Compacting storage under the log (raft-rs test_compaction_side_effects) keeps later terms."""
    terms = tuple(range(1, 11))
    log = make_log(entries(1, terms[:7]), entries(8, terms[7:]))
    log.commit_to(10)
    storage = log.storage
    storage.set_hard_state(HardState(term=10, commit=10))
    storage.create_snapshot(5)
    storage.compact(6)
    assert (log.first_index(), log.last_index()) == (6, 10)
    assert [log.term(index) for index in range(5, 11)] == [5, 6, 7, 8, 9, 10]
    with pytest.raises(CompactedError):
        log.term(4)
    assert [entry.index for entry in log.unstable_entries()] == [8, 9, 10]


@pytest.mark.parametrize(
    ("last_index", "term", "up_to_date"),
    [
        (2, 4, True),  # greater last term wins whatever the index
        (3, 4, True),
        (4, 4, True),
        (2, 2, False),  # smaller last term loses whatever the index
        (3, 2, False),
        (4, 2, False),
        (2, 3, False),  # same last term: the longer log wins, ties are up to date
        (3, 3, True),
        (4, 3, True),
    ],
)
def test_is_up_to_date(last_index, term, up_to_date):
    log = make_log(unstable=entries(1, (1, 2, 3)))
    assert log.is_up_to_date(last_index, term) is up_to_date


# -- find_conflict and find_conflict_by_term ----------------------------------------------


@pytest.mark.parametrize(
    ("new", "conflict"),
    [
        ([], 0),
        (entries(1, (1, 2, 3)), 0),  # all already there
        (entries(2, (2, 3)), 0),
        (entries(3, (3,)), 0),
        (entries(1, (1, 2, 3, 4, 4)), 4),  # no conflict, but new entries from 4
        (entries(2, (2, 3, 4, 4)), 4),
        (entries(3, (3, 4, 4)), 4),
        (entries(4, (4, 4)), 4),
        (entries(1, (4, 4)), 1),  # conflicts with existing entries
        (entries(2, (1, 4, 4)), 2),
        (entries(3, (1, 2, 4, 4)), 3),
    ],
)
def test_find_conflict(new, conflict):
    log = make_log(unstable=entries(1, (1, 2, 3)))
    assert log.find_conflict(new) == conflict


@pytest.mark.parametrize(
    ("index", "term", "expected"),
    [
        (5, 5, (5, 5)),  # the entry itself matches
        (5, 4, (4, 3)),  # skip every entry of term 5
        (5, 3, (4, 3)),
        (5, 2, (2, 1)),  # skip terms 5 and 3 at once
        (3, 3, (3, 3)),
        (2, 1, (2, 1)),
        (5, 0, (0, 0)),  # no entry of term 0 or less: before the log
        (9, 5, (5, 5)),  # past the end: starts from the last index
        (9, 4, (4, 3)),
    ],
)
def test_find_conflict_by_term(index, term, expected):
    log = make_log(entries(1, (1, 1)), entries(3, (3, 3, 5)))
    assert log.find_conflict_by_term(index, term) == expected


def test_find_conflict_by_term_stops_at_compacted_entries_with_unknown_term():
    """Below the snapshot the term is unknown: report the index with term 0 (possible match)."""
    log = make_log(entries(3, (3, 3, 5)), snapshot_at=(2, 2))
    assert log.find_conflict_by_term(5, 2) == (2, 2)  # the snapshot's term is known
    assert log.find_conflict_by_term(5, 1) == (1, 0)


# -- maybe_append, append ---------------------------------------------------------------

LAST_INDEX, LAST_TERM, COMMIT = 3, 3, 1


@pytest.mark.parametrize(
    ("log_term", "index", "committed", "new", "last_new", "commit"),
    [
        # Rejected: the preceding entry does not match (wrong term / beyond the log).
        (LAST_TERM - 1, LAST_INDEX, LAST_INDEX, entries(4, (4,)), None, COMMIT),
        (LAST_TERM, LAST_INDEX + 1, LAST_INDEX, entries(5, (4,)), None, COMMIT),
        # Matches the last entry; the commit index follows the message...
        (LAST_TERM, LAST_INDEX, LAST_INDEX, [], LAST_INDEX, LAST_INDEX),
        (LAST_TERM, LAST_INDEX, LAST_INDEX - 1, [], LAST_INDEX, LAST_INDEX - 1),
        # ... but never past the last new entry, and never backwards.
        (LAST_TERM, LAST_INDEX, LAST_INDEX + 1, [], LAST_INDEX, LAST_INDEX),
        (LAST_TERM, LAST_INDEX, 0, [], LAST_INDEX, COMMIT),
        (0, 0, LAST_INDEX, [], 0, COMMIT),
        # New entries after the last one.
        (LAST_TERM, LAST_INDEX, LAST_INDEX, entries(4, (4,)), 4, LAST_INDEX),
        (LAST_TERM, LAST_INDEX, LAST_INDEX + 1, entries(4, (4,)), 4, 4),
        (LAST_TERM, LAST_INDEX, LAST_INDEX + 2, entries(4, (4,)), 4, 4),
        (LAST_TERM, LAST_INDEX, LAST_INDEX + 2, entries(4, (4, 4)), 5, 5),
        # Matches in the middle: the conflicting suffix is replaced.
        (LAST_TERM - 1, LAST_INDEX - 1, LAST_INDEX, entries(3, (4,)), 3, 3),
        (LAST_TERM - 2, LAST_INDEX - 2, LAST_INDEX, entries(2, (4,)), 2, 2),
        (LAST_TERM - 2, LAST_INDEX - 2, LAST_INDEX, entries(2, (4, 4)), 3, 3),
        # Entry 2 already matches, so only 3 is replaced and 4 added.
        (LAST_TERM - 2, LAST_INDEX - 2, LAST_INDEX + 2, entries(2, (2, 4, 4)), 4, 4),
    ],
)
def test_maybe_append(log_term, index, committed, new, last_new, commit):
    log = make_log(unstable=entries(1, (1, 2, 3)))
    log.committed = COMMIT
    before = log.all_entries()
    assert log.maybe_append(index, log_term, committed, tuple(new)) == last_new
    assert log.committed == commit
    if last_new is None:
        assert log.all_entries() == before
    elif new:
        assert log.slice(new[0].index, last_new + 1) == new
        assert log.last_index() == last_new


def test_maybe_append_refuses_to_overwrite_a_committed_entry():
    log = make_log(unstable=entries(1, (1, 2, 3)))
    log.committed = COMMIT
    with pytest.raises(AssertionError, match="committed"):
        log.maybe_append(0, 0, LAST_INDEX, (E(4, 1),))
    assert log.all_entries() == entries(1, (1, 2, 3))


def test_maybe_append_truncating_stable_entries_moves_the_unstable_offset_back():
    log = make_log(entries(1, (1, 1, 1)))
    assert log.unstable.offset == 4
    assert log.maybe_append(1, 1, 0, (E(2, 2),)) == 2
    assert log.unstable.offset == 2
    assert log.unstable_entries() == [E(2, 2)]
    assert log.all_entries() == [E(1, 1), E(2, 2)]
    assert log.last_index() == 2


@pytest.mark.parametrize(
    ("new", "last_index", "all_after", "offset"),
    [
        ([], 2, entries(1, (1, 2)), 3),
        (entries(3, (2,)), 3, entries(1, (1, 2, 2)), 3),
        (entries(1, (2,)), 1, entries(1, (2,)), 1),  # replaces from index 1
        (entries(2, (3, 3)), 3, entries(1, (1, 3, 3)), 2),  # replaces from index 2
    ],
)
def test_append_to_stable_entries(new, last_index, all_after, offset):
    log = make_log(entries(1, (1, 2)))
    assert log.append(new) == last_index
    assert log.all_entries() == all_after
    assert log.unstable.offset == offset


# -- commit and apply -------------------------------------------------------------------


@pytest.mark.parametrize(("commit", "expected"), [(3, 3), (2, 2), (1, 2), (0, 2)])
def test_commit_to_never_decreases(commit, expected):
    log = make_log(unstable=entries(1, (1, 2, 3)))
    log.committed = 2
    log.commit_to(commit)
    assert log.committed == expected


def test_commit_to_past_the_last_index_is_refused():
    log = make_log(unstable=entries(1, (1, 2, 3)))
    with pytest.raises(AssertionError, match="past the last index"):
        log.commit_to(4)
    assert log.committed == 0


@pytest.mark.parametrize(
    ("index", "term", "committed", "result"),
    [
        (4, 2, 4, True),  # the entry is of the term: commits it and all before
        (3, 2, 3, True),
        (2, 1, 2, True),  # any term, as long as the entry at index is of it
        (4, 1, 0, False),  # entry 4 is of term 2, not 1: §5.4.2
        (2, 2, 0, False),  # entry 2 is of term 1
        (6, 2, 0, False),  # beyond the log
    ],
)
def test_maybe_commit_only_commits_entries_of_the_given_term(index, term, committed, result):
    log = make_log(unstable=entries(1, (1, 1, 2, 2)))
    assert log.maybe_commit(index, term) is result
    assert log.committed == committed


def test_maybe_commit_does_not_move_to_or_below_the_commit_index():
    log = make_log(unstable=entries(1, (1, 1, 2, 2)))
    log.commit_to(4)
    assert log.maybe_commit(4, 2) is False
    assert log.maybe_commit(3, 2) is False
    assert log.committed == 4


def test_applied_to_stays_within_applied_and_commit():
    log = make_log(unstable=entries(1, (1, 1, 1)))
    log.commit_to(2)
    log.applied_to(1)
    log.applied_to(0)  # 0 means "nothing to report"
    assert log.applied == 1
    with pytest.raises(AssertionError):
        log.applied_to(3)  # past commit
    log.applied_to(2)
    with pytest.raises(AssertionError):
        log.applied_to(1)  # backwards
    assert log.applied == 2


# -- reading: slice, entries, next_entries ---------------------------------------------------

#: Snapshot at 10; stable entries 11..14 in storage; unstable 15..19. Term = index.
SNAPSHOT_INDEX = 10
HALF = 15
LAST = 19
ENTRY_DATA = b"12345678"
SIZE = len(ENTRY_DATA)


def sliced_log() -> RaftLog:
    return make_log(
        entries(11, range(11, HALF), ENTRY_DATA),
        entries(HALF, range(HALF, LAST + 1), ENTRY_DATA),
        snapshot_at=(SNAPSHOT_INDEX, SNAPSHOT_INDEX),
    )


def indexes(found: list[Entry]) -> list[int]:
    return [entry.index for entry in found]


@pytest.mark.parametrize(
    ("low", "high", "max_size", "expected"),
    [
        (HALF - 1, HALF + 1, None, [HALF - 1, HALF]),  # across storage and unstable
        (HALF, HALF + 1, None, [HALF]),
        (11, HALF, None, [11, 12, 13, 14]),  # storage only
        (LAST - 1, LAST + 1, None, [LAST - 1, LAST]),  # unstable only
        (13, 13, None, []),
        # One entry always, even over the limit.
        (HALF - 1, HALF + 1, 0, [HALF - 1]),
        (HALF - 1, HALF + 1, SIZE + 1, [HALF - 1]),
        (HALF - 2, HALF + 1, SIZE + 1, [HALF - 2]),
        (HALF - 1, HALF + 1, 2 * SIZE, [HALF - 1, HALF]),
        (HALF - 1, HALF + 2, 3 * SIZE, [HALF - 1, HALF, HALF + 1]),
        (HALF, HALF + 2, SIZE, [HALF]),
        (HALF, HALF + 2, 2 * SIZE, [HALF, HALF + 1]),
        # The limit cuts inside storage: nothing is taken from unstable.
        (12, HALF + 2, 2 * SIZE, [12, 13]),
    ],
)
def test_slice_across_storage_and_unstable(low, high, max_size, expected):
    assert indexes(sliced_log().slice(low, high, max_size)) == expected


@pytest.mark.parametrize(("low", "high"), [(SNAPSHOT_INDEX - 1, 12), (SNAPSHOT_INDEX, 12)])
def test_slice_below_the_first_index_is_compacted(low, high):
    with pytest.raises(CompactedError):
        sliced_log().slice(low, high)


@pytest.mark.parametrize(("low", "high"), [(LAST, LAST + 2), (LAST + 1, LAST + 3)])
def test_slice_past_the_last_index_is_unavailable(low, high):
    with pytest.raises(UnavailableError):
        sliced_log().slice(low, high)


def test_entries_from_past_the_end_is_empty():
    log = sliced_log()
    assert log.entries(LAST + 1) == []
    assert indexes(log.entries(LAST - 1)) == [LAST - 1, LAST]
    assert indexes(log.entries(12, max_size=SIZE)) == [12]


#: Snapshot at 3 (term 1) and entries 4..7 of term 1, all stable.
@pytest.mark.parametrize(
    ("applied", "committed", "expected"),
    [
        (3, 3, []),  # RaftLog.new starts applied at the snapshot index
        (3, 4, [4]),
        (3, 5, [4, 5]),
        (3, 7, [4, 5, 6, 7]),
        (4, 5, [5]),
        (4, 7, [5, 6, 7]),
        (5, 5, []),
        (5, 7, [6, 7]),
        (7, 7, []),
    ],
)
def test_next_entries_are_committed_but_not_applied(applied, committed, expected):
    log = make_log(entries(4, (1, 1, 1, 1)), snapshot_at=(3, 1))
    log.commit_to(committed)
    log.applied_to(applied)
    assert log.has_next_entries() is bool(expected)
    assert indexes(log.next_entries()) == expected


def test_next_entries_respects_max_size_but_hands_out_at_least_one():
    log = make_log(entries(4, (1, 1, 1, 1), ENTRY_DATA), snapshot_at=(3, 1))
    log.commit_to(7)
    assert indexes(log.next_entries(0)) == [4]
    assert indexes(log.next_entries(2 * SIZE)) == [4, 5]
    assert indexes(log.next_entries()) == [4, 5, 6, 7]


def test_next_entries_after_restore_start_past_the_snapshot():
    """A restored snapshot is applied whole; entries it covers are not handed out again."""
    log = make_log(entries(1, (1, 1)))
    log.commit_to(1)
    log.restore(snapshot(5, 2))
    assert not log.has_next_entries()
    assert log.next_entries() == []
    log.append(entries(6, (2,)))
    log.commit_to(6)
    assert indexes(log.next_entries()) == [6]


# -- persistence feedback: stable_to ------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "term", "offset", "still_unstable"),
    [
        (5, 1, 6, []),  # everything persisted
        (4, 1, 5, [5]),  # a prefix persisted
        (5, 2, 4, [4, 5]),  # wrong term: not what we hold
        (6, 1, 4, [4, 5]),  # past the last index
        (3, 1, 4, [4, 5]),  # at the snapshot, below the offset
    ],
)
def test_stable_to(index, term, offset, still_unstable):
    log = make_log(unstable=entries(4, (1, 1)), snapshot_at=(3, 1))
    log.stable_to(index, term)
    assert log.unstable.offset == offset
    assert indexes(log.unstable_entries()) == still_unstable


def test_stable_to_ignores_a_stale_ready_after_a_conflicting_append():
    """Entry 5 of term 1 was handed out, then replaced by 5 of term 2 before advance."""
    log = make_log(unstable=entries(4, (1, 1)), snapshot_at=(3, 1))
    log.append([E(2, 5)])
    log.stable_to(5, 1)
    assert log.unstable.offset == 4
    assert log.unstable_entries() == [E(1, 4), E(2, 5)]
    log.stable_to(5, 2)
    assert log.unstable_entries() == []


def test_stable_to_below_an_unstable_snapshot_is_ignored():
    log = make_log()
    log.restore(snapshot(100, 1))
    log.append([E(1, 101)])
    log.stable_to(100, 1)  # the snapshot index is not an entry of ours to stabilize
    assert log.unstable.offset == 101
    assert log.unstable_entries() == [E(1, 101)]
    log.stable_snapshot_to(99)  # not the pending snapshot
    assert log.pending_snapshot() == snapshot(100, 1)
    log.stable_snapshot_to(100)
    assert log.pending_snapshot() is None


# -- restore ------------------------------------------------------------------------------


def test_restore_replaces_the_log_with_the_snapshot():
    log = make_log(entries(1, (1, 1, 1, 1, 1)))
    log.commit_to(2)
    log.applied_to(2)
    log.restore(snapshot(10, 3))
    assert log.committed == 10
    assert log.applied == 2  # advance() moves it, once the snapshot is installed
    assert (log.first_index(), log.last_index()) == (11, 10)
    assert log.term(10) == 3
    with pytest.raises(CompactedError):
        log.term(9)
    assert log.pending_snapshot() == snapshot(10, 3)
    assert log.unstable.offset == 11
    assert log.unstable_entries() == []
    assert log.all_entries() == []
    assert log.append([E(3, 11)]) == 11
    assert log.term(11) == 3


def test_snapshot_prefers_the_pending_unstable_one():
    log = make_log()
    log.restore(snapshot(10, 3))
    assert log.snapshot(5, to=2) == snapshot(10, 3)


# -- Unstable on its own -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unstable", "first", "last"),
    [
        (Unstable(5, [E(1, 5)]), None, 5),
        (Unstable(0), None, None),
        (Unstable(5, [E(1, 5)], snapshot(4, 1)), 5, 5),
        (Unstable(5, [], snapshot(4, 1)), 5, 4),  # last is the snapshot's
    ],
)
def test_unstable_first_and_last_index(unstable, first, last):
    assert unstable.maybe_first_index() == first
    assert unstable.maybe_last_index() == last


@pytest.mark.parametrize(
    ("unstable", "index", "term"),
    [
        (Unstable(5, [E(1, 5)]), 5, 1),
        (Unstable(5, [E(1, 5)]), 6, None),
        (Unstable(5, [E(1, 5)]), 4, None),
        (Unstable(5, [E(1, 5)], snapshot(4, 1)), 5, 1),
        (Unstable(5, [E(1, 5)], snapshot(4, 1)), 6, None),
        (Unstable(5, [E(1, 5)], snapshot(4, 1)), 4, 1),  # the snapshot's term
        (Unstable(5, [E(1, 5)], snapshot(4, 1)), 3, None),
        (Unstable(5, [], snapshot(4, 1)), 5, None),
        (Unstable(5, [], snapshot(4, 1)), 4, 1),
        (Unstable(0), 5, None),
    ],
)
def test_unstable_maybe_term(unstable, index, term):
    assert unstable.maybe_term(index) == term


@pytest.mark.parametrize(
    ("held", "new", "offset", "after"),
    [
        ([E(1, 5)], entries(6, (1, 1)), 5, entries(5, (1, 1, 1))),  # append at the end
        ([E(1, 5)], entries(5, (2, 2)), 5, entries(5, (2, 2))),  # replace all unstable
        ([E(1, 5)], entries(4, (2, 2, 2)), 4, entries(4, (2, 2, 2))),  # and before it
        (entries(5, (1, 1, 1)), [E(2, 6)], 5, [E(1, 5), E(2, 6)]),  # truncate the middle
        (entries(5, (1, 1, 1)), entries(7, (2, 2)), 5, entries(5, (1, 1, 2, 2))),
    ],
)
def test_unstable_truncate_and_append(held, new, offset, after):
    unstable = Unstable(5, list(held))
    unstable.truncate_and_append(new)
    assert unstable.offset == offset
    assert unstable.entries == after


def test_unstable_restore_drops_entries_and_keeps_the_snapshot():
    unstable = Unstable(5, [E(1, 5)], snapshot(4, 1))
    unstable.restore(snapshot(6, 2))
    assert unstable.offset == 7
    assert unstable.entries == []
    assert unstable.snapshot == snapshot(6, 2)


def test_unstable_stable_snapshot_and_entries():
    unstable = Unstable(5, entries(5, (1, 2, 3)), snapshot(4, 1))
    unstable.stable_snapshot_to(4)
    unstable.stable_entries_to(7, 3)
    assert unstable.snapshot is None
    assert unstable.entries == []
    assert unstable.offset == 8


# -- Inflights ----------------------------------------------------------------------------------


def test_inflights_fill_up_to_capacity():
    inflights = Inflights(3)
    for index in (10, 20):
        inflights.add(index)
        assert not inflights.full()
    inflights.add(30)
    assert inflights.full()
    assert len(inflights) == 3
    with pytest.raises(AssertionError, match="full"):
        inflights.add(40)


def test_inflights_free_to_acknowledges_every_append_up_to_index():
    inflights = Inflights(10)
    for index in range(10):
        inflights.add(index)
    inflights.free_to(4)
    assert len(inflights) == 5
    inflights.free_to(3)  # old news
    assert len(inflights) == 5
    inflights.free_to(8)
    assert len(inflights) == 1
    for index in range(10, 15):
        inflights.add(index)
    inflights.free_to(12)
    assert len(inflights) == 2
    inflights.free_to(14)
    assert len(inflights) == 0


def test_inflights_free_first_one_and_reset():
    inflights = Inflights(3)
    for index in (1, 2, 3):
        inflights.add(index)
    inflights.free_first_one()
    assert len(inflights) == 2
    assert not inflights.full()
    inflights.free_to(2)
    assert len(inflights) == 1  # 2 freed, 3 still in flight
    inflights.reset()
    assert len(inflights) == 0
    inflights.free_first_one()  # nothing to free: no error
    assert len(inflights) == 0


# -- Progress ---------------------------------------------------------------------------------


def progress(state=ProgressState.PROBE, match=0, next_index=0, pending_snapshot=0, capacity=256):
    result = Progress(match_index=match, next_index=next_index, inflights=Inflights(capacity))
    result.state = state
    result.pending_snapshot = pending_snapshot
    return result


@pytest.mark.parametrize(
    ("state", "paused", "is_paused"),
    [
        (ProgressState.PROBE, False, False),
        (ProgressState.PROBE, True, True),
        (ProgressState.REPLICATE, False, False),
        (ProgressState.REPLICATE, True, False),  # replicate only waits on a full window
        (ProgressState.SNAPSHOT, False, True),
        (ProgressState.SNAPSHOT, True, True),
    ],
)
def test_progress_is_paused(state, paused, is_paused):
    p = progress(state)
    p.paused = paused
    assert p.is_paused() is is_paused


def test_progress_replicate_pauses_on_a_full_window():
    p = progress(ProgressState.REPLICATE, capacity=2)
    p.inflights.add(1)
    assert not p.is_paused()
    p.inflights.add(2)
    assert p.is_paused()


def test_progress_update_and_decrease_resume_a_paused_probe():
    p = progress(next_index=2)
    p.pause()
    assert p.maybe_decrease_to(1, 1)
    assert not p.paused
    p.pause()
    assert p.maybe_update(2)
    assert not p.paused


@pytest.mark.parametrize(
    ("before", "next_index"),
    [
        (progress(ProgressState.REPLICATE, match=1, next_index=5), 2),
        (progress(ProgressState.SNAPSHOT, match=1, next_index=5, pending_snapshot=10), 11),
        (progress(ProgressState.SNAPSHOT, match=1, next_index=5, pending_snapshot=0), 2),
    ],
    ids=["from-replicate", "snapshot-finished", "snapshot-failed"],
)
def test_progress_become_probe(before, next_index):
    before.inflights.add(3)
    before.become_probe()
    assert before.state is ProgressState.PROBE
    assert before.match_index == 1
    assert before.next_index == next_index
    assert before.pending_snapshot == 0
    assert len(before.inflights) == 0


def test_progress_snapshot_failure_then_probe_restarts_after_match():
    p = progress(ProgressState.SNAPSHOT, match=1, next_index=5, pending_snapshot=10)
    p.snapshot_failure()
    assert p.pending_snapshot == 0
    p.become_probe()
    assert p.next_index == 2


def test_progress_become_replicate():
    p = progress(match=1, next_index=5)
    p.pause()
    p.become_replicate()
    assert p.state is ProgressState.REPLICATE
    assert (p.match_index, p.next_index) == (1, 2)
    assert not p.paused


def test_progress_become_snapshot():
    p = progress(match=1, next_index=5)
    p.become_snapshot(10)
    assert p.state is ProgressState.SNAPSHOT
    assert p.match_index == 1
    assert p.pending_snapshot == 10
    assert p.is_paused()


@pytest.mark.parametrize(
    ("update", "match", "next_index", "updated"),
    [
        (2, 3, 5, False),  # older than match
        (3, 3, 5, False),  # same as match
        (4, 4, 5, True),
        (5, 5, 6, True),  # next moves past it
    ],
)
def test_progress_maybe_update(update, match, next_index, updated):
    p = progress(match=3, next_index=5)
    assert p.maybe_update(update) is updated
    assert (p.match_index, p.next_index) == (match, next_index)


@pytest.mark.parametrize(
    ("state", "match", "next_index", "rejected", "hint", "decreased", "new_next"),
    [
        # Replicate: a rejection at or below match is stale.
        (ProgressState.REPLICATE, 5, 10, 5, 5, False, 10),
        (ProgressState.REPLICATE, 5, 10, 4, 4, False, 10),
        # Otherwise fall back to right after match.
        (ProgressState.REPLICATE, 5, 10, 9, 9, True, 6),
        # Probe: only a rejection of the latest probe (next - 1) counts.
        (ProgressState.PROBE, 0, 0, 0, 0, False, 0),
        (ProgressState.PROBE, 0, 10, 5, 5, False, 10),
        (ProgressState.PROBE, 0, 10, 9, 9, True, 9),
        (ProgressState.PROBE, 0, 2, 1, 1, True, 1),
        (ProgressState.PROBE, 0, 1, 0, 0, True, 1),  # never below 1
        (ProgressState.PROBE, 0, 10, 9, 2, True, 3),  # jump to the hint + 1
        (ProgressState.PROBE, 0, 10, 9, 0, True, 1),
        (ProgressState.PROBE, 5, 10, 9, 2, True, 6),  # never at or below match
    ],
)
def test_progress_maybe_decrease_to(state, match, next_index, rejected, hint, decreased, new_next):
    p = progress(state, match=match, next_index=next_index)
    assert p.maybe_decrease_to(rejected, hint) is decreased
    assert p.match_index == match
    assert p.next_index == new_next


# -- ProgressTracker: commit, votes, check-quorum ---------------------------------------------------


def tracker(voters, learners=(), matches=None) -> ProgressTracker:
    """A tracker for ``voters`` and ``learners``; ``matches`` maps id to match index."""
    result = ProgressTracker(max_inflight=256)
    result.apply_conf(ConfState.of(voters, learners), next_index=1)
    for node_id, match in (matches or {}).items():
        result.progress[node_id].match_index = match
    return result


@pytest.mark.parametrize(
    ("matches", "committed"),
    [
        ({1: 12}, 12),
        ({1: 0}, 0),
        ({1: 12, 2: 5}, 5),  # two voters: both are the quorum
        ({1: 12, 2: 0}, 0),
        ({1: 12, 2: 5, 3: 0}, 5),
        ({1: 0, 2: 5, 3: 12}, 5),  # order does not matter
        ({1: 12, 2: 12, 3: 3}, 12),
        ({1: 9, 2: 7, 3: 5, 4: 3}, 5),  # four voters need three
        ({1: 9, 2: 9, 3: 1, 4: 1}, 1),
        ({1: 9, 2: 7, 3: 5, 4: 3, 5: 1}, 5),
        ({1: 9, 2: 9, 3: 1, 4: 1, 5: 1}, 1),
        ({1: 5, 2: 5, 3: 5, 4: 5, 5: 5}, 5),
    ],
)
def test_committed_index_is_the_quorum_match(matches, committed):
    assert tracker(matches, matches=matches).committed_index() == committed


def test_committed_index_ignores_learners():
    assert tracker((1, 2, 3), (4, 5), {1: 7, 2: 1, 3: 1, 4: 7, 5: 7}).committed_index() == 1
    assert tracker((1, 2), (3,), {1: 5, 2: 0, 3: 5}).committed_index() == 0


@pytest.mark.parametrize(
    ("voters", "votes", "tally"),
    [
        ((1,), {}, (0, 0, VoteResult.PENDING)),
        ((1,), {1: True}, (1, 0, VoteResult.WON)),
        ((1,), {1: False}, (0, 1, VoteResult.LOST)),
        ((1, 2), {1: True}, (1, 0, VoteResult.PENDING)),
        ((1, 2), {1: True, 2: False}, (1, 1, VoteResult.LOST)),
        ((1, 2, 3), {1: True}, (1, 0, VoteResult.PENDING)),
        ((1, 2, 3), {1: True, 2: False}, (1, 1, VoteResult.PENDING)),
        ((1, 2, 3), {1: True, 2: True}, (2, 0, VoteResult.WON)),
        ((1, 2, 3), {1: True, 2: False, 3: False}, (1, 2, VoteResult.LOST)),
        ((1, 2, 3, 4), {1: True, 2: True}, (2, 0, VoteResult.PENDING)),
        ((1, 2, 3, 4), {1: True, 2: False, 3: False}, (1, 2, VoteResult.LOST)),
        ((1, 2, 3, 4, 5), {1: True, 2: True, 3: False, 4: False}, (2, 2, VoteResult.PENDING)),
        ((1, 2, 3, 4, 5), {1: True, 2: True, 3: True}, (3, 0, VoteResult.WON)),
        ((1, 2, 3, 4, 5), {1: True, 2: False, 3: False, 4: False}, (1, 3, VoteResult.LOST)),
    ],
)
def test_tally_votes(voters, votes, tally):
    t = tracker(voters)
    for node_id, granted in votes.items():
        t.record_vote(node_id, granted)
    assert t.tally_votes() == tally


def test_tally_votes_ignores_learners_and_keeps_the_first_vote():
    t = tracker((1, 2, 3), (4, 5))
    t.record_vote(1, True)
    t.record_vote(4, True)
    t.record_vote(5, True)
    assert t.tally_votes() == (1, 0, VoteResult.PENDING)
    t.record_vote(2, False)
    t.record_vote(2, True)  # a duplicate response cannot change a vote
    assert t.tally_votes() == (1, 1, VoteResult.PENDING)
    t.reset_votes()
    assert t.tally_votes() == (0, 0, VoteResult.PENDING)


def test_quorum_recently_active_counts_voters_and_resets_the_flags():
    t = tracker((1, 2, 3), (4,))
    for node_id, active in {1: False, 2: True, 3: False, 4: True}.items():
        t.progress[node_id].recent_active = active
    assert t.quorum_recently_active(1)  # itself and node 2
    assert {i: p.recent_active for i, p in t.items()} == {1: True, 2: False, 3: False, 4: False}
    # Nobody answered since: only the leader itself is active now.
    assert not t.quorum_recently_active(1)


def test_quorum_recently_active_does_not_count_learners():
    t = tracker((1, 2, 3), (4, 5))
    for node_id, active in {2: False, 3: False, 4: True, 5: True}.items():
        t.progress[node_id].recent_active = active
    assert not t.quorum_recently_active(1)


def test_apply_conf_adds_new_members_active_and_drops_removed_ones():
    t = tracker((1, 2, 3), matches={1: 4, 2: 4, 3: 4})
    t.apply_conf(ConfState.of((1, 2), (4,)), next_index=5)
    assert sorted(t.progress) == [1, 2, 4]
    assert t.progress[1].match_index == 4  # kept as it was
    newcomer = t.progress[4]
    assert (newcomer.match_index, newcomer.next_index) == (0, 5)
    assert newcomer.recent_active and newcomer.is_learner
    assert t.voters == (1, 2)
    t.apply_conf(ConfState.of((1, 2, 4)), next_index=5)
    assert not t.progress[4].is_learner
