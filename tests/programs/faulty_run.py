"""A faulty 5-node run that prints its trace hash; run in subprocesses by test_determinism."""

from __future__ import annotations

import sys

import trio

from simulator import Cluster, CompactionPolicy, WorkflowExecutor, run
from simulator.explore.schedules import apply_schedule, random_fault_schedule, steady_load
from transports import Embedded, LinkConfig, Streaming, Uniform


async def faulty_run(seed: int, duration: float, mode: str) -> tuple[str, int, int]:
    link = LinkConfig(latency=Uniform(0.001, 0.004), loss=0.01, duplicate=0.01, reorder=0.02)
    snapshot_mode = Streaming(chunk_size=512) if mode == "streaming" else Embedded()
    async with Cluster.open(
        nodes=5,
        seed=seed,
        link=link,
        snapshot_mode=snapshot_mode,
        compaction=CompactionPolicy(every=100, keep_entries=10),
    ) as cluster:
        apply_schedule(cluster, random_fault_schedule(seed, cluster.node_ids, duration, mean_gap=4.0))
        if mode == "streaming":
            cluster.fail_chunk(3, "corrupt")
            cluster.fail_chunk(7, "cut")
        load = await steady_load(
            cluster,
            duration=duration,
            interval=0.05,
            command=lambda n: WorkflowExecutor.start(f"wf-{n}", ["a"], b"p" * 200),
        )
        await trio.sleep(5)
        await cluster.check_liveness(within=30)
        return cluster.trace.sha256(), load.committed, len(cluster.trace)


def main() -> None:
    seed, duration, mode = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    digest, committed, events = run(faulty_run, seed, duration, mode)
    print(digest, committed, events)


if __name__ == "__main__":
    main()
