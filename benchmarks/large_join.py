"""10 GiB end to end: a 4th node joins a cluster whose state is 10 GiB, on disk stores.

The state machine (:class:`GeneratedState`) holds its state as a size and a
seed: its snapshot bytes are generated block by block when a snapshot is
made, and a restore reads every byte back and compares it with what the seed
generates, so the whole 10 GiB really is created, stored, streamed, persisted,
verified and restored, while the live state stays a few bytes and the
machine's memory is free to show what the snapshot path itself holds.

One run, in one process (a 3-node cluster on virtual time, ``Streaming.on_disk``
with durable stores):

1. **create**: the leader snapshots its state into its disk store
   (``snapshot_chunks`` straight into ``save_snapshot``: written, fsynced,
   its BLAKE3 digest computed as it goes) and compacts its log; only the leader does,
   so a joining node can only catch up by snapshot;
2. **join**: ``add_node`` until the new node applied the leader's commit
   index, split like ``recovery.py`` into transfer (leader reads and
   chunks, the transport), persist (receiver's writes, fsyncs, publish),
   verify (CRC-32C per chunk, the BLAKE3 digest of the whole, hashed as it is written) and restore (the new
   node reads the snapshot back from its store and compares every byte).

Memory, beyond the live state: the extra peak resident set (``VmHWM`` reset
before each phase) and the ``tracemalloc`` peak, for create (the leader
alone works) and for the join (leader and receiver in the same process: the
figure bounds each of them), against ``4 x chunk + 32 MiB``; and each node's
own count of snapshot bytes held (``cluster.snapshot_memory()``). The same
run measures the disk: a raw write+fsync of the same number of bytes, made
right before the join and kept on disk until it is over, so that the raw file
and the receiver's snapshot both land on blocks the run has not just freed
(on a virtual disk, blocks never written before can be several times slower
than blocks just freed; a baseline on freed blocks would flatter the disk).
A second reference, made and kept the same way: a copy of the leader's
snapshot file (read chunk by chunk, written, one fsync), because the raw
write repeats one cache-hot 1 MiB block, and on this kind of machine the
kernel copies that into the page cache several times faster than distinct
bytes that come from another file (``perf``: most of a join's CPU is that
copy, ``copy_folio_from_iter_atomic``).

Page supply. A buffered write grows the page cache, and on a virtual machine
with free page reporting (``virtio_balloon``: free guest memory goes back to
the host about 2 s after it is freed) each page it grows into costs a host
fault the first time, unless it was freed a moment ago: the same 1 GiB
write+fsync took 3.3-4.9 s into such fresh pages and 0.6 s into just-freed
ones (``benchmarks/page_cache_floor.py``). The headline baseline (the raw
write before the join) gets whichever pages the machine has at that moment,
for instance ones a previous run has just freed. So two more references are
taken after the join: the raw write again with nothing freed since the join
(the page supply the join itself had), and once more right after deleting
the other files (just-freed pages: the disk with no fault tax).
``--just-freed-join`` deletes the raw and copy files right before the join
instead, so the join itself writes into just-freed pages: set beside the raw
write into just-freed pages, that ratio is the join's own cost over the disk's.

Run: ``python benchmarks/large_join.py [--size 10GiB] [--chunk 1MiB] [--sync-every 1] [--repeat 3] [--dir DIR]
[--just-freed-join] [--json out.json]`` (``--repeat``: each run in a fresh process with its own raw baseline; medians).
Needs about twice ``--size`` of free disk in ``--dir``; everything is removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path

from benchlib import (
    GIB,
    MIB,
    current_rss,
    mib,
    parse_size,
    peak_rss,
    print_table,
    run_child,
    ratio,
    reset_peak_rss,
    size_label,
    write_json,
)
from recovery import instrument, raw_write_fsync

from simulator import Cluster, CompactionPolicy, run
from simulator.snapshots.checksums import chunk_checksum
from simulator.snapshots.digests import hasher_for
from transports import Streaming

SLACK = 32 * MIB
PROMISED_PASSES = 4  # verified passes over the bytes a join makes; see ``floor_seconds`` in one_run
BLOCK = MIB
_HEADER = struct.Struct(">20sQQQ")  # format, applied index, snapshot size, seed
FORMAT = b"raftsim-generated-v1"


class GeneratedState:
    """A state of ``size`` bytes that exist only when a snapshot is made: see the module docstring.

    Command ``GeneratedState.grow(size, seed)`` sets the state. Snapshot: a
    header, then ``size - header`` generated bytes (so the snapshot is exactly
    ``size`` bytes); block ``k`` is a seeded random block with ``k`` stamped
    in front, so no two blocks are alike (nothing compresses or dedups).
    """

    def __init__(self) -> None:
        self.applied_index = 0
        self.size = 0
        self.seed = 0

    @staticmethod
    def grow(size: int, seed: int) -> bytes:
        return b"grow %d %d" % (size, seed)

    def apply(self, index: int, command: bytes) -> str:
        self.applied_index = index
        parts = command.split()
        if len(parts) != 3 or parts[0] != b"grow" or not parts[1].isdigit() or not parts[2].isdigit():
            return f"error: 'grow SIZE SEED' expected, got {command[:40]!r}"
        size, seed = int(parts[1]), int(parts[2])
        if size < _HEADER.size:
            return f"error: size must be at least {_HEADER.size} bytes, got {size}"
        self.size, self.seed = size, seed
        return "ok"

    def _blocks(self) -> Iterator[bytes]:
        base = random.Random(self.seed).randbytes(BLOCK)
        remaining, number = max(0, self.size - _HEADER.size), 0
        while remaining > 0:
            block = struct.pack(">Q", number) + base[8:]
            yield block[: min(BLOCK, remaining)]
            remaining -= BLOCK
            number += 1

    def snapshot_chunks(self, index: int) -> Iterator[bytes]:
        if index != self.applied_index:
            raise ValueError(f"snapshot at index {index} asked, the state is at {self.applied_index}")
        yield _HEADER.pack(FORMAT, index, self.size, self.seed) if self.size else b""
        yield from self._blocks()

    def restore_from_snapshot(self, chunks: Iterable[bytes]) -> None:
        stream = iter(chunks)
        buffer = b""
        for chunk in stream:
            buffer += chunk
            if len(buffer) >= _HEADER.size:
                break
        if len(buffer) < _HEADER.size:
            if not buffer:
                self.size = self.seed = 0
                return
            raise ValueError(f"generated-state snapshot of {len(buffer)} bytes: a {_HEADER.size}-byte header expected")
        found, index, size, seed = _HEADER.unpack(buffer[: _HEADER.size])
        if found != FORMAT:
            raise ValueError(f"snapshot format {found!r}, {FORMAT!r} expected")
        expected = GeneratedState()
        expected.applied_index, expected.size, expected.seed = index, size, seed
        rest = memoryview(buffer)[_HEADER.size :]
        position = 0
        for block in expected._blocks():  # every byte is compared with what the seed generates
            view = memoryview(block)
            while view:
                if not rest:
                    chunk = next(stream, None)
                    if chunk is None:
                        raise ValueError(f"generated-state snapshot ends {len(view)} bytes early")
                    rest = memoryview(chunk)
                count = min(len(view), len(rest))
                # Compared as bytes (one memcmp): memoryview equality goes element by
                # element and made this check cost more than the whole snapshot path.
                if view[:count].tobytes() != rest[:count].tobytes():
                    raise ValueError(f"generated-state snapshot differs from its seed near byte {position}")
                view, rest, position = view[count:], rest[count:], position + count
        if rest or next(stream, None):
            raise ValueError("generated-state snapshot has bytes past its size")
        self.applied_index, self.size, self.seed = index, size, seed

    def digest(self) -> str:
        return hashlib.sha256(b"%d %d" % (self.size, self.seed)).hexdigest()


class Peaks:
    """Extra peak RSS and tracemalloc peak of one phase, beyond what was live when it began."""

    def __enter__(self) -> Peaks:
        gc.collect()
        self.live_rss = current_rss()
        reset_peak_rss()
        tracemalloc.start()
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.started
        self.cpu_seconds = time.process_time() - self.cpu_started
        self.traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        self.rss_extra = max(0, peak_rss() - self.live_rss)

    def figures(self) -> dict:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu_seconds, "traced_peak": self.traced,
                "rss_extra": self.rss_extra}


def copy_file(source: Path, target: Path, chunk: int) -> None:
    """Read ``source`` chunk by chunk into a new file, fsynced once (``transfer.py``'s disk baseline)."""
    with open(source, "rb", buffering=0) as reader, open(target, "wb", buffering=0) as writer:
        while data := reader.read(chunk):
            writer.write(data)
        os.fsync(writer.fileno())


def verified_read_pass(path: Path, chunk: int, digest: str) -> float:
    """Seconds for one pass of the work every verified read of a snapshot does: read each chunk
    (here from the page cache), check it (CRC-32C) and hash it (the snapshot's own digest)."""
    hasher, buffer = hasher_for(digest), bytearray(chunk)
    view = memoryview(buffer)
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as reader:
        while count := reader.readinto(buffer):  # one buffer: no new memory per chunk
            chunk_checksum(view[:count])
            hasher.update(view[:count])
    seconds = time.perf_counter() - started
    if hasher.hexdigest() != digest.partition(":")[2]:
        raise RuntimeError(f"{path.name} does not hash to the leader's digest {digest}")
    return seconds


def measure(size: int, chunk: int, sync_every: int, folder: Path, just_freed: bool = False) -> dict:
    result: dict = {"size": size, "chunk_size": chunk, "sync_every": sync_every, "just_freed_join": just_freed}
    phases = instrument()
    mode = Streaming.on_disk(folder, chunk_size=chunk, sync_every=sync_every)

    async def main() -> None:
        async with Cluster.open(nodes=3, seed=1, snapshot_mode=mode, state_machine=GeneratedState,
                                compaction=CompactionPolicy(), record_messages=False) as cluster:
            leader = await cluster.wait_for_leader()
            await cluster.propose(GeneratedState.grow(size, seed=7), timeout=60)
            await cluster.wait_caught_up(timeout=60)
            with Peaks() as create:
                cluster.compact(leader)  # the leader only: the others keep their logs
            snapshot = cluster.storage(leader).snapshot_metadata
            raw_path = folder / "raw.bin"
            result["raw_write_fsync_seconds"] = raw_write_fsync(size, chunk, raw_path.parent, keep=raw_path)
            # A second reference: copy the leader's snapshot file itself (distinct bytes read from
            # the page cache, written, one fsync). The raw write above repeats one cache-hot block,
            # which the kernel copies into the page cache faster than any real data.
            copy_path = folder / "raw-copy.bin"
            leader_file = Path(cluster.store(leader).snapshot_metadata(snapshot.index).location)
            started = time.perf_counter()
            copy_file(leader_file, copy_path, chunk)
            result["raw_copy_seconds"] = time.perf_counter() - started
            result["verified_read_pass_seconds"] = verified_read_pass(leader_file, chunk, snapshot.digest)
            if just_freed:
                # The join's receiver grows the page cache into the pages these files held
                # (freed a moment ago, so the host has not taken them back): the join
                # without the fault tax, to set beside the raw write into just-freed pages.
                raw_path.unlink()
                copy_path.unlink()
            phases.active = True
            with Peaks() as join:
                newcomer = await cluster.add_node(promote=False, timeout=24 * 3600)
                await cluster.wait_caught_up([newcomer], timeout=24 * 3600)
            phases.active = False
            # Two more references, after the join (see "Page supply" in the module docstring):
            # the same raw write again, nothing freed since the join (the join's own page
            # supply), then once more right after deleting the files above, into just-freed pages.
            after_path = folder / "raw-after.bin"
            result["raw_after_join_seconds"] = raw_write_fsync(size, chunk, folder, keep=after_path)
            for path in (raw_path, copy_path, after_path):
                path.unlink(missing_ok=True)
            result["raw_recycled_seconds"] = raw_write_fsync(size, chunk, folder)
            if cluster.state_machine(newcomer).digest() != cluster.state_machine(leader).digest():
                raise RuntimeError("the new node's state differs from the leader's")
            stored = cluster.store(newcomer).snapshot_metadata(snapshot.index)
            if stored.digest != snapshot.digest:
                raise RuntimeError("the new node's snapshot differs from the leader's")
            memory = cluster.snapshot_memory()
            result.update(
                snapshot_size=snapshot.size,
                create=create.figures(),
                join=join.figures(),
                phases=phases.split(join.seconds),
                leader_held_peak=memory[leader][1],
                receiver_held_peak=memory[newcomer][1],
            )

    started = time.perf_counter()
    run(main)
    result["wall_seconds"] = time.perf_counter() - started
    return result


def one_run(size: int, chunk: int, sync_every: int, parent: Path | None, just_freed: bool = False) -> dict:
    """One measured run in a fresh folder, with its derived figures and the load around it."""
    folder = Path(tempfile.mkdtemp(prefix="raftsim-large-join-", dir=parent))
    load_before = os.getloadavg()
    try:
        row = measure(size, chunk, sync_every, folder / "cluster", just_freed)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    budget = 4 * chunk + SLACK
    raw = row["raw_write_fsync_seconds"]
    row.update(
        budget=budget,
        join_raw_ratio=ratio(row["join"]["seconds"], raw), create_raw_ratio=ratio(row["create"]["seconds"], raw),
        join_copy_ratio=ratio(row["join"]["seconds"], row["raw_copy_seconds"]),
        join_raw_after_ratio=ratio(row["join"]["seconds"], row["raw_after_join_seconds"]),
        join_recycled_ratio=ratio(row["join"]["seconds"], row["raw_recycled_seconds"]),
        # What no join can go under: the bytes written once (into just-freed pages) plus the
        # four verified passes the join's promises require (sender's read, receiver's digest
        # as it writes, read-back before publish, restore's read), each at least one
        # CRC-32C + digest pass over the bytes.
        floor_seconds=row["raw_recycled_seconds"] + PROMISED_PASSES * row["verified_read_pass_seconds"],
        within_budget={phase: row[phase]["traced_peak"] <= budget and row[phase]["rss_extra"] <= budget
                       for phase in ("create", "join")},
        load_average_before=load_before, load_average_after=os.getloadavg(),
    )
    return row


def print_run(row: dict, title: str) -> None:
    raw, phases, budget = row["raw_write_fsync_seconds"], row["phases"], row["budget"]
    print_table(
        title,
        ["step", "wall s", "CPU s", "÷ raw write+fsync", "traced peak", "RSS extra", f"<= {mib(budget)}"],
        [
            ["raw write+fsync (baseline)", f"{raw:.1f}", "", "1.00", "", "", ""],
            ["copy of the snapshot file", f"{row['raw_copy_seconds']:.1f}", "", f"{row['raw_copy_seconds'] / raw:.2f}",
             "", "", ""],
            ["raw write+fsync after the join", f"{row['raw_after_join_seconds']:.1f}", "",
             f"{row['raw_after_join_seconds'] / raw:.2f}", "", "", ""],
            ["  and into just-freed pages", f"{row['raw_recycled_seconds']:.1f}", "",
             f"{row['raw_recycled_seconds'] / raw:.2f}", "", "", ""],
            ["one verified read pass (CRC-32C + digest)", f"{row['verified_read_pass_seconds']:.2f}", "",
             f"{row['verified_read_pass_seconds'] / raw:.2f}", "", "", ""],
            [f"floor: just-freed write + {PROMISED_PASSES} passes", f"{row['floor_seconds']:.1f}", "",
             f"{row['floor_seconds'] / raw:.2f}", "", "", ""],
            ["create (leader)", f"{row['create']['seconds']:.1f}", f"{row['create']['cpu_seconds']:.1f}",
             f"{row['create_raw_ratio']:.2f}",
             mib(row["create"]["traced_peak"]), mib(row["create"]["rss_extra"]),
             "yes" if row["within_budget"]["create"] else "NO"],
            ["join: add_node -> caught up", f"{row['join']['seconds']:.1f}", f"{row['join']['cpu_seconds']:.1f}",
             f"{row['join_raw_ratio']:.2f}",
             mib(row["join"]["traced_peak"]), mib(row["join"]["rss_extra"]),
             "yes" if row["within_budget"]["join"] else "NO"],
            ["  transfer", f"{phases['transfer']:.1f}", "", "", "", "", ""],
            ["  persist", f"{phases['persist']:.1f}", "", "", "", "", ""],
            ["  verify", f"{phases['verify']:.1f}", "", "", "", "", ""],
            ["  restore", f"{phases['restore']:.1f}", "", "", "", "", ""],
        ],
        f"Whole run {row['wall_seconds']:.1f} s. Snapshot bytes each node counted as held at most: leader "
        f"{mib(row['leader_held_peak'])}, receiver {mib(row['receiver_held_peak'])}. Join peaks cover leader "
        f"and receiver together (one process). Join / copy of the snapshot file: {row['join_copy_ratio']:.2f}; "
        f"/ raw after the join: {row['join_raw_after_ratio']:.2f}; / raw into just-freed pages: "
        f"{row['join_recycled_ratio']:.2f}. "
        f"Load average before {row['load_average_before'][0]:.1f}, after {row['load_average_after'][0]:.1f}.",
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "child-run":  # one repeat, in its own process (fresh peaks, fresh wrappers)
        size, chunk, sync_every, parent, just_freed = int(argv[1]), int(argv[2]), int(argv[3]), argv[4], argv[5]
        print(json.dumps(one_run(size, chunk, sync_every, Path(parent) if parent else None, just_freed == "1")))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=10 * GIB)
    parser.add_argument("--chunk", type=parse_size, default=MIB)
    parser.add_argument("--sync-every", type=int, default=1, help="chunks a receiver writes per fsync")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs, each in a fresh process with its own raw baseline; the medians are reported")
    parser.add_argument("--dir", type=Path, default=None, help="where the disk stores go (default: a temp dir)")
    parser.add_argument("--just-freed-join", action="store_true",
                        help="delete the raw and copy files right before the join, so that the join writes into "
                             "just-freed pages (see 'Page supply'); the headline baseline is unchanged")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    title = (f"{size_label(args.size)} end to end: 4th node joins on disk stores, chunk {size_label(args.chunk)}, "
             f"fsync every {args.sync_every} chunk(s)" + (", join into just-freed pages" if args.just_freed_join else ""))
    if args.repeat == 1:
        row = one_run(args.size, args.chunk, args.sync_every, args.dir, args.just_freed_join)
        print_run(row, title)
        write_json(args.json, "large_join", ["benchmarks/large_join.py", *argv], row)
        return
    runs = [run_child("large_join.py", "child-run", args.size, args.chunk, args.sync_every, args.dir or "",
                      "1" if args.just_freed_join else "0")
            for _ in range(args.repeat)]
    # The run whose join/raw ratio is the median stands for all; every run's figures are in the JSON.
    ordered = sorted(runs, key=lambda row: row["join_raw_ratio"])
    middle = ordered[len(ordered) // 2]
    print_run(middle, f"{title}: the median of {args.repeat} runs")
    print("each run (join s / raw s = ratio, load before): " + "; ".join(
        f"{row['join']['seconds']:.1f} / {row['raw_write_fsync_seconds']:.1f} = {row['join_raw_ratio']:.2f}, "
        f"/ copy {row['raw_copy_seconds']:.1f} = {row['join_copy_ratio']:.2f}, "
        f"/ raw after {row['raw_after_join_seconds']:.1f} = {row['join_raw_after_ratio']:.2f}, "
        f"/ just-freed {row['raw_recycled_seconds']:.1f} = {row['join_recycled_ratio']:.2f} "
        f"({row['load_average_before'][0]:.1f})" for row in runs))
    summary = {
        "repeat": args.repeat,
        "median_join_raw_ratio": middle["join_raw_ratio"],
        "median_join_seconds": statistics.median(row["join"]["seconds"] for row in runs),
        "median_raw_write_fsync_seconds": statistics.median(row["raw_write_fsync_seconds"] for row in runs),
        "median_join_copy_ratio": statistics.median(row["join_copy_ratio"] for row in runs),
        "median_raw_copy_seconds": statistics.median(row["raw_copy_seconds"] for row in runs),
        "median_raw_after_join_seconds": statistics.median(row["raw_after_join_seconds"] for row in runs),
        "median_raw_recycled_seconds": statistics.median(row["raw_recycled_seconds"] for row in runs),
        "median_join_raw_after_ratio": statistics.median(row["join_raw_after_ratio"] for row in runs),
        "median_join_recycled_ratio": statistics.median(row["join_recycled_ratio"] for row in runs),
        "median_floor_seconds": statistics.median(row["floor_seconds"] for row in runs),
        "median_floor_recycled_ratio": statistics.median(
            row["floor_seconds"] / row["raw_recycled_seconds"] for row in runs),
        "median_run": middle,
        "runs": runs,
    }
    write_json(args.json, "large_join", ["benchmarks/large_join.py", *argv], summary)


if __name__ == "__main__":
    main()
