"""Opening a snapshot directory after a restart or a crash.

:func:`recover` reads what a :class:`~simulator.snapshots.DiskSnapshotStore`
left behind and decides what to trust. Its rules, in order:

1. Temporary files (``snapshot-*.tmp``) belong to writes that never
   finished; they are removed.
2. A complete snapshot is a ``.bin`` with a ``.meta.json`` that parses, names
   the same index and records the file's size. The digest is *not* checked
   here (that would read every snapshot at every start); reads and streams
   check it. Anything else is ignored and reported in ``problems``; complete
   snapshot files are never deleted by recovery, so a person can look at them.
   A ``.bin`` with no metadata and no progress record is not a snapshot (metadata
   is written last and removed first): it is what an interrupted save or
   compaction leaves, so it is removed, as an action, like a temporary file.
   After a crash of a correct store, recovery finds no problems, only actions.
3. A partial transfer is a ``.partial`` with a ``.partial.json`` progress
   record. Its first ``offset`` bytes are re-hashed and compared with the digest
   recorded with the offset; bytes past ``offset`` (appended before a crash,
   never recorded) are truncated. A ``.partial`` longer than the snapshot has
   the two-slot trailer (:mod:`~simulator.snapshots.progress_trailer`): the
   record with the highest offset whose bytes hash to its digest wins, among
   both slots and the JSON record, and the file is left at its length.
   Partials that do not check out are removed and reported: they can always
   be transferred again.
4. A progress record whose data was already renamed to ``.bin`` (a crash
   during commit, before the metadata was written) is rolled forward when the
   ``.bin`` has the recorded size and digest: the metadata is written then.

Whatever else stands in the directory cannot stop it from opening: an entry
with a store file's name that is not a regular file (a directory, a symbolic
link, dangling or not, a FIFO: never followed or opened) is ignored as if
absent; a record that is huge or nested too deeply to parse is a corrupt
record; an ``OSError`` while loading one index skips that index. Each is
one entry in ``problems``, and every other snapshot is still served.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import attrs

from .disk_io import OS_FILES, Files
from .files import (
    BIN,
    META,
    PARTIAL,
    PROGRESS,
    file_name,
    fsync_directory,
    fsync_file,
    irregular_kind,
    is_temporary,
    no_faults,
    parse_name,
    read_record,
    remove_if_present,
    write_atomically,
)
from .progress_trailer import TrailerState, has_trailer, hash_prefix_checking, read_slots, slot_of_sequences
from .metadata import (
    MetadataError,
    PartialSnapshot,
    StoredSnapshot,
    hasher_digest,
    algorithm_of,
    hasher_for,
    partial_from_json,
    snapshot_from_json,
    snapshot_to_json,
)
from .writer import Transfer


@attrs.define(eq=False)
class Recovered:
    """What a directory holds once recovered, and what recovery found and did."""

    snapshots: dict[int, StoredSnapshot] = attrs.Factory(dict)
    transfers: dict[int, Transfer] = attrs.Factory(dict)
    #: Where the trailer of each partial laid out with one stands (the others are data-only).
    trailers: dict[int, TrailerState] = attrs.Factory(dict)
    problems: list[str] = attrs.Factory(list)
    actions: list[str] = attrs.Factory(list)


def _hash_prefix(path: Path, length: int, block_size: int, digest: str, files: Files = OS_FILES):
    """A running hash of the first ``length`` bytes of ``path`` in ``digest``'s algorithm, read block by block."""
    hasher = hasher_for(digest)
    remaining = length
    with files.open(path, "rb") as file:
        while remaining > 0:
            block = file.read(min(block_size, remaining))
            if not block:
                break
            hasher.update(block)
            remaining -= len(block)
    return hasher


