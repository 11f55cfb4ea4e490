"""Committing a received snapshot in steps (``simulator/snapshots/writer.py``): ``prepare_commit``,
``CommitCheck.run`` (the disk store's read-back, which an async caller runs on another thread),
``commit(verified=...)``. The promises of ``commit()`` hold across the steps: nothing is published
unless the bytes read back as written, a mismatch removes the partial data and keeps the last good
snapshot, and a writer superseded while its check ran publishes nothing and touches nothing of the
transfer that superseded it. The gRPC puller's use of it is in ``test_grpc_snapshot_pull.py``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from simulator.snapshots import (
    DiskSnapshotStore,
    MemorySnapshotStore,
    ReplicatedSnapshotStore,
    SnapshotDigestError,
    SnapshotStoreError,
    digest_of,
)
from simulator.snapshots.disk_io import FaultyDisk

GOOD = b"the last good snapshot " * 40
DATA = bytes(range(256)) * 24
OTHER = b"a newer leader's snapshot " * 30


def new_store(kind: str, directory: Path, **options):
    if kind == "memory":
        return MemorySnapshotStore(chunk_size=512)
    return DiskSnapshotStore(directory, chunk_size=512, durable=False, **options)


def received(store, index: int = 5, data: bytes = DATA, snapshot_id: str = "five"):
    writer = store.open_writer(index, term=2, size=len(data), digest=digest_of(data), snapshot_id=snapshot_id)
    for offset in range(0, len(data), 1000):
        writer.write(offset, data[offset:offset + 1000])
    return writer


def partial_file(store: DiskSnapshotStore, index: int) -> Path:
    [partial] = [p for p in store.partial_transfers() if p.index == index]
    return Path(partial.location)


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_a_check_run_on_another_thread_then_commit_publishes_the_snapshot(tmp_path, kind):
    store = new_store(kind, tmp_path / "store")
    writer = received(store)
    check = writer.prepare_commit()
    assert not store.has_snapshot(5)  # nothing is published before commit(verified=...)
    worker = threading.Thread(target=check.run)
    worker.start()
    worker.join()
    assert check.ran and check.error is None
    snapshot = writer.commit(verified=check)
    assert snapshot.digest == digest_of(DATA) and store.read_snapshot(5) == DATA
    assert store.partial_transfers() == [] and writer.closed


def test_the_disk_store_reads_back_in_the_check_and_not_again_in_commit(tmp_path):
    store = new_store("disk", tmp_path / "store")
    writer = received(store)
    check = writer.prepare_commit()
    reads: list[str] = []
    original = store.files.open

    def recording_open(path, mode):
        if "r" in mode and "+" not in mode:
            reads.append(Path(path).suffix)
        return original(path, mode)

    store.files = type(store.files)()
    store.files.open = recording_open  # this store's file layer only
    check.run()
    assert reads == [".partial"]
    writer.commit(verified=check)
    assert reads == [".partial"]  # the publish does not read the data again
    assert store.read_snapshot(5) == DATA


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_a_writer_superseded_while_its_check_ran_publishes_nothing(tmp_path, kind):
    store = new_store(kind, tmp_path / "store")
    writer = received(store)
    check = writer.prepare_commit()
    newer = store.open_writer(7, term=3, size=len(OTHER), digest=digest_of(OTHER), snapshot_id="seven")
    newer.write(0, OTHER[:100])
    check.run()
    with pytest.raises(SnapshotStoreError, match="superseded"):
        writer.commit(verified=check)
    assert store.list_snapshots() == []
    assert [(p.index, p.offset) for p in store.partial_transfers()] == [(7, 100)]  # the newer transfer is intact
    newer.write(100, OTHER[100:])
    assert newer.commit().digest == digest_of(OTHER)


def test_a_check_that_read_the_superseding_transfers_file_removes_nothing(tmp_path):
    # A newer offer at the same index reuses the file name: the check reads the new, sparse
    # partial, which does not match; the writer was superseded, so that is not its mismatch to act on.
    store = new_store("disk", tmp_path / "store")
    store.save_snapshot(3, GOOD, term=1)
    writer = received(store)
    check = writer.prepare_commit()
    newer = store.open_writer(5, term=3, size=len(OTHER), digest=digest_of(OTHER), snapshot_id="five-again")
    newer.write(0, OTHER[:100])
    check.run()
    assert check.error is not None  # it read other bytes
    with pytest.raises(SnapshotStoreError, match="superseded"):
        writer.commit(verified=check)
    assert [(p.snapshot_id, p.offset) for p in store.partial_transfers()] == [("five-again", 100)]
    assert [s.index for s in store.list_snapshots()] == [3]
    newer.write(100, OTHER[100:])
    newer.commit()
    assert store.read_snapshot(5) == OTHER and store.read_snapshot(3) == GOOD


def test_bytes_that_do_not_read_back_as_written_are_removed_and_the_last_good_snapshot_stays(tmp_path):
    disk = FaultyDisk()
    store = new_store("disk", tmp_path / "store", files=disk)
    store.save_snapshot(3, GOOD, term=1)
    writer = received(store)
    check = writer.prepare_commit()
    disk.flip_bit_on_read()  # the read-back meets other bytes than were written
    worker = threading.Thread(target=check.run)
    worker.start()
    worker.join()
    assert disk.injected["flipped_bit"] == 1
    with pytest.raises(SnapshotDigestError, match="does not read back as written.*partial data was removed"):
        writer.commit(verified=check)
    assert [s.index for s in store.list_snapshots()] == [3] and store.partial_transfers() == []
    assert store.reopened().read_snapshot(3) == GOOD and not store.reopened().has_snapshot(5)
    with pytest.raises(SnapshotStoreError, match="closed because its data did not read back"):
        writer.commit()


def test_a_failing_disk_during_the_check_keeps_the_partial_for_another_try(tmp_path):
    disk = FaultyDisk()
    store = new_store("disk", tmp_path / "store", files=disk)
    writer = received(store)
    check = writer.prepare_commit()
    disk.fail("read")
    check.run()
    with pytest.raises(OSError, match="Input/output error on read"):
        writer.commit(verified=check)
    assert not store.has_snapshot(5) and [p.offset for p in store.partial_transfers()] == [len(DATA)]
    assert writer.commit().digest == digest_of(DATA)  # the same writer, all three steps at once


def test_commit_refuses_a_check_not_run_or_not_its_own(tmp_path):
    store = new_store("disk", tmp_path / "store")
    writer = received(store)
    check = writer.prepare_commit()
    with pytest.raises(SnapshotStoreError, match="call its run"):
        writer.commit(verified=check)
    resumed = store.open_writer(5, term=2, size=len(DATA), digest=digest_of(DATA), snapshot_id="five")
    with pytest.raises(SnapshotStoreError, match="expects the CommitCheck this writer's prepare_commit"):
        resumed.commit(verified=check)
    check.run()
    with pytest.raises(SnapshotStoreError, match="run\\(\\) once"):
        check.run()
    assert not store.has_snapshot(5)
    assert resumed.commit().digest == digest_of(DATA)


def test_prepare_commit_makes_the_checks_commit_makes_first(tmp_path):
    store = new_store("disk", tmp_path / "store")
    writer = store.open_writer(5, term=2, size=len(DATA), digest=digest_of(DATA), snapshot_id="five")
    writer.write(0, DATA[:100])
    with pytest.raises(SnapshotStoreError, match="commit after 100 of"):
        writer.prepare_commit()
    wrong = DATA[:-1] + b"\x00"
    writer.write(100, wrong[100:])
    with pytest.raises(SnapshotDigestError, match="partial data was removed"):
        writer.prepare_commit()
    assert store.partial_transfers() == []


def test_a_replicated_stores_writer_commits_in_steps_and_replicates(tmp_path):
    secondary = MemorySnapshotStore()
    store = ReplicatedSnapshotStore(new_store("disk", tmp_path / "store"), [secondary])
    writer = received(store)
    check = writer.prepare_commit()
    check.run()
    writer.commit(verified=check)
    assert secondary.read_snapshot(5) == DATA and store.read_snapshot(5) == DATA
