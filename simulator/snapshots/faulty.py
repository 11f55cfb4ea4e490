"""``FaultyStore``: any snapshot store, with the faults of a flaky object store on demand.

Wrap the store followers pull snapshots from (or any store under test) and
make it misbehave the way a remote object store does:

- :meth:`FaultyStore.go_down` / :meth:`FaultyStore.come_back`: every call
  fails with ``ObjectStoreUnavailableError`` until it comes back;
- :meth:`FaultyStore.fail_reads`: the next ``n`` chunk reads fail (a network
  error in the middle of a download);
- :meth:`FaultyStore.corrupt_reads`: the next ``n`` chunks come back with a
  flipped byte (a bad disk or proxy: the bytes no longer match the digest);
- :attr:`FaultyStore.read_delay`: seconds of virtual time each chunk read
  takes (a slow store). Nothing here sleeps; readers that model time (the
  follower-pull transfer) add it to their own wait.

Writes pass through untouched unless the store is down. ``injected`` counts
each fault that actually hit a call, so a test can tell a fault that fired
from one that was never reached.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from ._bucket import ObjectStoreUnavailableError
from .metadata import PartialSnapshot, StoredSnapshot
from .protocol import SnapshotStore
from .writer import SnapshotWriter


class FaultyStore:
    """A :class:`~simulator.snapshots.SnapshotStore` that wraps ``inner``; see the module docstring."""

    def __init__(self, inner: SnapshotStore, *, name: str = "store") -> None:
        self.inner = inner
        self.name = name
        self.down = False
        self.read_delay = 0.0
        self._failing_reads = 0
        self._reads_before_failing = 0
        self._corrupt_reads = 0
        self.injected: Counter = Counter()

    def __repr__(self) -> str:
        state = "down" if self.down else "up"
        return f"<FaultyStore {self.name!r} {state} around {self.inner!r}>"

    # -- faults ---------------------------------------------------------------------

    def go_down(self) -> None:
        """Every call fails until :meth:`come_back`."""
        self.down = True

    def come_back(self) -> None:
        self.down = False

    def fail_reads(self, count: int = 1, *, after: int = 0) -> None:
        """After ``after`` more chunk reads succeed, the next ``count`` raise
        ``ObjectStoreUnavailableError`` (a download that breaks off part way)."""
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be an integer >= 0, got {after!r}")
        self._reads_before_failing = after
        self._failing_reads += _count(count)

    def corrupt_reads(self, count: int = 1) -> None:
        """The next ``count`` chunks read come back with their first byte flipped."""
        self._corrupt_reads += _count(count)

    def slow_down(self, seconds_per_read: float) -> None:
        """Each chunk read takes ``seconds_per_read`` more virtual seconds (0 restores)."""
        if not seconds_per_read >= 0:
            raise ValueError(f"seconds_per_read must be >= 0, got {seconds_per_read!r}")
        self.read_delay = float(seconds_per_read)

    def _check_up(self, what: str) -> None:
        if self.down:
            self.injected["down"] += 1
            raise ObjectStoreUnavailableError(
                f"{what} in {self.name}: the store is unavailable (injected fault); a reachable store expected"
            )

    def _chunks(self, chunks: Iterator[bytes], index: int) -> Iterator[bytes]:
        for chunk in chunks:
            self._check_up(f"read of snapshot {index}")
            if self._failing_reads and self._reads_before_failing:
                self._reads_before_failing -= 1
            elif self._failing_reads:
                self._failing_reads -= 1
                self.injected["failed_read"] += 1
                raise ObjectStoreUnavailableError(
                    f"read of snapshot {index} in {self.name}: connection reset mid-download (injected fault)"
                )
            if self._corrupt_reads and chunk:
                self._corrupt_reads -= 1
                self.injected["corrupt_read"] += 1
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            yield chunk

    # -- SnapshotStore ----------------------------------------------------------------

    @property
    def chunk_size(self) -> int:
        return self.inner.chunk_size

    def save_snapshot(self, index: int, data, *, term: int, conf_state=None, snapshot_id=None) -> str:
        self._check_up(f"save of snapshot {index}")
        return self.inner.save_snapshot(index, data, term=term, conf_state=conf_state, snapshot_id=snapshot_id)

    def stream_snapshot(self, index: int, offset: int = 0) -> Iterator[bytes]:
        self._check_up(f"read of snapshot {index}")
        return self._chunks(self.inner.stream_snapshot(index, offset), index)

    def read_snapshot(self, index: int) -> bytes:
        return b"".join(self.stream_snapshot(index))

    def snapshot_metadata(self, index: int) -> StoredSnapshot:
        self._check_up(f"metadata of snapshot {index}")
        return self.inner.snapshot_metadata(index)

    def list_snapshots(self) -> list[StoredSnapshot]:
        self._check_up("listing")
        return self.inner.list_snapshots()

    def latest(self) -> StoredSnapshot | None:
        self._check_up("listing")
        return self.inner.latest()

    def has_snapshot(self, index: int) -> bool:
        self._check_up(f"lookup of snapshot {index}")
        return self.inner.has_snapshot(index)

    def compact_snapshots(self, keep_count: int) -> list[int]:
        self._check_up("compaction")
        return self.inner.compact_snapshots(keep_count)

    def discard_corrupt(self, index: int) -> str | None:
        self._check_up(f"check of snapshot {index}")
        return self.inner.discard_corrupt(index)

    def open_writer(self, index: int, **identity) -> SnapshotWriter:
        self._check_up(f"writer for snapshot {index}")
        return self.inner.open_writer(index, **identity)

    def partial_transfers(self) -> list[PartialSnapshot]:
        self._check_up("listing of partial transfers")
        return self.inner.partial_transfers()

    def reopened(self) -> FaultyStore:
        """The inner store reopened; the faults stay armed (they belong to the service, which
        did not restart with the node's process)."""
        self.inner = self.inner.reopened()
        return self


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"count must be an integer >= 1, got {value!r}")
    return value
