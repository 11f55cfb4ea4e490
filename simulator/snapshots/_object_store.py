"""What every bucket-backed snapshot store does the same way (S3, GCS).

:class:`ObjectSnapshotStore` is a :class:`~.base.BaseSnapshotStore` whose
storage primitives are objects in a :class:`~._bucket.Bucket`, under the
store's prefix, named like the disk store's files::

    snapshot-N.bin                  complete snapshot data
    snapshot-N.meta.json            its metadata (index, term, size, digest, conf state, timestamp)
    snapshot-N.partial.json         progress record of a transfer being received
    snapshot-N.partial/OFFSET       the bytes of that transfer from OFFSET, one object per write

Visibility. A snapshot exists when its metadata object exists, and that is
written last (with a conditional create where the server supports it). Data
is streamed as a multipart or resumable upload that becomes an object only
when it completes, so a save that fails half way leaves nothing (the upload
is aborted); data without metadata is never listed. Compaction removes the
metadata first, so a snapshot disappears at once, never half.

Partial transfers are durable per write: each verified chunk becomes its own
object, then the progress record moves past it (the same order as the disk
store's append-then-record). Commit streams the pieces into the final data
object (holding one part in memory), writes the metadata, then cleans up.

Reading uses ranged GETs, one per chunk. A stream from offset 0 checks the
whole digest before its last chunk, like every store; a stream resumed at a
later offset starts there without fetching the bytes before it, so the
digest is left to its consumer (a ``SnapshotWriter`` checks it on commit).

Listing is the bucket's: ``list_snapshots``, ``latest`` and
``compact_snapshots`` list the prefix each time, so snapshots another
process published (or compacted) are seen; ``snapshot_metadata`` and
``has_snapshot`` look a missing index up in the bucket before saying no.
Opening a store checks what it finds and reports the rest in ``problems``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs

from ._bucket import Bucket, ObjectNotFoundError
from .base import BaseSnapshotStore, RangeReader, Staged
from .errors import SnapshotCorruptError, SnapshotNotFoundError
from .files import BIN, META, PARTIAL, PROGRESS, file_name, parse_name
from .metadata import (
    MetadataError,
    StoredSnapshot,
    hasher_digest,
    hasher_for,
    new_hasher,
    partial_from_json,
    partial_to_json,
    snapshot_from_json,
    snapshot_to_json,
)
from .writer import Transfer

_OFFSET_DIGITS = 20


def piece_key(index: int, offset: int) -> str:
    return f"{file_name(index, PARTIAL)}/{offset:0{_OFFSET_DIGITS}}"


def _parse_key(key: str) -> tuple[int, str, int | None] | None:
    """``(index, kind, piece offset)`` for a key this store writes, ``None`` otherwise."""
    head, slash, tail = key.partition("/")
    parsed = parse_name(head)
    if parsed is None:
        return None
    index, kind = parsed
    if not slash:
        return index, kind, None
    if kind != PARTIAL or len(tail) != _OFFSET_DIGITS or not tail.isdigit():
        return None
    return index, "piece", int(tail)


class _ObjectReader(RangeReader):
    """Ranged GETs of one data object; the object's real size is read once, at open."""

    def __init__(self, bucket: Bucket, key: str, snapshot: StoredSnapshot) -> None:
        size = bucket.size(key)
        if size is None:
            raise SnapshotCorruptError(
                f"snapshot {snapshot.index}: data object {snapshot.location} is missing "
                "(removed behind the store's back); expected it beside its metadata"
            )
        self._bucket, self._key, self._size = bucket, key, size

    def read_at(self, position: int, length: int) -> bytes:
        if position >= self._size or length <= 0:
            return b""
        return self._bucket.get_range(self._key, position, min(length, self._size - position))


@attrs.define
class _Listing:
    """What one listing of the prefix found, grouped by snapshot index."""

    sizes: dict[str, int] = attrs.Factory(dict)
    kinds: dict[int, set[str]] = attrs.Factory(dict)
    pieces: dict[int, list[tuple[int, int]]] = attrs.Factory(dict)  # index -> [(offset, size)]


