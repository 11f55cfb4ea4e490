"""``MemorySnapshotStore``: snapshots held in memory, gone with the process.

Use it for simulations where nodes never restart from disk, and as the
reference the disk store is compared with: the two behave the same in every
observable way except ``location`` and survival of the store object itself.
Complete snapshots are immutable ``bytes``; a partial transfer grows in a
``bytearray``, so "durable" progress is simply what was appended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from .base import DEFAULT_CHUNK_SIZE, BaseSnapshotStore, RangeReader, Staged
from .metadata import StoredSnapshot, digest_of
from .writer import Transfer

_SCHEME = "memory://"


class _BytesReader(RangeReader):
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read_at(self, position: int, length: int) -> bytes:
        return self._data[position : position + length]


class MemorySnapshotStore(BaseSnapshotStore):
    """A :class:`~simulator.snapshots.SnapshotStore` in dictionaries.

    ``clock`` stamps ``created_at``; pass the simulator's virtual clock to keep
    traces deterministic.
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE, clock: Callable[[], float] = time.time) -> None:
        super().__init__(chunk_size=chunk_size, clock=clock)
        self._data: dict[int, bytes] = {}
        self._partial_data: dict[int, bytearray] = {}

    def __repr__(self) -> str:
        return f"<MemorySnapshotStore snapshots={sorted(self._snapshots)} chunk_size={self.chunk_size}>"

    # -- storage primitives -----------------------------------------------------

    def _location(self, index: int) -> str:
        return f"{_SCHEME}snapshot-{index:016}"

    def _partial_location(self, index: int) -> str:
        return f"{_SCHEME}snapshot-{index:016}.partial"

    def _stage(self, index: int, chunks: Iterator[Any]) -> Staged:
        data = b"".join(chunks)
        return Staged(size=len(data), digest=digest_of(data), handle=data)

    def _discard_staged(self, staged: Staged) -> None:
        pass

    def _publish_staged(self, staged: Staged, snapshot: StoredSnapshot) -> None:
        self._data[snapshot.index] = staged.handle

    def _open_reader(self, snapshot: StoredSnapshot) -> RangeReader:
        return _BytesReader(self._data[snapshot.index])

    def _delete_snapshot(self, snapshot: StoredSnapshot) -> None:
        del self._data[snapshot.index]

    def _begin_transfer(self, transfer: Transfer) -> None:
        self._partial_data[transfer.partial.index] = bytearray()

    def _append_partial(self, transfer: Transfer, offset: int, data: Any, *, prefix_digest: str) -> None:
        buffer = self._partial_data[transfer.partial.index]
        del buffer[offset:]  # a no-op unless an earlier append was interrupted
        buffer += data

    def _record_progress(self, transfer: Transfer) -> None:
        pass  # progress is the buffer itself

    def _publish_partial(self, transfer: Transfer, snapshot: StoredSnapshot) -> None:
        self._data[snapshot.index] = bytes(self._partial_data.pop(snapshot.index))

    def _remove_partial(self, transfer: Transfer) -> None:
        self._partial_data.pop(transfer.partial.index, None)
