"""File names and durable file operations of the disk snapshot store.

One snapshot directory holds, per index ``N`` (zero-padded to 16 digits)::

    snapshot-N.bin            complete snapshot data
    snapshot-N.meta.json      its metadata; written last, so it marks the snapshot complete
    snapshot-N.partial        data of a transfer being received
    snapshot-N.partial.json   that transfer's progress record (offset, identity)
    snapshot-N.*.tmp          a file being written; renamed into place when durable

Every file becomes visible under its final name only through ``os.replace``
of a temporary file that was flushed and fsynced, followed by an fsync of
the directory, so a crash leaves either the old file or the new one.
With ``durable=False`` the fsyncs are skipped and everything else (write
order, renames) stays the same: right for simulations and tests where the
host never loses power, since simulated crashes stop between steps anyway.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from .disk_io import OS_FILES, Files

BIN, META, PARTIAL, PROGRESS = ".bin", ".meta.json", ".partial", ".partial.json"
TMP = ".tmp"
_NAME = re.compile(r"snapshot-(\d{16,})(\.bin|\.meta\.json|\.partial|\.partial\.json)")
_TMP_NAME = re.compile(r"snapshot-.+\.tmp")

#: Metadata and progress records are a few hundred bytes; a larger file is not one of ours.
MAX_RECORD_BYTES = 64 * 1024

_IRREGULAR_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)

#: Called with a step name after each durable step; may raise to simulate a crash there.
FaultInjector = Callable[[str], None]


def file_name(index: int, kind: str) -> str:
    return f"snapshot-{index:016}{kind}"


def parse_name(name: str) -> tuple[int, str] | None:
    """``(index, kind)`` for a store file name, ``None`` for anything else."""
    match = _NAME.fullmatch(name)
    if match is None or file_name(int(match.group(1)), match.group(2)) != name:
        return None  # not ours, or not in canonical form (e.g. 17 digits with a leading zero)
    return int(match.group(1)), match.group(2)


def is_temporary(name: str) -> bool:
    return _TMP_NAME.fullmatch(name) is not None


def irregular_kind(path: Path) -> str | None:
    """What stands at ``path`` if it is not a regular file ("a directory", ...), else ``None``.

    Looks at the entry itself (``lstat``): a symbolic link is reported, never
    followed, and a FIFO is never opened, so recovery cannot hang on one.
    """
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        return None
    return next((name for is_kind, name in _IRREGULAR_KINDS if is_kind(mode)), "not a regular file")


def read_record(path: Path, files: Files = OS_FILES) -> bytes:
    """The bytes of a small record file; ``ValueError`` if it exceeds :data:`MAX_RECORD_BYTES`."""
    with files.open(path, "rb") as file:
        raw = file.read(MAX_RECORD_BYTES + 1)
    if len(raw) > MAX_RECORD_BYTES:
        raise ValueError(f"{path.name} is over {MAX_RECORD_BYTES} bytes; a small JSON record expected")
    return raw


@contextlib.contextmanager
def removed_on_failure(path: Path, files: Files = OS_FILES) -> Iterator[None]:
    """If the block raises, remove ``path`` (a temporary file) and re-raise.

    Wraps only real I/O, never a fault-injector step: a simulated crash must
    leave its files behind, as a real one would, for recovery to find.
    """
    try:
        yield
    except BaseException:
        try:
            remove_if_present(path, files)
        except OSError:
            pass  # the original error says more; reopening removes temporary files anyway
        raise


def fsync_file(file: BinaryIO, *, durable: bool, files: Files = OS_FILES) -> None:
    """Flush ``file`` to the OS and, if ``durable``, to the disk."""
    file.flush()
    if durable:
        files.fsync(file.fileno())


def fsync_directory(directory: Path, *, durable: bool, files: Files = OS_FILES) -> None:
    """Make renames and removals in ``directory`` durable (nothing to do unless ``durable``)."""
    if not durable:
        return
    descriptor = files.open_descriptor(directory, os.O_RDONLY)
    try:
        files.fsync(descriptor)
    finally:
        files.close_descriptor(descriptor)


def write_atomically(
    path: Path, data: bytes, step: FaultInjector, *, written: str, renamed: str, durable: bool,
    files: Files = OS_FILES,
) -> None:
    """Replace ``path`` with ``data``: temporary file, fsync, rename, directory fsync.

    ``step(written)`` runs once the temporary file is durable, ``step(renamed)``
    once the new content is visible under ``path``.
    """
    temporary = path.with_name(path.name + TMP)
    with removed_on_failure(temporary, files), files.open(temporary, "wb") as file:
        file.write(data)
        fsync_file(file, durable=durable, files=files)
    step(written)
    with removed_on_failure(temporary, files):
        files.replace(temporary, path)
    fsync_directory(path.parent, durable=durable, files=files)
    step(renamed)


def remove_if_present(path: Path, files: Files = OS_FILES) -> bool:
    """Remove ``path``; return whether it existed. The caller fsyncs the directory."""
    try:
        files.remove(path)
    except FileNotFoundError:
        return False
    return True


def no_faults(step: str) -> None:
    """The default fault injector: every step succeeds."""
