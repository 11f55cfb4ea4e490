"""One node's end of out-of-band snapshot streaming: receiving, and sending to followers.

The endpoint turns the decisions of :mod:`.protocol` into actions through a
:class:`StreamHost` (the node it belongs to): sending stream messages,
arming timers, writing verified chunks to the node's
:class:`~simulator.snapshots.SnapshotStore`, handing a complete snapshot to
Raft, and telling the leader's Raft how a transfer ended.

Receiving (follower)::

    metadata-only snapshot message ─▶ open_writer (resumes a partial) ─▶ request(offset)
    chunk ─▶ verify ─▶ write durably ─▶ ack ─▶ … ─▶ commit (digest) ─▶ Raft installs ─▶ ack(installed)

Sending (leader)::

    request(offset) ─▶ stream_snapshot(index, offset) ─▶ chunks, ``chunks_in_flight`` at a
    time, paced by ``rate_limit`` ─▶ ack(installed) ─▶ report_snapshot(FINISH)

Failures resume from the receiver's verified offset; a snapshot that is gone
or superseded ends the transfer and is reported as FAILURE, and Raft retries.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from simulator.raft import Message, SnapshotStatus, defects
from simulator.snapshots import (
    SnapshotDigestError,
    SnapshotStore,
    SnapshotStoreError,
    is_count,
)

from .delta import DeltaReceiving
from .messages import (
    SnapshotAbort,
    SnapshotAck,
    SnapshotChunk,
    SnapshotManifest,
    SnapshotManifestRequest,
    SnapshotRequest,
)
from .protocol import (
    IncomingTransfer,
    Outcome,
    OutgoingTransfer,
    SnapshotOffer,
    Verdict,
)
from .registry import TransferRegistry
from .sending import SnapshotSending, rechunk  # noqa: F401 - rechunk is used by tests
from .timers import TIME_EPSILON, StreamTimer

#: Times a receiver starts over after the whole snapshot failed its digest check.
MAX_DIGEST_RESTARTS = 3


class StreamSettings(Protocol):
    """The settings an endpoint reads: a ``transports.Streaming`` value provides them.

    Declared here rather than imported, so that the mode (a plain value that
    picks its endpoint class) sits above the endpoints and not beside them.
    """

    chunk_size: int
    chunks_in_flight: int
    rate_limit: float | None
    max_concurrent_per_sender: int
    idle_timeout: float
    max_idle_retries: int


class StreamHost(Protocol):
    """What the endpoint needs from its node."""

    def now(self) -> float: ...

    def send(self, message) -> None: ...

    def schedule(self, delay: float, item) -> None: ...

    def install(self, message: Message) -> str | None:
        """Step a snapshot message into Raft; its data is in the node's store.

        Returns ``None`` if Raft took the snapshot, else why it refused (``"stale_term"``).
        """

    def step(self, message: Message) -> None:
        """Step a message into Raft as it is."""

    def report_snapshot(self, to: int, status: SnapshotStatus) -> None: ...

    def committed_index(self) -> int: ...

    def log_first_index(self) -> int:
        """First index still in the node's Raft log (entries before it were compacted)."""

    def event(self, kind: str, **fields) -> None: ...

    def hold_memory(self, extra: int) -> None:
        """Note that ``extra`` bytes of snapshot data are in memory right now."""


