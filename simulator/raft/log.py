"""The Raft log as the core sees it: stable entries in ``Storage`` plus unstable ones.

Theory of operation (raft-rs ``RaftLog`` / ``Unstable``): entries the core has
accepted but the application has not yet persisted live in :class:`Unstable`,
together with a snapshot waiting to be installed. ``Ready`` hands them out;
``advance`` tells the log they are now in storage (``stable_to``), after
which they are read from ``Storage``. Indexes::

    first_index ... stabled | unstable.offset ... last_index
    applied <= committed <= last_index
"""

from __future__ import annotations

import attrs

from . import defects
from .errors import CompactedError, UnavailableError
from .messages import Entry, Snapshot
from .storage import Storage, limit_size


@attrs.define(eq=False)
class Unstable:
    """Entries and a snapshot accepted by the core but not yet persisted."""

    offset: int
    entries: list[Entry] = attrs.Factory(list)
    snapshot: Snapshot | None = None

    def maybe_first_index(self) -> int | None:
        return self.snapshot.index + 1 if self.snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        return self.snapshot.index if self.snapshot is not None else None

    def maybe_term(self, index: int) -> int | None:
        if index < self.offset:
            if self.snapshot is not None and self.snapshot.index == index:
                return self.snapshot.term
            return None
        last = self.maybe_last_index()
        if last is None or index > last:
            return None
        return self.entries[index - self.offset].term

    def stable_entries_to(self, index: int, term: int) -> None:
        """Entries up to ``index`` (with ``term``) were persisted; drop them from here."""
        if self.maybe_term(index) != term or index < self.offset:
            return  # a newer, conflicting append replaced them meanwhile
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1

    def stable_snapshot_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.index == index:
            self.snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        self.entries.clear()
        self.offset = snapshot.index + 1
        self.snapshot = snapshot

    def truncate_and_append(self, entries: list[Entry]) -> None:
        after = entries[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(entries)
        elif after <= self.offset:
            # The whole unstable part (and possibly stable entries) is replaced.
            self.offset = after
            self.entries = list(entries)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(entries)

    def slice(self, low: int, high: int) -> list[Entry]:
        return self.entries[low - self.offset : high - self.offset]


@attrs.define(eq=False)
class RaftLog:
    """Committed / applied bookkeeping over ``Storage`` plus :class:`Unstable`."""

    storage: Storage
    unstable: Unstable
    committed: int
    applied: int

    @classmethod
    def new(cls, storage: Storage) -> RaftLog:
        first = storage.first_index()
        last = storage.last_index()
        return cls(storage, Unstable(offset=last + 1), committed=first - 1, applied=first - 1)

    # -- indexes and terms --------------------------------------------------

    # These two run several times per message: written out rather than
    # delegating to Unstable's maybe_* helpers.
    def first_index(self) -> int:
        snapshot = self.unstable.snapshot
        return snapshot.metadata.index + 1 if snapshot is not None else self.storage.first_index()

    def last_index(self) -> int:
        unstable = self.unstable
        if unstable.entries:
            return unstable.offset + len(unstable.entries) - 1
        if unstable.snapshot is not None:
            return unstable.snapshot.metadata.index
        return self.storage.last_index()

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; 0 past the end; ``CompactedError`` before the start."""
        # Several calls per message: first_index, last_index and Unstable.maybe_term
        # written out here, in the same order and with the same outcomes.
        unstable = self.unstable
        snapshot = unstable.snapshot
        entries = unstable.entries
        offset = unstable.offset
        if snapshot is not None:
            dummy = snapshot.metadata.index
        else:
            dummy = self.storage.first_index() - 1
        if index < dummy:
            raise CompactedError(f"term of index {index} requested, first index is {dummy + 1}")
        if entries:
            if index > offset + len(entries) - 1:
                return 0
            if index >= offset:
                return entries[index - offset].term
        elif snapshot is not None:
            if index > snapshot.metadata.index:
                return 0
            if index >= offset:
                return entries[index - offset].term  # as maybe_term: only reachable if offset lags
        elif index > self.storage.last_index():
            return 0
        if index < offset and snapshot is not None and snapshot.metadata.index == index:
            return snapshot.metadata.term
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except (CompactedError, UnavailableError):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Is a log ending at (``last_index``, ``term``) at least as up to date as ours? (§5.4.1)"""
        our_term = self.last_term()
        return term > our_term or (term == our_term and last_index >= self.last_index())

    # -- appending ----------------------------------------------------------

    def find_conflict(self, entries: tuple[Entry, ...] | list[Entry]) -> int:
        """Index of the first entry whose term differs from ours (or is new); 0 if none."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest index <= ``index`` whose term is <= ``term``, and that term.

        Used for fast backtracking: a follower rejecting an append points the
        leader past every entry of a term it cannot have.
        """
        index = min(index, self.last_index())
        while index > 0:
            try:
                our_term = self.term(index)
            except CompactedError:
                return index, 0
            if our_term <= term:
                return index, our_term
            index -= 1
        return 0, 0

    def maybe_append(
        self, index: int, log_term: int, committed: int, entries: tuple[Entry, ...]
    ) -> int | None:
        """Append ``entries`` after (``index``, ``log_term``) if it matches; return the new last index.

        Conflicting entries are truncated first. Returns ``None`` when the
        preceding entry does not match (the follower rejects). The caller has
        checked that no conflict lies at or below ``committed``.
        """
        if not self.match_term(index, log_term):
            return None
        return self.append_after_match(index, committed, entries, self.find_conflict(entries))

    def append_after_match(
        self, index: int, committed: int, entries: tuple[Entry, ...], conflict: int
    ) -> int:
        """:meth:`maybe_append` for a caller that has already found (``index``, its term)
        matching and ``conflict`` = ``find_conflict(entries)``: the follower does both
        before deciding, and this spares a second pass per append."""
        last_new = index + len(entries)
        if conflict:
            self.append(list(entries[conflict - (index + 1) :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, entries: list[Entry]) -> int:
        if entries:
            if entries[0].index - 1 < self.committed:
                raise AssertionError(
                    f"refusing to overwrite committed entry {entries[0].index} "
                    f"(committed {self.committed})"
                )
            self.unstable.truncate_and_append(entries)
        return self.last_index()

    # -- commit and apply ----------------------------------------------------

    def commit_to(self, index: int) -> None:
        """Raise the commit index to ``index`` (never lowers it)."""
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(
                    f"commit {index} is past the last index {self.last_index()}"
                )
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit up to ``index`` only if that entry is of ``term`` (the §5.4.2 rule)."""
        if index > self.committed and (
            self.term_or_zero(index) == term or defects.active(defects.COMMIT_OLD_TERM)
        ):
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index == 0:
            return
        if index > self.committed or index < self.applied:
            raise AssertionError(
                f"applied {index} must lie in [{self.applied}, {self.committed}]"
            )
        self.applied = index

    # -- reading ------------------------------------------------------------

    def slice(self, low: int, high: int, max_size: int | None = None) -> list[Entry]:
        """Entries ``[low, high)`` from storage and/or unstable, limited to ``max_size`` bytes."""
        if low == high:
            return []
        first = self.first_index()
        if low < first:
            raise CompactedError(f"entries from {low} requested, first index is {first}")
        if high > self.last_index() + 1:
            raise UnavailableError(
                f"entries up to {high} requested, last index is {self.last_index()}"
            )
        result: list[Entry] = []
        offset = self.unstable.offset
        if low < offset:
            stored = self.storage.entries(low, min(high, offset), max_size)
            if len(stored) < min(high, offset) - low:
                return stored  # the size limit cut it short
            result = list(stored)
        if high > offset:
            result.extend(self.unstable.slice(max(low, offset), high))
        return limit_size(result, max_size)

    def entries(self, low: int, max_size: int | None = None) -> list[Entry]:
        last = self.last_index()
        if low > last:
            return []
        return self.slice(low, last + 1, max_size)

    def all_entries(self) -> list[Entry]:
        return self.entries(self.first_index())

    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def next_entries(self, max_size: int | None = None) -> list[Entry]:
        """Committed entries not yet applied."""
        low = max(self.applied + 1, self.first_index())
        if self.committed + 1 > low:
            return self.slice(low, self.committed + 1, max_size)
        return []

    def has_next_entries(self) -> bool:
        # Asked after every input; usually everything committed is applied, which
        # is known without looking at the first index.
        committed = self.committed
        return committed > self.applied and committed >= self.first_index()

    def snapshot(self, request_index: int, to: int) -> Snapshot:
        if self.unstable.snapshot is not None and self.unstable.snapshot.index >= request_index:
            return self.unstable.snapshot
        return self.storage.snapshot(request_index, to)

    def pending_snapshot(self) -> Snapshot | None:
        return self.unstable.snapshot

    # -- persistence feedback and snapshots ---------------------------------

    def stable_to(self, index: int, term: int) -> None:
        self.unstable.stable_entries_to(index, term)

    def stable_snapshot_to(self, index: int) -> None:
        self.unstable.stable_snapshot_to(index)

    def restore(self, snapshot: Snapshot, *, keep_following: bool = False) -> None:
        """Replace the log with ``snapshot``, to be installed via ``Ready``.

        ``keep_following``: the log holds the snapshot's last entry (same index and
        term), so the entries after it are consistent with it and stay, handed out
        again with the snapshot to be persisted after it (Raft paper, InstallSnapshot
        step 6). A node may have acknowledged them: dropping them would lose a
        replica the leader counted towards commit.
        """
        following = self.slice(snapshot.index + 1, self.last_index() + 1) if keep_following else []
        self.committed = snapshot.index
        self.unstable.restore(snapshot)
        self.unstable.entries.extend(following)
