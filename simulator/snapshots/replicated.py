"""``ReplicatedSnapshotStore``: one primary store, copied to secondaries in other regions.

Theory of operation. Writes go to the primary only: ``save_snapshot`` and
committed ``SnapshotWriter`` s publish there first, and the call succeeds
when the primary has the snapshot. Then the snapshot is streamed to each
secondary (chunk by chunk, never whole in memory). A secondary that fails
keeps the snapshot on its *pending* list and is retried at every later
write and by :meth:`ReplicatedSnapshotStore.catch_up`; a failed copy never
leaves anything visible there (the secondary's own save is all or nothing).
Compaction runs on the primary, then the secondaries drop what the primary
dropped, so a secondary never deletes a snapshot the primary still relies on.

Reads go to the first store, in order (primary, then secondaries), that
answers and holds the snapshot. A stream that fails part way continues from the
same offset on the next store, with ranged reads where that store has them.
A store is unhealthy after a call to it failed, and healthy again after a
call succeeds; :meth:`ReplicatedSnapshotStore.replication_status` reports,
per secondary, what is pending (the lag, in snapshots and in index) and the
failures with the last error.

Use it for disaster recovery across regions: any one store can be lost and
the cluster still finds its snapshots.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import attrs

from ._bucket import ObjectStoreError
from .errors import SnapshotNotFoundError, SnapshotStoreError
from .metadata import PartialSnapshot, StoredSnapshot
from .protocol import SnapshotStore
from .writer import SnapshotWriter

T = TypeVar("T")

#: Failures that say "this store is not working now", as opposed to "no such snapshot".
_OUTAGES = (ObjectStoreError, OSError)


@attrs.frozen
class ReplicaStatus:
    """How far one secondary is behind the primary, and how copying to it went."""

    store: str
    healthy: bool
    pending: tuple[int, ...]  # snapshot indexes on the primary not yet copied here
    index_lag: int  # primary's newest index minus the newest copied here (0: caught up)
    replicated: int  # snapshots copied since the store was opened
    failures: int
    last_error: str | None


@attrs.define(eq=False)
class _Replica:
    store: Any
    healthy: bool = True
    pending: set[int] = attrs.Factory(set)
    replicated: int = 0
    copied_up_to: int = -1
    failures: int = 0
    last_error: str | None = None


def _name(store: Any) -> str:
    return getattr(store, "url", None) or repr(store)


class _ReplicatingWriter:
    """The primary's writer; its commit also replicates the new snapshot."""

    def __init__(self, writer: SnapshotWriter, owner: ReplicatedSnapshotStore) -> None:
        self._writer = writer
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)

    def __repr__(self) -> str:
        return repr(self._writer)

    def commit(self, **options: Any) -> StoredSnapshot:
        # ``options`` as SnapshotWriter.commit takes them (``verified=`` from its prepare_commit,
        # which reaches the primary's writer through __getattr__).
        snapshot = self._writer.commit(**options)
        self._owner._replicate(snapshot.index)
        return snapshot


