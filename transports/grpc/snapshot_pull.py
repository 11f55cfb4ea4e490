"""Pulling a streamed snapshot: the receiver's side of ``SnapshotTransfer``.

Theory of operation. In Streaming mode the leader's Raft snapshot message
carries metadata only (index, term, membership, size, digest, id): an
offer. The receiver keeps one :class:`~transports.streaming.IncomingTransfer`
(the simulator's bookkeeping) and one
:class:`~simulator.snapshots.SnapshotWriter` from its own store, opened
with the offer's identity, so a partial snapshot left by a cut stream *or a
previous life of this process* (``kill -9``) is continued, not restarted.
Then, until every byte is verified::

    TransferSnapshot(index, term, offset=verified_offset, id, requester=me, max_chunks=W, max_bytes=B)
      ─▶ each chunk: IncomingTransfer.check_chunk (offset, size, final flag, checksum)
           ACCEPT     ─▶ advance; writer.write of the run of verified chunks waiting (appended,
                      fsynced, progress recorded) when no further chunk is waiting
           DUPLICATE  ─▶ ignore
           REJECT     ─▶ count (``checksum failed`` / ``chunk refused``), end the call, ask again
      ─▶ call ended early or failed ─▶ ``stream cut`` / ``peer unreachable``, back off, ask again
    writer.commit()  (digest of all bytes = the offer's digest, else ``digest failed``, data dropped;
                      the disk store's read-back of the bytes runs on a worker thread: see _commit)
    ─▶ the offer goes to Raft, whose Ready installs from the store

Nothing half-written is installed: Raft sees the snapshot only after
``commit`` published it complete and verified. Because the request always
starts at the verified offset and asks for ``W`` chunks (``chunks in
flight``) and at most ``window_bytes`` of data (``max_bytes``), a cut costs
at most ``W`` chunks sent again.

Threads. grpcio's blocking iterator is read by one plain thread per call
(:func:`_read_call`), which also parses each message and compares its
CRC-32C with its data (the library releases the GIL for it); it hands every
chunk to the trio thread with ``run_sync_soon`` and never waits for it, so
the network, parsing and checksums and the trio side's checking and writing
overlap, and no chunk costs a thread round trip. The trio side alone decides
(offsets, sizes, final flag; a checksum the reading thread found wrong is
computed again there, to be counted and named), writes and counts, so the
store and the bookkeeping stay on one thread. A call's
hand-off queue holds at most one window.

A new offer for the same snapshot (a re-offer, or a new leader with the
same snapshot id) only updates where to pull from; an offer of another
snapshot in the same or a later term cancels the running pull (the leader
of that term decides what its followers need), and opening its writer
drops the old partial data. Offers of an earlier term never reach here:
the replica hands them to Raft, which refuses stale terms.
"""

from __future__ import annotations

import math
import threading
import time

import attrs
import grpc
import trio
from google.protobuf.message import DecodeError

from simulator.raft import Message
from simulator.snapshots import SnapshotDigestError, SnapshotStore, SnapshotStoreError
from transports.streaming import IncomingTransfer, SnapshotChunk, SnapshotOffer, Verdict
from transports.streaming.messages import checksum_mismatch

from . import events as ev
from .proto import snapshot_pb2 as spb

#: Seconds without a chunk before a call is given up and asked again.
IDLE_TIMEOUT = 15.0
#: Back-off after a failed call: doubles from this, up to MAX_BACKOFF.
FIRST_BACKOFF = 0.2
MAX_BACKOFF = 3.0
#: The method, called with raw replies (parsed by :func:`chunk_from_bytes`).
TRANSFER_SNAPSHOT = "/raftsim.v1.SnapshotTransfer/TransferSnapshot"
#: Chunk bytes asked for per call (``max_bytes``), whatever ``chunks_in_flight`` allows.
#: Each call costs a pipeline drain and refill (measured: one 512 MiB call streamed 1.7x
#: faster than 32 MiB calls), so the window is large; memory stays bounded by QUEUED_BYTES.
WINDOW_BYTES = 64 * 1024 * 1024
#: Verified chunk bytes written (and fsynced, by a disk store) in one ``SnapshotWriter.write``:
#: consecutive chunks already waiting are written together, for fewer syscalls and fsyncs. A
#: crash before the write re-sends at most this much, which is less than one window.
WRITE_BYTES = 8 * 1024 * 1024
#: Chunk bytes the reading thread hands over before it waits for the trio side to take them
#: (always at least one chunk): past that, HTTP/2 flow control holds the sender back instead
#: of this process buffering a window.
QUEUED_BYTES = 8 * 1024 * 1024


