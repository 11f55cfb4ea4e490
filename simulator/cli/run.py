"""``raftsim run SCENARIO``: run one scenario and tell what happens."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .options import (
    add_run_options,
    check_applicable,
    check_output_file,
    fill_defaults,
    run_one,
    run_options,
)
from .teaching import (
    Slowdown,
    add_html_option,
    add_speed_option,
    check_html,
    speed_of,
    write_page,
)

NAME = "run"


def add_parser(commands) -> None:
    run = commands.add_parser(NAME, help="run a scenario and tell what happens")
    add_run_options(run)
    run.add_argument("--mode", choices=("embedded", "streaming", "auto"),
                     help="how snapshots travel (default: the scenario's first mode, embedded if it runs both); "
                          "auto embeds snapshots up to 10 MB and streams larger ones")
    run.add_argument("--trace", metavar="FILE.jsonl", help="also write the trace as JSONL")
    run.add_argument("--json", action="store_true", help="print only a JSON summary at the end")
    run.add_argument("--quiet", action="store_true", help="no story, only the summary")
    run.add_argument("--transport", choices=("sim", "grpc"), default="sim",
                     help="sim: the simulated network (deterministic); grpc: one OS process per node on "
                          "127.0.0.1 over gRPC, on the wall clock (not deterministic; needs raftsim[grpc])")
    add_speed_option(run)
    add_html_option(run)


def execute(args, out) -> int:
    from simulator.scenario import resolve

    check_output_file(args.trace, "--trace")
    check_applicable(args, sys.stderr)
    info = resolve(args.scenario)
    fill_defaults(args, info)
    options = run_options(args, "pysyncobj" if args.engine == "pysyncobj" else args.mode)
    if args.transport == "grpc":
        from simulator.realnet import NOT_DETERMINISTIC, run_grpc_scenario

        if not args.json:
            print(f"raftsim run --transport grpc: {NOT_DETERMINISTIC}", file=out)
        result = run_grpc_scenario(info, options, narrate_to=None if (args.json or args.quiet) else out,
                                   trace_path=Path(args.trace) if args.trace else None)
        if args.json:
            print(json.dumps(result.summary, sort_keys=False), file=out)
        else:
            print_summary(result, out)
        return 0 if result.ok else 1
    live = out.isatty() and not (args.json or args.quiet)
    check_html(args)
    clusters: list = []
    with Slowdown(speed_of(args), interactive=live) as slowdown:
        result = run_one(info, options, out=out, story=not (args.json or args.quiet),
                         trace_path=Path(args.trace) if args.trace else None, live=live,
                         slowdown=slowdown, clusters=clusters)
    if args.html and clusters:
        write_page(args.html, clusters[0], f"raftsim run {info.name} ({result.mode}, seed {result.seed})")
    if args.json:
        print(json.dumps(result.summary, sort_keys=False), file=out)
    else:
        print_summary(result, out, after_story=not args.quiet)
    return 0 if result.ok else 1


def print_summary(result, out, *, after_story: bool = True) -> None:
    """The run's summary; a blank line first separates it from the story told above it."""
    summary = result.summary
    gap = "\n" if after_story else ""
    print(f"{gap}{result.scenario} (seed {result.seed}, {result.mode}): "
          f"{'ok' if result.ok else 'FAILED'} after {summary.get('virtual_seconds', 0):.3f} "
          + ("wall seconds (not deterministic)" if summary.get("clock") == "wall" else "virtual seconds"), file=out)
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
        senders = ",".join(f"n{node}" for node in transfer.get("senders", [transfer["from"]]))
        print(f"  transfer {senders}->n{transfer['to']} snapshot {transfer['snapshot_index']}: "
              f"{transfer['outcome']}, {transfer['size']:,} bytes, {transfer['bytes_sent']:,} sent, "
              f"{transfer['resent_bytes']:,} re-sent, {transfer['retries']} retries", file=out)
    print(f"  trace sha256 {summary.get('trace_sha256')}", file=out)
