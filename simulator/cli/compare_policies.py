"""``raftsim compare SCENARIO --policies all``: real systems' snapshot policies under one fault schedule.

Each policy (:mod:`transports.policies`) runs the scenario for ``--seeds N``
seeds from ``--seed`` on; the table shows, per policy, how many runs
passed, and the mean of each measure with a 95 % confidence interval over
the seeds (Student's t): time until every node caught up (over the runs
that did; ``never`` if none did), bytes on the wire, wasted snapshot bytes (re-sent, or sent for a transfer that was never
installed), and the largest snapshot memory any node held. A policy whose
snapshot mode the scenario does not run in (etcd's embedded snapshots in a
streaming-only story) shows ``n/a``.
"""

from __future__ import annotations

import json
import math
import statistics

from .errors import UsageError
from .options import fill_defaults, policy_mode, run_one, run_options

#: Student's t, 0.975 quantile, by degrees of freedom (beyond 30: the normal's 1.96).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042}


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


def _interval(values: list) -> tuple[float, float] | None:
    known = [value for value in values if value is not None]
    return mean_interval(known) if known else None


def measures(summary: dict) -> dict[str, float | None]:
    transfers = summary.get("transfers", [])
    # Bytes that did not end up in an installed snapshot: re-sends, and all of a transfer never installed.
    wasted = sum(t["resent_bytes"] if t["outcome"] == "installed" else t["bytes_sent"] for t in transfers)
    return {
        # A run that failed never caught up: it has no catch-up time to average.
        "caught_up_s": summary["caught_up_seconds"] if summary["ok"] else None,
        "wire_bytes": summary["bytes_sent"],
        "wasted_bytes": wasted,
        "peak_memory_bytes": max(summary["peak_snapshot_memory_bytes"].values(), default=0),
    }


def execute(args, info, out) -> int:
    from simulator.observe.narration import human_bytes
    from simulator.scenario import ScenarioError
    from transports.policies import policy_names

    try:
        names = policy_names(args.policies)
    except ValueError as error:
        raise UsageError(f"--policies: {error}") from None
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    fill_defaults(args, info)  # seed and store; each policy sets the mode itself
    first = args.seed
    table: dict[str, dict] = {}
    for name in names:
        args.policy, args.mode = name, policy_mode(name)
        runs = []
        for seed in range(first, first + args.seeds):
            args.seed = seed
            try:
                runs.append(run_one(info, run_options(args, args.mode), out=out, story=False).summary)
            except ScenarioError as error:  # the story does not run in this policy's mode
                table[name] = {"n/a": str(error)}
                break
        else:
            per_run = [measures(summary) for summary in runs]
            table[name] = {
                "ok": sum(1 for summary in runs if summary["ok"]),
                "runs": len(runs),
                **{key: _interval([m[key] for m in per_run]) for key in per_run[0]},
            }
    args.seed = first
    if args.json:
        print(json.dumps({"scenario": info.name, "first_seed": first, "seeds": args.seeds, "policies": table}),
              file=out)
        return 0

    def cell(value, show) -> str:
        if value is None:
            return "never"
        mean, half = value
        return f"{show(mean)} ± {show(half)}" if half else show(mean)

    header = ("policy", "ok", "caught up (s)", "on the wire", "wasted", "peak memory")
    rows = []
    for name, row in table.items():
        if "n/a" in row:
            rows.append((name, "n/a", "", "", "", ""))
            continue
        rows.append((name, f"{row['ok']}/{row['runs']}",
                     cell(row["caught_up_s"], lambda v: f"{v:.2f}"),
                     cell(row["wire_bytes"], human_bytes),
                     cell(row["wasted_bytes"], human_bytes),
                     cell(row["peak_memory_bytes"], human_bytes)))
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    print(f"{info.name}: {args.seeds} seed(s) from {first}; mean ± 95% confidence interval\n", file=out)
    for line in (header, *rows):
        print("  ".join(f"{str(value):<{width}}" for value, width in zip(line, widths)).rstrip(), file=out)
    return 0
