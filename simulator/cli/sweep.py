"""``raftsim sweep``: many seeds of scenarios (or swarm fault programs) on Dask.

    raftsim sweep node_join mid_transfer_failure --seeds 0:10000 --mode both
    raftsim sweep --programs --seeds 0:2000 --defect resume_from_zero --out found/
    raftsim sweep node_join --seeds 0:500 --scheduler tcp://10.0.0.5:8786

Without ``--scheduler`` it starts a ``LocalCluster`` (one worker process per
core, or ``--workers N``); with it, the same tasks go to that cluster's
workers, which need raftsim installed (``pip install 'raftsim[sweep]'``) and
one thread each (``dask worker tcp://... --nthreads 1``). A progress bar shows
runs done, failing, and runs per second; at the end a table lists each
violated property with its shrunk, replayable counterexample file, and how
often each snapshot-path coverage goal was reached. ``--json FILE`` writes
the whole report. Exit code 1 if any seed failed, 2 for bad input.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import UsageError

NAME = "sweep"


def add_parser(commands) -> None:
    """Register ``sweep`` on the ``raftsim`` sub-command parsers."""
    sweep = commands.add_parser(NAME, help="run many seeds on Dask (local cores or a cluster); "
                                "group, shrink and replay failures")
    sweep.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenario names or paths")
    sweep.add_argument("--programs", action="store_true",
                       help="also sweep swarm fault programs (each seed draws its features and program)")
    sweep.add_argument("--seeds", default="0:100", help="seed range START:STOP (default 0:100)")
    sweep.add_argument("--mode", choices=("embedded", "streaming", "both"), default="both",
                       help="snapshot modes for the scenarios (default both; swarm seeds draw their own)")
    sweep.add_argument("--defect", action="append", default=[], metavar="NAME",
                       help="switch on a deliberate defect (simulator.raft.defects) in every run; repeat for more")
    sweep.add_argument("--max-steps", type=int, default=12, help="longest swarm program (default 12)")
    sweep.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a running Dask scheduler to use")
    sweep.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="local worker processes when no --scheduler is given (default: the cores)")
    sweep.add_argument("--out", default="sweep-counterexamples", help="directory for counterexample files")
    sweep.add_argument("--json", metavar="FILE", help="write the report as JSON")


def execute(args, out) -> int:
    """Carry out ``raftsim sweep``; bad input raises :class:`UsageError` (one line, exit 2)."""
    from simulator.explore.sweep import MODES, SweepError, SweepPlan, connect, parse_seeds

    try:
        if args.max_steps < 1:
            raise SweepError(f"--max-steps must be >= 1, got {args.max_steps}")
        targets = tuple(args.scenarios) + (("programs",) if args.programs else ())
        plan = SweepPlan(targets=targets, seeds=parse_seeds(args.seeds),
                         modes=MODES if args.mode == "both" else (args.mode,),
                         defects=tuple(args.defect), max_steps=args.max_steps)
        plan.tasks()  # every scenario resolves before a cluster starts
        client, cluster = connect(args.scheduler, args.workers)
    except (SweepError, ImportError) as error:
        raise UsageError(str(error)) from None
    try:
        report = _with_progress(plan, client, Path(args.out), out)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    _print_report(report, out)
    return 1 if report["failing"] else 0


def _with_progress(plan, client, out_dir: Path, out) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from simulator.explore.sweep import run_sweep

    console = Console(file=out)
    columns = (TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
               TextColumn("[red]{task.fields[failing]} failing"), TextColumn("{task.fields[rate]:.1f} runs/s"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=not console.is_terminal) as bar:
        task = bar.add_task("sweep", total=len(plan.tasks()), failing=0, rate=0.0)

        def advance(result: dict, progress) -> None:
            bar.update(task, completed=progress.done, failing=progress.failing, rate=progress.per_second)

        return run_sweep(plan, client, out_dir, on_result=advance)


def _print_report(report: dict, out) -> None:
    from rich.console import Console
    from rich.table import Table

    from simulator.explore.sweep import summary_rows

    console = Console(file=out, width=max(120, Console(file=out).width))
    console.print(f"{report['runs']:,} runs on {report['workers']} workers in {report['wall_seconds']:.1f} s "
                  f"({report['runs_per_minute']:,.0f} runs/min); {report['failing']:,} failing")
    if report["groups"]:
        table = Table(title="Failures by violated property")
        for column in ("property", "seeds", "fastest failing", "steps", "trace hash on 2nd worker", "counterexample"):
            table.add_column(column)
        for row in summary_rows(report):
            table.add_row(*row)
        console.print(table)
        for group in report["groups"]:  # unwrapped, to copy from
            print(f"{group['property']}: replay with  raftsim run {group['counterexample']}", file=out)
    coverage = Table(title=f"Snapshot-path coverage goals ({report['coverage_share']:.0%} reached)")
    coverage.add_column("goal")
    coverage.add_column("runs reaching it", justify="right")
    coverage.add_column("share", justify="right")
    for goal, count in report["coverage"].items():
        coverage.add_row(goal, f"{count:,}", f"{count / max(report['runs'], 1):.1%}")
    console.print(coverage)
