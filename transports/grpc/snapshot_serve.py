"""Serving ``SnapshotTransfer.TransferSnapshot``: the sender's side of a streamed snapshot.

Theory of operation. The sender does not push: a receiver calls
``TransferSnapshot(SnapshotRequest{snapshot_index, snapshot_term, offset,
snapshot_id, requester, max_chunks})`` and the sender answers with a stream
of ``SnapshotChunk`` read from its :class:`~simulator.snapshots.SnapshotStore`
from ``offset`` on. The bookkeeping is the simulator's, not a copy of it:

- :class:`~transports.streaming.OutgoingTransfer` per (receiver, snapshot):
  each request resets it to the requested offset (which is how a cut
  stream or a restarted receiver resumes) and it wraps every chunk with
  its offset, total size, final flag and versioned checksum (CRC-32C now);
- :class:`~transports.streaming.TransferRegistry` counts every byte sent
  and, when a request starts below what was already sent, how much is sent
  again (``resent_bytes``, ``largest_resend``): the figures a test compares
  with "at most one chunk per chunk in flight".

``max_chunks`` is the receiver's window: it asks for that many chunks per
call and asks again from its new verified offset when they are in, so after
a cut at most that many chunks were sent for nothing. ``max_chunks=0`` (what
a client built from the seed's four fields sends) means "to the end".

``max_bytes`` (a later addition) bounds the same window in bytes: the call
ends before a chunk that would take it past ``max_bytes`` (but always sends
one), so a receiver can ask for a large window of small chunks without
holding a large window of big ones.

All of this runs on the trio thread, so the store is only ever used from
one thread, as its contract says. The gRPC thread does not ask for one
chunk at a time (a thread round trip per chunk was most of the cost of a
stream): it asks for a *batch* of up to ``BATCH_BYTES``, already encoded
for the wire (:meth:`SnapshotServer.next_batch`), and asks for the next
batch before it sends this one, so reading runs ahead of the network by
one batch (see :class:`~.services.SnapshotService`). Reading a chunk from
a disk store is a page-cache read; the store hashes as it streams and
raises ``SnapshotCorruptError`` before the last chunk if the data went bad
on disk.

Which snapshot a request names: the one with ``snapshot_id`` if given,
else the one at ``snapshot_index`` (with ``snapshot_term`` if non-zero),
else (index 0) the newest one held. Anything else is refused with a
gRPC status that names what is held.
"""

from __future__ import annotations

import time

import attrs
import grpc

from simulator.snapshots import SnapshotStore, StoredSnapshot
from transports.streaming import OutgoingTransfer, SnapshotRequest, TransferRegistry

from . import events as ev
from .proto import snapshot_pb2 as spb

#: Window used for an unbounded request (max_chunks=0 or max_bytes=0): "everything".
UNBOUNDED = 1 << 62
#: Chunk bytes read and encoded per hand-off from the trio thread to the gRPC thread.
BATCH_BYTES = 8 * 1024 * 1024


