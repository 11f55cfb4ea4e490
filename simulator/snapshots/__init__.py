"""Layer 1: where snapshot data lives (the seed's ``SnapshotStore``).

Synchronous, single-threaded I/O only; nothing here knows trio, transports
or Raft messages (``tests/test_layering.py`` enforces it). The modules behind
this package are private; import from here.

- :class:`SnapshotStore`: the protocol every store implements.
- :class:`MemorySnapshotStore`, :class:`DiskSnapshotStore`: the two stores.
- :class:`SnapshotWriter`: receives a snapshot in pieces, resumably.
- :class:`StoredSnapshot`, :class:`PartialSnapshot`: what a store reports.
"""

from .base import DEFAULT_CHUNK_SIZE
from .disk import FAULT_STEPS, DiskSnapshotStore
from .errors import (
    SnapshotChunkError,
    SnapshotCorruptError,
    SnapshotDigestError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    SnapshotStoreError,
)
from .memory import MemorySnapshotStore
from .metadata import ConfStateTuple, PartialSnapshot, StoredSnapshot, digest_of
from .protocol import SnapshotData, SnapshotStore
from .writer import SnapshotWriter

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FAULT_STEPS",
    "ConfStateTuple",
    "DiskSnapshotStore",
    "MemorySnapshotStore",
    "PartialSnapshot",
    "SnapshotChunkError",
    "SnapshotCorruptError",
    "SnapshotData",
    "SnapshotDigestError",
    "SnapshotExistsError",
    "SnapshotNotFoundError",
    "SnapshotStore",
    "SnapshotStoreError",
    "SnapshotWriter",
    "StoredSnapshot",
    "digest_of",
]
