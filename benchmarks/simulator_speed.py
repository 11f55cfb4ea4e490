"""How fast the simulator runs a standard workload, beside a baseline measured in the same run.

Workload: N voters, heartbeats every tick (0.1 s), one client proposing a
64-byte workflow command every 0.1 s of virtual time, log compaction every
500 entries. For each cluster size it reports

- delivered messages per wall second and virtual seconds per wall second
  for the trio ``Cluster`` (with and without per-message trace records);
- the same workload on the synchronous harness (``simulator.testing``: the
  bare Raft cores, no trio, no transport, no trace) as the baseline, and the
  ratio cluster / baseline, which is what to compare across machines.

Each rate is also given per CPU second of this process (``process_time``)
and as a CPU ratio: on a machine shared with other work, wall-clock rates
follow the load, CPU rates hold still. The load average goes in the JSON.

Targets (issue 21, cluster with trace events only): at least 60,000
delivered messages per wall second and at least 0.8 of the baseline measured
in the same run; one hour of 5-node life in under 20 wall seconds. Prints a
table; ``--json`` writes the figures.

Run: ``python benchmarks/simulator_speed.py [--virtual-seconds 300] [--nodes 3 5 7] [--hour] [--json out.json]``.
``--hour`` also runs one hour of 5-node cluster life and reports its wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from benchlib import print_table, ratio, write_json

from simulator import Cluster, CompactionPolicy, WorkflowExecutor, run
from simulator.explore.schedules import steady_load
from simulator.testing import Network

TICK = 0.1
TARGET_MESSAGES_PER_SECOND = 60_000
TARGET_RATIO = 0.8
TARGET_HOUR_SECONDS = 20.0
#: CPU seconds of the last measured run: on a shared machine, messages per CPU
#: second hold still where messages per wall second follow the load.
LAST_CPU_SECONDS = [0.0]


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
            started, cpu_started = time.perf_counter(), time.process_time()
            virtual_start = cluster.now()
            await steady_load(cluster, duration=virtual_seconds, interval=TICK, command=command)
            wall = time.perf_counter() - started
            measured["cpu"] = time.process_time() - cpu_started
            delivered = cluster.transport.statistics().messages_delivered
            measured["result"] = (delivered / wall, (cluster.now() - virtual_start) / wall, delivered)

    run(main)
    LAST_CPU_SECONDS[0] = measured["cpu"]
    return measured["result"]


def harness_speed(nodes: int, virtual_seconds: float) -> tuple[float, float, int]:
    """The same workload on the synchronous harness: ticks, one proposal per tick, deliver all."""
    net = Network(range(1, nodes + 1), seed=1, check_invariants=False)
    started, cpu_started = time.perf_counter(), time.process_time()
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
    LAST_CPU_SECONDS[0] = time.process_time() - cpu_started
    return net.delivered / wall, virtual_seconds / wall, net.delivered


def measure(nodes: int, virtual_seconds: float) -> dict:
    base_rate, base_speed, base_count = harness_speed(nodes, virtual_seconds)
    base_cpu_rate = base_count / LAST_CPU_SECONDS[0]
    row = {
        "nodes": nodes,
        "virtual_seconds": virtual_seconds,
        "baseline": {"messages_per_second": base_rate, "virtual_per_wall": base_speed, "delivered": base_count,
                     "messages_per_cpu_second": base_cpu_rate},
    }
    for record_messages, name in ((False, "events_only"), (True, "with_messages")):
        rate, speed, count = cluster_speed(nodes, virtual_seconds, record_messages)
        cpu_rate = count / LAST_CPU_SECONDS[0]
        row[name] = {
            "messages_per_second": rate,
            "virtual_per_wall": speed,
            "delivered": count,
            "ratio": ratio(rate, base_rate),
            "messages_per_cpu_second": cpu_rate,
            "cpu_ratio": ratio(cpu_rate, base_cpu_rate),
        }
    events_only = row["events_only"]
    row["target_met"] = (events_only["messages_per_second"] >= TARGET_MESSAGES_PER_SECOND
                         and events_only["ratio"] >= TARGET_RATIO)
    return row


def report(rows: list[dict]) -> None:
    table = []
    for row in rows:
        base = row["baseline"]
        table.append([str(row["nodes"]), "baseline: sync harness", f"{base['messages_per_second']:,.0f}",
                      f"{base['virtual_per_wall']:,.1f}", f"{base['delivered']:,}", "",
                      f"{base['messages_per_cpu_second']:,.0f}", "", ""])
        for name, label in (("events_only", "cluster, trace events only"),
                            ("with_messages", "cluster, trace with messages")):
            figures = row[name]
            met = ("yes" if row["target_met"] else "NO") if name == "events_only" else ""
            table.append(["", label, f"{figures['messages_per_second']:,.0f}", f"{figures['virtual_per_wall']:,.1f}",
                          f"{figures['delivered']:,}", f"{figures['ratio']:.2f}",
                          f"{figures['messages_per_cpu_second']:,.0f}", f"{figures['cpu_ratio']:.2f}", met])
    seconds = rows[0]["virtual_seconds"] if rows else 0
    print_table(
        f"Simulator speed: {seconds:.0f} virtual s, tick {TICK} s, one proposal per tick",
        ["nodes", "variant", "msgs / wall s", "virtual s / wall s", "delivered", "ratio", "msgs / CPU s",
         "CPU ratio", "≥ 60k msgs/s and ratio ≥ 0.8"],
        table,
        "Baseline: the same workload on the bare Raft cores (simulator.testing), no trio, transport or trace.",
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--virtual-seconds", type=float, default=300.0)
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 5, 7])
    parser.add_argument("--hour", action="store_true", help="also run one hour of 5-node life")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    rows = [measure(nodes, args.virtual_seconds) for nodes in args.nodes]
    report(rows)
    hour = {}
    if args.hour:
        for record_messages in (False, True):
            started = time.perf_counter()
            _, _, count = cluster_speed(5, 3600.0, record_messages)
            wall = time.perf_counter() - started
            trace = "with messages" if record_messages else "events only"
            hour[trace] = {"wall_seconds": wall, "cpu_seconds": LAST_CPU_SECONDS[0], "delivered": count,
                           "target_met": wall < TARGET_HOUR_SECONDS, "load_average": os.getloadavg()}
            print(f"one hour of 5-node life, trace {trace}: {wall:.1f} wall s ({LAST_CPU_SECONDS[0]:.1f} CPU s), "
                  f"{count:,} messages; under {TARGET_HOUR_SECONDS:g} s: {'yes' if wall < TARGET_HOUR_SECONDS else 'NO'}")
    write_json(args.json, "simulator_speed", ["benchmarks/simulator_speed.py", *argv],
               {"speed": rows, "hour": hour, "load_average": os.getloadavg()})


if __name__ == "__main__":
    main()