class ObjectSnapshotStore(BaseSnapshotStore):
    """A :class:`~simulator.snapshots.SnapshotStore` in a bucket; see the module docstring."""

    def __init__(self, bucket: Bucket, *, chunk_size: int, clock: Callable[[], float]) -> None:
        super().__init__(chunk_size=chunk_size, clock=clock)
        self.bucket = bucket
        #: What opening (or a later listing) found and ignored, one message each.
        self.problems: list[str] = []
        self._unusable: dict[int, str] = {}  # index -> why its complete snapshot was ignored
        #: What opening cleaned up (unrecorded pieces, partials of complete snapshots).
        self.recovery_actions: list[str] = []
        self._recover(self._list())

    @property
    def url(self) -> str:
        """``s3://bucket/prefix`` or ``gs://bucket/prefix``; never holds a credential."""
        return self.bucket.url

    def reopened(self) -> ObjectSnapshotStore:
        """A new store on the same bucket prefix (same client and settings), recovered from
        what the bucket holds, as a restarted process would open it."""
        fresh = object.__new__(type(self))
        fresh.__dict__.update(self.__dict__)  # the subclass's own settings (endpoint, ...)
        ObjectSnapshotStore.__init__(fresh, self.bucket, chunk_size=self.chunk_size, clock=self._clock)
        return fresh

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url!r} snapshots={sorted(self._snapshots)}>"

    # -- listing --------------------------------------------------------------------

    def _list(self) -> _Listing:
        listing = _Listing()
        for key, size in self.bucket.list():
            parsed = _parse_key(key)
            if parsed is None:
                continue
            index, kind, offset = parsed
            listing.sizes[key] = size
            if kind == "piece":
                listing.pieces.setdefault(index, []).append((offset, size))
            else:
                listing.kinds.setdefault(index, set()).add(kind)
        return listing

    def _problem(self, text: str, *, unusable: int | None = None) -> None:
        if text not in self.problems:
            self.problems.append(text)
        if unusable is not None:
            self._unusable[unusable] = text

    def _load_snapshot(self, index: int, data_size: int | None) -> StoredSnapshot | None:
        """Parse and check the metadata of ``index``; ``None`` (and a problem) if unusable."""
        meta_key = file_name(index, META)
        try:
            raw = self.bucket.get(meta_key)
        except ObjectNotFoundError:
            return None  # deleted since it was listed
        try:
            snapshot = snapshot_from_json(raw, what=f"{self.url}/{meta_key}", location=self._location(index))
        except MetadataError as error:
            self._problem(f"{error}; snapshot {index} ignored", unusable=index)
            return None
        if snapshot.index != index:
            self._problem(f"{self.url}/{meta_key} records index {snapshot.index}, expected {index}; ignored",
                          unusable=index)
            return None
        if data_size is None:
            self._problem(f"{self.url}/{meta_key} has no data object {file_name(index, BIN)}; ignored",
                          unusable=index)
            return None
        if data_size != snapshot.size:
            self._problem(
                f"{self._location(index)} has {data_size} bytes, its metadata records size "
                f"{snapshot.size}; ignored",
                unusable=index,
            )
            return None
        self._unusable.pop(index, None)
        return snapshot

    def _refresh(self, listing: _Listing | None = None) -> None:
        """Make the index of complete snapshots what the bucket holds now."""
        listing = listing or self._list()
        found: dict[int, StoredSnapshot] = {}
        for index in sorted(listing.kinds):
            if META not in listing.kinds[index]:
                continue
            known = self._snapshots.get(index)
            if known is not None and listing.sizes.get(file_name(index, BIN)) == known.size:
                found[index] = known  # keep the same object: open streams compare identity
                continue
            snapshot = self._load_snapshot(index, listing.sizes.get(file_name(index, BIN)))
            if snapshot is not None:
                found[index] = snapshot
        self._snapshots = found

    def _lookup(self, index: int) -> StoredSnapshot | None:
        snapshot = self._snapshots.get(index)
        if snapshot is None and isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            snapshot = self._load_snapshot(index, self.bucket.size(file_name(index, BIN)))
            if snapshot is not None:
                self._snapshots[index] = snapshot
        return snapshot

    def snapshot_metadata(self, index: int) -> StoredSnapshot:
        if self._lookup(index) is None:
            why = self._unusable.get(index) if isinstance(index, int) else None
            if why is not None:
                raise SnapshotNotFoundError(f"no usable snapshot at index {index} in {self.url}: {why}")
        return super().snapshot_metadata(index)

    def has_snapshot(self, index: int) -> bool:
        return self._lookup(index) is not None

    def list_snapshots(self) -> list[StoredSnapshot]:
        self._refresh()
        return super().list_snapshots()

    def latest(self) -> StoredSnapshot | None:
        self._refresh()
        return super().latest()

    def compact_snapshots(self, keep_count: int) -> list[int]:
        if not (isinstance(keep_count, bool) or not isinstance(keep_count, int) or keep_count < 1):
            self._refresh()
        return super().compact_snapshots(keep_count)

    # -- reading ------------------------------------------------------------------

    def _verified_chunks(self, snapshot: StoredSnapshot, offset: int) -> Iterator[bytes]:
        if offset == 0:
            yield from super()._verified_chunks(snapshot, offset)
            return
        # A stream that resumes at ``offset`` starts there with ranged reads and never
        # fetches the bytes before it, so it cannot check the whole digest; its consumer
        # (a SnapshotWriter, which hashes everything it receives) checks it on commit.
        if self._snapshots.get(snapshot.index) is not snapshot:
            raise SnapshotNotFoundError(
                f"snapshot {snapshot.index} was deleted after stream_snapshot was called and before "
                f"its first chunk was read; available: {sorted(self._snapshots) or 'none'}"
            )
        reader = self._open_reader(snapshot)
        position = offset
        while position < snapshot.size:
            length = min(self.chunk_size, snapshot.size - position)
            chunk = reader.read_at(position, length)
            if len(chunk) != length:
                raise SnapshotCorruptError(
                    f"snapshot {snapshot.index}: {snapshot.location} ends at byte {position + len(chunk)}, "
                    f"metadata says size {snapshot.size}"
                )
            position += length
            yield chunk

    # -- recovery at open ---------------------------------------------------------------

    def _recover(self, listing: _Listing) -> None:
        self._refresh(listing)
        for index in sorted(listing.kinds):
            kinds = listing.kinds[index]
            if BIN in kinds and META not in kinds and PROGRESS not in kinds:
                self._problem(
                    f"{self._location(index)} has no metadata object {file_name(index, META)} (a save or "
                    "compaction was interrupted); ignored, expected both objects for a complete snapshot"
                )
        for index in sorted(set(listing.pieces) | set(listing.kinds)):
            if PROGRESS in listing.kinds.get(index, ()):
                self._recover_partial(index, sorted(listing.pieces.get(index, [])))
            elif index in listing.pieces:
                self._delete_pieces(index, listing.pieces[index])
                self.recovery_actions.append(
                    f"removed {len(listing.pieces[index])} piece(s) of {file_name(index, PARTIAL)}: "
                    "no progress record (a transfer interrupted while starting or being removed)"
                )

    def _recover_partial(self, index: int, pieces: list[tuple[int, int]]) -> None:
        record_key = file_name(index, PROGRESS)
        try:
            partial, prefix_digest = partial_from_json(
                self.bucket.get(record_key), what=f"{self.url}/{record_key}",
                location=self._partial_location(index),
            )
            if partial.index != index:
                raise MetadataError(f"{self.url}/{record_key} records index {partial.index}, expected {index}")
        except (MetadataError, ObjectNotFoundError) as error:
            self._drop_partial_objects(index, pieces)
            self._problem(f"{error}; partial transfer {index} removed")
            return
        if index in self._snapshots:
            self._drop_partial_objects(index, pieces)
            self.recovery_actions.append(
                f"removed partial transfer {index}: the snapshot is already complete (a commit finished "
                "but had not cleaned up)"
            )
            return
        hasher, position, kept = hasher_for(partial.digest), 0, []
        for offset, size in pieces:
            if offset != position or position >= partial.offset:
                break
            hasher.update(self.bucket.get(piece_key(index, offset)))
            position += size
            kept.append((offset, size))
        if position != partial.offset or hasher_digest(hasher) != prefix_digest:
            self._drop_partial_objects(index, pieces)
            self._problem(
                f"partial transfer {index}: its pieces hold {position} contiguous bytes with digest "
                f"{hasher_digest(hasher)}, the progress record expects {partial.offset} bytes with digest "
                f"{prefix_digest}; removed"
            )
            return
        unrecorded = [piece for piece in pieces if piece not in kept]
        if unrecorded:
            self._delete_pieces(index, unrecorded)
            self.recovery_actions.append(
                f"removed {len(unrecorded)} piece(s) of partial transfer {index} past its recorded offset "
                f"{partial.offset}: they were never acknowledged"
            )
        self._transfers[index] = Transfer(partial=partial, hasher=hasher)

    def _delete_pieces(self, index: int, pieces: list[tuple[int, int]]) -> None:
        for offset, _ in pieces:
            self.bucket.delete(piece_key(index, offset))

    def _drop_partial_objects(self, index: int, pieces: list[tuple[int, int]]) -> None:
        self.bucket.delete(file_name(index, PROGRESS))  # the record first: pieces alone are orphans
        self._delete_pieces(index, pieces)

    # -- storage primitives: complete snapshots --------------------------------------------

    def _location(self, index: int) -> str:
        return f"{self.url}/{file_name(index, BIN)}"

    def _partial_location(self, index: int) -> str:
        return f"{self.url}/{file_name(index, PARTIAL)}/"

    def _stage(self, index: int, chunks: Iterator[Any]) -> Staged:
        hasher = new_hasher()
        if self._lookup(index) is not None:
            # A snapshot is there already: only its digest matters (same one saved again,
            # or a conflicting one refused); never upload over its data.
            size = 0
            for chunk in chunks:
                hasher.update(chunk)
                size += len(chunk)
            return Staged(size=size, digest=hasher_digest(hasher), handle=None)
        upload = self.bucket.upload(file_name(index, BIN), chunks, hasher=hasher)
        return Staged(size=upload.size, digest=upload.digest, handle=upload)

    def _discard_staged(self, staged: Staged) -> None:
        if staged.handle is not None:
            staged.handle.abort()

    def _publish_staged(self, staged: Staged, snapshot: StoredSnapshot) -> None:
        staged.handle.complete()
        self._write_metadata(snapshot)

    def _write_metadata(self, snapshot: StoredSnapshot) -> None:
        self.bucket.put(file_name(snapshot.index, META), snapshot_to_json(snapshot), if_absent=True)

    def _open_reader(self, snapshot: StoredSnapshot) -> RangeReader:
        return _ObjectReader(self.bucket, file_name(snapshot.index, BIN), snapshot)

    def _unpublish_snapshot(self, snapshot: StoredSnapshot) -> None:
        self.bucket.delete(file_name(snapshot.index, META))  # gone at once, as a whole

    def _delete_snapshot_data(self, snapshot: StoredSnapshot) -> None:
        self.bucket.delete(file_name(snapshot.index, BIN))

    # -- storage primitives: partial transfers ---------------------------------------------

    def _begin_transfer(self, transfer: Transfer) -> None:
        index = transfer.partial.index
        stale = [(offset, 0) for key, _ in self.bucket.list(f"{file_name(index, PARTIAL)}/")
                 if (parsed := _parse_key(key)) is not None and (offset := parsed[2]) is not None]
        self._delete_pieces(index, stale)
        self._record_progress(transfer)

    def _append_partial(self, transfer: Transfer, offset: int, data: Any, *, prefix_digest: str) -> None:
        # The piece is durable before the record that points past it, as on disk.
        self.bucket.put(piece_key(transfer.partial.index, offset), bytes(data))
        record = partial_to_json(attrs.evolve(transfer.partial, offset=offset + len(data)),
                                 prefix_digest=prefix_digest)
        self.bucket.put(file_name(transfer.partial.index, PROGRESS), record)

    def _record_progress(self, transfer: Transfer) -> None:
        record = partial_to_json(transfer.partial, prefix_digest=transfer.prefix_digest)
        self.bucket.put(file_name(transfer.partial.index, PROGRESS), record)

    def _piece_offsets(self, index: int) -> list[tuple[int, int]]:
        found = []
        for key, size in self.bucket.list(f"{file_name(index, PARTIAL)}/"):
            parsed = _parse_key(key)
            if parsed is not None and parsed[2] is not None:
                found.append((parsed[2], size))
        return sorted(found)

    def _publish_partial(self, transfer: Transfer, snapshot: StoredSnapshot) -> None:
        index = snapshot.index
        pieces = self._piece_offsets(index)
        recorded = [(offset, size) for offset, size in pieces if offset < snapshot.size]

        def piece_bytes() -> Iterator[bytes]:
            for offset, _ in recorded:
                yield self.bucket.get(piece_key(index, offset))

        hasher = hasher_for(snapshot.digest)
        upload = self.bucket.upload(file_name(index, BIN), piece_bytes(), hasher=hasher)
        if (upload.size, upload.digest) != (snapshot.size, snapshot.digest):
            upload.abort()
            raise SnapshotCorruptError(
                f"snapshot {index}: the pieces in {self._partial_location(index)} now hold {upload.size} "
                f"bytes with digest {upload.digest}, {snapshot.size} bytes with digest {snapshot.digest} "
                "were written and verified; nothing was published"
            )
        upload.complete()
        self._write_metadata(snapshot)
        self._drop_partial_objects(index, pieces)

    def _remove_partial(self, transfer: Transfer) -> None:
        index = transfer.partial.index
        self._drop_partial_objects(index, self._piece_offsets(index))
