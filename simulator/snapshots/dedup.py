"""Content-addressed pieces: send a receiver only the parts of a snapshot it does not hold.

Theory of operation. A snapshot is cut into *pieces* by content-defined
chunking (FastCDC, ``pyfastcdc``): a cut falls where a rolling hash of the
last bytes says so, not every N bytes, so an insertion or a changed record
moves only the cuts next to it and every other piece keeps its bytes, and so
its sha256. A receiver that holds an older snapshot (a follower one
compaction behind, a restarted node) cuts it the same way and announces the
digests of its pieces (:class:`HeldPieces`, 32 bytes each). The sender cuts
the new snapshot (its :func:`manifest`: offset, length and digest of each
piece), and :func:`plan_delta` marks the pieces the receiver lacks; only
those cross the wire, beside the manifest itself. The receiver's
:class:`DeltaAssembler` writes the new snapshot in order through an ordinary
``SnapshotWriter``, taking each held piece from its old snapshot and each
sent one from the wire, checking every piece against its digest before
writing it, and the writer's commit checks the digest of the whole: a piece
that hashes right but belongs elsewhere cannot slip through.

Costs, per GiB of new snapshot: cutting and hashing it once at the sender
(``benchmarks/dedup.py`` measures the CPU seconds), once for the receiver's
old snapshot (cacheable: it does not change), and reading held pieces back
from the receiver's own disk instead of the network. Resumable: pieces are
written whole, so a writer reopened after a crash continues at the piece
that starts at its offset.

The cut parameters are part of the format (:data:`PIECE_FORMAT`): both ends
must cut alike, or nothing matches (which is slow, never wrong).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator

import attrs
from pyfastcdc import FastCDC

from .errors import SnapshotChunkError
from .protocol import SnapshotStore

#: Average piece size; pieces are between a quarter of it and four times it.
DEFAULT_AVERAGE_PIECE = 16 * 1024
#: Cut and hash parameters: a receiver announces them with its digests.
PIECE_FORMAT = "fastcdc2020-nc1-seed0/sha256"
DIGEST_BYTES = 32
#: Wire bytes per piece in a manifest (length, digest; offsets follow from the lengths).
MANIFEST_BYTES_PER_PIECE = 4 + DIGEST_BYTES


@attrs.frozen
class Piece:
    """Bytes ``[offset, offset + length)`` of a snapshot, whose sha256 is ``digest``."""

    offset: int
    length: int
    digest: bytes = attrs.field(repr=lambda digest: digest.hex()[:12])

    @property
    def end(self) -> int:
        return self.offset + self.length


class _ChunkStream:
    """The ``readinto`` a chunker reads through, over an iterable of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readinto(self, buffer: memoryview) -> int:
        filled = 0
        while filled < len(buffer):
            if not self._pending:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._pending = memoryview(chunk)
                continue
            count = min(len(buffer) - filled, len(self._pending))
            buffer[filled : filled + count] = self._pending[:count]
            self._pending = self._pending[count:]
            filled += count
        return filled


def cut_pieces(chunks: Iterable[bytes], *, average: int = DEFAULT_AVERAGE_PIECE) -> Iterator[tuple[Piece, bytes]]:
    """Each piece of the bytes in ``chunks`` with its data, in order (one piece in memory at a time)."""
    for cut in FastCDC(average).cut_stream(_ChunkStream(chunks)):
        data = bytes(cut.data)  # the chunker reuses its buffer once the next piece is cut
        yield Piece(offset=cut.offset, length=cut.length, digest=hashlib.sha256(data).digest()), data


def manifest(chunks: Iterable[bytes], *, average: int = DEFAULT_AVERAGE_PIECE) -> tuple[Piece, ...]:
    """The pieces of the bytes in ``chunks``, without their data."""
    return tuple(piece for piece, _ in cut_pieces(chunks, average=average))


