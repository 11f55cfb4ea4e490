"""What a snapshot message means in each transfer mode, for a node process.

The Raft core is the same in both modes; only these four decisions differ,
so :class:`~.replica.Replica` asks its mode object:

============  ===========================  ==========================================
decision      :class:`EmbeddedSnapshots`   :class:`StreamingSnapshots`
============  ===========================  ==========================================
install       bytes from the message       bytes from the node's store (pulled first)
outgoing      nothing to remember          note the offer (idle offers are retried)
offer in      refused: embedded peers      start or continue a pull
              send data inside
tick          nothing                      an offer idle for ``offer_timeout`` s is
                                           reported FAILURE, so Raft offers again and
                                           a restarted receiver resumes from its offset
============  ===========================  ==========================================

Installing restores a *fresh* state machine first and replaces storage only
if that worked, so a snapshot that does not decode leaves the node as it was.
"""

from __future__ import annotations

from simulator.raft import (
    Message,
    MessageType,
    ProgressState,
    Role,
    Snapshot,
    SnapshotStatus,
)

from . import events as ev


def _restore(replica, source):
    """A fresh machine restored through the chunk contract (``restore_from_snapshot(chunks)``,
    :mod:`simulator.machines.contracts`): embedded bytes go in as one chunk, never as the
    ``bytes`` object itself (iterating that gives integers to a machine that expects chunks)."""
    machine = replica.make_state_machine()
    machine.restore_from_snapshot((bytes(source),) if isinstance(source, (bytes, bytearray, memoryview)) else source)
    return machine


class EmbeddedSnapshots:
    """Snapshots ride inside the Raft message (the seed's ``Embedded``)."""

    name = "embedded"

    def __init__(self, events: ev.EventLog) -> None:
        self.events = events

    def install(self, replica, snapshot: Snapshot):
        if snapshot.data is None:
            raise RuntimeError(f"snapshot {snapshot.index} arrived without data in embedded mode")
        machine = _restore(replica, snapshot.data)
        replica.storage.apply_snapshot_with_data(snapshot)  # verifies size and digest first
        self.events(ev.SNAPSHOT_INSTALLED, f"snapshot {snapshot.index} ({len(snapshot.data)} bytes, embedded)")
        return machine

    def outgoing(self, replica, message: Message) -> None:
        if message.msg_type is MessageType.SNAPSHOT and message.snapshot is not None:
            meta = message.snapshot.metadata
            self.events(ev.SNAPSHOT_OFFERED, f"snapshot {meta.index} ({meta.size} bytes, embedded) to node {message.to}")

    def on_offer(self, replica, message: Message) -> None:
        self.events(ev.GARBAGE, f"metadata-only snapshot from node {message.from_} but this node runs "
                                "embedded mode (snapshot data expected inside the message)")

    def on_tick(self, replica) -> None:
        pass

    def transfers(self):
        return []


class StreamingSnapshots:
    """Metadata in the Raft message, bytes out of band (the seed's ``Streaming``)."""

    name = "streaming"

    def __init__(self, events: ev.EventLog, store, server, puller, *, offer_timeout: float = 5.0) -> None:
        self.events = events
        self.store = store
        self.server = server  # snapshot_serve.SnapshotServer
        self.puller = puller  # snapshot_pull.SnapshotPuller
        self.offer_timeout = offer_timeout

    def install(self, replica, snapshot: Snapshot):
        if snapshot.data is not None:  # a peer that embeds: accept its bytes too
            machine = _restore(replica, snapshot.data)
            replica.storage.apply_snapshot_with_data(snapshot)
            return machine
        index = snapshot.index
        if not self.store.has_snapshot(index):
            raise RuntimeError(f"snapshot {index} reached Raft before its data reached the store")
        machine = _restore(replica, self.store.stream_snapshot(index))  # digest checked while streaming
        replica.storage.apply_snapshot_from_store(snapshot)
        return machine

    def outgoing(self, replica, message: Message) -> None:
        if message.msg_type is MessageType.SNAPSHOT and message.snapshot is not None:
            meta = message.snapshot.metadata
            self.server.offered(message.to)
            self.events(ev.SNAPSHOT_OFFERED, f"snapshot {meta.index} ({meta.size} bytes, id {meta.snapshot_id}) "
                                             f"to node {message.to}")

    def on_offer(self, replica, message: Message) -> None:
        self.puller.on_offer(message)

    def on_tick(self, replica) -> None:
        raft = replica.node.raft
        if raft.role is not Role.LEADER:
            return
        for peer, progress in raft.prs.items():
            if progress.state is ProgressState.SNAPSHOT and self.server.idle_for(peer) > self.offer_timeout:
                self.server.offered(peer)  # restart the clock: one report per idle period
                replica.node.report_snapshot(peer, SnapshotStatus.FAILURE)
