"""Seed sweeps on Dask: many seeds of scenarios or swarm programs, from a laptop to a cluster.

A sweep runs every (target, seed, mode) as its own task — one ``trio.run``
on virtual time, :func:`simulator.explore.seed_runs.run_seed` — on a Dask
``distributed`` cluster: by default a :class:`~distributed.LocalCluster` of
one single-threaded worker process per core (nothing to start), or any
scheduler by address (``tcp://HOST:PORT``), with the same code. Results
stream back as they finish (``as_completed``), so the progress bar moves
and failures show while the sweep runs.

When all seeds are in, failures are grouped by the property they break.
The fastest-failing seed of each group (least virtual time to the failure)
is shrunk on a worker to a scenario file (:func:`~simulator.explore.seed_runs.shrink_failure`),
and that file is run again on a *different* worker
(:func:`~simulator.explore.seed_runs.replay_source`): the two trace hashes
must match, which checks the determinism contract across processes and
machines, not just within one.

Why Dask and not Ray: the work is many small, independent, CPU-bound Python
tasks with small JSON results, exactly what ``client.map`` plus
``as_completed`` do; a ``LocalCluster`` needs no daemon, and a real cluster
is ``dask scheduler`` plus ``dask worker ADDRESS`` with nothing else
(pip-installable, no object store or GCS service). Ray's strengths — actors,
a shared object store for large arrays, GPU scheduling — are ones a sweep
does not use, and its runtime is far heavier to start in a test.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

from ..raft import defects as defect_switch
from ..scenario import load_module, resolve
from .coverage import GOALS
from .seed_runs import PROGRAMS, replay_source, run_seed, shrink_failure

MODES = ("embedded", "streaming")
#: Seconds to wait for a scheduler given by address to have at least one worker.
WORKER_WAIT = 30.0


class SweepError(ValueError):
    """A sweep that cannot start (bad targets, seeds, scheduler); the message says why."""


@attrs.frozen
class SweepPlan:
    """What to run: ``targets`` (scenario names or paths, or ``"programs"``) x ``seeds`` x ``modes``."""

    targets: tuple[str, ...]
    seeds: range
    modes: tuple[str, ...] = MODES
    defects: tuple[str, ...] = ()
    max_steps: int = 12

    def __attrs_post_init__(self) -> None:
        if not self.targets:
            raise SweepError("nothing to sweep: name scenarios, or give --programs")
        if len(self.seeds) == 0:
            raise SweepError(f"seed range {self.seeds.start}:{self.seeds.stop} is empty; expected START:STOP "
                             "with START < STOP")
        unknown = sorted(set(self.modes) - set(MODES))
        if unknown or not self.modes:
            raise SweepError(f"mode must be embedded, streaming or both, got {unknown[0] if unknown else 'none'!r}")
        unknown = sorted(set(self.defects) - defect_switch.DEFECTS.keys())
        if unknown:
            raise SweepError(f"unknown defect {unknown[0]!r}; expected one of {', '.join(sorted(defect_switch.DEFECTS))}")

    def tasks(self) -> list[dict]:
        """One dict per run; a scenario runs only in the modes it supports (its ``MODES``)."""
        tasks = []
        for target in self.targets:
            if target == PROGRAMS:  # each seed draws its own mode (swarm testing)
                tasks.extend({"target": PROGRAMS, "seed": seed, "mode": None} for seed in self.seeds)
                continue
            info = resolve(target)  # ScenarioError (a ValueError) names what is known
            supported = getattr(load_module(info.path), "MODES", MODES)
            modes = [mode for mode in self.modes if mode in supported]
            if not modes:
                raise SweepError(f"scenario {target!r} runs in {', '.join(supported)} mode only")
            tasks.extend({"target": target, "seed": seed, "mode": mode} for mode in modes for seed in self.seeds)
        return tasks


def parse_seeds(text: str) -> range:
    """``"0:10000"`` -> ``range(0, 10000)``; a single number is one seed."""
    start, sep, stop = text.partition(":")
    try:
        first = int(start)
        last = int(stop) if sep else first + 1
    except ValueError:
        raise SweepError(f"--seeds expects START:STOP (e.g. 0:10000), got {text!r}") from None
    if first < 0 or last <= first:
        raise SweepError(f"--seeds expects 0 <= START < STOP, got {text!r}")
    return range(first, last)


# -- the cluster ---------------------------------------------------------------------------


def local_cluster(workers: int):
    """A ``LocalCluster`` of ``workers`` single-threaded processes (trio runs are CPU-bound Python)."""
    import logging

    from distributed import LocalCluster

    if workers < 1:
        raise SweepError(f"--workers must be >= 1, got {workers}")
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                        dashboard_address=None, silence_logs=logging.ERROR)


def connect(scheduler: str | None, workers: int):
    """``(client, cluster_or_None)``: a client of ``scheduler``, or of a new local cluster."""
    from distributed import Client

    if scheduler is None:
        cluster = local_cluster(workers)
        return Client(cluster), cluster
    if "://" not in scheduler:
        raise SweepError(f"--scheduler expects an address like tcp://HOST:PORT, got {scheduler!r}")
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as error:
        raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT)  # tasks would wait for ever on a cluster without workers
    except TimeoutError:
        client.close()
        raise SweepError(f"the Dask scheduler at {scheduler} has no workers; start some with "
                         f"'dask worker {scheduler} --nthreads 1'") from None
    return client, None


# -- running ---------------------------------------------------------------------------------


@attrs.define
class SweepProgress:
    """Counters a progress display reads as results stream in."""

    total: int
    done: int = 0
    failing: int = 0
    started: float = attrs.Factory(time.perf_counter)

    @property
    def per_second(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0


def _different_worker(client, than: str) -> list[str] | None:
    others = sorted(address for address in client.scheduler_info()["workers"] if address != than)
    return others[:1] or None


def run_sweep(plan: SweepPlan, client, out_dir: Path, *,
              on_result: Callable[[dict, SweepProgress], None] | None = None) -> dict:
    """Run ``plan`` on ``client``'s cluster; write counterexamples to ``out_dir``; return the report."""
    from distributed import as_completed

    tasks = plan.tasks()
    progress = SweepProgress(total=len(tasks))
    sweep_id = uuid.uuid4().hex[:8]  # keys name the run on a dashboard, and never clash with another sweep's
    futures = client.map(run_seed, tasks, defects=plan.defects, max_steps=plan.max_steps, pure=False,
                         key=[f"{sweep_id}-{Path(task['target']).stem}-{task['mode'] or 'swarm'}-seed{task['seed']}"
                              for task in tasks])
    results = []
    for future in as_completed(futures):
        if future.status == "error":  # the worker itself failed (not the run): a finding of its own
            task = tasks[futures.index(future)]
            result = {**task, "ok": False, "failure": f"error: task failed: {future.exception()}",
                      "property": "error: the sweep task failed", "virtual_seconds": 0.0, "goals": []}
        else:
            result = future.result()
        future.release()
        results.append(result)
        progress.done += 1
        progress.failing += not result["ok"]
        if on_result is not None:
            on_result(result, progress)
    wall = time.perf_counter() - progress.started
    groups = _shrink_groups(plan, client, results, Path(out_dir))
    return _report(plan, results, groups, wall, len(client.scheduler_info()["workers"]))


