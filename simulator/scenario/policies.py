"""One scenario under each real system's snapshot policy, over several seeds, with confidence intervals.

:func:`compare_policies` is what ``raftsim compare SCENARIO --policies all``
prints and what notebook 06 plots: for each policy of
:mod:`transports.policies`, the scenario runs once per seed, and each
measure gets its mean and the half-width of its 95 % confidence interval
(Student's t over the seeds). A policy whose snapshot mode the scenario does
not run in (etcd's embedded snapshots in a streaming-only story) is marked
``not_applicable`` with the reason.
"""

from __future__ import annotations

import math
import statistics

import attrs

from transports import Embedded
from transports.policies import policy, policy_names

from ..cluster.cluster import run
from .runner import run_scenario
from .script import RunOptions, ScenarioError, resolve

#: Student's t, 0.975 quantile, by degrees of freedom (beyond 30: the normal's 1.96).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}

#: The measures, in the order tables show them.
MEASURES = ("caught_up_s", "wire_bytes", "wasted_bytes", "peak_memory_bytes")


def t_quantile(freedom: int) -> float:
    if freedom > 30:
        return 1.96
    return _T975[max(key for key in _T975 if key <= freedom)]


def mean_interval(values: list[float]) -> tuple[float, float]:
    """``(mean, half-width of its 95 % confidence interval)``; the width is 0 for one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


@attrs.frozen
class PolicyResult:
    """One policy's runs of a scenario: how many passed, and each measure as ``(mean, ±)``.

    ``caught_up_s`` averages only the runs that passed (``None``: none did).
    ``wasted_bytes`` counts bytes that did not end up in an installed
    snapshot: re-sends, and all of a transfer that was never installed.
    """

    policy: str
    mode: str
    runs: int
    ok: int
    caught_up_s: tuple[float, float] | None = None
    wire_bytes: tuple[float, float] | None = None
    wasted_bytes: tuple[float, float] | None = None
    peak_memory_bytes: tuple[float, float] | None = None
    not_applicable: str | None = None


def measures(summary: dict) -> dict[str, float | None]:
    """The measures of one run, from its summary (``raftsim run --json``)."""
    transfers = summary.get("transfers", [])
    return {
        "caught_up_s": summary["caught_up_seconds"] if summary["ok"] else None,
        "wire_bytes": summary["bytes_sent"],
        "wasted_bytes": sum(t["resent_bytes"] if t["outcome"] == "installed" else t["bytes_sent"]
                            for t in transfers),
        "peak_memory_bytes": max(summary["peak_snapshot_memory_bytes"].values(), default=0),
    }


def _interval(values: list) -> tuple[float, float] | None:
    known = [value for value in values if value is not None]
    return mean_interval(known) if known else None


def policy_mode(name: str) -> str:
    """``embedded`` or ``streaming``: how policy ``name`` moves snapshots."""
    return "embedded" if isinstance(policy(name), Embedded) else "streaming"


def compare_policies(scenario: str, policies: str = "all", *, seeds: int = 3, first_seed: int = 0,
                     params: dict | None = None, store: str = "memory") -> list[PolicyResult]:
    """Run ``scenario`` under each of ``policies`` (``"all"`` or ``"etcd,raftsim"``) for ``seeds``
    seeds from ``first_seed``; one :class:`PolicyResult` per policy, in the order asked."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    info = resolve(scenario)
    chosen = tuple((key, str(value)) for key, value in (params or {}).items())
    results = []
    for name in policy_names(policies):
        mode = policy_mode(name)
        summaries = []
        try:
            for seed in range(first_seed, first_seed + seeds):
                options = RunOptions(seed=seed, mode=mode, policy=name, params=chosen, store=store)
                summaries.append(run(run_scenario, info, options).summary)
        except ScenarioError as error:  # the story does not run in this policy's mode
            if "mode only" not in str(error):
                raise
            results.append(PolicyResult(name, mode, 0, 0, not_applicable=str(error)))
            continue
        per_run = [measures(summary) for summary in summaries]
        results.append(PolicyResult(
            name, mode, len(summaries), sum(1 for summary in summaries if summary["ok"]),
            **{key: _interval([m[key] for m in per_run]) for key in MEASURES},
        ))
    return results
