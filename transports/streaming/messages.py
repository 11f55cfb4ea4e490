"""The out-of-band snapshot stream's messages (the seed's ``SnapshotTransfer`` service).

They travel over the same links as Raft messages — sharing latency,
bandwidth and faults — but are not Raft messages: the Raft core never sees
them. ``kind`` names them in transport statistics and the trace.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from simulator.snapshots.checksums import (
    CHUNK_CHECKSUM_VERSION,
    UnknownChecksumVersion,
)
from simulator.snapshots.checksums import chunk_checksum as _versioned_checksum

#: Bytes a header of any stream message counts for on the wire.
HEADER_BYTES = 64


def chunk_checksum(data: bytes, version: int = CHUNK_CHECKSUM_VERSION) -> int:
    """Checksum of a chunk (CRC-32C since version 2; see :mod:`simulator.snapshots.checksums`):
    cheap, and enough to catch corruption on the wire. The whole snapshot is
    verified once more against its digest (BLAKE3 or sha256) before it is installed.
    """
    return _versioned_checksum(data, version)


def checksum_mismatch(data: bytes, checksum: int, version: int) -> str | None:
    """Why ``data`` does not match ``checksum`` under ``version``, or ``None`` if it does.

    A version this build does not know is named as such, not called corruption.
    """
    try:
        actual = _versioned_checksum(data, version)
    except UnknownChecksumVersion as error:
        return str(error)
    if actual != checksum:
        return f"has checksum {actual:#010x}, expected {checksum:#010x}"
    return None


@attrs.frozen
class SnapshotRequest:
    """Receiver to sender: "send me snapshot ``snapshot_id`` from ``offset`` on".

    ``end``: stop there (``None``: at the end of the snapshot). A receiver
    deduplicating against a snapshot it holds asks only for the byte ranges
    it lacks (``Streaming(dedup=True)``).
    """

    kind: ClassVar[str] = "snapshot_request"

    from_: int
    to: int
    snapshot_index: int
    snapshot_term: int
    snapshot_id: str
    offset: int
    end: int | None = None

    @property
    def size(self) -> int:
        return HEADER_BYTES + len(self.snapshot_id)


@attrs.frozen
class SnapshotChunk:
    """Sender to receiver: ``data`` at ``offset`` of a snapshot of ``total_size`` bytes."""

    kind: ClassVar[str] = "snapshot_chunk"

    from_: int
    to: int
    snapshot_index: int
    snapshot_term: int
    snapshot_id: str
    offset: int
    total_size: int
    is_final: bool
    checksum: int
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    #: Which algorithm made ``checksum`` (:data:`~simulator.snapshots.checksums.CHUNK_CHECKSUMS`);
    #: travels in the fixed-size header, so the wire size is unchanged.
    checksum_version: int = CHUNK_CHECKSUM_VERSION

    @property
    def size(self) -> int:
        return HEADER_BYTES + len(self.snapshot_id) + len(self.data)


@attrs.frozen
class SnapshotAck:
    """Receiver to sender: everything before ``offset`` is verified and durable.

    ``installed`` marks the last ack: the snapshot passed its digest check
    and was handed to Raft.
    """

    kind: ClassVar[str] = "snapshot_ack"

    from_: int
    to: int
    snapshot_id: str
    offset: int
    installed: bool = False

    @property
    def size(self) -> int:
        return HEADER_BYTES + len(self.snapshot_id)


@attrs.frozen
class SnapshotAbort:
    """Either side: this transfer is over without success, and why."""

    kind: ClassVar[str] = "snapshot_abort"

    from_: int
    to: int
    snapshot_id: str
    reason: str

    @property
    def size(self) -> int:
        return HEADER_BYTES + len(self.snapshot_id) + len(self.reason)


@attrs.frozen
class SnapshotManifestRequest:
    """Receiver to sender: "send me the pieces of snapshot ``snapshot_id``" (``Streaming(dedup=True)``)."""

    kind: ClassVar[str] = "snapshot_manifest_request"

    from_: int
    to: int
    snapshot_index: int
    snapshot_term: int
    snapshot_id: str

    @property
    def size(self) -> int:
        return HEADER_BYTES + len(self.snapshot_id)


@attrs.frozen
class SnapshotManifest:
    """Sender to receiver: the snapshot's content-defined pieces, as ``(length, digest)`` in order.

    See :mod:`simulator.snapshots.dedup`; ``piece_format`` names how they were
    cut and hashed, so a receiver that cuts otherwise uses none of them.
    """

    kind: ClassVar[str] = "snapshot_manifest"

    from_: int
    to: int
    snapshot_id: str
    total_size: int
    pieces: tuple[tuple[int, bytes], ...] = attrs.field(repr=lambda pieces: f"<{len(pieces)} pieces>")
    piece_format: str = ""

    @property
    def size(self) -> int:
        # Each piece: a 4-byte length and its digest (dedup.MANIFEST_BYTES_PER_PIECE).
        return HEADER_BYTES + len(self.snapshot_id) + len(self.piece_format) + 36 * len(self.pieces)


STREAM_MESSAGES = (SnapshotRequest, SnapshotChunk, SnapshotAck, SnapshotAbort, SnapshotManifestRequest,
                   SnapshotManifest)