@attrs.define(eq=False)
class Pull:
    """One running pull: the bookkeeping, the offer message to hand Raft, its task's scope."""

    transfer: IncomingTransfer
    offer_message: Message
    resumed_from: int
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    outcome: str = "in_progress"
    last_failure: str | None = None  # the named reason of the last failed call, if it failed
    #: Bytes written durably (the writer's offset): what a restart resumes from. The
    #: transfer's ``verified_offset`` runs ahead of it by the run being written.
    written: int = 0


def chunk_from_wire(chunk: spb.SnapshotChunk, me: int, data=None) -> SnapshotChunk:
    return SnapshotChunk(
        from_=chunk.sender, to=me, snapshot_index=chunk.snapshot_index, snapshot_term=chunk.snapshot_term,
        snapshot_id=chunk.snapshot_id, offset=chunk.offset, total_size=chunk.total_size,
        is_final=chunk.is_final, checksum=chunk.checksum, data=chunk.data if data is None else data,
        checksum_version=chunk.checksum_version or 1,  # senders before the field used CRC-32
    )


class GarbageChunk(ValueError):
    """A reply on the snapshot stream that is not a ``SnapshotChunk``."""


def chunk_from_bytes(raw: bytes, me: int) -> SnapshotChunk:
    """Parse one encoded ``SnapshotChunk`` without copying its data.

    protobuf copies a ``bytes`` field every time it is read, and a chunk's data
    is most of the message; so when the message starts with field 1 (``data``,
    which is how a raftsim sender encodes it) the data is taken as a view of
    ``raw`` and only the small rest is parsed. Any other layout (a sender in
    another language may order fields differently) is parsed whole; both give
    what protobuf would, including "the last occurrence of a field wins".
    """
    try:
        if raw[:1] == _DATA_TAG:
            length, start = _read_varint(raw, 1)
            end = start + length
            if end <= len(raw):
                header = spb.SnapshotChunk.FromString(raw[end:])
                if not header.data:  # no second data field later in the message
                    return chunk_from_wire(header, me, memoryview(raw)[start:end])
        return chunk_from_wire(spb.SnapshotChunk.FromString(raw), me)
    except (DecodeError, IndexError) as error:
        raise GarbageChunk(f"{len(raw)} bytes that are not a SnapshotChunk: {error}") from None


#: Field 1 (``data``), wire type 2 (length-delimited), as the first byte of a message.
_DATA_TAG = b"\x0a"


