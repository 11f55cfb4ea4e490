"""``MemStorageWithSnapshot.apply_snapshot_from_store``: the install-time digest check (issue 15, item 16).

A streamed snapshot reaches the follower's store first; Raft's storage then
installs it from there. The store verified each chunk and the whole digest
as the bytes arrived, but what the storage installs must be the snapshot
Raft was offered: if the store holds different bytes at that index (another
leader's snapshot, a store changed behind the node's back), installing must
be refused and nothing lost. These tests fail if that check is switched off.
"""

from __future__ import annotations

import pytest

from simulator.raft import ConfState, HardState, Snapshot, SnapshotMetadata, defects
from simulator.raft.snapshot_storage import MemStorageWithSnapshot, snapshot_id_for
from simulator.snapshots import MemorySnapshotStore, digest_of

from test_storage import entries_with_terms

VOTERS = ConfState(voters=(1, 2, 3))
OFFERED = b"the state the leader snapshotted at 8"
OTHER = b"another leader's state at 8"


def follower_storage(store: MemorySnapshotStore | None) -> MemStorageWithSnapshot:
    storage = MemStorageWithSnapshot.new_with_conf_state(VOTERS, embed_data=False, data_store=store)
    storage.append(entries_with_terms(1, [1, 1, 2]))
    storage.set_hard_state(HardState(term=2, commit=3))
    return storage


def offered(data: bytes = OFFERED) -> Snapshot:
    digest = digest_of(data)
    metadata = SnapshotMetadata(index=8, term=3, conf_state=VOTERS, size=len(data), digest=digest,
                                snapshot_id=snapshot_id_for(3, 8, digest))
    return Snapshot(metadata, None)


def unchanged(storage: MemStorageWithSnapshot) -> bool:
    return (storage.snapshot_metadata.index, storage.first_index(), storage.last_index()) == (0, 1, 3)


def test_a_snapshot_whose_bytes_in_the_store_match_the_offer_is_installed():
    store = MemorySnapshotStore()
    store.save_snapshot(8, OFFERED, term=3)
    storage = follower_storage(store)

    storage.apply_snapshot_from_store(offered())

    assert storage.snapshot_metadata == offered().metadata
    assert (storage.first_index(), storage.last_index()) == (9, 8)
    assert storage.full_snapshot().data == OFFERED


def test_different_bytes_in_the_store_at_that_index_are_refused_and_nothing_is_lost():
    store = MemorySnapshotStore()
    store.save_snapshot(8, OTHER, term=3)
    storage = follower_storage(store)

    with pytest.raises(ValueError, match=(
            f"snapshot 8 in the store has digest {digest_of(OTHER)}, metadata says {digest_of(OFFERED)}")):
        storage.apply_snapshot_from_store(offered())

    assert unchanged(storage)


def test_the_defect_switch_installs_them_anyway_which_is_what_the_property_tests_must_catch():
    store = MemorySnapshotStore()
    store.save_snapshot(8, OTHER, term=3)
    storage = follower_storage(store)

    with defects.injected(defects.INSTALL_UNVERIFIED):
        storage.apply_snapshot_from_store(offered())

    assert storage.snapshot_metadata.index == 8


@pytest.mark.parametrize(
    ("store", "message"),
    [(None, "snapshot 8: no data store to take the data from"),
     (MemorySnapshotStore(), "snapshot 8 is not in the data store; receive it first")],
    ids=["no store", "not received"],
)
def test_a_snapshot_not_in_the_store_is_refused_and_nothing_is_lost(store, message):
    storage = follower_storage(store)

    with pytest.raises(ValueError, match=message):
        storage.apply_snapshot_from_store(offered())

    assert unchanged(storage)
