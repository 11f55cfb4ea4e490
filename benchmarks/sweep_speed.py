"""How many seeds a minute ``raftsim sweep`` runs on Dask, beside the same seeds run serially.

Workload: swarm fault programs (``raftsim sweep --programs``) for seeds
``0..N-1``, each one task (one ``trio.run``). Measured:

- baseline: the same tasks called one after another in this process (no Dask);
- a ``LocalCluster`` with 1 worker process, and with 2;
- with ``--processes``: a ``dask scheduler`` and two ``dask worker`` processes
  started here on 127.0.0.1 (what a real cluster runs), reached by address.

Seeds per minute count from the first task submitted to the last result
(cluster start-up is reported apart); every variant is also given as a ratio
to the serial baseline, which is what to compare across machines. The load
average is printed with the figures: on a shared machine it explains them.
Seeds per *run CPU minute* divide by the CPU time the runs themselves took
(each task's thread time): it stays put when other work takes the cores,
and shows that a run costs the same on a worker as in this process.

Run: ``python benchmarks/sweep_speed.py [--seeds 200] [--processes] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import print_table, ratio, write_json

from simulator.explore.seed_runs import run_seed
from simulator.explore.sweep import local_cluster


def _tasks(seeds: int) -> list[dict]:
    return [{"target": "programs", "seed": seed, "mode": None} for seed in range(seeds)]


def serial(seeds: int) -> dict:
    run_seed(_tasks(1)[0])  # imports and first-use costs, as the workers' warm-up task pays them
    started = time.perf_counter()
    cpu = sum(run_seed(task)["cpu_seconds"] for task in _tasks(seeds))
    wall = time.perf_counter() - started
    return {"seconds": wall, "startup_seconds": 0.0, "run_cpu_seconds": cpu}


def on_client(client, seeds: int) -> tuple[float, float]:
    """(wall seconds for all seeds, CPU seconds the runs themselves took on the workers)."""
    from distributed import as_completed

    client.submit(run_seed, _tasks(1)[0], pure=False).result()  # every worker imports on first use; warm one
    started = time.perf_counter()
    futures = client.map(run_seed, _tasks(seeds), pure=False)
    cpu = sum(future.result()["cpu_seconds"] for future in as_completed(futures))
    return time.perf_counter() - started, cpu


def local(workers: int, seeds: int) -> dict:
    from distributed import Client

    started = time.perf_counter()
    with local_cluster(workers) as cluster, Client(cluster) as client:
        startup = time.perf_counter() - started
        wall, cpu = on_client(client, seeds)
    return {"seconds": wall, "startup_seconds": startup, "run_cpu_seconds": cpu}


def processes(seeds: int) -> dict:
    """A scheduler and two worker processes, as on a real cluster, reached by address."""
    from distributed import Client

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        scheduler_file = Path(scratch) / "scheduler.json"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        children = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                      "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                     **quiet)]
        try:
            deadline = time.monotonic() + 60
            while not (scheduler_file.exists() and scheduler_file.stat().st_size) and time.monotonic() < deadline:
                time.sleep(0.1)
            address = json.loads(scheduler_file.read_text())["address"]
            for _ in range(2):
                children.append(subprocess.Popen(
                    [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                     "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"], **quiet))
            with Client(address) as client:
                client.wait_for_workers(2, timeout=60)
                startup = time.perf_counter() - started
                wall, cpu = on_client(client, seeds)
        finally:
            for child in reversed(children):
                child.terminate()
            for child in children:
                child.wait(timeout=30)
    return {"seconds": wall, "startup_seconds": startup, "run_cpu_seconds": cpu}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--processes", action="store_true", help="also a scheduler + two worker processes")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    variants = [("serial, in this process (baseline)", lambda: serial(args.seeds)),
                ("LocalCluster, 1 worker", lambda: local(1, args.seeds)),
                ("LocalCluster, 2 workers", lambda: local(2, args.seeds))]
    if args.processes:
        variants.append(("dask scheduler + 2 worker processes", lambda: processes(args.seeds)))
    rows = []
    for name, measure in variants:
        figures = measure()
        figures.update(name=name, seeds=args.seeds, seeds_per_minute=60 * args.seeds / figures["seconds"],
                       seeds_per_cpu_minute=60 * args.seeds / figures["run_cpu_seconds"])
        rows.append(figures)
    baseline = rows[0]["seeds_per_minute"]
    for row in rows:
        row["ratio"] = ratio(row["seeds_per_minute"], baseline)
    load = {"before": load_before, "after": os.getloadavg()}
    print_table(
        f"Sweep speed: {args.seeds} swarm seeds per variant",
        ["variant", "seeds / minute", "ratio to serial", "seconds", "start-up s", "seeds / run CPU minute"],
        [[row["name"], f"{row['seeds_per_minute']:,.0f}", f"{row['ratio']:.2f}", f"{row['seconds']:.1f}",
          f"{row['startup_seconds']:.1f}", f"{row['seeds_per_cpu_minute']:,.0f}"] for row in rows],
        f"Load average (1, 5, 15 min) before {load['before'][0]:.1f} {load['before'][1]:.1f} "
        f"{load['before'][2]:.1f}, after {load['after'][0]:.1f} {load['after'][1]:.1f} {load['after'][2]:.1f}; "
        f"{os.cpu_count()} cores.",
    )
    write_json(args.json, "sweep_speed", ["benchmarks/sweep_speed.py", *argv], {"variants": rows, "load": load})


if __name__ == "__main__":
    main()
