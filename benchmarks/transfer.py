"""Streaming snapshot transfer: throughput, CPU per GiB and peak memory, each beside a baseline.

Three measurements of the streaming path alone (two real endpoints joined by
a relay, see ``relay.py``):

- **throughput** of one snapshot (default 1 GiB), memory store to memory
  store and disk store to disk store, for each chunk size. Baselines, on the
  same bytes in the same run: memory, appending the same chunks to one
  buffer (a plain in-memory copy); disk, reading the sender's file chunk by
  chunk, writing a new file and fsyncing it once (a plain copy to disk).
- **CPU seconds per GiB** (user + system) of the same runs, against the same
  baselines.
- **peak memory** of a disk-to-disk transfer, for snapshot sizes from 16 MiB
  up (``--large`` adds 10 GiB), each size in a fresh process so peaks do not
  carry over: the extra bytes ``tracemalloc`` saw allocated at once, and the
  extra peak resident set (``getrusage``) over what the process held before
  the transfer. Baseline: the same snapshot handed over whole in memory
  (``read_snapshot`` then ``save_snapshot``), which is what Embedded holds;
  skipped at 10 GiB, which would not fit in RAM. Target for streaming:
  at most 4 x chunk size + 32 MiB, whatever the size.

Run: ``python benchmarks/transfer.py [--size 1GiB] [--chunks 256KiB 1MiB 4MiB]
[--memory-sizes 16MiB 64MiB 256MiB 1GiB] [--large] [--repeat 3] [--dir DIR] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import tracemalloc
from pathlib import Path

from benchlib import (
    GIB,
    MIB,
    Stopwatch,
    current_rss,
    parse_size,
    peak_rss,
    reset_peak_rss,
    print_table,
    ratio,
    run_child,
    size_label,
    write_json,
)
from relay import SNAPSHOT_INDEX, Relay, fresh_receiver, prepare_sender

TARGET_MEMORY_GBPS = 1.0
TARGET_MEMORY_RATIO = 0.3
TARGET_DISK_RATIO = 0.8
MEMORY_BUDGET_FLAT = 32 * MIB


def memory_budget(chunk_size: int) -> int:
    return 4 * chunk_size + MEMORY_BUDGET_FLAT


# -- throughput and CPU ---------------------------------------------------------------


def copy_in_memory(data: bytes, chunk_size: int) -> bytearray:
    """Baseline: the same chunks appended to one buffer, nothing else."""
    view = memoryview(data)
    copy = bytearray()
    for start in range(0, len(data), chunk_size):
        copy += view[start : start + chunk_size]
    return copy


def copy_on_disk(source: Path, target: Path, chunk_size: int) -> None:
    """Baseline: read the file chunk by chunk, write a new one, fsync it once."""
    with open(source, "rb", buffering=0) as reader, open(target, "wb", buffering=0) as writer:
        while chunk := reader.read(chunk_size):
            writer.write(chunk)
        os.fsync(writer.fileno())


def stream(sender, metadata, kind: str, chunk_size: int, folder: Path | None, sync_every: int = 1) -> Stopwatch:
    receiver = fresh_receiver(kind, chunk_size, folder, sync_every)
    relay = Relay(sender, receiver, chunk_size)
    gc.collect()
    with Stopwatch() as watch:
        relay.transfer(metadata)
    if receiver.snapshot_metadata(SNAPSHOT_INDEX).digest != metadata.digest:
        raise RuntimeError("the received snapshot differs from the sent one")
    watch.messages = relay.messages
    return watch


def measure_throughput(kind: str, size: int, chunk_size: int, repeat: int, folder: Path,
                       sync_every: int = 1) -> dict:
    """Median of ``repeat`` runs of streaming and of the baseline, alternating, on the same data.

    The median, not the best: a fresh buffer is sometimes recycled memory and
    sometimes new pages, and one lucky baseline would make every ratio look bad.
    """
    work = folder / kind if kind == "disk" else None
    load_before = os.getloadavg()[0]
    if work is not None:
        # Every chunk size gets a sender it wrote itself: a sender reopened from an
        # earlier chunk size's files would re-hash what it reads (a restart trusts
        # nothing) and the sizes would not be compared on equal terms.
        shutil.rmtree(work, ignore_errors=True)
    sender, metadata = prepare_sender(kind, size, chunk_size, work)
    runs: dict[str, list[Stopwatch]] = {"baseline": [], "streaming": []}
    data = sender.read_snapshot(SNAPSHOT_INDEX) if kind == "memory" else None  # the same bytes
    for _ in range(repeat):
        gc.collect()
        if kind == "memory":
            with Stopwatch() as baseline:
                copy = copy_in_memory(data, chunk_size)
            del copy
        else:
            target = work / "baseline-copy.bin"
            with Stopwatch() as baseline:
                copy_on_disk(Path(metadata.location), target, chunk_size)
            target.unlink()
        streamed = stream(sender, metadata, kind, chunk_size, work, sync_every)
        runs["baseline"].append(baseline)
        runs["streaming"].append(streamed)
    del data
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    stream_watch, base_watch = (sorted(runs[name], key=lambda watch: watch.wall)[repeat // 2]
                                for name in ("streaming", "baseline"))
    gib = size / GIB
    result = {
        "store": kind,
        "size": size,
        "chunk_size": chunk_size,
        "sync_every": sync_every if kind == "disk" else None,
        "repeat": repeat,
        "messages": stream_watch.messages,
        "streaming_seconds": stream_watch.wall,
        "baseline_seconds": base_watch.wall,
        "streaming_bytes_per_second": size / stream_watch.wall,
        "baseline_bytes_per_second": size / base_watch.wall,
        "throughput_ratio": ratio(base_watch.wall, stream_watch.wall),
        "streaming_cpu_seconds_per_gib": stream_watch.cpu / gib,
        "baseline_cpu_seconds_per_gib": base_watch.cpu / gib,
        "cpu_ratio": ratio(stream_watch.cpu, base_watch.cpu),
        "load_average": [load_before, os.getloadavg()[0]],
    }
    if kind == "memory":
        result["target_met"] = (
            result["streaming_bytes_per_second"] >= TARGET_MEMORY_GBPS * 1e9
            and result["throughput_ratio"] >= TARGET_MEMORY_RATIO
        )
    else:
        result["target_met"] = result["throughput_ratio"] >= TARGET_DISK_RATIO
    return result


# -- memory, one size per child process -----------------------------------------------


def child_prepare(size: int, chunk_size: int, folder: Path) -> dict:
    _, metadata = prepare_sender("disk", size, chunk_size, folder)
    return {"size": metadata.size}


def child_memory(variant: str, size: int, chunk_size: int, folder: Path) -> dict:
    """Peak memory of one disk-to-disk handover in this (fresh) process."""
    sender, metadata = prepare_sender("disk", size, chunk_size, folder)
    receiver = fresh_receiver("disk", chunk_size, folder)
    gc.collect()
    reset_peak_rss()
    rss_before = current_rss()
    tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    with Stopwatch() as watch:
        if variant == "streaming":
            relay = Relay(sender, receiver, chunk_size)
            relay.transfer(metadata)
        else:
            data = sender.read_snapshot(SNAPSHOT_INDEX)
            receiver.save_snapshot(
                SNAPSHOT_INDEX, data, term=metadata.term, conf_state=metadata.conf_state,
                snapshot_id=metadata.snapshot_id,
            )
            del data
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if receiver.snapshot_metadata(SNAPSHOT_INDEX).digest != metadata.digest:
        raise RuntimeError("the received snapshot differs from the sent one")
    return {
        "variant": variant,
        "size": size,
        "chunk_size": chunk_size,
        "seconds": watch.wall,
        "traced_extra_peak": traced_peak - traced_before,
        "rss_before": rss_before,
        "rss_extra_peak": max(0, peak_rss() - rss_before),
    }


def measure_memory(size: int, chunk_size: int, folder: Path, baseline: bool) -> dict:
    work = folder / f"memory-{size}"
    run_child("transfer.py", "child-prepare", "--size", size, "--chunk", chunk_size, "--dir", work)
    streamed = run_child("transfer.py", "child-memory", "--variant", "streaming", "--size", size,
                         "--chunk", chunk_size, "--dir", work)
    whole = (
        run_child("transfer.py", "child-memory", "--variant", "whole", "--size", size,
                  "--chunk", chunk_size, "--dir", work)
        if baseline else None
    )
    shutil.rmtree(work, ignore_errors=True)
    budget = memory_budget(chunk_size)
    return {
        "size": size,
        "chunk_size": chunk_size,
        "budget": budget,
        "streaming": streamed,
        "baseline": whole,
        "traced_ratio": ratio(streamed["traced_extra_peak"], whole["traced_extra_peak"]) if whole else None,
        "rss_ratio": ratio(streamed["rss_extra_peak"], whole["rss_extra_peak"]) if whole else None,
        "target_met": max(streamed["traced_extra_peak"], streamed["rss_extra_peak"]) <= budget,
    }


# -- report ------------------------------------------------------------------------------


def gbps(value: float) -> str:
    return f"{value / 1e9:.2f} GB/s"


def optional_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def report_throughput(rows: list[dict]) -> None:
    table = []
    for row in rows:
        table.append([
            f"{row['store']} → {row['store']}",
            size_label(row["chunk_size"]),
            gbps(row["streaming_bytes_per_second"]),
            gbps(row["baseline_bytes_per_second"]),
            f"{row['throughput_ratio']:.3f}",
            f"{row['streaming_cpu_seconds_per_gib']:.2f}",
            f"{row['baseline_cpu_seconds_per_gib']:.2f}",
            optional_ratio(row["cpu_ratio"]),
            "yes" if row["target_met"] else "NO",
            "{:.1f}→{:.1f}".format(*row["load_average"]),
        ])
    size = size_label(rows[0]["size"]) if rows else "?"
    print_table(
        f"Streaming throughput and CPU, {size} snapshot (median of {rows[0]['repeat'] if rows else '?'})",
        ["stores", "chunk", "streaming", "baseline", "ratio", "CPU s/GiB", "baseline CPU s/GiB",
         "CPU ratio", "target met", "load avg"],
        table,
        "Baselines: memory = the same chunks appended to one buffer; disk = read the file, write a new "
        "one, one fsync.\nTargets: memory ≥ 1 GB/s and ratio ≥ 0.3; disk ratio ≥ 0.8.",
    )


def report_memory(rows: list[dict]) -> None:
    table = []
    for row in rows:
        streamed, whole = row["streaming"], row["baseline"]
        table.append([
            size_label(row["size"]),
            size_label(row["chunk_size"]),
            f"{streamed['traced_extra_peak'] / MIB:,.1f}",
            f"{whole['traced_extra_peak'] / MIB:,.1f}" if whole else "—",
            optional_ratio(row["traced_ratio"]),
            f"{streamed['rss_extra_peak'] / MIB:,.1f}",
            f"{whole['rss_extra_peak'] / MIB:,.1f}" if whole else "—",
            optional_ratio(row["rss_ratio"]),
            f"{row['budget'] / MIB:,.0f}",
            "yes" if row["target_met"] else "NO",
        ])
    print_table(
        "Extra peak memory of one disk-to-disk transfer (MiB; fresh process per size)",
        ["snapshot", "chunk", "streaming traced", "whole traced", "ratio", "streaming RSS",
         "whole RSS", "ratio", "budget", "within budget"],
        table,
        "traced = tracemalloc peak over what was allocated before; RSS = getrusage peak over the resident "
        "set before.\nBaseline 'whole' = read_snapshot + save_snapshot (what Embedded holds); not run at "
        "10 GiB (it would not fit in RAM).\nBudget = 4 x chunk + 32 MiB.",
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("child-"):
        child_main(argv)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=GIB, help="snapshot size for throughput")
    parser.add_argument("--chunks", type=parse_size, nargs="+", default=[256 * 1024, MIB, 4 * MIB])
    parser.add_argument("--memory-sizes", type=parse_size, nargs="*",
                        default=[16 * MIB, 64 * MIB, 256 * MIB, GIB])
    parser.add_argument("--memory-chunk", type=parse_size, default=MIB)
    parser.add_argument("--large", action="store_true", help="also measure memory at 10 GiB (disk)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sync-every", type=int, default=1,
                        help="chunks a disk receiver writes per fsync (group durability; 1 = re-send at most one chunk)")
    parser.add_argument("--stores", nargs="+", default=["memory", "disk"], choices=["memory", "disk"])
    parser.add_argument("--dir", type=Path, default=None, help="where disk stores go (default: a temp dir)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="raftsim-bench-", dir=args.dir))
    try:
        throughput = [
            measure_throughput(kind, args.size, chunk, args.repeat, folder, args.sync_every)
            for kind in args.stores
            for chunk in args.chunks
        ]
        if throughput:
            report_throughput(throughput)
        sizes = list(args.memory_sizes) + ([10 * GIB] if args.large else [])
        memory = [measure_memory(size, args.memory_chunk, folder, baseline=size <= GIB) for size in sizes]
        if memory:
            report_memory(memory)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    write_json(args.json, "transfer", ["benchmarks/transfer.py", *argv],
               {"throughput": throughput, "memory": memory})


def child_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["child-prepare", "child-memory"])
    parser.add_argument("--variant", choices=["streaming", "whole"], default="streaming")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--chunk", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "child-prepare":
        result = child_prepare(args.size, args.chunk, args.dir)
    else:
        result = child_memory(args.variant, args.size, args.chunk, args.dir)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
