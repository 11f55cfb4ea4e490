"""The sending half of a node's :class:`~.endpoint.StreamingEndpoint` (the leader's side).

Serves :class:`SnapshotRequest` s from the node's store: chunks of the
transfer's chunk size, ``chunks_in_flight`` at a time, paced by
``rate_limit``, at most ``max_concurrent_per_sender`` transfers at once
(the rest wait in arrival order). Ends a transfer — and tells Raft — when
the receiver installed it (FINISH), when it went silent, or when the
snapshot was compacted away or superseded (FAILURE, so Raft offers again).
Mixed into the endpoint; it uses the endpoint's host, store and registry.
"""

from __future__ import annotations

from simulator.raft import SnapshotStatus
from simulator.snapshots import SnapshotStoreError

from simulator.snapshots.dedup import PIECE_FORMAT, store_manifest

from .messages import SnapshotAbort, SnapshotAck, SnapshotManifest, SnapshotManifestRequest, SnapshotRequest
from .protocol import OutgoingTransfer
from .timers import TIME_EPSILON, StreamTimer


class SnapshotSending:
    """Leader-side behaviour of a streaming endpoint; not usable on its own."""

    #: ``(snapshot id, pieces)`` of the last manifest cut (dedup): one snapshot at a time is sent.
    _manifest: tuple[str, tuple] | None = None

    def offered(self, to: int, snapshot_id: str) -> None:
        """Our Raft just offered ``snapshot_id`` to ``to`` (a metadata-only snapshot message).

        If no request for it comes back in time — the offer was lost, or the
        receiver ignored it — Raft must hear FAILURE, or it would wait for that
        follower forever.
        """
        self._offers[to] = snapshot_id
        self.host.schedule(self._send_timeout, StreamTimer("offer_timeout", to, snapshot_id, 0))

    def _on_offer_timeout(self, timer: StreamTimer) -> None:
        if self._offers.get(timer.peer) != timer.snapshot_id:
            return
        del self._offers[timer.peer]
        transfer = self.outgoing.get(timer.peer)
        if transfer is not None and transfer.snapshot_id == timer.snapshot_id:
            return  # it is being streamed
        self.host.event("transfer_failed", to=timer.peer, reason="the offer was never answered")
        self.host.report_snapshot(timer.peer, SnapshotStatus.FAILURE)

    def on_request(self, request: SnapshotRequest) -> None:
        peer = request.from_
        if self._offers.get(peer) == request.snapshot_id:
            del self._offers[peer]
        transfer = self.outgoing.get(peer)
        if transfer is None or transfer.snapshot_id != request.snapshot_id:
            if transfer is not None:
                self._end_outgoing(peer, SnapshotStatus.FAILURE, "replaced by a request for another snapshot")
            problem = self._check_held(request)
            if problem is not None:
                self.host.send(SnapshotAbort(from_=self.node_id, to=peer,
                                             snapshot_id=request.snapshot_id, reason=problem))
                self.host.event("transfer_refused", to=peer, index=request.snapshot_index, reason=problem)
                self.host.report_snapshot(peer, SnapshotStatus.FAILURE)
                return
            if len(self.outgoing) >= self.mode.max_concurrent_per_sender:
                self._waiting[peer] = request
                self.counters["request_queued"] += 1
                return
            transfer = self._new_outgoing(request)
        error = transfer.on_request(request, self.host.now())
        if error is not None:
            self._abort_outgoing(peer, error)
            return
        self._streams.pop(peer, None)
        self._pump(peer)

    def _check_held(self, request: SnapshotRequest) -> str | None:
        if not self.store.has_snapshot(request.snapshot_index):
            held = [s.index for s in self.store.list_snapshots()]
            return f"snapshot {request.snapshot_index} is no longer held (held: {held or 'none'})"
        stored = self.store.snapshot_metadata(request.snapshot_index)
        if stored.snapshot_id != request.snapshot_id or stored.term != request.snapshot_term:
            return (f"snapshot {request.snapshot_index} held is {stored.snapshot_id!r} of term "
                    f"{stored.term}, request named {request.snapshot_id!r} of term {request.snapshot_term}")
        return None

    def _new_outgoing(self, request: SnapshotRequest) -> OutgoingTransfer:
        stored = self.store.snapshot_metadata(request.snapshot_index)
        now = self.host.now()
        transfer = OutgoingTransfer(
            me=self.node_id, to=request.from_, snapshot_index=stored.index, snapshot_term=stored.term,
            snapshot_id=stored.snapshot_id, total_size=stored.size, chunk_size=self.mode.chunk_size,
            window=self.mode.chunks_in_flight, last_activity_at=now,
        )
        self.outgoing[request.from_] = transfer
        self.registry.start(from_=self.node_id, to=request.from_, snapshot_index=stored.index,
                            snapshot_id=stored.snapshot_id, mode="streaming", size=stored.size, now=now)
        self.host.schedule(self._send_timeout, StreamTimer("send_idle", request.from_, stored.snapshot_id, 0))
        return transfer

    @property
    def _send_timeout(self) -> float:
        # A live receiver asks again every idle_timeout without progress; three
        # silent periods mean it is gone (or restarted and forgot): tell Raft,
        # which offers the snapshot again, and the receiver resumes its partial.
        return 3 * self.mode.idle_timeout

    def _pump(self, peer: int) -> None:
        """Send chunks while the window and the rate limit allow."""
        transfer = self.outgoing.get(peer)
        if transfer is not None and transfer.wants_chunk():
            problem = self._superseded(transfer)
            if problem is not None:
                self._abort_outgoing(peer, problem)
                return
        while transfer is not None and transfer.wants_chunk():
            now = self.host.now()
            allowed_at = self._next_send_at.get(peer, now)
            if allowed_at > now:
                self.host.schedule(allowed_at - now,
                                   StreamTimer("send_next", peer, transfer.snapshot_id, 0))
                return
            try:
                data = self._read_chunk(peer, transfer)
            except (SnapshotStoreError, OSError) as error:
                # Compacted away, corrupt or unreadable on disk: end it; Raft offers again.
                self._abort_outgoing(peer, f"cannot read snapshot {transfer.snapshot_index}: {error}")
                return
            chunk = transfer.make_chunk(data)
            self.host.hold_memory(len(data))
            self.registry.sent(peer, transfer.snapshot_id, chunk.offset, len(data), now)
            self.host.send(chunk)
            if self.mode.rate_limit is not None:
                self._next_send_at[peer] = now + len(data) / self.mode.rate_limit

    def _superseded(self, transfer: OutgoingTransfer) -> str | None:
        """Why finishing this transfer is pointless now, or None.

        Its snapshot was compacted away; or a newer one exists and the log no
        longer continues right after this one, so the follower would need the
        newer snapshot anyway. (While the log still continues, finishing the
        older transfer is the faster way to catch up, and it goes on.)
        """
        index = transfer.snapshot_index
        if not self.store.has_snapshot(index):
            held = [snapshot.index for snapshot in self.store.list_snapshots()]
            return f"snapshot {index} was compacted away (held: {held or 'none'})"
        latest = self.store.latest()
        first = self.host.log_first_index()
        if latest is not None and latest.index > index and first > index + 1:
            return (f"snapshot {latest.index} supersedes {index}: the log starts at {first}, "
                    f"so entries after {index} are gone")
        return None

    def _read_chunk(self, peer: int, transfer: OutgoingTransfer) -> bytes:
        position, stream = self._streams.get(peer, (None, None))
        if position != transfer.next_offset:
            stream = rechunk(
                self.store.stream_snapshot(transfer.snapshot_index, transfer.next_offset),
                transfer.chunk_size,
            )
        data = next(stream, b"")
        end = transfer.end_offset
        if end is not None and transfer.next_offset + len(data) > end:
            # A ranged request (dedup): stop at its end; the next range opens a new stream.
            data = data[: end - transfer.next_offset]
            self._streams.pop(peer, None)
            return data
        self._streams[peer] = (transfer.next_offset + len(data), stream)
        return data

    def on_manifest_request(self, request: SnapshotManifestRequest) -> None:
        """Send the snapshot's content-defined pieces (``Streaming(dedup=True)``), cut once per snapshot."""
        problem = self._check_held(request)
        if problem is not None:
            self.host.send(SnapshotAbort(from_=self.node_id, to=request.from_,
                                         snapshot_id=request.snapshot_id, reason=problem))
            return
        if self._manifest is None or self._manifest[0] != request.snapshot_id:
            try:
                pieces = store_manifest(self.store, request.snapshot_index)
            except (SnapshotStoreError, OSError) as error:
                self.host.send(SnapshotAbort(from_=self.node_id, to=request.from_, snapshot_id=request.snapshot_id,
                                             reason=f"cannot read snapshot {request.snapshot_index}: {error}"))
                return
            self._manifest = (request.snapshot_id, tuple((piece.length, piece.digest) for piece in pieces))
        stored = self.store.snapshot_metadata(request.snapshot_index)
        self.host.send(SnapshotManifest(from_=self.node_id, to=request.from_, snapshot_id=request.snapshot_id,
                                        total_size=stored.size, pieces=self._manifest[1],
                                        piece_format=PIECE_FORMAT))

    def on_ack(self, ack: SnapshotAck) -> None:
        transfer = self.outgoing.get(ack.from_)
        if transfer is None or ack.snapshot_id != transfer.snapshot_id:
            if ack.installed and self._offers.get(ack.from_) == ack.snapshot_id:
                # The receiver already held the data (kept across a crash) and installed it
                # without a stream: the offer is answered, and Raft hears it went through.
                del self._offers[ack.from_]
                self.host.report_snapshot(ack.from_, SnapshotStatus.FINISH)
            return
        if ack.installed and ack.offset != transfer.total_size:
            # An install covers the whole snapshot this transfer sends; anything else
            # is not this transfer's install (a forged or garbled ack): never FINISH on it.
            self.counters["mismatched_installed_ack"] += 1
            return
        transfer.on_ack(ack.offset, self.host.now())
        if ack.installed:
            self._end_outgoing(ack.from_, SnapshotStatus.FINISH, "installed")
        else:
            self._pump(ack.from_)

    def _receiver_gave_up(self, abort: SnapshotAbort) -> bool:
        """A receiver we stream to ended the transfer (Raft refused the snapshot): tell our Raft."""
        transfer = self.outgoing.get(abort.from_)
        if transfer is None or transfer.snapshot_id != abort.snapshot_id:
            return False
        self._end_outgoing(abort.from_, SnapshotStatus.FAILURE, f"the receiver gave up: {abort.reason}")
        return True

    def _abort_outgoing(self, peer: int, reason: str) -> None:
        transfer = self.outgoing.get(peer)
        if transfer is not None:
            self.host.send(SnapshotAbort(from_=self.node_id, to=peer,
                                         snapshot_id=transfer.snapshot_id, reason=reason))
        self._end_outgoing(peer, SnapshotStatus.FAILURE, reason)

    def _end_outgoing(self, peer: int, status: SnapshotStatus, reason: str) -> None:
        transfer = self.outgoing.pop(peer, None)
        self._streams.pop(peer, None)
        self._next_send_at.pop(peer, None)
        if transfer is not None:
            self.host.event("transfer_sent" if status is SnapshotStatus.FINISH else "transfer_failed",
                            to=peer, index=transfer.snapshot_index, bytes_sent=transfer.bytes_sent,
                            reason=reason)
            self.host.report_snapshot(peer, status)
        # A freed slot serves the longest-waiting request (dicts keep arrival order).
        if self._waiting and len(self.outgoing) < self.mode.max_concurrent_per_sender:
            next_peer = next(iter(self._waiting))
            self.on_request(self._waiting.pop(next_peer))

    def _on_send_idle(self, timer: StreamTimer) -> None:
        transfer = self.outgoing.get(timer.peer)
        if transfer is None or transfer.snapshot_id != timer.snapshot_id:
            return
        idle = self.host.now() - transfer.last_activity_at
        if idle >= self._send_timeout - TIME_EPSILON:
            self._end_outgoing(timer.peer, SnapshotStatus.FAILURE, f"receiver silent for {idle:.3f} s")
        else:
            self.host.schedule(self._send_timeout - idle, timer)


def rechunk(pieces, size: int):
    """Regroup the store's pieces into chunks of exactly ``size`` bytes (the last may be shorter).

    The transfer's chunk size is the mode's, whatever size the store reads in.
    A piece that is already one whole chunk passes through untouched, and a
    larger one is cut with one copy per chunk: chunk bytes are the bulk of a
    transfer, so each avoidable copy shows in its throughput.
    """
    pending = bytearray()  # the start of a chunk whose rest is in the next piece
    for piece in pieces:
        view = memoryview(piece)
        start = 0
        if pending:
            start = size - len(pending)
            pending += view[:start]
            if len(pending) < size:
                continue
            yield bytes(pending)
            pending = bytearray()
        if start == 0 and len(piece) == size and type(piece) is bytes:
            yield piece
            continue
        while len(piece) - start >= size:
            yield bytes(view[start : start + size])
            start += size
        pending += view[start:]
    if pending:
        yield bytes(pending)
