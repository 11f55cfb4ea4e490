"""Crash states of a directory: record file operations, then rebuild what a crash may leave.

The idea of ALICE and CrashMonkey, small enough to read in one sitting (no
maintained Python library does this; LazyFS needs FUSE). Theory of operation:

1. **Record.** :class:`Recorder` patches ``open``/``io.open`` and the ``os``
   calls that change files (``open``, ``write``, ``pwrite``, ``ftruncate``, ``fsync``,
   ``fdatasync``, ``replace``, ``rename``, ``remove``, ``unlink``) for paths in
   one flat directory, and logs each as an operation on an *inode* (writes,
   truncations, file fsyncs) or on the *namespace* (create, rename, unlink,
   directory fsync). The operations still happen on the real directory, so
   the code under test sees a real file system. It knows nothing of who
   calls it: any code that writes files through these calls is covered, and
   :meth:`Recorder.check_complete` fails if something wrote behind its back.
   :meth:`Recorder.mark` puts the caller's own milestones (an operation
   returned) into the same log.

2. **Crash.** :func:`crash_states` yields, for each point of the log, every
   state POSIX lets a crash leave there (with the fault model of ALICE's
   "abstract persistence model"):

   - namespace operations since the last directory fsync may each be lost,
     in any combination (kept ones still apply in order);
   - data operations on a file since its last fsync may be lost from any
     point on, and the first lost write may instead be *torn*: only its first
     half arrived, or its length arrived and its bytes are zeros.

   Data fsynced on a file survives even if the file's name does not.

3. **Check.** The caller rebuilds each state in a fresh directory
   (:meth:`CrashState.materialize`), reopens its store there and checks it.
"""

from __future__ import annotations

import builtins
import io
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

#: More pending namespace operations than this are tried as prefixes only (2**n grows fast).
MAX_SUBSET_OPERATIONS = 6


class HarnessError(AssertionError):
    """The recording cannot be trusted (an operation it does not model, or one it missed)."""


@attrs.frozen
class Op:
    """One recorded operation. ``kind`` is one of:

    ``create`` (name, inode), ``rename`` (name -> target), ``unlink`` (name),
    ``dirsync``; ``write`` (inode, offset, data), ``truncate`` (inode, size),
    ``fsync`` (inode); ``mark`` (label, payload).
    """

    kind: str
    name: str = ""
    target: str = ""
    inode: int = 0
    offset: int = 0
    data: bytes = b""
    label: str = ""
    payload: Any = None

    @property
    def is_namespace(self) -> bool:
        return self.kind in ("create", "rename", "unlink")

    @property
    def is_data(self) -> bool:
        return self.kind in ("write", "truncate")


