"""The ``Storage`` the Raft core reads from, and two in-memory implementations.

``Storage`` mirrors raft-rs ``Storage``: the core only *reads* through it.
Writing (appending entries, saving hard state, applying or creating
snapshots, compacting) is the application's job while it handles a
``Ready``, which is why those methods live on the concrete classes.

Layout of :class:`MemStorage`::

    snapshot.index | first_index ... last_index
    (term known)   | entries[0]  ... entries[-1]

``first_index == snapshot.index + 1`` until :meth:`MemStorage.compact` is
told to keep fewer entries, and entries are discarded only once a snapshot
covers them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from .errors import (
    CompactedError,
    SnapshotOutOfDateError,
    SnapshotTemporarilyUnavailableError,
    UnavailableError,
)
from .messages import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

#: ``max_size`` meaning "no limit" in :meth:`Storage.entries`.
NO_LIMIT = None


@attrs.frozen
class RaftState:
    """What a node restarts from: its hard state and its membership."""

    hard_state: HardState
    conf_state: ConfState


@runtime_checkable
class Storage(Protocol):
    """Read access to a node's durable Raft state (raft-rs ``Storage``)."""

    def initial_state(self) -> RaftState: ...

    def entries(self, low: int, high: int, max_size: int | None = NO_LIMIT) -> list[Entry]:
        """Entries ``[low, high)``, at least one if any, at most ``max_size`` bytes of data.

        Raises ``CompactedError`` if ``low`` was compacted, ``UnavailableError``
        if ``high`` is past ``last_index() + 1``.
        """
        ...

    def term(self, index: int) -> int: ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self, request_index: int, to: int) -> Snapshot:
        """The newest snapshot, at least at ``request_index``, for sending to node ``to``.

        May raise ``SnapshotTemporarilyUnavailableError``; the leader retries later.
        """
        ...


def limit_size(entries: list[Entry], max_size: int | None) -> list[Entry]:
    """Keep a prefix of ``entries`` whose data fits ``max_size`` bytes, never fewer than one."""
    if max_size is None or not entries:
        return entries
    total = 0
    for count, entry in enumerate(entries):
        total += entry.size
        if count > 0 and total > max_size:
            return entries[:count]
    return entries


