"""How fast the simulator runs a standard workload, beside a baseline measured in the same run.

Workload: N voters, heartbeats every tick (0.1 s), one client proposing a
64-byte workflow command every 0.1 s of virtual time, log compaction every
500 entries. For each cluster size it reports

- delivered messages per wall second and virtual seconds per wall second
  for the trio ``Cluster`` (with and without per-message trace records);
- the same workload on the synchronous harness (``simulator.testing``: the
  bare Raft cores, no trio, no transport, no trace) as the baseline, and the
  ratio cluster / baseline, which is what to compare across machines;
- a second, like-for-like baseline (:func:`like_for_like_speed`): the bare
  cores doing exactly the cluster's Raft-level work (its schedule of ticks,
  latencies and proposals, the ``WorkflowExecutor``, the same compaction),
  since the harness applies to a list, runs every node's Ready loop after
  every message and delivers about a third more messages per virtual second.

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
import heapq
import os
import random
import sys
import time

import trio
from benchlib import print_table, ratio, write_json

from simulator import Cluster, CompactionPolicy, WorkflowExecutor, run
from simulator.explore.schedules import steady_load
from simulator.raft import Config, ConfState, MemStorageWithSnapshot, RawNode, Role
from simulator.snapshots import SNAPSHOT_DIGESTS
from simulator.testing import Network

TICK = 0.1
#: The cluster's settings the like-for-like baseline copies: link latency, compaction.
LATENCY = 0.001
COMPACT_EVERY, KEEP_ENTRIES = 500, 100
TARGET_MESSAGES_PER_SECOND = 60_000
TARGET_RATIO = 0.8
TARGET_HOUR_SECONDS = 20.0
#: CPU seconds of the last measured run: on a shared machine, messages per CPU
#: second hold still where messages per wall second follow the load.
LAST_CPU_SECONDS = [0.0]
#: Virtual seconds per slice of the hour: each slice's rate shows whether the
#: cost per message grows as the run's state grows (it should stay flat).
HOUR_SLICE = 600.0
#: The last measured run's slices (empty unless ``slice_seconds`` was given).
LAST_SLICES: list[dict] = []


def command(number: int) -> bytes:
    return WorkflowExecutor.start(f"wf-{number}", ["a", "b"], b"p" * 64)


def cluster_speed(
    nodes: int, virtual_seconds: float, record_messages: bool, slice_seconds: float | None = None
) -> tuple[float, float, int]:
    """(messages per wall second, virtual seconds per wall second, messages delivered).

    With ``slice_seconds``, ``LAST_SLICES`` gets the rates of each slice of that many
    virtual seconds (a sampling task wakes once per slice; it sends nothing).
    """
    measured = {}
    LAST_SLICES.clear()

    def reading(cluster) -> tuple:
        return (cluster.now(), cluster.transport.statistics().messages_delivered, time.perf_counter(),
                time.process_time())

    def close_slice(cluster) -> None:
        now, mark = reading(cluster), measured["mark"]
        delivered, wall, cpu = now[1] - mark[1], now[2] - mark[2], now[3] - mark[3]
        if delivered:
            LAST_SLICES.append({"from": round(mark[0]), "to": round(now[0]), "delivered": delivered,
                                "messages_per_second": delivered / wall, "messages_per_cpu_second": delivered / cpu})
        measured["mark"] = now

    async def sample(cluster) -> None:
        measured["mark"] = reading(cluster)
        while True:
            await trio.sleep(slice_seconds)
            close_slice(cluster)

    async def main() -> None:
        async with Cluster.open(
            nodes=nodes,
            seed=1,
            tick_interval=TICK,
            compaction=CompactionPolicy(every=COMPACT_EVERY, keep_entries=KEEP_ENTRIES),
            record_messages=record_messages,
        ) as cluster:
            started, cpu_started = time.perf_counter(), time.process_time()
            virtual_start = cluster.now()
            async with trio.open_nursery() as nursery:
                if slice_seconds is not None:
                    nursery.start_soon(sample, cluster)
                await steady_load(cluster, duration=virtual_seconds, interval=TICK, command=command)
                if slice_seconds is not None:
                    close_slice(cluster)  # the last, maybe shorter, slice
                nursery.cancel_scope.cancel()
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


def like_for_like_speed(nodes: int, virtual_seconds: float) -> tuple[float, float, int]:
    """The bare Raft cores doing the cluster's Raft-level work, with no trio, transport,
    trace or monitor: the fair baseline for the cluster.

    As in the cluster: ticks every TICK at a random phase per node; messages arriving
    LATENCY after they are sent, on FIFO links, handed out in (time, kind, destination,
    source, sequence) order; one client proposal at a time, every TICK, to the leader,
    the next once it is applied; committed entries applied to a ``WorkflowExecutor``;
    a snapshot (the machine's chunks, digested and kept by the storage) and a
    compaction every COMPACT_EVERY applied entries, keeping KEEP_ENTRIES. Only the node
    that got an item runs its Ready loop, as in the cluster.
    """
    tick_kind, client_kind, message_kind = 0, 1, 2
    conf_state = ConfState.of(range(1, nodes + 1))
    storages, cores, machines = {}, {}, {}
    for node_id in range(1, nodes + 1):
        storages[node_id] = MemStorageWithSnapshot.new_with_conf_state(
            conf_state, embed_data=True, digests=SNAPSHOT_DIGESTS)
        cores[node_id] = RawNode(Config(id=node_id), storages[node_id], random.Random(f"1/node/{node_id}"))
        machines[node_id] = WorkflowExecutor()
    heap: list[tuple] = []
    sequence = [0]
    last_arrival: dict[tuple[int, int], float] = {}
    client = {"waiting": 0, "next_at": 0.0, "number": 0}  # the index the client waits for (0: none)
    delivered = 0

    def push(at: float, kind: int, dst: int, src: int, item) -> None:
        sequence[0] += 1
        heapq.heappush(heap, (at, kind, dst, src, sequence[0], item))

    def ready_loop(node_id: int, now: float) -> None:
        core, storage, machine = cores[node_id], storages[node_id], machines[node_id]
        while core.has_ready():
            ready = core.ready()
            if ready.snapshot is not None:
                restored = WorkflowExecutor()
                restored.restore_from_snapshot((ready.snapshot.data,))
                storage.apply_snapshot_with_data(ready.snapshot)
                machines[node_id] = machine = restored
            if ready.entries:
                storage.append(ready.entries)
            if ready.hard_state is not None:
                storage.set_hard_state(ready.hard_state)
            for message in ready.messages:
                link = (message.from_, message.to)
                arrival = max(now + LATENCY, last_arrival.get(link, 0.0))
                last_arrival[link] = arrival
                push(arrival, message_kind, message.to, message.from_, message)
            for entry in ready.committed_entries:
                if entry.data:
                    machine.apply(entry.index, entry.data)
                else:
                    machine.applied_index = entry.index
                if entry.index == client["waiting"] and core.raft.role is Role.LEADER:
                    client["waiting"] = 0
                    client["next_at"] = max(client["next_at"] + TICK, now)
                    push(client["next_at"], client_kind, 0, 0, None)
            core.advance(ready)
            applied = core.raft.raft_log.applied
            if applied - storage.snapshot_metadata.index >= COMPACT_EVERY:
                storage.create_snapshot(applied, core.raft.conf_state, machine.snapshot_chunks(applied))
                storage.compact(max(applied + 1 - KEEP_ENTRIES, storage.first_index()))

    phases = random.Random(1)
    for node_id in cores:
        push(phases.uniform(0, TICK), tick_kind, node_id, 0, None)
    push(0.0, client_kind, 0, 0, None)
    started, cpu_started = time.perf_counter(), time.process_time()
    while heap and heap[0][0] < virtual_seconds:
        now, kind, dst, _, _, item = heapq.heappop(heap)
        if kind == message_kind:
            delivered += 1
            cores[dst].step(item)
        elif kind == tick_kind:
            push(now + TICK, tick_kind, dst, 0, None)
            cores[dst].tick()
        else:  # the client: propose to the leader, or look again a tick later
            if client["waiting"]:
                continue
            leaders = [node_id for node_id, core in cores.items() if core.raft.role is Role.LEADER]
            if not leaders:
                push(now + TICK, client_kind, 0, 0, None)
                continue
            dst = leaders[0]
            client["number"] += 1
            cores[dst].propose(command(client["number"]))
            client["waiting"], client["next_at"] = cores[dst].raft.raft_log.last_index(), now
        ready_loop(dst, now)
    wall = time.perf_counter() - started
    LAST_CPU_SECONDS[0] = time.process_time() - cpu_started
    return delivered / wall, virtual_seconds / wall, delivered


def measure(nodes: int, virtual_seconds: float) -> dict:
    row = {"nodes": nodes, "virtual_seconds": virtual_seconds}
    for name, speed in (("baseline", harness_speed), ("like_for_like", like_for_like_speed)):
        rate, virtual_speed, count = speed(nodes, virtual_seconds)
        row[name] = {"messages_per_second": rate, "virtual_per_wall": virtual_speed, "delivered": count,
                     "messages_per_cpu_second": count / LAST_CPU_SECONDS[0]}
    base, fair = row["baseline"], row["like_for_like"]
    for record_messages, name in ((False, "events_only"), (True, "with_messages")):
        rate, speed, count = cluster_speed(nodes, virtual_seconds, record_messages)
        cpu_rate = count / LAST_CPU_SECONDS[0]
        row[name] = {
            "messages_per_second": rate,
            "virtual_per_wall": speed,
            "delivered": count,
            "ratio": ratio(rate, base["messages_per_second"]),
            "messages_per_cpu_second": cpu_rate,
            "cpu_ratio": ratio(cpu_rate, base["messages_per_cpu_second"]),
            "ratio_like_for_like": ratio(rate, fair["messages_per_second"]),
            "cpu_ratio_like_for_like": ratio(cpu_rate, fair["messages_per_cpu_second"]),
        }
    events_only = row["events_only"]
    row["target_met"] = (events_only["messages_per_second"] >= TARGET_MESSAGES_PER_SECOND
                         and events_only["ratio"] >= TARGET_RATIO)
    return row


def report(rows: list[dict]) -> None:
    table = []
    for row in rows:
        for name, label in (("baseline", "baseline: sync harness"),
                            ("like_for_like", "baseline: bare cores, cluster's work")):
            base = row[name]
            table.append([str(row["nodes"]) if name == "baseline" else "", label,
                          f"{base['messages_per_second']:,.0f}", f"{base['virtual_per_wall']:,.1f}",
                          f"{base['delivered']:,}", "", "", f"{base['messages_per_cpu_second']:,.0f}", "", ""])
        for name, label in (("events_only", "cluster, trace events only"),
                            ("with_messages", "cluster, trace with messages")):
            figures = row[name]
            met = ("yes" if row["target_met"] else "NO") if name == "events_only" else ""
            table.append(["", label, f"{figures['messages_per_second']:,.0f}", f"{figures['virtual_per_wall']:,.1f}",
                          f"{figures['delivered']:,}", f"{figures['ratio']:.2f}",
                          f"{figures['ratio_like_for_like']:.2f}", f"{figures['messages_per_cpu_second']:,.0f}",
                          f"{figures['cpu_ratio']:.2f} / {figures['cpu_ratio_like_for_like']:.2f}", met])
    seconds = rows[0]["virtual_seconds"] if rows else 0
    print_table(
        f"Simulator speed: {seconds:.0f} virtual s, tick {TICK} s, one proposal per tick",
        ["nodes", "variant", "msgs / wall s", "virtual s / wall s", "delivered", "ratio (harness)",
         "ratio (like for like)", "msgs / CPU s", "CPU ratios", "≥ 60k msgs/s and ratio ≥ 0.8"],
        table,
        "Baselines: the bare Raft cores, no trio, transport, trace or monitor. 'sync harness': "
        "simulator.testing.Network applying to a list (the issue's target is against it); "
        "'cluster's work': the cluster's schedule, WorkflowExecutor and compaction (the fair comparison).",
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
            _, _, count = cluster_speed(5, 3600.0, record_messages, slice_seconds=HOUR_SLICE)
            wall = time.perf_counter() - started
            trace = "with messages" if record_messages else "events only"
            hour[trace] = {"wall_seconds": wall, "cpu_seconds": LAST_CPU_SECONDS[0], "delivered": count,
                           "target_met": wall < TARGET_HOUR_SECONDS, "load_average": os.getloadavg(),
                           "slices": list(LAST_SLICES)}
            print(f"one hour of 5-node life, trace {trace}: {wall:.1f} wall s ({LAST_CPU_SECONDS[0]:.1f} CPU s), "
                  f"{count:,} messages; under {TARGET_HOUR_SECONDS:g} s: {'yes' if wall < TARGET_HOUR_SECONDS else 'NO'}")
            print("  msgs / CPU s per slice of " + f"{HOUR_SLICE:g} virtual s: "
                  + ", ".join(f"{piece['messages_per_cpu_second']:,.0f}" for piece in LAST_SLICES))
    write_json(args.json, "simulator_speed", ["benchmarks/simulator_speed.py", *argv],
               {"speed": rows, "hour": hour, "load_average": os.getloadavg()})


if __name__ == "__main__":
    main()
