"""Recovery: a new node joins a cluster whose snapshot is large, Streaming beside Embedded.

A 3-node cluster (virtual time, links without bandwidth limits, so what is
measured is the work, not a modelled network) takes workflows with 1 MiB
payloads until its state has the requested size, compacts its log, and a
4th node joins as a learner and catches up by snapshot. Measured, in wall
seconds, from the join until the new node applied the leader's commit index:

- **transfer**: moving the bytes (the sender reading its store, chunking,
  the transport, Raft); what is left after the three phases below;
- **persist**: the receiver writing chunks durably and publishing the
  snapshot (``DiskSnapshotStore`` appends, fsyncs, progress records);
- **verify**: the receiver's CRC-32 of each chunk and sha256 of the whole;
- **restore**: rebuilding the state machine from the snapshot (read back
  from the store when streamed) and installing it in Raft's storage.

Streaming runs with disk stores (``Streaming.on_disk``, ``--sync-every``
chunks per fsync); Embedded carries the snapshot inside one Raft message.
The disk's own speed is measured in the same run, between the joins: the
same number of bytes written in chunks to a new file on the same disk and
fsynced once (``raw write+fsync``); the join's ratio to it is the figure
(target: <= 2x, and under 10 s for 1 GiB). Each run is a fresh
process; a second fresh process per run measures memory: the extra bytes
``tracemalloc`` saw allocated at once from the join until the install began
(the transfer), and the extra peak resident set over the same stretch.
Target: Streaming recovery of 1 GiB in under 10 s.

Run: ``python benchmarks/recovery.py [--sizes 16MiB 256MiB 1GiB] [--chunk 1MiB] [--modes embedded streaming]
[--sync-every 1] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

from benchlib import (
    GIB,
    MIB,
    current_rss,
    parse_size,
    peak_rss,
    print_table,
    ratio,
    reset_peak_rss,
    run_child,
    size_label,
    write_json,
)

from simulator import (
    Cluster,
    CompactionPolicy,
    DiskSnapshotStore,
    WorkflowExecutor,
    run,
)
from simulator.cluster.snapshot_handling import NodeSnapshots
from simulator.snapshots.writer import SnapshotWriter
from transports import Embedded, Streaming
from transports.streaming import IncomingTransfer

TARGET_SECONDS = 10.0
TARGET_RAW_RATIO = 2.0
PAYLOAD = MIB


class Phases:
    """Wall seconds spent inside chosen methods, summed; installed by wrapping the class attribute."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.active = False
        self.on_enter: dict[str, object] = {}

    def wrap(self, owner: type, name: str, label: str) -> None:
        original = getattr(owner, name)
        phases = self

        def timed(*args, **kwargs):
            if not phases.active:
                return original(*args, **kwargs)
            hook = phases.on_enter.get(label)
            if hook is not None:
                hook()
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                phases.seconds[label] += time.perf_counter() - started

        setattr(owner, name, timed)

    def split(self, total: float) -> dict[str, float]:
        """The four phases; nested timings are subtracted from the ones that contain them."""
        seconds = self.seconds
        persist = seconds["append"] + seconds["publish"]
        verify = seconds["check_chunk"] + (seconds["write"] - seconds["append"]) + (
            seconds["commit"] - seconds["publish"])
        restore = seconds["restore"]
        return {
            "transfer": total - persist - verify - restore,
            "persist": persist,
            "verify": verify,
            "restore": restore,
            "sender_read": seconds["sender_read"],
        }


def instrument() -> Phases:
    from transports.streaming.sending import SnapshotSending

    phases = Phases()
    phases.wrap(SnapshotSending, "_read_chunk", "sender_read")
    phases.wrap(IncomingTransfer, "check_chunk", "check_chunk")
    phases.wrap(SnapshotWriter, "write", "write")
    phases.wrap(SnapshotWriter, "commit", "commit")
    phases.wrap(DiskSnapshotStore, "_append_partial", "append")
    phases.wrap(DiskSnapshotStore, "_publish_partial", "publish")
    phases.wrap(NodeSnapshots, "install_from_ready", "restore")
    return phases


