"""The three gRPC services of a node, as grpcio servicers bridged to the node's trio thread.

Theory of operation. grpcio's synchronous server calls each handler on a
thread of its pool. A handler does no Raft work itself: it validates what
arrived, then runs one function on the trio thread with
``trio.from_thread.run_sync`` (or ``run`` for calls that wait, such as a
proposal waiting to be applied) and turns the answer into a reply. All
node state is therefore touched by one thread only (see
:mod:`.replica`), and a handler blocked on a slow client never blocks
Raft.

``RaftTransport.Send`` is registered by hand with no request deserializer,
so the handler gets the raw bytes and parses them itself: bytes that are
not a ``MessageBatch``, and messages that are not valid Raft messages, are
counted and logged as ``garbage from peer`` and dropped, never raised
(grpcio would otherwise answer them with an internal error the node never
hears about). Unknown fields, from a newer peer, are skipped by protobuf.

When the trio side is gone (the node is shutting down) every handler
answers ``UNAVAILABLE`` instead of raising.
"""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import grpc
import trio

from simulator.snapshots import (
    ObjectStoreError,
    SnapshotCorruptError,
    SnapshotStoreError,
)

from . import events as ev
from .proto import control_pb2 as cpb
from .proto import control_pb2_grpc, raft_pb2
from .proto import snapshot_pb2 as spb
from .snapshot_serve import StreamRefused, encode_chunk
from .wire import WireError, message_from_wire, parse_batch


class TrioBridge:
    """Runs functions on the node's trio thread from a gRPC thread."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self.token = token

    def run_sync(self, context, fn, *args):
        try:
            return trio.from_thread.run_sync(fn, *args, trio_token=self.token)
        except (trio.RunFinishedError, trio.Cancelled):
            context.abort(grpc.StatusCode.UNAVAILABLE, "node is shutting down")

    def run(self, context, fn, *args):
        try:
            return trio.from_thread.run(fn, *args, trio_token=self.token)
        except (trio.RunFinishedError, trio.Cancelled):
            context.abort(grpc.StatusCode.UNAVAILABLE, "node is shutting down")

    def submit(self, fn, *args) -> Future:
        """Run ``fn(*args)`` on the trio thread without waiting for it: its outcome arrives in
        the returned future (``RunFinishedError`` there if the trio side is gone)."""
        future: Future = Future()

        def job() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as error:  # noqa: BLE001 - handed to the waiting gRPC thread
                future.set_exception(error)

        try:
            self.token.run_sync_soon(job)
        except trio.RunFinishedError as error:
            future.set_exception(error)
        return future

    def result(self, context, future: Future):
        """Wait for a submitted job while the call lives; abort ``UNAVAILABLE`` if the trio side
        is gone (a job queued as trio finishes never runs, so the wait is in slices)."""
        while True:
            try:
                return future.result(timeout=0.5)
            except FutureTimeout:
                if not context.is_active():
                    context.abort(grpc.StatusCode.CANCELLED, "the call ended")
            except (trio.RunFinishedError, trio.Cancelled):
                context.abort(grpc.StatusCode.UNAVAILABLE, "node is shutting down")


class RaftService:
    """``raftsim.v1.RaftTransport``: batches of Raft messages from peers."""

    def __init__(self, bridge: TrioBridge, node) -> None:
        self.bridge = bridge
        self.node = node  # .receive_batch(messages), .garbage(detail)

    def send(self, raw: bytes, context) -> bytes:
        peer = context.peer()
        try:
            batch = parse_batch(raw)
        except WireError as error:
            self.bridge.run_sync(context, self.node.garbage, f"from {peer}: {error}")
            return raft_pb2.SendReply(refused=1).SerializeToString()
        messages, problems = [], []
        for number, wire in enumerate(batch.messages):
            try:
                messages.append(message_from_wire(wire))
            except WireError as error:
                problems.append(f"message {number} of the batch from node {getattr(batch, 'from')}: {error}")
        for problem in problems:
            self.bridge.run_sync(context, self.node.garbage, f"from {peer}: {problem}")
        if messages:
            self.bridge.run_sync(context, self.node.receive_batch, messages)
        return raft_pb2.SendReply(accepted=len(messages), refused=len(problems)).SerializeToString()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler("raftsim.v1.RaftTransport", {
            "Send": grpc.unary_unary_rpc_method_handler(self.send),  # raw bytes in and out
        })


class SnapshotService:
    """``raftsim.v1.SnapshotTransfer``: stream a held snapshot from an offset.

    The handler asks the trio thread for a batch of encoded chunks and, before
    sending it, for the next one: reading runs one batch ahead of the network
    and the thread hop is paid per batch, not per chunk. The replies are the
    encoded bytes themselves (:func:`~.snapshot_serve.encode_chunk`), so the
    method is registered with no response serializer (:meth:`handler`).
    """

    def __init__(self, bridge: TrioBridge, node) -> None:
        self.bridge = bridge
        self.node = node  # .snapshot_server: SnapshotServer or None

    def TransferSnapshot(self, request, context):
        server = self.node.snapshot_server
        if server is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"node {self.node.node_id} runs embedded mode; it serves no snapshot streams")
        try:
            stream = self.bridge.run_sync(context, server.open, request)
        except StreamRefused as refused:
            context.abort(refused.code, str(refused))
        ahead = self.bridge.submit(server.next_batch, stream)
        while context.is_active():
            try:
                batch = self.bridge.result(context, ahead)
            except (SnapshotStoreError, ObjectStoreError, OSError, ValueError) as error:  # the store failed
                self.bridge.run_sync(context, self.node.events, ev.STREAM_CUT,
                                     f"serving snapshot {stream.snapshot.index}: {type(error).__name__}: {error}")
                code = grpc.StatusCode.DATA_LOSS if isinstance(error, SnapshotCorruptError) else grpc.StatusCode.UNAVAILABLE
                context.abort(code, str(error).splitlines()[0])
            if not batch:
                return
            ahead = self.bridge.submit(server.next_batch, stream)
            for data, header in batch:
                yield encode_chunk(data, header)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler("raftsim.v1.SnapshotTransfer", {
            "TransferSnapshot": grpc.unary_stream_rpc_method_handler(
                self.TransferSnapshot, request_deserializer=spb.SnapshotRequest.FromString),  # bytes out
        })


class ControlService(control_pb2_grpc.ControlServicer):
    """``raftsim.v1.Control``: status, client commands, membership, compaction."""

    def __init__(self, bridge: TrioBridge, node) -> None:
        self.bridge = bridge
        self.node = node

    def Status(self, request, context):
        return self.bridge.run_sync(context, self.node.status, request.with_digest)

    def Propose(self, request, context):
        return self.bridge.run(context, self.node.propose, bytes(request.command))

    def Get(self, request, context):
        return self.bridge.run(context, self.node.get, request.key)

    def AddNode(self, request, context):
        if request.node_id < 1 or ":" not in request.address:
            return cpb.MembershipReply(ok=False, error=f"a node id >= 1 and an address HOST:PORT expected, "
                                                       f"got {request.node_id} at {request.address!r}")
        return self.bridge.run(context, self.node.add_node, request.node_id, request.address, request.as_learner)

    def RemoveNode(self, request, context):
        return self.bridge.run(context, self.node.remove_node, request.node_id)

    def Compact(self, request, context):
        return self.bridge.run_sync(context, self.node.compact)
