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

import sys
from collections.abc import Sequence

from simulator._version import __version__

from . import compare, listing, replay, run
from .errors import Parser, UsageError

#: The commands, in the order ``raftsim --help`` lists them.
COMMANDS = (run, compare, listing, replay)


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
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
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
