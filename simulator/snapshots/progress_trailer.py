"""The progress of a partial transfer, kept in two slots after its data: one fsync per chunk.

Theory of operation. A partial file is laid out at the start of a transfer as
``size`` bytes of data region followed by a trailer of two fixed-size slots::

    [0, size)                    the snapshot's bytes, written in order
    [size, size + SLOT)          slot 0  } each: magic, sequence number, offset,
    [size + SLOT, size + 2 SLOT) slot 1  } sha256 of the data before offset, CRC-32C

Receiving a chunk is two ``pwrite`` calls into this one file (the bytes, then
a progress record into the slot that does *not* hold the last durable record)
and one ``fsync``. Nothing orders the two writes on disk, so a crash may keep
either, both or neither, or a torn slot; recovery therefore trusts a slot only
if its CRC-32C is right *and* the data before its offset hashes to its digest,
and otherwise takes the other slot, which the previous fsync made durable
together with its data. So a crash re-sends at most the one chunk that was
being written, as with a record replaced by rename, at one fsync instead of
three (data, record, directory) and no rename.

Group durability (``sync_every=N``): records are written for every chunk but
fsynced every N chunks, always into the slot that does not hold the last
durable record; a crash then re-sends at most N chunks (N x chunk_size bytes).

The file is only ever longer than ``size`` in this layout (a data-only partial
never holds more than ``size`` bytes), which is how recovery tells the two
layouts apart; data-only partials of earlier versions, with their offset in
the JSON progress record, are still resumed. On commit the JSON record is
first rewritten with ``offset = size``, then the trailer is cut off, so a
crash at any commit step resumes (or completes) at ``size``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

import attrs

from .checksums import chunk_checksum
from .digests import hasher_digest, new_hasher

#: ``os.pread`` or a file layer's (:mod:`~simulator.snapshots.disk_io`).
Pread = Callable[[int, int, int], bytes]

SLOT_BYTES = 4096  # one page: a slot never shares a page with the other slot or with data
TRAILER_BYTES = 2 * SLOT_BYTES
MAGIC = b"RSPROG\x00\x02"  # raftsim progress, layout version 2
# The prefix digest is stored raw (32 bytes); its algorithm is the partial's
# own digest algorithm (in its JSON record), so the slot needs no name for it.
_BODY = struct.Struct(">8sQQ32s")  # magic, sequence, offset, raw digest of the prefix
_CHECK = struct.Struct(">I")  # CRC-32C (checksum version 2) of the body


@attrs.frozen
class SlotRecord:
    """One progress record: bytes ``[0, offset)`` are written and hash to ``prefix_digest``."""

    sequence: int
    offset: int
    prefix_digest: str


def encode_slot(record: SlotRecord) -> bytes:
    _, _, hex_digest = record.prefix_digest.partition(":")
    body = _BODY.pack(MAGIC, record.sequence, record.offset, bytes.fromhex(hex_digest))
    return body + _CHECK.pack(chunk_checksum(body, 2))


def decode_slot(raw: bytes, size: int, algorithm: str) -> SlotRecord | None:
    """The record in ``raw`` if its magic and checksum are right and its offset fits ``size``.

    ``algorithm`` names the prefix digest: the partial snapshot's digest algorithm.
    """
    length = _BODY.size + _CHECK.size
    if len(raw) < length:
        return None
    body, (check,) = raw[: _BODY.size], _CHECK.unpack(raw[_BODY.size : length])
    magic, sequence, offset, digest = _BODY.unpack(body)
    if magic != MAGIC or check != chunk_checksum(body, 2) or offset > size:
        return None
    return SlotRecord(sequence=sequence, offset=offset, prefix_digest=f"{algorithm}:{digest.hex()}")


def slot_position(size: int, slot: int) -> int:
    return size + slot * SLOT_BYTES


def has_trailer(file_size: int, size: int) -> bool:
    """Whether a partial file of ``file_size`` bytes for a ``size``-byte snapshot has the trailer."""
    return file_size == size + TRAILER_BYTES


def read_slots(descriptor: int, size: int, algorithm: str, pread: Pread = os.pread) -> list[SlotRecord]:
    """The valid records of both slots, newest (highest sequence) first (read with ``pread``)."""
    found = []
    for slot in (0, 1):
        record = decode_slot(pread(descriptor, SLOT_BYTES, slot_position(size, slot)), size, algorithm)
        if record is not None:
            found.append(record)
    return sorted(found, key=lambda record: record.sequence, reverse=True)


def hash_prefix_checking(descriptor: int, candidates: list[tuple[int, str]], block_size: int, algorithm: str,
                         pread: Pread = os.pread):
    """The best candidate ``(offset, prefix_digest)`` whose bytes match, with the hasher at it.

    Candidates are tried highest offset first; the file is read once, up to
    the highest offset, and the hasher is copied at each candidate's offset.
    Returns ``(offset, prefix_digest, hasher)`` or ``None`` if none matches.
    """
    wanted = sorted({offset for offset, _ in candidates})
    at: dict[int, object] = {}
    hasher, position = new_hasher(algorithm), 0
    for offset in wanted:
        while position < offset:
            block = pread(descriptor, min(block_size, offset - position), position)
            if not block:
                break
            hasher.update(block)
            position += len(block)
        if position == offset:
            at[offset] = hasher.copy()
    for offset, digest in sorted(candidates, key=lambda candidate: candidate[0], reverse=True):
        found = at.get(offset)
        if found is not None and hasher_digest(found) == digest:
            return offset, digest, found
    return None


@attrs.define
class TrailerState:
    """What the store remembers about one partial's trailer between chunks."""

    sequence: int = 0  # of the last record written
    durable_slot: int = 1  # holds the last durable record; the next record goes to the other
    unsynced: int = 0  # chunks written since the last fsync

    @property
    def next_slot(self) -> int:
        return 1 - self.durable_slot

    @classmethod
    def after_recovery(cls, record: SlotRecord | None, slot_of: dict[int, int]) -> TrailerState:
        """Resume after ``record`` (the one recovery trusted; ``None``: the JSON record)."""
        if record is None:
            return cls()
        return cls(sequence=record.sequence, durable_slot=slot_of[record.sequence])


def slot_of_sequences(descriptor: int, size: int, algorithm: str, pread: Pread = os.pread) -> dict[int, int]:
    """Sequence number -> slot, for the valid slots of a partial file."""
    found = {}
    for slot in (0, 1):
        record = decode_slot(pread(descriptor, SLOT_BYTES, slot_position(size, slot)), size, algorithm)
        if record is not None:
            found[record.sequence] = slot
    return found