@attrs.define(eq=False)
class MemStorage:
    """In-memory ``Storage`` (raft-rs ``MemStorage``): entries, hard state, conf state,
    snapshot metadata. Snapshot *data* is not kept; see :class:`MemStorageWithSnapshot`."""

    _hard_state: HardState = HardState()
    _conf_state: ConfState = ConfState()
    _snapshot_metadata: SnapshotMetadata = SnapshotMetadata()
    _entries: list[Entry] = attrs.Factory(list)
    # Test hook (raft-rs ``trigger_snap_unavailable``): the next N snapshot() calls fail.
    _snapshot_unavailable_calls: int = 0

    @classmethod
    def new_with_conf_state(cls, conf_state: ConfState) -> MemStorage:
        """A fresh storage for a node that boots as part of ``conf_state``.

        Like raft-rs, the initial membership is recorded as a snapshot at index 0
        would be: the log is empty, and the core learns the peers from it.
        """
        storage = cls()
        storage._conf_state = conf_state
        storage._snapshot_metadata = SnapshotMetadata(conf_state=conf_state)
        return storage

    # -- Storage protocol -------------------------------------------------

    def initial_state(self) -> RaftState:
        return RaftState(self._hard_state, self._conf_state)

    def first_index(self) -> int:
        return self._snapshot_metadata.index + 1 if not self._entries else self._entries[0].index

    def last_index(self) -> int:
        return self._entries[-1].index if self._entries else self._snapshot_metadata.index

    def term(self, index: int) -> int:
        # Asked for on most messages: first_index and last_index written out.
        metadata = self._snapshot_metadata
        if index == metadata.index:
            return metadata.term
        entries = self._entries
        first = entries[0].index if entries else metadata.index + 1
        if index < first:
            raise CompactedError(f"term of index {index} requested, first index kept is {first}")
        last = entries[-1].index if entries else metadata.index
        if index > last:
            raise UnavailableError(f"term of index {index} requested, last index is {last}")
        return entries[index - first].term

    def entries(self, low: int, high: int, max_size: int | None = NO_LIMIT) -> list[Entry]:
        first = self.first_index()
        if low < first:
            raise CompactedError(f"entries from {low} requested, first index kept is {first}")
        if high > self.last_index() + 1:
            raise UnavailableError(
                f"entries up to {high} (exclusive) requested, last index is {self.last_index()}"
            )
        if low > high:
            raise ValueError(f"entries: low {low} must not exceed high {high}")
        return limit_size(self._entries[low - first : high - first], max_size)

    def snapshot(self, request_index: int, to: int) -> Snapshot:
        if self._snapshot_unavailable_calls > 0:
            self._snapshot_unavailable_calls -= 1
            raise SnapshotTemporarilyUnavailableError(
                f"snapshot for node {to} not ready yet (test trigger)"
            )
        if self._snapshot_metadata.index < request_index:
            raise SnapshotTemporarilyUnavailableError(
                f"snapshot at index >= {request_index} requested for node {to}, "
                f"newest is at {self._snapshot_metadata.index}"
            )
        return Snapshot(self._metadata_for_sending())

    def _metadata_for_sending(self) -> SnapshotMetadata:
        # Membership may have changed since the snapshot was made (a learner added
        # after the last compaction must find itself in it, or it would refuse it).
        # The applied membership is committed, so sending it is safe (raft-rs does too).
        return attrs.evolve(self._snapshot_metadata, conf_state=self._conf_state)

    # -- Writing (the application, while handling a Ready) ------------------

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    @property
    def conf_state(self) -> ConfState:
        return self._conf_state

    @property
    def snapshot_metadata(self) -> SnapshotMetadata:
        return self._snapshot_metadata

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def set_conf_state(self, conf_state: ConfState) -> None:
        self._conf_state = conf_state

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append ``entries``, first replacing any conflicting suffix from ``entries[0].index`` on."""
        if not entries:
            return
        first_new = entries[0].index
        for previous, entry in zip(entries, entries[1:]):
            if entry.index != previous.index + 1:
                raise ValueError(
                    f"entries to append must be contiguous: index {previous.index + 1} expected "
                    f"after {previous.index}, got {entry.index}"
                )
        first = self.first_index()
        if first_new + len(entries) - 1 < first:
            return  # all of them are already covered by the snapshot
        if first_new > self.last_index() + 1:
            raise ValueError(
                f"entries to append must start at most at {self.last_index() + 1}, got {first_new}"
            )
        if first_new < first:
            entries = entries[first - first_new :]
            first_new = first
        del self._entries[first_new - first :]
        self._entries.extend(entries)

    def compact(self, compact_index: int) -> None:
        """Discard entries before ``compact_index``; a snapshot must already cover them."""
        if compact_index <= self.first_index():
            return
        if compact_index > self._snapshot_metadata.index + 1:
            raise ValueError(
                f"cannot compact up to {compact_index}: entries are discarded only once a "
                f"snapshot covers them, and the snapshot is at {self._snapshot_metadata.index}"
            )
        del self._entries[: compact_index - self.first_index()]

    def create_snapshot(
        self, index: int, conf_state: ConfState | None = None, data: bytes | None = None
    ) -> Snapshot:
        """Record a snapshot of the applied state at ``index`` (etcd ``CreateSnapshot``).

        Entries stay until :meth:`compact`. ``data`` is ignored here; the
        subclass :class:`MemStorageWithSnapshot` keeps it.
        """
        self.check_snapshot_index(index)
        metadata = self._metadata_for(
            index, self.term(index), conf_state or self._conf_state, data
        )
        self._snapshot_metadata = metadata
        return Snapshot(metadata, data)

    def check_snapshot_index(self, index: int) -> None:
        """Raise unless a snapshot may be created at ``index``: newer than the one held, committed."""
        if index <= self._snapshot_metadata.index:
            raise SnapshotOutOfDateError(
                f"snapshot at {index} is not newer than the one held, at "
                f"{self._snapshot_metadata.index}"
            )
        if index > self._hard_state.commit:
            raise ValueError(
                f"cannot snapshot index {index}: it is past the commit index "
                f"{self._hard_state.commit} (a snapshot never covers uncommitted entries)"
            )

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the log with ``snapshot`` (a follower installing what the leader sent).

        Refused, storage unchanged, if it would lose anything storage holds: a
        snapshot older than the held one or than the commit index
        (``SnapshotOutOfDateError``). A snapshot *at* the held index is the same
        committed state and is taken again: Raft hands one over when a node that
        lost its state machine asked for it (``request_snapshot``; raft-rs
        ``Raft::restore`` refuses only an index below the commit index). It must
        carry the held term; another term at that index is another history.
        """
        metadata = snapshot.metadata
        held = self._snapshot_metadata
        commit = self._hard_state.commit
        if metadata.index == 0 or metadata.index < held.index or metadata.index < commit:
            raise SnapshotOutOfDateError(
                f"snapshot at {metadata.index} is older than what storage holds "
                f"(snapshot at {held.index}, commit index {commit}); expected an index "
                f"at least {max(held.index, commit, 1)}"
            )
        if metadata.index == held.index and metadata.term != held.term:
            raise ValueError(
                f"snapshot at {metadata.index} has term {metadata.term}, but the snapshot held "
                f"at that index has term {held.term}: a committed index has one term"
            )
        self._snapshot_metadata = metadata
        self._entries.clear()
        self._conf_state = metadata.conf_state
        self._hard_state = attrs.evolve(
            self._hard_state,
            term=max(self._hard_state.term, metadata.term),
            commit=max(self._hard_state.commit, metadata.index),
        )

    def make_snapshot_unavailable(self, calls: int = 1) -> None:
        """Make the next ``calls`` :meth:`snapshot` requests raise
        ``SnapshotTemporarilyUnavailableError``, as a storage still building one would."""
        self._snapshot_unavailable_calls = calls

    def _metadata_for(
        self, index: int, term: int, conf_state: ConfState, data: bytes | None
    ) -> SnapshotMetadata:
        return SnapshotMetadata(index=index, term=term, conf_state=conf_state)
