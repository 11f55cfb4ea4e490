"""Bookkeeping of one snapshot transfer, without I/O (like h11: events in, decisions out).

Theory of operation. A receiver learns of a snapshot from a metadata-only
Raft snapshot message: a :class:`SnapshotOffer`. It keeps an
:class:`IncomingTransfer` whose ``verified_offset`` is the number of bytes
it has checked and written durably; it always asks the sender for data from
exactly there (:meth:`IncomingTransfer.request`). Each arriving chunk gets a
verdict from :meth:`IncomingTransfer.check_chunk`:

=============  ==========================================================
``ACCEPT``     next in line and intact: write it, then :meth:`advance`
``DUPLICATE``  already have it (a retransmission): ignore, count it
``REJECT``     gap, overlap, bad checksum, wrong snapshot, too long:
               ignore, count the reason, ask again from the verified offset
=============  ==========================================================

The sender keeps an :class:`OutgoingTransfer`: where the next chunk starts,
what was acknowledged, how many chunks are in flight. A request resets it
to the requested offset, which is how a transfer resumes after a cut
stream, a timeout, a crash, or a change of leader.

Nothing here reads a clock: callers pass ``now``. Nothing here touches a
store: callers read and write the bytes.
"""

from __future__ import annotations

import enum
from collections import Counter, deque

import attrs

from simulator.snapshots import check_count, check_digest, check_snapshot_id, is_count

from .messages import SnapshotChunk, SnapshotRequest, checksum_mismatch, chunk_checksum

#: Retry back-off doubles the wait at most this many times (8x).
MAX_BACKOFF_DOUBLINGS = 3


@attrs.frozen
class SnapshotOffer:
    """What a metadata-only snapshot message promises: which bytes, from whom."""

    source: int
    index: int
    term: int
    size: int
    digest: str
    snapshot_id: str

    def __attrs_post_init__(self) -> None:
        # An offer comes off the network: anything the store would refuse is refused
        # here, as ValueError, so that a peer's garbage is counted, never raised.
        for name in ("source", "index", "term"):
            check_count(getattr(self, name), name)
        if not is_count(self.size):
            kind = "be >= 0" if isinstance(self.size, int) and not isinstance(self.size, bool) else "be an integer"
            raise ValueError(f"snapshot size must {kind}, got {self.size!r}")
        if not self.snapshot_id or not self.digest:
            raise ValueError(
                f"snapshot {self.index} offer needs a snapshot_id and digest for streaming, "
                f"got id={self.snapshot_id!r} digest={self.digest!r}"
            )
        check_digest(self.digest)
        check_snapshot_id(self.snapshot_id)


class Verdict(enum.Enum):
    ACCEPT = "accept"
    DUPLICATE = "duplicate"
    REJECT = "reject"


class Outcome(enum.Enum):
    IN_PROGRESS = "in_progress"
    INSTALLED = "installed"
    SUPERSEDED = "superseded"
    ABORTED = "aborted"


