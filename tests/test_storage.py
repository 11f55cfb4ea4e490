"""Tests of ``MemStorage`` and ``MemStorageWithSnapshot``.

Modeled on raft-rs ``storage.rs`` and etcd ``storage_test.go``. Most tests
start from the layout those suites use: a snapshot at index 3 (term 3) and
entries 4 and 5 (terms 4 and 5), so index 3 is answered from the snapshot
and anything below it is compacted.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.raft.errors import (
    CompactedError,
    SnapshotOutOfDateError,
    SnapshotTemporarilyUnavailableError,
    StorageError,
    UnavailableError,
)
from simulator.raft.messages import (
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
)
from simulator.raft.snapshot_storage import MemStorageWithSnapshot, snapshot_digest
from simulator.raft.storage import MemStorage, RaftState, Storage

VOTERS = ConfState(voters=(1, 2, 3))


def entries_with_terms(first_index: int, terms: Sequence[int], data: bytes = b"") -> list[Entry]:
    """Contiguous entries from ``first_index``, one per term in ``terms``."""
    return [
        Entry(term=term, index=first_index + offset, data=data)
        for offset, term in enumerate(terms)
    ]


def storage_after_snapshot(
    snapshot_index: int = 3,
    snapshot_term: int = 3,
    terms: Sequence[int] = (4, 5),
    data: bytes = b"",
    cls: type[MemStorage] = MemStorage,
) -> MemStorage:
    """A storage holding a snapshot at ``snapshot_index`` followed by entries with ``terms``."""
    storage = cls()
    storage.apply_snapshot(
        Snapshot(SnapshotMetadata(index=snapshot_index, term=snapshot_term, conf_state=VOTERS))
    )
    storage.append(entries_with_terms(snapshot_index + 1, terms, data))
    return storage


def storage_with_log(terms: list[int], cls: type[MemStorage] = MemStorage) -> MemStorage:
    """A storage with entries 1..len(terms), all committed, and no snapshot yet."""
    storage = cls()
    storage.set_conf_state(VOTERS)
    storage.append(entries_with_terms(1, terms))
    storage.set_hard_state(HardState(term=terms[-1], commit=len(terms)))
    return storage


def log_of(storage: MemStorage) -> list[tuple[int, int]]:
    """``(index, term)`` of every entry still held, read through the ``Storage`` protocol."""
    held = storage.entries(storage.first_index(), storage.last_index() + 1)
    return [(entry.index, entry.term) for entry in held]


# -- protocol and initial state ------------------------------------------------


@pytest.mark.parametrize("cls", [MemStorage, MemStorageWithSnapshot])
def test_memory_storages_implement_the_storage_protocol(cls):
    assert isinstance(cls(), Storage)


def test_fresh_storage_has_empty_log():
    storage = MemStorage()
    assert storage.first_index() == 1
    assert storage.last_index() == 0
    assert storage.entries(1, 1) == []


def test_fresh_storage_term_of_index_zero_is_zero():
    assert MemStorage().term(0) == 0


def test_fresh_storage_initial_state_is_all_defaults():
    assert MemStorage().initial_state() == RaftState(HardState(), ConfState())


def test_initial_state_reports_hard_state_and_conf_state_set_on_it():
    storage = MemStorage()
    storage.set_hard_state(HardState(term=4, vote=2, commit=7))
    storage.set_conf_state(ConfState(voters=(1, 2), learners=(5,)))
    assert storage.initial_state() == RaftState(
        HardState(term=4, vote=2, commit=7), ConfState(voters=(1, 2), learners=(5,))
    )


def test_new_with_conf_state_reports_membership_in_initial_state():
    storage = MemStorage.new_with_conf_state(VOTERS)
    assert storage.initial_state() == RaftState(HardState(), VOTERS)


def test_new_with_conf_state_records_membership_as_snapshot_at_index_zero():
    storage = MemStorage.new_with_conf_state(VOTERS)
    assert storage.snapshot(0, 2) == Snapshot(SnapshotMetadata(index=0, term=0, conf_state=VOTERS))


def test_new_with_conf_state_has_empty_log():
    storage = MemStorage.new_with_conf_state(VOTERS)
    assert (storage.first_index(), storage.last_index()) == (1, 0)
    assert storage.term(0) == 0


def test_new_with_conf_state_of_subclass_builds_the_subclass():
    storage = MemStorageWithSnapshot.new_with_conf_state(VOTERS)
    assert type(storage) is MemStorageWithSnapshot
    assert storage.conf_state == VOTERS


# -- term ----------------------------------------------------------------------


def test_term_below_snapshot_index_raises_compacted():
    with pytest.raises(CompactedError, match="index 2 .* first index kept is 4"):
        storage_after_snapshot().term(2)


def test_term_of_snapshot_index_is_snapshot_term():
    assert storage_after_snapshot(snapshot_index=3, snapshot_term=2).term(3) == 2


def test_term_of_held_entries_comes_from_the_log():
    storage = storage_after_snapshot(terms=[4, 5])
    assert [storage.term(4), storage.term(5)] == [4, 5]


def test_term_past_last_index_raises_unavailable():
    with pytest.raises(UnavailableError, match="index 6 .* last index is 5"):
        storage_after_snapshot().term(6)


def test_term_of_fresh_storage_past_index_zero_raises_unavailable():
    with pytest.raises(UnavailableError):
        MemStorage().term(1)


def test_storage_errors_share_a_base_class():
    with pytest.raises(StorageError):
        storage_after_snapshot().term(1)


# -- first and last index ------------------------------------------------------


def test_first_index_is_one_past_snapshot_index():
    assert storage_after_snapshot(snapshot_index=3).first_index() == 4


def test_last_index_is_index_of_last_entry():
    assert storage_after_snapshot(snapshot_index=3, terms=[4, 5]).last_index() == 5


def test_last_index_grows_with_append():
    storage = storage_after_snapshot()
    storage.append([Entry(term=5, index=6)])
    assert storage.last_index() == 6


def test_snapshot_without_following_entries_has_last_index_at_snapshot():
    storage = storage_after_snapshot(snapshot_index=7, terms=[])
    assert (storage.first_index(), storage.last_index()) == (8, 7)


# -- entries -------------------------------------------------------------------

ENTRY_DATA = b"x" * 10  # every entry of the fixture below counts 10 bytes


def storage_of_three_sized_entries() -> MemStorage:
    """Snapshot at 3; entries 4, 5, 6 with 10 bytes of data each."""
    return storage_after_snapshot(terms=[4, 5, 6], data=ENTRY_DATA)


def indexes(entries: list[Entry]) -> list[int]:
    return [entry.index for entry in entries]


@pytest.mark.parametrize("low", [2, 3])
def test_entries_from_snapshot_index_or_below_raise_compacted(low):
    with pytest.raises(CompactedError, match=f"from {low} .* first index kept is 4"):
        storage_of_three_sized_entries().entries(low, 6)


def test_entries_past_last_index_plus_one_raise_unavailable():
    with pytest.raises(UnavailableError, match="up to 8 .* last index is 6"):
        storage_of_three_sized_entries().entries(4, 8)


def test_entries_up_to_last_index_plus_one_returns_all():
    assert indexes(storage_of_three_sized_entries().entries(4, 7)) == [4, 5, 6]


def test_entries_returns_the_half_open_range():
    assert indexes(storage_of_three_sized_entries().entries(5, 6)) == [5]


def test_entries_of_empty_range_is_empty():
    assert storage_of_three_sized_entries().entries(5, 5) == []


def test_entries_with_low_above_high_raises_value_error():
    with pytest.raises(ValueError, match="low 6 must not exceed high 5"):
        storage_of_three_sized_entries().entries(6, 5)


def test_entries_returns_a_copy_callers_may_mutate():
    storage = storage_of_three_sized_entries()
    storage.entries(4, 7).clear()
    assert indexes(storage.entries(4, 7)) == [4, 5, 6]


@pytest.mark.parametrize(
    ("max_size", "expected"),
    [
        (None, [4, 5, 6]),
        (0, [4]),  # at least one entry, even if it alone is too big
        (9, [4]),
        (10, [4]),
        (19, [4]),
        (20, [4, 5]),  # exactly two entries' worth
        (29, [4, 5]),
        (30, [4, 5, 6]),  # exactly all three
        (10_000, [4, 5, 6]),
    ],
)
def test_entries_max_size_keeps_prefix_that_fits(max_size, expected):
    assert indexes(storage_of_three_sized_entries().entries(4, 7, max_size)) == expected


def test_entries_max_size_limit_applies_from_low():
    assert indexes(storage_of_three_sized_entries().entries(5, 7, max_size=15)) == [5]


def test_entries_max_size_counts_each_entry_data_length():
    storage = MemStorage()
    storage.append([Entry(term=1, index=1, data=b"a" * 5), Entry(term=1, index=2, data=b"b" * 100)])
    storage.append([Entry(term=1, index=3, data=b"c")])
    assert indexes(storage.entries(1, 4, max_size=104)) == [1]
    assert indexes(storage.entries(1, 4, max_size=105)) == [1, 2]
    assert indexes(storage.entries(1, 4, max_size=106)) == [1, 2, 3]


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=12),
    max_size=st.integers(min_value=0, max_value=300),
)
def test_entries_max_size_returns_longest_fitting_prefix_but_never_nothing(sizes, max_size):
    storage = MemStorage()
    storage.append([Entry(term=1, index=i + 1, data=b"d" * size) for i, size in enumerate(sizes)])
    got = storage.entries(1, len(sizes) + 1, max_size)
    expected_count = 1
    while expected_count < len(sizes) and sum(sizes[: expected_count + 1]) <= max_size:
        expected_count += 1
    assert indexes(got) == list(range(1, expected_count + 1))


# -- append --------------------------------------------------------------------


def test_append_to_fresh_storage_starts_log_at_index_one():
    storage = MemStorage()
    storage.append(entries_with_terms(1, [1, 1, 2]))
    assert log_of(storage) == [(1, 1), (2, 1), (3, 2)]


def test_append_accepts_a_tuple():
    storage = MemStorage()
    storage.append(tuple(entries_with_terms(1, [1, 2])))
    assert log_of(storage) == [(1, 1), (2, 2)]


def test_append_of_nothing_changes_nothing():
    storage = storage_after_snapshot()
    storage.append([])
    assert log_of(storage) == [(4, 4), (5, 5)]


def test_append_entirely_before_first_index_is_ignored():
    storage = storage_after_snapshot(snapshot_index=3, terms=[4, 5])
    storage.append(entries_with_terms(1, [9, 9, 9]))  # indexes 1..3, all covered by the snapshot
    assert log_of(storage) == [(4, 4), (5, 5)]


def test_append_of_entries_already_held_changes_nothing():
    storage = storage_after_snapshot(terms=[4, 5])
    storage.append(entries_with_terms(4, [4, 5]))
    assert log_of(storage) == [(4, 4), (5, 5)]


def test_append_overwrites_conflicting_suffix():
    storage = storage_after_snapshot(terms=[4, 5])
    storage.append(entries_with_terms(4, [4, 6]))
    assert log_of(storage) == [(4, 4), (5, 6)]


def test_append_in_the_middle_drops_everything_after_it():
    storage = storage_after_snapshot(terms=[4, 5, 5, 5])  # entries 4..7
    storage.append([Entry(term=6, index=5)])
    assert log_of(storage) == [(4, 4), (5, 6)]


def test_append_right_after_last_index_extends_log():
    storage = storage_after_snapshot(terms=[4, 5])
    storage.append([Entry(term=5, index=6)])
    assert log_of(storage) == [(4, 4), (5, 5), (6, 5)]


def test_append_starting_before_first_index_keeps_only_the_new_part():
    storage = storage_after_snapshot(snapshot_index=3, terms=[4, 5])
    storage.append(entries_with_terms(2, [3, 3, 5]))  # indexes 2, 3, 4
    assert log_of(storage) == [(4, 5)]
    assert storage.first_index() == 4


def test_append_right_after_snapshot_with_empty_log():
    storage = storage_after_snapshot(snapshot_index=7, terms=[])
    storage.append([Entry(term=8, index=8)])
    assert log_of(storage) == [(8, 8)]


def test_append_with_gap_after_last_index_raises():
    storage = storage_after_snapshot(terms=[4, 5])
    with pytest.raises(ValueError, match="start at most at 6, got 7"):
        storage.append([Entry(term=5, index=7)])


def test_append_with_gap_leaves_log_unchanged():
    storage = storage_after_snapshot(terms=[4, 5])
    with pytest.raises(ValueError):
        storage.append([Entry(term=5, index=7)])
    assert log_of(storage) == [(4, 4), (5, 5)]


def test_append_to_fresh_storage_not_at_index_one_raises():
    with pytest.raises(ValueError, match="at most at 1, got 2"):
        MemStorage().append([Entry(term=1, index=2)])


def test_append_of_non_contiguous_entries_raises():
    storage = storage_after_snapshot(terms=[4, 5])
    with pytest.raises(ValueError, match="index 7 expected after 6, got 8"):
        storage.append([Entry(term=5, index=6), Entry(term=5, index=8)])


def test_append_of_non_contiguous_entries_leaves_log_unchanged():
    storage = storage_after_snapshot(terms=[4, 5])
    with pytest.raises(ValueError):
        storage.append([Entry(term=6, index=5), Entry(term=6, index=5)])
    assert log_of(storage) == [(4, 4), (5, 5)]


@given(
    existing_terms=st.lists(st.integers(min_value=1, max_value=5), max_size=8),
    start_offset=st.integers(min_value=0, max_value=9),
    new_terms=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=8),
)
def test_append_keeps_prefix_and_replaces_the_rest(existing_terms, start_offset, new_terms):
    """Model: the log is a list of terms; appending at ``start`` keeps what precedes it."""
    snapshot_index = 2
    storage = storage_after_snapshot(
        snapshot_index=snapshot_index, snapshot_term=1, terms=existing_terms
    )
    start = min(snapshot_index + 1 + start_offset, storage.last_index() + 1)
    storage.append(entries_with_terms(start, new_terms))
    kept = existing_terms[: start - (snapshot_index + 1)]
    expected = entries_with_terms(snapshot_index + 1, kept + new_terms)
    assert storage.entries(storage.first_index(), storage.last_index() + 1) == expected


# -- compact -------------------------------------------------------------------


def storage_with_snapshot_at_4() -> MemStorage:
    """Entries 1..5 (terms 1..5), committed, with a snapshot at 4 and nothing compacted yet."""
    storage = storage_with_log([1, 2, 3, 4, 5])
    storage.create_snapshot(4)
    return storage


@pytest.mark.parametrize("compact_index", [0, 1])
def test_compact_at_or_below_first_index_is_a_no_op(compact_index):
    storage = storage_with_snapshot_at_4()
    storage.compact(compact_index)
    assert storage.first_index() == 1
    assert log_of(storage) == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]


def test_compact_discards_entries_before_compact_index():
    storage = storage_with_snapshot_at_4()
    storage.compact(3)
    assert storage.first_index() == 3
    assert log_of(storage) == [(3, 3), (4, 4), (5, 5)]


def test_compact_makes_discarded_entries_compacted():
    storage = storage_with_snapshot_at_4()
    storage.compact(3)
    with pytest.raises(CompactedError):
        storage.term(2)
    with pytest.raises(CompactedError):
        storage.entries(2, 4)


def test_compact_up_to_snapshot_index_plus_one_keeps_only_entries_after_snapshot():
    storage = storage_with_snapshot_at_4()
    storage.compact(5)
    assert storage.first_index() == 5
    assert log_of(storage) == [(5, 5)]


def test_term_of_snapshot_index_still_known_after_compacting_its_entry():
    storage = storage_with_snapshot_at_4()
    storage.compact(5)
    assert storage.term(4) == 4


def test_compact_twice_is_incremental():
    storage = storage_with_snapshot_at_4()
    storage.compact(2)
    storage.compact(4)
    assert log_of(storage) == [(4, 4), (5, 5)]


def test_compact_beyond_snapshot_index_plus_one_raises():
    storage = storage_with_snapshot_at_4()
    with pytest.raises(ValueError, match="cannot compact up to 6.* snapshot is at 4"):
        storage.compact(6)


def test_compact_beyond_snapshot_leaves_log_unchanged():
    storage = storage_with_snapshot_at_4()
    with pytest.raises(ValueError):
        storage.compact(6)
    assert log_of(storage) == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]


def test_compact_without_snapshot_raises():
    storage = storage_with_log([1, 2, 3])
    with pytest.raises(ValueError, match="snapshot is at 0"):
        storage.compact(2)


# -- create_snapshot -------------------------------------------------------------


def test_create_snapshot_takes_term_from_the_log():
    storage = storage_with_log([1, 1, 2, 3, 3])
    snapshot = storage.create_snapshot(3)
    assert (snapshot.index, snapshot.term) == (3, 2)


def test_create_snapshot_becomes_the_held_snapshot():
    storage = storage_with_log([1, 1, 2])
    created = storage.create_snapshot(3)
    assert storage.snapshot_metadata == created.metadata
    assert storage.snapshot(3, 2).metadata == created.metadata


def test_create_snapshot_defaults_to_the_storage_conf_state():
    storage = storage_with_log([1, 1, 2])
    storage.set_conf_state(ConfState(voters=(1, 2), learners=(3,)))
    snapshot = storage.create_snapshot(2)
    assert snapshot.metadata.conf_state == ConfState(voters=(1, 2), learners=(3,))


def test_create_snapshot_records_a_given_conf_state():
    storage = storage_with_log([1, 1, 2])
    snapshot = storage.create_snapshot(2, conf_state=ConfState(voters=(4, 5)))
    assert snapshot.metadata.conf_state == ConfState(voters=(4, 5))


def test_create_snapshot_keeps_entries_until_compact():
    storage = storage_with_log([1, 1, 2])
    storage.create_snapshot(2)
    assert storage.first_index() == 1
    assert log_of(storage) == [(1, 1), (2, 1), (3, 2)]


@pytest.mark.parametrize("index", [2, 3])
def test_create_snapshot_not_newer_than_held_raises_out_of_date(index):
    storage = storage_with_log([1, 1, 2, 2])
    storage.create_snapshot(3)
    with pytest.raises(SnapshotOutOfDateError, match=f"snapshot at {index} .* held, at 3"):
        storage.create_snapshot(index)


def test_create_snapshot_out_of_date_keeps_held_snapshot():
    storage = storage_with_log([1, 1, 2, 2])
    held = storage.create_snapshot(3).metadata
    with pytest.raises(SnapshotOutOfDateError):
        storage.create_snapshot(2)
    assert storage.snapshot_metadata == held


def test_create_snapshot_at_index_zero_raises_out_of_date():
    with pytest.raises(SnapshotOutOfDateError):
        storage_with_log([1]).create_snapshot(0)


def test_create_snapshot_past_commit_raises():
    storage = storage_with_log([1, 1, 2, 2])
    storage.set_hard_state(HardState(term=2, commit=2))
    with pytest.raises(ValueError, match="index 3: it is past the commit index 2"):
        storage.create_snapshot(3)


def test_create_snapshot_past_commit_keeps_held_snapshot():
    storage = storage_with_log([1, 1, 2, 2])
    storage.set_hard_state(HardState(term=2, commit=2))
    with pytest.raises(ValueError):
        storage.create_snapshot(3)
    assert storage.snapshot_metadata == SnapshotMetadata()


def test_create_snapshot_at_commit_index_succeeds():
    storage = storage_with_log([1, 1, 2, 2])
    storage.set_hard_state(HardState(term=2, commit=3))
    assert storage.create_snapshot(3).index == 3


def test_mem_storage_create_snapshot_returns_data_but_does_not_keep_it():
    storage = storage_with_log([1, 1, 2])
    assert storage.create_snapshot(3, data=b"state").data == b"state"
    assert storage.snapshot(3, 2).data is None


# -- apply_snapshot --------------------------------------------------------------

INCOMING = Snapshot(SnapshotMetadata(index=8, term=6, conf_state=ConfState(voters=(1, 2, 4))))


def test_apply_snapshot_replaces_the_log():
    storage = storage_with_log([1, 1, 2])
    storage.apply_snapshot(INCOMING)
    assert (storage.first_index(), storage.last_index()) == (9, 8)
    assert storage.term(8) == 6
    with pytest.raises(CompactedError):
        storage.term(3)


def test_apply_snapshot_inside_the_log_discards_all_entries():
    storage = storage_with_log([1, 1, 2, 2, 2])
    storage.set_hard_state(HardState(term=2, commit=3))  # 4 and 5 not committed yet
    storage.apply_snapshot(Snapshot(SnapshotMetadata(index=3, term=2)))
    assert (storage.first_index(), storage.last_index()) == (4, 3)
    with pytest.raises(UnavailableError):
        storage.term(4)


def test_apply_snapshot_becomes_the_held_snapshot():
    storage = storage_with_log([1, 1, 2])
    storage.apply_snapshot(INCOMING)
    assert storage.snapshot(8, 2) == Snapshot(INCOMING.metadata)


def test_apply_snapshot_takes_membership_from_the_snapshot():
    storage = storage_with_log([1, 1, 2])
    storage.apply_snapshot(INCOMING)
    assert storage.initial_state().conf_state == ConfState(voters=(1, 2, 4))


def test_apply_snapshot_raises_hard_state_commit_and_term_and_keeps_vote():
    storage = storage_with_log([1, 1, 2])
    storage.set_hard_state(HardState(term=2, vote=3, commit=3))
    storage.apply_snapshot(INCOMING)
    assert storage.hard_state == HardState(term=6, vote=3, commit=8)


def test_apply_snapshot_never_lowers_hard_state_term():
    storage = storage_with_log([1, 1, 2])
    storage.set_hard_state(HardState(term=9, vote=3, commit=3))
    storage.apply_snapshot(INCOMING)
    assert storage.hard_state == HardState(term=9, vote=3, commit=8)


def test_append_after_apply_snapshot_continues_from_snapshot_index():
    storage = storage_with_log([1, 1, 2])
    storage.apply_snapshot(INCOMING)
    storage.append([Entry(term=6, index=9)])
    assert log_of(storage) == [(9, 6)]


def test_apply_snapshot_equal_to_held_is_installed_again():
    # A node that lost its state machine asks for a snapshot (request_snapshot); the
    # leader's newest may be the very one it holds. Raft restores it (raft-rs
    # Raft::restore refuses only an index below the commit index), so storage must too.
    storage = storage_with_log([1, 1, 2])
    storage.apply_snapshot(INCOMING)
    storage.append([Entry(term=6, index=9)])  # not committed: the snapshot replaces it
    storage.apply_snapshot(INCOMING)
    assert storage.snapshot_metadata == INCOMING.metadata
    assert (storage.first_index(), storage.last_index()) == (9, 8)


def test_apply_snapshot_equal_to_held_with_kept_entries_is_installed_again():
    # Seeds 3432 and 9004: keep_entries left entries before the snapshot (first index
    # 29 < snapshot 30), and the re-fetched snapshot 30 used to be refused.
    storage = storage_with_log([1, 1, 2, 2])
    held = storage.create_snapshot(4).metadata
    storage.compact(3)
    assert storage.first_index() == 3
    storage.apply_snapshot(Snapshot(held))
    assert storage.snapshot_metadata == held
    assert (storage.first_index(), storage.last_index()) == (5, 4)


def test_apply_snapshot_equal_to_held_with_another_term_is_refused():
    storage = storage_with_log([1, 1, 2])
    storage.apply_snapshot(INCOMING)
    other = attrs.evolve(INCOMING.metadata, term=INCOMING.term + 1)
    with pytest.raises(ValueError, match="snapshot at 8 has term 7, but the snapshot held at that index has term 6"):
        storage.apply_snapshot(Snapshot(other))
    assert storage.snapshot_metadata == INCOMING.metadata


def test_apply_snapshot_below_the_commit_index_is_refused_and_loses_nothing():
    # Entries 4 and 5 are committed: a snapshot at 3 would drop them.
    storage = storage_with_log([1, 1, 2, 2, 2])
    with pytest.raises(SnapshotOutOfDateError, match="commit index 5"):
        storage.apply_snapshot(Snapshot(SnapshotMetadata(index=3, term=2, conf_state=VOTERS)))
    assert log_of(storage) == [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]


def test_apply_snapshot_older_than_first_index_raises_out_of_date():
    storage = storage_with_log([1, 1, 2])
    storage.apply_snapshot(INCOMING)
    with pytest.raises(SnapshotOutOfDateError):
        storage.apply_snapshot(Snapshot(SnapshotMetadata(index=5, term=4)))


def test_apply_snapshot_out_of_date_leaves_storage_unchanged():
    storage = storage_after_snapshot(snapshot_index=8, snapshot_term=6, terms=[6, 7])
    hard_state = storage.hard_state
    with pytest.raises(SnapshotOutOfDateError):
        storage.apply_snapshot(
            Snapshot(SnapshotMetadata(index=5, term=4, conf_state=ConfState(voters=(9,))))
        )
    assert log_of(storage) == [(9, 6), (10, 7)]
    assert storage.snapshot_metadata.index == 8
    assert storage.conf_state == VOTERS
    assert storage.hard_state == hard_state


def test_apply_snapshot_older_than_held_snapshot_raises_out_of_date_before_compaction():
    # The node snapshotted at 8 but kept its entries (no compact yet); a delayed
    # snapshot at 5 must not replace it and drop the committed entries 6..10.
    storage = storage_with_log([1, 1, 2, 2, 2, 3, 3, 3, 3, 3])
    storage.create_snapshot(8)
    with pytest.raises(SnapshotOutOfDateError):
        storage.apply_snapshot(Snapshot(SnapshotMetadata(index=5, term=2, conf_state=VOTERS)))


def test_apply_empty_snapshot_to_fresh_storage_raises_out_of_date():
    with pytest.raises(SnapshotOutOfDateError):
        MemStorage().apply_snapshot(Snapshot())


# -- snapshot(request_index, to) ---------------------------------------------------


def test_snapshot_returns_held_metadata_without_data():
    storage = storage_with_log([1, 1, 2])
    created = storage.create_snapshot(3, data=b"state")
    assert storage.snapshot(3, 2) == Snapshot(created.metadata, None)


def test_snapshot_newer_than_request_index_is_returned():
    storage = storage_with_log([1, 1, 2])
    storage.create_snapshot(3)
    assert storage.snapshot(1, 2).index == 3


def test_snapshot_older_than_request_index_raises_temporarily_unavailable():
    storage = storage_with_log([1, 1, 2])
    storage.create_snapshot(2)
    with pytest.raises(
        SnapshotTemporarilyUnavailableError, match=">= 3 requested for node 5, newest is at 2"
    ):
        storage.snapshot(3, 5)


def test_make_snapshot_unavailable_fails_only_the_next_call_by_default():
    storage = storage_with_log([1, 1, 2])
    storage.create_snapshot(3)
    storage.make_snapshot_unavailable()
    with pytest.raises(SnapshotTemporarilyUnavailableError, match="node 2"):
        storage.snapshot(3, 2)
    assert storage.snapshot(3, 2).index == 3


def test_make_snapshot_unavailable_fails_the_given_number_of_calls_then_succeeds():
    storage = storage_with_log([1, 1, 2])
    storage.create_snapshot(3)
    storage.make_snapshot_unavailable(calls=3)
    for _ in range(3):
        with pytest.raises(SnapshotTemporarilyUnavailableError):
            storage.snapshot(3, 2)
    assert storage.snapshot(3, 2).index == 3


def test_make_snapshot_unavailable_zero_calls_fails_nothing():
    storage = storage_with_log([1, 1, 2])
    storage.create_snapshot(3)
    storage.make_snapshot_unavailable(calls=0)
    assert storage.snapshot(3, 2).index == 3


# -- MemStorageWithSnapshot ---------------------------------------------------------

STATE = b"state machine at index 3"


def storage_holding_data(embed_data: bool = True, data: bytes = STATE) -> MemStorageWithSnapshot:
    """Entries 1..5, committed, with a snapshot (and its data) at 3."""
    storage = storage_with_log([1, 1, 2, 2, 2], cls=MemStorageWithSnapshot)
    storage.embed_data = embed_data
    storage.create_snapshot(3, data=data)
    return storage


def test_with_snapshot_create_snapshot_without_data_raises():
    storage = storage_with_log([1, 1, 2], cls=MemStorageWithSnapshot)
    with pytest.raises(ValueError, match="needs the snapshot data"):
        storage.create_snapshot(3)


def test_with_snapshot_create_snapshot_without_data_records_nothing():
    storage = storage_with_log([1, 1, 2], cls=MemStorageWithSnapshot)
    with pytest.raises(ValueError):
        storage.create_snapshot(3)
    assert storage.snapshot_metadata == SnapshotMetadata()
    assert storage.snapshot_data_size == 0


def test_with_snapshot_create_snapshot_fills_size_and_digest():
    metadata = storage_holding_data(data=STATE).snapshot_metadata
    assert metadata.size == len(STATE)
    assert metadata.digest == snapshot_digest(STATE)


def test_with_snapshot_create_snapshot_names_the_snapshot():
    assert storage_holding_data().snapshot_metadata.snapshot_id != ""


def test_with_snapshot_snapshot_ids_differ_for_different_data():
    first = storage_holding_data(data=b"one").snapshot_metadata.snapshot_id
    second = storage_holding_data(data=b"two").snapshot_metadata.snapshot_id
    assert first != second


def test_with_snapshot_create_snapshot_returns_metadata_and_data():
    storage = storage_with_log([1, 1, 2], cls=MemStorageWithSnapshot)
    snapshot = storage.create_snapshot(3, data=STATE)
    assert snapshot == Snapshot(storage.snapshot_metadata, STATE)


def test_with_snapshot_create_snapshot_out_of_date_keeps_held_data():
    storage = storage_holding_data(data=STATE)
    with pytest.raises(SnapshotOutOfDateError):
        storage.create_snapshot(2, data=b"older")
    assert storage.full_snapshot().data == STATE


def test_snapshot_digest_identifies_the_data():
    assert snapshot_digest(b"a") == snapshot_digest(b"a")
    assert snapshot_digest(b"a") != snapshot_digest(b"b")


def test_with_snapshot_embedding_returns_data():
    storage = storage_holding_data(embed_data=True)
    assert storage.snapshot(3, 2) == Snapshot(storage.snapshot_metadata, STATE)


def test_with_snapshot_not_embedding_returns_metadata_only():
    storage = storage_holding_data(embed_data=False)
    snapshot = storage.snapshot(3, 2)
    assert snapshot.data is None
    assert snapshot.metadata == storage.snapshot_metadata


def test_with_snapshot_metadata_only_snapshot_still_describes_the_data():
    metadata = storage_holding_data(embed_data=False).snapshot(3, 2).metadata
    assert (metadata.size, metadata.digest) == (len(STATE), snapshot_digest(STATE))


def test_with_snapshot_embeds_data_by_default():
    assert MemStorageWithSnapshot().embed_data is True


def test_with_snapshot_new_with_conf_state_sets_embed_data():
    storage = MemStorageWithSnapshot.new_with_conf_state(VOTERS, embed_data=False)
    assert storage.embed_data is False
    assert storage.initial_state().conf_state == VOTERS


def test_with_snapshot_fresh_storage_returns_empty_snapshot():
    storage = MemStorageWithSnapshot.new_with_conf_state(VOTERS)
    assert storage.snapshot(0, 2) == Snapshot(SnapshotMetadata(conf_state=VOTERS))


def test_with_snapshot_metadata_without_data_is_temporarily_unavailable():
    storage = MemStorageWithSnapshot()
    storage.apply_snapshot(INCOMING)  # metadata only: the data has not arrived
    with pytest.raises(SnapshotTemporarilyUnavailableError, match="snapshot 8 has metadata"):
        storage.snapshot(8, 2)


def test_with_snapshot_honours_make_snapshot_unavailable():
    storage = storage_holding_data()
    storage.make_snapshot_unavailable()
    with pytest.raises(SnapshotTemporarilyUnavailableError):
        storage.snapshot(3, 2)
    assert storage.snapshot(3, 2).data == STATE


def test_with_snapshot_older_than_request_index_is_temporarily_unavailable():
    with pytest.raises(SnapshotTemporarilyUnavailableError):
        storage_holding_data().snapshot(4, 2)


def test_with_snapshot_full_snapshot_has_data_even_when_not_embedding():
    storage = storage_holding_data(embed_data=False)
    assert storage.full_snapshot() == Snapshot(storage.snapshot_metadata, STATE)


def test_with_snapshot_snapshot_data_by_id():
    storage = storage_holding_data()
    assert storage.snapshot_data(storage.snapshot_metadata.snapshot_id) == STATE


def test_with_snapshot_snapshot_data_of_unknown_id_names_the_held_one():
    storage = storage_holding_data()
    held = storage.snapshot_metadata.snapshot_id
    with pytest.raises(KeyError, match=f"'no-such-id' is not held; held: '{held}'"):
        storage.snapshot_data("no-such-id")


def test_with_snapshot_snapshot_data_with_nothing_held_says_none():
    with pytest.raises(KeyError, match="held: 'none'"):
        MemStorageWithSnapshot().snapshot_data("1-1-abc")


def test_with_snapshot_snapshot_data_of_replaced_snapshot_raises():
    storage = storage_holding_data()
    old_id = storage.snapshot_metadata.snapshot_id
    storage.create_snapshot(5, data=b"newer state")
    with pytest.raises(KeyError):
        storage.snapshot_data(old_id)


def test_with_snapshot_snapshot_data_size_counts_held_bytes():
    assert MemStorageWithSnapshot().snapshot_data_size == 0
    assert storage_holding_data(data=b"12345").snapshot_data_size == 5


# -- apply_snapshot_with_data ------------------------------------------------------


def leader_snapshot(data: bytes = b"leader state at 8") -> Snapshot:
    """A snapshot at 8 made by a ``MemStorageWithSnapshot`` leader: size and digest filled."""
    leader = storage_with_log([1, 1, 2, 2, 2, 3, 3, 6, 6], cls=MemStorageWithSnapshot)
    return leader.create_snapshot(8, conf_state=ConfState(voters=(1, 2, 4)), data=data)


def assert_unchanged(storage: MemStorageWithSnapshot, before: Snapshot) -> None:
    """Nothing lost: the previous snapshot, its data and the log are all still there."""
    assert storage.full_snapshot() == before
    assert storage.snapshot_data(before.metadata.snapshot_id) == STATE
    assert storage.snapshot_data_size == len(STATE)
    assert log_of(storage) == [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]
    assert storage.hard_state == HardState(term=2, commit=5)


def test_apply_snapshot_with_data_keeps_the_data():
    storage = MemStorageWithSnapshot()
    incoming = leader_snapshot()
    storage.apply_snapshot_with_data(incoming)
    assert storage.full_snapshot() == incoming
    assert storage.snapshot_data(incoming.metadata.snapshot_id) == incoming.data
    assert storage.snapshot_data_size == len(incoming.data)


def test_apply_snapshot_with_data_installs_the_snapshot():
    storage = storage_holding_data()
    storage.apply_snapshot_with_data(leader_snapshot())
    assert (storage.first_index(), storage.last_index()) == (9, 8)
    assert storage.conf_state == ConfState(voters=(1, 2, 4))
    assert storage.hard_state == HardState(term=6, commit=8)


def test_apply_snapshot_with_data_then_serves_it_embedded():
    storage = MemStorageWithSnapshot()
    incoming = leader_snapshot()
    storage.apply_snapshot_with_data(incoming)
    assert storage.snapshot(8, 3) == incoming


def test_apply_snapshot_with_data_refuses_missing_data():
    storage = storage_holding_data()
    with pytest.raises(ValueError, match="snapshot 8 has no data"):
        storage.apply_snapshot_with_data(Snapshot(leader_snapshot().metadata, None))


def test_apply_snapshot_with_data_refusing_missing_data_loses_nothing():
    storage = storage_holding_data()
    before = storage.full_snapshot()
    with pytest.raises(ValueError):
        storage.apply_snapshot_with_data(Snapshot(leader_snapshot().metadata, None))
    assert_unchanged(storage, before)


def test_apply_snapshot_with_data_refuses_size_mismatch():
    storage = storage_holding_data()
    incoming = leader_snapshot(data=b"12345")
    with pytest.raises(ValueError, match="data is 4 bytes, metadata says 5"):
        storage.apply_snapshot_with_data(Snapshot(incoming.metadata, b"1234"))


def test_apply_snapshot_with_data_refusing_size_mismatch_loses_nothing():
    storage = storage_holding_data()
    before = storage.full_snapshot()
    incoming = leader_snapshot(data=b"12345")
    with pytest.raises(ValueError):
        storage.apply_snapshot_with_data(Snapshot(incoming.metadata, b"1234"))
    assert_unchanged(storage, before)


def test_apply_snapshot_with_data_refuses_digest_mismatch_of_same_size():
    storage = storage_holding_data()
    incoming = leader_snapshot(data=b"12345")
    with pytest.raises(ValueError, match=f"digest is {snapshot_digest(b'12346')}, metadata says"):
        storage.apply_snapshot_with_data(Snapshot(incoming.metadata, b"12346"))


def test_apply_snapshot_with_data_refusing_digest_mismatch_loses_nothing():
    storage = storage_holding_data()
    before = storage.full_snapshot()
    incoming = leader_snapshot(data=b"12345")
    with pytest.raises(ValueError):
        storage.apply_snapshot_with_data(Snapshot(incoming.metadata, b"12346"))
    assert_unchanged(storage, before)


def test_apply_snapshot_with_data_out_of_date_loses_nothing():
    storage = storage_holding_data()
    before = storage.full_snapshot()
    stale = Snapshot(SnapshotMetadata(index=0, term=0), b"stale")
    with pytest.raises(SnapshotOutOfDateError):
        storage.apply_snapshot_with_data(stale)
    assert_unchanged(storage, before)


def test_apply_snapshot_with_data_accepts_metadata_without_size_or_digest():
    # A plain MemStorage leader describes only index, term and membership.
    storage = MemStorageWithSnapshot()
    storage.apply_snapshot_with_data(Snapshot(SnapshotMetadata(index=4, term=2), b"opaque"))
    assert storage.full_snapshot().data == b"opaque"


def test_plain_apply_snapshot_never_pairs_new_metadata_with_old_data():
    # apply_snapshot (metadata only) over a storage that holds data for an older
    # snapshot: whatever it serves afterwards must match the new metadata.
    storage = storage_holding_data(data=STATE)
    incoming = leader_snapshot(data=b"leader state at 8")
    storage.apply_snapshot(Snapshot(incoming.metadata, None))
    held = storage.full_snapshot()
    assert held.data is None or snapshot_digest(held.data) == held.metadata.digest


def test_streamed_snapshot_rebuilds_the_leader_snapshot_on_the_follower():
    leader = storage_holding_data(embed_data=False)
    follower = MemStorageWithSnapshot()
    offered = leader.snapshot(3, 2)
    fetched = leader.snapshot_data(offered.metadata.snapshot_id)
    follower.apply_snapshot_with_data(Snapshot(offered.metadata, fetched))
    assert follower.full_snapshot() == leader.full_snapshot()
