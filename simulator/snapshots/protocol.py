"""The ``SnapshotStore`` protocol: where a node keeps snapshot data.

This is the seed's ``SnapshotStore`` trait in Python. A sender saves the
snapshot its state machine made (``save_snapshot``) and serves it in chunks
(``stream_snapshot``); a receiver writes the chunks it gets into a partial
snapshot (``open_writer``), which survives a cut stream or a restart and is
published only once every byte arrived and the digest matched.

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
from .writer import SnapshotWriter

#: ``save_snapshot`` data: the bytes, or an iterable of byte chunks (streamed).
SnapshotData = bytes | bytearray | memoryview | Iterable[bytes | bytearray | memoryview]


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
    ) -> SnapshotWriter:
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
