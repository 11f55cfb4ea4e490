"""Running a scenario script: options in, a cluster to act on, a summary out.

:func:`run_scenario` opens the cluster with the chosen snapshot mode (the
format is described in :mod:`simulator.scenario.script`), runs the story,
and returns a :class:`ScenarioResult` that the CLI prints as text or JSON.
"""

from __future__ import annotations

import inspect
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import trio

from transports import Auto, Embedded, Streaming
from transports.policies import policy

from ..checks.invariants import InvariantViolation
from ..cluster.client import LivenessError, ProposalTimeoutError
from ..cluster.cluster import Cluster
from ..raft import defects
from ..snapshots import DiskSnapshotStore, MemorySnapshotStore
from ..snapshots.urls import is_store_url
from .engines import engine_runner
from .script import (
    RunOptions,
    ScenarioCrash,
    ScenarioError,
    ScenarioInfo,
    check_store_dir,
    load_module,
    scenario_defects,
    scenario_params,
)
from .sim import Sim
from .summary import summarize


@attrs.frozen
class ScenarioResult:
    scenario: str
    seed: int
    mode: str
    ok: bool
    violations: tuple[str, ...]
    failed_checks: tuple[str, ...]
    summary: dict


class RunLimitError(trio.TooSlowError):
    """The story ran past the run's limit of virtual or wall time."""


async def _story(module, sim: Sim, options: RunOptions) -> None:
    """The scenario's story, inside the run's limits of virtual and wall time.

    The wall-time guard wakes every quarter of a virtual second and only looks
    at the wall clock: it decides nothing in the run unless the run is over
    its limit, so traces stay the same with or without it.
    """
    over_wall_time = []

    async def guard_wall_time(deadline: float, story: trio.CancelScope) -> None:
        while time.monotonic() < deadline:
            await trio.sleep(0.25)
        over_wall_time.append(True)
        story.cancel()

    async with trio.open_nursery() as guards:
        with trio.move_on_after(options.max_virtual_seconds) as story:
            if options.max_wall_seconds is not None:
                guards.start_soon(guard_wall_time, time.monotonic() + options.max_wall_seconds, story)
            await module.scenario(sim)
        guards.cancel_scope.cancel()
    if over_wall_time:
        raise RunLimitError(f"the story ran past the limit of {options.max_wall_seconds:g} wall-clock seconds "
                            f"(--max-wall-seconds)")
    if story.cancelled_caught:
        raise RunLimitError(f"the story ran past the limit of {options.max_virtual_seconds:g} virtual seconds "
                            f"(--max-virtual-seconds)")


def _check_cluster_options(info: ScenarioInfo, cluster_options: dict) -> None:
    """A ``CLUSTER`` key ``Cluster.open`` does not take is the scenario's mistake, told before the run."""
    accepted = set(inspect.signature(Cluster.__init__).parameters) - {"self"}
    unknown = sorted(set(cluster_options) - accepted)
    if unknown:
        raise ScenarioError(f"{info.path}: CLUSTER has unknown key {unknown[0]!r}; expected some of "
                            f"{', '.join(sorted(accepted))}")


def _snapshot_mode(options: RunOptions, store_dir: Path | None, streaming: dict):
    if options.policy is not None:  # a real system's policy (transports.policies)
        chosen = {} if options.chunk_size is None else {"chunk_size": options.chunk_size}
        if store_dir is not None:
            chunk_size = chosen.get("chunk_size", MemorySnapshotStore().chunk_size)
            chosen["store"] = lambda node_id: DiskSnapshotStore(store_dir / f"node-{node_id}", chunk_size=chunk_size)
        return policy(options.policy, **chosen)
    if options.mode == "embedded":
        return Embedded()
    kind = Auto if options.mode == "auto" else Streaming  # Auto: Streaming that embeds small snapshots
    extra = dict(streaming)  # the scenario's own Streaming options, e.g. rate_limit
    if options.chunk_size is not None:
        extra["chunk_size"] = options.chunk_size
    if is_store_url(options.store):
        try:
            return kind.in_bucket(options.store, pull=options.pull, **extra)
        except (ValueError, ImportError) as error:  # store errors are ValueErrors
            raise ScenarioError(f"--store {options.store}: {error}") from None
    if options.pull:  # the shared store beside the nodes' own stores
        chunk_size = extra.get("chunk_size", MemorySnapshotStore().chunk_size)
        extra["pull"] = (DiskSnapshotStore(store_dir / "shared", chunk_size=chunk_size, durable=False)
                         if store_dir is not None else MemorySnapshotStore(chunk_size=chunk_size))
    if store_dir is not None:
        return kind.on_disk(store_dir, **extra)
    return kind(**extra)



