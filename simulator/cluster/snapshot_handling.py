"""A node's part in snapshot transfer: which mode, what it holds in memory, how it installs.

:class:`NodeSnapshots` sits between a :class:`~simulator.node.NodeRunner` and
the transfer machinery of the ``transports`` layer:

- it is the :class:`~transports.streaming.StreamHost` a node's
  ``StreamingEndpoint`` acts through (send, arm a timer, hand a verified
  snapshot to Raft, report to the leader's Raft);
- it routes what the node receives: metadata-only snapshot messages and
  stream messages to the endpoint, everything else to Raft;
- it installs snapshots from a ``Ready`` (from the message's bytes when
  embedded, streamed from the node's store when not) and records embedded
  transfers in the run's transfer registry;
- it keeps :class:`SnapshotMemory`: the most snapshot bytes the node held in
  memory at once (storage, messages, chunks), the figure that shows what
  Embedded costs as snapshots grow and what Streaming saves.
"""

from __future__ import annotations

import attrs

from transports import Auto, Embedded, Streaming
from transports.streaming import (
    Outcome,
    StreamTimer,
    TransferRegistry,
)

from ..raft import Message, Role, Snapshot, SnapshotStatus
from ..raft.messages import MessageKinds


@attrs.define
class SnapshotMemory:
    """Bytes of snapshot data a node holds in memory: now, and the most at any moment.

    Counted: snapshot data kept by the node's storage, snapshot data in a
    message being sent or received, chunks being sent or received. Not
    counted: the state machine's own live state, bytes in a snapshot store
    (it stands for disk or an object store), and the transient bytes of
    serializing a new snapshot of the node's own state.

    ``history`` has a ``(time, bytes)`` pair for each change, in order, for
    plots of memory over time (several may share an instant: a chunk held
    and let go while it is handled).
    """

    current: int = 0
    peak: int = 0
    history: list[tuple[float, int]] = attrs.Factory(list)

    def observe(self, held: int, now: float) -> None:
        if held != self.current:
            self.history.append((now, held))
        self.current = held
        if held > self.peak:
            self.peak = held


