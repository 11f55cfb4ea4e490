"""Follower pull, the moving parts: a streaming endpoint whose followers read from a shared store.

:class:`PullingEndpoint` is the :class:`~.endpoint.StreamingEndpoint` of a
node in a ``Streaming(pull=store)`` cluster. Offers, requests, the writer
into the node's own store, timeouts, installing and reporting to Raft are
the endpoint's; what changes (bookkeeping in :mod:`.pull`)::

    leader:   request ─▶ upload to the shared store once ─▶ SnapshotLocation(location, chunk CRCs)
    follower: location ─▶ ranged read at the verified offset ─▶ check CRC ─▶ write durably ─▶ ack
              ─▶ … (one chunk per read time) ─▶ commit (digest) ─▶ Raft installs ─▶ ack(installed)

The run's chunk faults (``cluster.fail_chunk``: drop, corrupt, delay, cut,
crash) apply to pulled chunks as to streamed ones, through the host's
``pulled_chunk_fate``: a lost chunk is asked for again when the receiver's
patience runs out, exactly as in leader streaming.

A read that fails (store unavailable, connection reset) or returns bytes
that fail their CRC is retried from the verified offset after a backoff;
after ``max_idle_retries`` failures in a row the follower gives up, keeping
its partial data, and the leader's Raft (which stops hearing acks) offers
the snapshot again later. A follower whose leader dies keeps reading:
the data is in the store, not on the leader.

Reads are synchronous calls on the node's own task; the time they take is
modelled (``pull_latency``, ``pull_bandwidth``, a ``FaultyStore``'s
``read_delay``), never measured, so runs stay deterministic.
"""

from __future__ import annotations

from typing import Protocol

from simulator.raft import SnapshotStatus
from simulator.snapshots import SnapshotStoreError

from .endpoint import StreamingEndpoint, StreamSettings
from .messages import SnapshotAbort, SnapshotAck, SnapshotChunk, SnapshotRequest, chunk_checksum
from .protocol import Outcome, SnapshotOffer, Verdict
from .pull import PullDownload, SnapshotLocation, chunk_checksums
from .sending import rechunk
from .timers import StreamTimer

class PullSettings(StreamSettings, Protocol):
    """The settings of a pulling endpoint: a ``transports.Streaming`` value with ``pull`` set."""

    pull: object  # the shared SnapshotStore
    pull_latency: float
    pull_bandwidth: float | None
    pull_keep: int


#: What a failing store raises: its own errors, or the OS's for a local one.
_STORE_FAILURES = (SnapshotStoreError, OSError)


