"""What one Ready cycle per node per instant saves, beside a Ready cycle after every item, in the same run.

Since issue 21's sixth pass a node steps everything due to it at one instant
into its core and then runs its Ready loop once (``settle``), as a Raft
server does with a batch read off its sockets. The baseline is the way it
worked before: the Ready loop after every item (a subclass of ``Cluster``
that settles each node after each delivery, so the rest of the code is the
same).

Workload: 5 voters, tick 0.1 s, N clients each proposing a 64-byte workflow
command and, once it is applied, the next one 10 ms later, for the given
virtual seconds after the first leader is elected; compaction every 500
entries. With one client nearly every instant holds one item per node and
little can be saved; with several, clients' commands meet at the leader and
the leader's appends meet at each follower, and one Ready persists, sends and
applies for all of them (group commit).

Both variants must deliver the same messages and commit the same entries;
the script checks that, then reports Ready cycles, CPU seconds and messages
per CPU second for each, and the ratio. Repeats alternate the two.

Run: ``python benchmarks/ready_per_instant.py [--clients 1 4 16] [--virtual-seconds 20] [--repeats 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import trio
from benchlib import print_table, ratio, write_json

from simulator import Cluster, CompactionPolicy, WorkflowExecutor, run
from simulator.cluster import node as node_module

TICK = 0.1
PAUSE_BETWEEN_PROPOSALS = 0.01


class ReadyAfterEveryItem(Cluster):
    """The baseline: each node runs its Ready loop after every item it is handed."""

    def _deliver(self, runner, item) -> None:
        super()._deliver(runner, item)
        self._settle(runner)


class ReadyCounter:
    """Counts Ready cycles (``NodeRunner._handle_ready`` calls) while installed."""

    def __init__(self) -> None:
        self.count = 0
        self._original = node_module.NodeRunner._handle_ready

    def __enter__(self) -> ReadyCounter:
        original, counter = self._original, self

        def counting(runner, node, ready) -> None:
            counter.count += 1
            original(runner, node, ready)

        node_module.NodeRunner._handle_ready = counting
        return self

    def __exit__(self, *exc_info) -> None:
        node_module.NodeRunner._handle_ready = self._original


def measure(cluster_class: type[Cluster], clients: int, virtual_seconds: float) -> dict:
    figures: dict = {}

    async def main() -> None:
        async with cluster_class.open(nodes=5, seed=1, tick_interval=TICK, record_messages=False,
                                      compaction=CompactionPolicy(every=500, keep_entries=100)) as cluster:
            await cluster.wait_for_leader()
            end = trio.current_time() + virtual_seconds

            async def load(client_id: int) -> None:
                client = cluster.client(client_id)
                number = 0
                while trio.current_time() < end:
                    number += 1
                    command = WorkflowExecutor.start(f"c{client_id}-{number}", ["a"], b"p" * 64)
                    await client.propose(command)
                    await trio.sleep(PAUSE_BETWEEN_PROPOSALS)

            delivered_before = cluster.transport.statistics().messages_delivered
            with ReadyCounter() as readies:
                cpu_started = time.process_time()
                async with trio.open_nursery() as nursery:
                    for client_id in range(1, clients + 1):
                        nursery.start_soon(load, client_id)
                cpu = time.process_time() - cpu_started
            delivered = cluster.transport.statistics().messages_delivered - delivered_before
            figures.update(delivered=delivered, ready_cycles=readies.count, cpu_seconds=cpu,
                           messages_per_cpu_second=delivered / cpu,
                           committed=cluster.storage(cluster.leader_id()).hard_state.commit)

    run(main)
    return figures


def compare(clients: int, virtual_seconds: float, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {"after_every_item": [], "per_instant": []}
    for _ in range(repeats):
        runs["after_every_item"].append(measure(ReadyAfterEveryItem, clients, virtual_seconds))
        runs["per_instant"].append(measure(Cluster, clients, virtual_seconds))
    row: dict = {"clients": clients, "virtual_seconds": virtual_seconds, "repeats": repeats}
    for name, measured in runs.items():
        row[name] = {
            "delivered": measured[0]["delivered"],
            "committed": measured[0]["committed"],
            "ready_cycles": measured[0]["ready_cycles"],
            "cpu_seconds": statistics.median(run["cpu_seconds"] for run in measured),
            "messages_per_cpu_second": statistics.median(run["messages_per_cpu_second"] for run in measured),
        }
    base, batched = row["after_every_item"], row["per_instant"]
    # The same workload, the same outcome: otherwise the comparison means nothing.
    if (base["delivered"], base["committed"]) != (batched["delivered"], batched["committed"]):
        raise SystemExit(f"with {clients} clients the two variants did different work: "
                         f"{base['delivered']} vs {batched['delivered']} messages, "
                         f"commit {base['committed']} vs {batched['committed']}")
    row["ready_cycle_ratio"] = ratio(batched["ready_cycles"], base["ready_cycles"])
    row["speed_ratio"] = ratio(batched["messages_per_cpu_second"], base["messages_per_cpu_second"])
    return row


def report(rows: list[dict]) -> None:
    table = []
    for row in rows:
        base, batched = row["after_every_item"], row["per_instant"]
        table.append([str(row["clients"]), f"{base['delivered']:,}", f"{base['committed']:,}",
                      f"{base['ready_cycles']:,}", f"{batched['ready_cycles']:,}",
                      f"{base['messages_per_cpu_second']:,.0f}", f"{batched['messages_per_cpu_second']:,.0f}",
                      f"{row['speed_ratio']:.2f}"])
    seconds = rows[0]["virtual_seconds"] if rows else 0
    print_table(
        f"One Ready cycle per node per instant, 5 nodes, {seconds:g} virtual s (medians of alternating repeats)",
        ["clients", "messages", "committed", "Ready cycles: after every item", "Ready cycles: per instant",
         "msgs / CPU s: after every item", "msgs / CPU s: per instant", "ratio"],
        table,
        "Baseline: the same cluster running its Ready loop after every item (as before). Both variants "
        "deliver the same messages and commit the same entries (checked).",
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--virtual-seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.virtual_seconds <= 0 or min(args.clients) < 1:
        parser.error("--repeats and --clients must be at least 1, --virtual-seconds above 0")
    rows = [compare(clients, args.virtual_seconds, args.repeats) for clients in args.clients]
    report(rows)
    write_json(args.json, "ready_per_instant", ["benchmarks/ready_per_instant.py", *argv],
               {"rows": rows, "load_average": os.getloadavg()})


if __name__ == "__main__":
    main()