class NodeSnapshots:
    """See the module docstring. One per node; survives the node's crashes like its disk."""

    def __init__(self, runner, mode: Embedded | Streaming, registry: TransferRegistry, store=None,
                 transport=None) -> None:
        self.runner = runner
        self.mode = mode
        self.registry = registry
        self.store = store
        self.transport = transport  # for the chunk faults of follower pull
        #: ``find_delegate(snapshot_id, leader)``: who should send it to this node instead
        #: of the leader (delegated snapshots), or ``None``; the cluster sets it.
        self.find_delegate = None
        self.memory = SnapshotMemory()
        #: Whether a follower may have asked this node for a snapshot: only a message with
        #: ``request_snapshot`` sets a progress's ``pending_request_snapshot`` (a new
        #: leader's progresses start without one), so until one arrives there is nothing
        #: for :meth:`serve_snapshot_requests` to look at on every Ready.
        self.requests_seen = False
        self.endpoint = (
            mode.endpoint_class(runner.node_id, mode, store, self, registry)
            if isinstance(mode, Streaming)
            else None
        )

    # -- routing ------------------------------------------------------------------

    def receive(self, message) -> None:
        """Hand a delivered message to Raft or to the stream endpoint."""
        if type(message) is not Message:
            if self.endpoint is not None:
                self.endpoint.on_stream_message(message)
            return
        if message.request_snapshot:
            self.requests_seen = True
        # The snapshot field first: it is None on nearly every message (and the kind is
        # read from the plain namespace, not through the enum class: see MessageKinds).
        if message.snapshot is not None and message.msg_type is MessageKinds.SNAPSHOT:
            if message.snapshot.data is None and self.endpoint is not None:
                self.endpoint.on_offer(message)
                return
            if message.snapshot.data is not None:
                self.hold_memory(len(message.snapshot.data))
        # The in-memory transport carries the sending core's own Message objects: their
        # field types were never lost to a wire, so only the receiver's checks run.
        self.runner.raw_node.step_typed(message)  # the runner checked it is up

    def on_timer(self, timer: StreamTimer) -> None:
        if self.endpoint is not None:
            self.endpoint.on_timer(timer)

    def outgoing(self, message: Message) -> Message:
        """A message the node is about to send; records and sizes snapshot transfers."""
        snapshot = message.snapshot
        if snapshot is None:
            return message
        metadata = snapshot.metadata
        if isinstance(self.mode, Auto) and snapshot.data is None:
            chosen, why = self.mode.choose(metadata.size)
            if chosen == "embedded":  # small: read it from the store and let it ride in the message
                snapshot = attrs.evolve(snapshot, data=self.runner.storage.snapshot_data(metadata.snapshot_id))
                message = attrs.evolve(message, snapshot=snapshot)
                self.hold_memory(len(snapshot.data))
            self.runner._event("snapshot_sent", to=message.to, index=metadata.index, size=metadata.size,
                               mode=chosen, why=why)
        else:
            self.runner._event("snapshot_sent", to=message.to, index=metadata.index, size=metadata.size,
                               mode=self.mode.name)
        if snapshot.data is None and self.endpoint is not None:
            self.endpoint.offered(message.to, metadata.snapshot_id)
        if snapshot.data is not None:
            if isinstance(self.mode, Embedded) and self.mode.wire_copy:
                # What a serializer does: one more copy of the whole snapshot.
                message = attrs.evolve(message, snapshot=attrs.evolve(snapshot, data=bytes(bytearray(snapshot.data))))
                self.hold_memory(len(snapshot.data))
            now = self.now()
            self.registry.start(from_=self.runner.node_id, to=message.to, snapshot_index=metadata.index,
                                snapshot_id=metadata.snapshot_id, mode="embedded", size=len(snapshot.data),
                                now=now)
            # Count what will cross the wire: a receiver that hangs up after its read
            # timeout (Embedded(read_timeout=...)) gets only part of the message.
            carried = getattr(self.transport, "bytes_carried", None)
            cut_short = message.size - carried(message) if carried is not None else 0
            self.registry.sent(message.to, metadata.snapshot_id, 0, max(0, len(snapshot.data) - cut_short), now)
        return message

    # -- installing -----------------------------------------------------------------

    def install_from_ready(self, snapshot: Snapshot) -> tuple[object, str]:
        """Restore a fresh state machine from ``snapshot`` and install it in storage.

        Returns the machine and the digest of the data it was restored from
        (what the invariant monitor compares with the leader's snapshot).
        Raises (keeping everything as it was) if the data is corrupt or missing.
        """
        runner = self.runner
        machine = runner.make_state_machine()
        storage = runner.storage
        metadata = snapshot.metadata
        if snapshot.data is not None:
            # Checked before decoding: a decoder fed a flipped byte may raise anything.
            actual = storage.digests.digest_of(snapshot.data, like=metadata.digest) if metadata.digest else ""
            if actual != metadata.digest:
                raise ValueError(f"snapshot {metadata.index} data digest is {actual}, "
                                 f"metadata says {metadata.digest}")
            # The same contract as streamed installs: an iterable of chunks (here, one).
            machine.restore_from_snapshot((snapshot.data,))
            storage.apply_snapshot_with_data(snapshot)  # checks the data against the digest
            digest = metadata.digest
        else:
            if self.store is None or not self.store.has_snapshot(metadata.index):
                raise RuntimeError(
                    f"node {runner.node_id} got snapshot {metadata.index} without data and its "
                    "store does not hold it; the transport must fetch the data first"
                )
            # The store checks what it streams against the digest it holds.
            digest = self.store.snapshot_metadata(metadata.index).digest
            machine.restore_from_snapshot(self.store.stream_snapshot(metadata.index))
            storage.apply_snapshot_from_store(snapshot)
        record = self.registry.get(runner.node_id, metadata.snapshot_id)
        if record is not None and record.mode == "embedded":
            record.bytes_done = metadata.size
            record.outcome = Outcome.INSTALLED
            record.updated_at = self.now()
        self.hold_memory(0)
        return machine, digest

    def reopen_store(self) -> None:
        """The process restarts: the store says what survives (``SnapshotStore.reopened``).
        A durable store is opened afresh, recovering complete snapshots and resumable
        partials; a store whose contents live in its object (memory) simply stays."""
        if self.store is None:
            return
        store = self.store.reopened()
        if store is self.store:
            return
        self.store = store
        self.runner.storage.data_store = store
        if self.endpoint is not None:
            self.endpoint.store = store
        self.runner._event(
            "store_reopened",
            snapshots=[snapshot.index for snapshot in store.list_snapshots()],
            partials=[partial.index for partial in store.partial_transfers()],
            problems=len(getattr(store, "problems", ())),
        )

    def serve_snapshot_requests(self) -> None:
        """Leader: a follower that lost its state asked for a snapshot at or past an index
        our newest snapshot does not reach (Raft waits, ``snapshot_temporarily_unavailable``):
        make one as soon as we applied that far, rather than at the next compaction, which
        may never come if no one proposes."""
        if not self.requests_seen:
            return
        raft = self.runner.node.raft
        if raft.role is not Role.LEADER:
            return
        wanted = max((progress.pending_request_snapshot for progress in raft.prs.progress.values()), default=0)
        if not wanted:
            self.requests_seen = False  # all served (or dropped): none until the next request
            return
        if self.runner.storage.snapshot_metadata.index < wanted <= raft.raft_log.applied:
            self.runner.compact()

    def crashed(self) -> None:
        if self.endpoint is not None:
            self.endpoint.crashed()
        self.memory.observe(self.runner.storage.snapshot_data_size, self.now())

    # -- StreamHost ---------------------------------------------------------------

    def now(self) -> float:
        trace = self.runner.trace
        return trace.clock() - trace.start_time

    def send(self, message) -> None:
        self.runner.send(message)

    def schedule(self, delay: float, item) -> None:
        self.runner.schedule(self.runner.trace.clock() + delay, item)

    def install(self, message: Message) -> str | None:
        """Step the snapshot into Raft; ``None`` if Raft took it, else the reason it refused."""
        rejections = self.runner.node.raft.rejections
        before = dict(rejections)
        self.runner.node.step(message)
        refused = [reason for reason in sorted(rejections) if rejections[reason] > before.get(reason, 0)]
        return ", ".join(refused) if refused else None

    def step(self, message: Message) -> None:
        self.runner.node.step(message)

    def report_snapshot(self, to: int, status: SnapshotStatus) -> None:
        self.runner.node.report_snapshot(to, status)

    def committed_index(self) -> int:
        raft = self.runner.node.raft
        # A node that asked for a snapshot (it lost its own) needs the data of every
        # offer, even one its log covers: Raft installs the requested one regardless.
        return 0 if raft.pending_request_snapshot else raft.raft_log.committed

    def log_first_index(self) -> int:
        return self.runner.storage.first_index()

    def event(self, kind: str, **fields) -> None:
        self.runner._event(kind, **fields)

    def delegate_for(self, snapshot_id: str, leader: int) -> int | None:
        """The node nearest this one holding ``snapshot_id``, to send it instead of ``leader``."""
        return None if self.find_delegate is None else self.find_delegate(snapshot_id, leader)

    def pulled_chunk_fate(self, chunk):
        """Follower pull: what the armed chunk faults (``cluster.fail_chunk``) do to a chunk this
        node read from the shared store, as if it had been streamed to it; ``None`` if none are
        armed. Crash faults are carried out as for streamed chunks."""
        transport = self.transport
        if transport is None or not transport.chunk_faults:
            return None
        verdict = transport.chunk_faults.on_chunk(chunk)
        for node, restart_after in verdict.crash:
            if transport.on_crash is not None:
                transport.on_crash(node, restart_after, verdict.reason)
        return verdict

    def hold_memory(self, extra: int) -> None:
        held = self.runner.storage.snapshot_data_size + extra
        if held != self.memory.current:  # most calls change nothing: skip reading the clock
            self.memory.observe(held, self.now())
