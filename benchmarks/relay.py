"""Two real streaming endpoints joined by a loss-free, zero-latency relay: the streaming path alone.

The sender's :class:`~transports.streaming.StreamingEndpoint` reads the
snapshot from its store, cuts it into chunks with CRC-32s and paces them by
acknowledgements; the receiver's endpoint checks each chunk, writes it
through a ``SnapshotWriter`` (sha256 of the prefix, append, durable
progress), acknowledges, and commits once the digest matches. All of that is
the project's code; the relay only hands each message to the endpoint it is
addressed to, in order, and stands in for the node (:class:`RelayHost`).
Raft, trio, the cluster transport and restoring a state machine are left
out on purpose: ``recovery.py`` measures them.

Snapshot contents are generated block by block from a seeded generator, so
a 10 GiB snapshot is written to a disk store without being held in memory.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter, deque
from pathlib import Path

from benchlib import MIB

from simulator import DiskSnapshotStore, MemorySnapshotStore
from simulator.raft import ConfState, Message, MessageType, Snapshot, SnapshotMetadata
from transports import Streaming
from transports.streaming import StreamingEndpoint, TransferRegistry

SENDER, RECEIVER = 1, 2
SNAPSHOT_INDEX, SNAPSHOT_TERM = 1000, 3
CONF_STATE = ((SENDER, RECEIVER), ())


def snapshot_blocks(size: int, block_size: int = MIB, seed: int = 8):
    """``size`` bytes in blocks: a random block, each copy stamped with its number so none repeat."""
    block = random.Random(seed).randbytes(block_size)
    written = 0
    number = 0
    while written < size:
        length = min(block_size, size - written)
        yield number.to_bytes(8, "big") + block[8:length] if length >= 8 else block[:length]
        written += length
        number += 1


def open_store(kind: str, folder: Path | None, chunk_size: int, sync_every: int = 1):
    if kind == "memory":
        return MemorySnapshotStore(chunk_size=chunk_size)
    if kind == "disk":
        return DiskSnapshotStore(folder, chunk_size=chunk_size, sync_every=sync_every)
    raise ValueError(f"store kind 'memory' or 'disk' expected, got {kind!r}")


def prepare_sender(kind: str, size: int, chunk_size: int, folder: Path | None):
    """A sender store holding one snapshot of ``size`` bytes; returns (store, metadata)."""
    store = open_store(kind, None if folder is None else folder / "sender", chunk_size)
    if not store.has_snapshot(SNAPSHOT_INDEX):
        store.save_snapshot(SNAPSHOT_INDEX, snapshot_blocks(size), term=SNAPSHOT_TERM, conf_state=CONF_STATE)
    return store, store.snapshot_metadata(SNAPSHOT_INDEX)


def fresh_receiver(kind: str, chunk_size: int, folder: Path | None, sync_every: int = 1):
    """An empty receiving store; a disk one fsyncs every ``sync_every`` chunks it receives."""
    if folder is not None:
        shutil.rmtree(folder / "receiver", ignore_errors=True)
    return open_store(kind, None if folder is None else folder / "receiver", chunk_size, sync_every)


class RelayHost:
    """The node an endpoint acts through (``StreamHost``): sends go to the relay's queue."""

    def __init__(self, relay: Relay, node_id: int) -> None:
        self.relay = relay
        self.node_id = node_id
        self.endpoint: StreamingEndpoint | None = None
        self.held_peak = 0  # the endpoint's own count of chunk bytes held at once

    def now(self) -> float:
        return self.relay.clock

    def send(self, message) -> None:
        self.relay.queue.append(message)

    def schedule(self, delay: float, item) -> None:
        pass  # a loss-free relay never needs a retry or a timeout

    def install(self, message: Message) -> None:
        self.relay.installed = message

    def step(self, message: Message) -> None:
        raise AssertionError(f"the relay's receiver has committed nothing; unexpected {message!r}")

    def report_snapshot(self, to: int, status) -> None:
        self.relay.reports.append((to, status))

    def committed_index(self) -> int:
        return 0

    def log_first_index(self) -> int:
        return SNAPSHOT_INDEX + 1  # the log continues right after the snapshot

    def event(self, kind: str, **fields) -> None:
        self.relay.events[kind] += 1

    def hold_memory(self, extra: int) -> None:
        self.held_peak = max(self.held_peak, extra)


class Relay:
    """Moves one snapshot from ``sender_store`` to ``receiver_store`` through two endpoints."""

    def __init__(self, sender_store, receiver_store, chunk_size: int) -> None:
        mode = Streaming(chunk_size=chunk_size)
        registry = TransferRegistry()
        self.clock = 0.0
        self.queue: deque = deque()
        self.installed: Message | None = None
        self.reports: list = []
        self.events: Counter = Counter()
        self.hosts = {node_id: RelayHost(self, node_id) for node_id in (SENDER, RECEIVER)}
        for node_id, store in ((SENDER, sender_store), (RECEIVER, receiver_store)):
            host = self.hosts[node_id]
            host.endpoint = StreamingEndpoint(node_id, mode, store, host, registry)
        self.messages = 0

    def transfer(self, metadata) -> None:
        """Offer the snapshot, deliver every message until the queue is empty; check the outcome."""
        offer = Message(
            msg_type=MessageType.SNAPSHOT,
            to=RECEIVER,
            from_=SENDER,
            term=metadata.term,
            snapshot=Snapshot(
                metadata=SnapshotMetadata(
                    index=metadata.index,
                    term=metadata.term,
                    conf_state=ConfState.of(*metadata.conf_state),
                    size=metadata.size,
                    digest=metadata.digest,
                    snapshot_id=metadata.snapshot_id,
                )
            ),
        )
        self.hosts[SENDER].endpoint.offered(RECEIVER, metadata.snapshot_id)
        self.hosts[RECEIVER].endpoint.on_offer(offer)
        queue = self.queue
        hosts = self.hosts
        while queue:
            message = queue.popleft()
            self.messages += 1
            self.clock += 1e-6  # one microsecond of pretend time per message
            hosts[message.to].endpoint.on_stream_message(message)
        if self.installed is None:
            raise RuntimeError(f"the transfer did not complete; events: {dict(self.events)}")
        if [status.name for _, status in self.reports] != ["FINISH"]:
            raise RuntimeError(f"the sender should report FINISH once, reported {self.reports}")
