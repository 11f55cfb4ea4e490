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
    for task in _tasks(seeds):
        run_seed(task)
    wall = time.perf_counter() - started
    return {"seconds": wall, "startup_seconds": 0.0}


def on_client(client, seeds: int) -> float:
    from distributed import as_completed

    client.submit(run_seed, _tasks(1)[0], pure=False).result()  # every worker imports on first use; warm one
    started = time.perf_counter()
    futures = client.map(run_seed, _tasks(seeds), pure=False)
    for future in as_completed(futures):
        future.result()
    return time.perf_counter() - started


def local(workers: int, seeds: int) -> dict:
    from distributed import Client

    started = time.perf_counter()
    with local_cluster(workers) as cluster, Client(cluster) as client:
        startup = time.perf_counter() - started
        wall = on_client(client, seeds)
    return {"seconds": wall, "startup_seconds": startup}


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
                wall = on_client(client, seeds)
        finally:
            for child in reversed(children):
                child.terminate()
            for child in children:
                child.wait(timeout=30)
    return {"seconds": wall, "startup_seconds": startup}


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
        figures.update(name=name, seeds=args.seeds, seeds_per_minute=60 * args.seeds / figures["seconds"])
        rows.append(figures)
    baseline = rows[0]["seeds_per_minute"]
    for row in rows:
        row["ratio"] = ratio(row["seeds_per_minute"], baseline)
    load = {"before": load_before, "after": os.getloadavg()}
    print_table(
        f"Sweep speed: {args.seeds} swarm seeds per variant",
        ["variant", "seeds / minute", "ratio to serial", "seconds", "start-up s"],
        [[row["name"], f"{row['seeds_per_minute']:,.0f}", f"{row['ratio']:.2f}", f"{row['seconds']:.1f}",
          f"{row['startup_seconds']:.1f}"] for row in rows],
        f"Load average (1, 5, 15 min) before {load['before'][0]:.1f} {load['before'][1]:.1f} "
        f"{load['before'][2]:.1f}, after {load['after'][0]:.1f} {load['after'][1]:.1f} {load['after'][2]:.1f}; "
        f"{os.cpu_count()} cores.",
    )
    write_json(args.json, "sweep_speed", ["benchmarks/sweep_speed.py", *argv], {"variants": rows, "load": load})


if __name__ == "__main__":
    main()