def raw_write_fsync(size: int, chunk_size: int, folder: Path, keep: Path | None = None) -> float:
    """Wall seconds to write ``size`` bytes in ``chunk_size`` writes to a new file and fsync it once.

    The file is removed, unless ``keep`` names it (the caller removes it later).
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = keep or folder / "raw.bin"
    block = os.urandom(chunk_size)
    started = time.perf_counter()
    with open(path, "wb", buffering=0) as file:
        file.writelines(block[: min(chunk_size, size - start)] for start in range(0, size, chunk_size))
        os.fsync(file.fileno())
    seconds = time.perf_counter() - started
    if keep is None:
        path.unlink()
    return seconds


def recover(mode_name: str, size: int, chunk_size: int, folder: Path, measure: str, sync_every: int = 1) -> dict:
    """One join in this process; ``measure`` is "time" or "memory" (tracemalloc slows the run)."""
    phases = instrument()
    if mode_name == "streaming":
        mode = Streaming.on_disk(folder, chunk_size=chunk_size, sync_every=sync_every)
    else:
        mode = Embedded(wire_copy=True)  # what a serializer does: the copy a real wire needs
    workflows = max(1, size // PAYLOAD)
    result: dict = {"mode": mode_name, "size": size, "chunk_size": chunk_size, "measure": measure,
                    "sync_every": sync_every}
    memory: dict = {}

    def at_install() -> None:
        # The transfer is over when the install begins: record its memory peaks.
        if "traced_transfer_peak" not in memory:
            if tracemalloc.is_tracing():
                memory["traced_transfer_peak"] = tracemalloc.get_traced_memory()[1]
            memory["rss_transfer_peak"] = peak_rss()

    if measure == "memory":
        phases.on_enter["restore"] = at_install

    async def main() -> None:
        async with Cluster.open(
            nodes=3,
            seed=1,
            snapshot_mode=mode,
            compaction=CompactionPolicy(),  # on demand, once the whole state is in
            record_messages=False,
        ) as cluster:
            await cluster.wait_for_leader()
            payload = bytes(range(256)) * (PAYLOAD // 256)
            for number in range(workflows):
                await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["a"], payload), timeout=600)
            await cluster.wait_caught_up(timeout=600)
            for node_id in cluster.up_nodes():
                cluster.compact(node_id)
            leader = cluster.leader_id()
            snapshot = cluster.storage(leader).snapshot_metadata
            gc.collect()
            if measure == "memory":
                reset_peak_rss()
                memory["rss_before"] = current_rss()
                tracemalloc.start()
                memory["traced_before"] = tracemalloc.get_traced_memory()[0]
            phases.active = True
            started = time.perf_counter()
            newcomer = await cluster.add_node(promote=False, timeout=3600)
            await cluster.wait_caught_up([newcomer], timeout=3600)
            total = time.perf_counter() - started
            phases.active = False
            if tracemalloc.is_tracing():
                memory["traced_total_peak"] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            transfer = next(t for t in cluster.transfers() if t.to == newcomer)
            if cluster.state_machine(newcomer).digest() != cluster.state_machine(leader).digest():
                raise RuntimeError("the new node's state differs from the leader's")
            result.update(
                snapshot_index=snapshot.index,
                snapshot_size=transfer.size,
                seconds=total,
                phases=phases.split(total),
            )

    run(main)
    if measure == "memory":
        result.update(
            traced_transfer_extra=memory["traced_transfer_peak"] - memory["traced_before"],
            traced_total_extra=memory["traced_total_peak"] - memory["traced_before"],
            rss_transfer_extra=max(0, memory["rss_transfer_peak"] - memory["rss_before"]),
        )
    return result


def measure_size(size: int, chunk_size: int, folder: Path, sync_every: int = 1,
                 modes: tuple[str, ...] = ("embedded", "streaming")) -> dict:
    runs = {}
    raw = [raw_write_fsync(size, chunk_size, folder / "raw")]
    for mode_name in ("embedded", "streaming"):
        for measure in ("time", "memory"):
            if mode_name not in modes:
                runs[(mode_name, measure)] = None
                continue
            work = folder / f"{mode_name}-{measure}-{size}"
            runs[(mode_name, measure)] = run_child(
                "recovery.py", "child", "--mode", mode_name, "--size", size, "--chunk", chunk_size,
                "--measure", measure, "--dir", work, "--sync-every", sync_every,
            )
            shutil.rmtree(work, ignore_errors=True)
            raw.append(raw_write_fsync(size, chunk_size, folder / "raw"))  # between joins: same load
    raw_seconds = statistics.median(raw)
    for mode_name in modes:
        timed, measured = runs[(mode_name, "time")], runs[(mode_name, "memory")]
        for key in ("traced_transfer_extra", "traced_total_extra", "rss_transfer_extra"):
            timed[key] = measured[key]
    streaming, embedded = runs[("streaming", "time")], runs[("embedded", "time")]
    row = {
        "size": size,
        "snapshot_size": streaming["snapshot_size"],
        "chunk_size": chunk_size,
        "sync_every": sync_every,
        "streaming": streaming,
        "raw_write_fsync_seconds": raw_seconds,
        "raw_write_fsync_samples": raw,
        "raw_ratio": ratio(streaming["seconds"], raw_seconds),
        "load_average": os.getloadavg(),
        "target_met": (streaming["seconds"] < TARGET_SECONDS
                       and streaming["seconds"] <= TARGET_RAW_RATIO * raw_seconds) if size >= GIB else None,
    }
    if embedded is not None:
        row.update(
            embedded=embedded,
            seconds_ratio=ratio(streaming["seconds"], embedded["seconds"]),
            traced_transfer_ratio=ratio(streaming["traced_transfer_extra"], embedded["traced_transfer_extra"]),
            rss_transfer_ratio=ratio(streaming["rss_transfer_extra"], embedded["rss_transfer_extra"]),
        )
    return row


def report(rows: list[dict]) -> None:
    table = []
    for row in rows:
        table.append([size_label(row["size"]), "raw write+fsync (baseline)",
                      f"{row['raw_write_fsync_seconds']:.2f}", "", "", "", "", "", "", "", "", "", ""])
        for mode_name in ("embedded", "streaming"):
            if mode_name not in row:
                continue
            run_ = row[mode_name]
            phases = run_["phases"]
            is_streaming = mode_name == "streaming"
            table.append([
                "",
                mode_name + (f" (sync every {row['sync_every']})" if is_streaming else ""),
                f"{run_['seconds']:.2f}",
                f"{phases['transfer']:.2f}",
                f"{phases['persist']:.2f}",
                f"{phases['verify']:.2f}",
                f"{phases['restore']:.2f}",
                f"{ratio(run_['seconds'], row['raw_write_fsync_seconds']):.2f}",
                f"{row['seconds_ratio']:.2f}" if is_streaming and "embedded" in row else "",
                f"{run_['traced_transfer_extra'] / MIB:,.1f}",
                f"{row['traced_transfer_ratio']:.3f}" if is_streaming and "embedded" in row else "",
                f"{run_['rss_transfer_extra'] / MIB:,.1f}",
                f"{row['rss_transfer_ratio']:.3f}" if is_streaming and row.get("rss_transfer_ratio") else "",
            ])
    print_table(
        "A 4th node joins and catches up by snapshot (wall seconds; memory in MiB)",
        ["state", "mode", "join→caught up", "transfer", "persist", "verify", "restore", "÷ raw",
         "÷ embedded", "traced extra", "ratio", "RSS extra", "ratio"],
        table,
        "Streaming: disk stores, chunk " + (size_label(rows[0]["chunk_size"]) if rows else "?")
        + ". Memory = extra peak from the join until the install began (the transfer), tracemalloc "
        "and resident set; ÷ raw: the join over a raw write+fsync of as many bytes on the same disk, "
        "measured between the joins.\nTarget: Streaming, 1 GiB, under 10 s and <= 2x raw write+fsync.",
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "child":
        child_main(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[16 * MIB, 256 * MIB, GIB])
    parser.add_argument("--chunk", type=parse_size, default=MIB)
    parser.add_argument("--sync-every", type=int, default=1, help="chunks a receiver writes per fsync")
    parser.add_argument("--modes", nargs="+", default=["embedded", "streaming"], choices=["embedded", "streaming"])
    parser.add_argument("--dir", type=Path, default=None, help="where disk stores go (default: a temp dir)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if "streaming" not in args.modes:
        parser.error("--modes must include streaming (the figure is the streamed join)")
    folder = Path(tempfile.mkdtemp(prefix="raftsim-recovery-", dir=args.dir))
    try:
        rows = [measure_size(size, args.chunk, folder, args.sync_every, tuple(args.modes)) for size in args.sizes]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report(rows)
    write_json(args.json, "recovery", ["benchmarks/recovery.py", *argv], {"recovery": rows})


def child_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["embedded", "streaming"], required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--chunk", type=int, required=True)
    parser.add_argument("--measure", choices=["time", "memory"], required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--sync-every", type=int, default=1)
    args = parser.parse_args(argv)
    print(json.dumps(recover(args.mode, args.size, args.chunk, args.dir, args.measure, args.sync_every)))


if __name__ == "__main__":
    main()
