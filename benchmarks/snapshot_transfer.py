"""Embedded vs Streaming: what moving one snapshot to a joining node costs, side by side.

For each snapshot size, the same run (seed, workload, 100 Mbit/s links with
1 ms latency) in both modes: a 3-node cluster takes workflows with 1 MiB
payloads until its state is that large, compacts, and a 4th node joins.
Reported per mode: virtual seconds the transfer took, bytes on the wire for
the snapshot (Raft snapshot messages plus stream chunks), the most snapshot
bytes the receiver and the sender held in memory at once, and wall seconds
of the whole run. The last column is Streaming / Embedded for receiver
memory: the figure the seed's design exists to shrink.

Run: ``python benchmarks/snapshot_transfer.py [--sizes 1 10 100] [--chunk-size 1048576] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchlib import print_table, ratio, write_json

from simulator import Cluster, CompactionPolicy, WorkflowExecutor, run
from transports import Constant, Embedded, LinkConfig, Streaming

MIB = 1024 * 1024
LINK = LinkConfig(latency=Constant(0.001), bandwidth=12_500_000)


def measure(size_mib: int, mode) -> dict:
    result = {}

    async def main() -> None:
        started = time.perf_counter()
        async with Cluster.open(
            nodes=3,
            seed=1,
            link=LINK,
            snapshot_mode=mode,
            compaction=CompactionPolicy(),  # on demand, once the whole state is in
            record_messages=False,
        ) as cluster:
            leader = await cluster.wait_for_leader()
            payload = b"p" * MIB
            for number in range(size_mib):
                await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["a"], payload), timeout=120)
            await cluster.wait_caught_up(timeout=120)
            for node_id in cluster.up_nodes():
                cluster.compact(node_id)
            newcomer = await cluster.add_node(timeout=600)
            await cluster.wait_caught_up(timeout=120)
            transfer = next(t for t in cluster.transfers() if t.to == newcomer)
            kinds = {}
            for (src, dst), link in cluster.transport.statistics().links:
                if dst == newcomer:
                    for kind, _, sent_bytes in link.by_kind:
                        kinds[kind] = kinds.get(kind, 0) + sent_bytes
            memory = cluster.snapshot_memory()
            result.update(
                size=transfer.size,
                seconds=transfer.updated_at - transfer.started_at,
                wire=kinds.get("snapshot", 0) + kinds.get("snapshot_chunk", 0),
                receiver_peak=memory[newcomer][1],
                sender_peak=memory[leader][1],
                wall=time.perf_counter() - started,
            )

    run(main)
    return result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100], help="MiB of state")
    parser.add_argument("--chunk-size", type=int, default=MIB)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    rows, table = [], []
    for size in args.sizes:
        embedded = measure(size, Embedded())
        streaming = measure(size, Streaming(chunk_size=args.chunk_size))
        row = {
            "state_mib": size,
            "chunk_size": args.chunk_size,
            "embedded": embedded,
            "streaming": streaming,
            "receiver_peak_ratio": ratio(streaming["receiver_peak"], embedded["receiver_peak"]),
            "sender_peak_ratio": ratio(streaming["sender_peak"], embedded["sender_peak"]),
        }
        rows.append(row)
        for name, figures in (("embedded", embedded), ("streaming", streaming)):
            is_streaming = name == "streaming"
            table.append([
                f"{size} MiB" if not is_streaming else "", name, f"{figures['size']:,}",
                f"{figures['seconds']:.3f}", f"{figures['wire']:,}", f"{figures['receiver_peak']:,}",
                f"{figures['sender_peak']:,}", f"{figures['wall']:.2f}",
                f"{row['receiver_peak_ratio']:.4f}" if is_streaming else "",
            ])
    print_table(
        f"Embedded vs Streaming, links 100 Mbit/s and 1 ms; streaming chunk size {args.chunk_size:,} bytes",
        ["state", "mode", "snapshot", "transfer s (virtual)", "wire bytes", "recv peak", "send peak",
         "wall s", "recv peak ratio"],
        table,
        "Peaks: the most snapshot bytes the node held at once (cluster.snapshot_memory()).",
    )
    write_json(args.json, "snapshot_transfer", ["benchmarks/snapshot_transfer.py", *argv], {"modes": rows})


if __name__ == "__main__":
    main()
