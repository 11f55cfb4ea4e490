"""``MemorySnapshotStore``: snapshots held in memory, gone with the process.

Use it for simulations where nodes never restart from disk, and as the
reference the disk store is compared with: the two behave the same in every
observable way except ``location`` and survival of the store object itself.
Complete snapshots are immutable: tuples of the ``bytes`` chunks they were
saved or received in, never joined, so storing a snapshot copies no data
and neither does reading a whole chunk back. A partial transfer is the list
of chunks appended so far, so "durable" progress is simply what was appended.
Both were hashed as they came in, which is why reads need not hash again.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import Any

from .base import DEFAULT_CHUNK_SIZE, BaseSnapshotStore, RangeReader, Staged
from .metadata import StoredSnapshot, hasher_digest, new_hasher
from .writer import Transfer

_SCHEME = "memory://"


def _frozen(chunk: Any) -> bytes:
    """``chunk`` as immutable bytes: the object itself if it already is, else a copy."""
    return chunk if type(chunk) is bytes else bytes(chunk)


class _PartialChunks:
    """The chunks of a transfer received so far, and how many bytes they hold."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def append(self, data: Any) -> None:
        self.chunks.append(_frozen(data))
        self.size += len(data)

    def truncate(self, size: int) -> None:
        if self.size > size:
            kept = b"".join(self.chunks)[:size]
            self.chunks = [kept] if kept else []
            self.size = size


class _ChunksReader(RangeReader):
    """Reads ranges of data held as a tuple of chunks; a range that is one whole chunk is not copied."""

    def __init__(self, chunks: tuple[bytes, ...]) -> None:
        self._chunks = chunks
        self._ends = list(accumulate(len(chunk) for chunk in chunks))

    def read_at(self, position: int, length: int) -> bytes:
        chunks, ends = self._chunks, self._ends
        number = bisect_right(ends, position)
        parts = []
        while length > 0 and number < len(chunks):
            chunk = chunks[number]
            start = position - (ends[number] - len(chunk))
            take = min(length, len(chunk) - start)
            parts.append(chunk if take == len(chunk) else chunk[start : start + take])
            position += take
            length -= take
            number += 1
        return parts[0] if len(parts) == 1 else b"".join(parts)


class MemorySnapshotStore(BaseSnapshotStore):
    """A :class:`~simulator.snapshots.SnapshotStore` in dictionaries.

    ``clock`` stamps ``created_at``; pass the simulator's virtual clock to keep
    traces deterministic.
    """

    _verify_reads = False  # immutable chunks, hashed when they were stored

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE, clock: Callable[[], float] = time.time) -> None:
        super().__init__(chunk_size=chunk_size, clock=clock)
        self._data: dict[int, tuple[bytes, ...]] = {}
        self._partial_data: dict[int, _PartialChunks] = {}

    def __repr__(self) -> str:
        return f"<MemorySnapshotStore snapshots={sorted(self._snapshots)} chunk_size={self.chunk_size}>"

    # -- storage primitives -----------------------------------------------------

    def _location(self, index: int) -> str:
        return f"{_SCHEME}snapshot-{index:016}"

    def _partial_location(self, index: int) -> str:
        return f"{_SCHEME}snapshot-{index:016}.partial"

    def _stage(self, index: int, chunks: Iterator[Any]) -> Staged:
        hasher, kept = new_hasher(), []
        for chunk in chunks:
            if chunk:
                kept.append(_frozen(chunk))
                hasher.update(chunk)
        return Staged(size=sum(map(len, kept)), digest=hasher_digest(hasher), handle=tuple(kept))

    def _discard_staged(self, staged: Staged) -> None:
        pass

    def _publish_staged(self, staged: Staged, snapshot: StoredSnapshot) -> None:
        self._data[snapshot.index] = staged.handle

    def _open_reader(self, snapshot: StoredSnapshot) -> RangeReader:
        return _ChunksReader(self._data[snapshot.index])

    def _unpublish_snapshot(self, snapshot: StoredSnapshot) -> None:
        pass  # the index in memory is the metadata: the base class drops it

    def _delete_snapshot_data(self, snapshot: StoredSnapshot) -> None:
        del self._data[snapshot.index]

    def _begin_transfer(self, transfer: Transfer) -> None:
        self._partial_data[transfer.partial.index] = _PartialChunks()

    def _append_partial(self, transfer: Transfer, offset: int, data: Any, *, prefix_digest: str) -> None:
        partial = self._partial_data[transfer.partial.index]
        partial.truncate(offset)  # a no-op unless an earlier append was interrupted
        partial.append(data)

    def _record_progress(self, transfer: Transfer) -> None:
        pass  # progress is the buffer itself

    def _publish_partial(self, transfer: Transfer, snapshot: StoredSnapshot) -> None:
        self._data[snapshot.index] = tuple(self._partial_data.pop(snapshot.index).chunks)

    def _remove_partial(self, transfer: Transfer) -> None:
        self._partial_data.pop(transfer.partial.index, None)
