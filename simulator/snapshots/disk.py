"""``DiskSnapshotStore``: snapshots in a directory that survives restarts.

The seed's phase 1: a node restarted on the same directory finds its
snapshots (and any transfer it was receiving) again, and snapshot data lives
on disk rather than in memory. File layout and the atomic-write rule are in
:mod:`simulator.snapshots.files`; what opening a directory trusts, repairs and
reports is in :mod:`simulator.snapshots.recovery`.

What is verified when:

- ``save_snapshot`` and ``SnapshotWriter.commit`` compute the digest of the
  bytes as they are written; commit refuses a mismatch.
- Opening a directory checks each snapshot's metadata and file size, not its
  digest (that would read every snapshot at every start), and re-hashes the
  verified prefix of each partial transfer against its progress record.
- Before a snapshot is published, the store reads back what it wrote and
  hashes it (a misdirected or lost write fails the save as EIO, or restarts
  the received transfer, instead of publishing bytes nobody verified).
  For a received transfer that read-back is the writer's commit check
  (``SnapshotWriter.prepare_commit``), which an async caller may run on a
  worker thread: it reads only the partial file.
- ``stream_snapshot`` and ``read_snapshot`` hash everything they read and
  raise ``SnapshotCorruptError`` before the last chunk if the digest differs,
  including for snapshots this store object wrote itself: a disk can return
  bits other than the ones it was given (a flipped bit on read), and the
  restore that follows a transfer has no later check. With BLAKE3 a pass
  costs about 0.2 CPU s per GiB (``benchmarks/results/checksums.json``).

Receiving a transfer costs one fsync per chunk: progress records live in a
two-slot trailer after the partial data (:mod:`~simulator.snapshots.progress_trailer`);
``sync_every=N`` fsyncs every N chunks instead, and a crash then re-sends up
to N chunks.

Crash testing: ``fault_injector`` is called with the name of each durable
step as it completes (:data:`FAULT_STEPS`); raising from it stops the
operation there as a crash would, without cleanup. The store object must then
be dropped, and a new one opened on the directory, as after a real crash.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from .base import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_SNAPSHOT_SIZE, BaseSnapshotStore, RangeReader, Staged
from .disk_io import OS_FILES, Files
from .errors import SnapshotCorruptError, WriteNotReadBackError
from .files import (
    BIN,
    META,
    PARTIAL,
    PROGRESS,
    TMP,
    FaultInjector,
    file_name,
    fsync_directory,
    fsync_file,
    no_faults,
    remove_if_present,
    removed_on_failure,
    write_atomically,
)
from .metadata import (
    StoredSnapshot,
    hasher_digest,
    hasher_for,
    new_hasher,
    partial_to_json,
    snapshot_to_json,
)
from .progress_trailer import TRAILER_BYTES, SlotRecord, TrailerState, encode_slot, slot_position
from .recovery import recover
from .writer import Transfer

#: Every step name a ``fault_injector`` can be called with, in the order an operation reaches them.
FAULT_STEPS = (
    # save_snapshot: data to a temporary file, renamed; then the metadata the same way.
    "data_written",
    "data_fsynced",
    "data_renamed",
    "meta_tmp_written",
    "meta_renamed",
    # open_writer: superseded partials removed (record first), a new partial started.
    "partial_progress_removed",
    "partial_removed",
    "partial_created",
    # open_writer writes the JSON progress record (identity, offset 0) once:
    "progress_tmp_written",
    "progress_written",
    # SnapshotWriter.write: bytes, then a progress record into the free trailer slot, one fsync.
    "partial_appended",
    "partial_slot_written",
    "partial_fsynced",
    # SnapshotWriter.commit: the JSON record moved to offset = size, the trailer cut off,
    # then data_renamed, meta_tmp_written, meta_renamed, and:
    "partial_trailer_dropped",
    "progress_removed",
    # compact_snapshots: metadata first (the snapshot disappears atomically), then data.
    "compact_meta_removed",
    "compact_data_removed",
)


class _FileReader(RangeReader):
    """Reads ranges with seek + read: never more than one chunk in memory."""

    def __init__(self, snapshot: StoredSnapshot, files: Files) -> None:
        try:
            self._file = files.open(Path(snapshot.location), "rb")
        except FileNotFoundError:
            raise SnapshotCorruptError(
                f"snapshot {snapshot.index}: data file {Path(snapshot.location).name} is missing; "
                "it was removed behind the store's back"
            ) from None

    def read_at(self, position: int, length: int) -> bytes:
        self._file.seek(position)
        return self._file.read(length)

    def close(self) -> None:
        self._file.close()


class DiskSnapshotStore(BaseSnapshotStore):
    """A :class:`~simulator.snapshots.SnapshotStore` in ``snapshot_dir`` (created if missing).

    Opening recovers the directory (see :mod:`~simulator.snapshots.recovery`).
    ``durable=False`` skips fsync (same write order and renames): for
    simulations and tests where the host itself never loses power.
    ``max_snapshot_size``: larger snapshots are refused (``SnapshotTooLargeError``);
    default 10 GiB, the seed's promise.
    ``sync_every``: chunks of a transfer received per fsync (group durability);
    1, the default, keeps the promise that a crash re-sends at most one chunk,
    N re-sends at most N chunks (N x ``chunk_size`` bytes) for N times fewer fsyncs.
    ``files``: the file layer all I/O goes through (:mod:`~simulator.snapshots.disk_io`);
    the operating system's unless a test or fault program gives a faulty one.
    Afterwards ``problems`` lists entries that were ignored as corrupt or
    incomplete, and ``recovery_actions`` what was cleaned up or completed.
    """


    def __init__(
        self,
        snapshot_dir: str | os.PathLike[str],
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        clock: Callable[[], float] = time.time,
        *,
        fault_injector: FaultInjector | None = None,
        durable: bool = True,
        sync_every: int = 1,
        max_snapshot_size: int = DEFAULT_MAX_SNAPSHOT_SIZE,
        files: Files | None = None,
    ) -> None:
        super().__init__(chunk_size=chunk_size, clock=clock)
        if isinstance(max_snapshot_size, bool) or not isinstance(max_snapshot_size, int) or max_snapshot_size < 0:
            raise ValueError(f"max_snapshot_size must be an integer >= 0 (bytes), got {max_snapshot_size!r}")
        self.max_snapshot_size = max_snapshot_size
        if isinstance(sync_every, bool) or not isinstance(sync_every, int) or sync_every < 1:
            raise ValueError(f"sync_every must be an integer >= 1 (chunks per fsync), got {sync_every!r}")
        self.snapshot_dir = Path(os.path.abspath(snapshot_dir))
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        self.durable = durable
        self.sync_every = sync_every
        self._step = fault_injector or no_faults
        self.files = files or OS_FILES
        recovered = recover(self.snapshot_dir, block_size=self.chunk_size, clock=clock, durable=durable,
                            files=self.files)
        self._snapshots = recovered.snapshots
        self._transfers = recovered.transfers
        self._trailers: dict[int, TrailerState] = recovered.trailers  # partials laid out with a trailer
        #: Corrupt or incomplete entries found on opening, ignored (one message each).
        self.problems: list[str] = recovered.problems
        #: What opening cleaned up or completed (temporary files, stale partial data).
        self.recovery_actions: list[str] = recovered.actions

    def __repr__(self) -> str:
        return f"<DiskSnapshotStore {str(self.snapshot_dir)!r} snapshots={sorted(self._snapshots)}>"

    def reopened(self) -> DiskSnapshotStore:
        """A new store on the same directory, recovered from what is on disk (as after a restart,
        which is a crash of the node's machine: its disk keeps what it made durable)."""
        self.files.crashed(self.snapshot_dir)
        return DiskSnapshotStore(self.snapshot_dir, chunk_size=self.chunk_size, clock=self._clock,
                                 fault_injector=None if self._step is no_faults else self._step,
                                 durable=self.durable, sync_every=self.sync_every,
                                 max_snapshot_size=self.max_snapshot_size, files=self.files)

    def _path(self, index: int, kind: str) -> Path:
        return self.snapshot_dir / file_name(index, kind)

    def _sync_directory(self) -> None:
        fsync_directory(self.snapshot_dir, durable=self.durable, files=self.files)

    def _write_atomically(self, path: Path, data: bytes, *, written: str, renamed: str) -> None:
        write_atomically(path, data, self._step, written=written, renamed=renamed, durable=self.durable,
                         files=self.files)

    # -- complete snapshots -----------------------------------------------------

    def _where(self, snapshot: StoredSnapshot) -> str:
        # The file's name, not its path: messages land in the trace, whose hash must not
        # depend on the directory a run happened to get.
        return Path(snapshot.location).name

    def _location(self, index: int) -> str:
        return str(self._path(index, BIN))

    def _stage(self, index: int, chunks: Iterator[Any]) -> Staged:
        temporary = self._path(index, BIN + TMP)
        hasher, size = new_hasher(), 0
        # A failing data source or disk (ENOSPC on write, flush or fsync) removes the
        # temporary file at once; only a simulated crash (a step) leaves it for recovery.
        with removed_on_failure(temporary, self.files):
            file = self.files.open(temporary, "wb")
        try:
            with removed_on_failure(temporary, self.files):
                for chunk in chunks:
                    file.write(chunk)
                    hasher.update(chunk)
                    size += len(chunk)
                file.flush()
            self._step("data_written")
            with removed_on_failure(temporary, self.files):
                fsync_file(file, durable=self.durable, files=self.files)
        finally:
            file.close()
        self._step("data_fsynced")
        digest = hasher_digest(hasher)
        with removed_on_failure(temporary, self.files):
            self._check_written(temporary, size, digest, f"snapshot {index}", exact=True)
        return Staged(size=size, digest=digest, handle=temporary)

    def _check_written(self, path: Path, size: int, digest: str, what: str, *, exact: bool = False) -> None:
        """Read the first ``size`` bytes of ``path`` back before publishing them (``exact``: and no
        more): a write the disk put in the wrong place shows here as bytes that no longer hash
        to ``digest``. :class:`WriteNotReadBackError` then, an ``OSError`` (EIO), so callers treat
        it as the failing disk it is. One read per snapshot, usually from the page cache."""
        actual, length, limit = hasher_for(digest), 0, size + 1 if exact else size
        with self.files.open(path, "rb") as file:
            while length < limit and (block := file.read(min(self.chunk_size, limit - length))):
                actual.update(block[: size - length])
                length += len(block)
        if length != size or hasher_digest(actual) != digest:
            raise WriteNotReadBackError(f"{what}: {path.name} does not read back as written ({length} bytes "
                                        f"with digest {hasher_digest(actual)}, expected {size} with {digest}): "
                                        "a misdirected or lost write; not published")

    def _discard_staged(self, staged: Staged) -> None:
        remove_if_present(staged.handle, self.files)

    def _publish_staged(self, staged: Staged, snapshot: StoredSnapshot) -> None:
        data_path = self._path(snapshot.index, BIN)
        with removed_on_failure(staged.handle, self.files):
            self.files.replace(staged.handle, data_path)
        with removed_on_failure(data_path, self.files):  # a failing disk: no snapshot, no leftover data
            self._sync_directory()
        self._step("data_renamed")
        with removed_on_failure(data_path, self.files):
            self._write_metadata(snapshot)

    def _write_metadata(self, snapshot: StoredSnapshot) -> None:
        """Publish ``snapshot``; if the disk fails, it stays unpublished (as the caller's memory says)."""
        path = self._path(snapshot.index, META)
        try:
            self._write_atomically(path, snapshot_to_json(snapshot), written="meta_tmp_written",
                                   renamed="meta_renamed")
        except OSError:
            # The rename may have happened before the directory fsync failed: undo it.
            with contextlib.suppress(OSError):
                remove_if_present(path, self.files)
            raise

    def _open_reader(self, snapshot: StoredSnapshot) -> RangeReader:
        return _FileReader(snapshot, self.files)

    def _unpublish_snapshot(self, snapshot: StoredSnapshot) -> None:
        remove_if_present(self._path(snapshot.index, META), self.files)
        try:
            self._sync_directory()
        except OSError:
            # The name is gone either way; if the removal is lost in a crash, the old
            # snapshot reappears on reopening, complete and checked: harmless.
            pass
        self._step("compact_meta_removed")

    def _delete_snapshot_data(self, snapshot: StoredSnapshot) -> None:
        remove_if_present(self._path(snapshot.index, BIN), self.files)
        self._sync_directory()
        self._step("compact_data_removed")

    # -- partial transfers --------------------------------------------------------

    def _partial_location(self, index: int) -> str:
        return str(self._path(index, PARTIAL))

    def _begin_transfer(self, transfer: Transfer) -> None:
        index = transfer.partial.index
        try:
            with self.files.open(self._path(index, PARTIAL), "wb") as file:
                file.truncate(transfer.partial.size + TRAILER_BYTES)  # sparse: data region, then the slots
                fsync_file(file, durable=self.durable, files=self.files)
            self._sync_directory()
            self._step("partial_created")
            self._record_progress(transfer)
            self._trailers[index] = TrailerState()
        except OSError:
            # A failing disk: the transfer never started, on disk as in memory.
            with contextlib.suppress(OSError):
                remove_if_present(self._path(index, PROGRESS), self.files)
            with contextlib.suppress(OSError):
                remove_if_present(self._path(index, PARTIAL), self.files)
            raise

    def _append_partial(self, transfer: Transfer, offset: int, data: Any, *, prefix_digest: str) -> None:
        trailer = self._trailers.get(transfer.partial.index)
        if trailer is not None:
            self._append_with_trailer(transfer, trailer, offset, data, prefix_digest)
            return
        # A data-only partial left by an earlier version: its progress lives in the JSON record.
        with self.files.open(self._path(transfer.partial.index, PARTIAL), "r+b") as file:
            file.seek(offset)
            file.write(data)
            file.truncate()  # drop bytes of an earlier append that was never recorded
            file.flush()
            self._step("partial_appended")
            fsync_file(file, durable=self.durable, files=self.files)
        self._step("partial_fsynced")
        # Data is durable before the record that points past it: a crash in between
        # leaves extra bytes, which reopening truncates, never a record of missing bytes.
        self._write_progress(transfer, offset + len(data), prefix_digest)

    def _append_with_trailer(self, transfer: Transfer, trailer: TrailerState, offset: int, data: Any,
                             prefix_digest: str) -> None:
        size = transfer.partial.size
        end = offset + len(data)
        files = self.files
        descriptor = files.open_descriptor(self._path(transfer.partial.index, PARTIAL), os.O_RDWR)
        try:
            _pwrite_all(files, descriptor, data, offset)
            self._step("partial_appended")
            # Never into the slot of the last durable record: a torn or lost write
            # of this one leaves that one, and the data it covers, intact.
            record = SlotRecord(sequence=trailer.sequence + 1, offset=end, prefix_digest=prefix_digest)
            _pwrite_all(files, descriptor, encode_slot(record), slot_position(size, trailer.next_slot))
            trailer.sequence = record.sequence
            self._step("partial_slot_written")
            trailer.unsynced += 1
            if trailer.unsynced >= self.sync_every or end == size:
                if self.durable:
                    files.fsync(descriptor)
                trailer.durable_slot, trailer.unsynced = trailer.next_slot, 0
                self._step("partial_fsynced")
        finally:
            files.close_descriptor(descriptor)

    def _record_progress(self, transfer: Transfer) -> None:
        self._write_progress(transfer, transfer.partial.offset, transfer.prefix_digest)

    def _write_progress(self, transfer: Transfer, offset: int, prefix_digest: str) -> None:
        partial = transfer.partial
        record = partial_to_json(attrs.evolve(partial, offset=offset), prefix_digest=prefix_digest)
        self._write_atomically(
            self._path(partial.index, PROGRESS),
            record,
            written="progress_tmp_written",
            renamed="progress_written",
        )

    def _read_back(self, transfer: Transfer) -> Callable[[], None]:
        # Reads the partial file and hashes it, nothing else: the writer's commit may run
        # it on another thread (a gRPC node's loop keeps serving meanwhile). A transfer
        # superseded meanwhile may remove the file or start a new one under the same name;
        # the commit then publishes nothing, whatever this found.
        partial = transfer.partial
        return functools.partial(self._check_written, self._path(partial.index, PARTIAL), partial.size,
                                 partial.digest, f"snapshot {partial.index}")

    def _publish_partial(self, transfer: Transfer, snapshot: StoredSnapshot) -> None:
        # The data was read back and verified by the writer's commit (``_read_back``) just before.
        partial_path, data_path = self._path(snapshot.index, PARTIAL), self._path(snapshot.index, BIN)
        if snapshot.index in self._trailers:
            # The JSON record moves to the end first, so a crash once the trailer is gone
            # still resumes at size (and the commit completes), never from an older offset.
            self._write_progress(transfer, snapshot.size, transfer.prefix_digest)
            with self.files.open(partial_path, "r+b") as file:
                file.truncate(snapshot.size)
                fsync_file(file, durable=self.durable, files=self.files)
            self._step("partial_trailer_dropped")
            self._trailers.pop(snapshot.index)
        self.files.replace(partial_path, data_path)
        try:
            self._sync_directory()
            self._step("data_renamed")
            self._write_metadata(snapshot)
        except OSError:
            # A failing disk, not a crash: put the data back, so the transfer the store
            # still holds in memory is the one a reopened store would resume.
            self.files.replace(data_path, partial_path)
            raise
        # Published. A progress record left behind by a failing disk is removed on reopening.
        with contextlib.suppress(OSError):
            remove_if_present(self._path(snapshot.index, PROGRESS), self.files)
            self._sync_directory()
        self._step("progress_removed")

    def _remove_partial(self, transfer: Transfer) -> None:
        # The record goes first: data without a record is an orphan that reopening removes,
        # and the next transfer at this index truncates; so once the record is gone,
        # a disk failing to remove the data changes nothing the store reports.
        remove_if_present(self._path(transfer.partial.index, PROGRESS), self.files)
        self._trailers.pop(transfer.partial.index, None)
        with contextlib.suppress(OSError):
            self._sync_directory()
        self._step("partial_progress_removed")
        with contextlib.suppress(OSError):
            remove_if_present(self._path(transfer.partial.index, PARTIAL), self.files)
            self._sync_directory()
        self._step("partial_removed")


def _pwrite_all(files: Files, descriptor: int, data: Any, position: int) -> None:
    """``pwrite`` until every byte is written (a regular file may take fewer at once)."""
    view = memoryview(data)
    while view:
        written = files.pwrite(descriptor, view, position)
        view, position = view[written:], position + written
