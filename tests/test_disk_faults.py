"""The disk store under each fault of its file layer: detected, and nothing good lost (issue 22).

One :class:`~simulator.snapshots.disk_io.FaultyDisk` under one
``DiskSnapshotStore``: a full disk, an I/O error on read, write or fsync, a
flipped bit on read, a misdirected write, fsyncs that lie until a crash (and
a torn write at that crash). For each: the operation fails with a named
error or the bytes are refused by a checksum or digest, the store stays
consistent with what a reopened store finds, and the last good snapshot is
never lost.
"""

from __future__ import annotations

import errno
import hashlib

import pytest

from simulator.snapshots import DiskSnapshotStore, SnapshotCorruptError, SnapshotDigestError
from simulator.snapshots.disk import WriteNotReadBackError
from simulator.snapshots.disk_io import FaultyDisk, Files
from simulator.snapshots.files import TMP

OLD = bytes(range(256)) * 8  # 2 KiB: several 512-byte chunks
NEW = bytes(reversed(range(256))) * 8


def _store(directory, disk: Files | None = None) -> DiskSnapshotStore:
    return DiskSnapshotStore(directory, chunk_size=512, clock=lambda: 0.0, files=disk)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _no_temporary_files(directory) -> bool:
    return not [path for path in directory.iterdir() if path.name.endswith(TMP)]


@pytest.fixture
def disk():
    return FaultyDisk("test disk")


def test_a_full_disk_fails_saves_with_enospc_until_room_is_made(tmp_path, disk):
    store = _store(tmp_path, disk)
    store.save_snapshot(1, OLD, term=1)
    disk.fill()
    with pytest.raises(OSError) as raised:
        store.save_snapshot(2, NEW, term=1)
    assert raised.value.errno == errno.ENOSPC and disk.injected["enospc"] >= 1
    assert [s.index for s in store.list_snapshots()] == [1] and _no_temporary_files(tmp_path)
    assert store.read_snapshot(1) == OLD  # reads still work on a full disk
    disk.make_room()
    store.save_snapshot(2, NEW, term=1)
    assert [s.index for s in store.reopened().list_snapshots()] == [1, 2]


@pytest.mark.parametrize("op", ["write", "fsync"])
def test_an_io_error_on_write_or_fsync_publishes_nothing(tmp_path, disk, op):
    store = _store(tmp_path, disk)
    store.save_snapshot(1, OLD, term=1)
    disk.fail(op)
    with pytest.raises(OSError) as raised:
        store.save_snapshot(2, NEW, term=1)
    assert raised.value.errno == errno.EIO and disk.injected[f"eio_{op}"] == 1
    assert [s.index for s in store.list_snapshots()] == [1]
    assert [s.index for s in store.reopened().list_snapshots()] == [1] and _no_temporary_files(tmp_path)
    store.save_snapshot(2, NEW, term=1)  # one-shot: the next try succeeds
    assert store.read_snapshot(2) == NEW


def test_an_io_error_on_read_fails_that_read_only(tmp_path, disk):
    store = _store(tmp_path, disk)
    store.save_snapshot(1, OLD, term=1)
    disk.fail("read")
    with pytest.raises(OSError) as raised:
        store.read_snapshot(1)
    assert raised.value.errno == errno.EIO
    assert store.read_snapshot(1) == OLD


def test_a_bit_flipped_on_read_is_caught_by_the_digest_and_the_next_read_is_right(tmp_path, disk):
    store = _store(tmp_path, disk)
    store.save_snapshot(1, OLD, term=1)
    disk.flip_bit_on_read()
    with pytest.raises(SnapshotCorruptError, match="digest"):
        store.read_snapshot(1)
    assert disk.injected["flipped_bit"] == 1
    assert store.read_snapshot(1) == OLD  # the disk itself holds the right bytes


def test_a_bit_flipped_while_recovering_a_transfer_never_passes_for_good_data(tmp_path, disk):
    store = _store(tmp_path, disk)
    store.save_snapshot(1, OLD, term=1)
    writer = store.open_writer(2, term=1, size=len(NEW), digest=_digest(NEW), snapshot_id="two")
    writer.write(0, NEW[:512])
    writer.write(512, NEW[512:1024])
    disk.flip_bit_on_read()
    # The process restarts; recovery reads the trailer slots (checksummed) and re-hashes the
    # verified prefix: wherever the flip lands, it resumes only at an offset whose bytes match.
    reopened = _store(tmp_path, disk)
    assert disk.injected["flipped_bit"] == 1
    [partial] = reopened.partial_transfers() or [None]
    offset = 0 if partial is None else partial.offset
    resumed = reopened.open_writer(2, term=1, size=len(NEW), digest=_digest(NEW), snapshot_id="two")
    resumed.write(offset, NEW[offset:])
    assert resumed.commit().digest == _digest(NEW) and reopened.read_snapshot(2) == NEW
    assert reopened.read_snapshot(1) == OLD


