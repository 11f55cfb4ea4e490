"""Follower pull, the bookkeeping: where a snapshot is, and what a follower has read of it.

Theory of operation. With ``Streaming(pull=store)`` the leader does not
stream snapshot bytes itself. When a follower asks for a snapshot (the usual
:class:`SnapshotRequest`), the leader makes sure the snapshot is in the
shared store (uploading it once, whoever asks next finds it there) and
answers with a :class:`SnapshotLocation`: the shared store's location of the
data, and the CRC-32 of every chunk, computed while it read its own copy. The
follower then reads the chunks from the store itself, resumably, from its
verified offset; :class:`PullDownload` decides, for every chunk read,
whether it is good (length and CRC), what to read next, and how long to wait
after a failed read. The whole snapshot is checked against its digest on
commit, as for leader streaming.

Nothing here does I/O or reads a clock; :mod:`.pulling` moves the bytes.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from .messages import CHUNK_CHECKSUM_VERSION, HEADER_BYTES, checksum_mismatch, chunk_checksum
from .protocol import MAX_BACKOFF_DOUBLINGS, Verdict

#: Bytes each chunk checksum adds to a location message on the wire.
CHECKSUM_BYTES = 4


@attrs.frozen
class SnapshotLocation:
    """Leader to follower: "read snapshot ``snapshot_id`` from ``location`` yourself"."""

    kind: ClassVar[str] = "snapshot_location"

    from_: int
    to: int
    snapshot_index: int
    snapshot_term: int
    snapshot_id: str
    location: str
    total_size: int
    chunk_size: int
    checksums: tuple[int, ...] = attrs.field(repr=lambda sums: f"<{len(sums)} checksums>")
    #: Algorithm of ``checksums`` (:data:`~simulator.snapshots.checksums.CHUNK_CHECKSUMS`).
    checksum_version: int = CHUNK_CHECKSUM_VERSION

    @property
    def size(self) -> int:
        return HEADER_BYTES + len(self.snapshot_id) + len(self.location) + CHECKSUM_BYTES * len(self.checksums)


def chunk_count(total_size: int, chunk_size: int) -> int:
    return -(-total_size // chunk_size)


def chunk_checksums(chunks) -> tuple[int, ...]:
    """The checksum (current version) of each chunk, in order (the chunks must all be ``chunk_size`` but the last)."""
    return tuple(chunk_checksum(chunk) for chunk in chunks)


@attrs.define(eq=False)
class PullDownload:
    """A follower's reading of one snapshot from a shared store; see the module docstring.

    ``verified_offset`` is shared with the transfer's :class:`IncomingTransfer`
    by the caller (it passes it in); this class only judges chunks and paces reads.
    """

    location: SnapshotLocation
    read_latency: float
    read_bandwidth: float | None
    failures_in_a_row: int = 0

    @classmethod
    def check_location(cls, location: SnapshotLocation, *, size: int, snapshot_id: str) -> str | None:
        """Why a location cannot be used for the offered snapshot, or ``None``."""
        if location.snapshot_id != snapshot_id:
            return f"location of snapshot {location.snapshot_id!r}, expected {snapshot_id!r}"
        if location.total_size != size:
            return f"location says {location.total_size} bytes, the offer said {size}"
        if location.chunk_size < 1:
            return f"chunk size must be >= 1, got {location.chunk_size}"
        expected = chunk_count(size, location.chunk_size)
        if len(location.checksums) != expected:
            return f"{expected} chunk checksums expected for {size} bytes, got {len(location.checksums)}"
        return None

    def next_length(self, offset: int) -> int:
        """Bytes of the next read from ``offset`` (one whole chunk, shorter at the end)."""
        return min(self.location.chunk_size, self.location.total_size - offset)

    def check(self, offset: int, data: bytes) -> tuple[Verdict, str]:
        """Judge the bytes read at ``offset`` (always a chunk boundary)."""
        expected = self.next_length(offset)
        if offset % self.location.chunk_size:
            return Verdict.REJECT, f"read at offset {offset}, not a chunk boundary of {self.location.chunk_size}"
        if len(data) != expected:
            return Verdict.REJECT, f"{expected} bytes expected at offset {offset}, the store returned {len(data)}"
        number = offset // self.location.chunk_size
        mismatch = checksum_mismatch(data, self.location.checksums[number], self.location.checksum_version)
        if mismatch is not None:
            return Verdict.REJECT, f"chunk {number} at offset {offset} {mismatch}"
        return Verdict.ACCEPT, "ok"

    def read_time(self, length: int, extra: float = 0.0) -> float:
        """Virtual seconds one ranged read of ``length`` bytes takes (request plus transfer)."""
        transfer = length / self.read_bandwidth if self.read_bandwidth else 0.0
        return self.read_latency + transfer + extra

    def succeeded(self) -> None:
        self.failures_in_a_row = 0

    def failed(self, idle_timeout: float) -> float:
        """Count a failed or rejected read; return how long to wait before reading again:
        a quarter of ``idle_timeout`` (at least one read time), doubling with each
        failure in a row, up to 8 times, so an outage is waited out, not hammered."""
        self.failures_in_a_row += 1
        base = max(self.read_latency, idle_timeout / 4)
        return base * 2 ** min(self.failures_in_a_row - 1, MAX_BACKOFF_DOUBLINGS)
