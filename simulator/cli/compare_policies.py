"""``raftsim compare SCENARIO --policies all``: real systems' snapshot policies under one fault schedule.

A table of :func:`simulator.compare_policies`: per policy, how many runs
passed, and the mean of each measure with a 95 % confidence interval over
the seeds: time until every node caught up (over the runs that did;
``never`` if none did), bytes on the wire, wasted snapshot bytes, and the
largest snapshot memory any node held. ``--json`` prints the same as one
object.
"""

from __future__ import annotations

import json

import attrs

from .errors import UsageError


def execute(args, info, out) -> int:
    from simulator.observe.narration import human_bytes
    from simulator.scenario import scenario_defaults
    from simulator.scenario.policies import compare_policies

    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    defaults = scenario_defaults(info)
    first = args.seed if args.seed is not None else defaults["seed"]
    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects KEY=VALUE, got {item!r}")
        params[key] = value
    try:
        results = compare_policies(str(info.path), args.policies, seeds=args.seeds, first_seed=first,
                                   params=params, store=args.store or defaults["store"])
    except ValueError as error:
        raise UsageError(f"--policies: {error}") from None
    if args.json:
        print(json.dumps({"scenario": info.name, "first_seed": first, "seeds": args.seeds,
                          "policies": {r.policy: attrs.asdict(r) for r in results}}), file=out)
        return 0

    def cell(value, show) -> str:
        if value is None:
            return "never"
        mean, half = value
        return f"{show(mean)} ± {show(half)}" if half else show(mean)

    header = ("policy", "ok", "caught up (s)", "on the wire", "wasted", "peak memory")
    rows = []
    for r in results:
        if r.not_applicable:
            rows.append((r.policy, "n/a", "", "", "", ""))
            continue
        rows.append((r.policy, f"{r.ok}/{r.runs}", cell(r.caught_up_s, lambda v: f"{v:.2f}"),
                     cell(r.wire_bytes, human_bytes), cell(r.wasted_bytes, human_bytes),
                     cell(r.peak_memory_bytes, human_bytes)))
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    print(f"{info.name}: {args.seeds} seed(s) from {first}; mean ± 95% confidence interval\n", file=out)
    for line in (header, *rows):
        print("  ".join(f"{str(value):<{width}}" for value, width in zip(line, widths)).rstrip(), file=out)
    return 0
