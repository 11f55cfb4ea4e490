"""Receiving a snapshot in pieces: :class:`SnapshotWriter`.

Theory of operation. A transfer is identified by the snapshot it carries
(index, term, size, digest, snapshot id). Its state is one number, ``offset``:
the bytes ``[0, offset)`` are durably written and were verified by whoever
called ``write`` (a transport checks each chunk's checksum first). Each
``write`` must continue exactly at ``offset``; anything else is a gap or an
overlap and is refused without touching the data, so a duplicated, reordered
or stale chunk cannot corrupt a partial snapshot. ``commit`` checks that all
``size`` bytes arrived and hash to ``digest`` and only then publishes a
complete snapshot; a digest mismatch deletes the partial data, because there
is no way to tell which byte was wrong.

The writer holds no data and does no I/O itself: the store that opened it
appends the bytes and records the progress (in memory, or in the partial
file and its progress record on disk). What the writer asks of that store is
:class:`TransferOwner`, defined here so that this module reads on its own;
``BaseSnapshotStore`` implements it. One writer is active per store; opening
another, or saving a snapshot at the same index, supersedes it, and the old
writer then refuses every call.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from .errors import SnapshotChunkError, SnapshotDigestError, SnapshotStoreError
from .metadata import ConfStateTuple, PartialSnapshot, StoredSnapshot, hasher_digest

BytesLike = bytes | bytearray | memoryview


@attrs.define(eq=False)
class Transfer:
    """A store's bookkeeping for one partial snapshot: its description (with the
    verified ``offset``), the running hash of those bytes, and the active writer."""

    partial: PartialSnapshot
    hasher: Any
    writer: SnapshotWriter | None = None

    @property
    def prefix_digest(self) -> str:
        return hasher_digest(self.hasher)


class TransferOwner(Protocol):
    """The store side of a transfer: what a :class:`SnapshotWriter` calls on the store that opened it."""

    def _transfer_at(self, index: int) -> Transfer | None:
        """The transfer in progress at ``index`` (a superseded writer's is no longer it)."""

    def _append_partial(self, transfer: Transfer, offset: int, data: Any, *, prefix_digest: str) -> None:
        """Durably append ``data`` at ``offset`` and record the new offset as progress."""

    def _publish_transfer(self, transfer: Transfer) -> StoredSnapshot:
        """Turn the verified, complete transfer into a stored snapshot."""

    def _drop_transfer(self, transfer: Transfer) -> None:
        """Remove the transfer and its partial data."""


def _bytes(count: int) -> str:
    return f"{count} byte" if count == 1 else f"{count} bytes"


class SnapshotWriter:
    """Writes one snapshot chunk by chunk, resumably; get one from ``store.open_writer``.

    Use it when bytes arrive over time (an out-of-band stream). To store a
    snapshot you already hold, ``save_snapshot`` is simpler.
    """

    def __init__(self, store: TransferOwner, transfer: Transfer) -> None:
        self._store = store
        self._transfer = transfer
        self._closed_because: str | None = None
        #: The offset this writer started from: bytes before it were received earlier.
        self.resumed_from = transfer.partial.offset
        transfer.writer = self

    def __repr__(self) -> str:
        partial = self._transfer.partial
        return (
            f"<SnapshotWriter index={partial.index} id={partial.snapshot_id!r} "
            f"offset={partial.offset}/{partial.size}{' closed' if self.closed else ''}>"
        )

    # -- what is being received -------------------------------------------

    @property
    def partial(self) -> PartialSnapshot:
        """The transfer as ``partial_transfers()`` reports it, with the current offset."""
        return self._transfer.partial

    @property
    def index(self) -> int:
        return self._transfer.partial.index

    @property
    def snapshot_id(self) -> str:
        return self._transfer.partial.snapshot_id

    @property
    def size(self) -> int:
        return self._transfer.partial.size

    @property
    def digest(self) -> str:
        return self._transfer.partial.digest

    @property
    def conf_state(self) -> ConfStateTuple | None:
        return self._transfer.partial.conf_state

    @property
    def offset(self) -> int:
        """Bytes durably written and verified so far; the next ``write`` starts here."""
        return self._transfer.partial.offset

    @property
    def closed(self) -> bool:
        return self._closed_because is not None

    # -- receiving ---------------------------------------------------------

    def write(self, offset: int, data: BytesLike) -> int:
        """Append ``data``, which must start at :attr:`offset`; return the new offset.

        Raises ``SnapshotChunkError`` (and writes nothing) for a gap, an overlap,
        or bytes past ``size``. Returns once the bytes and the new offset are
        durable, so after a crash the transfer resumes after this chunk.
        """
        self._check_active()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"chunk data must be bytes, got {type(data).__name__}")
        partial = self._transfer.partial
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise TypeError(f"chunk offset must be an integer, got {offset!r}")
        if offset != partial.offset:
            if offset < partial.offset:
                why = f"overlaps {_bytes(partial.offset - offset)} already written"
            else:
                why = f"would leave a gap of {_bytes(offset - partial.offset)}"
            raise SnapshotChunkError(
                f"snapshot {partial.index}: chunk at offset {partial.offset} expected, got {offset} ({why})"
            )
        end = offset + len(data)
        if end > partial.size:
            raise SnapshotChunkError(
                f"snapshot {partial.index}: chunk of {len(data)} bytes at offset {offset} ends at {end}: "
                f"more bytes than total_size {partial.size}"
            )
        if not data:
            return end
        hasher = self._transfer.hasher.copy()
        hasher.update(data)
        # The store appends and records progress first; only then does the offset move,
        # so a failure in between leaves the writer where the durable record is.
        self._store._append_partial(self._transfer, offset, data, prefix_digest=hasher_digest(hasher))
        self._transfer.hasher = hasher
        self._transfer.partial = attrs.evolve(partial, offset=end)
        return end

    def commit(self, *, verify_digest: bool = True) -> StoredSnapshot:
        """Verify size and digest, publish the snapshot, and return its metadata.

        ``verify_digest=False`` publishes the bytes under the digest they
        actually have instead of refusing them. Nothing uses it but raftsim's
        defect switch (``simulator.raft.defects.INSTALL_UNVERIFIED``), which
        shows that the property tests catch a receiver that skips the check.

        ``SnapshotChunkError`` if bytes are still missing (the partial is kept, keep
        writing). ``SnapshotDigestError`` if the bytes hash to another digest: the
        partial data is removed and nothing is published.
        """
        self._check_active()
        partial = self._transfer.partial
        if partial.offset != partial.size:
            raise SnapshotChunkError(
                f"snapshot {partial.index}: commit after {partial.offset} of {partial.size} bytes; "
                f"all {partial.size} bytes expected first"
            )
        actual = hasher_digest(self._transfer.hasher)
        if not verify_digest and actual != partial.digest:
            partial = self._transfer.partial = attrs.evolve(partial, digest=actual)
        if actual != partial.digest:
            self._store._drop_transfer(self._transfer)
            self._closed_because = "its data did not match the digest"
            raise SnapshotDigestError(
                f"snapshot {partial.index} ({partial.snapshot_id!r}): received {partial.size} bytes "
                f"with digest {actual}, expected {partial.digest}; the partial data was removed"
            )
        snapshot = self._store._publish_transfer(self._transfer)
        self._closed_because = "it was committed"
        return snapshot

    def abort(self) -> None:
        """Give up this transfer and remove its partial data. Harmless if already closed."""
        if self.closed or not self._is_active():
            self._closed_because = self._closed_because or "it was superseded"
            return
        self._store._drop_transfer(self._transfer)
        self._closed_because = "it was aborted"

    # -- internals ---------------------------------------------------------

    def _is_active(self) -> bool:
        return self._transfer.writer is self and self._store._transfer_at(self.index) is self._transfer

    def _check_active(self) -> None:
        partial = self._transfer.partial
        if self._closed_because is not None:
            raise SnapshotStoreError(
                f"writer for snapshot {partial.index} ({partial.snapshot_id!r}) is closed because "
                f"{self._closed_because}; an open writer expected (call open_writer again)"
            )
        if not self._is_active():
            raise SnapshotStoreError(
                f"writer for snapshot {partial.index} ({partial.snapshot_id!r}) was superseded by a "
                "later open_writer or save_snapshot; only the most recently opened writer may write"
            )
