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

All of this runs on the trio thread (the gRPC thread asks for one chunk at
a time through ``trio.from_thread``), so the store is only ever used from
one thread, as its contract says. Reading a chunk from a disk store is a
page-cache read; the store hashes as it streams and raises
``SnapshotCorruptError`` before the last chunk if the data went bad on disk.

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

#: Window used for an unbounded request (max_chunks=0): "everything".
UNBOUNDED = 1 << 40


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
        stream = OpenStream(transfer, snapshot, self._reader(key, snapshot, request.offset), window, requester)
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
        """The next chunk of ``stream`` as it goes on the wire, or ``None`` when it is done."""
        transfer = stream.transfer
        if stream.remaining <= 0 or transfer.final_sent:
            return None
        if self.streams.get((stream.requester, transfer.snapshot_id)) is not stream:
            return None  # superseded by a newer request: two calls must not share one reader
        if transfer.total_size == 0:
            data = b""
        else:
            data = next(stream.chunks, None)
            if data is None:
                return None
        transfer.on_ack(transfer.next_offset, time.monotonic())  # window is enforced per call
        chunk = transfer.make_chunk(bytes(data))
        key = (stream.requester, chunk.snapshot_id)
        self.readers[key] = (chunk.offset + len(chunk.data), stream.chunks)
        stream.remaining -= 1
        now = time.monotonic()
        self.registry.sent(stream.requester, chunk.snapshot_id, chunk.offset, len(chunk.data), now)
        self.last_activity[stream.requester] = now
        return spb.SnapshotChunk(
            data=chunk.data, offset=chunk.offset, total_size=chunk.total_size, is_final=chunk.is_final,
            checksum=chunk.checksum, checksum_version=chunk.checksum_version, snapshot_id=chunk.snapshot_id, snapshot_index=chunk.snapshot_index,
            snapshot_term=chunk.snapshot_term, sender=self.me, digest=stream.snapshot.digest,
        )

    def offered(self, peer: int) -> None:
        now = time.monotonic()
        self.offered_at[peer] = now
        self.last_activity[peer] = now

    def idle_for(self, peer: int) -> float:
        return time.monotonic() - self.last_activity.get(peer, time.monotonic())
