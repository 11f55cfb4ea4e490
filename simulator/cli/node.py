"""``raftsim node``: run one Raft node as an OS process, serving gRPC (the real network).

The same program as ``python -m transports.grpc.node``, with the same flags
(``raftsim node --help`` lists them); this command hands its arguments over
unparsed, so the two never drift apart. It needs the ``grpc`` extra; the
rest of raftsim does not, which is why the import happens only here, when
the command runs.
"""

from __future__ import annotations

import argparse

from .errors import UsageError

NAME = "node"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        NAME, add_help=False, prefix_chars="\0",  # every flag goes to the node's own parser
        help="run a Raft node as a process serving gRPC (flags: raftsim node --help)",
    )
    parser.add_argument("flags", nargs=argparse.REMAINDER)


def import_grpc_module(name: str):
    """``transports.grpc.<name>``, or a one-line ``UsageError`` saying how to install it."""
    import importlib

    try:
        return importlib.import_module(f"transports.grpc.{name}")
    except ImportError as error:
        raise UsageError(f"raftsim {NAME} and kv need the grpc extra ({error}); "
                         "install it with: python -m pip install 'raftsim[grpc]'") from None


def execute(args, out) -> int:
    node = import_grpc_module("node")
    parser = node.make_parser("raftsim node")
    try:
        parsed = parser.parse_args(args.flags)
    except SystemExit as exit_:  # --help (0) or a bad flag (2, told in one line above)
        return int(exit_.code or 0)
    return node.run(parsed)
