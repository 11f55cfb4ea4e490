"""SqliteRaftStorage: what a node process restarts from (transports/grpc/storage.py).

"Crash" here means dropping the object without closing it and opening the
file again, as a new process would; the process tests (test_grpc_cluster.py)
do the same with kill -9.
"""

from __future__ import annotations

import pytest

from simulator.raft import (
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
    snapshot_digest,
)
from simulator.snapshots import SNAPSHOT_DIGESTS, DiskSnapshotStore
from transports.grpc import SqliteRaftStorage

VOTERS = ConfState(voters=(1, 2, 3))


def open_storage(tmp_path, embed_data=False):
    store = DiskSnapshotStore(tmp_path / "snapshots", chunk_size=4)
    return SqliteRaftStorage.open(tmp_path / "raft.sqlite3", store, VOTERS, embed_data=embed_data)


def test_a_new_database_starts_from_the_initial_membership(tmp_path):
    storage = open_storage(tmp_path)
    assert storage.initial_state().conf_state == VOTERS
    assert (storage.first_index(), storage.last_index()) == (1, 0)


def test_vote_and_log_survive_a_crash(tmp_path):
    storage = open_storage(tmp_path)
    with storage.ready_batch():
        storage.append([Entry(1, 1, b"a"), Entry(1, 2, b"b"), Entry(2, 3, b"c")])
        storage.set_hard_state(HardState(term=2, vote=3, commit=2))
    # No close(): the process died. A new one opens the same file.
    again = SqliteRaftStorage.open(tmp_path / "raft.sqlite3", DiskSnapshotStore(tmp_path / "snapshots"),
                                   ConfState(voters=(9,)))
    assert again.initial_state().hard_state == HardState(term=2, vote=3, commit=2)
    assert again.initial_state().conf_state == VOTERS  # the stored one, not the flag's
    assert again.entries(1, 4) == [Entry(1, 1, b"a"), Entry(1, 2, b"b"), Entry(2, 3, b"c")]


def test_a_conflicting_suffix_is_replaced_on_disk_too(tmp_path):
    storage = open_storage(tmp_path)
    storage.append([Entry(1, 1), Entry(1, 2, b"old"), Entry(1, 3, b"old")])
    storage.append([Entry(2, 2, b"new")])
    again = open_storage(tmp_path)
    assert again.entries(1, 3) == [Entry(1, 1), Entry(2, 2, b"new")]
    assert again.last_index() == 2


def test_a_failed_batch_leaves_nothing_half_written(tmp_path):
    storage = open_storage(tmp_path)
    storage.set_hard_state(HardState(term=1, vote=1))
    with pytest.raises(RuntimeError), storage.ready_batch():
        storage.append([Entry(1, 1, b"x")])
        raise RuntimeError("the disk went away")
    again = open_storage(tmp_path)
    assert again.last_index() == 0 and again.hard_state == HardState(term=1, vote=1)


def test_snapshot_and_compaction_survive_a_crash(tmp_path):
    storage = open_storage(tmp_path)
    storage.append([Entry(1, i, bytes([i])) for i in range(1, 6)])
    storage.set_hard_state(HardState(term=1, commit=5))
    storage.create_snapshot(4, VOTERS, b"state at 4")
    storage.compact(5)
    again = open_storage(tmp_path)
    assert again.snapshot_metadata.index == 4 and again.snapshot_metadata.digest == snapshot_digest(
        b"state at 4", digests=SNAPSHOT_DIGESTS)
    assert (again.first_index(), again.last_index()) == (5, 5)
    assert again.full_snapshot().data == b"state at 4"  # the bytes come from the snapshot store


def test_an_installed_snapshot_replaces_the_log_durably(tmp_path):
    storage = open_storage(tmp_path, embed_data=True)
    storage.append([Entry(1, 1), Entry(1, 2)])
    data = b"leader state"
    meta = SnapshotMetadata(index=10, term=3, conf_state=ConfState(voters=(1, 2, 3), learners=(4,)),
                            size=len(data), digest=snapshot_digest(data), snapshot_id="3-10-x")
    storage.apply_snapshot_with_data(Snapshot(meta, data))
    again = open_storage(tmp_path)
    assert again.snapshot_metadata.index == 10 and again.conf_state.learners == (4,)
    assert (again.first_index(), again.last_index()) == (11, 10)
    assert again.hard_state.commit == 10 and again.hard_state.term == 3
    assert again.full_snapshot().data == data


def test_corrupt_embedded_data_is_refused_before_anything_is_stored(tmp_path):
    storage = open_storage(tmp_path, embed_data=True)
    meta = SnapshotMetadata(index=10, term=3, conf_state=VOTERS, size=4, digest=snapshot_digest(b"good"))
    with pytest.raises(ValueError, match="digest"):
        storage.apply_snapshot_with_data(Snapshot(meta, b"evil"))
    assert not storage.data_store.has_snapshot(10)
    assert open_storage(tmp_path).snapshot_metadata.index == 0


def test_peer_addresses_learned_from_membership_changes_are_kept(tmp_path):
    storage = open_storage(tmp_path)
    storage.save_peer_address(4, "127.0.0.1:7004")
    assert open_storage(tmp_path).peer_addresses() == {4: "127.0.0.1:7004"}


def test_the_database_runs_in_wal_mode_with_full_sync(tmp_path):
    storage = open_storage(tmp_path)
    assert storage._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert storage._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_joint_configuration_survives_a_crash(tmp_path):
    # A node restarted in the middle of a joint change must still count both halves.
    joint = ConfState(voters=(4, 5, 6), voters_outgoing=(1, 2, 3), learners_next=(3,), auto_leave=True)
    storage = open_storage(tmp_path)
    storage.set_conf_state(joint)
    again = SqliteRaftStorage.open(tmp_path / "raft.sqlite3", DiskSnapshotStore(tmp_path / "snapshots"), VOTERS)
    assert again.initial_state().conf_state == joint
    # A plain configuration is stored as before, so older databases read the same.
    storage.set_conf_state(VOTERS)
    again = SqliteRaftStorage.open(tmp_path / "raft.sqlite3", DiskSnapshotStore(tmp_path / "snapshots"), joint)
    assert again.initial_state().conf_state == VOTERS
