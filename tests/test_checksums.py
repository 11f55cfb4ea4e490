"""Chunk checksums are versioned: current chunks use CRC-32C, version-1 (CRC-32) chunks still verify.

Mirrors ``simulator/snapshots/checksums.py`` and the two places that judge a
chunk by its checksum: a streamed chunk (``IncomingTransfer.check_chunk``)
and a pulled one (``PullDownload.check``).
"""

from __future__ import annotations

import zlib

import attrs
import pytest

from simulator.snapshots.checksums import (
    CHUNK_CHECKSUM_VERSION,
    CHUNK_CHECKSUMS,
    UnknownChecksumVersion,
    checksum_name,
    chunk_checksum,
)
from transports.streaming import IncomingTransfer, SnapshotChunk, SnapshotOffer, Verdict
from transports.streaming.pull import PullDownload, SnapshotLocation

CHECK_INPUT = b"123456789"  # the standard check string of CRC catalogues


def test_each_version_is_the_algorithm_it_names():
    assert chunk_checksum(CHECK_INPUT, 1) == 0xCBF43926 == zlib.crc32(CHECK_INPUT)  # CRC-32/ISO-HDLC
    assert chunk_checksum(CHECK_INPUT, 2) == 0xE3069283  # CRC-32C/iSCSI
    assert CHUNK_CHECKSUM_VERSION == 2 and checksum_name(CHUNK_CHECKSUM_VERSION) == "crc32c"
    assert chunk_checksum(CHECK_INPUT) == chunk_checksum(CHECK_INPUT, 2)
    assert chunk_checksum(memoryview(CHECK_INPUT)) == 0xE3069283


def test_an_unknown_version_is_named_with_the_known_ones():
    with pytest.raises(UnknownChecksumVersion, match=r"version 9 unknown; one of 1 \(crc32\), 2 \(crc32c\)"):
        chunk_checksum(b"x", 9)
    assert sorted(CHUNK_CHECKSUMS) == [1, 2]


DATA = b"0123456789"


def offer() -> SnapshotOffer:
    return SnapshotOffer(source=1, index=10, term=2, size=len(DATA), digest="sha256:" + "0" * 64,
                         snapshot_id="2-10-x")


def chunk(data: bytes, *, version: int, checksum: int | None = None) -> SnapshotChunk:
    return SnapshotChunk(
        from_=1, to=2, snapshot_index=10, snapshot_term=2, snapshot_id="2-10-x", offset=0,
        total_size=len(DATA), is_final=True, data=data, checksum_version=version,
        checksum=chunk_checksum(data, version) if checksum is None else checksum,
    )


def receiver() -> IncomingTransfer:
    return IncomingTransfer(me=2, offer=offer(), verified_offset=0, started_at=0.0, last_progress_at=0.0)


@pytest.mark.parametrize("version", [1, 2])
def test_a_streamed_chunk_of_either_version_is_accepted(version):
    assert receiver().check_chunk(chunk(DATA, version=version)) == (Verdict.ACCEPT, "ok")


def test_a_streamed_chunk_is_judged_by_the_version_it_carries():
    # A CRC-32 value labelled as CRC-32C is wrong, and the reverse too: the label decides.
    crc32_value = zlib.crc32(DATA)
    verdict, detail = receiver().check_chunk(chunk(DATA, version=2, checksum=crc32_value))
    assert verdict is Verdict.REJECT and f"expected {crc32_value:#010x}" in detail
    corrupted = chunk(DATA, version=2)
    verdict, detail = receiver().check_chunk(attrs.evolve(corrupted, data=b"X" + DATA[1:]))
    assert verdict is Verdict.REJECT and "has checksum" in detail


def test_a_streamed_chunk_of_an_unknown_version_is_refused_by_name():
    transfer = receiver()
    verdict, detail = transfer.check_chunk(attrs.evolve(chunk(DATA, version=2), checksum_version=7))
    assert verdict is Verdict.REJECT
    assert "chunk checksum version 7 unknown" in detail
    assert transfer.rejections["bad checksum"] == 1


def test_new_chunks_carry_the_current_version_and_the_wire_size_is_unchanged():
    new = SnapshotChunk(from_=1, to=2, snapshot_index=10, snapshot_term=2, snapshot_id="2-10-x", offset=0,
                        total_size=10, is_final=True, checksum=chunk_checksum(DATA), data=DATA)
    assert new.checksum_version == CHUNK_CHECKSUM_VERSION
    assert new.size == attrs.evolve(new, checksum_version=1).size


@pytest.mark.parametrize("version", [1, 2])
def test_a_pulled_chunk_is_checked_with_the_locations_version(version):
    sums = (chunk_checksum(DATA[:4], version), chunk_checksum(DATA[4:8], version), chunk_checksum(DATA[8:], version))
    where = SnapshotLocation(from_=1, to=2, snapshot_index=10, snapshot_term=2, snapshot_id="2-10-x",
                             location="mem://x", total_size=10, chunk_size=4, checksums=sums,
                             checksum_version=version)
    download = PullDownload(where, read_latency=0.01, read_bandwidth=None)
    assert download.check(4, DATA[4:8]) == (Verdict.ACCEPT, "ok")
    other = 2 if version == 1 else 1
    mislabelled = PullDownload(attrs.evolve(where, checksum_version=other), read_latency=0.01, read_bandwidth=None)
    assert mislabelled.check(4, DATA[4:8])[0] is Verdict.REJECT
    unknown = PullDownload(attrs.evolve(where, checksum_version=0), read_latency=0.01, read_bandwidth=None)
    verdict, detail = unknown.check(4, DATA[4:8])
    assert verdict is Verdict.REJECT and "version 0 unknown" in detail
