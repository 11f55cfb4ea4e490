"""Crash consistency of ``DiskSnapshotStore`` on every state a crash may leave (issue 15, item 15).

A workload (saves, a chunked transfer and its commit, a compaction, a
superseded transfer) runs once against a real directory under
:class:`crashfs.Recorder`, which logs each write, truncate, fsync, rename
and unlink. For every point of that log, :func:`crashfs.crash_states`
rebuilds each state POSIX allows a crash to leave (unsynced writes lost or
torn, renames and unlinks lost until the directory is fsynced), and the
store is reopened on it. The oracle only uses the store's public API and the
workload's milestones, so it holds whatever files the store writes:

- reopening never fails and reports no ``problems`` (a crash is not damage);
- every snapshot it lists reads back as exactly the bytes saved at that index;
- every snapshot whose save or commit had returned is still listed, unless a
  compaction of it had begun;
- a transfer resumes at or after the last offset whose ``write`` had returned
  (only the chunk in flight is sent again), and finishing it from there
  commits the right snapshot.

The four mutations of the issue are applied with ``monkeypatch`` to show the
harness catches each of them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

import simulator.snapshots.disk as disk_module
from crashfs import CrashState, HarnessError, Recorder, crash_states
from simulator.snapshots import DiskSnapshotStore, digest_of
from simulator.snapshots.files import BIN, META, PARTIAL, PROGRESS, fsync_file

CHUNK = 4
SAVED = {1: b"first snapshot", 2: b"second one", 5: b"saved at five"}
RECEIVED = {3: b"received in chunks", 4: b"superseded", 6: b"the last transfer"}


def open_store(directory: Path) -> DiskSnapshotStore:
    return DiskSnapshotStore(directory, chunk_size=CHUNK, clock=lambda: 0.0)


def _receive(store, recorder, index: int, *, upto: int | None = None, commit: bool = True) -> None:
    data = RECEIVED[index]
    recorder.mark("transfer", index)  # from here on, the previous transfer may be gone
    writer = store.open_writer(index, term=1, size=len(data), digest=digest_of(data), snapshot_id=f"id-{index}")
    for offset in range(0, len(data) if upto is None else upto, CHUNK):
        writer.write(offset, data[offset:offset + CHUNK])
        recorder.mark("acked", (index, offset + len(data[offset:offset + CHUNK])))
    if commit:
        writer.commit()
        recorder.mark("saved", index)


def workload(store: DiskSnapshotStore, recorder: Recorder) -> None:
    for index in (1, 2):
        store.save_snapshot(index, SAVED[index], term=1)
        recorder.mark("saved", index)
    _receive(store, recorder, 3)
    recorder.mark("compacting", (1, 2))
    store.compact_snapshots(1)
    _receive(store, recorder, 4, upto=8, commit=False)
    store.save_snapshot(5, SAVED[5], term=1)
    recorder.mark("saved", 5)
    _receive(store, recorder, 6, upto=12, commit=False)  # supersedes transfer 4


def recorded_run(directory: Path, monkeypatch) -> Recorder:
    directory.mkdir()
    recorder = Recorder(directory)
    with monkeypatch.context() as patch:
        recorder.install(patch)
        workload(open_store(directory), recorder)
        recorder.check_complete()
    return recorder


def check(state: CrashState, directory: Path) -> None:
    """The oracle; raises AssertionError naming what is wrong with this state."""
    saved, doomed, acked = set(), set(), {}
    transfer = None
    for mark in state.marks:
        if mark.label == "saved":
            saved.add(mark.payload)
        elif mark.label == "compacting":
            doomed.update(mark.payload)
        elif mark.label == "transfer":
            transfer = mark.payload
            acked[transfer] = 0
        elif mark.label == "acked":
            acked[mark.payload[0]] = mark.payload[1]
    store = open_store(state.materialize(directory))
    assert store.problems == [], f"a crash left damage: {store.problems}"
    listed = {snapshot.index for snapshot in store.list_snapshots()}
    for index in sorted(listed):
        expected = SAVED.get(index, RECEIVED.get(index))
        assert store.read_snapshot(index) == expected, f"snapshot {index} is served with the wrong bytes"
    lost = (saved - doomed) - listed
    assert not lost, f"snapshots {sorted(lost)} were saved durably and are gone"
    partials = {partial.index: partial for partial in store.partial_transfers()}
    if transfer is not None and transfer not in saved and transfer not in listed:
        resumed = partials[transfer].offset if transfer in partials else 0
        assert resumed >= acked[transfer], (
            f"transfer {transfer} resumes at {resumed}, but bytes up to {acked[transfer]} were acknowledged")
    for index, partial in partials.items():  # every partial kept must finish into the right snapshot
        data = RECEIVED[index]
        writer = store.open_writer(index, term=1, size=len(data), digest=digest_of(data), snapshot_id=f"id-{index}")
        assert writer.offset == partial.offset
        for offset in range(writer.offset, len(data), CHUNK):
            writer.write(offset, data[offset:offset + CHUNK])
        writer.commit()
        assert store.read_snapshot(index) == data


def bad_states(tmp_path: Path, monkeypatch, *, stop_at_first: bool) -> tuple[int, list[str]]:
    recorder = recorded_run(tmp_path / "recorded", monkeypatch)
    checked, bad = 0, []
    for number, state in enumerate(crash_states(recorder)):
        checked += 1
        try:
            check(state, tmp_path / "states" / str(number))
        except AssertionError as error:
            bad.append(f"{state.description}: {error}")
            if stop_at_first:
                break
    return checked, bad


def test_recovery_is_consistent_in_every_crash_state_posix_allows(tmp_path, monkeypatch):
    checked, bad = bad_states(tmp_path, monkeypatch, stop_at_first=False)
    assert bad == []
    assert checked > 100  # distinct states: every point of the log, several at most points


# -- the four mutations of issue 15: the harness must find a bad state for each ----------


def _write_in_place(path, data, step, *, written, renamed, durable, files=None):
    with open(path, "wb") as file:  # no temporary file: a crash can leave it torn
        file.write(data)
        fsync_file(file, durable=durable)
    step(written)
    step(renamed)


def _metadata_before_data(self, staged, snapshot):
    self._write_metadata(snapshot)
    os.replace(staged.handle, self._path(snapshot.index, BIN))
    self._sync_directory()


def _metadata_before_data_on_commit(self, transfer, snapshot):
    self._write_metadata(snapshot)
    os.replace(self._path(snapshot.index, PARTIAL), self._path(snapshot.index, BIN))
    self._sync_directory()
    with contextlib.suppress(FileNotFoundError):
        os.remove(self._path(snapshot.index, PROGRESS))
    self._sync_directory()


def _progress_before_data(self, transfer, offset, data, *, prefix_digest):
    self._write_progress(transfer, offset + len(data), prefix_digest)
    with open(self._path(transfer.partial.index, PARTIAL), "r+b") as file:
        file.seek(offset)
        file.write(data)
        file.truncate()
        fsync_file(file, durable=self.durable)


def _data_removed_before_record(self, transfer):
    for kind in (PARTIAL, PROGRESS):
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._path(transfer.partial.index, kind))
        self._sync_directory()


MUTATIONS = {
    "write in place instead of temp file + rename": [(disk_module, "write_atomically", _write_in_place)],
    "metadata published before the data rename": [
        (disk_module.DiskSnapshotStore, "_publish_staged", _metadata_before_data),
        (disk_module.DiskSnapshotStore, "_publish_partial", _metadata_before_data_on_commit)],
    "progress record before the partial data": [
        (disk_module.DiskSnapshotStore, "_append_partial", _progress_before_data)],
    "partial data removed before its record": [
        (disk_module.DiskSnapshotStore, "_remove_partial", _data_removed_before_record)],
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
def test_the_harness_finds_a_bad_crash_state_for_each_known_mistake(tmp_path, monkeypatch, mutation):
    for owner, name, replacement in MUTATIONS[mutation]:
        monkeypatch.setattr(owner, name, replacement)
    _checked, bad = bad_states(tmp_path, monkeypatch, stop_at_first=True)
    assert bad, f"no crash state exposes: {mutation}"


# -- the harness itself ---------------------------------------------------------------


def test_a_write_the_recorder_did_not_see_is_reported(tmp_path, monkeypatch):
    directory = tmp_path / "recorded"
    directory.mkdir()
    recorder = Recorder(directory)
    real_open = open
    with monkeypatch.context() as patch:
        recorder.install(patch)
        with open(directory / "seen", "wb") as file:
            file.write(b"x")
    with real_open(directory / "unseen", "wb") as file:  # behind the recorder's back
        file.write(b"y")
    with pytest.raises(HarnessError, match="a file operation was not recorded"):
        recorder.check_complete()


def test_unsynced_writes_and_renames_may_each_be_lost(tmp_path, monkeypatch):
    directory = tmp_path / "recorded"
    directory.mkdir()
    recorder = Recorder(directory)
    with monkeypatch.context() as patch:
        recorder.install(patch)
        with open(directory / "a.tmp", "wb") as file:
            file.write(b"data")
            file.flush()
            os.fsync(file.fileno())
        os.replace(directory / "a.tmp", directory / "a")
    files = {state.files for state in crash_states(recorder)}
    assert (("a", b"data"),) in files  # the rename arrived
    assert (("a.tmp", b"data"),) in files  # the rename was lost, the fsynced data was not
    assert (("a.tmp", b""),) in files  # the crash came before the fsync
    assert (("a.tmp", b"da"),) in files and (("a.tmp", b"\0\0\0\0"),) in files  # torn writes
    assert () in files  # even the name of the new file was never made durable
    assert not any(name == "a" and content != b"data" for state in files for name, content in state)
