"""The ``SnapshotStore`` protocol: where a node keeps snapshot data.

This is the seed's ``SnapshotStore`` trait in Python. A sender saves the
snapshot its state machine made (``save_snapshot``) and serves it in chunks
(``stream_snapshot``); a receiver writes the chunks it gets into a partial
snapshot (``open_writer``, a :class:`ResumableWriter`), which survives a cut
stream or a restart and is published only once every byte arrived and the
digest matched. ``reopened`` says what survives a restart of the process.
Check a store of your own with ``simulator.testing.check_snapshot_store``.

When to use which store:

- :class:`~simulator.snapshots.MemorySnapshotStore` for simulations that do
  not care about restarts of the process itself: fast, nothing to clean up.
- :class:`~simulator.snapshots.DiskSnapshotStore` when snapshots must survive
  a node restart on the same directory, when they are too large to keep in
  memory, or to exercise crash recovery (its ``fault_injector``).

Both keep the same observable behaviour (the tests drive them with the same
operations and compare). Everything is synchronous and single-threaded: a
node calls its store from its own task, and in a virtual-time run the cost of
I/O is modelled, not measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from .metadata import ConfStateTuple, PartialSnapshot, StoredSnapshot

#: ``save_snapshot`` data: the bytes, or an iterable of byte chunks (streamed).
SnapshotData = bytes | bytearray | memoryview | Iterable[bytes | bytearray | memoryview]


@runtime_checkable
class ResumableWriter(Protocol):
    """What ``open_writer`` returns: the receiving side of one transfer, resumable.

    Its whole state is ``offset``: bytes ``[0, offset)`` are durably written.
    ``write(offset, data)`` appends ``data`` that must start exactly at
    ``offset`` (a gap, an overlap or bytes past ``size`` raise
    ``SnapshotChunkError`` and write nothing) and returns the new offset once
    it is durable. ``commit()`` checks that all ``size`` bytes arrived and hash
    to ``digest``, publishes the snapshot and returns its ``StoredSnapshot``;
    missing bytes raise ``SnapshotChunkError`` (keep writing), a wrong digest
    raises ``SnapshotDigestError`` and removes the partial data. ``abort()``
    removes the partial data and is harmless when already closed. Once closed
    (committed, aborted, or superseded by a later ``open_writer`` or
    ``save_snapshot`` on its store) every ``write``/``commit`` raises
    ``SnapshotStoreError``. The built-in :class:`~simulator.snapshots.SnapshotWriter`
    is one; a store written from scratch may return its own. The built-in one
    can also commit in steps, so that an asynchronous caller runs the slow
    read-back on another thread (``prepare_commit`` / ``commit(verified=...)``,
    :mod:`simulator.snapshots.writer`); callers use that only when the writer
    has ``prepare_commit``, so it is not part of this protocol.
    """

    #: The offset this writer started from (bytes before it were received by an earlier writer).
    resumed_from: int

    @property
    def index(self) -> int: ...

    @property
    def snapshot_id(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def digest(self) -> str: ...

    @property
    def offset(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    @property
    def partial(self) -> PartialSnapshot: ...

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> int: ...

    def commit(self) -> StoredSnapshot: ...

    def abort(self) -> None: ...


@runtime_checkable
class SnapshotStore(Protocol):
    """Complete snapshots by index, plus at most one partial transfer being received."""

    #: Bytes per chunk that ``stream_snapshot`` yields (the last chunk may be shorter).
    chunk_size: int

    def save_snapshot(
        self,
        index: int,
        data: SnapshotData,
        *,
        term: int,
        conf_state: ConfStateTuple | None = None,
        snapshot_id: str | None = None,
    ) -> str:
        """Store a complete snapshot and return its location.

        ``data`` may be a generator of chunks; the disk store writes them as they
        come and never holds the whole snapshot. ``snapshot_id`` defaults to one
        derived from index, term and digest. Saving the same bytes and term again
        at an index returns the existing location; different ones raise
        ``SnapshotExistsError``. A partial transfer at the same index is dropped.
        """
        ...

    def stream_snapshot(self, index: int, offset: int = 0) -> Iterator[bytes]:
        """Chunks of ``chunk_size`` bytes from ``offset`` to the end (none if empty).

        Index and offset are checked at the call (``SnapshotNotFoundError``,
        ``ValueError`` for an offset outside ``0..size``); the data is read
        chunk by chunk as the iterator is consumed. The digest of the whole
        snapshot is checked before the last chunk is yielded; a mismatch raises
        ``SnapshotCorruptError`` then. A consumer that wants to stop earlier
        must check per-chunk checksums itself.
        """
        ...

    def snapshot_metadata(self, index: int) -> StoredSnapshot:
        """Metadata of the complete snapshot at ``index``; ``SnapshotNotFoundError`` otherwise."""
        ...

    def list_snapshots(self) -> list[StoredSnapshot]:
        """Complete snapshots, oldest (lowest index) first."""
        ...

    def latest(self) -> StoredSnapshot | None:
        """The complete snapshot with the highest index, if any."""
        ...

    def has_snapshot(self, index: int) -> bool:
        """Whether a complete snapshot exists at ``index`` (partial transfers do not count)."""
        ...

    def compact_snapshots(self, keep_count: int) -> list[int]:
        """Delete all but the newest ``keep_count >= 1`` complete snapshots; return
        the deleted indexes, ascending. The newest complete snapshot is never deleted."""
        ...

    def read_snapshot(self, index: int) -> bytes:
        """The whole data of a snapshot, digest verified. For small snapshots and tests;
        use ``stream_snapshot`` to keep memory near one chunk."""
        ...

    def open_writer(
        self,
        index: int,
        *,
        term: int,
        size: int,
        digest: str,
        conf_state: ConfStateTuple | None = None,
        snapshot_id: str,
    ) -> ResumableWriter:
        """A writer that receives this snapshot in pieces.

        Continues the partial transfer of the same snapshot (same index, term,
        size, digest and id) from its recorded offset; otherwise drops every
        other partial transfer first (a store receives one snapshot at a time).
        ``SnapshotExistsError`` if a complete snapshot is already at ``index``.
        """
        ...

    def partial_transfers(self) -> list[PartialSnapshot]:
        """Transfers that can be resumed, lowest index first."""
        ...

    def reopened(self) -> SnapshotStore:
        """The store as the node's process finds it after a restart; how a store declares
        what survives one.

        A durable store opens its storage afresh (a new object on the same
        directory, bucket or service), keeping every complete snapshot and every
        partial transfer whose progress was durably recorded, so a writer opened
        for the same snapshot resumes from its recorded ``offset``; writers of the
        old object are closed. A store whose contents live only in this object
        (``MemorySnapshotStore``, standing for a disk in simulations) returns
        itself. The cluster calls it on every node restart, for any store.
        """
        ...