def store_manifest(store: SnapshotStore, index: int, *, average: int = DEFAULT_AVERAGE_PIECE) -> tuple[Piece, ...]:
    """The pieces of a stored snapshot (read once; the store checks its digest as it streams)."""
    return manifest(store.stream_snapshot(index), average=average)


@attrs.frozen
class HeldPieces:
    """What a receiver announces: the pieces of a snapshot it holds, by digest."""

    index: int
    pieces: tuple[Piece, ...]
    piece_format: str = PIECE_FORMAT

    @classmethod
    def of(cls, store: SnapshotStore, index: int, *, average: int = DEFAULT_AVERAGE_PIECE) -> HeldPieces:
        return cls(index=index, pieces=store_manifest(store, index, average=average))

    def digests(self) -> frozenset[bytes]:
        return frozenset(piece.digest for piece in self.pieces)

    @property
    def wire_bytes(self) -> int:
        """What announcing them costs on the wire: one digest per distinct piece."""
        return DIGEST_BYTES * len(self.digests())

    def locate(self) -> dict[bytes, Piece]:
        """Digest -> where in the held snapshot those bytes are (the first such piece)."""
        found: dict[bytes, Piece] = {}
        for piece in self.pieces:
            found.setdefault(piece.digest, piece)
        return found


@attrs.frozen
class DeltaPlan:
    """The new snapshot's pieces, and which of them the sender must send."""

    pieces: tuple[Piece, ...]
    send: tuple[bool, ...]

    @property
    def size(self) -> int:
        return self.pieces[-1].end if self.pieces else 0

    @property
    def bytes_to_send(self) -> int:
        return sum(piece.length for piece, needed in zip(self.pieces, self.send) if needed)

    @property
    def pieces_to_send(self) -> int:
        return sum(self.send)

    @property
    def manifest_bytes(self) -> int:
        return MANIFEST_BYTES_PER_PIECE * len(self.pieces)


def plan_delta(pieces: tuple[Piece, ...], held: frozenset[bytes], *, piece_format: str = PIECE_FORMAT) -> DeltaPlan:
    """Mark each piece the receiver does not hold; a receiver that cut otherwise holds nothing usable."""
    usable = held if piece_format == PIECE_FORMAT else frozenset()
    return DeltaPlan(pieces=pieces, send=tuple(piece.digest not in usable for piece in pieces))


def pieces_to_send(store: SnapshotStore, index: int, plan: DeltaPlan) -> Iterator[tuple[int, bytes]]:
    """Sender: ``(piece number, data)`` of each piece to send, read in one pass over the snapshot."""
    wanted = [number for number, needed in enumerate(plan.send) if needed]
    if not wanted:
        return
    stream = _ChunkStream(store.stream_snapshot(index))
    position = 0
    for number in wanted:
        piece = plan.pieces[number]
        _skip(stream, piece.offset - position)
        data = _read_exactly(stream, piece.length, index)
        position = piece.end
        yield number, data
    _skip(stream, plan.size - position)  # read to the end: the store checks the digest there


def _read_exactly(stream: _ChunkStream, length: int, index: int) -> bytes:
    buffer = bytearray(length)
    if stream.readinto(memoryview(buffer)) != length:
        raise SnapshotChunkError(f"snapshot {index} ended before a piece of {length} bytes its manifest names")
    return bytes(buffer)


def _skip(stream: _ChunkStream, length: int) -> None:
    scratch = memoryview(bytearray(min(length, 1 << 20)))
    while length > 0:
        count = stream.readinto(scratch[: min(length, len(scratch))])
        if count == 0:
            return
        length -= count


