"""Layer 1: where snapshot data lives (the seed's ``SnapshotStore``).

Synchronous, single-threaded I/O only; nothing here knows trio, transports
or Raft messages (``tests/test_layering.py`` enforces it). The modules behind
this package are private; import from here.

- :class:`SnapshotStore`: the protocol every store implements.
- :class:`MemorySnapshotStore`, :class:`DiskSnapshotStore`: the two stores.
- :class:`SnapshotWriter`: receives a snapshot in pieces, resumably; :class:`CommitCheck`
  is its commit's read-back, which an async caller may run on a worker thread.
- :class:`StoredSnapshot`, :class:`PartialSnapshot`: what a store reports.
- :class:`ReplicatedSnapshotStore`: a primary copied to secondary stores.
- :class:`FaultyStore`: any store, with an object store's faults on demand.
- ``S3SnapshotStore`` (:mod:`.s3`) and ``GCSSnapshotStore`` (:mod:`.gcs`) need
  the ``cloud`` extra, so they are not imported here; ``simulator`` re-exports
  them lazily. Their errors (:class:`ObjectStoreError` and subclasses) and
  :class:`RetryPolicy` are here, usable without the extra.
"""

from ._bucket import (
    BucketNotFoundError,
    CredentialsError,
    ObjectStoreError,
    ObjectStoreUnavailableError,
    RetryPolicy,
)
from .base import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_SNAPSHOT_SIZE
from .disk import FAULT_STEPS, DiskSnapshotStore
from .errors import (
    SnapshotChunkError,
    SnapshotCorruptError,
    SnapshotDigestError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    SnapshotStoreError,
    SnapshotTooLargeError,
)
from .digests import DEFAULT_ALGORITHM, SNAPSHOT_DIGESTS, SnapshotDigests, UnknownDigestError
from .memory import MemorySnapshotStore
from .metadata import (
    ConfStateTuple,
    PartialSnapshot,
    StoredSnapshot,
    check_count,
    check_digest,
    check_snapshot_id,
    digest_of,
    is_count,
)
from .faulty import FaultyStore
from .protocol import ResumableWriter, SnapshotData, SnapshotStore
from .replicated import ReplicaStatus, ReplicatedSnapshotStore
from .writer import CommitCheck, SnapshotWriter

__all__ = [
    "BucketNotFoundError",
    "CommitCheck",
    "CredentialsError",
    "FaultyStore",
    "ObjectStoreError",
    "ObjectStoreUnavailableError",
    "ReplicaStatus",
    "ReplicatedSnapshotStore",
    "RetryPolicy",
    "DEFAULT_ALGORITHM",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_SNAPSHOT_SIZE",
    "FAULT_STEPS",
    "ConfStateTuple",
    "DiskSnapshotStore",
    "MemorySnapshotStore",
    "PartialSnapshot",
    "ResumableWriter",
    "SnapshotChunkError",
    "SnapshotCorruptError",
    "SnapshotData",
    "SnapshotDigestError",
    "SnapshotExistsError",
    "SnapshotNotFoundError",
    "SnapshotStore",
    "SnapshotStoreError",
    "SnapshotTooLargeError",
    "SnapshotWriter",
    "SNAPSHOT_DIGESTS",
    "SnapshotDigests",
    "UnknownDigestError",
    "StoredSnapshot",
    "check_count",
    "check_digest",
    "check_snapshot_id",
    "digest_of",
    "is_count",
]
