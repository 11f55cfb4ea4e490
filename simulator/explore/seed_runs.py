"""What a sweep's worker does: run one seed, shrink one failure, replay one file.

Each function here is a task a Dask worker runs (:mod:`simulator.explore.sweep`
sends them). Arguments and results are plain JSON-able dicts and strings, so
what crosses the cluster is data, and the report is those results as they
are. Every run is its own ``trio.run`` (through :func:`simulator.run`) on
virtual time, so a task on any machine gives the same trace hash for the
same seed, and :func:`replay_file` checks exactly that.

Defects (:mod:`simulator.raft.defects`) are a process-wide switch, so runs in
one worker process take turns (``_ONE_RUN_AT_A_TIME``); a worker should run
one thread (``dask worker --nthreads 1``, what :func:`~simulator.explore.sweep.local_cluster`
starts) to use its core fully.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import tempfile
import threading
import time
from pathlib import Path

from ..cluster.cluster import run
from ..raft import defects as defect_switch
from ..scenario import RunOptions, load_module, resolve, run_scenario, scenario_defaults, scenario_defects
from .coverage import goals_reached
from .programs import Program
from .swarm import draw, swarm_source

#: The target name of swarm-drawn fault programs (not a scenario file).
PROGRAMS = "programs"
_ONE_RUN_AT_A_TIME = threading.Lock()


def property_of(failure: str) -> str:
    """The property a failure line breaks: the invariant's name, or the check with numbers elided.

    ``"election safety: nodes 1 and 2 ..."`` -> ``"election safety"``;
    ``"n4 re-sent 3 chunks"`` -> ``"n# re-sent # chunks"``; a stuck story is a liveness failure.
    """
    if failure.startswith("the story got stuck"):
        return "liveness: the story got stuck"
    if failure.startswith("error: "):
        return failure.split(":", 2)[0] + ":" + failure.split(":", 2)[1]
    head = failure.split(":", 1)[0] if ":" in failure else failure
    return re.sub(r"\d+", "#", head).strip()


def worker_name() -> str:
    """The Dask worker's address, or host:pid outside a worker."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _run_file(path: Path, options: RunOptions, switched_on: tuple[str, ...]) -> dict:
    """Run a scenario file as ``raftsim run`` does; the outcome as a dict (never raises for a bug found)."""
    clusters = []
    started, cpu_started = time.perf_counter(), time.thread_time()
    try:
        with _ONE_RUN_AT_A_TIME, defect_switch.injected(*switched_on):
            result = run(functools.partial(run_scenario, on_cluster=clusters.append), resolve(str(path)), options)
    except Exception as error:  # a crash of the simulator is a finding too, grouped by its type
        message = str(error).splitlines()[0] if str(error) else ""
        # The trace up to the crash still replays, hash and all: it is what the replay compares.
        trace = clusters[0].trace if clusters else None
        return {"ok": False, "failure": f"error: {type(error).__name__}: {message}",
                "virtual_seconds": trace.records[-1].time if trace is not None and len(trace) else 0.0,
                "trace_sha256": trace.sha256() if trace is not None else "",
                "goals": list(goals_reached(trace.records)) if trace is not None else [],
                "wall_seconds": time.perf_counter() - started, "cpu_seconds": time.thread_time() - cpu_started}
    failures = list(result.violations) + list(result.failed_checks)
    return {
        "ok": result.ok,
        "failure": failures[0] if failures else "",
        "virtual_seconds": result.summary.get("virtual_seconds", 0.0),
        "trace_sha256": result.summary.get("trace_sha256", ""),
        "goals": list(goals_reached(clusters[0].trace.records)) if clusters else [],
        "wall_seconds": time.perf_counter() - started,
        # This thread's CPU time: what the run cost, whatever else shares the machine.
        "cpu_seconds": time.thread_time() - cpu_started,
    }


def _program_file(directory: Path, seed: int, source: str) -> Path:
    path = directory / f"swarm_seed_{seed}.py"
    path.write_text(source, encoding="utf-8")
    return path


def run_seed(task: dict, defects: tuple[str, ...] = (), max_steps: int = 12) -> dict:
    """Run one seed of one target: ``{"target", "seed", "mode"}`` -> its outcome.

    ``target`` is a scenario name or path, or ``"programs"``: the seed then
    draws its swarm configuration and fault program (:mod:`simulator.explore.swarm`).
    """
    target, seed = task["target"], task["seed"]
    outcome = dict(task)
    with tempfile.TemporaryDirectory(prefix="raftsim-sweep-") as scratch:
        if target == PROGRAMS:
            config, program = draw(seed, max_steps=max_steps)
            path = _program_file(Path(scratch), seed, swarm_source(config, program, seed, defects))
            space = config.space(defects)
            options = RunOptions(seed=seed, mode=config.mode, store=space.store)
            outcome.update(mode=config.mode, swarm=config.describe(), steps=len(program))
        else:
            info = resolve(target)
            path = info.path
            # The store the scenario runs on by default (its DEFAULTS), as raftsim run would.
            options = RunOptions(seed=seed, mode=task["mode"], store=scenario_defaults(info)["store"])
        outcome.update(_run_file(path, options, defects))
    outcome["property"] = property_of(outcome["failure"]) if not outcome["ok"] else ""
    outcome["worker"] = worker_name()
    return outcome