class _HeldReader:
    """Reads held pieces back from the receiver's old snapshot.

    Every piece is checked against its digest, so reads here need not be
    verified by the store; a store built on :class:`~simulator.snapshots.base.BaseSnapshotStore`
    reads the range directly, any other store is streamed (restarted when a
    piece lies behind the stream).
    """

    def __init__(self, store: SnapshotStore, index: int) -> None:
        self._store, self._index = store, index
        open_reader = getattr(store, "_open_reader", None)
        self._ranges = open_reader(store.snapshot_metadata(index)) if open_reader is not None else None
        self._stream: _ChunkStream | None = None
        self._position = 0

    def read(self, piece: Piece) -> bytes:
        if self._ranges is not None:
            return self._ranges.read_at(piece.offset, piece.length)
        if self._stream is None or piece.offset < self._position:
            self._stream, self._position = _ChunkStream(self._store.stream_snapshot(self._index)), 0
        _skip(self._stream, piece.offset - self._position)
        data = _read_exactly(self._stream, piece.length, self._index)
        self._position = piece.end
        return data

    def close(self) -> None:
        if self._ranges is not None:
            self._ranges.close()


class DeltaAssembler:
    """Receiver: writes the new snapshot from held pieces and received ones, in order.

    ``writer`` is an open ``SnapshotWriter`` for the new snapshot (possibly
    resumed: assembly continues at the piece starting at its offset). Feed
    each received piece to :meth:`receive` in order; held pieces in between
    are copied as soon as they are next. :meth:`commit` publishes the
    snapshot once every piece is written (the writer checks the whole digest).
    """

    def __init__(self, store: SnapshotStore, writer, held: HeldPieces, plan: DeltaPlan, *,
                 batch_bytes: int | None = None) -> None:
        if plan.size != writer.size:
            raise SnapshotChunkError(f"a plan of {plan.size} bytes for a snapshot of {writer.size} bytes")
        self.writer, self.plan = writer, plan
        self._where = held.locate()
        self._reader = _HeldReader(store, held.index)
        starts = {piece.offset: number for number, piece in enumerate(plan.pieces)}
        if writer.offset not in starts and writer.offset != plan.size:
            raise SnapshotChunkError(f"the writer stands at offset {writer.offset}, not at a piece boundary")
        self._next = starts.get(writer.offset, len(plan.pieces))
        # Pieces are written in batches of about a store chunk: one durable write each, not one per piece.
        self._batch_bytes = batch_bytes or getattr(store, "chunk_size", 1 << 20)
        self._batch: list[bytes] = []
        self._batched = 0
        #: Bytes taken from the old snapshot, and received, so far.
        self.copied_bytes = 0
        self.received_bytes = 0
        self._copy_held()

    @property
    def expected(self) -> int | None:
        """The number of the piece :meth:`receive` needs next, ``None`` when all are written."""
        return self._next if self._next < len(self.plan.pieces) else None

    def receive(self, number: int, data: bytes) -> None:
        if number != self.expected:
            raise SnapshotChunkError(f"piece {self.expected} expected, got piece {number}")
        self._write(self.plan.pieces[number], data, "received")
        self.received_bytes += len(data)
        self._next += 1
        self._copy_held()

    def commit(self):
        if self.expected is not None:
            raise SnapshotChunkError(f"commit before piece {self.expected} of {len(self.plan.pieces)} arrived")
        self._flush()
        self._reader.close()
        return self.writer.commit()

    def _copy_held(self) -> None:
        while self._next < len(self.plan.pieces) and not self.plan.send[self._next]:
            piece = self.plan.pieces[self._next]
            source = self._where.get(piece.digest)
            if source is None:
                raise SnapshotChunkError(f"piece {self._next} is marked held but the old snapshot has no such piece")
            self._write(piece, self._reader.read(source), "held")
            self.copied_bytes += piece.length
            self._next += 1

    def _write(self, piece: Piece, data: bytes, where: str) -> None:
        if len(data) != piece.length or hashlib.sha256(data).digest() != piece.digest:
            raise SnapshotChunkError(
                f"{where} piece at offset {piece.offset} ({piece.length} bytes) does not match its digest "
                f"{piece.digest.hex()[:12]}"
            )
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= self._batch_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self.writer.write(self.writer.offset, b"".join(self._batch))
            self._batch, self._batched = [], 0


