"""A new node catching up a large state, process to process: raftsim over gRPC beside pysyncobj 0.3.17.

    python benchmarks/grpc_catch_up.py [--size 200MB] [--chunk 1MiB] [--skip-pysyncobj] [--json FILE]

Both sides, in the same run, on 127.0.0.1, every node its own OS process:

- **raftsim**: two ``transports.grpc.node`` processes (streaming mode, disk
  stores, sqlite Raft storage) take SIZE bytes of key-value state in 1 MiB
  puts; the leader compacts; a third process starts empty and is added as a
  learner (``AddNode``); it pulls the snapshot in chunks and installs it. The
  time is from starting the new process to its having applied the leader's
  commit index; the transfer alone is timed by the receiver's own log.
  Then the same again with the stream cut by the fault proxy after chunk
  ``--cut-after`` (bytes sent again, and the extra time, are the cost).
- **pysyncobj**: two ``pysyncobj_node.py`` processes take the same bytes in
  32 KiB puts (a larger command breaks pysyncobj's transport), the leader
  forces its file-based full dump (pickle + gzip), a third process starts
  empty and catches up over pysyncobj's own TCP: from its start to having
  applied the leader's commit index.

Memory: the resident memory of the sender (its peak above where it stood
before the transfer: ``/proc/PID/clear_refs``) and of the receiver while it
pulls, sampled every 20 ms; after installing, the receiver's state machine
holds the whole state in memory on both sides, by design.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import MIB, parse_size, print_table, ratio, write_json  # noqa: E402

from simulator import KeyValueStore  # noqa: E402
from simulator.realnet import ProcessCluster  # noqa: E402
from transports import Streaming  # noqa: E402

VALUE = MIB
PYSYNCOBJ_VALUE = 32 * 1024
NODE = str(Path(__file__).with_name("pysyncobj_node.py"))


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _peak(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def raftsim_catch_up(size: int, chunk: int, folder: Path, cut_after: int | None) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    mode = Streaming(chunk_size=chunk)
    async with ProcessCluster.open(2, workdir=folder, snapshot_mode=mode, chunks_in_flight=4,
                                   state_machine="simulator:KeyValueStore", proxied=cut_after is not None,
                                   timeout_scale=10) as cluster:
        leader = await cluster.wait_for_leader(timeout=30)
        for number in range(-(-size // VALUE)):
            value = random.Random(number).randbytes(min(VALUE, size - number * VALUE))
            await cluster.propose(KeyValueStore.put(f"k{number}", value), timeout=60)
        await cluster.wait_caught_up(timeout=120)
        leader = cluster.leader_id()
        cluster.compact(leader)
        newcomer = max(cluster.node_ids) + 1
        if cut_after is not None:
            cluster.fail_chunk(cut_after, "cut", to=newcomer)
        sender_pid = cluster.processes[leader].pid
        sender_before = _rss(sender_pid)
        Path(f"/proc/{sender_pid}/clear_refs").write_text("5")  # the peak from here on
        samples: list[tuple[float, int]] = []

        async def sample() -> None:
            while True:
                process = cluster.processes.get(newcomer)
                if process is not None and process.is_up:
                    samples.append((cluster.now(), _rss(process.pid)))
                await trio.sleep(0.02)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            started = time.perf_counter()
            await cluster.add_node(promote=False, timeout=600)
            seconds = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        [transfer] = [t for t in cluster.transfers() if t.to == newcomer]
        # Until the receiver verified the last byte (its own log stamp; Raft restores the state after it).
        pulling = [rss for when, rss in samples if transfer.started_at <= when <= transfer.updated_at]
        # Where the receiver stood when its pull began (after its imports and start-up).
        before = [rss for when, rss in samples if when <= transfer.started_at] or pulling[:1] or [0]
        digests = {cluster.state_machine(n).digest() for n in cluster.node_ids}
        return {
            "seconds": seconds, "transfer_seconds": transfer.updated_at - transfer.started_at,
            "snapshot_bytes": transfer.size, "bytes_sent": transfer.bytes_sent,
            "resent_bytes": transfer.resent_bytes, "retries": transfer.retries,
            "sender_rss_before": sender_before, "sender_peak_rss": _peak(sender_pid),
            "receiver_rss_at_pull_start": before[-1] if before else 0,
            "receiver_rss_while_pulling_max": max(pulling, default=0),
            "receiver_rss_after": _rss(cluster.processes[newcomer].pid),
            "states_equal": len(digests) == 1,
        }


def _free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


class _Node:
    def __init__(self, address: str, partners: list[str], folder: Path) -> None:
        self.process = subprocess.Popen([sys.executable, NODE, address, ",".join(partners), str(folder)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"pysyncobj node exited ({self.process.poll()}) on {command!r}")
        return json.loads(line)


def pysyncobj_catch_up(size: int, folder: Path, patience: float) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    addresses = [_free_address() for _ in range(3)]
    nodes = {}

    def start(number: int) -> _Node:
        node = nodes[number] = _Node(addresses[number], [a for a in addresses if a != addresses[number]],
                                     folder / f"node-{number}")
        return node

    try:
        first, second = start(0), start(1)
        deadline = time.monotonic() + patience
        while (status := first.ask("status"))["leader"] in ("None", "") and time.monotonic() < deadline:
            time.sleep(0.05)
        leader = first if status["leader"] == addresses[0] else second
        leader.ask(f"load {-(-size // PYSYNCOBJ_VALUE)} {PYSYNCOBJ_VALUE}")
        dump = leader.ask("compact")["dump_bytes"]
        target = leader.ask("status")["commit_idx"]
        sender_before = leader.ask("status")["rss"]
        leader.ask("reset-peak")
        started = time.perf_counter()
        newcomer = start(2)
        pulling = []
        while time.monotonic() < deadline + patience:
            status = newcomer.ask("status")
            pulling.append(status["rss"])
            if status.get("last_applied", 0) >= target:
                break
            time.sleep(0.02)
        else:
            raise RuntimeError(f"pysyncobj's new node did not catch up within {2 * patience:g} s")
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "dump_bytes": dump, "sender_rss_before": sender_before,
                "sender_peak_rss": leader.ask("status")["peak_rss"],
                "receiver_rss_while_pulling_max": max(pulling[:-1], default=0),
                "receiver_rss_after": status["rss"], "keys": status["keys"]}
    finally:
        for node in nodes.values():
            node.process.kill()
            node.process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=200 * 1000 * 1000)
    parser.add_argument("--chunk", type=parse_size, default=MIB)
    parser.add_argument("--repeats", type=int, default=1, help="raftsim runs (pysyncobj runs once: it is slow)")
    parser.add_argument("--cut-after", type=int, default=10, help="chunk after which the cut run cuts the stream")
    parser.add_argument("--skip-pysyncobj", action="store_true")
    parser.add_argument("--patience", type=float, default=1800.0, help="seconds pysyncobj gets per phase")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="raftsim-catch-up-"))
    try:
        ours = [trio.run(raftsim_catch_up, args.size, args.chunk, scratch / "raftsim", None)
                for _ in range(args.repeats)]
        cut = trio.run(raftsim_catch_up, args.size, args.chunk, scratch / "raftsim-cut", args.cut_after)
        theirs = None if args.skip_pysyncobj else pysyncobj_catch_up(args.size, scratch / "pysyncobj", args.patience)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    median = statistics.median(run["seconds"] for run in ours)
    best = min(ours, key=lambda run: abs(run["seconds"] - median))
    results = {"size": args.size, "chunk_size": args.chunk, "raftsim": ours, "raftsim_median_seconds": median,
               "raftsim_with_cut": cut, "pysyncobj": theirs,
               "speedup_over_pysyncobj": ratio(theirs["seconds"], median) if theirs else None,
               "cut_extra_seconds": cut["seconds"] - median, "cut_resent_bytes": cut["resent_bytes"]}
    rows = [["raftsim over gRPC (streaming, disk)", f"{median:.2f}", f"{best['transfer_seconds']:.2f}",
             f"{best['snapshot_bytes'] / 1e6:,.0f} MB", "0",
             f"{(best['sender_peak_rss'] - best['sender_rss_before']) / MIB:,.0f} MiB",
             f"{best['receiver_rss_while_pulling_max'] / MIB:,.0f} MiB "
             f"(+{(best['receiver_rss_while_pulling_max'] - best['receiver_rss_at_pull_start']) / MIB:,.0f})"],
            [f"  same, stream cut after chunk {args.cut_after}", f"{cut['seconds']:.2f}",
             f"{cut['transfer_seconds']:.2f}", f"{cut['bytes_sent'] / 1e6:,.0f} MB sent",
             f"{cut['resent_bytes'] / MIB:,.1f} MiB", "", ""]]
    if theirs:
        rows.append(["pysyncobj 0.3.17 (own TCP, file dump)", f"{theirs['seconds']:.2f}", "",
                     f"{theirs['dump_bytes'] / 1e6:,.0f} MB dump", "",
                     f"{(theirs['sender_peak_rss'] - theirs['sender_rss_before']) / MIB:,.0f} MiB",
                     f"{theirs['receiver_rss_while_pulling_max'] / MIB:,.0f} MiB"])
    note = (f"raftsim is {results['speedup_over_pysyncobj']:.1f}x faster than pysyncobj" if theirs else "")
    print_table(f"A new node catches up {args.size / 1e6:,.0f} MB of state, process to process on 127.0.0.1",
                ["", "catch-up s", "transfer s", "bytes", "re-sent", "sender memory growth",
                 "receiver memory while pulling"], rows, note=note)
    write_json(args.json, "grpc_catch_up", ["benchmarks/grpc_catch_up.py", *(argv or sys.argv[1:])], results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
