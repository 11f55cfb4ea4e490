"""``raftsim run SCENARIO --transport grpc``: the scenario's story on node processes over gRPC.

The same scenario file, the same ``Sim`` handle and the same summary keys
as a simulated run, but the cluster is a :class:`~.cluster.ProcessCluster`:
one ``python -m transports.grpc.node`` process per node on 127.0.0.1,
talking gRPC through fault proxies, on the wall clock. Nothing about such a
run is deterministic (the seed decides nothing: real elections time out at
random, the OS schedules processes), and the summary says so
(``"deterministic": false``, ``"clock": "wall"``); ``virtual_seconds`` holds
wall seconds there so that tools reading either kind of summary work.

A scenario opts in with ``NETWORKS = ("simulated", "grpc")`` (and may
restrict the modes with ``GRPC_MODES``): stories that read what only a
simulated network records (every message's send and arrival times) must
say how they read on a real one, where those are not observable.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import trio

from transports import Embedded, Streaming

from ..cluster.client import LivenessError, ProposalTimeoutError
from ..cluster.node import CompactionPolicy
from ..observe.narration import narrate
from ..scenario import (
    RunOptions,
    ScenarioError,
    ScenarioInfo,
    ScenarioResult,
    Sim,
    load_module,
    scenario_params,
)
from .cluster import ProcessCluster

NOT_DETERMINISTIC = ("real processes over gRPC on 127.0.0.1, on the wall clock: NOT deterministic "
                     "(timings, elections and traces differ from run to run; the seed decides nothing)")


def _check(module, info: ScenarioInfo, options: RunOptions) -> None:
    try:
        import transports.grpc  # noqa: F401 - the node processes need it too
    except ImportError as missing:
        raise ScenarioError(f"--transport grpc needs the grpc extra (pip install 'raftsim[grpc]'): "
                            f"{missing}") from None
    networks = getattr(module, "NETWORKS", ("simulated",))
    if "grpc" not in networks:
        raise ScenarioError(f"scenario {info.name!r} runs on the simulated network only "
                            f"(it declares no NETWORKS including 'grpc')")
    modes = getattr(module, "GRPC_MODES", getattr(module, "MODES", ("embedded", "streaming")))
    if options.mode not in modes:
        raise ScenarioError(f"scenario {info.name!r} runs over gRPC in {', '.join(modes)} mode only")
    if options.engine != "native":
        raise ScenarioError("--transport grpc runs raftsim's own Raft engine only (not --engine pysyncobj)")
    if options.pull:
        raise ScenarioError("--pull is not available with --transport grpc")
    if not (options.store in ("memory", "disk") or options.store.startswith("disk:")):
        raise ScenarioError(f"--store {options.store} is not available with --transport grpc; "
                            "node processes keep their snapshots in their data directories (disk or disk:DIR)")


def _snapshot_mode(options: RunOptions, streaming: dict):
    if options.mode == "embedded":
        return Embedded()
    chunk_size = options.chunk_size or streaming.get("chunk_size") or Streaming().chunk_size
    return Streaming(chunk_size=chunk_size)


async def run_over_grpc(info: ScenarioInfo, options: RunOptions, *,
                        on_cluster: Callable[[ProcessCluster], None] | None = None,
                        trace_path: Path | None = None, timeout_scale: float = 3.0) -> ScenarioResult:
    """Start the node processes, run the story, summarise; see the module docstring."""
    module = load_module(info.path)
    _check(module, info, options)
    params = scenario_params(module, options)
    cluster_options = dict(getattr(module, "CLUSTER", {}))
    streaming = dict(getattr(module, "STREAMING", {}))
    nodes = options.nodes or cluster_options.get("nodes", 3)
    compaction = cluster_options.get("compaction")
    compact_every = compaction.every if isinstance(compaction, CompactionPolicy) else None
    mode = _snapshot_mode(options, streaming)
    chunks_in_flight = streaming.get("chunks_in_flight", Streaming().chunks_in_flight)
    kept = options.store.startswith("disk:")
    with tempfile.TemporaryDirectory(prefix="raftsim-grpc-") as scratch:
        workdir = Path(options.store[5:]) if kept else Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        checks: list[tuple[str, bool]] = []
        summary: dict = {}
        async with ProcessCluster.open(nodes, workdir=workdir, snapshot_mode=mode,
                                       chunks_in_flight=chunks_in_flight, compact_every=compact_every,
                                       timeout_scale=timeout_scale) as cluster:
            if on_cluster is not None:
                on_cluster(cluster)
            sim = Sim(cluster, params, options)
            try:
                await module.scenario(sim)
                checks = sim.checks
            except (LivenessError, ProposalTimeoutError, trio.TooSlowError) as stuck:
                first_line = str(stuck).splitlines()[0] if str(stuck) else type(stuck).__name__
                checks = [*sim.checks, (f"the story got stuck: {first_line}", False)]
            await cluster.observer.look()
            # In this thread (a few quick calls): the observer records into the same trace.
            summary = summarize_grpc(cluster, info.name, options)
            if trace_path is not None:
                cluster.trace.write_jsonl(trace_path)
    failed = tuple(text for text, ok in checks if not ok)
    summary.update(ok=not failed, violations=[], failed_checks=list(failed), defects=[])
    return ScenarioResult(info.name, options.seed, options.mode, not failed, (), failed, summary)


def summarize_grpc(cluster: ProcessCluster, name: str, options: RunOptions) -> dict:
    """The simulator's summary keys (``run_summary``), filled from what the processes report."""
    nodes = []
    for node_id in cluster.node_ids:
        entry = {"id": node_id, "up": cluster.is_up(node_id)}
        if entry["up"]:
            try:
                status = cluster.control.status(node_id, with_digest=True)
            except Exception as error:  # noqa: BLE001 - a node that stopped answering is reported as such
                entry.update(up=False, problem=f"no status: {type(error).__name__}")
            else:
                entry.update(role=status.role, term=status.term, commit=status.commit, applied=status.applied,
                             snapshot_index=status.snapshot_index, last_index=status.last_index,
                             state_digest=status.state_digest)
        nodes.append(entry)
    trace = cluster.trace
    trace.flush()
    links = cluster.proxy.table.statistics()
    caught_up = max([cluster.observer.last_progress,
                     *(record.time for record in trace.of_kind("snapshot_installed"))])
    return {
        "scenario": name,
        "seed": options.seed,
        "mode": options.mode,
        "transport": "grpc",
        "clock": "wall",
        "deterministic": False,
        "virtual_seconds": round(cluster.now(), 6),
        "wall_seconds": round(cluster.now(), 6),
        "caught_up_seconds": round(caught_up, 6),
        "trace_sha256": trace.sha256(),
        "messages_sent": None,  # gRPC batches messages inside HTTP/2 streams; the proxy sees bytes
        "bytes_sent": sum(link["forward_bytes"] + link["back_bytes"] for link in links),
        "nodes": nodes,
        "transfers": [
            {
                "from": t.from_, "to": t.to, "snapshot_index": t.snapshot_index, "mode": t.mode,
                "size": t.size, "bytes_sent": t.bytes_sent, "resent_bytes": t.resent_bytes,
                "retries": t.retries, "outcome": t.outcome.value,
                "seconds": round(t.updated_at - t.started_at, 6),
            }
            for t in cluster.transfers()
        ],
        "peak_snapshot_memory_bytes": {str(node): peak for node, (_, peak) in cluster.snapshot_memory().items()},
        "links": links,
        "workdir": str(cluster.workdir) if options.store.startswith("disk:") else None,
    }


def run_grpc_scenario(info: ScenarioInfo, options: RunOptions, *, narrate_to=None, **kwargs) -> ScenarioResult:
    """``trio.run`` of :func:`run_over_grpc` on the real clock; the story told to ``narrate_to``
    (a text file) as it happens, if given."""
    def tell_the_story(cluster: ProcessCluster) -> None:
        def tell(record) -> None:
            sentence = narrate(record)
            if sentence is not None:
                print(f"[{record.time:9.3f}s] {sentence}", file=narrate_to, flush=True)

        cluster.trace.listeners.append(tell)

    if narrate_to is not None:
        kwargs["on_cluster"] = tell_the_story
    return trio.run(lambda: run_over_grpc(info, options, **kwargs))
