"""Every snapshot transfer of a run, embedded or streamed, for progress bars and reports.

One :class:`TransferRecord` per (receiver, snapshot id): a transfer that is
cut, retried, resumed after a crash, or continued by a new leader stays the
same record, so its ``bytes_sent`` and ``resent_bytes`` say what the failures
cost. ``resent_bytes`` counts bytes sent again at offsets some sender had
already sent for this transfer; ``largest_resend`` is the most that one
resumption asked to have sent again (DESIGN section 6: at most one chunk per
chunk in flight).
"""

from __future__ import annotations

import attrs

from .protocol import Outcome, TransferProgress


@attrs.define(eq=False)
class TransferRecord:
    from_: int
    to: int
    snapshot_index: int
    snapshot_id: str
    mode: str
    size: int
    started_at: float
    updated_at: float
    bytes_done: int = 0
    bytes_sent: int = 0
    resent_bytes: int = 0
    retries: int = 0
    frontier: int = 0  # highest end offset any sender sent
    # The same since the receiver last started from nothing (a digest failure or an
    # aborted partial): a request below it is a resume, and re-sends the difference.
    resume_frontier: int = 0
    largest_resend: int = 0
    outcome: Outcome = Outcome.IN_PROGRESS
    # The last send counted, and the frontiers before it: what cut_short undoes.
    last_send: tuple[int, int, int, int] | None = attrs.field(default=None, repr=False)

    def progress(self) -> TransferProgress:
        return TransferProgress(
            from_=self.from_,
            to=self.to,
            snapshot_index=self.snapshot_index,
            snapshot_id=self.snapshot_id,
            mode=self.mode,
            size=self.size,
            bytes_done=self.bytes_done,
            bytes_sent=self.bytes_sent,
            resent_bytes=self.resent_bytes,
            retries=self.retries,
            largest_resend=self.largest_resend,
            started_at=self.started_at,
            updated_at=self.updated_at,
            outcome=self.outcome,
        )


class TransferRegistry:
    """The run's transfers, in the order they started."""

    def __init__(self) -> None:
        self._records: dict[tuple[int, str], TransferRecord] = {}  # the current one per key
        self._started: list[TransferRecord] = []  # all of them, in start order

    def start(self, *, from_, to, snapshot_index, snapshot_id, mode, size, now) -> TransferRecord:
        """The record for this (receiver, snapshot), new or continued."""
        record = self._records.get((to, snapshot_id))
        if record is None or record.outcome is not Outcome.IN_PROGRESS and record.outcome is not Outcome.ABORTED:
            record = TransferRecord(
                from_=from_,
                to=to,
                snapshot_index=snapshot_index,
                snapshot_id=snapshot_id,
                mode=mode,
                size=size,
                started_at=now,
                updated_at=now,
            )
            self._records[(to, snapshot_id)] = record
            self._started.append(record)
        else:
            record.from_ = from_
            record.outcome = Outcome.IN_PROGRESS
            record.updated_at = now
        return record

    def get(self, to: int, snapshot_id: str) -> TransferRecord | None:
        return self._records.get((to, snapshot_id))

    def sent(self, to: int, snapshot_id: str, offset: int, length: int, now: float) -> None:
        record = self._records.get((to, snapshot_id))
        if record is None:
            return
        record.last_send = (offset, length, record.frontier, record.resume_frontier)
        record.bytes_sent += length
        end = offset + length
        if offset < record.frontier:
            record.resent_bytes += min(end, record.frontier) - offset
        record.frontier = max(record.frontier, end)
        record.resume_frontier = max(record.resume_frontier, end)
        record.updated_at = now

    def cut_short(self, to: int, snapshot_id: str, offset: int, length: int, carried: int) -> None:
        """The send just counted (``offset``, ``length``) crossed the wire only in part: its
        receiver hung up after ``carried`` bytes. Count those, not the whole of it."""
        record = self._records.get((to, snapshot_id))
        if record is None or record.last_send is None or record.last_send[:2] != (offset, length):
            return
        _, _, frontier, resume_frontier = record.last_send
        end = offset + length
        record.bytes_sent -= length
        if offset < frontier:
            record.resent_bytes -= min(end, frontier) - offset
        record.frontier, record.resume_frontier = frontier, resume_frontier
        record.last_send = None
        if carried > 0:
            self.sent(to, snapshot_id, offset, carried, record.updated_at)

    def requested(self, to: int, snapshot_id: str, offset: int, *, fresh: bool) -> None:
        """The receiver asks for data from ``offset``: how much will be sent again?"""
        record = self._records.get((to, snapshot_id))
        if record is None:
            return
        if fresh:
            record.resume_frontier = 0
        record.largest_resend = max(record.largest_resend, record.resume_frontier - offset)

    def progress(self) -> list[TransferProgress]:
        return [record.progress() for record in self._started]
