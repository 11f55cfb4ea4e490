"""A disk store opens whatever stands in its directory, and a failing disk leaves it consistent.

Issue 15, item 7. Damage (a directory, a symbolic link or a FIFO where a file
should be, a record nested too deeply or too large to be one) becomes one entry
in ``problems`` each, and the good snapshots are still served. An ``OSError``
from the disk (a full disk) at any file operation of any store operation
leaves no temporary file behind and memory in step with what a reopened store
finds.
"""

from __future__ import annotations

import builtins
import errno
import os
import threading
from pathlib import Path

import pytest

import simulator.snapshots.disk as disk_module
import simulator.snapshots.files as files_module
from simulator.snapshots import DiskSnapshotStore
from simulator.snapshots.files import BIN, META, PARTIAL, PROGRESS, TMP, file_name

GOOD, DAMAGED, PARTIAL_INDEX = 10, 20, 30


def store_at(directory: Path) -> DiskSnapshotStore:
    return DiskSnapshotStore(directory, chunk_size=4, clock=lambda: 0.0, durable=False)


def populated(directory: Path) -> DiskSnapshotStore:
    store = store_at(directory)
    store.save_snapshot(GOOD, b"good data", term=1)
    store.save_snapshot(DAMAGED, b"will be damaged", term=1)
    writer = store.open_writer(PARTIAL_INDEX, term=1, size=8, digest=_digest(b"partial!"), snapshot_id="p")
    writer.write(0, b"part")
    return store


def _digest(data: bytes) -> str:
    from simulator.snapshots import digest_of

    return digest_of(data)


def _feed_fifo_if_opened(path: Path) -> threading.Thread:
    """A regressed store that opens the FIFO reads garbage instead of hanging the suite."""

    def writer() -> None:
        with open(path, "wb") as fifo:  # blocks until someone opens it for reading
            fifo.write(b"not json")

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    return thread


def _release(path: Path, thread: threading.Thread) -> None:
    if thread.is_alive():  # nobody opened the FIFO: let the writer thread finish
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        thread.join()
        os.close(descriptor)


OBSTACLES = ("directory", "dangling symlink", "symlink to a file", "fifo")
KINDS = (META, BIN, PROGRESS, PARTIAL)


def _put_obstacle(path: Path, obstacle: str) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()
    if obstacle == "directory":
        path.mkdir()
        (path / "inside").write_bytes(b"x")
    elif obstacle == "dangling symlink":
        path.symlink_to(path.parent / "nowhere")
    elif obstacle == "symlink to a file":
        target = path.parent.parent / f"elsewhere-{path.name}"
        target.write_bytes(b"{}")
        path.symlink_to(target)
    else:
        os.mkfifo(path)


@pytest.mark.parametrize("obstacle", OBSTACLES)
@pytest.mark.parametrize("kind", KINDS)
def test_an_entry_that_is_not_a_regular_file_is_a_problem_and_the_rest_is_served(tmp_path, kind, obstacle):
    directory = tmp_path / "store"
    populated(directory)
    index = PARTIAL_INDEX if kind in (PROGRESS, PARTIAL) else DAMAGED
    path = directory / file_name(index, kind)
    _put_obstacle(path, obstacle)
    feeder = _feed_fifo_if_opened(path) if obstacle == "fifo" else None
    try:
        reopened = store_at(directory)
    finally:
        if feeder is not None:
            _release(path, feeder)
    expected = {"directory": "a directory", "fifo": "a FIFO"}.get(obstacle, "a symbolic link")
    assert f"{path.name} is {expected}, a regular file expected; ignored" in reopened.problems
    assert reopened.read_snapshot(GOOD) == b"good data"
    if index == DAMAGED:
        assert [s.index for s in reopened.list_snapshots()] == [GOOD]
        assert [p.index for p in reopened.partial_transfers()] == [PARTIAL_INDEX]
    else:
        assert [s.index for s in reopened.list_snapshots()] == [GOOD, DAMAGED]
        assert reopened.partial_transfers() == []
    assert path.is_symlink() or path.exists()  # left for a person to look at, never followed or deleted


@pytest.mark.parametrize("obstacle", OBSTACLES)
@pytest.mark.parametrize("kind", (BIN + TMP, META + TMP, PROGRESS + TMP))
def test_a_temporary_name_taken_by_something_else_never_stops_opening(tmp_path, kind, obstacle):
    directory = tmp_path / "store"
    populated(directory)
    path = directory / file_name(40, kind)
    _put_obstacle(path, obstacle)
    reopened = store_at(directory)  # removing a FIFO never opens it
    assert [s.index for s in reopened.list_snapshots()] == [GOOD, DAMAGED]
    assert reopened.read_snapshot(DAMAGED) == b"will be damaged"
    if obstacle == "directory":
        [problem] = reopened.problems
        assert problem.startswith(f"{path.name}: cannot remove this leftover temporary entry")
    else:  # unlinking a link or a FIFO never touches what it points to
        assert reopened.problems == [] and not (path.exists() or path.is_symlink())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 30_000 + b"]" * 30_000, "nests JSON too deeply to parse"),
        (b"[" * 100_000 + b"]" * 100_000, "is over 65536 bytes"),
        (b"{" + b'"a": 1, ' * 20_000 + b'"b": 2}', "is over 65536 bytes; a small JSON record expected"),
        (b'{"format": "raftsim-snapshot", "version": 1, "index": ' + b"9" * 5000 + b"}", "is not valid UTF-8 JSON"),
        (lambda raw: raw.replace(b'"conf_state": null', b'"conf_state": {"voters": [[1]], "learners": [{}]}'),
         "field 'conf_state'"),
    ],
    ids=["nested 30000 deep", "nested 100000 deep", "over 64 KiB", "integer of 5000 digits", "wrong types"],
)
@pytest.mark.parametrize("kind", (META, PROGRESS))
def test_records_that_are_not_records_are_problems(tmp_path, kind, content, message):
    directory = tmp_path / "store"
    populated(directory)
    index = DAMAGED if kind == META else PARTIAL_INDEX
    path = directory / file_name(index, kind)
    path.write_bytes(content(path.read_bytes()) if callable(content) else content)
    reopened = store_at(directory)
    [problem] = reopened.problems
    assert file_name(index, kind) in problem and message in problem
    assert reopened.read_snapshot(GOOD) == b"good data"


