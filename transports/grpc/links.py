"""Outgoing Raft messages: one queue and one sending task per peer, over gRPC channels.

Theory of operation. The Ready loop must never wait on the network, so
:meth:`PeerLinks.send` only appends to the peer's bounded queue (a full
queue drops the message and counts ``send queue full``: Raft retransmits
what matters). One task per peer drains its queue in order and sends the
messages it finds as one ``RaftTransport.Send`` batch, running the blocking
grpcio call in a worker thread (``trio.to_thread``), so one slow or dead
peer never delays the others and messages to one peer keep their order.

A failed send tells Raft (``report_unreachable``, and for a snapshot
message ``report_snapshot(FAILURE)``), and is logged as ``peer
unreachable`` once per outage, not once per heartbeat; the first success
after it logs ``peer reachable``. In Embedded mode a snapshot message that
was delivered is reported ``FINISH``; in Streaming mode the follower's own
append response does that, once it has pulled and installed the data.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import trio

from simulator.raft import Message, MessageType, SnapshotStatus

from . import events as ev
from .proto import raft_pb2_grpc
from .wire import batch_to_wire

#: Messages waiting per peer before new ones are dropped.
QUEUE_LIMIT = 4096
#: Bytes of entry data sent in one batch (the rest waits for the next one).
BATCH_BYTES = 8 * 1024 * 1024
#: Biggest message a node sends or accepts: an embedded snapshot must fit whole.
MAX_MESSAGE_BYTES = 1024 * 1024 * 1024


def server_options() -> list[tuple[str, int]]:
    """A node's gRPC server: the message limits, and the HTTP/2 settings of :func:`channel_options`."""
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]


def channel_options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # Reconnect quickly after a peer restarts (the default backoff grows to minutes).
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
        # Receive window of each stream: a snapshot call is a new stream, and a larger one lets
        # its first chunks flow before flow-control updates (alone, not measurable above noise).
        ("grpc.http2.lookahead_bytes", 16 * 1024 * 1024),
    ]


class PeerLinks:
    """See the module docstring. ``report`` runs on the trio thread after each batch."""

    def __init__(self, me: int, addresses: dict[int, str], events: ev.EventLog, *,
                 report_unreachable: Callable[[int], None],
                 report_snapshot: Callable[[int, SnapshotStatus], None],
                 embedded: bool, send_timeout: float = 10.0) -> None:
        self.me = me
        self.addresses = dict(addresses)
        self.events = events
        self.report_unreachable = report_unreachable
        self.report_snapshot = report_snapshot
        self.embedded = embedded
        self.send_timeout = send_timeout
        self._queues: dict[int, tuple[trio.MemorySendChannel, trio.MemoryReceiveChannel]] = {}
        self._channels: dict[int, grpc.Channel] = {}
        self._down: set[int] = set()
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        """Run the per-peer senders until cancelled; close the channels on the way out."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for peer in sorted(self._queues):
                    nursery.start_soon(self._sender, peer)
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for channel in self._channels.values():
                channel.close()

    def add_peer(self, node_id: int, address: str) -> None:
        if node_id == self.me or self.addresses.get(node_id) == address:
            return
        self.addresses[node_id] = address
        old = self._channels.pop(node_id, None)
        if old is not None:
            old.close()

    def channel(self, peer: int) -> grpc.Channel:
        """The gRPC channel to ``peer`` (shared by Raft messages and snapshot streams)."""
        channel = self._channels.get(peer)
        if channel is None:
            address = self.addresses.get(peer)
            if address is None:
                raise KeyError(f"no address known for node {peer}; known: {sorted(self.addresses)}")
            channel = self._channels[peer] = grpc.insecure_channel(address, options=channel_options())
        return channel

    def send(self, message: Message) -> None:
        peer = message.to
        if peer not in self.addresses:
            self.events(ev.PEER_UNREACHABLE, f"no address known for node {peer}")
            self.report_unreachable(peer)
            return
        queue = self._queues.get(peer)
        if queue is None:
            queue = self._queues[peer] = trio.open_memory_channel(QUEUE_LIMIT)
            if self._nursery is not None:
                self._nursery.start_soon(self._sender, peer)
        try:
            queue[0].send_nowait(message)
        except trio.WouldBlock:
            self.events(ev.SEND_QUEUE_FULL, f"to node {peer}: {message.msg_type.value} dropped", log=False)

    async def _sender(self, peer: int) -> None:
        receive = self._queues[peer][1]
        while True:
            batch = [await receive.receive()]
            size = sum(entry.size for entry in batch[0].entries)
            while size < BATCH_BYTES:
                try:
                    message = receive.receive_nowait()
                except trio.WouldBlock:
                    break
                batch.append(message)
                size += sum(entry.size for entry in message.entries)
            await self._deliver(peer, batch)

    async def _deliver(self, peer: int, batch: list[Message]) -> None:
        snapshots = [m for m in batch if m.msg_type is MessageType.SNAPSHOT]
        data_bytes = sum(len(m.snapshot.data or b"") for m in snapshots)
        timeout = self.send_timeout + data_bytes / (20 * 1024 * 1024)  # slow disks and loaded CPUs
        try:
            stub = raft_pb2_grpc.RaftTransportStub(self.channel(peer))
            request = batch_to_wire(self.me, peer, batch)
            await trio.to_thread.run_sync(
                lambda: stub.Send(request, timeout=timeout), abandon_on_cancel=True
            )
        except (grpc.RpcError, KeyError) as error:
            if peer not in self._down:
                self._down.add(peer)
                self.events(ev.PEER_UNREACHABLE, f"node {peer} at {self.addresses.get(peer)}: {_why(error)}")
            else:
                self.events(ev.PEER_UNREACHABLE, log=False)
            self.report_unreachable(peer)
            for _ in snapshots:
                self.report_snapshot(peer, SnapshotStatus.FAILURE)
            return
        if peer in self._down:
            self._down.discard(peer)
            self.events(ev.PEER_REACHABLE, f"node {peer} at {self.addresses.get(peer)}")
        if self.embedded:
            for _ in snapshots:
                self.report_snapshot(peer, SnapshotStatus.FINISH)


def _why(error: Exception) -> str:
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        details = (error.details() or "").splitlines()[0] if error.details() else ""
        return f"{error.code().name.lower()}{': ' + details if details else ''}"
    return str(error)