class _Recovery:
    def __init__(self, directory: Path, block_size: int, clock: Callable[[], float], durable: bool,
                 files: Files = OS_FILES) -> None:
        self.directory = directory
        self.files = files
        self.durable = durable
        self.block_size = block_size
        self.clock = clock
        self.result = Recovered()
        self.changed = False

    def path(self, index: int, kind: str) -> Path:
        return self.directory / file_name(index, kind)

    def remove(self, index: int, *kinds: str) -> None:
        for kind in kinds:
            try:
                self.changed |= remove_if_present(self.path(index, kind), self.files)
            except OSError as error:  # a directory in the file's place, no permission
                self.result.problems.append(
                    f"{file_name(index, kind)}: cannot remove it ({error.strerror}); left as it is"
                )

    def run(self) -> Recovered:
        kinds_by_index: dict[int, set[str]] = {}
        for name in sorted(self.files.listdir(self.directory)):
            if is_temporary(name):
                self.remove_temporary(name)
                continue
            parsed = parse_name(name)
            if parsed is not None and self.is_regular(name):
                kinds_by_index.setdefault(parsed[0], set()).add(parsed[1])
        data_without_metadata = set()
        for index in sorted(kinds_by_index):
            kinds = kinds_by_index[index]
            if META in kinds:
                self.guarded(index, self.result.snapshots, lambda: self.load_complete(index, has_data=BIN in kinds))
            elif BIN in kinds:
                data_without_metadata.add(index)
        for index in sorted(kinds_by_index):
            kinds = kinds_by_index[index]
            if PROGRESS in kinds:
                self.guarded(index, self.result.transfers, lambda: self.load_partial(
                    index, has_data=PARTIAL in kinds, loose_bin=index in data_without_metadata))
            elif PARTIAL in kinds:
                self.remove_orphan_partial(index)
        for index in sorted(data_without_metadata - set(self.result.snapshots)):
            # Metadata is written last and removed first, so this is no snapshot but the
            # leftover of a save or compaction cut short: a crash, not damage, and garbage.
            self.remove(index, BIN)
            self.result.actions.append(
                f"removed {file_name(index, BIN)}: data without metadata {file_name(index, META)}, left by "
                "a save or compaction that was interrupted (metadata marks a complete snapshot)"
            )
        if self.changed:
            fsync_directory(self.directory, durable=self.durable, files=self.files)
        return self.result

    def remove_temporary(self, name: str) -> None:
        try:
            self.files.remove(self.directory / name)  # unlinks a symbolic link or FIFO itself
        except FileNotFoundError:
            return
        except OSError as error:  # a directory, or no permission
            self.result.problems.append(
                f"{name}: cannot remove this leftover temporary entry ({error.strerror}); ignored"
            )
            return
        self.changed = True
        self.result.actions.append(f"removed {name}: temporary file of a write that did not finish")

    def is_regular(self, name: str) -> bool:
        try:
            kind = irregular_kind(self.directory / name)
        except FileNotFoundError:
            return False  # removed since the listing
        if kind is not None:
            self.result.problems.append(f"{name} is {kind}, a regular file expected; ignored")
        return kind is None

    def guarded(self, index: int, loaded: dict, load: Callable[[], None]) -> None:
        """Run ``load``; an I/O error on one index is a problem with it, not with the directory.

        ``loaded`` is where ``load`` puts what it finds: a half-loaded entry is taken out again.
        """
        try:
            load()
        except OSError as error:
            loaded.pop(index, None)
            where = os.path.basename(error.filename) if error.filename else f"index {index}"
            self.result.problems.append(f"{where}: {error.strerror or error}; index {index} ignored")

    def remove_orphan_partial(self, index: int) -> None:
        self.remove(index, PARTIAL)
        self.result.actions.append(
            f"removed {file_name(index, PARTIAL)}: partial data without a progress record "
            "(a transfer interrupted while starting or being removed)"
        )

    def load_complete(self, index: int, *, has_data: bool) -> None:
        meta_name, data_path = file_name(index, META), self.path(index, BIN)
        if not has_data:
            self.result.problems.append(
                f"{meta_name} has no data file {data_path.name}; ignored, expected both files"
            )
            return
        try:
            raw = read_record(self.path(index, META), self.files)
            snapshot = snapshot_from_json(raw, what=meta_name, location=str(data_path))
        except (MetadataError, ValueError) as error:
            self.result.problems.append(f"{error}; snapshot {index} ignored")
            return
        if snapshot.index != index:
            self.result.problems.append(
                f"{meta_name} records index {snapshot.index}, expected {index} as its name says; ignored"
            )
            return
        actual_size = self.files.size(data_path)
        if actual_size != snapshot.size:
            self.result.problems.append(
                f"{data_path.name} has {actual_size} bytes, {meta_name} records size {snapshot.size} "
                "(truncated or overwritten); ignored"
            )
            return
        self.result.snapshots[index] = snapshot

    def load_partial(self, index: int, *, has_data: bool, loose_bin: bool) -> None:
        progress_name = file_name(index, PROGRESS)
        partial_path = self.path(index, PARTIAL)
        try:
            partial, prefix_digest = partial_from_json(
                read_record(self.path(index, PROGRESS), self.files), what=progress_name, location=str(partial_path)
            )
            if partial.index != index:
                raise MetadataError(f"{progress_name} records index {partial.index}, expected {index}")
        except (MetadataError, ValueError) as error:
            self.remove(index, PROGRESS, PARTIAL)
            self.result.problems.append(f"{error}; partial transfer {index} removed")
            return
        if index in self.result.snapshots:
            self.remove(index, PROGRESS, PARTIAL)
            self.result.actions.append(
                f"removed {progress_name}: snapshot {index} is already complete (a commit finished "
                "but had not yet removed its progress record)"
            )
        elif not has_data:
            self.roll_forward(partial, loose_bin=loose_bin)
        else:
            self.resume(partial, prefix_digest)

    def roll_forward(self, partial: PartialSnapshot, *, loose_bin: bool) -> None:
        index = partial.index
        data_path = self.path(index, BIN)
        if loose_bin and self.files.size(data_path) == partial.size:
            actual = hasher_digest(_hash_prefix(data_path, partial.size, self.block_size, partial.digest, self.files))
            if actual == partial.digest:
                snapshot = StoredSnapshot(
                    index=index,
                    term=partial.term,
                    size=partial.size,
                    digest=partial.digest,
                    snapshot_id=partial.snapshot_id,
                    conf_state=partial.conf_state,
                    created_at=float(self.clock()),
                    location=str(data_path),
                )
                write_atomically(
                    self.path(index, META),
                    snapshot_to_json(snapshot),
                    no_faults,
                    written="",
                    renamed="",
                    durable=self.durable,
                )
                self.result.snapshots[index] = snapshot
                self.remove(index, PROGRESS)
                self.result.actions.append(
                    f"completed snapshot {index}: its commit was interrupted after the data was "
                    "renamed; size and digest verified, metadata written"
                )
                return
        self.remove(index, PROGRESS)
        self.result.problems.append(
            f"{file_name(index, PROGRESS)} has no partial data {file_name(index, PARTIAL)} and no "
            f"verified {data_path.name} of {partial.size} bytes with digest {partial.digest}; removed"
        )

    def resume(self, partial: PartialSnapshot, prefix_digest: str) -> None:
        index = partial.index
        partial_path = self.path(index, PARTIAL)
        actual_size = self.files.size(partial_path)
        if has_trailer(actual_size, partial.size):
            self.resume_with_trailer(partial, prefix_digest)
            return
        if actual_size < partial.offset:
            self.remove(index, PROGRESS, PARTIAL)
            self.result.problems.append(
                f"{partial_path.name} has {actual_size} bytes, its progress record says {partial.offset} "
                "were written; partial transfer removed"
            )
            return
        hasher = _hash_prefix(partial_path, partial.offset, self.block_size, partial.digest, self.files)
        if hasher_digest(hasher) != prefix_digest:
            self.remove(index, PROGRESS, PARTIAL)
            self.result.problems.append(
                f"{partial_path.name}: the first {partial.offset} bytes have digest {hasher_digest(hasher)}, "
                f"the progress record expects {prefix_digest}; partial transfer removed"
            )
            return
        if actual_size > partial.offset:
            with self.files.open(partial_path, "r+b") as file:
                file.truncate(partial.offset)
                fsync_file(file, durable=self.durable, files=self.files)
            self.result.actions.append(
                f"truncated {partial_path.name} from {actual_size} to {partial.offset} bytes: bytes "
                "past the last recorded offset were never acknowledged"
            )
        self.result.transfers[index] = Transfer(partial=partial, hasher=hasher)

    def resume_with_trailer(self, partial: PartialSnapshot, prefix_digest: str) -> None:
        index = partial.index
        partial_path = self.path(index, PARTIAL)
        files = self.files
        descriptor = files.open_descriptor(partial_path, os.O_RDONLY)
        try:
            algorithm = algorithm_of(partial.digest)
            slots = read_slots(descriptor, partial.size, algorithm, files.pread)
            slot_of = slot_of_sequences(descriptor, partial.size, algorithm, files.pread)
            candidates = [(record.offset, record.prefix_digest) for record in slots]
            found = hash_prefix_checking(descriptor, [*candidates, (partial.offset, prefix_digest)],
                                         self.block_size, algorithm, files.pread)
        finally:
            files.close_descriptor(descriptor)
        if found is None:
            self.remove(index, PROGRESS, PARTIAL)
            self.result.problems.append(
                f"{partial_path.name}: neither trailer slot nor {file_name(index, PROGRESS)} (offset "
                f"{partial.offset}) matches the data; partial transfer removed"
            )
            return
        offset, digest, hasher = found
        trusted = next((record for record in slots if (record.offset, record.prefix_digest) == (offset, digest)),
                       None)
        if slots and offset < slots[0].offset:
            self.result.actions.append(
                f"{partial_path.name}: progress record {slots[0].sequence} (offset {slots[0].offset}) was "
                f"written but its data was not durable; resumed at offset {offset}"
            )
        state = TrailerState.after_recovery(trusted, slot_of)
        state.sequence = max([state.sequence, *slot_of])  # sequence numbers only grow
        self.result.transfers[index] = Transfer(partial=attrs.evolve(partial, offset=offset), hasher=hasher)
        self.result.trailers[index] = state


def recover(directory: Path, *, block_size: int, clock: Callable[[], float], durable: bool,
            files: Files = OS_FILES) -> Recovered:
    """Load complete snapshots and resumable transfers from ``directory``; see the module docs.
    All I/O goes through ``files`` (:mod:`~simulator.snapshots.disk_io`)."""
    return _Recovery(directory, block_size, clock, durable, files).run()
