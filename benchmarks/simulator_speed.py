"""How fast the simulator runs a standard workload, beside a baseline measured in the same run.

Workload: N voters, heartbeats every tick (0.1 s), one client proposing a
64-byte workflow command every 0.1 s of virtual time, log compaction every
500 entries. For each cluster size it reports

- delivered messages per wall second and virtual seconds per wall second
  for the trio ``Cluster`` (with and without per-message trace records);
- the same workload on the synchronous harness (``simulator.testing``: the
  bare Raft cores, no trio, no transport, no trace) as the baseline, and the
  ratio cluster / baseline, which is what to compare across machines.

Run: ``python benchmarks/simulator_speed.py [--virtual-seconds 300] [--hour]``.
``--hour`` also runs one hour of 5-node cluster life and reports its wall time.
"""

from __future__ import annotations

import argparse
import time

from simulator import Cluster, CompactionPolicy, WorkflowExecutor, run
from simulator.schedules import steady_load
from simulator.testing import Network

TICK = 0.1


def command(number: int) -> bytes:
    return WorkflowExecutor.start(f"wf-{number}", ["a", "b"], b"p" * 64)


def cluster_speed(nodes: int, virtual_seconds: float, record_messages: bool) -> tuple[float, float, int]:
    """(messages per wall second, virtual seconds per wall second, messages delivered)."""
    measured = {}

    async def main() -> None:
        async with Cluster.open(
            nodes=nodes,
            seed=1,
            tick_interval=TICK,
            compaction=CompactionPolicy(every=500, keep_entries=100),
            record_messages=record_messages,
        ) as cluster:
            started = time.perf_counter()
            virtual_start = cluster.now()
            await steady_load(cluster, duration=virtual_seconds, interval=TICK, command=command)
            wall = time.perf_counter() - started
            delivered = cluster.transport.statistics().messages_delivered
            measured["result"] = (delivered / wall, (cluster.now() - virtual_start) / wall, delivered)

    run(main)
    return measured["result"]


def harness_speed(nodes: int, virtual_seconds: float) -> tuple[float, float, int]:
    """The same workload on the synchronous harness: ticks, one proposal per tick, deliver all."""
    net = Network(range(1, nodes + 1), seed=1, check_invariants=False)
    started = time.perf_counter()
    ticks = int(virtual_seconds / TICK)
    number = 0
    for _ in range(ticks):
        net.tick_all()
        leader = net.leader_id()
        if leader is not None:
            number += 1
            net.propose(leader, command(number))
        net.stabilize()
        if leader is not None:
            applied = net.node(leader).raft.raft_log.applied
            if applied - net.nodes[leader].storage.snapshot_metadata.index >= 500:
                for node_id in net.live_ids():
                    net.compact(node_id)
    wall = time.perf_counter() - started
    return net.delivered / wall, virtual_seconds / wall, net.delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--virtual-seconds", type=float, default=300.0)
    parser.add_argument("--hour", action="store_true", help="also run one hour of 5-node life")
    args = parser.parse_args()
    seconds = args.virtual_seconds

    print(f"workload: {seconds:.0f} virtual s, tick {TICK} s, one proposal per tick\n")
    header = (
        f"{'nodes':>5} {'variant':<28} {'msgs/wall s':>12} {'virt s/wall s':>14} {'delivered':>10}"
    )
    print(header)
    print("-" * len(header))
    for nodes in (3, 5, 7):
        base_rate, base_speed, base_count = harness_speed(nodes, seconds)
        print(f"{nodes:>5} {'baseline: sync harness':<28} {base_rate:>12,.0f} {base_speed:>14,.1f} {base_count:>10,}")
        for record_messages in (False, True):
            rate, speed, count = cluster_speed(nodes, seconds, record_messages)
            label = "cluster, trace " + ("with messages" if record_messages else "events only")
            print(
                f"{nodes:>5} {label:<28} {rate:>12,.0f} {speed:>14,.1f} {count:>10,}"
                f"   ratio to baseline {rate / base_rate:.2f}"
            )
    if args.hour:
        for record_messages in (False, True):
            started = time.perf_counter()
            _, _, count = cluster_speed(5, 3600.0, record_messages)
            wall = time.perf_counter() - started
            trace = "with messages" if record_messages else "events only"
            print(f"\none hour of 5-node life, trace {trace}: {wall:.1f} wall s, {count:,} messages")


if __name__ == "__main__":
    main()
