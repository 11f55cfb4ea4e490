"""The ``raftsim`` command line: one module per command, dispatched here.

``raftsim run SCENARIO`` opens a cluster, runs the scenario's story on
virtual time, and tells it: a live ``rich`` view on a terminal, plain
narrated lines otherwise (or ``--json``: one summary object, nothing else).
Exit codes: 0 the run was fine; 1 an invariant was violated or one of the
scenario's own checks failed; 2 a usage or input error, told in one line.

A command is a module with ``NAME``, ``add_parser(commands)`` and
``execute(args, out) -> int``; adding one is a line in :data:`COMMANDS`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from simulator._version import __version__

from . import compare, kv, listing, node, replay, run, sweep
from .errors import Parser, UsageError

#: The commands, in the order ``raftsim --help`` lists them.
COMMANDS = (run, compare, listing, replay, sweep, node, kv)


def _build_parser() -> Parser:
    parser = Parser(
        prog="raftsim",
        description="Simulate a Raft cluster in one process on virtual time, with pluggable "
        "snapshot transfer (embedded in Raft messages, or streamed out of band).",
    )
    parser.add_argument("--version", action="version", version=f"raftsim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(commands)
    commands.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None, out=None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Exit codes: 0 fine; 1 a check failed, an invariant was violated, or the
    scenario's own code raised (one line naming its file and line); 2 bad
    input (one line); 130 interrupted (Ctrl-C).
    """
    out = out or sys.stdout
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "version":
            print(f"raftsim {__version__}", file=out)
            return 0
        for command in COMMANDS:
            if args.command == command.NAME:
                return command.execute(args, out)
        parser.print_help(out)
        return 0
    except BaseException as error:
        code = _exit_code(error)
        if code is None:
            raise  # a bug of raftsim's: its traceback is the report
        return code


def _exit_code(error: BaseException) -> int | None:
    """Tell ``error`` in one line and give its exit code, or ``None`` if it is not one we expect."""
    from simulator.scenario import ScenarioCrash, ScenarioError

    if isinstance(error, BaseExceptionGroup):
        # Raised inside a run's nursery (a print to a closed pipe, Ctrl-C): judged by what it holds.
        leaves = _leaves(error)
        for kind in (KeyboardInterrupt, BrokenPipeError):
            for leaf in leaves:
                if isinstance(leaf, kind):
                    return _exit_code(leaf)
        return None
    if isinstance(error, (UsageError, ScenarioError)):  # bad input, not a bug
        print(f"raftsim: error: {error}", file=sys.stderr)
        return 2
    if isinstance(error, ScenarioCrash):  # the scenario's own code raised: the run failed
        print(f"raftsim: scenario error: {error}", file=sys.stderr)
        return 1
    if isinstance(error, KeyboardInterrupt):
        print("raftsim: interrupted", file=sys.stderr)
        return 130
    if isinstance(error, BrokenPipeError):
        # The reader went away (raftsim ... | head): nothing more to say to it.
        _silence_stdout()
        return 141
    return None


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    found = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so Python's flush at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
