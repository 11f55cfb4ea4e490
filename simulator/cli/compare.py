"""``raftsim compare SCENARIO``: the same scenario in each mode (and engine), side by side.

The columns are the modes the scenario runs in (a streaming-only story
shows its one column) and, with ``--engine pysyncobj``, pysyncobj; a
pysyncobj-only story has only that column. ``--json`` prints one object:
the scenario, the seed, and each column's run summary.
"""

from __future__ import annotations

import json

from .errors import UsageError
from .options import add_run_options, fill_defaults, run_one, run_options

NAME = "compare"


def add_parser(commands) -> None:
    compare = commands.add_parser(
        NAME, help="run a scenario in both modes (and on pysyncobj with --engine pysyncobj), side by side")
    add_run_options(compare)
    compare.add_argument("--json", action="store_true", help="print one JSON object: each column's run summary")
    compare.add_argument("--policies", metavar="LIST",
                         help="compare real systems' snapshot policies instead of modes: 'all' or e.g. "
                              "etcd,hashicorp,raftsim (see transports/policies.py)")
    compare.add_argument("--seeds", type=int, default=1, metavar="N",
                         help="with --policies: run N seeds from --seed and show 95%% confidence intervals")


def columns_of(info, engine: str) -> tuple[str, ...]:
    """The columns a comparison of ``info`` shows (see the module docstring)."""
    from simulator.scenario import load_module

    module = load_module(info.path)
    engines = getattr(module, "ENGINES", ("native",))
    native = tuple(mode for mode in getattr(module, "MODES", ("embedded", "streaming"))
                   if mode in ("embedded", "streaming", "auto")) if "native" in engines else ()
    wants_pysyncobj = engine == "pysyncobj" or "native" not in engines
    return native + (("pysyncobj",) if wants_pysyncobj and "pysyncobj" in engines else ())


def execute(args, out) -> int:
    from simulator.observe.narration import human_bytes
    from simulator.scenario import resolve

    info = resolve(args.scenario)
    if args.policies is not None:
        if args.policy is not None or args.engine != "native":
            raise UsageError("--policies compares policies itself: it does not go with --policy or --engine")
        from . import compare_policies

        return compare_policies.execute(args, info, out)
    if args.seeds != 1:
        raise UsageError("--seeds goes with --policies")
    fill_defaults(args, info)
    columns = columns_of(info, args.engine)
    results = {mode: run_one(info, run_options(args, mode), out=out, story=False) for mode in columns}
    ok = all(result.ok for result in results.values())
    if args.json:
        print(json.dumps({"scenario": info.name, "seed": args.seed, "ok": ok,
                          "columns": {mode: result.summary for mode, result in results.items()}}), file=out)
        return 0 if ok else 1
    rows = []

    def row(label, value) -> None:
        rows.append((label, *(value(results[mode].summary) for mode in columns)))

    def transfers(summary):
        return summary.get("transfers", [])

    row("result", lambda s: "ok" if s["ok"] else "FAILED")
    row("virtual s, whole run", lambda s: f"{s['virtual_seconds']:.3f}")
    row("virtual s, all caught up", lambda s: f"{s['caught_up_seconds']:.3f}")
    row("messages sent", lambda s: f"{s['messages_sent']:,}")
    row("bytes sent", lambda s: human_bytes(s["bytes_sent"]))
    row("snapshot transfers", lambda s: str(len(transfers(s))))
    row("snapshot bytes sent", lambda s: human_bytes(sum(t["bytes_sent"] for t in transfers(s))))
    row("snapshot bytes re-sent", lambda s: human_bytes(sum(t["resent_bytes"] for t in transfers(s))))
    row("transfer retries", lambda s: str(sum(t["retries"] for t in transfers(s))))
    row("transfer seconds", lambda s: f"{sum(t['seconds'] for t in transfers(s)):.3f}")
    nodes = {node for result in results.values() for node in result.summary["peak_snapshot_memory_bytes"]}
    for node in sorted(nodes, key=int):
        row(f"peak snapshot memory n{node}",
            lambda s, node=node: human_bytes(s["peak_snapshot_memory_bytes"].get(node, 0)))
    row("invariants", lambda s: "violated" if s["violations"] else "held")
    width = max(len(label) for label, *_ in rows)
    print(f"{info.name} (seed {args.seed})\n", file=out)
    print(f"{'':<{width}}" + "".join(f"  {mode:>14}" for mode in columns), file=out)
    for label, *values in rows:
        print(f"{label:<{width}}" + "".join(f"  {value:>14}" for value in values), file=out)
    return 0 if ok else 1
