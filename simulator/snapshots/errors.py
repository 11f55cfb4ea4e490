"""Errors of the snapshot stores.

Each one names what was wrong and what was expected, so a transport can log
it as is and a person can act on it. All derive from
:class:`SnapshotStoreError`, a ``ValueError``: the caller handed the store
something it cannot use (a wrong offset, a bad digest, an unknown index) or
found something on disk the store refuses to trust. Operating-system failures
(a full disk, a missing permission) are not wrapped; they stay ``OSError``.
"""

from __future__ import annotations

import errno


class SnapshotStoreError(ValueError):
    """Base of every error a snapshot store raises on purpose."""


class SnapshotNotFoundError(SnapshotStoreError, KeyError):
    """No complete snapshot at the requested index; the message lists the ones there are.

    Also a ``KeyError``, so ``except KeyError`` works as for a mapping lookup.
    """

    def __str__(self) -> str:  # KeyError would quote the message like a key
        return str(self.args[0]) if self.args else ""


class SnapshotChunkError(SnapshotStoreError):
    """A chunk written to a :class:`~simulator.snapshots.SnapshotWriter` at the wrong
    offset (a gap or an overlap), past the snapshot's total size, or a commit
    before every byte arrived. Nothing was written; the writer stays usable."""


class SnapshotDigestError(SnapshotStoreError):
    """The bytes received for a snapshot do not hash to the digest announced for it.

    Raised by ``SnapshotWriter.commit``; the partial data has been removed and no
    snapshot was published, so the transfer must start again from offset 0.
    """


class SnapshotCorruptError(SnapshotStoreError):
    """Stored snapshot data no longer matches its metadata (size or digest): the
    file was truncated or a byte flipped since it was written."""


class SnapshotTooLargeError(SnapshotStoreError):
    """A snapshot larger than the store's ``max_snapshot_size`` (default 10 GiB, the
    seed's promise): refused before it is stored or received, and nothing is kept."""


class SnapshotExistsError(SnapshotStoreError):
    """A complete snapshot already exists at that index, and the request would replace it."""


class WriteNotReadBackError(OSError):
    """Data read back from storage is not what the store wrote (a misdirected or lost write).

    An ``OSError`` (``EIO``), not a ``SnapshotStoreError``: it is the disk that failed.
    A commit that meets it removes the partial data and raises ``SnapshotDigestError``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(errno.EIO, message)