async def run_scenario(
    info: ScenarioInfo,
    options: RunOptions,
    *,
    on_cluster: Callable[[Cluster], None] | None = None,
    trace_path: Path | None = None,
) -> ScenarioResult:
    """Open the cluster, run the story, and summarise; see the module docstring."""
    module = load_module(info.path)
    modes = getattr(module, "MODES", ("embedded", "streaming"))
    if options.mode not in modes:
        raise ScenarioError(f"scenario {info.name!r} runs in {', '.join(modes)} mode only")
    params = scenario_params(module, options)
    open_cluster, summarize_run = engine_runner(module, info.name, options, params, Cluster.open, summarize)
    switched_on = scenario_defects(module)
    cluster_options = dict(getattr(module, "CLUSTER", {}))
    _check_cluster_options(info, cluster_options)
    if options.nodes is not None:
        cluster_options["nodes"] = options.nodes
    if options.store_dir is not None:
        check_store_dir(options.store_dir)
    with tempfile.TemporaryDirectory(prefix="raftsim-") as scratch:
        store_dir = None
        if options.store.startswith("disk"):
            store_dir = options.store_dir or Path(scratch)
        mode = _snapshot_mode(options, store_dir, getattr(module, "STREAMING", {}))
        violations: list[str] = []
        cluster_ref: list[Cluster] = []
        sims: list[Sim] = []
        try:
            with defects.injected(*switched_on):
                async with open_cluster(seed=options.seed, snapshot_mode=mode, **cluster_options) as cluster:
                    cluster_ref.append(cluster)
                    if on_cluster is not None:
                        on_cluster(cluster)
                    sim = Sim(cluster, params, options)
                    sims.append(sim)
                    await _story(module, sim, options)
                    summary = summarize_run(cluster, info.name, options)
        except InvariantViolation as violation:
            violations.append(str(violation).splitlines()[0])
            sim_checks = []
            summary = summarize_run(cluster_ref[0], info.name, options) if cluster_ref else {}
        except (LivenessError, ProposalTimeoutError, trio.TooSlowError) as stuck:
            # The story could not go on: a failed run (exit 1), told in one line.
            first_line = str(stuck).splitlines()[0] if str(stuck) else type(stuck).__name__
            earlier = sims[0].checks if sims else []
            sim_checks = [*earlier, (f"the story got stuck: {first_line}", False)]
            summary = summarize_run(cluster_ref[0], info.name, options) if cluster_ref else {}
        except Exception as error:
            crash = ScenarioCrash.of(error, info.path)
            if crash is None:
                raise  # not the scenario's code: a bug of raftsim's, with its traceback
            raise crash from error
        else:
            sim_checks = sim.checks
        if trace_path is not None and cluster_ref:
            cluster_ref[0].trace.write_jsonl(trace_path)
    failed = tuple(text for text, ok in sim_checks if not ok)
    ok = not violations and not failed
    summary.update(ok=ok, violations=violations, failed_checks=list(failed), defects=list(switched_on))
    if options.policy is not None:
        summary["policy"] = options.policy
    mode = "pysyncobj" if options.engine == "pysyncobj" else options.mode
    return ScenarioResult(info.name, options.seed, mode, ok, tuple(violations), failed, summary)

