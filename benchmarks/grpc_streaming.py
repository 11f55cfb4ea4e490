"""Streaming a snapshot between two OS processes over gRPC on loopback, beside raw TCP and raw write+fsync.

    python benchmarks/grpc_streaming.py [--size 256MiB] [--chunks 1MiB,4MiB] [--stores memory,disk]
                                        [--repeats 3] [--in-flight 64] [--json FILE]

For each store kind and chunk size, in the same run and interleaved
repeat by repeat (medians reported):

- **gRPC**: one process serves a snapshot with the node's own
  ``SnapshotTransfer`` service, another pulls it with the node's own
  ``SnapshotPuller`` (per-chunk checksum, durable progress, digest at
  commit) into a store of the same kind (``grpc_stream_peer.py``);
- **bare grpcio**: a server-streaming call of ready-made chunk-sized
  messages between two processes, read by a plain loop: what grpcio itself
  allows, with none of our bookkeeping (attributes the gap to raw TCP);
- **raw TCP, memory to memory**: the same number of bytes over one plain
  TCP connection between two processes, sent from memory and read into a
  reused buffer, in pieces of the chunk size: what loopback can do;
- **raw write+fsync, disk to disk**: the same bytes read from a file, sent
  over plain TCP, written to a file and fsynced once at the end: what
  disk-to-disk can do without any protocol.
- **bare grpcio + receiver work**: the same, with the per-byte work any
  verifying receiver must do added to the plain loop (see the floor below):
  the ceiling a gRPC pull can be held to on this machine;
- **verification floor**: no network: a receiver's per-byte work that no
  design can skip (CRC-32C per chunk, the snapshot's running digest as the store computes it
  (BLAKE3), one
  copy into memory it keeps) on one thread: where the time goes that is
  not the transport's.

Then (unless ``--no-bare-variants``) a second table: grpcio alone with
2 and 4 concurrent streams over one channel and over separate channels
(TCP connections), 16 MiB messages, the HTTP/2 options grpcio has
(max frame size, lookahead, BDP probe, write buffer, TCP read size), and with a
receiver's per-byte work, each beside raw TCP in the same repeats: what
any gRPC design in Python can reach on this machine.

Targets: memory stores >= 0.5x raw TCP; disk stores >= 0.8x raw
write+fsync; and > 100 MB/s.
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
from pathlib import Path

import attrs

from benchlib import MIB, parse_size, print_table, ratio, size_label, write_json
from relay import snapshot_blocks

PEER = str(Path(__file__).with_name("grpc_stream_peer.py"))


def _child(*args: str, stdin=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, PEER, *map(str, args)], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _last_json(process: subprocess.Popen, timeout: float = 600) -> dict:
    # An empty input closes the child's stdin: a server child stops then.
    out, err = process.communicate(input="" if process.stdin else None, timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"benchmark peer failed ({process.returncode}): {err.strip()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def grpc_pull(kind: str, size: int, chunk: int, folder: Path, in_flight: int, sync_every: int = 1) -> dict:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    server = _child("serve", kind, size, chunk, folder, stdin=subprocess.PIPE)
    hello = json.loads(server.stdout.readline())
    try:
        puller = _child("pull", kind, chunk, folder, hello["address"], json.dumps(hello["metadata"]), in_flight,
                        sync_every)
        pulled = _last_json(puller)
    finally:
        served = _last_json(server)
    shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": pulled["seconds"], "receiver_cpu_seconds": pulled["cpu_seconds"],
            "receiver_peak_rss": pulled["peak_rss"], "sender_peak_rss": served["peak_rss"]}


def bare_grpc(size: int, chunk: int, streams: int = 1, channels: int = 1, options: str = "",
              verify: bool = False) -> dict:
    server = _child("bare-serve", size, chunk, options, stdin=subprocess.PIPE)
    address = json.loads(server.stdout.readline())["address"]
    try:
        pulled = _last_json(_child("bare-pull", address, size, streams, channels, options, int(verify)))
    finally:
        _last_json(server)
    return {"seconds": pulled["seconds"], "receiver_cpu_seconds": pulled["cpu_seconds"]}


@attrs.frozen
class BareVariant:
    """One way of moving the bytes with grpcio alone (``grpc_stream_peer.py bare-pull``)."""

    label: str
    streams: int = 1
    channels: int = 1
    options: str = ""  # grpc_stream_peer.BARE_OPTIONS, e.g. "frame=16777215,bdp=0"
    message: int | None = None  # message size, if not the row's chunk size
    verify: bool = False


#: The grpcio settings that moved bare grpcio most in trials (BDP probing off; the transport reading
#: the socket in pieces of 1 to 8 MiB instead of its small default).
TUNED = "bdp=0,read_chunk=1048576,min_read_chunk=1048576,max_read_chunk=8388608"

#: What grpcio allows on this machine, beyond one stream of chunk-sized messages: parallel
#: streams on one connection and on several, larger messages, the HTTP/2 knobs grpcio has,
#: and the same with a receiver's per-byte work (is the cost the transport's, or ours?).
BARE_VARIANTS = (
    BareVariant("1 stream (grpcio defaults)"),
    BareVariant("2 streams, 1 channel", streams=2),
    BareVariant("4 streams, 1 channel", streams=4),
    BareVariant("2 streams, 2 channels (2 TCP connections)", streams=2, channels=2),
    BareVariant("4 streams, 4 channels (4 TCP connections)", streams=4, channels=4),
    BareVariant("1 stream, 16 MiB messages", message=16 * MIB),
    BareVariant("1 stream, http2.max_frame_size 16 MiB", options="frame=16777215"),
    BareVariant("1 stream, http2.lookahead_bytes 64 MiB", options="lookahead=67108864"),
    BareVariant("1 stream, http2.bdp_probe off", options="bdp=0"),
    BareVariant("1 stream, http2.write_buffer_size 64 MiB", options="write_buffer=67108864"),
    BareVariant("1 stream, BDP probe off, TCP reads of 1-8 MiB", options=TUNED),
    BareVariant("1 stream + receiver work (CRC-32C, digest, copy)", verify=True),
    BareVariant("1 stream + receiver work, BDP probe off, TCP reads of 1-8 MiB", options=TUNED, verify=True),
    BareVariant("4 streams, 4 channels + receiver work", streams=4, channels=4, verify=True),
)


def bare_variants(size: int, chunks: list[int], repeats: int) -> tuple[list[dict], list[list[str]]]:
    """Every :data:`BARE_VARIANTS` row per chunk size, beside raw TCP measured in the same
    repeat (interleaved, medians): the ceiling a gRPC design can reach here."""
    results, rows = [], []
    for chunk in chunks:
        tcp, seconds, cpu = [], {variant.label: [] for variant in BARE_VARIANTS}, {v.label: [] for v in BARE_VARIANTS}
        for _ in range(repeats):
            tcp.append(raw_tcp(size, chunk, None)["seconds"])
            for variant in BARE_VARIANTS:
                pulled = bare_grpc(size, variant.message or chunk, variant.streams, variant.channels,
                                   variant.options, variant.verify)
                seconds[variant.label].append(pulled["seconds"])
                cpu[variant.label].append(pulled["receiver_cpu_seconds"])
        baseline = statistics.median(tcp)
        for variant in BARE_VARIANTS:
            median = statistics.median(seconds[variant.label])
            receiver_cpu = statistics.median(cpu[variant.label])
            results.append({"chunk_size": chunk, "variant": variant.label, **attrs.asdict(variant),
                            "seconds": median, "mb_per_s": size / median / 1e6,
                            "receiver_cpu_seconds": receiver_cpu, "all_receiver_cpu_seconds": cpu[variant.label],
                            "raw_tcp_seconds": baseline, "raw_tcp_mb_per_s": size / baseline / 1e6,
                            "ratio_to_raw_tcp": ratio(baseline, median), "all_seconds": seconds[variant.label],
                            "all_raw_tcp_seconds": tcp, "load_average": os.getloadavg()})
            rows.append([f"{size_label(chunk)} chunks", variant.label, f"{size / median / 1e6:,.0f}",
                         f"{receiver_cpu:.2f}",
                         f"{size / baseline / 1e6:,.0f}", f"{ratio(baseline, median):.2f}x",
                         " ".join(f"{value:.2f}" for value in os.getloadavg())])
    return results, rows


def verify_floor(size: int, chunk: int) -> dict:
    return {"seconds": _last_json(_child("verify-floor", size, chunk))["seconds"]}


def raw_tcp(size: int, piece: int, folder: Path | None) -> dict:
    source = target = None
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        source, target = folder / "source", folder / "target"
        with open(source, "wb") as file:
            for block in snapshot_blocks(size):
                file.write(block)
    receiver = _child("raw-receive", size, piece, *([target] if target else []))
    address = json.loads(receiver.stdout.readline())["address"]
    sender = _child("raw-send", address, size, piece, *([source] if source else []))
    received = _last_json(receiver)
    _last_json(sender)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    assert received["received"] == size
    return {"seconds": received["seconds"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=256 * MIB)
    parser.add_argument("--chunks", default="1MiB,4MiB", help="chunk sizes, comma-separated")
    parser.add_argument("--stores", default="memory,disk", help="memory, disk or both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=64,
                        help="chunks the receiver asks for per call (64: a node's default; its window is also at most 64 MiB)")
    parser.add_argument("--sync-every", type=int, default=1,
                        help="chunks per fsync of the receiving disk store (1: what a node does)")
    parser.add_argument("--dir", default=None, help="scratch folder on the disk to measure (default: a temp dir)")
    parser.add_argument("--no-bare-variants", action="store_true",
                        help="skip the table of grpcio alone with parallel streams and channels, larger "
                             "messages and HTTP/2 options")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    chunks = [parse_size(text) for text in args.chunks.split(",")]
    stores = args.stores.split(",")
    scratch = Path(args.dir or tempfile.mkdtemp(prefix="raftsim-grpc-bench-"))
    size = args.size
    rows, results = [], []
    for kind in stores:
        for chunk in chunks:
            pulled, tcp, disk, bare, bare_cpu, worked, floor = [], [], [], [], [], [], []
            for _ in range(args.repeats):
                pulled.append(grpc_pull(kind, size, chunk, scratch / "grpc", args.in_flight, args.sync_every))
                plain = bare_grpc(size, chunk)
                bare.append(plain["seconds"])
                bare_cpu.append(plain["receiver_cpu_seconds"])
                worked.append(bare_grpc(size, chunk, verify=True)["seconds"])
                tcp.append(raw_tcp(size, chunk, None)["seconds"])
                disk.append(raw_tcp(size, chunk, scratch / "raw")["seconds"])
                floor.append(verify_floor(size, chunk)["seconds"])
            seconds = statistics.median(p["seconds"] for p in pulled)
            baseline = statistics.median(tcp if kind == "memory" else disk)
            entry = {
                "store": kind, "chunk_size": chunk, "size": size, "repeats": args.repeats,
                "in_flight": args.in_flight, "sync_every": args.sync_every,
                "grpc_seconds": seconds, "grpc_mb_per_s": size / seconds / 1e6,
                "bare_grpcio_seconds": statistics.median(bare),
                "bare_grpcio_mb_per_s": size / statistics.median(bare) / 1e6,
                "bare_grpcio_with_receiver_work_seconds": statistics.median(worked),
                "bare_grpcio_with_receiver_work_mb_per_s": size / statistics.median(worked) / 1e6,
                "ratio_to_bare_grpcio_with_receiver_work": ratio(statistics.median(worked), seconds),
                "all_bare_grpcio_with_receiver_work_seconds": worked,
                "receiver_cpu_seconds": statistics.median(p["receiver_cpu_seconds"] for p in pulled),
                "bare_grpcio_receiver_cpu_seconds": statistics.median(bare_cpu),
                "raw_tcp_seconds": statistics.median(tcp), "raw_tcp_mb_per_s": size / statistics.median(tcp) / 1e6,
                "raw_write_fsync_seconds": statistics.median(disk),
                "raw_write_fsync_mb_per_s": size / statistics.median(disk) / 1e6,
                "baseline": "raw TCP memory to memory" if kind == "memory" else "raw write+fsync disk to disk",
                "ratio_to_baseline": ratio(baseline, seconds),
                "target_ratio": 0.5 if kind == "memory" else 0.8,
                "ratio_to_bare_grpcio": ratio(statistics.median(bare), seconds),
                "verify_floor_seconds": statistics.median(floor),
                "verify_floor_mb_per_s": size / statistics.median(floor) / 1e6,
                "all_verify_floor_seconds": floor,
                "load_average": os.getloadavg(),
                "sender_peak_rss": max(p["sender_peak_rss"] for p in pulled),
                "receiver_peak_rss": max(p["receiver_peak_rss"] for p in pulled),
                "all_grpc_seconds": [p["seconds"] for p in pulled], "all_raw_tcp_seconds": tcp,
                "all_bare_grpcio_seconds": bare,
                "all_raw_write_fsync_seconds": disk,
            }
            results.append(entry)
            rows.append([f"{kind}, {size_label(chunk)} chunks", f"{entry['grpc_mb_per_s']:,.0f}",
                         f"{entry['bare_grpcio_mb_per_s']:,.0f} ({entry['ratio_to_bare_grpcio']:.2f}x)",
                         f"{entry['bare_grpcio_with_receiver_work_mb_per_s']:,.0f} "
                         f"({entry['ratio_to_bare_grpcio_with_receiver_work']:.2f}x)",
                         f"{entry['receiver_cpu_seconds']:.2f} / {entry['bare_grpcio_receiver_cpu_seconds']:.2f}",
                         f"{entry['verify_floor_mb_per_s']:,.0f}",
                         f"{entry['raw_tcp_mb_per_s']:,.0f}", f"{entry['raw_write_fsync_mb_per_s']:,.0f}",
                         f"{entry['ratio_to_baseline']:.2f}x (target {entry['target_ratio']}x)",
                         f"{entry['sender_peak_rss'] / MIB:,.0f} / {entry['receiver_peak_rss'] / MIB:,.0f} MiB"])
    shutil.rmtree(scratch, ignore_errors=True) if args.dir is None else None
    print_table(f"Snapshot streaming between two processes over gRPC on loopback, {size_label(size)}, "
                f"median of {args.repeats}",
                ["store, chunk", "gRPC MB/s", "bare grpcio MB/s (gRPC / bare)",
                 "bare grpcio + receiver work MB/s (gRPC / it)", "receiver CPU s (gRPC / bare)",
                 "verification floor MB/s",
                 "raw TCP MB/s", "raw write+fsync MB/s", "ratio to baseline",
                 "peak RSS sender / receiver"], rows,
                note="memory rows compare with raw TCP memory to memory; disk rows with raw write+fsync; "
                     "'bare grpcio + receiver work' adds what any verifying receiver must do (CRC-32C per "
                     "chunk, the store's digest, one copy kept) to grpcio alone: the fair ceiling for a pull")
    variants = []
    if not args.no_bare_variants:
        variants, variant_rows = bare_variants(size, chunks, args.repeats)
        print_table(f"grpcio alone between two processes on loopback, {size_label(size)}, median of "
                    f"{args.repeats}, beside raw TCP in the same repeats: the ceiling of a gRPC design here",
                    ["chunks", "bare grpcio variant", "MB/s", "receiver CPU s", "raw TCP MB/s", "ratio to raw TCP",
                     "load average"],
                    variant_rows, note="streams: concurrent calls of equal ranges, one reading thread each; "
                                       "channels: separate TCP connections; receiver work: CRC-32C per message on "
                                       "its reading thread, the store's digest and a kept copy on one consumer")
    write_json(args.json, "grpc_streaming", ["benchmarks/grpc_streaming.py", *(argv or sys.argv[1:])],
               {"runs": results, "bare_grpcio_variants": variants})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