@attrs.define(eq=False)
class IncomingTransfer:
    """The receiver's side of one transfer; see the module docstring."""

    me: int
    offer: SnapshotOffer
    verified_offset: int
    started_at: float
    last_progress_at: float
    retries: int = 0
    duplicate_bytes: int = 0
    last_gap: float = 0.0  # seconds between the last two verified chunks
    # When a chunk last arrived at all, duplicates included: the stream is alive.
    last_heard_at: float = 0.0
    rejections: Counter = attrs.Factory(Counter)

    @property
    def complete(self) -> bool:
        return self.verified_offset == self.offer.size

    def request(self, end: int | None = None) -> SnapshotRequest:
        offer = self.offer
        return SnapshotRequest(
            from_=self.me,
            to=offer.source,
            snapshot_index=offer.index,
            snapshot_term=offer.term,
            snapshot_id=offer.snapshot_id,
            offset=self.verified_offset,
            end=None if end is None or end >= offer.size else end,
        )

    def retry(self) -> SnapshotRequest:
        """No progress for too long (cut stream, lost request): ask again."""
        self.retries += 1
        return self.request()

    def change_source(self, source: int) -> None:
        """A new leader holds the same snapshot: continue the same transfer from it."""
        self.offer = attrs.evolve(self.offer, source=source)

    def check_chunk(self, chunk: SnapshotChunk, *, checksum_matched: bool = False) -> tuple[Verdict, str]:
        """Whether ``chunk`` is the next verified piece of the offer (``ACCEPT``), one already
        verified (``DUPLICATE``), or refused (``REJECT``, counted under its reason).

        ``checksum_matched=True``: the caller already compared the chunk's checksum with its
        data and they matched (a receiver may check on its reading thread, off the loop that
        calls this), so it is not computed twice; every other check still runs here.
        """
        offer = self.offer
        expected = self.verified_offset
        size = len(chunk.data)
        if chunk.snapshot_id != offer.snapshot_id:
            return self._reject(
                "wrong snapshot", f"chunk of snapshot {chunk.snapshot_id!r}, expected {offer.snapshot_id!r}"
            )
        if chunk.total_size != offer.size:
            return self._reject(
                "wrong total size",
                f"chunk says the snapshot has {chunk.total_size} bytes, the offer said {offer.size}",
            )
        if size > 0 and chunk.offset + size <= expected:
            self.duplicate_bytes += size
            return Verdict.DUPLICATE, f"bytes {chunk.offset}..{chunk.offset + size} already verified"
        if chunk.offset != expected:
            what = "overlap" if chunk.offset < expected else "gap"
            return self._reject(what, f"chunk at offset {expected} expected, got {chunk.offset}")
        if chunk.offset + size > offer.size:
            return self._reject(
                "too long",
                f"chunk ends at byte {chunk.offset + size}, more than total_size {offer.size}",
            )
        if size == 0 and offer.size > 0:
            return self._reject("empty chunk", f"empty chunk at offset {chunk.offset}")
        if chunk.is_final != (chunk.offset + size == offer.size):
            return self._reject(
                "bad final flag",
                f"is_final={chunk.is_final} on a chunk ending at {chunk.offset + size} of {offer.size}",
            )
        mismatch = None if checksum_matched else checksum_mismatch(chunk.data, chunk.checksum, chunk.checksum_version)
        if mismatch is not None:
            return self._reject("bad checksum", f"chunk at offset {chunk.offset} {mismatch}")
        return Verdict.ACCEPT, "ok"

    def _reject(self, reason: str, detail: str) -> tuple[Verdict, str]:
        self.rejections[reason] += 1
        return Verdict.REJECT, detail

    def advance(self, count: int, now: float, *, measure: bool = True) -> None:
        """``count`` more bytes were verified and written durably.

        ``measure=False`` when a retry came in between: that wait says nothing
        about how fast the link is.
        """
        if measure:
            self.last_gap = now - self.last_progress_at
        elif self.last_heard_at > self.last_progress_at:
            # A retry came in between, but a chunk-sized duplicate arrived just
            # before this chunk: the time between the two is one chunk on this link.
            self.last_gap = now - self.last_heard_at
        self.verified_offset += count
        self.last_progress_at = self.last_heard_at = now

    def heard(self, now: float) -> None:
        """A chunk arrived that adds nothing (a duplicate): not progress, but the stream is alive.

        Back to back with the chunk before it, it also times a chunk on this link,
        so the patience grows to fit a link slower than ``idle_timeout`` per chunk.
        """
        self.last_gap = max(self.last_gap, now - self.idle_since())
        self.last_heard_at = now

    def idle_since(self) -> float:
        """When the stream last showed life: the later of progress and any chunk at all."""
        return max(self.last_progress_at, self.last_heard_at)

    def patience(self, idle_timeout: float, retries_without_progress: int) -> float:
        """How long to wait without progress before asking again.

        At least ``idle_timeout``; at least twice the time the last chunk took
        (a slow link must not look dead); and doubling with each retry that
        brought nothing (up to 8 times), so retries never pile up on a link
        that is merely slow.
        """
        base = max(idle_timeout, 2 * self.last_gap)
        return base * 2 ** min(retries_without_progress, MAX_BACKOFF_DOUBLINGS)


