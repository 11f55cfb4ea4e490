"""Running a scenario script: options in, a cluster to act on, a summary out.

A scenario is a Python file (``scenarios/NAME.py`` or any path) with:

- a module docstring: its first line is the one-line description ``raftsim
  list`` shows; the rest says what it shows and what to watch for;
- optionally ``CLUSTER = {...}``: keyword arguments for :meth:`Cluster.open`
  (``nodes``, ``link``, ``compaction``, ``tick_interval``...), which command
  line options override (``--nodes``, ``--mode``...);
- optionally ``PARAMS = {...}``: named parameters with defaults, set from the
  command line with ``--param key=value`` (values are parsed as ints, floats
  or sizes like ``4MiB`` when they look like one);
- optionally ``MODES = ("streaming",)`` when it is about one mode only (then
  it is also the default ``--mode``);
- optionally ``DEFAULTS = {"seed": 3, "mode": "streaming", "store": "disk"}``:
  what ``raftsim run`` uses when its command line does not say;
- optionally ``ENGINES = ("native", "pysyncobj")``: the Raft engines it runs
  on (default: native only; see :mod:`simulator.engines.scenario_support`);
- optionally ``DEFECTS = ("install_unverified",)``: deliberate bugs switched
  on for this run (:mod:`simulator.raft.defects`), to show that the checks
  catch them;
- optionally ``STREAMING = {...}``: ``Streaming`` options for streaming runs
  (``rate_limit``, ``idle_timeout``, ``chunks_in_flight``, a default
  ``chunk_size`` that ``--chunk-size`` overrides);
- ``async def scenario(sim)``: the story. ``sim.cluster`` is the open
  cluster, ``sim.params`` the parameters, ``sim.say(text)`` narrates,
  ``sim.check(condition, text)`` records the scenario's own checks.

:func:`run_scenario` opens the cluster with the chosen snapshot mode, runs
the story, and returns a :class:`ScenarioResult` that the CLI prints as text
or JSON. Scenarios import only from ``simulator`` and ``transports``.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import attrs
import trio

from transports import Embedded, Streaming

from .client import LivenessError, ProposalTimeoutError
from .cluster import Cluster
from .invariants import InvariantViolation
from .raft import defects
from .snapshots import DiskSnapshotStore, MemorySnapshotStore
from .snapshots.urls import is_store_url
from .trace import CLUSTER, SCENARIO

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?\s*$")
_UNITS = {
    None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
    "KB": 1000, "MB": 1000**2, "GB": 1000**3, "k": 1024, "K": 1024, "M": 1024**2, "G": 1024**3,
}


class ScenarioError(ValueError):
    """A scenario that cannot be found, loaded or configured; the message says why."""


def parse_size(text: str) -> int:
    """``512KiB`` -> 524288; ``4MiB``, ``1GiB``, ``1000`` (bytes)."""
    match = _SIZE.match(str(text))
    if match is None:
        raise ScenarioError(f"size {text!r} not understood; expected e.g. 512KiB, 4MiB, 1GiB or 1000")
    number, unit = match.groups()
    value = float(number) * _UNITS[unit]
    if value != int(value) or value <= 0:
        raise ScenarioError(f"size {text!r} must be a positive whole number of bytes")
    return int(value)


def _parse_value(text: str):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    try:
        return parse_size(text)
    except ScenarioError:
        return text


@attrs.frozen
class ScenarioInfo:
    name: str
    path: Path
    description: str


def find_scenarios(directory: Path = SCENARIO_DIR) -> list[ScenarioInfo]:
    """Every scenario in ``directory`` (files defining ``async def scenario``), by name."""
    found = []
    for path in sorted(directory.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name.startswith("_") or "async def scenario(" not in text:
            continue
        found.append(ScenarioInfo(path.stem, path, _description(load_module(path))))
    return found


def _description(module: ModuleType) -> str:
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else "(no description)"


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"raftsim_scenario_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "scenario", None)):
        raise ScenarioError(f"{path} has no 'async def scenario(sim)'")
    return module


def resolve(name_or_path: str, directory: Path = SCENARIO_DIR) -> ScenarioInfo:
    """A scenario by name (from ``scenarios/``) or by path to a file."""
    path = Path(name_or_path)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"no scenario file {name_or_path!r}")
        return ScenarioInfo(path.stem, path, _description(load_module(path)))
    candidate = directory / f"{name_or_path}.py"
    if not candidate.is_file():
        names = ", ".join(info.name for info in find_scenarios(directory))
        raise ScenarioError(f"unknown scenario {name_or_path!r}; known: {names}")
    return ScenarioInfo(name_or_path, candidate, _description(load_module(candidate)))


@attrs.frozen
class RunOptions:
    """What the command line chose; ``None`` leaves the scenario's own default."""

    seed: int = 0
    mode: str = "embedded"
    chunk_size: int | None = None
    store: str = "memory"  # "memory", "disk", "disk:DIR", "s3://bucket/prefix" or "gs://bucket/prefix"
    pull: bool = False  # followers pull snapshots from a shared store (streaming)
    nodes: int | None = None
    params: tuple[tuple[str, str], ...] = ()
    realtime: bool = False
    engine: str = "native"  # or "pysyncobj": real pysyncobj nodes (simulator.engines)

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("embedded", "streaming"):
            raise ScenarioError(f"mode must be embedded or streaming, got {self.mode!r}")
        if not (self.store == "memory" or self.store == "disk" or self.store.startswith("disk:")
                or is_store_url(self.store)):
            raise ScenarioError(
                f"store must be memory, disk or disk:DIR, or s3://bucket/prefix or gs://bucket/prefix; "
                f"got {self.store!r}"
            )
        if self.pull and self.mode != "streaming":
            raise ScenarioError("--pull needs --mode streaming: followers pull what the leader would stream")
        if self.nodes is not None and self.nodes < 1:
            raise ScenarioError(f"--nodes must be >= 1, got {self.nodes}")