class _RecordingFile:
    """A file object opened for writing under the recorded directory."""

    def __init__(self, recorder: Recorder, inner, inode: int) -> None:
        self._recorder = recorder
        self._inner = inner
        self._inode = inode

    def write(self, data) -> int:
        position = self._inner.tell()
        written = self._inner.write(data)
        self._recorder._log(Op("write", inode=self._inode, offset=position, data=bytes(data)))
        return written

    def truncate(self, size: int | None = None) -> int:
        size = self._inner.tell() if size is None else size
        result = self._inner.truncate(size)
        self._recorder._log(Op("truncate", inode=self._inode, offset=size))
        return result

    def fileno(self) -> int:
        descriptor = self._inner.fileno()
        self._recorder._descriptors[descriptor] = self._inode
        return descriptor

    def close(self) -> None:
        if not self._inner.closed:
            self._recorder._descriptors.pop(self._inner.fileno(), None)
        self._inner.close()

    def __enter__(self) -> _RecordingFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class Recorder:
    """Records file operations in ``directory``; see the module docstring. Use :meth:`install`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(os.path.abspath(directory))
        self.ops: list[Op] = []
        self.names: dict[str, int] = {}  # the file system as the code sees it now
        self.contents: dict[int, bytearray] = {}
        self._descriptors: dict[int, int | None] = {}  # fd -> inode, None for the directory itself
        self._next_inode = itertools.count(1)
        for entry in sorted(os.listdir(self.directory)):  # what was there before counts as durable
            inode = next(self._next_inode)
            self.names[entry] = inode
            self.contents[inode] = bytearray((self.directory / entry).read_bytes())
        self.initial_names = dict(self.names)
        self.initial_contents = {inode: bytes(data) for inode, data in self.contents.items()}

    # -- what the test calls ---------------------------------------------------------

    def install(self, monkeypatch) -> Recorder:
        real = {name: getattr(os, name) for name in (
            "open", "write", "pwrite", "ftruncate", "fsync", "fdatasync", "replace", "rename", "remove", "unlink",
            "close", "mkdir", "rmdir", "truncate")}
        real_open = builtins.open

        def fake_open(file, mode="r", *args, **kwargs):
            name = self._name(file)
            inner = real_open(file, mode, *args, **kwargs)
            if name is None or not any(flag in mode for flag in "wax+"):
                return inner
            inode = self._opened(name, truncate="w" in mode)
            return _RecordingFile(self, inner, inode)

        def fake_os_open(path, flags, mode=0o777, *args, **kwargs):
            descriptor = real["open"](path, flags, mode, *args, **kwargs)
            if os.path.abspath(path) == str(self.directory):
                self._descriptors[descriptor] = None
                return descriptor
            name = self._name(path)
            if name is not None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                self._descriptors[descriptor] = self._opened(name, truncate=bool(flags & os.O_TRUNC))
            return descriptor

        def fake_write(descriptor, data):
            inode = self._descriptors.get(descriptor, -1)
            if inode is None or inode == -1:
                return real["write"](descriptor, data)
            position = os.lseek(descriptor, 0, os.SEEK_CUR)
            written = real["write"](descriptor, data)
            self._log(Op("write", inode=inode, offset=position, data=bytes(data[:written])))
            return written

        def fake_pwrite(descriptor, data, position):
            written = real["pwrite"](descriptor, data, position)
            inode = self._descriptors.get(descriptor, -1)
            if inode not in (None, -1):
                self._log(Op("write", inode=inode, offset=position, data=bytes(data[:written])))
            return written

        def fake_ftruncate(descriptor, size):
            real["ftruncate"](descriptor, size)
            inode = self._descriptors.get(descriptor, -1)
            if inode not in (None, -1):
                self._log(Op("truncate", inode=inode, offset=size))

        def fake_fsync(descriptor, sync=real["fsync"]):
            sync(descriptor)
            if descriptor in self._descriptors:
                inode = self._descriptors[descriptor]
                self._log(Op("dirsync") if inode is None else Op("fsync", inode=inode))

        def fake_rename(source, target, *args, rename=real["replace"], **kwargs):
            source_name, target_name = self._name(source), self._name(target)
            rename(source, target, *args, **kwargs)
            if source_name is None and target_name is None:
                return
            if source_name is None or target_name is None:
                raise HarnessError(f"rename across the recorded directory: {source} -> {target}")
            self._log(Op("rename", name=source_name, target=target_name))

        def fake_unlink(path, *args, unlink=real["unlink"], **kwargs):
            unlink(path, *args, **kwargs)
            name = self._name(path)
            if name is not None:
                self._log(Op("unlink", name=name))

        def fake_close(descriptor):
            self._descriptors.pop(descriptor, None)
            real["close"](descriptor)

        def unsupported(call):
            def refuse(path, *args, **kwargs):
                if self._name(path) is not None:
                    raise HarnessError(f"os.{call.__name__} on {path}: the harness models one flat directory")
                return call(path, *args, **kwargs)

            return refuse

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
        monkeypatch.setattr(os, "write", fake_write)
        monkeypatch.setattr(os, "pwrite", fake_pwrite)
        monkeypatch.setattr(os, "ftruncate", fake_ftruncate)
        monkeypatch.setattr(os, "fsync", fake_fsync)
        monkeypatch.setattr(os, "fdatasync", lambda fd: fake_fsync(fd, sync=real["fdatasync"]))
        monkeypatch.setattr(os, "replace", fake_rename)
        monkeypatch.setattr(os, "rename", lambda s, t, *a, **k: fake_rename(s, t, *a, rename=real["rename"], **k))
        monkeypatch.setattr(os, "remove", fake_unlink)
        monkeypatch.setattr(os, "unlink", fake_unlink)
        monkeypatch.setattr(os, "close", fake_close)
        for call in ("mkdir", "rmdir", "truncate"):
            monkeypatch.setattr(os, call, unsupported(real[call]))
        return self

    def mark(self, label: str, payload: Any = None) -> None:
        """Note a milestone of the caller (an operation returned) at this point of the log."""
        self.ops.append(Op("mark", label=label, payload=payload))

    def check_complete(self) -> None:
        """Fail if the directory holds anything the log does not explain."""
        real = {name: (self.directory / name).read_bytes() for name in sorted(os.listdir(self.directory))}
        modelled = {name: bytes(self.contents[inode]) for name, inode in sorted(self.names.items())}
        if real != modelled:
            raise HarnessError(
                f"a file operation was not recorded: the directory holds {sorted(real)}, "
                f"the log explains {sorted(modelled)}"
                + ("" if sorted(real) != sorted(modelled) else " (contents differ)")
            )

    # -- recording -------------------------------------------------------------------

    def _name(self, path) -> str | None:
        if isinstance(path, int):
            return None
        absolute = Path(os.path.abspath(os.fspath(path)))
        if absolute.parent == self.directory:
            return absolute.name
        if self.directory in absolute.parents:
            raise HarnessError(f"{absolute}: the harness models one flat directory")
        return None

    def _opened(self, name: str, *, truncate: bool) -> int:
        inode = self.names.get(name)
        if inode is None:
            inode = next(self._next_inode)
            self._log(Op("create", name=name, inode=inode))
        elif truncate:
            self._log(Op("truncate", inode=inode, offset=0))
        return inode

    def _log(self, op: Op) -> None:
        self.ops.append(op)
        _apply_namespace(self.names, op)
        if op.kind == "create":
            self.contents[op.inode] = bytearray()
        elif op.is_data:
            _apply_data(self.contents[op.inode], op)


def _apply_namespace(names: dict[str, int], op: Op) -> bool:
    """Apply a namespace operation; False if it cannot apply (its source was lost)."""
    if op.kind == "create":
        names[op.name] = op.inode
    elif op.kind == "rename":
        if op.name not in names:
            return False
        names[op.target] = names.pop(op.name)
    elif op.kind == "unlink":
        if op.name not in names:
            return False
        del names[op.name]
    return True


def _apply_data(content: bytearray, op: Op) -> None:
    if op.kind == "truncate":  # to a smaller size, or a larger one (zeros, as a sparse file reads)
        del content[op.offset:]
        content.extend(bytes(op.offset - len(content)))
        return
    if len(content) < op.offset:
        content.extend(bytes(op.offset - len(content)))
    content[op.offset:op.offset + len(op.data)] = op.data


@attrs.frozen
class CrashState:
    """One state a crash may leave: file names and their contents, and the log before it."""

    point: int  # how many operations had happened
    files: tuple[tuple[str, bytes], ...]
    description: str
    marks: tuple[Op, ...]

    def materialize(self, directory: Path) -> Path:
        directory.mkdir(parents=True)
        for name, content in self.files:
            (directory / name).write_bytes(content)
        return directory


def _data_variants(pending: list[Op]) -> Iterator[tuple[list[Op], str]]:
    """What may survive of one file's unsynced data operations: every prefix, torn tails."""
    for kept in range(len(pending) + 1):
        yield pending[:kept], f"{kept}/{len(pending)} unsynced data ops kept"
        if kept < len(pending) and pending[kept].kind == "write" and len(pending[kept].data) > 1:
            op = pending[kept]
            half = attrs.evolve(op, data=op.data[: len(op.data) // 2])
            yield pending[:kept] + [half], f"{kept}/{len(pending)} kept, the next write torn in half"
            zeros = attrs.evolve(op, data=bytes(len(op.data)))
            yield pending[:kept] + [zeros], f"{kept}/{len(pending)} kept, the next write torn: its length arrived as zeros"


def _namespace_variants(pending: list[Op]) -> Iterator[tuple[list[Op], str]]:
    if len(pending) > MAX_SUBSET_OPERATIONS:
        choices = [pending[:kept] for kept in range(len(pending) + 1)]
    else:
        choices = [[op for op, keep in zip(pending, keeps) if keep]
                   for keeps in itertools.product((True, False), repeat=len(pending))]
    for kept in choices:
        lost = [f"{op.kind} {op.name}{' -> ' + op.target if op.target else ''}" for op in pending if op not in kept]
        yield kept, ("lost: " + ", ".join(lost)) if lost else "all names durable"


def states_at(recorder: Recorder, point: int) -> Iterator[CrashState]:
    """Every state a crash after ``recorder.ops[:point]`` may leave (duplicates included)."""
    ops = recorder.ops[:point]
    last_dirsync = max((i for i, op in enumerate(ops) if op.kind == "dirsync"), default=-1)
    durable_names = [op for op in ops[: last_dirsync + 1] if op.is_namespace]
    pending_names = [op for op in ops[last_dirsync + 1:] if op.is_namespace]
    inodes = sorted({op.inode for op in ops if op.is_data} | set(recorder.initial_contents))
    durable_data: dict[int, list[Op]] = {}
    pending_data: dict[int, list[Op]] = {}
    for inode in inodes:
        data_ops = [(i, op) for i, op in enumerate(ops) if op.inode == inode and (op.is_data or op.kind == "fsync")]
        synced = max((i for i, op in data_ops if op.kind == "fsync"), default=-1)
        durable_data[inode] = [op for i, op in data_ops if op.is_data and i < synced]
        pending_data[inode] = [op for i, op in data_ops if op.is_data and i > synced]
    marks = tuple(op for op in ops if op.kind == "mark")
    per_inode = [[(inode, kept, why) for kept, why in _data_variants(pending_data[inode])]
                 for inode in inodes if pending_data[inode]]
    for names_kept, names_why in _namespace_variants(pending_names):
        names = dict(recorder.initial_names)
        for op in durable_names + names_kept:
            _apply_namespace(names, op)
        for combination in itertools.product(*per_inode):
            contents = {inode: bytearray(recorder.initial_contents.get(inode, b"")) for inode in inodes}
            for inode in inodes:
                for op in durable_data[inode]:
                    _apply_data(contents[inode], op)
            whys = []
            for inode, kept, why in combination:
                for op in kept:
                    _apply_data(contents[inode], op)
                if pending_data[inode] and (len(kept) < len(pending_data[inode]) or "torn" in why):
                    whys.append(f"inode {inode}: {why}")
            files = tuple(sorted((name, bytes(contents.get(inode, b""))) for name, inode in names.items()))
            description = f"crash after op {point}: {names_why}" + ("; " + "; ".join(whys) if whys else "")
            yield CrashState(point=point, files=files, description=description, marks=marks)


def crash_states(recorder: Recorder) -> Iterator[CrashState]:
    """Every distinct crash state at every point of the log (the first description of each)."""
    seen: set[tuple[int, tuple]] = set()
    for point in range(len(recorder.ops) + 1):
        marks_before = sum(1 for op in recorder.ops[:point] if op.kind == "mark")
        for state in states_at(recorder, point):
            key = (marks_before, state.files)
            if key not in seen:
                seen.add(key)
                yield state