@attrs.define(eq=False)
class OutgoingTransfer:
    """The sender's side of one transfer; see the module docstring."""

    me: int
    to: int
    snapshot_index: int
    snapshot_term: int
    snapshot_id: str
    total_size: int
    chunk_size: int
    window: int
    last_activity_at: float
    next_offset: int = 0
    #: Where the requested range ends (the snapshot's size unless a request said ``end``).
    end_offset: int | None = None
    acked_offset: int = 0
    final_sent: bool = False
    chunks_sent: int = 0
    bytes_sent: int = 0
    in_flight: deque = attrs.Factory(deque)  # end offsets of unacknowledged chunks

    def __attrs_post_init__(self) -> None:
        if self.chunk_size <= 0:
            raise ValueError(f"chunk_size must be a positive number of bytes, got {self.chunk_size}")
        if self.window <= 0:
            raise ValueError(f"chunks in flight must be >= 1, got {self.window}")

    def on_request(self, request: SnapshotRequest, now: float) -> str | None:
        """Start (or restart) at the requested offset; returns why it cannot, or None."""
        if request.snapshot_id != self.snapshot_id:
            return f"snapshot {request.snapshot_id!r} requested, this transfer sends {self.snapshot_id!r}"
        if not 0 <= request.offset <= self.total_size:
            return f"offset must lie in [0, {self.total_size}], got {request.offset}"
        end = getattr(request, "end", None)
        if end is not None and not request.offset < end <= self.total_size:
            return f"end must lie in ({request.offset}, {self.total_size}], got {end}"
        self.end_offset = end
        self.next_offset = request.offset
        self.acked_offset = request.offset
        self.final_sent = False
        self.in_flight.clear()
        self.last_activity_at = now
        return None

    def on_ack(self, offset: int, now: float) -> None:
        if offset > self.acked_offset:
            self.acked_offset = offset
            self.last_activity_at = now
        while self.in_flight and self.in_flight[0] <= offset:
            self.in_flight.popleft()

    def wants_chunk(self) -> bool:
        if self.final_sent or len(self.in_flight) >= self.window:
            return False
        end = self.total_size if self.end_offset is None else self.end_offset
        return self.next_offset < end or self.total_size == 0

    def make_chunk(self, data: bytes) -> SnapshotChunk:
        """Wrap the bytes read at ``next_offset`` (at most ``chunk_size``) as the next chunk."""
        if len(data) > self.chunk_size:
            raise ValueError(f"chunk of {len(data)} bytes exceeds chunk_size {self.chunk_size}")
        offset = self.next_offset
        end = offset + len(data)
        if end > self.total_size or (not data and self.total_size > 0):
            raise ValueError(
                f"store returned {len(data)} bytes at offset {offset} of a {self.total_size}-byte snapshot"
            )
        self.next_offset = end
        self.final_sent = end == self.total_size
        self.in_flight.append(end)
        self.chunks_sent += 1
        self.bytes_sent += len(data)
        return SnapshotChunk(
            from_=self.me,
            to=self.to,
            snapshot_index=self.snapshot_index,
            snapshot_term=self.snapshot_term,
            snapshot_id=self.snapshot_id,
            offset=offset,
            total_size=self.total_size,
            is_final=self.final_sent,
            checksum=chunk_checksum(data),
            data=data,
        )


@attrs.frozen
class TransferProgress:
    """One transfer as the cluster reports it (progress bars, notebooks, JSON)."""

    from_: int
    to: int
    snapshot_index: int
    snapshot_id: str
    mode: str
    size: int
    bytes_done: int
    bytes_sent: int
    resent_bytes: int
    retries: int
    started_at: float
    updated_at: float
    outcome: Outcome
    #: The most bytes one resumption asked to have sent again.
    largest_resend: int = 0

    @property
    def fraction(self) -> float:
        return 1.0 if self.size == 0 else self.bytes_done / self.size

    @property
    def rate(self) -> float:
        """Verified bytes per second of virtual time since the start."""
        elapsed = self.updated_at - self.started_at
        return self.bytes_done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, or None before any progress."""
        if self.outcome is not Outcome.IN_PROGRESS:
            return 0.0
        rate = self.rate
        return (self.size - self.bytes_done) / rate if rate > 0 else None