class Sim:
    """What a scenario gets: the cluster, its parameters, and a voice."""

    def __init__(self, cluster: Cluster, params: dict, options: RunOptions) -> None:
        self.cluster = cluster
        self.params = params
        self.options = options
        self.checks: list[tuple[str, bool]] = []

    @property
    def mode(self) -> str:
        return self.options.mode

    def say(self, text: str) -> None:
        """Narrate a step of the story (it goes into the trace, so it replays too)."""
        self.cluster.trace.event(trio.current_time(), CLUSTER, "say", SCENARIO, text=text)

    def check(self, condition: bool, text: str) -> bool:
        """Record one of the scenario's own checks; a failed one makes the run fail."""
        self.checks.append((text, bool(condition)))
        self.cluster.trace.event(trio.current_time(), CLUSTER, "check", SCENARIO,
                                 text=text, ok=bool(condition))
        return bool(condition)


@attrs.frozen
class ScenarioResult:
    scenario: str
    seed: int
    mode: str
    ok: bool
    violations: tuple[str, ...]
    failed_checks: tuple[str, ...]
    summary: dict


def _snapshot_mode(options: RunOptions, store_dir: Path | None, streaming: dict):
    if options.mode == "embedded":
        return Embedded()
    extra = dict(streaming)  # the scenario's own Streaming options, e.g. rate_limit
    if options.chunk_size is not None:
        extra["chunk_size"] = options.chunk_size
    if is_store_url(options.store):
        try:
            return Streaming.in_bucket(options.store, pull=options.pull, **extra)
        except (ValueError, ImportError) as error:  # store errors are ValueErrors
            raise ScenarioError(f"--store {options.store}: {error}") from None
    if options.pull:  # the shared store beside the nodes' own stores
        chunk_size = extra.get("chunk_size", MemorySnapshotStore().chunk_size)
        extra["pull"] = (DiskSnapshotStore(store_dir / "shared", chunk_size=chunk_size, durable=False)
                         if store_dir is not None else MemorySnapshotStore(chunk_size=chunk_size))
    if store_dir is not None:
        return Streaming.on_disk(store_dir, **extra)
    return Streaming(**extra)


def scenario_params(module: ModuleType, options: RunOptions) -> dict:
    params = dict(getattr(module, "PARAMS", {}))
    for key, value in options.params:
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ScenarioError(f"scenario has no parameter {key!r}; its parameters: {known}")
        params[key] = _parse_value(value)
    return params


