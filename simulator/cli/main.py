"""The ``raftsim`` command line: run, list, compare and replay scenarios.

``raftsim run SCENARIO`` opens a cluster, runs the scenario's story on
virtual time, and tells it: a live ``rich`` view on a terminal, plain
narrated lines otherwise (or ``--json``: one summary object, nothing else).
Exit codes: 0 the run was fine; 1 an invariant was violated or one of the
scenario's own checks failed; 2 a usage or input error, told in one line.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from simulator._version import __version__


class UsageError(Exception):
    """Bad command line input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="a name from scenarios/ (see 'raftsim list') or a path")
    parser.add_argument("--seed", type=int, help="run seed: same seed, same run (default: the scenario's, or 0)")
    parser.add_argument("--chunk-size", metavar="SIZE", help="streaming chunk size, e.g. 512KiB, 4MiB")
    parser.add_argument("--store",
                        help="(default: the scenario's, or memory) memory, disk, disk:DIR, s3://bucket/prefix or gs://bucket/prefix (streaming; "
                        "cloud credentials and endpoints from the environment)")
    parser.add_argument("--pull", action="store_true",
                        help="followers pull snapshots from a shared store instead of the leader streaming them")
    parser.add_argument("--nodes", type=int, help="cluster size (default: the scenario's)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a scenario parameter; repeat for more")
    parser.add_argument("--realtime", action="store_true", help="run at wall-clock speed (demos)")
    parser.add_argument("--engine", choices=("native", "pysyncobj"), default="native",
                        help="the Raft engine: raftsim's own, or real pysyncobj nodes")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="raftsim",
        description="Simulate a Raft cluster in one process on virtual time, with pluggable "
        "snapshot transfer (embedded in Raft messages, or streamed out of band).",
    )
    parser.add_argument("--version", action="version", version=f"raftsim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = commands.add_parser("run", help="run a scenario and tell what happens")
    _add_run_options(run)
    run.add_argument("--mode", choices=("embedded", "streaming"),
                     help="how snapshots travel (default: the scenario's first mode, embedded if it runs both)")
    run.add_argument("--trace", metavar="FILE.jsonl", help="also write the trace as JSONL")
    run.add_argument("--json", action="store_true", help="print only a JSON summary at the end")
    run.add_argument("--quiet", action="store_true", help="no story, only the summary")
    compare = commands.add_parser(
        "compare", help="run a scenario in both modes (and on pysyncobj with --engine pysyncobj), side by side")
    _add_run_options(compare)
    commands.add_parser("list", help="list the scenarios")
    replay = commands.add_parser("replay", help="tell a recorded trace (raftsim run --trace)")
    replay.add_argument("trace", help="a JSONL trace file")
    commands.add_parser("version", help="print the version")
    return parser


def _options(args, mode: str):
    from simulator.scenario import RunOptions, parse_size

    params = []
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects KEY=VALUE, got {item!r}")
        params.append((key, value))
    if args.nodes is not None and args.nodes < 1:
        raise UsageError(f"--nodes must be >= 1, got {args.nodes}")
    return RunOptions(
        seed=args.seed,
        mode="embedded" if mode == "pysyncobj" else mode,  # pysyncobj moves snapshots its own way
        chunk_size=parse_size(args.chunk_size) if args.chunk_size else None,
        store=args.store,
        # compare runs the embedded side too, where there is nothing to pull
        pull=args.pull and (mode == "streaming" or args.command == "run"),
        nodes=args.nodes,
        params=tuple(params),
        realtime=args.realtime,
        engine="pysyncobj" if mode == "pysyncobj" else "native",
    )


def _run_one(info, options, *, out, story: bool, trace_path=None, live: bool = False):
    from simulator.cluster.cluster import run
    from simulator.observe.narration import narrate
    from simulator.scenario import run_scenario

    views = []

    def attach(cluster) -> None:
        if live:
            from rich.console import Console

            from simulator.observe.live_view import LiveView

            # The caller saw out.isatty(); rich is told so, whatever the environment says.
            view = LiveView(cluster, Console(file=out, force_terminal=True), scenario=info.name)
            views.append(view)
            view.start()
        elif story:
            def tell(record) -> None:
                sentence = narrate(record)
                if sentence is not None:
                    print(f"[{record.time:9.3f}s] {sentence}", file=out)

            cluster.trace.listeners.append(tell)

    story_run = functools.partial(run_scenario, on_cluster=attach, trace_path=trace_path)
    try:
        return run(story_run, info, options, realtime=options.realtime)
    finally:
        for view in views:  # after the run: the final frame, then the summary below it
            view.stop()


def _print_summary(result, out) -> None:
    summary = result.summary
    print(f"\n{result.scenario} (seed {result.seed}, {result.mode}): "
          f"{'ok' if result.ok else 'FAILED'} after {summary.get('virtual_seconds', 0):.3f} "
          "virtual seconds", file=out)
    for violation in result.violations:
        print(f"  invariant violated: {violation}", file=out)
    for check in result.failed_checks:
        print(f"  check failed: {check}", file=out)
    for node in summary.get("nodes", []):
        if not node["up"]:
            print(f"  n{node['id']}: down", file=out)
            continue
        print(f"  n{node['id']}: {node['role']:<13} term {node['term']:<3} commit {node['commit']:<5} "
              f"applied {node['applied']:<5} snapshot {node['snapshot_index']:<5} "
              f"state {node['state_digest'][7:19]}", file=out)
    for transfer in summary.get("transfers", []):
        print(f"  transfer n{transfer['from']}->n{transfer['to']} snapshot {transfer['snapshot_index']}: "
              f"{transfer['outcome']}, {transfer['size']:,} bytes, {transfer['bytes_sent']:,} sent, "
              f"{transfer['resent_bytes']:,} re-sent, {transfer['retries']} retries", file=out)
    print(f"  trace sha256 {summary.get('trace_sha256')}", file=out)


def _fill_defaults(args, info) -> None:
    """Options the command line left out come from the scenario (``DEFAULTS``, ``MODES``)."""
    from simulator.scenario import scenario_defaults

    for key, value in scenario_defaults(info).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def _cmd_run(args, out) -> int:
    from simulator.scenario import resolve

    info = resolve(args.scenario)
    _fill_defaults(args, info)
    options = _options(args, "pysyncobj" if args.engine == "pysyncobj" else args.mode)
    live = out.isatty() and not (args.json or args.quiet)
    result = _run_one(info, options, out=out, story=not (args.json or args.quiet),
                      trace_path=Path(args.trace) if args.trace else None, live=live)
    if args.json:
        print(json.dumps(result.summary, sort_keys=False), file=out)
    else:
        _print_summary(result, out)
    return 0 if result.ok else 1


def _cmd_compare(args, out) -> int:
    from simulator.observe.narration import human_bytes
    from simulator.scenario import resolve

    info = resolve(args.scenario)
    _fill_defaults(args, info)
    columns = ("embedded", "streaming") + (("pysyncobj",) if args.engine == "pysyncobj" else ())
    results = {mode: _run_one(info, _options(args, mode), out=out, story=False) for mode in columns}
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
    return 0 if all(result.ok for result in results.values()) else 1


def _cmd_list(out) -> int:
    from simulator.scenario import find_scenarios

    scenarios = find_scenarios()
    width = max((len(info.name) for info in scenarios), default=0)
    for info in scenarios:
        print(f"{info.name:<{width}}  {info.description}", file=out)
    return 0


def _cmd_replay(args, out) -> int:
    from simulator.observe.narration import narrate
    from simulator.observe.trace import read_jsonl

    path = Path(args.trace)
    if not path.is_file():
        raise UsageError(f"no trace file {args.trace!r}")
    try:
        records = read_jsonl(path)
    except ValueError as error:
        raise UsageError(str(error)) from None
    for record in records:
        sentence = narrate(record)
        if sentence is not None:
            print(f"[{record.time:9.3f}s] {sentence}", file=out)
    return 0


def main(argv: Sequence[str] | None = None, out=None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    out = out or sys.stdout
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "version":
            print(f"raftsim {__version__}", file=out)
            return 0
        if args.command == "list":
            return _cmd_list(out)
        if args.command == "replay":
            return _cmd_replay(args, out)
        if args.command == "run":
            return _cmd_run(args, out)
        if args.command == "compare":
            return _cmd_compare(args, out)
        parser.print_help(out)
        return 0
    except UsageError as error:
        print(f"raftsim: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        from simulator.scenario import ScenarioError

        if isinstance(error, ScenarioError):  # bad input, not a bug: one line, no traceback
            print(f"raftsim: error: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