# -- a disk that fails (ENOSPC) at the n-th file operation ---------------------------------


class FullDisk:
    """Raises ``ENOSPC`` at the ``fail_at``-th write, fsync, rename or remove under ``root``."""

    def __init__(self, monkeypatch, root: Path, fail_at: int) -> None:
        self.root = str(root)
        self.fail_at = fail_at
        self.count = 0
        self.descriptors: set[int] = set()
        real_fsync, real_replace, real_remove = os.fsync, os.replace, os.remove
        real_open = builtins.open
        disk = self

        def tick(what: str) -> None:
            disk.count += 1
            if disk.count == disk.fail_at:
                raise OSError(errno.ENOSPC, f"No space left on device ({what})")

        class File:
            def __init__(self, inner) -> None:
                self._inner = inner

            def write(self, data):
                tick("write")
                return self._inner.write(data)

            def __getattr__(self, name):
                return getattr(self._inner, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._inner.close()
                return False

        def fake_open(path, mode="r", *args, **kwargs):
            inner = real_open(path, mode, *args, **kwargs)
            if str(path).startswith(disk.root) and any(flag in mode for flag in "wa+"):
                return File(inner)
            return inner

        def fake_fsync(descriptor):
            tick("fsync")
            return real_fsync(descriptor)

        def on_path(real, what):
            def call(path, *args, **kwargs):
                if str(path).startswith(disk.root):
                    tick(what)
                return real(path, *args, **kwargs)

            return call

        for module in (disk_module, files_module):
            monkeypatch.setattr(module, "open", fake_open, raising=False)
        monkeypatch.setattr(os, "fsync", fake_fsync)
        monkeypatch.setattr(os, "replace", on_path(real_replace, "rename"))
        monkeypatch.setattr(os, "remove", on_path(real_remove, "remove"))


def _save(store):
    store.save_snapshot(5, b"new snapshot data", term=2)


def _receive(store):
    data = b"received!"
    writer = store.open_writer(5, term=2, size=len(data), digest=_digest(data), snapshot_id="r")
    for offset in range(0, len(data), 4):
        writer.write(offset, data[offset:offset + 4])
    writer.commit()


def _supersede(store):
    store.open_writer(6, term=2, size=1, digest=_digest(b"x"), snapshot_id="s")


def _compact(store):
    store.compact_snapshots(1)


OPERATIONS = {"save": _save, "receive": _receive, "supersede a transfer": _supersede, "compact": _compact}


def _prepared(directory: Path) -> DiskSnapshotStore:
    store = DiskSnapshotStore(directory, chunk_size=4, clock=lambda: 0.0)
    store.save_snapshot(1, b"one", term=1)
    store.save_snapshot(2, b"two", term=1)
    writer = store.open_writer(4, term=1, size=4, digest=_digest(b"four"), snapshot_id="f")
    writer.write(0, b"fo")
    return store


@pytest.mark.parametrize("operation", OPERATIONS, ids=list(OPERATIONS))
def test_a_full_disk_at_any_file_operation_leaves_no_temporary_file_and_memory_in_step(
        tmp_path, monkeypatch, operation):
    fail_at = 1
    while True:
        directory = tmp_path / f"fail-{fail_at}"
        store = _prepared(directory)
        with monkeypatch.context() as patch:
            disk = FullDisk(patch, directory, fail_at)
            try:
                OPERATIONS[operation](store)
                failed = False
            except OSError as error:
                assert error.errno == errno.ENOSPC
                failed = True
        where = f"{operation}, ENOSPC at file operation {fail_at}"
        leftovers = sorted(name for name in os.listdir(directory) if name.endswith(TMP))
        assert leftovers == [], f"{where}: {leftovers}"
        reopened = DiskSnapshotStore(directory, chunk_size=4, clock=lambda: 0.0)
        assert reopened.problems == [], f"{where}: {reopened.problems}"
        assert [s.index for s in store.list_snapshots()] == [s.index for s in reopened.list_snapshots()], where
        for snapshot in store.list_snapshots():
            assert store.read_snapshot(snapshot.index) == reopened.read_snapshot(snapshot.index), where
        assert [p.index for p in store.partial_transfers()] == [p.index for p in reopened.partial_transfers()], where
        if disk.count < fail_at:  # the operation finished before the disk filled up
            assert not failed
            break
        fail_at += 1
    assert fail_at > 3  # each operation does several file operations, every one was failed once
