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

Committing in steps. For some stores the commit has a slow part that
touches nothing but the written data: the disk store reads every byte back
and hashes it before publishing (seconds for a large snapshot that is not
in the page cache). An asynchronous caller that must keep its event loop
running meanwhile splits ``commit()`` into its three steps::

    check = writer.prepare_commit()     # caller's thread: size and running digest, as commit does
    check.run()                         # any thread: the read-back; no store state is touched
    writer.commit(verified=check)       # caller's thread again: publish, or drop a mismatch

``commit(verified=check)`` first checks that the writer is still the active
one: if a newer ``open_writer`` or ``save_snapshot`` superseded it while the
check ran, nothing is published and nothing of the newer transfer is
touched. Only then does a read-back that found other bytes than were written
remove the partial data (``SnapshotDigestError``), as ``commit()`` does.
This module starts no thread itself (layer 1 has none): which thread runs
``check.run`` is the caller's business.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs

from .errors import SnapshotChunkError, SnapshotDigestError, SnapshotStoreError, WriteNotReadBackError
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

    def _read_back(self, transfer: Transfer) -> Callable[[], None] | None:
        """The check of the complete transfer's stored bytes before it is published, or ``None``.

        It must touch only the transfer's data, never the store's bookkeeping, because
        a caller may run it on another thread; it raises :class:`WriteNotReadBackError`
        if the bytes are not the ones written."""

    def _publish_transfer(self, transfer: Transfer) -> StoredSnapshot:
        """Turn the verified, complete transfer into a stored snapshot."""

    def _drop_transfer(self, transfer: Transfer) -> None:
        """Remove the transfer and its partial data."""


class CommitCheck:
    """The slow, store-independent part of a commit, from :meth:`SnapshotWriter.prepare_commit`.

    :meth:`run` reads the written bytes back (if the store has anything to read
    back) and records the outcome instead of raising it, so it may run on any
    thread; the writer's ``commit(verified=...)`` acts on the outcome on the
    caller's thread. Run it once.
    """

    def __init__(self, writer: SnapshotWriter, transfer: Transfer, read_back: Callable[[], None] | None) -> None:
        self._writer = writer
        self._transfer = transfer
        self._read_back = read_back
        self.ran = False
        #: What the read-back raised (``WriteNotReadBackError`` for bytes other than those
        #: written, another ``OSError`` for a failing disk), or ``None``.
        self.error: BaseException | None = None

    def __repr__(self) -> str:
        state = "not run" if not self.ran else "failed" if self.error is not None else "passed"
        return f"<CommitCheck snapshot {self._transfer.partial.index} {state}>"

    def run(self) -> None:
        if self.ran:
            raise SnapshotStoreError(f"{self!r}: run() once expected, it was called again")
        try:
            if self._read_back is not None:
                self._read_back()
        except Exception as error:  # noqa: BLE001 - acted on by commit(verified=...) on the caller's thread
            self.error = error
        self.ran = True


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

    def commit(self, *, verify_digest: bool = True, verified: CommitCheck | None = None) -> StoredSnapshot:
        """Verify size and digest, publish the snapshot, and return its metadata.

        ``verify_digest=False`` publishes the bytes under the digest they
        actually have instead of refusing them. Nothing uses it but raftsim's
        defect switch (``simulator.raft.defects.INSTALL_UNVERIFIED``), which
        shows that the property tests catch a receiver that skips the check.

        ``verified``: the :class:`CommitCheck` this writer's :meth:`prepare_commit`
        returned, already run (see the module docstring); the checks it did are not
        repeated. Without it, ``commit`` does all three steps here.

        ``SnapshotChunkError`` if bytes are still missing (the partial is kept, keep
        writing). ``SnapshotDigestError`` if the bytes hash to another digest, or read
        back from storage as other bytes: the partial data is removed and nothing is
        published. ``SnapshotStoreError`` if the writer was closed or superseded
        (also while a ``verified`` check ran): nothing is published or removed.
        """
        if verified is None:
            verified = self.prepare_commit(verify_digest=verify_digest)
            verified.run()
        elif not isinstance(verified, CommitCheck) or verified._writer is not self:
            raise SnapshotStoreError(
                f"{self!r}: commit(verified=...) expects the CommitCheck this writer's prepare_commit "
                f"returned, got {verified!r}"
            )
        elif not verified.ran:
            raise SnapshotStoreError(f"{self!r}: {verified!r}; call its run() before commit(verified=...)")
        # Superseded while the check ran (on another thread)? Then the store belongs to a newer
        # transfer, perhaps at this very index and file: publish nothing, remove nothing.
        self._check_active()
        error = verified.error
        if isinstance(error, WriteNotReadBackError):
            # Bytes that passed every chunk checksum are not what is stored: the verified
            # prefix cannot be trusted, so the transfer starts over, as after a digest mismatch.
            self._store._drop_transfer(self._transfer)
            self._closed_because = "its data did not read back as written"
            raise SnapshotDigestError(f"{error}; the partial data was removed") from None
        if error is not None:
            raise error  # a failing disk: the partial is kept, as for a failed write
        snapshot = self._store._publish_transfer(self._transfer)
        self._closed_because = "it was committed"
        return snapshot

    def prepare_commit(self, *, verify_digest: bool = True) -> CommitCheck:
        """The first step of a commit in steps (module docstring): the checks that ``commit``
        makes first (all bytes here, their running digest; same errors), and a
        :class:`CommitCheck` for the read-back that may then run on another thread."""
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
        return CommitCheck(self, self._transfer, self._store._read_back(self._transfer))

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
