"""Per-chunk checksums, versioned: what a chunk on the wire is checked with.

A chunk carries its checksum and the version of the algorithm that made it,
so a receiver verifies chunks of an older sender the old way and names a
version it does not know instead of calling good data corrupt.

======= ========================= ==============================================
version algorithm                 why
======= ========================= ==============================================
1       CRC-32 (``zlib.crc32``)   the first format; still verified when received
2       CRC-32C (``crc32c``)      current: hardware (SSE4.2 / ARMv8 CRC) where the
                                  CPU has it; ~6x less CPU than zlib's CRC-32 per
                                  GiB and as strong against burst errors
======= ========================= ==============================================

Chosen by measurement (``benchmarks/checksums.py``, results in
``benchmarks/results/checksums.json``): per GiB of 1 MiB chunks, CRC-32C took
0.17x and xxh3-64 0.16x the CPU seconds of zlib's CRC-32 in the same run; the
two are within noise of each other, and CRC-32C is the checksum storage and
network protocols (iSCSI, ext4, gRPC's own framing in some stacks) standardise on,
with a 32-bit value that keeps the wire header and ``SnapshotLocation`` the same size.

The whole-snapshot digest stays sha256 (see ``benchmarks/checksums.py``): it
identifies snapshots in Raft's own metadata, which layer 0 computes with the
standard library only.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import crc32c as _crc32c

BytesLike = bytes | bytearray | memoryview

#: Algorithm of each checksum version: (name, function of the chunk's bytes).
CHUNK_CHECKSUMS: dict[int, tuple[str, Callable[[BytesLike], int]]] = {
    1: ("crc32", zlib.crc32),
    2: ("crc32c", _crc32c.crc32c),
}

#: The version new chunks are checksummed with.
CHUNK_CHECKSUM_VERSION = 2


class UnknownChecksumVersion(ValueError):
    """A chunk names a checksum version this build does not know."""


def checksum_name(version: int) -> str:
    try:
        return CHUNK_CHECKSUMS[version][0]
    except (KeyError, TypeError):
        known = ", ".join(f"{number} ({name})" for number, (name, _) in sorted(CHUNK_CHECKSUMS.items()))
        raise UnknownChecksumVersion(f"chunk checksum version {version!r} unknown; one of {known} expected") from None


def chunk_checksum(data: BytesLike, version: int = CHUNK_CHECKSUM_VERSION) -> int:
    """The checksum of one chunk under ``version`` (an unsigned 32-bit integer)."""
    checksum_name(version)  # raises for an unknown version
    return CHUNK_CHECKSUMS[version][1](data) & 0xFFFFFFFF
