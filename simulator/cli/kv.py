"""``raftsim kv put KEY VALUE`` / ``raftsim kv get KEY``: a client of a real cluster's key-value store.

``--cluster 1=HOST:PORT,2=HOST:PORT,...`` names the nodes (started with
``raftsim node``); the client asks any of them and follows the leader hint
(``transports.grpc.ClusterClient``). A put returns once the entry is
applied; a get is linearizable (Raft ReadIndex), so it sees every put acknowledged
before it. Exit codes: 0 done; 1 the key is not there, or no leader
answered in time (one line saying the last reason); 2 bad input.
"""

from __future__ import annotations

import sys

from .errors import UsageError
from .node import import_grpc_module

NAME = "kv"


def add_parser(commands) -> None:
    kv = commands.add_parser(NAME, help="put or get a key on a cluster of raftsim node processes")
    ops = kv.add_subparsers(dest="kv_command", metavar="put|get", required=True, parser_class=type(kv))
    put = ops.add_parser("put", help="set KEY to VALUE (UTF-8 text)")
    put.add_argument("key")
    put.add_argument("value")
    get = ops.add_parser("get", help="print the value of KEY")
    get.add_argument("key")
    for parser in (put, get):
        parser.add_argument("--cluster", required=True, help="ID=HOST:PORT,... of the cluster's nodes")
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to find a leader")


def execute(args, out) -> int:
    from simulator.machines.state_machines import KeyValueStore

    node = import_grpc_module("node")
    client_module = import_grpc_module("client")
    try:
        cluster = node.parse_peers(args.cluster)
    except Exception as error:  # argparse.ArgumentTypeError, one line
        raise UsageError(f"--cluster: {error}") from None
    with client_module.ClusterClient(cluster, timeout=args.timeout) as client:
        try:
            if args.kv_command == "put":
                reply = client.propose(KeyValueStore.put(args.key, args.value.encode()))
                print(f"{reply.result} (entry {reply.index}, leader {client.leader})", file=out)
                return 0
            value = client.get(args.key)
        except client_module.ClusterUnavailableError as error:
            print(f"raftsim kv: {error}", file=sys.stderr)
            return 1
    if value is None:
        print(f"raftsim kv: key {args.key!r} not found", file=sys.stderr)
        return 1
    print(value.decode("utf-8", "replace"), file=out)
    return 0