def _read_varint(raw: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if shift > 63:
            raise DecodeError("varint longer than 10 bytes")
        byte = raw[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def _failure_name(code, details: str) -> str:
    """Name a failed call: a connection that could not be made is an unreachable peer; one
    that broke under a running stream (socket closed, stream reset) is a cut stream."""
    if code is grpc.StatusCode.UNAVAILABLE and "connect" in details.lower():
        return ev.PEER_UNREACHABLE
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.FAILED_PRECONDITION):
        return ev.CHUNK_REFUSED
    return ev.STREAM_CUT


class _ByteBudget:
    """Bytes handed over and not yet taken, shared by a reading thread and the trio side."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = threading.Condition()

    def take(self, count: int, timeout: float) -> bool:
        """Count ``count`` more bytes as handed over, once they fit (or nothing else waits);
        ``False`` if they did not within ``timeout`` seconds."""
        with self._changed:
            fits = self._changed.wait_for(lambda: self.used == 0 or self.used + count <= self.limit, timeout)
            if fits:
                self.used += count
            return fits

    def give(self, count: int) -> None:
        with self._changed:
            self.used -= count
            self._changed.notify_all()


def _read_call(call, token: trio.lowlevel.TrioToken, send: trio.MemorySendChannel, queued: _ByteBudget,
               given_up: threading.Event, me: int, max_chunks: int, max_bytes: int) -> None:
    """The reading thread of one call: each chunk, parsed (:func:`chunk_from_bytes`), goes to
    ``send`` as it arrives, with whether its checksum matched its data (checked here, beside the
    network); then ``None`` when the stream ended, or what ended it (the
    ``grpc.RpcError``, or a :class:`GarbageChunk`). Stops after one window (``max_chunks``
    chunks, or the chunk that reaches ``max_bytes``), whatever the sender does, so the
    hand-off queue never holds more than that; and waits while ``QUEUED_BYTES`` are handed
    over and not yet taken (the trio side gives back to ``queued`` what it takes)."""

    def hand_over(item) -> None:
        try:
            send.send_nowait(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the call was given up on the trio side

    count = size = 0
    item = None
    try:
        for raw in call:
            chunk = chunk_from_bytes(raw, me)
            # Checked here, beside the network, not on the trio thread that checks everything
            # else (measured, memory to memory, 256 MiB: faster in each of 4 interleaved pairs,
            # 1.10-1.39x, median 406 against 362 MB/s);
            # a mismatch is left for the trio side to find again, count and name.
            matched = checksum_mismatch(chunk.data, chunk.checksum, chunk.checksum_version) is None
            while not queued.take(len(chunk.data), timeout=0.5):
                if given_up.is_set():
                    return  # nobody takes chunks any more
            count += 1
            size += len(chunk.data)
            token.run_sync_soon(hand_over, (chunk, matched))
            if count >= max_chunks or size >= max_bytes:
                break
    except (grpc.RpcError, GarbageChunk) as error:
        item = error
    except trio.RunFinishedError:
        return
    try:
        token.run_sync_soon(hand_over, item)
    except trio.RunFinishedError:
        pass


class _Writes:
    """A run of consecutive verified chunks not yet written, and the one write in progress.

    A write (digest of the bytes, pwrite, fsync: most of a disk pull's time) runs on its
    own thread while the trio side goes on taking and checking the next chunks; the next
    write starts only when it is done, so writes stay in order, one at a time. The writer
    is never used by two threads at once: the trio side touches it again (``commit``, or a
    new offer dropping its partial data) only after :meth:`drain`, or under ``lock``, which
    a write holds and which makes a write of a superseded pull do nothing.
    """

    def __init__(self, writer, pull: Pull, lock: threading.Lock) -> None:
        self.writer = writer
        self.pull = pull
        self.lock = lock
        self.offset = 0
        self.pieces: list = []
        self.size = 0
        self._done: trio.Event | None = None
        self._error: BaseException | None = None

    def add(self, offset: int, data) -> None:
        if not self.pieces:
            self.offset = offset
        self.pieces.append(data)
        self.size += len(data)

    async def flush(self) -> None:
        """Start writing the run (after the write in progress, if any)."""
        if not self.pieces:
            return
        await self.wait()
        data = self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)
        offset, self.pieces, self.size = self.offset, [], 0
        done = self._done = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def write() -> None:
            try:
                with self.lock:
                    if self.pull.outcome == "in_progress":
                        self.pull.written = self.writer.write(offset, data)
            except BaseException as error:  # noqa: BLE001 - raised on the trio side by wait()
                self._error = error
            try:
                token.run_sync_soon(done.set)
            except trio.RunFinishedError:
                pass

        threading.Thread(target=write, name="snapshot-write", daemon=True).start()

    async def wait(self) -> None:
        """Wait for the write in progress; raise what it raised."""
        if self._done is not None:
            await self._done.wait()
            self._done = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def drain(self) -> None:
        """Write what is left and wait for it: the writer's offset is the verified offset."""
        await self.flush()
        await self.wait()


class SnapshotPuller:
    """See the module docstring. ``deliver`` hands the verified offer to Raft (trio thread)."""

    def __init__(self, me: int, store: SnapshotStore, events: ev.EventLog, *, channel_to, deliver,
                 chunks_in_flight: int = 64, window_bytes: int = WINDOW_BYTES) -> None:
        self.me = me
        self.store = store
        self.events = events
        self.channel_to = channel_to  # peer id -> grpc.Channel
        self.deliver = deliver
        self.chunks_in_flight = chunks_in_flight
        self.window_bytes = window_bytes
        self.current: Pull | None = None
        #: Held by a write of verified chunks (:class:`_Writes`), taken to supersede a pull.
        self.write_lock = threading.Lock()
        self.finished: list[Pull] = []
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await trio.sleep_forever()

    def on_offer(self, message: Message) -> None:
        meta = message.snapshot.metadata
        try:
            offer = SnapshotOffer(source=message.from_, index=meta.index, term=meta.term, size=meta.size,
                                  digest=meta.digest, snapshot_id=meta.snapshot_id)
        except ValueError as error:
            self.events(ev.GARBAGE, f"snapshot offer from node {message.from_}: {error}")
            return
        if self.store.has_snapshot(offer.index) and self.store.snapshot_metadata(offer.index).digest == offer.digest:
            self.deliver(message)  # already here (pulled before a restart, or a repeated offer)
            return
        current = self.current
        if current is not None and current.transfer.offer.snapshot_id == offer.snapshot_id:
            current.transfer.change_source(offer.source)
            current.offer_message = message
            return
        if current is not None:
            if message.term < current.offer_message.term:
                return  # from a leader of an earlier term: the current offer stands
            # Another snapshot, offered by the leader of this term or a later one: it decides.
            with self.write_lock:  # waits for a write in progress; later ones do nothing
                current.scope.cancel()
                current.outcome = "superseded"
            self.finished.append(current)
        if self._nursery is None:
            return
        try:
            writer = self.store.open_writer(offer.index, term=offer.term, size=offer.size, digest=offer.digest,
                                            conf_state=None, snapshot_id=offer.snapshot_id)
        except SnapshotStoreError as error:
            self.events(ev.CHUNK_REFUSED, f"cannot receive snapshot {offer.index}: {error}")
            return
        now = time.monotonic()
        transfer = IncomingTransfer(me=self.me, offer=offer, verified_offset=writer.offset,
                                    started_at=now, last_progress_at=now)
        pull = self.current = Pull(transfer, message, resumed_from=writer.offset, written=writer.offset)
        if writer.offset:
            self.events(ev.TRANSFER_RESUMED, f"snapshot {offer.index} from node {offer.source}: "
                                             f"{writer.offset} of {offer.size} bytes kept from before")
        else:
            self.events(ev.TRANSFER_STARTED, f"snapshot {offer.index} ({offer.size} bytes) from node {offer.source}")
        self._nursery.start_soon(self._pull, pull, writer)

    async def _pull(self, pull: Pull, writer) -> None:
        transfer = pull.transfer
        backoff = FIRST_BACKOFF
        with pull.scope:
            while not transfer.complete:
                before = transfer.verified_offset
                failure = await self._one_call(pull, writer)
                if transfer.verified_offset > before:
                    backoff = FIRST_BACKOFF
                if failure is not None and not transfer.complete:
                    transfer.retries += 1
                    await trio.sleep(backoff)
                    backoff = min(2 * backoff, MAX_BACKOFF)
            try:
                published = await self._commit(pull, writer)
            except SnapshotDigestError as error:
                pull.outcome = "aborted"
                self.events(ev.DIGEST_FAILED, str(error))
                return
            finally:
                if self.current is pull:
                    self.current = None
                if not any(done is pull for done in self.finished):  # a superseding offer adds it itself
                    self.finished.append(pull)
            if not published:
                return
            pull.outcome = "installed"
            offer = transfer.offer
            self.events(ev.SNAPSHOT_INSTALLED, f"snapshot {offer.index} ({offer.size} bytes) verified, "
                                               f"resumed from {pull.resumed_from}, {transfer.retries} retries")
            self.deliver(pull.offer_message)

    async def _commit(self, pull: Pull, writer) -> bool:
        """Verify and publish the complete pull; ``False`` if an offer superseded it meanwhile.

        A disk store reads every byte back and hashes it before it publishes: seconds for
        a large snapshot that is not in the page cache, during which this thread would
        answer no heartbeat and no Raft message, and the node's election timer could run
        out. So that read-back (``CommitCheck.run``, which touches the file only) runs on
        a worker thread, and the publish (the store's bookkeeping) here after it. The
        thread is waited for even when the pull is cancelled, so nothing else uses the
        writer while it runs; an offer that superseded the pull meanwhile has opened its
        own writer, and this one then publishes nothing. A writer that cannot commit in
        steps (a store written from scratch) commits here at once.
        """
        prepare = getattr(writer, "prepare_commit", None)
        if prepare is None:
            writer.commit()
            return True
        check = prepare()
        await trio.to_thread.run_sync(check.run, thread_name=f"node{self.me}-read-back")
        if pull.outcome == "superseded":
            return False
        try:
            writer.commit(verified=check)
        except SnapshotDigestError:
            raise
        except SnapshotStoreError as error:
            # Superseded meanwhile by something other than an offer (the node saved a
            # snapshot at this index itself): the store is the newer writer's; say so, go on.
            pull.outcome = "superseded"
            self.events(ev.CHUNK_REFUSED, f"snapshot {pull.transfer.offer.index} not installed: {error}")
            return False
        return True

    async def _one_call(self, pull: Pull, writer) -> str | None:
        """One ``TransferSnapshot`` call; returns why it ended early, or ``None``.

        Verified chunks are written in runs (:class:`_Writes`), on a writing thread
        beside the receiving: a run is started whenever no further chunk is waiting
        (or it reached ``WRITE_BYTES``), and all are written before the call returns;
        a cancelled call (superseded, shutting down) drops the run not yet started.
        """
        writes = _Writes(writer, pull, self.write_lock)
        outcome = await self._receive(pull, writes)
        await writes.drain()
        return outcome

    async def _receive(self, pull: Pull, writes: _Writes) -> str | None:
        transfer = pull.transfer
        offer = transfer.offer
        request = spb.SnapshotRequest(snapshot_index=offer.index, snapshot_term=offer.term,
                                      offset=transfer.verified_offset, snapshot_id=offer.snapshot_id,
                                      requester=self.me, max_chunks=self.chunks_in_flight,
                                      max_bytes=self.window_bytes)
        try:
            call = self.channel_to(offer.source).unary_stream(
                TRANSFER_SNAPSHOT, request_serializer=spb.SnapshotRequest.SerializeToString,
                response_deserializer=None)(request)  # raw bytes: see chunk_from_bytes
        except KeyError as error:
            self.events(ev.PEER_UNREACHABLE, str(error))
            return "no address"
        send, arrivals = trio.open_memory_channel(math.inf)  # bounded by ``queued``: see _read_call
        queued, given_up = _ByteBudget(QUEUED_BYTES), threading.Event()
        threading.Thread(target=_read_call, args=(call, trio.lowlevel.current_trio_token(), send, queued, given_up,
                                                  self.me, self.chunks_in_flight, self.window_bytes),
                         name=f"node{self.me}-pull", daemon=True).start()
        received = received_bytes = last_size = 0
        try:
            while not transfer.complete:
                with trio.move_on_after(IDLE_TIMEOUT) as idle:
                    wire = await arrivals.receive()
                if idle.cancelled_caught:
                    self.events(ev.STREAM_CUT, f"snapshot {offer.index} from node {offer.source}: no chunk "
                                               f"for {IDLE_TIMEOUT:g} s at offset {transfer.verified_offset}")
                    return "idle"
                if isinstance(wire, grpc.RpcError):
                    raise wire
                matched = False
                if isinstance(wire, tuple):
                    wire, matched = wire
                    queued.give(len(wire.data))
                if isinstance(wire, GarbageChunk):
                    self.events(ev.GARBAGE, f"snapshot {offer.index} from node {offer.source}: {wire}")
                    return ev.GARBAGE
                if wire is None:
                    if received >= self.chunks_in_flight or received_bytes + last_size > self.window_bytes:
                        break  # the sender sent the whole window
                    self.events(ev.STREAM_CUT, f"snapshot {offer.index} from node {offer.source}: stream ended "
                                               f"at offset {transfer.verified_offset} of {offer.size}")
                    return "ended early"
                received += 1
                last_size = len(wire.data)
                received_bytes += last_size
                verdict, detail = transfer.check_chunk(wire, checksum_matched=matched)
                if verdict is Verdict.REJECT:
                    name = ev.CHECKSUM_FAILED if "checksum" in detail else ev.CHUNK_REFUSED
                    self.events(name, f"snapshot {offer.index} from node {offer.source}: {detail}")
                    return name
                if verdict is Verdict.ACCEPT:
                    transfer.advance(len(wire.data), time.monotonic())  # what check_chunk expects next
                    writes.add(wire.offset, wire.data)
                    if not arrivals.statistics().current_buffer_used or writes.size >= WRITE_BYTES:
                        await writes.flush()
            pull.last_failure = None
            return None
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else None
            details = (error.details() if hasattr(error, "details") else "") or ""
            name = _failure_name(code, details)
            # A dead sender fails every retry the same way: one line per outage, every one counted.
            repeated = name == pull.last_failure
            pull.last_failure = name
            self.events(name, log=not repeated, detail=f"snapshot {offer.index} from node {offer.source} at "
                                                      f"offset {transfer.verified_offset}: "
                                                      f"{code.name.lower() if code else error}: {details}")
            return "failed"
        finally:
            given_up.set()
            call.cancel()  # ends the reading thread if it still waits for the stream

    def progress(self) -> list[Pull]:
        pulls = list(self.finished[-8:])
        if self.current is not None:
            pulls.append(self.current)
        return pulls
