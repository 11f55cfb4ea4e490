"""The options every scenario-running command shares (``run``, ``compare``), and what they become."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .errors import UsageError


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", help="a name from scenarios/ (see 'raftsim list') or a path")
    parser.add_argument("--seed", type=int, help="run seed: same seed, same run (default: the scenario's, or 0)")
    parser.add_argument("--chunk-size", metavar="SIZE", help="streaming chunk size, e.g. 512KiB, 4MiB")
    parser.add_argument("--store",
                        help="(default: the scenario's, or memory) memory, disk, disk:DIR, s3://bucket/prefix or "
                        "gs://bucket/prefix (streaming; cloud credentials and endpoints from the environment)")
    parser.add_argument("--pull", action="store_true",
                        help="followers pull snapshots from a shared store instead of the leader streaming them")
    parser.add_argument("--nodes", type=int, help="cluster size (default: the scenario's)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a scenario parameter; repeat for more")
    parser.add_argument("--realtime", action="store_true",
                        help="show the run at wall-clock pace (demos): the same virtual-time run, same events and "
                             "trace hash; in the live view space pauses, n steps, + and - change the speed")
    parser.add_argument("--engine", choices=("native", "pysyncobj"), default="native",
                        help="the Raft engine: raftsim's own, or real pysyncobj nodes")
    parser.add_argument("--policy", metavar="NAME",
                        help="move snapshots as a real system does: raftsim, etcd, hashicorp, openraft, zeebe, "
                             "tikv or cockroachdb (replaces --mode; see transports/policies.py)")
    parser.add_argument("--max-virtual-seconds", type=float, default=600.0, metavar="S",
                        help="fail a story still running after S virtual seconds (default 600)")
    parser.add_argument("--max-wall-seconds", type=float, default=1800.0, metavar="S",
                        help="fail a story still running after S wall-clock seconds (default 1800)")


def check_output_file(path: str | None, option: str) -> None:
    """Refuse, before the run, a file the run could not write at its end."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{option} {path} is a folder; expected a file name")
    if not target.parent.is_dir():
        raise UsageError(f"{option} {path}: folder {str(target.parent)!r} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise UsageError(f"{option} {path}: folder {str(target.parent)!r} is not writable")


def policy_mode(name: str) -> str:
    """``embedded`` or ``streaming``: how policy ``name`` moves snapshots (the story's ``sim.mode``)."""
    from simulator.scenario.policies import policy_mode as mode_of

    try:
        return mode_of(name)
    except ValueError as error:
        raise UsageError(f"--policy: {error}") from None


def check_applicable(args, err) -> None:
    """Options that do nothing for this run are refused or warned about, never silently ignored.

    Call it before :func:`fill_defaults`, while ``None`` still means "not given".
    """
    if getattr(args, "policy", None) is not None:
        if getattr(args, "mode", None) is not None or args.pull or args.engine != "native":
            raise UsageError("--policy chooses how snapshots travel: it does not go with --mode, --pull or "
                             "--engine")
        if getattr(args, "transport", "sim") == "grpc":
            raise UsageError("--policy is modelled on the simulated network only: it does not go with "
                             "--transport grpc")
        args.mode = policy_mode(args.policy)
    if args.engine == "pysyncobj" and getattr(args, "mode", None) is not None:
        raise UsageError("--mode does not apply to --engine pysyncobj: pysyncobj moves snapshots its own way")
    if getattr(args, "mode", None) == "embedded":
        if args.store is not None and args.store != "memory":
            raise UsageError(f"--store {args.store} does not apply to --mode embedded: snapshots travel inside "
                             f"Raft messages and no store is used; drop it or use --mode streaming")
        if args.chunk_size is not None:
            print("raftsim: warning: in embedded mode --chunk-size only sizes the scenario's state; "
                  "snapshots travel whole", file=err)


def fill_defaults(args, info) -> None:
    """Options the command line left out come from the scenario (``DEFAULTS``, ``MODES``)."""
    from simulator.scenario import scenario_defaults

    for key, value in scenario_defaults(info).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def run_options(args, mode: str):
    """The :class:`RunOptions` of one run of ``mode`` (embedded, streaming or pysyncobj)."""
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
        policy=getattr(args, "policy", None),
        max_virtual_seconds=args.max_virtual_seconds,
        max_wall_seconds=args.max_wall_seconds,
    )


def run_one(info, options, *, out, story: bool, trace_path=None, live: bool = False, slowdown=None,
            clusters: list | None = None):
    """Run one scenario with ``options``: live view, narrated story, or silent; the result.

    ``slowdown`` (a :class:`simulator.cli.teaching.Slowdown`) paces the run;
    ``clusters`` receives the cluster, for a page drawn after the run.
    """
    import functools

    from simulator.cluster.cluster import run
    from simulator.observe.narration import narrate
    from simulator.scenario import run_scenario

    views = []

    def attach(cluster) -> None:
        if clusters is not None:
            clusters.append(cluster)
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
        if slowdown is not None:
            slowdown.attach(cluster, views[0] if views else None)

    story_run = functools.partial(run_scenario, on_cluster=attach, trace_path=trace_path)
    try:
        # --realtime only paces this run (slowdown): the clock stays virtual, the story the same.
        return run(story_run, info, options)
    finally:
        for view in views:  # after the run: the final frame, then the summary below it
            view.stop()
