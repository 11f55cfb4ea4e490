"""``MemStorageWithSnapshot``: ``MemStorage`` plus the snapshot's data (the seed's starting point).

By default the data is held in memory, exactly as the seed describes. Given
a ``data_store`` (any object with the :class:`SnapshotDataStore` methods, such
as ``simulator.snapshots.DiskSnapshotStore``), the data lives there instead
and memory holds none of it (seed phase 1, item 2): snapshots survive
restarts, and a leader streams them from the store chunk by chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Protocol

import attrs

from . import defects
from .errors import SnapshotTemporarilyUnavailableError
from .messages import ConfState, Snapshot, SnapshotMetadata
from .storage import MemStorage


class SnapshotDigests(Protocol):
    """How a storage digests snapshot data (``simulator.snapshots.SNAPSHOT_DIGESTS`` is one).

    A digest is ``<algorithm>:<hex>``: the name travels with it, so the core
    carries it as an opaque string and never chooses the algorithm. This layer
    may use the standard library only, so its own default
    (:data:`STDLIB_DIGESTS`) knows sha256 alone; the layer that builds
    storages hands them one that knows faster algorithms (BLAKE3).
    """

    def digest_of(self, data: bytes, *, like: str = "") -> str:
        """``data``'s digest in the algorithm ``like`` names (the default one if empty);
        ``ValueError`` naming an algorithm it does not know."""


class _StdlibDigests:
    """sha256 from ``hashlib``: the digests the core can compute without help."""

    default = "sha256"

    def digest_of(self, data: bytes, *, like: str = "") -> str:
        algorithm = like.partition(":")[0] if like else self.default
        if algorithm != "sha256":
            raise ValueError(
                f"digest algorithm {algorithm!r} is not known to this storage (known: sha256); "
                "give the storage digests=simulator.snapshots.SNAPSHOT_DIGESTS"
            )
        return "sha256:" + hashlib.sha256(data).hexdigest()


STDLIB_DIGESTS: SnapshotDigests = _StdlibDigests()


def snapshot_digest(data: bytes, *, like: str = "", digests: SnapshotDigests = STDLIB_DIGESTS) -> str:
    """The digest a snapshot's data is identified and verified by (see :class:`SnapshotDigests`)."""
    return digests.digest_of(data, like=like)


def snapshot_id_for(term: int, index: int, digest: str) -> str:
    """Names a snapshot by what it is: the same state gives the same id on every node."""
    return f"{term}-{index}-{digest.partition(':')[2][:12]}"


class SnapshotDataStore(Protocol):
    """The part of a snapshot store this storage uses (``simulator.snapshots.SnapshotStore``)."""

    def save_snapshot(self, index, data, *, term, conf_state=None, snapshot_id=None) -> str: ...

    def has_snapshot(self, index: int) -> bool: ...

    def snapshot_metadata(self, index: int): ...

    def stream_snapshot(self, index: int, offset: int = 0) -> Iterator[bytes]: ...

    def read_snapshot(self, index: int) -> bytes: ...

    def compact_snapshots(self, keep_count: int) -> list[int]: ...


