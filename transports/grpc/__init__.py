"""Real processes, real network: the simulator's Raft core and snapshot modes over gRPC.

Theory of operation. Each node is an OS process (``python -m
transports.grpc.node`` or ``raftsim node``) that runs the same sans-IO
pieces as the simulated cluster, driven by the wall clock instead of a
virtual one:

- the Raft core (``simulator.raft.RawNode``) and its Ready loop
  (:mod:`.replica`), over a durable storage (:mod:`.storage`: sqlite3 in
  WAL mode for hard state, log and snapshot metadata; the snapshot bytes
  in a ``SnapshotStore``);
- Raft messages as protobuf (``proto/raft.proto``, :mod:`.wire`), sent in
  per-peer batches over gRPC (:mod:`.links`);
- snapshots either embedded in the Raft message, or streamed out of band
  by ``SnapshotTransfer.TransferSnapshot`` (``proto/snapshot.proto``) with
  the simulator's chunk bookkeeping (:mod:`transports.streaming.protocol`):
  the receiver pulls from its last verified offset, checks each chunk's
  checksum and the whole snapshot's digest (BLAKE3, named in it), and installs nothing half-written
  (:mod:`.snapshot_pull`, :mod:`.snapshot_serve`, :mod:`.snapshot_modes`);
- a control service (``proto/control.proto``): status, proposals with a
  leader hint, membership changes, compaction (:mod:`.services`,
  :mod:`.client`).

grpcio's synchronous server runs handlers on its threads; each handler
hands its work to the node's single trio thread (``trio.from_thread``), and
blocking client calls run in worker threads (``trio.to_thread``). Why this
and not grpc.aio or purerpc: docs/DESIGN.md, "Trio and gRPC".

This package needs the ``grpc`` extra (grpcio, protobuf). Nothing in the
in-process simulator imports it. The ``.proto`` files ship in the wheel;
the generated ``*_pb2*.py`` modules beside them are committed, and a test
checks that regenerating them with grpcio-tools changes nothing.
"""

from .client import ClusterClient, ClusterUnavailableError
from .events import EventLog
from .storage import SqliteRaftStorage
from .transport import GrpcClusterTransport, NodeConfig, NodeSettings
from .wire import WireError, message_from_wire, message_to_wire

__all__ = [
    "ClusterClient",
    "ClusterUnavailableError",
    "EventLog",
    "GrpcClusterTransport",
    "NodeConfig",
    "NodeSettings",
    "SqliteRaftStorage",
    "WireError",
    "message_from_wire",
    "message_to_wire",
]