def scenario_defaults(info: ScenarioInfo) -> dict:
    """What ``raftsim run`` uses for options its command line leaves out.

    A scenario's ``DEFAULTS = {"seed": 3, "mode": "streaming", "store": "disk"}``
    (a counterexample file pins the run that failed this way); otherwise seed 0,
    the memory store, and embedded mode, or the scenario's only mode.
    """
    module = load_module(info.path)
    modes = getattr(module, "MODES", ("embedded", "streaming"))
    defaults = {"seed": 0, "store": "memory", "mode": "embedded" if "embedded" in modes else modes[0]}
    chosen = dict(getattr(module, "DEFAULTS", {}))
    unknown = sorted(set(chosen) - defaults.keys())
    if unknown:
        raise ScenarioError(f"DEFAULTS may set seed, mode and store only, got {unknown[0]!r}")
    return {**defaults, **chosen}


def scenario_defects(module: ModuleType) -> tuple[str, ...]:
    """The deliberate bugs a scenario switches on (``DEFECTS``; see ``simulator.raft.defects``)."""
    names = tuple(getattr(module, "DEFECTS", ()))
    for name in names:
        if name not in defects.DEFECTS:
            known = ", ".join(sorted(defects.DEFECTS))
            raise ScenarioError(f"scenario switches on unknown defect {name!r}; known defects: {known}")
    return names


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
    from .engines.scenario_support import engine_runner

    open_cluster, summarize_run = engine_runner(module, info.name, options, params, Cluster.open, summarize)
    switched_on = scenario_defects(module)
    cluster_options = dict(getattr(module, "CLUSTER", {}))
    if options.nodes is not None:
        cluster_options["nodes"] = options.nodes
    with tempfile.TemporaryDirectory(prefix="raftsim-") as scratch:
        store_dir = None
        if options.store.startswith("disk"):
            store_dir = Path(options.store[5:]) if options.store.startswith("disk:") else Path(scratch)
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
                    await module.scenario(sim)
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
        else:
            sim_checks = sim.checks
        if trace_path is not None and cluster_ref:
            cluster_ref[0].trace.write_jsonl(trace_path)
    failed = tuple(text for text, ok in sim_checks if not ok)
    ok = not violations and not failed
    summary.update(ok=ok, violations=violations, failed_checks=list(failed), defects=list(switched_on))
    mode = "pysyncobj" if options.engine == "pysyncobj" else options.mode
    return ScenarioResult(info.name, options.seed, mode, ok, tuple(violations), failed, summary)


def summarize(cluster: Cluster, name: str, options: RunOptions) -> dict:
    """The machine-readable summary of a run (``raftsim run --json``)."""
    nodes = []
    for node_id in cluster.node_ids:
        runner = cluster.runners[node_id]
        entry = {"id": node_id, "up": runner.is_up}
        if runner.is_up:
            stats = runner.node.statistics()
            entry.update(
                role=stats.role.value, term=stats.term, commit=stats.commit, applied=stats.applied,
                snapshot_index=cluster.storage(node_id).snapshot_metadata.index,
                last_index=stats.last_index, state_digest=cluster.state_machine(node_id).digest(),
            )
        nodes.append(entry)
    return run_summary(cluster, name, options.seed, options.mode, nodes)


def run_summary(cluster, name: str, seed: int, mode: str, nodes: list[dict], *, engine: str | None = None) -> dict:
    """The summary fields every engine reports alike (``nodes`` is engine-specific;
    ``engine`` is named for engines other than the native one)."""
    statistics = cluster.transport.statistics()
    # When the last node applied the last entry (or installed the last snapshot).
    caught_up = max(
        (record.time for record in cluster.trace.of_kind("apply", "snapshot_installed")), default=0.0
    )
    return {
        "scenario": name,
        "seed": seed,
        "mode": mode,
        **({"engine": engine} if engine else {}),
        "virtual_seconds": round(cluster.now(), 6),
        "caught_up_seconds": round(caught_up, 6),
        "trace_sha256": cluster.trace.sha256(),
        "messages_sent": statistics.messages_sent,
        "bytes_sent": statistics.bytes_sent,
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
        "peak_snapshot_memory_bytes": {
            str(node_id): peak for node_id, (_, peak) in cluster.snapshot_memory().items()
        },
    }