# -- shrinking a failure to a scenario file --------------------------------------------------


def _pinned_scenario(target: str, seed: int, mode: str, defects: tuple[str, ...], failure: str) -> str:
    """A named scenario's text, pinned to the failing seed, mode and defects (its own and the sweep's)."""
    info = resolve(target)
    text = info.path.read_text(encoding="utf-8")
    store = scenario_defaults(info)["store"]
    switched_on = tuple(sorted(set(scenario_defects(load_module(info.path))) | set(defects)))
    return (f"{text.rstrip()}\n\n\n# Pinned by raftsim sweep: this run failed with\n#   {failure}\n"
            f"DEFAULTS = {{\"seed\": {seed}, \"mode\": {mode!r}, \"store\": {store!r}}}\n"
            f"DEFECTS = {switched_on!r}\n")


def _shrink_steps(program: Program, still_fails, budget: int) -> tuple[Program, int]:
    """Drop runs of steps, halves first, then single steps, while the failure stays (delta debugging).

    hypothesis shrinks only what it generated itself and has no public way to
    start from a given failing example; a swarm failure comes from a seed, so
    its program is shrunk here by the same greedy rule.
    """
    steps = list(program.steps)
    runs = 0
    width = max(len(steps) // 2, 1)
    while steps and runs < budget:
        start, removed = 0, False
        while start < len(steps) and runs < budget:
            candidate = steps[:start] + steps[start + width:]
            runs += 1
            if still_fails(Program(tuple(candidate), liveness_within=program.liveness_within)):
                steps, removed = candidate, True
            else:
                start += width
        if width == 1 and not removed:
            break
        width = max(width // 2, 1) if not removed else width
    return Program(tuple(steps), liveness_within=program.liveness_within), runs


def shrink_failure(task: dict, defects: tuple[str, ...], wanted: str, max_steps: int = 12,
                   budget: int = 60) -> dict:
    """Shrink one failing seed to a scenario file that fails the same way (property ``wanted``).

    Swarm programs lose every step the failure does not need; a named
    scenario is pinned to its seed and mode (the fastest-failing seed of its
    group is already the smallest run of it). Returns the file's text, its
    trace hash on this worker, and this worker's name.
    """
    target, seed = task["target"], task["seed"]
    runs = 0
    with tempfile.TemporaryDirectory(prefix="raftsim-shrink-") as scratch:
        if target == PROGRAMS:
            config, program = draw(seed, max_steps=max_steps)
            space = config.space(defects)
            options = RunOptions(seed=seed, mode=config.mode, store=space.store)

            def still_fails(candidate: Program) -> bool:
                path = _program_file(Path(scratch), seed, swarm_source(config, candidate, seed, defects))
                outcome = _run_file(path, options, defects)
                return not outcome["ok"] and property_of(outcome["failure"]) == wanted

            shrunk, runs = _shrink_steps(program, still_fails, budget)
            source = swarm_source(config, shrunk, seed, defects, headline=wanted)
            steps = {"steps_before": len(program), "steps_after": len(shrunk)}
        else:
            source = _pinned_scenario(target, seed, task["mode"], defects, wanted)
            steps = {}
        checked = replay_source(source, _file_name(task))
    return {**checked, **steps, "source": source, "shrink_runs": runs, "file_name": _file_name(task)}


def _file_name(task: dict) -> str:
    stem = re.sub(r"\W+", "_", Path(task["target"]).stem)
    return f"counterexample_{stem}_{task.get('mode') or 'swarm'}_seed{task['seed']}.py"


def replay_source(source: str, file_name: str) -> dict:
    """Run a counterexample file's text as ``raftsim run FILE`` would; its outcome and trace hash.

    The file pins its own seed, mode, store (``DEFAULTS``) and defects (``DEFECTS``).
    """
    with tempfile.TemporaryDirectory(prefix="raftsim-replay-") as scratch:
        path = Path(scratch) / file_name
        path.write_text(source, encoding="utf-8")
        defaults = scenario_defaults(resolve(str(path)))
        options = RunOptions(seed=defaults["seed"], mode=defaults["mode"], store=defaults["store"])
        # run_scenario switches on the file's DEFECTS itself.
        outcome = _run_file(path, options, ())
    outcome["property"] = property_of(outcome["failure"]) if not outcome["ok"] else ""
    outcome["worker"] = worker_name()
    return outcome
