"""The two-slot progress trailer: one fsync per chunk, and every crash state re-sends at most one chunk.

The crash harness here loses unsynced writes instead of stopping between
steps: it records every ``pwrite`` to the partial file and every ``fsync``,
and for each moment of a transfer builds each disk the crash could leave (the
image at the last fsync, plus any subset of the writes since, a slot write
possibly torn in half), opens a store on it and checks that the transfer
resumes no earlier than the last fsync promised, no later than was written,
and completes to the right snapshot from there. With ``sync_every=N`` the
promise is N chunks.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest

from simulator.snapshots import DEFAULT_ALGORITHM, DiskSnapshotStore, digest_of
from simulator.snapshots.progress_trailer import (
    SLOT_BYTES,
    TRAILER_BYTES,
    SlotRecord,
    decode_slot,
    encode_slot,
)

CHUNK = 64
DATA = bytes(range(256)) * 2 + b"tail!"  # 517 bytes: 9 chunks, the last one short
INDEX = 9


def partial_path(directory: Path) -> Path:
    return directory / f"snapshot-{INDEX:016}.partial"


class DiskRecorder:
    """Tracks what of the partial file is durable: its image at the last fsync and the writes since."""

    def __init__(self, path: Path, monkeypatch) -> None:
        self.path = path
        self.durable_image = b""
        self.pending: list[tuple[int, bytes]] = []
        self.durable_end = 0  # the offset the last fsync made durable
        self.chunk_end = 0  # the end of the chunk being written
        self.states: list[tuple[bytes, tuple[tuple[int, bytes], ...], int, int]] = []
        self.fsyncs = 0
        real_pwrite, real_fsync = os.pwrite, os.fsync

        def is_partial(descriptor: int) -> bool:
            return os.readlink(f"/proc/self/fd/{descriptor}") == str(self.path)

        def pwrite(descriptor, data, position):
            written = real_pwrite(descriptor, data, position)
            if is_partial(descriptor):
                self.pending.append((position, bytes(data[:written])))
                self.states.append((self.durable_image, tuple(self.pending), self.durable_end, self.chunk_end))
            return written

        def fsync(descriptor):
            real_fsync(descriptor)
            if is_partial(descriptor):
                self.fsyncs += 1
                self.durable_image = self.path.read_bytes()
                self.pending = []
                self.durable_end = self.chunk_end

        monkeypatch.setattr(os, "pwrite", pwrite)
        monkeypatch.setattr(os, "fsync", fsync)


def crash_images(durable: bytes, pending: tuple[tuple[int, bytes], ...]):
    """Every file a crash can leave: any subset of the pending writes, a slot write also torn."""
    for chosen in itertools.product(*[(None, "whole", "torn") if len(data) <= SLOT_BYTES and
                                      position >= len(DATA) else (None, "whole")
                                      for position, data in pending]):
        image = bytearray(durable)
        for (position, data), how in zip(pending, chosen):
            if how is None:
                continue
            piece = data if how == "whole" else data[: len(data) // 2]
            image[position : position + len(piece)] = piece
        yield bytes(image)


def receive(directory: Path, monkeypatch, sync_every: int) -> DiskRecorder:
    store = DiskSnapshotStore(directory, chunk_size=CHUNK, durable=True, sync_every=sync_every)
    recorder = DiskRecorder(partial_path(directory), monkeypatch)
    writer = store.open_writer(INDEX, term=2, size=len(DATA), digest=digest_of(DATA), snapshot_id="new")
    recorder.fsyncs = 0  # count the chunks' fsyncs, not the one that created the file
    for offset in range(0, len(DATA), CHUNK):
        recorder.chunk_end = min(offset + CHUNK, len(DATA))
        writer.write(offset, DATA[offset:recorder.chunk_end])
    monkeypatch.undo()
    return recorder


@pytest.mark.parametrize("sync_every", [1, 3])
def test_every_crash_state_of_a_transfer_resumes_within_its_promise(tmp_path, monkeypatch, sync_every):
    live = tmp_path / "live"
    recorder = receive(live, monkeypatch, sync_every)
    assert recorder.states, "the transfer should write through os.pwrite"
    checked = 0
    for number, (durable, pending, durable_end, chunk_end) in enumerate(recorder.states):
        for variant, image in enumerate(crash_images(durable, pending)):
            crashed = tmp_path / f"crash-{number}-{variant}"
            crashed.mkdir()
            shutil.copy(live / f"snapshot-{INDEX:016}.partial.json", crashed)
            partial_path(crashed).write_bytes(image)
            store = DiskSnapshotStore(crashed, chunk_size=CHUNK, durable=False)
            assert store.problems == []
            [partial] = store.partial_transfers()
            assert durable_end <= partial.offset <= chunk_end, (number, variant)
            assert chunk_end - partial.offset <= sync_every * CHUNK  # what a crash re-sends
            writer = store.open_writer(INDEX, term=2, size=len(DATA), digest=digest_of(DATA), snapshot_id="new")
            for offset in range(writer.offset, len(DATA), CHUNK):
                writer.write(offset, DATA[offset : offset + CHUNK])
            writer.commit()
            assert store.read_snapshot(INDEX) == DATA
            assert DiskSnapshotStore(crashed, chunk_size=CHUNK).read_snapshot(INDEX) == DATA
            shutil.rmtree(crashed)
            checked += 1
    assert checked > 2 * len(recorder.states)  # subsets and torn slots, not one image per moment


def test_one_fsync_per_chunk_and_one_per_group(tmp_path, monkeypatch):
    chunks = -(-len(DATA) // CHUNK)
    assert receive(tmp_path / "each", monkeypatch, 1).fsyncs == chunks
    # Every 3rd chunk, and the last one: 9 chunks -> 3 fsyncs.
    assert receive(tmp_path / "group", monkeypatch, 3).fsyncs == 3


def test_the_partial_carries_its_trailer_until_commit(tmp_path):
    store = DiskSnapshotStore(tmp_path, chunk_size=CHUNK, durable=False)
    writer = store.open_writer(INDEX, term=2, size=len(DATA), digest=digest_of(DATA), snapshot_id="new")
    writer.write(0, DATA[:CHUNK])
    writer.write(CHUNK, DATA[CHUNK : 2 * CHUNK])
    raw = partial_path(tmp_path).read_bytes()
    assert len(raw) == len(DATA) + TRAILER_BYTES
    slots = [decode_slot(raw[len(DATA) + slot * SLOT_BYTES :], len(DATA), DEFAULT_ALGORITHM) for slot in (0, 1)]
    assert sorted((record.sequence, record.offset) for record in slots) == [(1, CHUNK), (2, 2 * CHUNK)]
    assert slots[1].prefix_digest == digest_of(DATA[: 2 * CHUNK])
    for offset in range(2 * CHUNK, len(DATA), CHUNK):
        writer.write(offset, DATA[offset : offset + CHUNK])
    stored = writer.commit()
    assert Path(stored.location).stat().st_size == len(DATA)  # the trailer is cut off
    assert store.read_snapshot(INDEX) == DATA


def test_a_slot_is_trusted_only_with_its_checksum_and_within_the_size():
    record = SlotRecord(sequence=7, offset=100, prefix_digest=digest_of(b"x" * 100))
    raw = encode_slot(record)
    assert decode_slot(raw, 100, DEFAULT_ALGORITHM) == record
    assert decode_slot(raw, 99, DEFAULT_ALGORITHM) is None  # an offset past the snapshot
    flipped = bytearray(raw)
    flipped[12] ^= 1
    assert decode_slot(bytes(flipped), 100, DEFAULT_ALGORITHM) is None
    assert decode_slot(b"\0" * SLOT_BYTES, 100, DEFAULT_ALGORITHM) is None  # a slot never written (sparse zeros)


def test_sync_every_must_be_a_positive_count(tmp_path):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="sync_every must be an integer >= 1"):
            DiskSnapshotStore(tmp_path, sync_every=bad)


def test_a_reopened_store_keeps_its_group_durability(tmp_path):
    assert DiskSnapshotStore(tmp_path, sync_every=4).reopened().sync_every == 4


def violations(tmp_path, monkeypatch, sync_every: int = 1) -> list[str]:
    """The crash states whose recovery breaks the promise (empty for a correct store)."""
    live = tmp_path / "live"
    recorder = receive(live, monkeypatch, sync_every)
    found = []
    for number, (durable, pending, durable_end, chunk_end) in enumerate(recorder.states):
        for variant, image in enumerate(crash_images(durable, pending)):
            crashed = tmp_path / f"crash-{number}-{variant}"
            crashed.mkdir()
            shutil.copy(live / f"snapshot-{INDEX:016}.partial.json", crashed)
            partial_path(crashed).write_bytes(image)
            partials = DiskSnapshotStore(crashed, chunk_size=CHUNK, durable=False).partial_transfers()
            offset = partials[0].offset if partials else -1
            if not durable_end <= offset <= chunk_end:
                found.append(f"state {number}/{variant}: resumed at {offset}, promised {durable_end}..{chunk_end}")
            shutil.rmtree(crashed)
    return found


def test_the_harness_catches_a_record_written_over_the_durable_one(tmp_path, monkeypatch):
    from simulator.snapshots.progress_trailer import TrailerState

    # The mistake: always write into the slot that holds the last durable record.
    monkeypatch.setattr(TrailerState, "next_slot", property(lambda state: state.durable_slot))
    assert violations(tmp_path, monkeypatch)

