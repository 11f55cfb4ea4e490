"""Node join: a fourth node joins a cluster whose log was compacted, and catches up by snapshot.

Run it with ``python -m scenarios.node_join [--mode embedded|streaming] [--seed N]
[--workflows N] [--payload BYTES] [--chunk-size BYTES]``.

Three nodes run the seed's workflow executor on virtual time. They take a
few hundred workflow commands and compact their logs, so the entries a
newcomer would need are gone. A fourth node starts empty, joins as a
learner, receives the leader's snapshot — embedded whole in the Raft
message, or streamed out of band in checksummed chunks — installs it,
catches up on the entries after it, and is promoted to voter. The same
seed prints the same story and trace hash, every time.
"""

from __future__ import annotations

import argparse

from simulator import Cluster, CompactionPolicy, WorkflowExecutor, run
from transports import Constant, Embedded, LinkConfig, Streaming

#: 1 ms latency, 100 Mbit/s: a large snapshot visibly occupies the link.
LINK = LinkConfig(latency=Constant(0.001), bandwidth=12_500_000)


def describe(cluster: Cluster) -> str:
    lines = []
    for node_id in cluster.node_ids:
        stats = cluster.statistics(node_id)
        storage = cluster.storage(node_id)
        lines.append(
            f"    n{node_id}: {stats.role.value:<9} term {stats.term}  commit {stats.commit:>4}  "
            f"applied {stats.applied:>4}  snapshot {storage.snapshot_metadata.index:>4}  "
            f"log {stats.first_index}..{stats.last_index}"
        )
    return "\n".join(lines)


async def node_join(seed: int, workflows: int, payload: int, mode) -> int:
    async with Cluster.open(
        nodes=3,
        seed=seed,
        link=LINK,
        snapshot_mode=mode,
        compaction=CompactionPolicy(every=100, keep_entries=20),
    ) as cluster:
        leader = await cluster.wait_for_leader()
        print(f"[{cluster.now():7.3f}s] n{leader} leads term {cluster.statistics(leader).term}")

        for number in range(workflows):
            await cluster.propose(
                WorkflowExecutor.start(f"wf-{number}", ["fetch", "build", "ship"], b"x" * payload)
            )
        await cluster.wait_caught_up()
        print(f"[{cluster.now():7.3f}s] {workflows} workflows started and applied everywhere;")
        print("             every node compacted its log into a snapshot:")
        print(describe(cluster))

        print(f"\n[{cluster.now():7.3f}s] a new, empty node joins as a learner")
        newcomer = await cluster.add_node()
        for record in cluster.trace.of_kind("snapshot_sent", "snapshot_installed"):
            if record.get("to") == newcomer or record.node == newcomer:
                what = "sent" if record.kind == "snapshot_sent" else "installed"
                who = f"n{record.node}" if what == "sent" else f"n{newcomer}"
                print(
                    f"[{record.time:7.3f}s] {who} {what} snapshot {record.get('index')} "
                    f"({record.get('size'):,} bytes)"
                )
        for transfer in cluster.transfers():
            if transfer.to == newcomer:
                print(
                    f"             {transfer.mode} transfer: {transfer.bytes_sent:,} bytes sent, "
                    f"{transfer.resent_bytes:,} re-sent, {transfer.retries} retries, "
                    f"{transfer.updated_at - transfer.started_at:.3f} s"
                )
        peak = cluster.snapshot_memory()[newcomer][1]
        print(f"             most snapshot bytes n{newcomer} held in memory at once: {peak:,}")
        print(f"[{cluster.now():7.3f}s] n{newcomer} caught up and was promoted to voter:")
        await cluster.wait_caught_up()
        print(describe(cluster))

        digests = {cluster.state_machine(n).digest() for n in cluster.node_ids}
        same = len(digests) == 1
        print(f"\nall {len(cluster.node_ids)} nodes hold the same workflow state: {same}")
        print(f"invariant checks passed: {cluster.monitor.checks:,}")
        print(f"trace: {len(cluster.trace):,} events, sha256 {cluster.trace.sha256()}")
        return 0 if same else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="run seed (same seed, same story)")
    parser.add_argument("--workflows", type=int, default=300, help="workflows started before the join")
    parser.add_argument("--payload", type=int, default=1024, help="payload bytes per workflow")
    parser.add_argument("--mode", choices=("embedded", "streaming"), default="embedded",
                        help="how the snapshot travels")
    parser.add_argument("--chunk-size", type=int, default=64 * 1024,
                        help="bytes per chunk when streaming")
    args = parser.parse_args(argv)
    if args.workflows < 1 or args.payload < 0 or args.chunk_size < 1:
        parser.error("--workflows must be >= 1, --payload >= 0 and --chunk-size >= 1")
    mode = Embedded() if args.mode == "embedded" else Streaming(chunk_size=args.chunk_size)
    return run(node_join, args.seed, args.workflows, args.payload, mode)


if __name__ == "__main__":
    raise SystemExit(main())
