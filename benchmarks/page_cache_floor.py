"""What a GiB costs this machine before raftsim does anything: fresh pages against recycled ones.

Issue 20 asks that a 1 GiB join cost at most 2x "a raw 1 GiB write+fsync in
the same run". On the virtual machines this project is measured on, that raw
write is not one number: a buffered write has to grow the page cache, and a
guest page the host has taken back (``virtio_balloon`` free page reporting
returns free guest memory to the host a couple of seconds after it is freed)
costs a host fault the first time it is touched. The same write into pages
freed a moment ago costs none of that. This script measures both, and what
the alternatives cost, in one run:

- ``anon_fresh`` / ``anon_recycled``: touching ``--size`` of new anonymous
  memory (one byte per page) after a quiet pause, then again at once after
  freeing it: the fault tax alone, with no file system in the way;
- ``write_fresh``: a buffered write+fsync of distinct data to a new file
  after a quiet pause (what a join's receiver meets);
- ``write_recycled``: the same, right after deleting the previous file, so
  the page cache grows into the pages it just gave back;
- ``write_direct``: the same bytes with ``O_DIRECT`` (no page cache at all),
  and ``read_direct``: reading them back the same way, into one buffer;
- ``write_drop_behind``: fsync + ``POSIX_FADV_DONTNEED`` every 64 chunks, so
  the writes recycle their own pages; then ``first_read`` and
  ``second_read`` of that file (each page dropped once read): what a
  read-back or a restore would pay once the written pages are gone.

``--settle`` seconds of quiet come before each "fresh" figure (0 in the smoke
test). Ratios are to ``write_recycled``, the disk's own speed with no fault
tax. Run: ``python benchmarks/page_cache_floor.py [--size 1GiB] [--chunk 1MiB]
[--settle 5] [--dir DIR] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchlib import GIB, MIB, parse_size, print_table, ratio, size_label, write_json

PAGE = mmap.PAGESIZE
DROP_EVERY = 64  # chunks per fsync + drop in the drop-behind write


def touch_anonymous(size: int) -> float:
    """Seconds to touch every page of ``size`` bytes of new anonymous memory (then freed)."""
    memory = mmap.mmap(-1, size)
    try:
        started = time.perf_counter()
        for position in range(0, size, PAGE):
            memory[position] = 1
        return time.perf_counter() - started
    finally:
        memory.close()


def _chunk_buffer(chunk: int) -> mmap.mmap:
    """A page-aligned buffer of random bytes (``O_DIRECT`` needs aligned memory; ``mmap`` gives it)."""
    buffer = mmap.mmap(-1, chunk)
    buffer.write(os.urandom(chunk))
    return buffer


def write_file(path: Path, size: int, chunk: int, *, flags: int = 0, drop_behind: bool = False) -> float:
    """Seconds to write ``size`` distinct bytes in ``chunk`` pwrites and fsync (the file is kept)."""
    buffer = _chunk_buffer(chunk)
    started = time.perf_counter()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | flags)
    try:
        dropped = 0
        for number, position in enumerate(range(0, size, chunk)):
            buffer[:8] = number.to_bytes(8, "big")  # every chunk distinct, as a snapshot's are
            os.pwrite(descriptor, buffer if position + chunk <= size else buffer[: size - position], position)
            if drop_behind and (number + 1) % DROP_EVERY == 0:
                os.fsync(descriptor)
                end = min(size, position + chunk)
                os.posix_fadvise(descriptor, dropped, end - dropped, os.POSIX_FADV_DONTNEED)
                dropped = end
        os.fsync(descriptor)
        if drop_behind:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)
    return time.perf_counter() - started


def read_direct(path: Path, chunk: int) -> float:
    """Seconds to read ``path`` with ``O_DIRECT`` into one page-aligned buffer (no page cache)."""
    buffer = _chunk_buffer(chunk)
    started = time.perf_counter()
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        position = 0
        while count := os.preadv(descriptor, [buffer], position):
            position += count
    finally:
        os.close(descriptor)
    return time.perf_counter() - started


def read_dropping(path: Path, chunk: int) -> float:
    """Seconds to read ``path`` chunk by chunk, dropping each chunk's pages once read."""
    started = time.perf_counter()
    descriptor = os.open(path, os.O_RDONLY)
    try:
        position = 0
        while data := os.pread(descriptor, chunk, position):
            os.posix_fadvise(descriptor, position, len(data), os.POSIX_FADV_DONTNEED)
            position += len(data)
    finally:
        os.close(descriptor)
    return time.perf_counter() - started