class StreamingEndpoint(SnapshotSending, DeltaReceiving):
    """See the module docstring. One per node, living as long as the node's process."""

    def __init__(
        self,
        node_id: int,
        mode: StreamSettings,
        store: SnapshotStore,
        host: StreamHost,
        registry: TransferRegistry,
    ) -> None:
        self.node_id = node_id
        self.mode = mode
        self.store = store
        self.host = host
        self.registry = registry
        self.incoming: IncomingTransfer | None = None
        self._writer = None
        self._offer_message: Message | None = None
        self._idle_retries = 0
        self._generation = 0
        self._asked_from: int | None = None  # verified offset of the last re-request after a reject
        self._last_failure: str | None = None  # why the last chunk did not count, for a give-up
        self._digest_restarts = 0
        self.outgoing: dict[int, OutgoingTransfer] = {}
        self._streams: dict[int, tuple[int, object]] = {}  # peer -> (offset, chunk iterator)
        self._next_send_at: dict[int, float] = {}
        self._waiting: dict[int, SnapshotRequest] = {}  # over the concurrency limit
        self._offers: dict[int, str] = {}  # peer -> snapshot id offered, not yet requested
        self.counters: Counter = Counter()

    # -- receiving ----------------------------------------------------------------

    def on_offer(self, message: Message) -> None:
        """A metadata-only snapshot message arrived from the leader."""
        metadata = message.snapshot.metadata
        if is_count(metadata.index) and metadata.index <= self.host.committed_index():
            # Raft refuses it (or just moves commit) without needing the data.
            self.host.step(message)
            return
        try:
            offer = SnapshotOffer(
                source=message.from_,
                index=metadata.index,
                term=metadata.term,
                size=metadata.size,
                digest=metadata.digest,
                snapshot_id=metadata.snapshot_id,
            )
        except ValueError as error:
            self._refuse_malformed(str(error))
            return
        active = self.incoming
        if active is not None:
            if active.offer.snapshot_id == offer.snapshot_id:
                self._offer_message = message
                if active.offer.source != offer.source:
                    active.change_source(offer.source)
                    self.host.event(
                        "transfer_resumed", source=offer.source, index=offer.index,
                        offset=active.verified_offset, reason="new leader holds the same snapshot",
                    )
                    self._request(active)
                elif self._idle_retries > 0:
                    # Stalled, and the leader just reached us again: ask now rather
                    # than when the (backed-off) retry timer says.
                    self.host.event(
                        "transfer_resumed", source=offer.source, index=offer.index,
                        offset=active.verified_offset, reason="the leader offered it again",
                    )
                    self._idle_retries = 0
                    self._request(active)
                return
            if offer.index <= active.offer.index:
                self.counters["older_offer_ignored"] += 1
                return
            self._finish_incoming(Outcome.SUPERSEDED, f"snapshot {offer.index} supersedes it")
            self._abort_writer()
        self._start_incoming(offer, message)

    def _refuse_malformed(self, reason: str) -> None:
        self.counters["malformed_offer"] += 1
        self.host.event("transfer_refused", reason=reason)

    def _open_writer(self, offer: SnapshotOffer, message: Message):
        return self.store.open_writer(
            offer.index,
            term=offer.term,
            size=offer.size,
            digest=offer.digest,
            conf_state=message.snapshot.metadata.conf_state,
            snapshot_id=offer.snapshot_id,
        )

    def _start_incoming(self, offer: SnapshotOffer, message: Message) -> None:
        now = self.host.now()
        try:
            writer = self._open_writer(offer, message)
        except SnapshotStoreError as error:
            if self.store.has_snapshot(offer.index) and (
                self.store.snapshot_metadata(offer.index).digest == offer.digest
            ):
                # Received before a crash (or still held after losing the state built from
                # it): only the install was missing. The leader hears the outcome as after
                # a stream, or it waits for an answer that never comes and gives up.
                refusal = self.host.install(message)
                if refusal is None:
                    self.host.send(SnapshotAck(from_=self.node_id, to=offer.source, snapshot_id=offer.snapshot_id,
                                               offset=offer.size, installed=True))
                return
            self.host.event("transfer_refused", index=offer.index, reason=str(error))
            return
        except (ValueError, TypeError) as error:  # the offer's membership is not one
            self._refuse_malformed(f"snapshot {offer.index}: {error}")
            return
        except OSError as error:
            # A full or failing disk: refuse for now; the leader offers again later.
            self.counters["store_failed"] += 1
            self.host.event("transfer_refused", index=offer.index,
                            reason=f"cannot start receiving: the store failed ({error})")
            return
        if writer.offset and writer.offset < offer.size and self._discards_partials():
            # This policy keeps nothing of an interrupted transfer, even what survived on disk.
            self.host.event("transfer_restarted", source=offer.source, index=offer.index, discarded=writer.offset)
            writer.abort()
            writer = self._open_writer(offer, message)
        self._writer = writer
        self._offer_message = message
        self._idle_retries = 0
        self._asked_from = None
        self._last_failure = None
        self._generation += 1
        transfer = IncomingTransfer(
            me=self.node_id,
            offer=offer,
            verified_offset=writer.offset,
            started_at=now,
            last_progress_at=now,
        )
        self.incoming = transfer
        record = self.registry.start(
            from_=offer.source, to=self.node_id, snapshot_index=offer.index,
            snapshot_id=offer.snapshot_id, mode="streaming", size=offer.size, now=now,
        )
        record.bytes_done = writer.offset
        if writer.offset:
            self.host.event("transfer_resumed", source=offer.source, index=offer.index,
                            offset=writer.offset, reason="partial snapshot kept on disk")
        else:
            self.host.event("transfer_started", source=offer.source, index=offer.index, size=offer.size)
        if transfer.complete:
            self._complete()
            return
        if self._delta_begin(transfer):
            return  # dedup: the manifest first, then only the missing ranges
        self._request(transfer, fresh=writer.offset == 0)

    def _request(self, transfer: IncomingTransfer, *, fresh: bool = False) -> None:
        """Ask the source for the data from the verified offset on.

        ``fresh``: nothing of this snapshot is held, so whatever the sender
        sends is not a re-send of data we had (the registry's resume check).
        """
        if transfer.verified_offset and (self._starts_over() or defects.active(defects.RESUME_FROM_ZERO)):
            self._start_over(transfer)
        self._send_request(transfer, fresh=fresh)

    def _send_request(self, transfer: IncomingTransfer, *, fresh: bool = False) -> None:
        """Ask for the data from the verified offset on (under dedup: up to the end of the next
        range this node lacks), as it stands, and wait for it."""
        ask, end = self._delta_range(transfer)
        if not ask:
            return
        request = transfer.request(end)
        self.registry.requested(self.node_id, transfer.offer.snapshot_id, request.offset, fresh=fresh)
        self.host.event("snapshot_request", to=request.to, index=request.snapshot_index,
                        offset=request.offset)
        self.host.send(request)
        self._arm_receive_timer(transfer)

    def _starts_over(self) -> bool:
        """The mode's policy restarts an interrupted transfer at byte 0 (``resume="from_zero"``)."""
        return getattr(self.mode, "resume", "verified_offset") == "from_zero"

    def _mismatch(self, transfer: IncomingTransfer, chunk: SnapshotChunk, detail: str) -> None:
        """A chunk out of place under ``mismatch_restarts``: everything goes, from byte 0 again."""
        self.counters["mismatched_chunk"] += 1
        self.host.event("chunk_rejected", source=chunk.from_, offset=chunk.offset,
                        reason=f"offset mismatch ({detail}): the transfer starts over")
        record = self.registry.get(self.node_id, transfer.offer.snapshot_id)
        if record is not None:
            record.retries += 1
        transfer.retries += 1
        self._start_over(transfer)
        self._send_request(transfer, fresh=True)
        # Chunks still in flight from before arrive out of place: they are dropped, not
        # answered with yet another request (which would restart the sender again).
        self._asked_from = transfer.verified_offset

    def _discards_partials(self) -> bool:
        """A partial snapshot found in the store (kept through a crash) is thrown away."""
        return self._starts_over()

    def _start_over(self, transfer: IncomingTransfer) -> None:
        """Throw the partial data away and expect the snapshot again from byte 0."""
        self.host.event("transfer_restarted", source=transfer.offer.source, index=transfer.offer.index,
                        discarded=transfer.verified_offset)
        self._writer.abort()
        self._writer = self._open_writer(transfer.offer, self._offer_message)
        transfer.verified_offset = 0

    def _patience(self, transfer: IncomingTransfer) -> float:
        return transfer.patience(self.mode.idle_timeout, self._idle_retries)

    def _arm_receive_timer(self, transfer: IncomingTransfer, delay: float | None = None) -> None:
        # Only the newest timer counts: earlier ones find a newer generation and do nothing.
        self._generation += 1
        self.host.schedule(
            self._patience(transfer) if delay is None else delay,
            StreamTimer("receive_idle", transfer.offer.source, transfer.offer.snapshot_id, self._generation),
        )

    def on_chunk(self, chunk: SnapshotChunk) -> None:
        transfer = self.incoming
        if transfer is None or chunk.snapshot_id != transfer.offer.snapshot_id:
            self.counters["stray_chunk"] += 1
            return
        self.host.hold_memory(len(chunk.data))
        verdict, detail = transfer.check_chunk(chunk)
        record = self.registry.get(self.node_id, transfer.offer.snapshot_id)
        if verdict is Verdict.DUPLICATE:
            # A re-send of what we have, still crossing a slow link: not progress, but
            # proof the stream is alive, so the idle timer must not fire behind it.
            self.counters["duplicate_chunk"] += 1
            transfer.heard(self.host.now())
            if getattr(self.mode, "mismatch_restarts", False) and transfer.verified_offset:
                self._mismatch(transfer, chunk, detail)
            return
        if verdict is Verdict.REJECT and getattr(self.mode, "mismatch_restarts", False) and (
                chunk.offset != transfer.verified_offset and transfer.verified_offset):
            self._mismatch(transfer, chunk, detail)
            return
        if verdict is Verdict.REJECT:
            self.counters["rejected_chunk"] += 1
            self.host.event("chunk_rejected", source=chunk.from_, offset=chunk.offset, reason=detail)
            self._last_failure = f"chunk rejected: {detail}"
            if chunk.offset >= transfer.verified_offset and self._asked_from != transfer.verified_offset:
                # Ask again from what we have, once per verified offset. The rest of the
                # window arrives as gaps, covered by that one request. If what comes back
                # is rejected too (every chunk corrupted, an offer whose size the chunks
                # contradict), asking at once would loop at wire speed: the idle timer
                # asks instead, backing off, and gives up after max_idle_retries.
                self._asked_from = transfer.verified_offset
                transfer.retries += 1
                if record is not None:
                    record.retries += 1
                self._request(transfer)
            return
        try:
            self._writer.write(chunk.offset, chunk.data)
        except (SnapshotStoreError, OSError) as error:
            # OSError: a full or failing disk. The transfer pauses: the idle timer asks
            # again from the verified offset, backing off, and gives up after
            # max_idle_retries, naming this failure; the node and the cluster go on.
            self.counters["write_failed"] += 1
            self.host.event("chunk_rejected", source=chunk.from_, offset=chunk.offset, reason=str(error))
            self._last_failure = f"writing to the store failed: {error}"
            return
        now = self.host.now()
        transfer.advance(len(chunk.data), now, measure=self._idle_retries == 0)
        self._idle_retries = 0
        self._last_failure = None
        if record is not None:
            record.bytes_done = transfer.verified_offset
            record.updated_at = now
        self.host.event("transfer_progress", source=chunk.from_, index=transfer.offer.index,
                        offset=transfer.verified_offset, size=transfer.offer.size)
        self.host.send(SnapshotAck(from_=self.node_id, to=chunk.from_,
                                   snapshot_id=chunk.snapshot_id, offset=transfer.verified_offset))
        if transfer.complete:
            self._complete()
        elif self._delta_run_done(transfer):
            self._request(transfer)  # dedup: copy the held pieces next, ask for the next missing range

    def _complete(self) -> None:
        transfer = self.incoming
        try:
            self._writer.commit(verify_digest=not defects.active(defects.INSTALL_UNVERIFIED))
        except OSError as error:
            # The store could not publish it (the partial is kept, complete): the next
            # offer of this snapshot resumes at its end and commits again.
            self.counters["store_failed"] += 1
            self._finish_incoming(Outcome.ABORTED, f"cannot store the snapshot: {error}")
            return
        except SnapshotDigestError as error:
            # Every chunk passed its checksum yet the whole does not match: start over,
            # a few times (a wrong digest in the offer would fail forever).
            self.host.event("transfer_digest_mismatch", index=transfer.offer.index, reason=str(error))
            self._digest_restarts += 1
            if self._digest_restarts > MAX_DIGEST_RESTARTS:
                self._finish_incoming(Outcome.ABORTED, f"digest mismatch {self._digest_restarts} times")
                return
            offer, message = transfer.offer, self._offer_message
            self.incoming = None
            self._start_incoming(offer, message)
            return
        message = self._offer_message
        source = transfer.offer.source
        refusal = self.host.install(message)
        if refusal is not None:
            # Raft refused it (a leader of a stale term finishing its stream): not
            # installed. The snapshot stays in the store; the sender hears why.
            self.counters["install_refused"] += 1
            reason = f"Raft refused the snapshot ({refusal})"
            self._finish_incoming(Outcome.ABORTED, reason)
            self.host.send(SnapshotAbort(from_=self.node_id, to=source,
                                         snapshot_id=transfer.offer.snapshot_id, reason=reason))
            return
        self._finish_incoming(Outcome.INSTALLED, "verified and installed")
        self.host.send(SnapshotAck(from_=self.node_id, to=source, snapshot_id=transfer.offer.snapshot_id,
                                   offset=transfer.offer.size, installed=True))

    def _finish_incoming(self, outcome: Outcome, reason: str) -> None:
        transfer = self.incoming
        record = self.registry.get(self.node_id, transfer.offer.snapshot_id)
        if record is not None:
            record.outcome = outcome
            record.updated_at = self.host.now()
        self.host.event(f"transfer_{outcome.value}", source=transfer.offer.source,
                        index=transfer.offer.index, retries=transfer.retries, reason=reason)
        self.incoming = None
        self._delta = None
        self._generation += 1
        self._digest_restarts = 0  # the next transfer gets every try again

    def _on_receive_idle(self, timer: StreamTimer) -> None:
        transfer = self.incoming
        if transfer is None or timer.generation != self._generation:
            return
        idle = self.host.now() - transfer.idle_since()
        patience = self._patience(transfer)
        if idle < patience - TIME_EPSILON:
            # Progress since the timer was armed: wait out the rest of a full period.
            self._arm_receive_timer(transfer, patience - idle)
            return
        self._idle_retries += 1
        if self._idle_retries > self.mode.max_idle_retries:
            # Keep the partial data: a later offer of the same snapshot resumes it.
            why = f" (last: {self._last_failure})" if self._last_failure else ""
            self._finish_incoming(Outcome.ABORTED, f"no progress after {self.mode.max_idle_retries} retries{why}")
            return
        record = self.registry.get(self.node_id, transfer.offer.snapshot_id)
        if record is not None:
            record.retries += 1
        transfer.retries += 1
        self.host.event("transfer_retry", source=transfer.offer.source, index=transfer.offer.index,
                        offset=transfer.verified_offset, attempt=self._idle_retries)
        self._request(transfer)

    def on_abort(self, abort: SnapshotAbort) -> None:
        if self._receiver_gave_up(abort):
            return
        transfer = self.incoming
        if transfer is None or abort.snapshot_id != transfer.offer.snapshot_id:
            return
        if abort.from_ != transfer.offer.source:
            return  # a former source gave up; the transfer continues from the current one
        self._finish_incoming(Outcome.ABORTED, abort.reason)
        self._abort_writer()  # the sender no longer has it: the partial is of no use

    def _abort_writer(self) -> None:
        try:
            self._writer.abort()
        except OSError:
            # The disk would not let the partial go; the next transfer supersedes it.
            self.counters["store_failed"] += 1

    # -- dispatch -----------------------------------------------------------------

    def on_timer(self, timer: StreamTimer) -> None:
        if timer.purpose == "receive_idle":
            self._on_receive_idle(timer)
        elif timer.purpose == "send_next":
            self._pump(timer.peer)
        elif timer.purpose == "offer_timeout":
            self._on_offer_timeout(timer)
        else:
            self._on_send_idle(timer)

    def on_stream_message(self, message) -> None:
        if isinstance(message, SnapshotChunk):
            self.on_chunk(message)
        elif isinstance(message, SnapshotAck):
            self.on_ack(message)
        elif isinstance(message, SnapshotRequest):
            self.on_request(message)
        elif isinstance(message, SnapshotAbort):
            self.on_abort(message)
        elif isinstance(message, SnapshotManifestRequest):
            self.on_manifest_request(message)
        elif isinstance(message, SnapshotManifest):
            self.on_manifest(message)
        else:
            self.counters["unknown_stream_message"] += 1

    def crashed(self) -> None:
        """The node's process died: in-memory transfer state is gone (the store stays)."""
        self.incoming = None
        self._writer = None
        self._delta = None
        self.outgoing.clear()
        self._streams.clear()
        self._waiting.clear()
        self._offers.clear()
        self._generation += 1
