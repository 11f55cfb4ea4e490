"""The file layer under :class:`~simulator.snapshots.DiskSnapshotStore`: one seam for all its I/O.

Every open, read, write, fsync, rename, removal and listing the disk store
and its recovery make goes through a :class:`Files` object. The default is
the operating system itself; :class:`FaultyDisk` is the same layer with the
faults of a real disk on demand, in the style of TigerBeetle's storage
simulator, so that fault programs can make them happen deterministically
(:mod:`simulator.explore.disk_faults` draws them as program steps):

- ``full``: every write fails with ``ENOSPC`` until cleared;
- ``fail(op)``: the next ``read``, ``write`` or ``fsync`` fails with ``EIO``;
- ``flip_bit_on_read()``: the next read of snapshot data (a ``.bin`` or
  ``.partial`` file) returns its bytes with one bit flipped; the disk itself
  is intact, so reading again gives the right bytes;
- ``misdirect_write()``: the next write of snapshot data lands one write's
  length away from where it was aimed (before it, or after it at offset 0),
  as a misdirected write in the drive does; the place it was aimed at keeps
  what it held;
- ``lose_fsyncs(torn=...)``: from now on fsync reports success but nothing
  reaches the platter; at the node's next crash the directory is as it was
  when the fault was armed (the last *real* durable point), and with
  ``torn=True`` the last write since then lands half-way on top of that.

None of this decides anything by itself: which fault, when, and on which
node come from the fault program, so a run replays byte for byte.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO

#: What :meth:`FaultyDisk.fail` can make fail.
DISK_OPS = ("read", "write", "fsync")
#: The names of files holding snapshot data (what a flipped bit or a misdirected write hits).
_DATA_SUFFIXES = (".bin", ".partial", ".bin.tmp")


class Files:
    """The operating system's files: each method is the call it names, nothing else."""

    def open(self, path: Path, mode: str) -> BinaryIO:
        return open(path, mode)  # noqa: SIM115 - the caller closes it

    def open_descriptor(self, path: Path, flags: int) -> int:
        return os.open(path, flags)

    def close_descriptor(self, descriptor: int) -> None:
        os.close(descriptor)

    def pwrite(self, descriptor: int, data: Any, position: int) -> int:
        return os.pwrite(descriptor, data, position)

    def pread(self, descriptor: int, length: int, position: int) -> bytes:
        return os.pread(descriptor, length, position)

    def fsync(self, descriptor: int) -> None:
        os.fsync(descriptor)

    def replace(self, source: Path, target: Path) -> None:
        os.replace(source, target)

    def remove(self, path: Path) -> None:
        os.remove(path)

    def listdir(self, directory: Path) -> list[str]:
        return os.listdir(directory)

    def size(self, path: Path) -> int:
        return os.stat(path).st_size

    def crashed(self, directory: Path) -> None:
        """The node's machine went down: what its disk keeps. A real disk keeps what was fsynced."""


#: The layer every store uses unless given another.
OS_FILES = Files()


def _is_data(path: Path | str) -> bool:
    return str(path).endswith(_DATA_SUFFIXES)