@attrs.define(eq=False)
class MemStorageWithSnapshot(MemStorage):
    """``MemStorage`` that also keeps the snapshot *data*; see the module docstring.

    ``embed_data`` chooses what :meth:`snapshot` hands the leader: the full
    snapshot, for embedded transfer, or metadata only (``data=None``, with
    size, digest and id filled in), for out-of-band streaming. Either way
    :meth:`snapshot_data` returns the bytes for a given snapshot.
    """

    embed_data: bool = True
    data_store: SnapshotDataStore | None = None
    #: What snapshot data is digested with; the cluster passes ``simulator.snapshots.SNAPSHOT_DIGESTS``.
    digests: SnapshotDigests = STDLIB_DIGESTS
    #: Snapshots the data store keeps (the newest ones); older ones are deleted.
    keep_snapshots: int = 2
    _snapshot_data: bytes | None = None
    #: Times deleting older snapshots from the data store failed (a full or broken disk).
    prune_failures: int = 0

    @classmethod
    def new_with_conf_state(
        cls, conf_state: ConfState, *, embed_data: bool = True, data_store=None, digests=None
    ) -> MemStorageWithSnapshot:
        storage = super().new_with_conf_state(conf_state)
        storage.embed_data = embed_data
        storage.data_store = data_store
        if digests is not None:
            storage.digests = digests
        return storage

    # -- what is held ---------------------------------------------------------------

    def _holds_data(self) -> bool:
        metadata = self._snapshot_metadata
        if self._snapshot_data is not None:
            return True
        store = self.data_store
        return (
            store is not None
            and metadata.index > 0
            and store.has_snapshot(metadata.index)
            and store.snapshot_metadata(metadata.index).digest == metadata.digest
        )

    def _data(self) -> bytes | None:
        if self._snapshot_data is not None:
            return self._snapshot_data
        if self._holds_data():
            return self.data_store.read_snapshot(self._snapshot_metadata.index)
        return None

    def snapshot(self, request_index: int, to: int) -> Snapshot:
        metadata = super().snapshot(request_index, to).metadata
        if metadata.index > 0 and not self._holds_data():
            raise SnapshotTemporarilyUnavailableError(
                f"snapshot {metadata.index} has metadata but its data is not held yet"
            )
        return Snapshot(metadata, self._data() if self.embed_data else None)

    def full_snapshot(self) -> Snapshot:
        """The newest snapshot with its data (read whole from the store, if one is used)."""
        return Snapshot(self._snapshot_metadata, self._data())

    def snapshot_chunks(self) -> Iterable[bytes] | None:
        """The newest snapshot's data as chunks (streamed from the store), or ``None``."""
        if self._snapshot_data is not None:
            return [self._snapshot_data]
        if self._holds_data():
            return self.data_store.stream_snapshot(self._snapshot_metadata.index)
        return None

    def snapshot_data(self, snapshot_id: str) -> bytes:
        """Data of the snapshot named ``snapshot_id``; ``KeyError`` if it is not the one held."""
        if snapshot_id != self._snapshot_metadata.snapshot_id or not self._holds_data():
            raise KeyError(
                f"snapshot {snapshot_id!r} is not held; held: "
                f"{self._snapshot_metadata.snapshot_id or 'none'!r}"
            )
        return self._data()

    @property
    def snapshot_data_size(self) -> int:
        """Bytes of snapshot data this storage holds in memory (none when a store holds it)."""
        return 0 if self._snapshot_data is None else len(self._snapshot_data)

    # -- writing ----------------------------------------------------------------------

    def create_snapshot(
        self, index: int, conf_state: ConfState | None = None, data: bytes | Iterable[bytes] | None = None
    ) -> Snapshot:
        """Record a snapshot of the applied state at ``index`` with its data.

        ``data`` is bytes or an iterable of byte chunks (a state machine's
        ``snapshot_chunks``). With a data store the chunks go straight into it
        as they are produced and memory never holds the whole snapshot; without
        one the data is kept in memory, joined.
        """
        if data is None:
            raise ValueError("MemStorageWithSnapshot.create_snapshot needs the snapshot data")
        if self.data_store is not None and not isinstance(data, (bytes, bytearray, memoryview)):
            return self._create_in_store(index, conf_state or self._conf_state, data)
        data = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else b"".join(data)
        snapshot = super().create_snapshot(index, conf_state, data)
        self._keep(snapshot.metadata, data)
        return snapshot

    def _create_in_store(self, index: int, conf_state: ConfState, chunks: Iterable[bytes]) -> Snapshot:
        self.check_snapshot_index(index)  # before a single chunk is produced
        term = self.term(index)
        store = self.data_store
        # The store hashes the chunks as it writes them; its default id has our form.
        store.save_snapshot(index, chunks, term=term, conf_state=conf_state)
        stored = store.snapshot_metadata(index)
        metadata = SnapshotMetadata(
            index=index,
            term=term,
            conf_state=conf_state,
            size=stored.size,
            digest=stored.digest,
            snapshot_id=snapshot_id_for(term, index, stored.digest),
        )
        self._snapshot_metadata = metadata
        self._snapshot_data = None
        self._prune()
        return Snapshot(metadata, None)

    def _prune(self) -> None:
        """Delete data-store snapshots older than the newest ``keep_snapshots``.

        Runs after the new snapshot is held, so a failure (``OSError``: a full or
        broken disk) loses nothing: the old snapshots stay until the next prune.
        """
        try:
            self.data_store.compact_snapshots(self.keep_snapshots)
        except OSError:
            self.prune_failures += 1

    def _keep(self, metadata: SnapshotMetadata, data: bytes) -> None:
        if self.data_store is None:
            self._snapshot_data = data
            return
        self._snapshot_data = None
        store = self.data_store
        if not (store.has_snapshot(metadata.index)
                and store.snapshot_metadata(metadata.index).digest == metadata.digest):
            store.save_snapshot(metadata.index, data, term=metadata.term,
                                conf_state=metadata.conf_state, snapshot_id=metadata.snapshot_id)
        self._prune()

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Install metadata only; the data held so far belongs to an older snapshot, so drop it."""
        super().apply_snapshot(snapshot)
        self._snapshot_data = None

    def apply_snapshot_with_data(self, snapshot: Snapshot) -> None:
        """Install a snapshot and keep its data; refuses data that does not match the metadata."""
        if snapshot.data is None:
            raise ValueError(
                f"snapshot {snapshot.index} has no data; fetch it before apply_snapshot_with_data"
            )
        expected = snapshot.metadata
        if expected.size and expected.size != len(snapshot.data):
            raise ValueError(
                f"snapshot {snapshot.index} data is {len(snapshot.data)} bytes, "
                f"metadata says {expected.size}"
            )
        actual = self.digests.digest_of(snapshot.data, like=expected.digest) if expected.digest else ""
        if actual != expected.digest:
            raise ValueError(
                f"snapshot {snapshot.index} data digest is {actual}, metadata says {expected.digest}"
            )
        data = bytes(snapshot.data)
        self.apply_snapshot(snapshot)
        self._keep(snapshot.metadata, data)

    def apply_snapshot_from_store(self, snapshot: Snapshot) -> None:
        """Install a snapshot whose data was already received into the data store."""
        metadata = snapshot.metadata
        store = self.data_store
        if store is None:
            raise ValueError(f"snapshot {metadata.index}: no data store to take the data from")
        if not store.has_snapshot(metadata.index):
            raise ValueError(f"snapshot {metadata.index} is not in the data store; receive it first")
        held = store.snapshot_metadata(metadata.index).digest
        if held != metadata.digest and not defects.active(defects.INSTALL_UNVERIFIED):
            raise ValueError(
                f"snapshot {metadata.index} in the store has digest {held}, metadata says {metadata.digest}"
            )
        self.apply_snapshot(snapshot)
        self._prune()

    def _metadata_for(
        self, index: int, term: int, conf_state: ConfState, data: bytes | None
    ) -> SnapshotMetadata:
        assert data is not None
        digest = self.digests.digest_of(data)
        return SnapshotMetadata(
            index=index,
            term=term,
            conf_state=conf_state,
            size=len(data),
            digest=digest,
            snapshot_id=snapshot_id_for(term, index, digest),
        )