class ReplicatedSnapshotStore:
    """A :class:`~simulator.snapshots.SnapshotStore` over a primary and secondaries; see the module docstring."""

    def __init__(self, primary: SnapshotStore, secondaries: list[SnapshotStore] | tuple[SnapshotStore, ...]) -> None:
        secondaries = list(secondaries)
        if not secondaries:
            raise ValueError("at least one secondary store expected; use the primary alone otherwise")
        for store in [primary, *secondaries]:
            if not isinstance(store, SnapshotStore):
                raise TypeError(f"a SnapshotStore expected, got {type(store).__name__}")
        self.primary = primary
        self._primary_healthy = True
        self._replicas = [_Replica(store) for store in secondaries]

    def __repr__(self) -> str:
        names = ", ".join(_name(replica.store) for replica in self._replicas)
        return f"<ReplicatedSnapshotStore primary={_name(self.primary)} secondaries=[{names}]>"

    @property
    def chunk_size(self) -> int:
        return self.primary.chunk_size

    @property
    def secondaries(self) -> list[Any]:
        return [replica.store for replica in self._replicas]

    # -- replication --------------------------------------------------------------------

    def _replicate(self, index: int) -> None:
        for replica in self._replicas:
            replica.pending.add(index)
        self.catch_up()

    def catch_up(self) -> list[ReplicaStatus]:
        """Copy every pending snapshot that the primary still holds; return the status."""
        held = {snapshot.index: snapshot for snapshot in self.primary.list_snapshots()}
        for replica in self._replicas:
            for index in sorted(replica.pending):
                snapshot = held.get(index)
                if snapshot is None:
                    replica.pending.discard(index)  # compacted on the primary: nothing to copy
                    continue
                try:
                    replica.store.save_snapshot(
                        index, self.primary.stream_snapshot(index), term=snapshot.term,
                        conf_state=snapshot.conf_state, snapshot_id=snapshot.snapshot_id,
                    )
                except (SnapshotStoreError, OSError) as error:
                    replica.healthy = False
                    replica.failures += 1
                    replica.last_error = f"snapshot {index}: {error}"
                    break  # in index order: a later one waits for this one
                replica.pending.discard(index)
                replica.replicated += 1
                replica.copied_up_to = max(replica.copied_up_to, index)
                replica.healthy = True
        return self.replication_status()

    def replication_status(self) -> list[ReplicaStatus]:
        """Per secondary: pending snapshots, index lag, copies made, failures."""
        newest = max((index for replica in self._replicas for index in replica.pending), default=-1)
        newest = max([newest, *(replica.copied_up_to for replica in self._replicas)])
        return [
            ReplicaStatus(
                store=_name(replica.store), healthy=replica.healthy, pending=tuple(sorted(replica.pending)),
                index_lag=max(0, newest - replica.copied_up_to) if replica.pending else 0,
                replicated=replica.replicated, failures=replica.failures, last_error=replica.last_error,
            )
            for replica in self._replicas
        ]

    # -- reads: the first healthy store that answers -------------------------------------

    def _stores(self) -> list[tuple[Any, Callable[[bool], None]]]:
        """Every store in the configured order, each with a function that records its health.

        Always in order, so a primary that recovers is read from again at once; an
        outage costs one bounded, failed attempt per read until then.
        """
        def primary_health(ok: bool) -> None:
            self._primary_healthy = ok

        def replica_health(replica: _Replica) -> Callable[[bool], None]:
            def mark(ok: bool) -> None:
                replica.healthy = ok
            return mark

        return [(self.primary, primary_health)] + [(r.store, replica_health(r)) for r in self._replicas]

    @property
    def primary_healthy(self) -> bool:
        """Whether the last call to the primary worked."""
        return self._primary_healthy

    def _first(self, what: str, call: Callable[[Any], T], *, found: Callable[[T], bool] = lambda _: True) -> T:
        """The first healthy store's answer that ``found`` accepts; else the first answer
        at all; else the primary's not-found error; else an error naming every outage."""
        outages: list[str] = []
        answers: list[T] = []
        not_found: SnapshotNotFoundError | None = None
        for store, mark in self._stores():
            try:
                result = call(store)
            except SnapshotNotFoundError as error:
                mark(True)
                not_found = not_found or error
                continue
            except _OUTAGES as error:
                mark(False)
                outages.append(f"{_name(store)}: {error}")
                continue
            mark(True)
            if found(result):
                return result
            answers.append(result)
        if answers:
            return answers[0]
        if not_found is not None:
            raise not_found
        raise ObjectStoreError(f"{what}: no store answered ({'; '.join(outages)})")

    def snapshot_metadata(self, index: int) -> StoredSnapshot:
        return self._first(f"metadata of snapshot {index}", lambda s: s.snapshot_metadata(index))

    def has_snapshot(self, index: int) -> bool:
        return bool(self._first(f"lookup of snapshot {index}", lambda s: s.has_snapshot(index), found=bool))

    def list_snapshots(self) -> list[StoredSnapshot]:
        return self._first("listing", lambda s: s.list_snapshots())

    def latest(self) -> StoredSnapshot | None:
        return self._first("listing", lambda s: s.latest())

    def stream_snapshot(self, index: int, offset: int = 0) -> Iterator[bytes]:
        snapshot = self.snapshot_metadata(index)
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= snapshot.size:
            raise ValueError(f"snapshot {index}: stream offset must be in the range 0..{snapshot.size} "
                             f"(the snapshot's size), got {offset!r}")
        return self._failover_chunks(snapshot, offset)

    def _failover_chunks(self, snapshot: StoredSnapshot, offset: int) -> Iterator[bytes]:
        position, errors = offset, []
        for store, mark in self._stores():
            try:
                held = store.snapshot_metadata(snapshot.index)
                if held.digest != snapshot.digest:
                    continue
                for chunk in store.stream_snapshot(snapshot.index, position):
                    position += len(chunk)
                    yield chunk
                mark(True)
                return
            except SnapshotNotFoundError:
                continue
            except _OUTAGES as error:
                mark(False)
                errors.append(f"{_name(store)} at byte {position}: {error}")
        raise ObjectStoreError(
            f"snapshot {snapshot.index}: no store could serve bytes from {position} on "
            f"({'; '.join(errors) or 'none holds it'})"
        )

    def read_snapshot(self, index: int) -> bytes:
        return b"".join(self.stream_snapshot(index))

    # -- writes: the primary ----------------------------------------------------------

    def save_snapshot(self, index: int, data, *, term: int, conf_state=None, snapshot_id=None) -> str:
        location = self.primary.save_snapshot(index, data, term=term, conf_state=conf_state, snapshot_id=snapshot_id)
        self._replicate(index)
        return location

    def compact_snapshots(self, keep_count: int) -> list[int]:
        deleted = self.primary.compact_snapshots(keep_count)
        kept = [snapshot.index for snapshot in self.primary.list_snapshots()]
        for replica in self._replicas:
            replica.pending.difference_update(deleted)
            try:
                # Keep, on the secondary, everything from the primary's oldest kept snapshot on.
                keep = sum(1 for s in replica.store.list_snapshots() if kept and s.index >= min(kept))
                if keep:
                    replica.store.compact_snapshots(keep)
            except (SnapshotStoreError, OSError) as error:
                replica.failures += 1
                replica.last_error = f"compaction: {error}"
        return deleted

    def discard_corrupt(self, index: int) -> str | None:
        """Each copy that holds ``index`` and fails its digest is dropped; why the primary's was, if it was."""
        for replica in self._replicas:
            try:
                if replica.store.has_snapshot(index):
                    replica.store.discard_corrupt(index)
            except (SnapshotStoreError, OSError) as error:
                replica.failures += 1
                replica.last_error = f"check of snapshot {index}: {error}"
        return self.primary.discard_corrupt(index) if self.primary.has_snapshot(index) else None

    def open_writer(self, index: int, **identity) -> _ReplicatingWriter:
        return _ReplicatingWriter(self.primary.open_writer(index, **identity), self)

    def partial_transfers(self) -> list[PartialSnapshot]:
        return self.primary.partial_transfers()

    def reopened(self) -> ReplicatedSnapshotStore:
        """Every store reopened; what the primary holds and a secondary lacks is pending again
        (the old pending list was in the old process's memory)."""
        fresh = ReplicatedSnapshotStore(self.primary.reopened(), [r.store.reopened() for r in self._replicas])
        on_primary = {snapshot.index for snapshot in fresh.primary.list_snapshots()}
        for replica in fresh._replicas:
            try:
                replica.pending = on_primary - {s.index for s in replica.store.list_snapshots()}
            except (SnapshotStoreError, OSError) as error:
                replica.healthy, replica.last_error = False, f"listing after reopening: {error}"
                replica.pending = set(on_primary)
        return fresh

