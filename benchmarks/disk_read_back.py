"""What the disk store's read-back costs: saving and receiving a snapshot, with and without it.

Before publishing a snapshot, ``DiskSnapshotStore`` reads the bytes it wrote
back and checks them against the digest (``_check_written``), so a
misdirected or lost write is refused instead of published (issue 22). This
measures that price: wall and CPU seconds to save a snapshot
(``save_snapshot``) and to receive one (``open_writer``, chunk writes,
``commit``), each with the read-back (as shipped) and without it (the
baseline: the same store with ``_check_written`` switched off), in rounds
that interleave the two on the same data, durable (fsync on). The figure is
the median over rounds and its ratio to the baseline.

Run: ``python benchmarks/disk_read_back.py [--size 128MiB] [--chunk-size 1MiB] [--rounds 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchlib import MIB, Stopwatch, parse_size, print_table, ratio, size_label, write_json

from simulator.snapshots import DiskSnapshotStore


def _store(directory: Path, chunk_size: int, read_back: bool) -> DiskSnapshotStore:
    store = DiskSnapshotStore(directory, chunk_size=chunk_size)
    if not read_back:
        store._check_written = lambda *args, **kwargs: None  # the baseline: no read-back
    return store


def _save(directory: Path, data: bytes, chunk_size: int, read_back: bool) -> Stopwatch:
    store = _store(directory, chunk_size, read_back)
    chunks = (data[start:start + chunk_size] for start in range(0, len(data), chunk_size))
    with Stopwatch() as watch:
        store.save_snapshot(1, chunks, term=1)
    return watch


def _receive(directory: Path, data: bytes, digest: str, chunk_size: int, read_back: bool) -> Stopwatch:
    store = _store(directory, chunk_size, read_back)
    with Stopwatch() as watch:
        writer = store.open_writer(1, term=1, size=len(data), digest=digest, snapshot_id="bench")
        for start in range(0, len(data), chunk_size):
            writer.write(start, data[start:start + chunk_size])
        writer.commit()
    return watch


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=128 * MIB)
    parser.add_argument("--chunk-size", type=parse_size, default=MIB)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    data = os.urandom(args.size)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    # sync_every=1 (the default): one fsync per received chunk, as in a cluster.
    figures: dict[str, list[Stopwatch]] = {}
    for _ in range(args.rounds):
        for read_back in (False, True):  # interleaved: a burst of load lands on both alike
            for operation in ("save", "receive"):
                directory = Path(tempfile.mkdtemp(prefix="raftsim-readback-", dir=os.getcwd()))
                try:
                    if operation == "save":
                        watch = _save(directory, data, args.chunk_size, read_back)
                    else:
                        watch = _receive(directory, data, digest, args.chunk_size, read_back)
                finally:
                    shutil.rmtree(directory)
                figures.setdefault(f"{operation} {'with' if read_back else 'without'}", []).append(watch)
    results, rows = {"size": args.size, "chunk_size": args.chunk_size, "rounds": args.rounds,
                     "loadavg": Path("/proc/loadavg").read_text().split()[:3]}, []
    for operation in ("save", "receive"):
        base = figures[f"{operation} without"]
        shipped = figures[f"{operation} with"]
        base_wall = statistics.median(w.wall for w in base)
        wall = statistics.median(w.wall for w in shipped)
        base_cpu = statistics.median(w.cpu for w in base)
        cpu = statistics.median(w.cpu for w in shipped)
        results[operation] = {"wall_s": wall, "baseline_wall_s": base_wall, "wall_ratio": ratio(wall, base_wall),
                              "cpu_s": cpu, "baseline_cpu_s": base_cpu, "cpu_ratio": ratio(cpu, base_cpu)}
        rows.append([operation, f"{base_wall:.3f}", f"{wall:.3f}", f"{ratio(wall, base_wall):.2f}",
                     f"{base_cpu:.3f}", f"{cpu:.3f}", f"{ratio(cpu, base_cpu):.2f}"])
    print_table(f"Read-back before publishing, {size_label(args.size)} snapshot, {size_label(args.chunk_size)} "
                f"chunks, median of {args.rounds} rounds",
                ["operation", "wall without (s)", "wall with (s)", "ratio", "CPU without (s)", "CPU with (s)",
                 "ratio"], rows, note=f"load average {' '.join(results['loadavg'])}")
    write_json(args.json, "disk_read_back", ["benchmarks/disk_read_back.py", *argv], results)


if __name__ == "__main__":
    main(sys.argv[1:])
