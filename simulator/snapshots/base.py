"""What every snapshot store does the same way, whatever holds the bytes.

:class:`BaseSnapshotStore` implements the whole ``SnapshotStore`` protocol:
argument checks, the index of complete snapshots, compaction policy, digest
verification while streaming, the rules for opening, resuming and
superseding writers. A concrete store supplies only the primitives marked
"storage" below (stage and publish data, read a range, append to a partial
transfer, delete). That keeps the memory and disk stores observably equal,
which the tests check by driving both with the same operations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from .errors import SnapshotCorruptError, SnapshotExistsError, SnapshotNotFoundError, SnapshotTooLargeError
from .metadata import (
    ConfStateTuple,
    PartialSnapshot,
    StoredSnapshot,
    check_count,
    check_digest,
    check_snapshot_id,
    conf_state_tuple,
    default_snapshot_id,
    hasher_digest,
    hasher_for,
)
from .writer import SnapshotWriter, Transfer

DEFAULT_CHUNK_SIZE = 1024 * 1024


@attrs.frozen
class Staged:
    """Snapshot data written somewhere provisional, not yet visible as a snapshot."""

    size: int
    digest: str
    handle: Any  # the bytes (memory) or the temporary file's path (disk)


class RangeReader:
    """Reads byte ranges of one stored snapshot; stores return one from ``_open_reader``."""

    def read_at(self, position: int, length: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


def check_chunk_size(chunk_size: object) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of bytes, got {chunk_size!r}")
    return chunk_size


#: The seed's promise: snapshots up to 10 GB move without streaming issues. A store
#: refuses larger ones (``SnapshotTooLargeError``) unless its ``max_snapshot_size`` is raised.
DEFAULT_MAX_SNAPSHOT_SIZE = 10 * 1024**3


def data_chunks(data: object) -> Iterator[bytes | bytearray | memoryview]:
    """The chunks of ``save_snapshot`` data, type-checked one at a time as they are consumed."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield data
        return
    if isinstance(data, str) or not isinstance(data, Iterable):
        raise TypeError(f"snapshot data must be bytes or an iterable of byte chunks, got {type(data).__name__}")
    for number, chunk in enumerate(data):
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"snapshot data chunk {number} must be bytes, got {type(chunk).__name__}")
        yield chunk


def within_max_size(index: int, chunks: Iterable, limit: int, whose: str) -> Iterator:
    """``chunks``, stopped with ``SnapshotTooLargeError`` once they pass ``limit`` bytes.

    Counted as the chunks are produced, so a state over the limit is refused
    before it is held (or written) whole. ``whose`` names the limit's owner in
    the message ("this store's", "Embedded's").
    """
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise SnapshotTooLargeError(
                f"snapshot {index} is over {total} bytes, more than {whose} max_snapshot_size "
                f"{limit} ({limit / 1024**3:g} GiB); raise max_snapshot_size or make the state smaller"
            )
        yield chunk


