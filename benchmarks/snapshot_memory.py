"""Leader memory while it snapshots a large state: streamed into a disk store, beside Embedded.

A 1-node cluster (the leader) applies ``put`` commands of 1 MiB values of a
``KeyValueStore`` until its state has the requested size, then snapshots it
(``cluster.compact``): the node pulls ``snapshot_chunks`` from the machine
and, with a snapshot store, writes them into it as they come
(``StateMachine`` contract, ``simulator.machines.contracts``). Measured from
the start of the snapshot to its end, in a fresh process per run:

- **traced peak**: the most bytes ``tracemalloc`` saw allocated at once
  beyond what was live before (the state, the log);
- **RSS peak**: the extra peak resident set over the same stretch.

Streaming runs with a ``DiskSnapshotStore`` per node; the baseline is
Embedded, whose Raft storage keeps the snapshot data in memory (the seed's
``MemStorageWithSnapshot``), so it must hold the whole encoding. The target
for Streaming is flat: at most ``4 x chunk + 32 MiB`` beyond the live state,
whatever the state's size.

Run: ``python benchmarks/snapshot_memory.py [--sizes 256MiB 1GiB] [--chunk 1MiB] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import tracemalloc
from pathlib import Path

import trio

from benchlib import (
    MIB,
    current_rss,
    mib,
    parse_size,
    peak_rss,
    print_table,
    ratio,
    reset_peak_rss,
    run_child,
    size_label,
    write_json,
)
from simulator import Cluster, DiskSnapshotStore, KeyValueStore
from transports import Embedded, Streaming

VALUE = MIB
SLACK = 32 * MIB


def flat_limit(chunk: int) -> int:
    return 4 * chunk + SLACK


async def measure(mode_name: str, size: int, chunk: int, directory: Path) -> dict:
    if mode_name == "streaming":
        mode = Streaming(chunk_size=chunk, store=lambda node: DiskSnapshotStore(
            directory / f"node-{node}", chunk_size=chunk, durable=False))
    else:
        mode = Embedded()
    async with Cluster.open(nodes=1, seed=1, state_machine=KeyValueStore, snapshot_mode=mode) as cluster:
        leader = await cluster.wait_for_leader()
        for number in range(size // VALUE):
            await cluster.propose(KeyValueStore.put(f"key-{number:06}", bytes([number % 251]) * VALUE))
        gc.collect()
        live_rss = current_rss()
        reset_peak_rss()
        tracemalloc.start()
        cluster.compact(leader)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_extra = max(0, peak_rss() - live_rss)
        snapshot = cluster.storage(leader).snapshot_metadata
    return {"mode": mode_name, "state_bytes": size, "snapshot_bytes": snapshot.size, "chunk": chunk,
            "traced_peak": traced_peak, "rss_extra": rss_extra}


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["embedded", "streaming"], required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--chunk", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    options = parser.parse_args(argv)
    result = trio.run(measure, options.mode, options.size, options.chunk, options.dir,
                      clock=trio.testing.MockClock(autojump_threshold=0))
    print(json.dumps(result))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[256 * MIB, 1024 * MIB])
    parser.add_argument("--chunk", type=parse_size, default=MIB)
    parser.add_argument("--json", default=None, help="write the results here")
    options = parser.parse_args(argv)
    rows, results = [], []
    for size in options.sizes:
        runs = {}
        for mode_name in ("embedded", "streaming"):
            with tempfile.TemporaryDirectory(prefix="raftsim-snapmem-") as directory:
                runs[mode_name] = run_child("snapshot_memory.py", "--child", "--mode", mode_name, "--size", size,
                                            "--chunk", options.chunk, "--dir", directory)
        streaming, embedded = runs["streaming"], runs["embedded"]
        limit = flat_limit(options.chunk)
        entry = {
            "state_bytes": size,
            "chunk": options.chunk,
            "streaming": streaming,
            "embedded": embedded,
            "flat_limit": limit,
            "streaming_is_flat": streaming["traced_peak"] <= limit and streaming["rss_extra"] <= limit,
            "streaming_peak_per_chunk": ratio(streaming["traced_peak"], options.chunk),
            "streaming_to_embedded_traced": ratio(streaming["traced_peak"], embedded["traced_peak"]),
            "streaming_to_embedded_rss": ratio(streaming["rss_extra"], embedded["rss_extra"]),
        }
        results.append(entry)
        rows.append([
            size_label(size),
            mib(streaming["traced_peak"]), mib(streaming["rss_extra"]),
            f"{entry['streaming_peak_per_chunk']:.2f}",
            mib(embedded["traced_peak"]), mib(embedded["rss_extra"]),
            f"{entry['streaming_to_embedded_traced']:.4f}",
            "yes" if entry["streaming_is_flat"] else "NO",
        ])
    print_table(
        f"Leader memory while snapshotting (chunk {size_label(options.chunk)})",
        ["state", "streaming traced", "streaming RSS", "x chunk", "embedded traced", "embedded RSS",
         "streaming / embedded", "flat"],
        rows,
        note=f"flat: streaming's traced peak and extra RSS <= 4 x chunk + {mib(SLACK)} "
             f"({mib(flat_limit(options.chunk))}) beyond the live state",
    )
    write_json(options.json, "snapshot_memory", ["benchmarks/snapshot_memory.py", *argv], {"runs": results})


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    else:
        main(sys.argv[1:])
