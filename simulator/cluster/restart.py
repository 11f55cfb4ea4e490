"""What a restarting node may trust of its newest snapshot.

A node's Raft storage survives a crash with the metadata of its newest
snapshot (index, term, digest); the bytes live in its snapshot store, which
may have lost them meanwhile (files deleted, truncated, a flipped byte).
:func:`restore_newest` rebuilds the state machine from those bytes only after
checking every one of them against the digest: a damaged snapshot is
reported, never decoded (a decoder fed a flipped byte may raise anything).

A node whose snapshot is gone must not claim its index (its state machine
would silently miss everything the snapshot held). It keeps its Raft log and
term, so its votes stay as safe as before, but it applies nothing, takes no
part in elections and asks the leader for a snapshot
(``RawNode.request_snapshot``); once one is installed it is a normal
follower again. :class:`SnapshotWait` is that state.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ..machines.contracts import snapshot_chunks_of
from ..raft import MemStorageWithSnapshot, MessageType, RawNode, RequestSnapshotDroppedError, Role
from ..snapshots import SnapshotCorruptError, SnapshotStoreError
from ..snapshots.digests import hasher_digest, new_hasher


def state_digest(machine, index: int) -> str:
    """The digest of ``machine``'s snapshot at ``index``, hashed as its chunks are made.

    The same digest stores and storages give new snapshot data (``blake3:<hex>``), so a
    state compares equal to a snapshot of it: the contract makes the bytes canonical.
    """
    hasher = new_hasher()
    for chunk in snapshot_chunks_of(machine, index):
        hasher.update(chunk)
    return hasher_digest(hasher)


@attrs.frozen
class Restored:
    """A fresh state machine restored from the newest snapshot, or empty and why."""

    machine: object
    lost: str | None = None  # why the newest snapshot could not be restored


def restore_newest(storage: MemStorageWithSnapshot, make_state_machine: Callable[[], object]) -> Restored:
    """The state machine as of the storage's newest snapshot; see the module docstring."""
    machine = make_state_machine()
    metadata = storage.snapshot_metadata
    if metadata.index == 0:
        return Restored(machine)
    store = storage.data_store
    if store is None:  # embedded: the data is part of the Raft storage itself
        chunks = storage.snapshot_chunks()
        if chunks is None:
            return Restored(machine, f"snapshot {metadata.index} has no data")
        machine.restore_from_snapshot(chunks)
        return Restored(machine)
    index = metadata.index
    try:
        if not store.has_snapshot(index):
            return Restored(machine, f"snapshot {index} is not in the store (its files are gone or damaged)")
        held = store.snapshot_metadata(index)
        if metadata.digest and held.digest != metadata.digest:
            return Restored(machine, f"the store holds snapshot {index} with digest {held.digest}, "
                                     f"Raft's storage recorded {metadata.digest}")
        for _ in store.stream_snapshot(index):
            pass  # every byte is hashed; the stream raises before its end on a mismatch
    except SnapshotCorruptError as error:
        # Its bytes are bad, not just unreadable for now: the store must stop holding
        # it, or the node would take it for the leader's snapshot at the same index.
        discard = getattr(store, "discard_corrupt", None)  # stores that can tell
        if discard is not None:
            discard(index)
        return Restored(machine, f"snapshot {index} is damaged and was discarded: {error}")
    except (SnapshotStoreError, OSError) as error:
        return Restored(machine, f"snapshot {index} cannot be read back: {error}")
    machine.restore_from_snapshot(store.stream_snapshot(index))
    return Restored(machine)


@attrs.define(eq=False)
class SnapshotWait:
    """A node that lost its snapshot, waiting for the leader's; see the module docstring."""

    lost_index: int
    reason: str
    requested: bool = False

    def declines(self, message) -> bool:
        """A leader transfer to this node: refused, its state cannot serve as a leader's."""
        return getattr(message, "msg_type", None) is MessageType.TIMEOUT_NOW

    def ask(self, node: RawNode) -> bool:
        """Ask the leader for a snapshot once one is known; whether a request went out now."""
        raft = node.raft
        if self.requested or raft.role is not Role.FOLLOWER or not raft.leader_id:
            return False
        try:
            # At or past our commit index: everything we may have to apply is in it.
            node.request_snapshot()
        except RequestSnapshotDroppedError:
            return False
        self.requested = True
        return True