class StreamRefused(Exception):
    """A request the sender cannot serve: a gRPC status code and one line saying why."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@attrs.define(eq=False)
class OpenStream:
    """One running ``TransferSnapshot`` call."""

    transfer: OutgoingTransfer
    snapshot: StoredSnapshot
    chunks: object  # iterator of bytes from the store
    remaining: int
    requester: int
    #: Chunk bytes the call may still send (``max_bytes``); at least one chunk is always sent.
    remaining_bytes: int = UNBOUNDED
    sent_any: bool = False


class SnapshotServer:
    """See the module docstring. One per node; lives on the trio thread."""

    def __init__(self, me: int, store: SnapshotStore, events: ev.EventLog) -> None:
        self.me = me
        self.store = store
        self.events = events
        self.registry = TransferRegistry()
        self.transfers: dict[tuple[int, str], OutgoingTransfer] = {}
        #: Wall time of the last offer or served chunk per receiver (idle offers are retried).
        self.last_activity: dict[int, float] = {}
        self.offered_at: dict[int, float] = {}
        #: (receiver, snapshot id) -> the call serving it now, and the offset its reader is at
        self.streams: dict[tuple[int, str], OpenStream] = {}
        self.readers: dict[tuple[int, str], tuple[int, object]] = {}

    def _find(self, request: spb.SnapshotRequest) -> StoredSnapshot:
        held = self.store.list_snapshots()
        names = [f"{s.index} ({s.snapshot_id})" for s in held] or ["none"]
        if request.snapshot_id:
            found = [s for s in held if s.snapshot_id == request.snapshot_id]
        elif request.snapshot_index:
            found = [s for s in held if s.index == request.snapshot_index
                     and request.snapshot_term in (0, s.term)]
        else:
            found = held[-1:]
        if not found:
            wanted = request.snapshot_id or f"index {request.snapshot_index} term {request.snapshot_term}"
            raise StreamRefused(grpc.StatusCode.NOT_FOUND,
                                f"snapshot {wanted} is not held by node {self.me}; held: {', '.join(names)}")
        return found[-1]

    def open(self, request: spb.SnapshotRequest) -> OpenStream:
        snapshot = self._find(request)
        if request.offset > snapshot.size:
            raise StreamRefused(grpc.StatusCode.OUT_OF_RANGE,
                                f"offset must lie in [0, {snapshot.size}] for snapshot {snapshot.snapshot_id}, "
                                f"got {request.offset}")
        requester = request.requester
        key = (requester, snapshot.snapshot_id)
        now = time.monotonic()
        window = request.max_chunks or UNBOUNDED
        transfer = self.transfers.get(key)
        if transfer is None:
            transfer = self.transfers[key] = OutgoingTransfer(
                me=self.me, to=requester, snapshot_index=snapshot.index, snapshot_term=snapshot.term,
                snapshot_id=snapshot.snapshot_id, total_size=snapshot.size,
                chunk_size=self.store.chunk_size, window=window, last_activity_at=now,
            )
            self.registry.start(from_=self.me, to=requester, snapshot_index=snapshot.index,
                                snapshot_id=snapshot.snapshot_id, mode="streaming", size=snapshot.size, now=now)
            self.events(ev.SNAPSHOT_SERVED, f"snapshot {snapshot.index} ({snapshot.size} bytes) to node "
                                            f"{requester} from offset {request.offset}")
        transfer.window = window
        record = self.registry.get(requester, snapshot.snapshot_id)
        if record is not None and request.offset < record.frontier:
            record.retries += 1
            self.events(ev.TRANSFER_RESUMED, f"node {requester} asks for snapshot {snapshot.index} again from "
                                             f"offset {request.offset} ({record.frontier - request.offset} bytes "
                                             "sent before are sent again)")
        self.registry.requested(requester, snapshot.snapshot_id, request.offset, fresh=False)
        problem = transfer.on_request(SnapshotRequest(
            from_=requester, to=self.me, snapshot_index=snapshot.index, snapshot_term=snapshot.term,
            snapshot_id=snapshot.snapshot_id, offset=request.offset), now)
        if problem is not None:  # the checks above make this unreachable; never serve past it
            raise StreamRefused(grpc.StatusCode.INVALID_ARGUMENT, problem)
        self.last_activity[requester] = now
        stream = OpenStream(transfer, snapshot, self._reader(key, snapshot, request.offset), window, requester,
                            remaining_bytes=request.max_bytes or UNBOUNDED)
        self.streams[key] = stream  # a call still running for this transfer stops at its next chunk
        return stream

    def _reader(self, key, snapshot: StoredSnapshot, offset: int):
        """The store's chunks from ``offset``, continuing the previous call's reader when it
        stopped exactly there: a store hashes the bytes before a later start offset (its
        digest covers the whole snapshot), so reopening at every window would read the
        snapshot quadratically. A resume at another offset opens a new reader."""
        held = self.readers.get(key)
        if held is not None and held[0] == offset:
            return held[1]
        chunks = iter(self.store.stream_snapshot(snapshot.index, offset))
        self.readers[key] = (offset, chunks)
        return chunks

    def next_chunk(self, stream: OpenStream) -> spb.SnapshotChunk | None:
        """The next chunk of ``stream`` as a message, or ``None`` when it is done."""
        chunk = self._next(stream)
        if chunk is None:
            return None
        return spb.SnapshotChunk(data=chunk.data, **self._header_fields(stream, chunk))

    def next_batch(self, stream: OpenStream, max_bytes: int = BATCH_BYTES) -> list[tuple[bytes, bytes]]:
        """The next chunks of ``stream``, at least one and about ``max_bytes`` of data, each as
        its data and its encoded header, to be joined by :func:`encode_chunk` (off the trio
        thread: it is a copy of the data); ``[]`` when the stream is done."""
        batch: list[tuple[bytes, bytes]] = []
        size = 0
        while size < max_bytes:
            chunk = self._next(stream)
            if chunk is None:
                break
            batch.append((chunk.data, spb.SnapshotChunk(**self._header_fields(stream, chunk)).SerializeToString()))
            size += len(chunk.data)
        return batch

    def _header_fields(self, stream: OpenStream, chunk) -> dict:
        return dict(offset=chunk.offset, total_size=chunk.total_size, is_final=chunk.is_final,
                    checksum=chunk.checksum, checksum_version=chunk.checksum_version,
                    snapshot_id=chunk.snapshot_id, snapshot_index=chunk.snapshot_index,
                    snapshot_term=chunk.snapshot_term, sender=self.me, digest=stream.snapshot.digest)

    def _next(self, stream: OpenStream):
        """Read, wrap and count the next chunk of ``stream``; ``None`` when the call is done."""
        transfer = stream.transfer
        if stream.remaining <= 0 or transfer.final_sent:
            return None
        if stream.sent_any and min(transfer.chunk_size, transfer.total_size - transfer.next_offset) \
                > stream.remaining_bytes:
            return None  # the next chunk would take the call past the receiver's max_bytes
        if self.streams.get((stream.requester, transfer.snapshot_id)) is not stream:
            return None  # superseded by a newer request: two calls must not share one reader
        if transfer.total_size == 0:
            data = b""
        else:
            data = next(stream.chunks, None)
            if data is None:
                return None
        transfer.on_ack(transfer.next_offset, time.monotonic())  # window is enforced per call
        chunk = transfer.make_chunk(data if isinstance(data, bytes) else bytes(data))
        key = (stream.requester, chunk.snapshot_id)
        self.readers[key] = (chunk.offset + len(chunk.data), stream.chunks)
        stream.remaining -= 1
        stream.remaining_bytes -= len(chunk.data)
        stream.sent_any = True
        now = time.monotonic()
        self.registry.sent(stream.requester, chunk.snapshot_id, chunk.offset, len(chunk.data), now)
        self.last_activity[stream.requester] = now
        return chunk

    def offered(self, peer: int) -> None:
        now = time.monotonic()
        self.offered_at[peer] = now
        self.last_activity[peer] = now

    def idle_for(self, peer: int) -> float:
        return time.monotonic() - self.last_activity.get(peer, time.monotonic())


def encode_chunk(data: bytes, header: bytes) -> bytes:
    """An encoded ``SnapshotChunk`` header (without data) with ``data`` put first as field 1:
    the bytes a parser reads as ``SnapshotChunk(data=data, ...)`` (protobuf allows fields in
    any order), made with one copy of ``data`` instead of three (into the message, out of it,
    and into the wire). Data first lets a receiver take it without parsing it
    (:func:`~.snapshot_pull.chunk_from_bytes`)."""
    return b"".join((_DATA_TAG, _varint(len(data)), data, header))


#: Field 1 (``data``), wire type 2 (length-delimited).
_DATA_TAG = bytes([(1 << 3) | 2])


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