def test_a_misdirected_write_of_a_snapshot_is_caught_before_it_is_published(tmp_path, disk):
    store = _store(tmp_path, disk)
    store.save_snapshot(1, OLD, term=1)
    disk.misdirect_write()
    with pytest.raises(WriteNotReadBackError, match="does not read back as written") as raised:
        store.save_snapshot(2, NEW, term=1)
    assert raised.value.errno == errno.EIO and disk.injected["misdirected_write"] == 1
    assert [s.index for s in store.reopened().list_snapshots()] == [1] and _no_temporary_files(tmp_path)


def test_a_misdirected_chunk_of_a_transfer_restarts_it_as_a_digest_mismatch(tmp_path, disk):
    store = _store(tmp_path, disk)
    writer = store.open_writer(2, term=1, size=len(NEW), digest=_digest(NEW), snapshot_id="two")
    writer.write(0, NEW[:512])
    disk.misdirect_write()
    for offset in range(512, len(NEW), 512):  # every chunk passes its checksum in memory
        writer.write(offset, NEW[offset:offset + 512])
    with pytest.raises(SnapshotDigestError, match="does not read back as written"):
        writer.commit()
    assert store.list_snapshots() == [] and store.partial_transfers() == []
    again = store.open_writer(2, term=1, size=len(NEW), digest=_digest(NEW), snapshot_id="two")
    again.write(0, NEW)
    assert again.commit().digest == _digest(NEW) and store.read_snapshot(2) == NEW


def test_lost_fsyncs_lose_everything_since_at_the_crash_but_never_the_last_good_snapshot(tmp_path, disk):
    store = _store(tmp_path, disk)
    store.save_snapshot(1, OLD, term=1)
    disk.lose_fsyncs(tmp_path)
    store.save_snapshot(2, NEW, term=2)
    assert store.compact_snapshots(1) == [1]  # snapshot 1's files removed; the removal not durable
    assert disk.injected["lost_fsync"] > 0 and disk.lying
    reopened = store.reopened()  # the crash: the page cache is gone
    assert [s.index for s in reopened.list_snapshots()] == [1] and reopened.read_snapshot(1) == OLD
    assert not disk.lying  # a new boot: its fsyncs are real again


def test_a_torn_write_at_the_crash_is_caught_by_the_trailer_and_prefix_checks(tmp_path, disk):
    store = _store(tmp_path, disk)
    writer = store.open_writer(2, term=1, size=len(NEW), digest=_digest(NEW), snapshot_id="two")
    writer.write(0, NEW[:1024])
    disk.lose_fsyncs(tmp_path, torn=True)
    writer.write(1024, NEW[1024:1536])  # acknowledged, then half of its last write survives the crash
    reopened = store.reopened()
    assert disk.injected["torn_write"] == 1
    [partial] = reopened.partial_transfers()
    assert partial.offset == 1024  # the last verified offset that really was durable
    resumed = reopened.open_writer(2, term=1, size=len(NEW), digest=_digest(NEW), snapshot_id="two")
    resumed.write(1024, NEW[1024:])
    assert resumed.commit().digest == _digest(NEW) and reopened.read_snapshot(2) == NEW


def test_a_fault_armed_on_a_running_node_dies_with_it_but_a_full_disk_stays_full(tmp_path, disk):
    store = _store(tmp_path, disk)
    store.save_snapshot(1, OLD, term=1)
    disk.fail("read")
    disk.flip_bit_on_read()
    disk.misdirect_write()
    disk.fill()
    reopened = store.reopened()
    assert reopened.read_snapshot(1) == OLD and disk.injected["eio_read"] == 0
    with pytest.raises(OSError):
        reopened.save_snapshot(2, NEW, term=1)
    disk.heal()
    reopened.save_snapshot(2, NEW, term=1)
    assert disk.injected["misdirected_write"] == 0


def test_an_unknown_operation_is_refused_with_the_ones_expected(disk):
    with pytest.raises(ValueError, match="op must be one of read, write, fsync, got 'sync'"):
        disk.fail("sync")
