"""``GrpcClusterTransport``: the seed's transport between OS processes, in both snapshot modes.

It is a description of the cluster (which node listens where) plus the
snapshot transfer mode, the same :class:`~transports.Embedded` /
:class:`~transports.Streaming` values the in-memory transport takes::

    nodes = [NodeConfig(1, "127.0.0.1:7001"), NodeConfig(2, "127.0.0.1:7002"), NodeConfig(3, "127.0.0.1:7003")]
    transport = GrpcClusterTransport.new_with_streaming_snapshots(nodes, DiskSnapshotStore("snaps"))
    await transport.serve(1, "data/node-1", make_state_machine=KeyValueStore)   # in node 1's process

Each process calls :meth:`GrpcClusterTransport.serve` for its own node id;
``python -m transports.grpc.node`` (and ``raftsim node``) do exactly that
from command-line flags. What one node process runs is in :mod:`.server`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import trio

from simulator.snapshots import SnapshotStore

from ..modes import MIB, Embedded, Streaming
from .server import NodeServer

#: Chunks a receiver asks for per call (and at most snapshot_pull.WINDOW_BYTES of them):
#: after a cut, at most this many are sent again.
CHUNKS_IN_FLIGHT = 64


def parse_address(text: str) -> str:
    """``HOST:PORT`` checked; ``ValueError`` naming what was wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address must be HOST:PORT with a port in 1..65535, got {text!r}")
    return text


@attrs.frozen
class NodeConfig:
    """One member of the cluster: its id and the ``HOST:PORT`` its gRPC server listens on."""

    node_id: int
    address: str = attrs.field(converter=parse_address)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.node_id, int) or self.node_id < 1:
            raise ValueError(f"node id must be an integer >= 1, got {self.node_id!r}")


@attrs.frozen
class NodeSettings:
    """How a node process paces itself on the wall clock.

    A tick is ``tick_seconds``; elections time out after ``election_tick`` to
    twice that many ticks (3-6 s by default: long enough that a loaded
    two-core machine, busy making a 100 MB snapshot, does not see a
    leader die that is only slow). ``join=True`` starts with no membership,
    waiting to be added by the leader (``AddNode``); otherwise every node of
    the transport is an initial voter.
    """

    tick_seconds: float = 0.1
    election_tick: int = 30
    heartbeat_tick: int = 3
    compact_every: int | None = None
    keep_entries: int = 0
    join: bool = False
    #: Leader: a streamed snapshot offer idle this long is offered again.
    offer_timeout: float = 5.0


@attrs.define
class GrpcClusterTransport:
    """See the module docstring. Build one with the two named constructors."""

    nodes: tuple[NodeConfig, ...] = attrs.field(converter=tuple)
    mode: Embedded | Streaming = attrs.field(factory=Embedded)
    chunks_in_flight: int = CHUNKS_IN_FLIGHT

    def __attrs_post_init__(self) -> None:
        ids = [node.node_id for node in self.nodes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"node ids must be unique, got {ids}")

    @classmethod
    def new_with_embedded_snapshots(cls, nodes) -> GrpcClusterTransport:
        """Snapshots travel whole inside the Raft message (``SnapshotTransferMode::Embedded``)."""
        return cls(nodes, Embedded())

    @classmethod
    def new_with_streaming_snapshots(cls, nodes, store: SnapshotStore | Callable[[int], SnapshotStore],
                                     chunk_size: int = MIB, *,
                                     chunks_in_flight: int = CHUNKS_IN_FLIGHT) -> GrpcClusterTransport:
        """Snapshots stream out of band from ``store`` in ``chunk_size`` chunks.

        ``store`` is this process's node's store, or a function of the node id
        giving one. Its ``chunk_size`` must equal ``chunk_size``: the store cuts
        the chunks.
        """
        def store_of(node_id: int) -> SnapshotStore:
            chosen = store if isinstance(store, SnapshotStore) else store(node_id)
            if chosen.chunk_size != chunk_size:
                raise ValueError(f"the store cuts {chosen.chunk_size}-byte chunks, chunk_size is {chunk_size}; "
                                 "open the store with the same chunk_size")
            return chosen

        return cls(nodes, Streaming(store=store_of, chunk_size=chunk_size), chunks_in_flight)

    @property
    def addresses(self) -> dict[int, str]:
        return {node.node_id: node.address for node in self.nodes}

    def address_of(self, node_id: int) -> str:
        try:
            return self.addresses[node_id]
        except KeyError:
            raise KeyError(f"node {node_id} is not in the transport; nodes are {sorted(self.addresses)}") from None

    async def serve(self, node_id: int, data_dir: str | Path, *, make_state_machine: Callable,
                    settings: NodeSettings = NodeSettings(), task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run node ``node_id`` of this cluster in this process until cancelled.

        ``task_status.started(server)`` once it listens. ``OSError`` if the address
        cannot be bound (another process uses the port).
        """
        server = NodeServer(self, node_id, Path(data_dir), make_state_machine, settings)
        await server.run(task_status=task_status)
