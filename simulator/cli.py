"""The ``raftsim`` command line.

Only ``--version`` and the ``version`` subcommand exist today. The scenario
commands (``run``, ``list``, ``compare``, ``replay``) arrive with the trio
cluster runner; until then the help text says so rather than offering
commands that do nothing.

This module imports only ``simulator._version`` so the CLI starts even while
the layers below it are being built.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from simulator._version import __version__

_COMING_SOON = """\
coming soon:
  run       run a scenario and watch the cluster live
  list      list the available scenarios
  compare   compare Embedded and Streaming snapshot transfer side by side
  replay    replay a recorded run from its seed and fault schedule

These are not implemented yet; the project README says what they will do.
"""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftsim",
        description=(
            "Simulate a Raft cluster in one process on virtual time, "
            "with pluggable snapshot transfer."
        ),
        epilog=_COMING_SOON,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"raftsim {__version__}"
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    subcommands.add_parser("version", help="print the raftsim version and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"raftsim {__version__}")
        return 0
    # No subcommand: there is nothing to run yet, so show what exists and what is coming.
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
