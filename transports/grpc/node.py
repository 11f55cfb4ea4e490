"""A Raft node as an OS process: ``python -m transports.grpc.node`` (also ``raftsim node``).

::

    python -m transports.grpc.node --id 1 --listen 127.0.0.1:7001 \\
        --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \\
        --data-dir data/node-1 [--mode embedded|streaming] [--chunk-size 1MiB] [--store disk|s3://bucket/prefix]

Every node of a new cluster gets the same ``--peers`` and becomes an initial
voter. A node that joins later starts with ``--join`` (and ``--peers``
naming the current members, so it can answer them); then a client asks
the leader to add it (``AddNode`` of the control service, with its
address), first as a learner that catches up, then as a voter.

The node logs one line per event (see :mod:`.events`) to standard error.
SIGTERM and SIGINT stop it cleanly (exit 0, no traceback). Bad flags, an
unreadable store, or an address already in use: one line saying what was
wrong and what was expected, exit code 2. Restarted on the same
``--data-dir`` it continues with the term, vote, log and snapshots it had.

The state machine is ``--state-machine MODULE:CLASS`` (default: the
simulator's ``KeyValueStore``), imported by name when the node starts, so
this transport layer does not depend on the application it replicates.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from pathlib import Path

import trio

from simulator.snapshots import DiskSnapshotStore

from .events import PORT_IN_USE
from .server import PortInUseError
from .storage import RaftLogCorruptError
from .transport import CHUNKS_IN_FLIGHT, GrpcClusterTransport, NodeConfig, NodeSettings, parse_address

DEFAULT_STATE_MACHINE = "simulator:KeyValueStore"
_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1024**2, "mib": 1024**2, "mb": 1000**2}


class UsageError(Exception):
    """Something the user typed is wrong: one line, exit code 2."""


def parse_size(text: str) -> int:
    number = text.rstrip("BbIiKkMm")
    unit = text[len(number):].lower()
    if not number.isdigit() or unit not in _UNITS or int(number) * _UNITS[unit] < 1:
        raise argparse.ArgumentTypeError(f"a positive size such as 65536, 64KiB or 1MiB expected, got {text!r}")
    return int(number) * _UNITS[unit]


def parse_peers(text: str) -> dict[int, str]:
    peers = {}
    for item in filter(None, text.split(",")):
        node, sep, address = item.partition("=")
        if not sep or not node.strip().isdigit() or int(node) < 1:
            raise argparse.ArgumentTypeError(f"peers must be ID=HOST:PORT,... with ids >= 1, got {item!r}")
        try:
            peers[int(node)] = parse_address(address.strip())
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"peer {node}: {error}") from None
    if not peers:
        raise argparse.ArgumentTypeError(f"at least one peer ID=HOST:PORT expected, got {text!r}")
    return peers


def _address(text: str) -> str:
    try:
        return parse_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", type=int, required=True, help="this node's id (>= 1)")
    parser.add_argument("--listen", type=_address, required=True, help="HOST:PORT to serve gRPC on")
    parser.add_argument("--peers", type=parse_peers, required=True, help="ID=HOST:PORT,... of the cluster")
    parser.add_argument("--data-dir", type=Path, required=True, help="Raft state and snapshots live here")
    parser.add_argument("--mode", choices=("embedded", "streaming"), default="streaming")
    parser.add_argument("--chunk-size", type=parse_size, default=1024 * 1024, help="streaming chunk size")
    parser.add_argument("--chunks-in-flight", type=int, default=CHUNKS_IN_FLIGHT,
                        help="chunks asked for per stream call (also at most 64 MiB of them)")
    parser.add_argument("--store", default="disk", help="disk (DATA_DIR/snapshots) or s3://bucket/prefix")
    parser.add_argument("--join", action="store_true", help="start outside the cluster; wait to be added")
    parser.add_argument("--state-machine", default=DEFAULT_STATE_MACHINE, help="MODULE:CLASS to replicate")
    parser.add_argument("--tick", type=float, default=0.1, help="seconds per Raft tick")
    parser.add_argument("--compact-every", type=int, default=None, help="snapshot every N applied entries")


def _state_machine(spec: str):
    module_name, sep, name = spec.partition(":")
    if not sep:
        raise UsageError(f"--state-machine must be MODULE:CLASS, got {spec!r}")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"--state-machine {spec}: cannot import it ({error})") from None


def _store(args):
    if args.store == "disk":
        return DiskSnapshotStore(args.data_dir / "snapshots", chunk_size=args.chunk_size)
    if not args.store.startswith(("s3://", "gs://")):
        raise UsageError(f"--store must be disk, s3://bucket/prefix or gs://bucket/prefix, got {args.store!r}")
    from simulator.snapshots.urls import open_store

    try:
        return open_store(args.store.rstrip("/") + f"/node-{args.id}", chunk_size=args.chunk_size)
    except Exception as error:  # noqa: BLE001 - missing extra, bad credentials, no bucket: all user-fixable
        raise UsageError(f"--store {args.store}: {str(error).splitlines()[0]}") from None


def build(args) -> tuple[GrpcClusterTransport, NodeSettings, object]:
    """The transport, settings and state machine class the flags describe; ``UsageError`` if they cannot be."""
    if args.id < 1:
        raise UsageError(f"--id must be >= 1, got {args.id}")
    peers = dict(args.peers)
    if peers.setdefault(args.id, args.listen) != args.listen:
        raise UsageError(f"--peers gives node {args.id} the address {peers[args.id]}, --listen says {args.listen}")
    if args.chunks_in_flight < 1:
        raise UsageError(f"--chunks-in-flight must be >= 1, got {args.chunks_in_flight}")
    nodes = [NodeConfig(node_id, address) for node_id, address in sorted(peers.items())]
    if args.mode == "streaming":
        transport = GrpcClusterTransport.new_with_streaming_snapshots(
            nodes, _store(args), args.chunk_size, chunks_in_flight=args.chunks_in_flight)
    else:
        if args.store != "disk":
            raise UsageError(f"--store {args.store} needs --mode streaming (embedded snapshots live in DATA_DIR)")
        transport = GrpcClusterTransport.new_with_embedded_snapshots(nodes)
    settings = NodeSettings(tick_seconds=args.tick, compact_every=args.compact_every, join=args.join)
    return transport, settings, _state_machine(args.state_machine)


async def _serve(args, transport, settings, machine) -> None:
    failures: list[PortInUseError | RaftLogCorruptError] = []
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            async def serve_node() -> None:
                try:
                    await transport.serve(args.id, args.data_dir, make_state_machine=machine, settings=settings)
                except (PortInUseError, RaftLogCorruptError) as error:
                    failures.append(error)
                    nursery.cancel_scope.cancel()

            nursery.start_soon(serve_node)
            async for signum in signals:
                logging.getLogger("raftsim.node").info("node %d got %s: shutting down", args.id,
                                                       signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    if failures:
        raise failures[0]


def run(args) -> int:
    """Run a node from parsed flags; the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        transport, settings, machine = build(args)
        trio.run(_serve, args, transport, settings, machine)
    except UsageError as error:
        print(f"raftsim node: {error}", file=sys.stderr)
        return 2
    except PortInUseError as error:
        print(f"raftsim node: {PORT_IN_USE}: {error}", file=sys.stderr)
        return 2
    except RaftLogCorruptError as error:  # refused by name, never served from
        print(f"raftsim node: {error}", file=sys.stderr)
        return 2
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """Bad flags are one line (what was wrong, what was expected) and exit code 2, not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}\n")


def make_parser(prog: str = "python -m transports.grpc.node") -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=prog, description=__doc__.split("\n")[0])
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(make_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