def _shrink_groups(plan: SweepPlan, client, results: list[dict], out_dir: Path) -> list[dict]:
    """Per violated property: shrink its fastest-failing seed, replay the file on another worker."""
    by_property: dict[str, list[dict]] = {}
    for result in results:
        if not result["ok"]:
            by_property.setdefault(result["property"], []).append(result)
    fastest = {name: min(failures, key=lambda r: (r["virtual_seconds"], r["seed"], r["target"]))
               for name, failures in sorted(by_property.items())}
    shrinks = {name: client.submit(shrink_failure, {k: first[k] for k in ("target", "seed", "mode")},
                                   plan.defects, name, plan.max_steps, pure=False)
               for name, first in fastest.items()}
    groups = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, future in shrinks.items():
        first = fastest[name]
        group = {"property": name, "seeds_failing": len(by_property[name]),
                 "example_failure": first["failure"], "fastest": {k: first[k] for k in ("target", "seed", "mode")},
                 "virtual_seconds": first["virtual_seconds"]}
        shrunk = future.result()
        path = out_dir / shrunk["file_name"]
        path.write_text(shrunk["source"], encoding="utf-8")
        # Another worker, where there is one: the hashes must agree across processes.
        other = _different_worker(client, shrunk["worker"])
        replay = client.submit(replay_source, shrunk["source"], shrunk["file_name"], pure=False,
                               workers=other, allow_other_workers=False).result()
        group.update(
            counterexample=str(path), still_fails=shrunk["property"] == name,
            steps_before=shrunk.get("steps_before"), steps_after=shrunk.get("steps_after"),
            shrink_runs=shrunk["shrink_runs"],
            shrunk_on=shrunk["worker"], replayed_on=replay["worker"],
            trace_sha256=shrunk["trace_sha256"], replay_trace_sha256=replay["trace_sha256"],
            hashes_match=bool(shrunk["trace_sha256"]) and shrunk["trace_sha256"] == replay["trace_sha256"],
        )
        groups.append(group)
    return groups


def _report(plan: SweepPlan, results: list[dict], groups: list[dict], wall: float, workers: int) -> dict:
    goals = Counter(goal for result in results for goal in result.get("goals", ()))
    swarm = Counter()
    for result in results:
        for feature, value in (result.get("swarm") or {}).items():
            values = value if isinstance(value, list | tuple) else [value]
            swarm.update(f"{feature}={item}" for item in values)
    return {
        "plan": {"targets": list(plan.targets), "seeds": f"{plan.seeds.start}:{plan.seeds.stop}",
                 "modes": list(plan.modes), "defects": list(plan.defects)},
        "workers": workers,
        "runs": len(results),
        "failing": sum(not result["ok"] for result in results),
        "wall_seconds": wall,
        "runs_per_minute": 60 * len(results) / wall if wall > 0 else 0.0,
        "groups": groups,
        "coverage": {name: goals[name] for name in GOALS},
        "coverage_share": sum(1 for name in GOALS if goals[name]) / len(GOALS),
        "swarm_features": dict(sorted(swarm.items())),
        "failures": sorted(({k: r.get(k) for k in ("target", "seed", "mode", "property", "failure")}
                            for r in results if not r["ok"]), key=lambda r: (r["property"], r["target"], r["seed"])),
    }


def summary_rows(report: dict) -> Iterable[tuple[str, ...]]:
    """Rows (property, seeds failing, fastest seed, steps, hashes, file) for a summary table."""
    for group in report["groups"]:
        fastest = group["fastest"]
        steps = "" if group["steps_before"] is None else f"{group['steps_before']} -> {group['steps_after']}"
        yield (group["property"], str(group["seeds_failing"]),
               f"{Path(fastest['target']).stem} {fastest['mode'] or 'swarm'} seed {fastest['seed']}",
               steps, "match" if group["hashes_match"] else "DIFFER", group["counterexample"])