def _flip(data: bytes) -> bytes:
    """``data`` with the lowest bit of its middle byte flipped (a single-bit error)."""
    if not data:
        return data
    raw = bytearray(data)
    raw[len(raw) // 2] ^= 0x01
    return bytes(raw)


class FaultyDisk(Files):
    """:class:`Files` with a real disk's faults on demand (see the module docstring).

    ``injected`` counts each fault that actually hit a call, so a test can tell
    a fault that fired from one that was armed and never reached.
    """

    def __init__(self, name: str = "disk") -> None:
        self.name = name
        self.full = False
        self._failing: Counter = Counter()
        self._flips = 0
        self._misdirects = 0
        self._image: dict[str, bytes] | None = None  # the directory at the last real durable point
        self._torn = False
        self._last_write: tuple[Path, int, bytes] | None = None
        self.injected: Counter = Counter()
        self._descriptors: dict[int, Path] = {}

    def __repr__(self) -> str:
        return f"<FaultyDisk {self.name!r}>"

    # -- arming -----------------------------------------------------------------------

    def fill(self) -> None:
        """Writes fail with ``ENOSPC`` until :meth:`make_room`."""
        self.full = True

    def make_room(self) -> None:
        self.full = False

    def fail(self, op: str, count: int = 1) -> None:
        """The next ``count`` calls of ``op`` (one of :data:`DISK_OPS`) fail with ``EIO``."""
        if op not in DISK_OPS:
            raise ValueError(f"op must be one of {', '.join(DISK_OPS)}, got {op!r}")
        self._failing[op] += count

    def flip_bit_on_read(self, count: int = 1) -> None:
        self._flips += count

    def misdirect_write(self, count: int = 1) -> None:
        self._misdirects += count

    def lose_fsyncs(self, directory: Path, *, torn: bool = False) -> None:
        """From now until the next crash, fsync lies; see the module docstring."""
        if self._image is None:
            self._image = _image_of(Path(directory))
        self._torn = self._torn or torn

    @property
    def lying(self) -> bool:
        """Whether fsyncs are being acknowledged without reaching the disk."""
        return self._image is not None

    def heal(self) -> None:
        """Every armed fault is cleared (a lying disk stays lying until its crash: what it
        acknowledged is already lost)."""
        self.full = False
        self._failing.clear()
        self._flips = self._misdirects = 0

    # -- what a call meets ---------------------------------------------------------------

    def _check(self, op: str, path: Path | str) -> None:
        # The file's name, not its path: the directory differs from run to run and
        # the message lands in the trace, whose hash must not.
        name = Path(path).name
        if op == "write" and self.full:
            self.injected["enospc"] += 1
            raise OSError(errno.ENOSPC, f"No space left on device (injected into {self.name})", name)
        if self._failing[op]:
            self._failing[op] -= 1
            self.injected[f"eio_{op}"] += 1
            raise OSError(errno.EIO, f"Input/output error on {op} (injected into {self.name})", name)

    def _read(self, path: Path | str, data: bytes) -> bytes:
        if self._flips and data and _is_data(path):
            self._flips -= 1
            self.injected["flipped_bit"] += 1
            return _flip(data)
        return data

    def _aim(self, path: Path | str, position: int, length: int) -> int:
        """Where a write aimed at ``position`` lands."""
        if self._misdirects and length and _is_data(path):
            self._misdirects -= 1
            self.injected["misdirected_write"] += 1
            return position - length if position >= length else position + length
        return position

    def _wrote(self, path: Path | str, position: int, data: Any) -> None:
        # Only a write into a file that was durable can tear what was there; a write
        # into a file the crash removes anyway leaves nothing to tear.
        if self._image is not None and Path(path).name in self._image:
            self._last_write = (Path(path), position, bytes(data))

    # -- Files ---------------------------------------------------------------------------

    def open(self, path: Path, mode: str) -> BinaryIO:
        return _FaultyFile(self, Path(path), super().open(path, mode))  # type: ignore[return-value]

    def open_descriptor(self, path: Path, flags: int) -> int:
        descriptor = super().open_descriptor(path, flags)
        self._descriptors[descriptor] = Path(path)
        return descriptor

    def close_descriptor(self, descriptor: int) -> None:
        self._descriptors.pop(descriptor, None)
        super().close_descriptor(descriptor)

    def pwrite(self, descriptor: int, data: Any, position: int) -> int:
        path = self._descriptors.get(descriptor, "")
        self._check("write", path)
        position = self._aim(path, position, len(data))
        written = super().pwrite(descriptor, data, position)
        self._wrote(path, position, memoryview(data)[:written])
        return written

    def pread(self, descriptor: int, length: int, position: int) -> bytes:
        path = self._descriptors.get(descriptor, "")
        self._check("read", path)
        return self._read(path, super().pread(descriptor, length, position))

    def fsync(self, descriptor: int) -> None:
        self._check("fsync", self._descriptors.get(descriptor, ""))
        if self._image is not None:
            self.injected["lost_fsync"] += 1
            return  # acknowledged; the page cache keeps it until the crash, then it is gone
        super().fsync(descriptor)

    def crashed(self, directory: Path) -> None:
        """Everything since the last real durable point is gone (and, torn, the last write half there).

        One-shot faults (an EIO, a flip, a misdirection) were aimed at the running node's
        next operations and go with it; a full disk stays full.
        """
        self._failing.clear()
        self._flips = self._misdirects = 0
        if self._image is None:
            return
        image, last, torn = self._image, self._last_write, self._torn
        self._image, self._last_write, self._torn = None, None, False
        directory = Path(directory)
        for name in os.listdir(directory):
            if name not in image:
                os.remove(directory / name)
        for name, data in image.items():
            (directory / name).write_bytes(data)
        if torn and last is not None and last[0].parent == directory and last[0].name in image:
            path, position, data = last
            half = data[: max(1, len(data) // 2)]
            with open(path, "r+b") as file:
                file.seek(position)
                file.write(half)
            self.injected["torn_write"] += 1


def _image_of(directory: Path) -> dict[str, bytes]:
    """The regular files of ``directory`` and their bytes."""
    return {entry.name: Path(entry.path).read_bytes() for entry in os.scandir(directory) if entry.is_file()}


class _FaultyFile:
    """A file object whose reads, writes, flushes and truncations meet its disk's faults."""

    def __init__(self, disk: FaultyDisk, path: Path, file: BinaryIO) -> None:
        self._disk, self._path, self._file = disk, path, file

    def __enter__(self) -> _FaultyFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()

    def read(self, size: int = -1) -> bytes:
        self._disk._check("read", self._path)
        return self._disk._read(self._path, self._file.read(size))

    def write(self, data: Any) -> int:
        disk = self._disk
        disk._check("write", self._path)
        position = self._file.tell()
        aimed = disk._aim(self._path, position, len(data))
        if aimed != position:
            self._file.seek(aimed)
        written = self._file.write(data)
        disk._wrote(self._path, aimed, data)
        if aimed != position:
            self._file.seek(position + len(data))  # the caller's file position moves on as if all went well
        return written

    def truncate(self, size: int | None = None) -> int:
        self._disk._check("write", self._path)
        return self._file.truncate(size)

    def seek(self, position: int, whence: int = 0) -> int:
        return self._file.seek(position, whence)

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        self._file.flush()

    def fileno(self) -> int:
        descriptor = self._file.fileno()
        self._disk._descriptors[descriptor] = self._path
        return descriptor

    def close(self) -> None:
        self._file.close()