class HeldCopier:
    """Receiver side of a ranged delta transfer: the receiver asks for byte ranges, not pieces.

    The sender only sends the new snapshot's manifest; the receiver compares
    it with the pieces of the snapshot it holds and, going forward from its
    writer's offset, copies each run of held pieces from its own store
    (:meth:`copy_held`, every piece checked against its digest, written in
    batches of about a store chunk) and asks the sender for each run of
    missing bytes (:meth:`missing_until`). The writer's commit checks the
    digest of the whole, so a manifest that lies cannot slip bytes in.
    """

    def __init__(self, store: SnapshotStore, held: HeldPieces, pieces: tuple[Piece, ...], size: int) -> None:
        position = 0
        for number, piece in enumerate(pieces):
            if piece.offset != position or piece.length <= 0:
                raise SnapshotChunkError(
                    f"manifest piece {number} at offset {piece.offset} ({piece.length} bytes): pieces must "
                    f"follow each other from offset 0, the next at {position} expected"
                )
            position = piece.end
        if position != size:
            raise SnapshotChunkError(f"the manifest's pieces cover {position} bytes, the snapshot has {size}")
        self.pieces = pieces
        usable = held.digests() if held.piece_format == PIECE_FORMAT else frozenset()
        self._held = tuple(piece.digest in usable for piece in pieces)
        self._where = held.locate()
        self._starts = [piece.offset for piece in pieces]
        self._store, self._index = store, held.index
        #: Bytes taken from the held snapshot so far.
        self.copied_bytes = 0

    def _piece_at(self, offset: int) -> int:
        """Number of the piece holding byte ``offset`` (``len(pieces)`` at the end)."""
        return bisect_right(self._starts, offset) - 1 if offset < (self.pieces[-1].end if self.pieces else 0) else (
            len(self.pieces))

    @property
    def held_bytes(self) -> int:
        return sum(piece.length for piece, held in zip(self.pieces, self._held) if held)

    def copy_held(self, writer, batch_bytes: int) -> int:
        """Copy the held pieces that start at the writer's offset, in order; return the new offset."""
        number = self._piece_at(writer.offset)
        if number >= len(self.pieces) or self.pieces[number].offset != writer.offset or not self._held[number]:
            return writer.offset
        reader = _HeldReader(self._store, self._index)
        batch: list[bytes] = []
        batched = 0
        try:
            while number < len(self.pieces) and self._held[number]:
                piece = self.pieces[number]
                data = reader.read(self._where[piece.digest])
                if len(data) != piece.length or hashlib.sha256(data).digest() != piece.digest:
                    raise SnapshotChunkError(
                        f"held piece at offset {piece.offset} ({piece.length} bytes) does not match its digest "
                        f"{piece.digest.hex()[:12]}"
                    )
                batch.append(data)
                batched += len(data)
                number += 1
                if batched >= batch_bytes:
                    writer.write(writer.offset, b"".join(batch))
                    self.copied_bytes += batched
                    batch, batched = [], 0
            if batch:
                writer.write(writer.offset, b"".join(batch))
                self.copied_bytes += batched
        finally:
            reader.close()
        return writer.offset

    def missing_until(self, offset: int) -> int:
        """End of the run of bytes the receiver must be sent, starting at ``offset``.

        From ``offset`` (possibly inside a piece, after a resumed partial) to
        the start of the next held piece, or the end of the snapshot.
        """
        number = self._piece_at(offset)
        if number < len(self.pieces) and self.pieces[number].offset < offset:
            number += 1  # the rest of a piece begun earlier is sent, held or not
        while number < len(self.pieces) and not self._held[number]:
            number += 1
        return self.pieces[number].offset if number < len(self.pieces) else (
            self.pieces[-1].end if self.pieces else 0)
