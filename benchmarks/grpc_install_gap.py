"""How long a gRPC node's trio loop stands still while it installs a large streamed snapshot.

    python benchmarks/grpc_install_gap.py [--size 512MiB] [--chunk 1MiB] [--repeats 2] [--warm]
                                          [--dir DIR] [--json FILE]

One process serves a SIZE-byte snapshot from a disk store with the node's own
``SnapshotTransfer`` service (``grpc_stream_peer.py serve``); another pulls it
with the node's own ``SnapshotPuller`` into a durable disk store, while a trio
task beside it asks to wake every 10 ms and records how late it woke: the
longest time the node's loop answered nothing (no heartbeat, no Raft message),
over the whole pull and within the commit.
Two ways to commit, alternating repeat by repeat, each in a fresh process:

- **inline** (the baseline, as before): ``writer.commit()`` on the trio
  thread, so the disk store's read-back and hash of every byte stop the loop;
- **read-back on a thread** (now): ``SnapshotPuller._commit``, the read-back
  on a worker thread and only the publish on the loop.

Before the read-back the received file is dropped from the page cache
(``posix_fadvise(DONTNEED)``; its pages are clean, the store fsynced them),
as for a snapshot larger than the memory left for caching; ``--warm`` keeps
it cached. Reported per mode (medians): the loop's longest lateness over the
whole pull, the commit's wall time, and the pull's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import MIB, parse_size, print_table, ratio, size_label, write_json  # noqa: E402
from grpc_stream_peer import offer_and_channel  # noqa: E402

PEER = str(Path(__file__).with_name("grpc_stream_peer.py"))
MODES = ("inline", "thread")
#: How often the watching task asks to wake, in seconds.
TICK = 0.01


def pull(mode: str, chunk: int, folder: str, address: str, metadata: str, cold: bool) -> None:
    """The receiving process: pull the offered snapshot, watching the loop; print one JSON line."""
    import trio

    from simulator.snapshots import DiskSnapshotStore
    from transports.grpc.events import EventLog
    from transports.grpc.snapshot_pull import SnapshotPuller

    class ColdStore(DiskSnapshotStore):
        def _check_written(self, path, *args, **kwargs):
            if cold and str(path).endswith(".partial"):
                descriptor = os.open(path, os.O_RDONLY)
                try:
                    os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(descriptor)
            return super()._check_written(path, *args, **kwargs)

    commits: list[tuple[float, float]] = []  # (start, end) of each commit, trio's clock

    class Puller(SnapshotPuller):
        async def _commit(self, pull, writer) -> bool:
            started = trio.current_time()
            try:
                if mode == "inline":  # the baseline: how the puller committed before
                    writer.commit()
                    return True
                return await super()._commit(pull, writer)
            finally:
                commits.append((started, trio.current_time()))

    store = ColdStore(Path(folder) / "receiver", chunk_size=chunk)
    offer, channel = offer_and_channel(metadata, address)

    async def watch(sleeps: list[tuple[float, float]]) -> None:
        while True:
            before = trio.current_time()
            await trio.sleep(TICK)
            sleeps.append((before, trio.current_time()))

    async def main() -> tuple[float, list[tuple[float, float]]]:
        done, sleeps = trio.Event(), []
        puller = Puller(2, store, EventLog(2), channel_to=lambda peer: channel, deliver=lambda message: done.set())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(puller.run)
            await trio.sleep(0.05)  # the puller's nursery is open
            nursery.start_soon(watch, sleeps)
            started = time.perf_counter()
            puller.on_offer(offer)
            await done.wait()
            seconds = time.perf_counter() - started
            await trio.sleep(3 * TICK)  # the watcher wakes from a stall at the commit's end and counts it
            nursery.cancel_scope.cancel()
        return seconds, sleeps

    seconds, sleeps = trio.run(main)
    assert store.has_snapshot(offer.snapshot.metadata.index), "the pull ended without a verified snapshot"
    channel.close()
    (commit_start, commit_end), = commits
    during = [woke - before - TICK for before, woke in sleeps if before < commit_end and woke > commit_start]
    print(json.dumps({"seconds": seconds, "longest_loop_gap": max(woke - before - TICK for before, woke in sleeps),
                      "longest_loop_gap_in_commit": max(during, default=0.0),
                      "commit_seconds": commit_end - commit_start}), flush=True)


def _last_json(process: subprocess.Popen, timeout: float = 1200) -> dict:
    out, err = process.communicate(input="" if process.stdin else None, timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"benchmark process failed ({process.returncode}): {err.strip()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=512 * MIB)
    parser.add_argument("--chunk", type=parse_size, default=MIB)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--warm", action="store_true", help="keep the received file in the page cache")
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temporary directory)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    folder = Path(tempfile.mkdtemp(prefix="raftsim-bench-", dir=args.dir))
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    loads: list[tuple[float, ...]] = []
    server = subprocess.Popen([sys.executable, PEER, "serve", "disk", str(args.size), str(args.chunk), str(folder)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        hello = json.loads(server.stdout.readline())
        for _ in range(args.repeats):
            for mode in MODES:
                shutil.rmtree(folder / "receiver", ignore_errors=True)
                child = subprocess.Popen(
                    [sys.executable, __file__, "pull", mode, str(args.chunk), str(folder), hello["address"],
                     json.dumps(hello["metadata"]), "warm" if args.warm else "cold"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                runs[mode].append(_last_json(child))
                loads.append(os.getloadavg())
    finally:
        _last_json(server)
        shutil.rmtree(folder, ignore_errors=True)
    results = []
    for mode in MODES:
        gaps = [run["longest_loop_gap"] for run in runs[mode]]
        results.append({"mode": mode, "size": args.size, "chunk_size": args.chunk, "cold": not args.warm,
                        "longest_loop_gap": statistics.median(gaps), "all_longest_loop_gaps": gaps,
                        "longest_loop_gap_in_commit": statistics.median(
                            run["longest_loop_gap_in_commit"] for run in runs[mode]),
                        "commit_seconds": statistics.median(run["commit_seconds"] for run in runs[mode]),
                        "pull_seconds": statistics.median(run["seconds"] for run in runs[mode]),
                        "all_runs": runs[mode]})
    baseline = results[0]["longest_loop_gap"]
    for row in results:
        row["gap_ratio_to_inline"] = ratio(row["longest_loop_gap"], baseline)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print_table(
        f"Longest stall of a gRPC node's loop while it pulls a {size_label(args.size)} snapshot "
        f"({'cold' if not args.warm else 'warm'} read-back, {args.repeats} repeats, medians)",
        ["commit", "longest loop gap (ms)", "gap vs inline", "longest gap in commit (ms)", "commit (s)", "pull (s)",
         "load avg"],
        [[row["mode"], f"{row['longest_loop_gap'] * 1000:,.0f}", f"{row['gap_ratio_to_inline']:.3f}x",
          f"{row['longest_loop_gap_in_commit'] * 1000:,.0f}",
          f"{row['commit_seconds']:.2f}", f"{row['pull_seconds']:.2f}", load] for row in results])
    write_json(args.json, "grpc_install_gap", ["benchmarks/grpc_install_gap.py", *(argv or sys.argv[1:])],
               {"gap": results, "load_averages": loads})
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["pull"]:
        mode, chunk, folder, address, metadata, temperature = sys.argv[2:8]
        pull(mode, int(chunk), folder, address, metadata, temperature == "cold")
    else:
        sys.exit(main())
