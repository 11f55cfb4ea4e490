"""Running scenario scripts on either engine: which cluster to open, how to summarise it.

A scenario says which engines it runs on with ``ENGINES = ("native",
"pysyncobj")`` (default: native only, since most stories use native
details such as streaming chunks). For pysyncobj runs it may add
``PYSYNCOBJ = {...}`` (``PysyncobjCluster.open`` options) and
``def pysyncobj_options(params) -> dict`` for options that depend on its
parameters (the bug scenarios switch workarounds that way).
"""

from __future__ import annotations

from types import ModuleType

from ..cluster.node import CompactionPolicy
from ..engines import ENGINES
from .script import ScenarioError
from .summary import run_summary

#: Cluster options the native engine understands and pysyncobj has no use for.
_NATIVE_ONLY = ("snapshot_mode", "transport", "config")


def scenario_engines(module: ModuleType) -> tuple[str, ...]:
    return tuple(getattr(module, "ENGINES", ("native",)))


def engine_runner(module: ModuleType, name: str, options, params: dict, native_open, native_summarize):
    """``(open, summarize)`` for the engine ``options.engine`` chose; a clear error if unsupported."""

    engine = options.engine
    if engine not in ENGINES:
        raise ScenarioError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    engines = scenario_engines(module)
    if engine not in engines:
        raise ScenarioError(f"scenario {name!r} runs on the {', '.join(engines)} engine only")
    if engine == "native":
        return native_open, native_summarize

    # Loaded only for pysyncobj runs: it imports pysyncobj itself.
    from ..engines.pysyncobj_cluster import PysyncobjCluster

    extra = dict(getattr(module, "PYSYNCOBJ", {}))
    hook = getattr(module, "pysyncobj_options", None)
    if hook is not None:
        extra.update(hook(params))

    def open_pysyncobj(**cluster_options):
        for key in _NATIVE_ONLY:
            cluster_options.pop(key, None)
        compaction = cluster_options.get("compaction")
        if isinstance(compaction, CompactionPolicy) and compaction.keep_entries:
            # pysyncobj keeps no entries behind its snapshot; the policy's cadence still applies.
            cluster_options["compaction"] = CompactionPolicy(every=compaction.every)
        cluster_options.update(extra)
        return PysyncobjCluster.open(**cluster_options)

    return open_pysyncobj, summarize_pysyncobj


def summarize_pysyncobj(cluster, name: str, options) -> dict:
    """The same JSON summary as a native run, from a :class:`PysyncobjCluster`."""
    nodes = []
    for node_id in cluster.node_ids:
        runner = cluster.runners[node_id]
        entry = {"id": node_id, "up": runner.is_up}
        if runner.is_up:
            stats = runner.statistics()
            entry.update(
                role=stats.role.value, term=stats.term, commit=stats.commit, applied=stats.applied,
                snapshot_index=stats.snapshot_index, last_index=stats.last_index,
                state_digest=cluster.state_machine(node_id).digest(),
            )
        nodes.append(entry)

    summary = run_summary(cluster, name, options.seed, "pysyncobj", nodes, engine="pysyncobj")
    summary["engine_problems"] = cluster.engine_problems()
    return summary


__all__ = ["engine_runner", "scenario_engines", "summarize_pysyncobj"]
