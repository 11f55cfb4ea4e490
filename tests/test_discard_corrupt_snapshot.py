"""``discard_corrupt``: a store drops a snapshot whose bytes fail their digest, and only such a one.

A node that restarts and finds its newest snapshot damaged must be able to
receive the same index afresh (the leader's newest may be that index), and
``open_writer`` refuses an index the store holds; see
``tests/sweep_findings/damaged_snapshot_same_index.py``.
"""

from __future__ import annotations

import hashlib

import pytest

from simulator.snapshots import DiskSnapshotStore, FaultyStore, MemorySnapshotStore, SnapshotNotFoundError

DATA = bytes(range(10))


def disk_store(directory) -> DiskSnapshotStore:
    return DiskSnapshotStore(directory, durable=False, chunk_size=4, clock=lambda: 1700000000.5)


def flip_a_byte(directory, index: int) -> None:
    path = directory / f"snapshot-{index:016d}.bin"
    raw = bytearray(path.read_bytes())
    raw[3] ^= 0x01
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_is_discarded_and_the_index_can_be_received_again(tmp_path):
    store = disk_store(tmp_path)
    store.save_snapshot(1, b"older", term=1)
    store.save_snapshot(2, DATA, term=1)
    flip_a_byte(tmp_path, 2)
    store = disk_store(tmp_path)  # reopened: same size, so only reading can tell
    reason = store.discard_corrupt(2)
    assert reason is not None and "has digest" in reason
    assert not store.has_snapshot(2) and store.has_snapshot(1)
    assert not (tmp_path / f"snapshot-{2:016d}.bin").exists()
    digest = "sha256:" + hashlib.sha256(DATA).hexdigest()
    writer = store.open_writer(2, term=1, size=len(DATA), digest=digest, snapshot_id="1-2-x")
    writer.write(0, DATA)
    writer.commit()
    assert store.read_snapshot(2) == DATA
    assert disk_store(tmp_path).read_snapshot(2) == DATA  # and after a reopen


def test_a_good_snapshot_is_never_discarded(tmp_path):
    store = disk_store(tmp_path)
    store.save_snapshot(2, DATA, term=1)
    assert store.discard_corrupt(2) is None
    assert store.read_snapshot(2) == DATA


def test_through_a_faulty_store_and_for_an_unknown_index():
    store = FaultyStore(MemorySnapshotStore(chunk_size=4), name="n1")
    store.save_snapshot(2, DATA, term=1)
    assert store.discard_corrupt(2) is None
    with pytest.raises(SnapshotNotFoundError):
        store.discard_corrupt(3)