def measure(size: int, chunk: int, settle: float, folder: Path) -> dict:
    figures: dict = {}
    notes: dict = {}
    time.sleep(settle)
    figures["anon_fresh"] = touch_anonymous(size)
    figures["anon_recycled"] = touch_anonymous(size)
    time.sleep(settle)
    figures["write_fresh"] = write_file(folder / "fresh.bin", size, chunk)
    os.remove(folder / "fresh.bin")  # its pages go back to the allocator, and the next write takes them
    figures["write_recycled"] = write_file(folder / "recycled.bin", size, chunk)
    time.sleep(settle)
    try:
        figures["write_direct"] = write_file(folder / "direct.bin", size, chunk, flags=os.O_DIRECT)
        figures["read_direct"] = read_direct(folder / "direct.bin", chunk)
    except (OSError, AttributeError) as error:  # tmpfs and some file systems refuse O_DIRECT
        figures["write_direct"] = figures["read_direct"] = None
        notes["write_direct"] = f"O_DIRECT refused here: {error}"
    time.sleep(settle)
    figures["write_drop_behind"] = write_file(folder / "dropped.bin", size, chunk, drop_behind=True)
    figures["first_read"] = read_dropping(folder / "dropped.bin", chunk)
    figures["second_read"] = read_dropping(folder / "dropped.bin", chunk)
    baseline = figures["write_recycled"]
    return {
        "size": size, "chunk_size": chunk, "settle_seconds": settle, "seconds": figures, "notes": notes,
        "ratio_to_write_recycled": {name: ratio(value, baseline) if value is not None else None
                                    for name, value in figures.items()},
        "load_average_after": os.getloadavg(),
    }


LABELS = {
    "anon_fresh": "touch new memory, after a pause",
    "anon_recycled": "touch new memory, just freed",
    "write_fresh": "write+fsync, after a pause (fresh pages)",
    "write_recycled": "write+fsync, just freed (baseline)",
    "write_direct": "write+fsync, O_DIRECT",
    "read_direct": "  then read it, O_DIRECT",
    "write_drop_behind": "write+fsync+drop every 64 chunks",
    "first_read": "  then its first read (dropping)",
    "second_read": "  then its second read (dropping)",
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=GIB)
    parser.add_argument("--chunk", type=parse_size, default=MIB)
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds of quiet before each 'fresh' figure (free page reporting waits about 2 s)")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (default: a temp dir)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.chunk % PAGE or args.chunk <= 0:
        parser.error(f"--chunk must be a positive multiple of the page size {PAGE} (O_DIRECT), got {args.chunk}")
    folder = Path(tempfile.mkdtemp(prefix="raftsim-page-floor-", dir=args.dir))
    load_before = os.getloadavg()
    try:
        result = measure(args.size, args.chunk, args.settle, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result["load_average_before"] = load_before
    seconds, ratios = result["seconds"], result["ratio_to_write_recycled"]
    print_table(
        f"{size_label(args.size)} through the page cache, chunk {size_label(args.chunk)}",
        ["what", "wall s", "÷ write+fsync into just-freed pages"],
        [[LABELS[name], "n/a" if value is None else f"{value:.2f}",
          "" if ratios[name] is None else f"{ratios[name]:.2f}"] for name, value in seconds.items()],
        f"Load average before {load_before[0]:.1f}, after {result['load_average_after'][0]:.1f}. "
        + " ".join(result["notes"].values()),
    )
    write_json(args.json, "page_cache_floor", ["benchmarks/page_cache_floor.py", *argv], result)


if __name__ == "__main__":
    main()