class PullingEndpoint(StreamingEndpoint):
    """See the module docstring. One per node; ``mode.pull`` is the shared store."""

    mode: PullSettings

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shared = self.mode.pull
        self._download: PullDownload | None = None
        self._pull_stream = None  # (offset, iterator of chunks) from the shared store
        self._pull_generation = 0
        self._published: dict[str, tuple[str, tuple[int, ...]]] = {}  # snapshot id -> location, CRCs

    # -- leader: publish once, answer with the location ---------------------------------

    def on_request(self, request: SnapshotRequest) -> None:
        peer = request.from_
        if self._offers.get(peer) == request.snapshot_id:
            del self._offers[peer]
        problem = self._check_held(request)
        if problem is not None:
            self._refuse(request, problem)
            return
        transfer = self.outgoing.get(peer)
        if transfer is None or transfer.snapshot_id != request.snapshot_id:
            if transfer is not None:
                self._end_outgoing(peer, SnapshotStatus.FAILURE, "replaced by a request for another snapshot")
            transfer = self._new_outgoing(request)
        try:
            location, checksums = self._publish(request.snapshot_index)
        except _STORE_FAILURES as error:
            # No abort message: the follower keeps its partial data and asks again when
            # its patience runs out; Raft hears FAILURE and offers the snapshot again.
            self._end_outgoing(peer, SnapshotStatus.FAILURE, f"cannot publish snapshot "
                                                             f"{request.snapshot_index} to the shared store: {error}")
            return
        transfer.last_activity_at = self.host.now()
        self.host.send(SnapshotLocation(
            from_=self.node_id, to=peer, snapshot_index=transfer.snapshot_index,
            snapshot_term=transfer.snapshot_term, snapshot_id=transfer.snapshot_id, location=location,
            total_size=transfer.total_size, chunk_size=self.mode.chunk_size, checksums=checksums,
        ))

    def _refuse(self, request: SnapshotRequest, problem: str) -> None:
        self.host.send(SnapshotAbort(from_=self.node_id, to=request.from_,
                                     snapshot_id=request.snapshot_id, reason=problem))
        self.host.event("transfer_refused", to=request.from_, index=request.snapshot_index, reason=problem)
        self.host.report_snapshot(request.from_, SnapshotStatus.FAILURE)

    def _publish(self, index: int) -> tuple[str, tuple[int, ...]]:
        """Put snapshot ``index`` in the shared store unless it is there; its location and CRCs."""
        stored = self.store.snapshot_metadata(index)
        known = self._published.get(stored.snapshot_id)
        if known is not None and self.shared.has_snapshot(index):
            return known
        if self.shared.has_snapshot(index):
            shared = self.shared.snapshot_metadata(index)
            if shared.digest != stored.digest:
                raise SnapshotStoreError(
                    f"the shared store holds another snapshot at index {index} (digest {shared.digest}, "
                    f"ours {stored.digest}); the same data expected"
                )
        else:
            # Streamed chunk by chunk from our store: never the whole snapshot in memory.
            self.shared.save_snapshot(index, self.store.stream_snapshot(index), term=stored.term,
                                      conf_state=stored.conf_state, snapshot_id=stored.snapshot_id)
            location = self.shared.snapshot_metadata(index).location
            self.host.event("snapshot_published", index=index, size=stored.size, location=location)
            # Older snapshots in the shared store are of no use once a newer one is there.
            self.shared.compact_snapshots(self.mode.pull_keep)
        location = self.shared.snapshot_metadata(index).location
        checksums = chunk_checksums(rechunk(self.store.stream_snapshot(index), self.mode.chunk_size))
        self._published = {stored.snapshot_id: (location, checksums)}  # the newest is all that is asked for
        return location, checksums

    def on_ack(self, ack: SnapshotAck) -> None:
        transfer = self.outgoing.get(ack.from_)
        if transfer is None or ack.snapshot_id != transfer.snapshot_id:
            return
        if ack.installed and ack.offset != transfer.total_size:
            self.counters["mismatched_installed_ack"] += 1  # not this transfer's install
            return
        transfer.on_ack(ack.offset, self.host.now())
        transfer.last_activity_at = self.host.now()  # an ack is news even when it repeats an offset
        if ack.installed:
            self._end_outgoing(ack.from_, SnapshotStatus.FINISH, "installed")
        # No pump: the follower reads the bytes itself.

    # -- follower: read from the store, chunk by chunk -----------------------------------

    def _start_incoming(self, offer: SnapshotOffer, message) -> None:
        super()._start_incoming(offer, message)
        record = self.registry.get(self.node_id, offer.snapshot_id)
        if record is not None:
            record.mode = "pull"

    def _on_location(self, location: SnapshotLocation) -> None:
        transfer = self.incoming
        if transfer is None or location.snapshot_id != transfer.offer.snapshot_id:
            self.counters["stray_location"] += 1
            return
        problem = PullDownload.check_location(location, size=transfer.offer.size,
                                              snapshot_id=transfer.offer.snapshot_id)
        if problem is not None:
            self.counters["bad_location"] += 1
            self.host.event("transfer_refused", index=transfer.offer.index, reason=problem)
            return
        self._download = PullDownload(location, self.mode.pull_latency, self.mode.pull_bandwidth)
        self._pull_stream = None
        self._pull_generation += 1
        self.host.event("pull_started", source=location.from_, index=location.snapshot_index,
                        offset=transfer.verified_offset, location=location.location)
        self._schedule_pull(self._download.read_time(self._download.next_length(transfer.verified_offset),
                                                     self._read_delay()))

    def _read_delay(self) -> float:
        # A FaultyStore models a slow store with this; any other store has none.
        return float(getattr(self.shared, "read_delay", 0.0))

    def _schedule_pull(self, delay: float) -> None:
        transfer = self.incoming
        self.host.schedule(delay, StreamTimer("pull_next", transfer.offer.source, transfer.offer.snapshot_id,
                                              self._pull_generation))

    def _read(self, index: int, offset: int) -> bytes:
        position, stream = self._pull_stream or (None, None)
        if position != offset:
            # A ranged read from the verified offset: nothing before it is fetched again.
            stream = rechunk(self.shared.stream_snapshot(index, offset), self._download.location.chunk_size)
        data = next(stream, b"")
        self._pull_stream = (offset + len(data), stream)
        return data

    def _on_pull(self, timer: StreamTimer) -> None:
        transfer, download = self.incoming, self._download
        if (transfer is None or download is None or timer.generation != self._pull_generation
                or timer.snapshot_id != transfer.offer.snapshot_id):
            return
        offset, now = transfer.verified_offset, self.host.now()
        try:
            data = self._read(transfer.offer.index, offset)
        except _STORE_FAILURES as error:
            self._pull_failed(f"reading {download.location.location} at offset {offset} failed: {error}")
            return
        self.host.hold_memory(len(data))
        self.registry.sent(self.node_id, transfer.offer.snapshot_id, offset, len(data), now)
        fate = self._fate(transfer, offset, data)
        if fate is None:
            # Lost on the way, like a streamed chunk: the idle timer asks again from the
            # verified offset (and a new request ends a cut stream).
            return
        data, late = fate
        verdict, detail = download.check(offset, data)
        if verdict is not Verdict.ACCEPT:
            self.counters["rejected_chunk"] += 1
            self.host.event("chunk_rejected", source=transfer.offer.source, offset=offset, reason=detail)
            self._pull_failed(detail)
            return
        try:
            self._writer.write(offset, data)
        except _STORE_FAILURES as error:  # OSError: a full or failing disk; retried after a back-off
            self._pull_failed(f"writing to the node's store failed: {error}")
            return
        transfer.advance(len(data), now)
        download.succeeded()
        self._idle_retries = 0
        record = self.registry.get(self.node_id, transfer.offer.snapshot_id)
        if record is not None:
            record.bytes_done = transfer.verified_offset
            record.updated_at = now
        self.host.event("transfer_progress", source=transfer.offer.source, index=transfer.offer.index,
                        offset=transfer.verified_offset, size=transfer.offer.size)
        self.host.send(SnapshotAck(from_=self.node_id, to=transfer.offer.source,
                                   snapshot_id=transfer.offer.snapshot_id, offset=transfer.verified_offset))
        if transfer.complete:
            self._pull_stream = None
            self._download = None
            self._complete()
        else:
            self._schedule_pull(download.read_time(download.next_length(transfer.verified_offset),
                                                   self._read_delay() + late))

    def _fate(self, transfer, offset: int, data: bytes) -> tuple[bytes, float] | None:
        """The chunk faults of the run (``cluster.fail_chunk``) apply to pulled chunks as to
        streamed ones: ``None`` if this one is lost, else its bytes (maybe corrupted) and how
        late it is. Duplicates of a read change nothing."""
        judge = getattr(self.host, "pulled_chunk_fate", None)
        if judge is None:
            return data, 0.0
        offer = transfer.offer
        verdict = judge(SnapshotChunk(
            from_=offer.source, to=self.node_id, snapshot_index=offer.index, snapshot_term=offer.term,
            snapshot_id=offer.snapshot_id, offset=offset, total_size=offer.size,
            is_final=offset + len(data) == offer.size, checksum=chunk_checksum(data), data=data,
        ))
        if verdict is None:
            return data, 0.0
        if not verdict.copies:
            self.counters["pulled_chunk_lost"] += 1
            self.host.event("chunk_lost", source=offer.source, offset=offset, reason=verdict.reason)
            self._pull_stream = None
            return None
        copy, delay = verdict.copies[0]
        return copy.data, delay

    def _pull_failed(self, reason: str) -> None:
        transfer, download = self.incoming, self._download
        self._pull_stream = None  # read again from the verified offset
        transfer.retries += 1
        record = self.registry.get(self.node_id, transfer.offer.snapshot_id)
        if record is not None:
            record.retries += 1
        wait = download.failed(self.mode.idle_timeout)
        if download.failures_in_a_row > self.mode.max_idle_retries:
            self._download = None
            self._finish_incoming(Outcome.ABORTED, f"{download.failures_in_a_row} reads failed in a row; "
                                                   f"last: {reason}")
            return
        self.host.event("pull_retry", index=transfer.offer.index, offset=transfer.verified_offset,
                        attempt=download.failures_in_a_row, reason=reason)
        self._schedule_pull(wait)

    # -- dispatch -----------------------------------------------------------------------

    def on_timer(self, timer: StreamTimer) -> None:
        if timer.purpose == "pull_next":
            self._on_pull(timer)
        else:
            super().on_timer(timer)

    def on_stream_message(self, message) -> None:
        if isinstance(message, SnapshotLocation):
            self._on_location(message)
        else:
            super().on_stream_message(message)

    def crashed(self) -> None:
        super().crashed()
        self._download = None
        self._pull_stream = None
        self._pull_generation += 1
        self._published.clear()