class BaseSnapshotStore:
    """Shared behaviour of the snapshot stores; see :mod:`simulator.snapshots.protocol`."""

    #: Whether streams re-hash what they read and check it against the digest. A
    #: store whose complete snapshots are immutable objects, hashed as they were
    #: stored, turns it off: nothing can have changed them since, and hashing
    #: every byte again on every read would halve how fast a transfer can go.
    _verify_reads = True
    #: Largest snapshot this store saves or receives, in bytes; set per store to change it.
    max_snapshot_size: int = DEFAULT_MAX_SNAPSHOT_SIZE

    def __init__(self, *, chunk_size: int, clock: Callable[[], float]) -> None:
        self.chunk_size = check_chunk_size(chunk_size)
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        self._clock = clock
        self._snapshots: dict[int, StoredSnapshot] = {}
        self._transfers: dict[int, Transfer] = {}

    # -- reading --------------------------------------------------------------

    def snapshot_metadata(self, index: int) -> StoredSnapshot:
        snapshot = self._snapshots.get(index)
        if snapshot is None:
            available = sorted(self._snapshots)
            raise SnapshotNotFoundError(
                f"no complete snapshot at index {index!r}; available: {available if available else 'none'}"
            )
        return snapshot

    def list_snapshots(self) -> list[StoredSnapshot]:
        return [self._snapshots[index] for index in sorted(self._snapshots)]

    def latest(self) -> StoredSnapshot | None:
        return self._snapshots[max(self._snapshots)] if self._snapshots else None

    def has_snapshot(self, index: int) -> bool:
        return index in self._snapshots

    def stream_snapshot(self, index: int, offset: int = 0) -> Iterator[bytes]:
        snapshot = self.snapshot_metadata(index)
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= snapshot.size:
            raise ValueError(
                f"snapshot {index}: stream offset must be in the range 0..{snapshot.size} "
                f"(the snapshot's size), got {offset!r}"
            )
        return self._verified_chunks(snapshot, offset)

    def read_snapshot(self, index: int) -> bytes:
        return b"".join(self.stream_snapshot(index))

    def _verified_chunks(self, snapshot: StoredSnapshot, offset: int) -> Iterator[bytes]:
        # Runs at the first next(): the snapshot may have been compacted since the call.
        # Once reading has begun, the stream holds the data (an open file, a bytes
        # object) and finishes even if compaction deletes the snapshot meanwhile.
        if self._snapshots.get(snapshot.index) is not snapshot:
            available = sorted(self._snapshots)
            raise SnapshotNotFoundError(
                f"snapshot {snapshot.index} was deleted after stream_snapshot was called and before "
                f"its first chunk was read; available: {available if available else 'none'}"
            )
        # The digest covers the whole snapshot, so a stream that starts later first
        # hashes the bytes before ``offset`` (read chunk by chunk, never yielded).
        reader = self._open_reader(snapshot)
        if not self._verify_reads:
            yield from self._unverified_chunks(snapshot, reader, offset)
            return
        try:
            hasher = hasher_for(snapshot.digest)
            position = 0
            while position < snapshot.size:
                length = min(self.chunk_size, snapshot.size - position)
                if position < offset:
                    length = min(length, offset - position)
                chunk = reader.read_at(position, length)
                if len(chunk) != length:
                    raise SnapshotCorruptError(
                        f"snapshot {snapshot.index}: {self._where(snapshot)} ends at byte {position + len(chunk)}, "
                        f"metadata says size {snapshot.size}"
                    )
                hasher.update(chunk)
                position += length
                if position == snapshot.size:
                    self._check_end(snapshot, reader, hasher)
                if position > offset:
                    yield chunk
            if snapshot.size == 0:
                self._check_end(snapshot, reader, hasher)
        finally:
            reader.close()

    def _unverified_chunks(self, snapshot: StoredSnapshot, reader: RangeReader, offset: int) -> Iterator[bytes]:
        try:
            position = offset
            while position < snapshot.size:
                length = min(self.chunk_size, snapshot.size - position)
                chunk = reader.read_at(position, length)
                if len(chunk) != length:
                    raise SnapshotCorruptError(
                        f"snapshot {snapshot.index}: {self._where(snapshot)} ends at byte {position + len(chunk)}, "
                        f"metadata says size {snapshot.size}"
                    )
                position += length
                if position == snapshot.size and reader.read_at(snapshot.size, 1):
                    raise SnapshotCorruptError(
                        f"snapshot {snapshot.index}: {snapshot.location} has bytes past the size "
                        f"{snapshot.size} its metadata records"
                    )
                yield chunk
        finally:
            reader.close()

    def _check_end(self, snapshot: StoredSnapshot, reader: RangeReader, hasher: Any) -> None:
        if reader.read_at(snapshot.size, 1):
            raise SnapshotCorruptError(
                f"snapshot {snapshot.index}: {self._where(snapshot)} has bytes past the size "
                f"{snapshot.size} its metadata records"
            )
        actual = hasher_digest(hasher)
        if actual != snapshot.digest:
            raise SnapshotCorruptError(
                f"snapshot {snapshot.index}: {self._where(snapshot)} has digest {actual}, "
                f"metadata expects {snapshot.digest}"
            )

    # -- writing whole snapshots --------------------------------------------

    def save_snapshot(
        self,
        index: int,
        data: object,
        *,
        term: int,
        conf_state: ConfStateTuple | None = None,
        snapshot_id: str | None = None,
    ) -> str:
        check_count(index, "index")
        check_count(term, "term")
        conf_state = conf_state_tuple(conf_state)
        if snapshot_id is not None:
            check_snapshot_id(snapshot_id)
        staged = self._stage(index, self._within_limit(index, data_chunks(data)))
        existing = self._snapshots.get(index)
        if existing is not None:
            self._discard_staged(staged)
            if (existing.digest, existing.term) == (staged.digest, term):
                return existing.location  # the same snapshot saved again: nothing to do
            raise SnapshotExistsError(
                f"snapshot at index {index} already exists (term {existing.term}, digest {existing.digest}); "
                f"a different one (term {term}, digest {staged.digest}) cannot replace it"
            )
        transfer = self._transfers.get(index)
        if transfer is not None:
            self._drop_transfer(transfer)  # whatever was being received is now here whole
        snapshot = StoredSnapshot(
            index=index,
            term=term,
            size=staged.size,
            digest=staged.digest,
            snapshot_id=snapshot_id or default_snapshot_id(index, term, staged.digest),
            conf_state=conf_state,
            created_at=float(self._clock()),
            location=self._location(index),
        )
        self._publish_staged(staged, snapshot)
        self._snapshots[index] = snapshot
        return snapshot.location

    def _within_limit(self, index: int, chunks: Iterator) -> Iterator:
        """``chunks``, stopped with ``SnapshotTooLargeError`` once they pass ``max_snapshot_size``
        (the store's staging removes what it wrote, as for any failing data source)."""
        return within_max_size(index, chunks, self.max_snapshot_size, "this store's")

    def compact_snapshots(self, keep_count: int) -> list[int]:
        if isinstance(keep_count, bool) or not isinstance(keep_count, int) or keep_count < 1:
            raise ValueError(
                f"keep_count must be an integer >= 1 (the newest complete snapshot is always kept), "
                f"got {keep_count!r}"
            )
        doomed = sorted(self._snapshots)[:-keep_count]
        for index in doomed:
            snapshot = self._snapshots[index]
            # The list follows the storage step by step, so a failure (a full or broken
            # disk) leaves memory and storage in step: a snapshot is listed exactly
            # while its metadata exists; data left behind is ignored and reported on reopening.
            self._unpublish_snapshot(snapshot)
            del self._snapshots[index]
            self._delete_snapshot_data(snapshot)
        return doomed

    def discard_corrupt(self, index: int) -> str | None:
        """Stop holding snapshot ``index`` if its bytes fail their digest: why, or ``None`` if kept.

        Only a snapshot that fails the check is removed; a good one never is. A node
        that found its snapshot damaged calls this, so that the same index can be
        received afresh (``open_writer`` refuses an index the store holds). A store
        that does not re-hash what it reads (immutable objects) keeps everything.
        """
        snapshot = self.snapshot_metadata(index)
        try:
            for _ in self._verified_chunks(snapshot, 0):
                pass
        except SnapshotCorruptError as error:
            self._unpublish_snapshot(snapshot)
            del self._snapshots[index]
            self._delete_snapshot_data(snapshot)
            return str(error)
        return None

    # -- receiving snapshots in pieces --------------------------------------

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
        check_count(index, "index")
        check_count(term, "term")
        check_count(size, "size")
        check_digest(digest)
        check_snapshot_id(snapshot_id)
        conf_state = conf_state_tuple(conf_state)
        if size > self.max_snapshot_size:
            raise SnapshotTooLargeError(
                f"snapshot {index} of {size} bytes is larger than this store's max_snapshot_size "
                f"{self.max_snapshot_size} ({self.max_snapshot_size / 1024**3:g} GiB); refused before receiving"
            )
        existing = self._snapshots.get(index)
        if existing is not None:
            raise SnapshotExistsError(
                f"snapshot at index {index} is already complete ({existing.snapshot_id!r}, {existing.digest}); "
                "no transfer needed, a new index expected"
            )
        transfer = self._transfers.get(index)
        identity = dict(index=index, term=term, size=size, digest=digest, snapshot_id=snapshot_id)
        if transfer is not None and transfer.partial.same_snapshot(**identity):
            if transfer.partial.conf_state != conf_state:
                transfer.partial = attrs.evolve(transfer.partial, conf_state=conf_state)
                self._record_progress(transfer)
            return SnapshotWriter(self, transfer)
        # A store receives one snapshot at a time: anything else in progress is superseded.
        for other in [self._transfers[i] for i in sorted(self._transfers)]:
            self._drop_transfer(other)
        partial = PartialSnapshot(
            **identity, conf_state=conf_state, offset=0, location=self._partial_location(index)
        )
        transfer = Transfer(partial=partial, hasher=hasher_for(digest))
        self._begin_transfer(transfer)
        self._transfers[index] = transfer
        return SnapshotWriter(self, transfer)

    def partial_transfers(self) -> list[PartialSnapshot]:
        return [self._transfers[index].partial for index in sorted(self._transfers)]

    def reopened(self) -> BaseSnapshotStore:
        """Contents held by this object survive as long as it does (the memory store);
        stores on durable storage override this to open it afresh."""
        return self

    # Called by SnapshotWriter.

    def _transfer_at(self, index: int) -> Transfer | None:
        return self._transfers.get(index)

    def _read_back(self, transfer: Transfer) -> Callable[[], None] | None:
        """Nothing to read back unless a store says otherwise (the disk store does)."""
        return None

    def _publish_transfer(self, transfer: Transfer) -> StoredSnapshot:
        partial = transfer.partial
        existing = self._snapshots.get(partial.index)
        if existing is not None:  # cannot happen through the public API; refuse, never overwrite
            raise SnapshotExistsError(f"snapshot at index {partial.index} appeared while it was being received")
        snapshot = StoredSnapshot(
            index=partial.index,
            term=partial.term,
            size=partial.size,
            digest=partial.digest,
            snapshot_id=partial.snapshot_id,
            conf_state=partial.conf_state,
            created_at=float(self._clock()),
            location=self._location(partial.index),
        )
        self._publish_partial(transfer, snapshot)
        del self._transfers[partial.index]
        self._snapshots[partial.index] = snapshot
        transfer.writer = None
        return snapshot

    def _drop_transfer(self, transfer: Transfer) -> None:
        self._remove_partial(transfer)
        if self._transfers.get(transfer.partial.index) is transfer:
            del self._transfers[transfer.partial.index]
        transfer.writer = None

    # -- storage primitives, supplied by each store ---------------------------

    def _where(self, snapshot: StoredSnapshot) -> str:
        """How messages name the snapshot's data (its location, unless a store says otherwise)."""
        return snapshot.location

    def _location(self, index: int) -> str:
        raise NotImplementedError

    def _partial_location(self, index: int) -> str:
        raise NotImplementedError

    def _stage(self, index: int, chunks: Iterator[Any]) -> Staged:
        """Consume ``chunks`` into provisional storage, computing size and digest."""
        raise NotImplementedError

    def _discard_staged(self, staged: Staged) -> None:
        raise NotImplementedError

    def _publish_staged(self, staged: Staged, snapshot: StoredSnapshot) -> None:
        """Make staged data the complete ``snapshot``: data first, metadata last."""
        raise NotImplementedError

    def _open_reader(self, snapshot: StoredSnapshot) -> RangeReader:
        raise NotImplementedError

    def _unpublish_snapshot(self, snapshot: StoredSnapshot) -> None:
        """Make ``snapshot`` stop being complete, atomically (remove its metadata).

        If this raises, the snapshot must still be complete and readable."""
        raise NotImplementedError

    def _delete_snapshot_data(self, snapshot: StoredSnapshot) -> None:
        """Delete the data of a snapshot already unpublished."""
        raise NotImplementedError

    def _begin_transfer(self, transfer: Transfer) -> None:
        """Create empty partial data and a progress record at offset 0."""
        raise NotImplementedError

    def _append_partial(self, transfer: Transfer, offset: int, data: Any, *, prefix_digest: str) -> None:
        """Durably append ``data`` at ``offset``, then record ``offset + len(data)`` as progress."""
        raise NotImplementedError

    def _record_progress(self, transfer: Transfer) -> None:
        """Rewrite the progress record from ``transfer.partial`` as it is now."""
        raise NotImplementedError

    def _publish_partial(self, transfer: Transfer, snapshot: StoredSnapshot) -> None:
        """Turn a verified, complete partial into ``snapshot``: data, metadata, then cleanup."""
        raise NotImplementedError

    def _remove_partial(self, transfer: Transfer) -> None:
        raise NotImplementedError
