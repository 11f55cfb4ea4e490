"""One simulated server: its Raft core, its "disk", its state machine, and its Ready loop.

A :class:`NodeRunner` reacts to the items its inbox delivers — clock ticks,
messages from peers, client commands — in two steps, as a Raft server does
with what it read off its sockets: :meth:`NodeRunner.react` steps each item
into the core, and :meth:`NodeRunner.settle`, once the transport has handed
out everything due to the node at that instant, runs the Ready loop in the
order ``RawNode`` documents: install a snapshot, persist entries and hard
state, send messages, apply committed entries, advance. Neither has an
await, so a node's whole instant is atomic with respect to other tasks.

Volatile and durable state are kept apart on purpose: :attr:`storage` is
the node's disk and survives :meth:`crash`; the ``RawNode``, the state
machine and the waiting clients do not.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs
import trio

from transports.alarms import Completion
from transports.in_memory import Delivered
from transports.streaming import StreamTimer

from ..checks.monitor import InvariantMonitor
from ..machines.contracts import StateMachine, snapshot_chunks_of
from ..observe.trace import Trace
from ..raft import (
    ConfChange,
    ConfChangeV2,
    Config,
    Entry,
    MemStorageWithSnapshot,
    RaftError,
    RawNode,
    Ready,
    Role,
    SnapshotStatus,
    decode_conf_change,
)
from ..raft.messages import MessageKinds
from ..raft.reasons import CAMPAIGN_REFUSED_UNAPPLIED_CONF_CHANGE, CONF_CHANGE_REFUSED_AT_APPLY
from ..raft.role import Roles
from ..snapshots import ObjectStoreError
from ..snapshots.base import within_max_size
from ..snapshots.errors import SnapshotCorruptError, SnapshotTooLargeError
from .reads import NodeReads, ReadRequest
from .restart import SnapshotWait, restore_newest, state_digest
from .snapshot_handling import NodeSnapshots


@attrs.frozen
class Tick:
    """Inbox item: one tick of the node's clock, for the node's life number ``incarnation``.

    A restarted node starts a new tick stream; ticks of its earlier life that
    were still queued are ignored.
    """

    incarnation: int


@attrs.frozen
class ClientCommand:
    """Inbox item: a client asks this node to propose ``data`` (or a membership change)."""

    data: bytes = b""
    conf_change: ConfChange | ConfChangeV2 | None = None
    ticket: object = attrs.field(default=None, eq=False)

    def undeliverable(self, reason: str) -> None:
        if self.ticket is not None:
            self.ticket.fail(reason)


@attrs.frozen
class LeaderTransfer:
    """Inbox item: hand leadership to ``to`` (if this node leads)."""

    to: int


@attrs.frozen
class SnapshotReport:
    """Inbox item: how sending a snapshot message to ``to`` ended (for Raft's ``report_snapshot``)."""

    to: int
    delivered: bool
    incarnation: int


@attrs.frozen
class CompactionPolicy:
    """When a node snapshots its state machine and discards log entries.

    Every ``every`` applied entries (``None``: only on demand), the node
    snapshots at its applied index and discards entries older than
    ``keep_entries`` before it, so slightly lagging followers still catch up
    from the log and only far-behind ones need the snapshot.
    """

    every: int | None = None
    keep_entries: int = 0

    def __attrs_post_init__(self) -> None:
        if self.every is not None and self.every <= 0:
            raise ValueError(f"compaction 'every' must be a positive entry count, got {self.every}")
        if self.keep_entries < 0:
            raise ValueError(f"keep_entries must be >= 0, got {self.keep_entries}")


class ProposalTicket:
    """What a waiting client holds: filled when its entry is applied, or dropped."""

    def __init__(self) -> None:
        self.done = Completion()  # one waiter: its client (``transport.wait_done``)
        self.index = 0
        self.term = 0
        self.node_id = 0
        self.result: str | None = None
        self.error: str | None = None

    def fail(self, reason: str) -> None:
        if not self.done.is_set():
            self.error = reason
            self.done.set()


#: Reads of a node's own store tried before a snapshot install gives up and the node stops.
INSTALL_READ_ATTEMPTS = 3


class NodeFailStop(Exception):
    """The node cannot go on (its store cannot be read); it must stop and be restarted."""


@attrs.define(eq=False)
class NodeRunner:
    """One server of the cluster; see the module docstring."""

    node_id: int
    config: Config
    storage: MemStorageWithSnapshot
    make_state_machine: Callable[[], StateMachine]
    send: Callable  # the transport's send
    trace: Trace
    monitor: InvariantMonitor
    compaction: CompactionPolicy
    rng: random.Random
    raw_node: RawNode | None = None
    state_machine: StateMachine | None = None
    paused: bool = False
    waiting: dict[int, ProposalTicket] = attrs.Factory(dict)
    last_role: Role | None = None
    incarnation: int = 0
    on_role_change: Callable[[int, Role, int, int], None] | None = None
    #: ``schedule(at, item)``: hand ``item`` to this node's inbox at time ``at``.
    schedule: Callable | None = None
    snapshots: NodeSnapshots | None = None
    #: Set while the node has lost its newest snapshot and waits for the leader's.
    snapshot_wait: SnapshotWait | None = None
    #: A compaction that failed (a full disk) is tried again once this index is applied.
    compaction_retry_at: int = 0
    reads: NodeReads = attrs.field(default=attrs.Factory(lambda self: NodeReads(self.node_id), takes_self=True))

    # -- life cycle -----------------------------------------------------------

    @property
    def is_up(self) -> bool:
        return self.raw_node is not None

    @property
    def node(self) -> RawNode:
        if self.raw_node is None:
            raise RuntimeError(f"node {self.node_id} is down")
        return self.raw_node

    def start(self) -> None:
        """Boot from storage: restore the state machine from the stored snapshot.

        If that snapshot is gone or damaged, the node must not claim its index:
        it comes up empty and waits for the leader's snapshot (:mod:`.restart`).
        """
        snapshot = self.storage.snapshot_metadata
        restored = restore_newest(self.storage, self.make_state_machine)
        self.state_machine = restored.machine
        # The state machine already holds everything up to the snapshot, even if
        # the log still keeps some entries before it: apply only what follows.
        applied = max(self.config.applied, snapshot.index)
        if restored.lost is not None:
            # Nothing the log holds can be applied to an empty machine: skip it all,
            # the requested snapshot will cover it.
            applied = max(applied, self.storage.hard_state.commit)
        config = attrs.evolve(self.config, applied=applied)
        self.raw_node = RawNode(config, self.storage, self.rng)
        self.incarnation += 1
        self.last_role = None
        self._event("start", term=self.raw_node.raft.term, snapshot_index=snapshot.index)
        self.snapshot_wait = None
        if restored.lost is not None:
            self.snapshot_wait = SnapshotWait(lost_index=snapshot.index, reason=restored.lost)
            self._event("snapshot_lost", index=snapshot.index, reason=restored.lost)
        self.monitor.node_started(self.node_id, self.raw_node)

    def crash(self) -> None:
        """Lose volatile state; storage stays. Waiting clients learn their node died."""
        self.raw_node = None
        self.state_machine = None
        self.last_role = None
        self.monitor.node_stopped(self.node_id)
        self.snapshots.crashed()
        self.reads.crashed()
        for ticket in self.waiting.values():
            ticket.fail(f"node {self.node_id} crashed before the entry was applied")
        self.waiting.clear()

    def _event(self, kind: str, **fields) -> None:
        self.trace.node_event(self.node_id, kind, **fields)

    # -- reacting ---------------------------------------------------------------

    def settle(self) -> None:
        """Run the Ready loop for everything reacted to since the last time, if still up."""
        node = self.raw_node
        if node is not None:
            self._process_ready(node)

    def react(self, item) -> None:
        """Step ``item`` into the core; what it produces waits for :meth:`settle`."""
        node = self.node
        if type(item) is Delivered:  # a peer's message: nearly every item, so asked first
            message = item.message
            if self.snapshot_wait is not None and self.snapshot_wait.declines(message):
                self._event("leadership_declined", reason=f"waiting for a snapshot: {self.snapshot_wait.reason}")
            elif getattr(message, "msg_type", None) is MessageKinds.TIMEOUT_NOW:
                self._take_leadership(node, message)
            else:
                self.snapshots.receive(message)
        elif isinstance(item, Tick):
            if self.snapshot_wait is None:  # a node without its state never campaigns
                node.tick()  # the cluster already dropped ticks of an earlier life
        elif isinstance(item, ClientCommand):
            self._propose(node, item)
        elif isinstance(item, ReadRequest):
            self.reads.request(node, item)
        elif isinstance(item, LeaderTransfer):
            node.transfer_leader(item.to)
        elif isinstance(item, SnapshotReport):
            if item.incarnation == self.incarnation:
                node.report_snapshot(
                    item.to, SnapshotStatus.FINISH if item.delivered else SnapshotStatus.FAILURE
                )
        elif isinstance(item, StreamTimer):
            self.snapshots.on_timer(item)
        else:
            raise TypeError(f"node {self.node_id}'s inbox got a {type(item).__name__}, expected a message, "
                            "tick, client command, read, leader transfer, snapshot report or stream timer")

    def _take_leadership(self, node: RawNode, message) -> None:
        """Step a leader's hand-over (TimeoutNow); say so if the core may not campaign.

        A voter must not campaign while a committed membership change waits to be
        applied (its view of who votes may be stale). When the hand-over arrives in
        the same instant as the commit of that change, it is refused, the old leader
        has already stepped down, and the cluster waits for an election timeout: the
        trace names why rather than leaving a silent second without a leader.
        """
        events = node.raft.events
        refused = events[CAMPAIGN_REFUSED_UNAPPLIED_CONF_CHANGE]
        self.snapshots.receive(message)
        if events[CAMPAIGN_REFUSED_UNAPPLIED_CONF_CHANGE] > refused:
            self._event("campaign_refused", leader=message.from_,
                        reason="a committed membership change is not applied yet")

    def _propose(self, node: RawNode, command: ClientCommand) -> None:
        ticket = command.ticket
        raft = node.raft
        if raft.role is not Roles.LEADER:
            ticket.fail(f"node {self.node_id} is not the leader (leader: {raft.leader_id or 'unknown'})")
            return
        try:
            if command.conf_change is not None:
                node.propose_conf_change(command.conf_change)
            else:
                node.propose(command.data)
        except RaftError as error:  # dropped, a membership change pending, or invalid
            ticket.fail(f"node {self.node_id} refused the proposal: {error}")
            return
        ticket.index = raft.raft_log.last_index()
        ticket.term = raft.term
        ticket.node_id = self.node_id
        self.waiting[ticket.index] = ticket

    def process_ready(self) -> None:
        """Run the Ready loop until the core has nothing more to hand out."""
        self._process_ready(self.node)

    def _process_ready(self, node: RawNode) -> None:
        while node.has_ready():
            self._handle_ready(node, node.ready())
        if self.snapshot_wait is not None and self.snapshot_wait.ask(node):
            self._event("snapshot_requested", index=node.raft.pending_request_snapshot,
                        reason=self.snapshot_wait.reason)
            self.process_ready()
        if self.snapshots.requests_seen:  # asked after every item: look at the flag here
            self.snapshots.serve_snapshot_requests()

    def _handle_ready(self, node: RawNode, ready: Ready) -> None:
        # Run after nearly every delivery: fields and collaborators are read into locals once.
        storage = self.storage
        monitor = self.monitor
        node_id = self.node_id
        snapshot = ready.snapshot
        if ready.soft_state is not None:
            self._role_changed(node)
        if snapshot is not None:
            self._install_snapshot(ready)
        entries = ready.entries
        if entries:
            storage.append(entries)
        hard_state = ready.hard_state
        if hard_state is not None:
            commit = hard_state.commit
            previous_commit = storage.hard_state.commit
            storage.set_hard_state(hard_state)
            # The monitor sees every hard state: a commit index going back is a violation.
            monitor.committed(node_id, node, commit)
            if commit > previous_commit:  # nearly every Ready: straight to the trace
                self.trace.node_event(node_id, "commit", index=commit)
        if entries:
            monitor.appended(node_id, node, entries)
        send = self.send
        for message in ready.messages:
            # Only a message carrying a snapshot needs the snapshot handling's look.
            send(message if message.snapshot is None else self.snapshots.outgoing(message))
        committed_entries = ready.committed_entries
        if committed_entries and self.snapshot_wait is None:
            for entry in committed_entries:
                self._apply(node, entry)
            self.trace.node_event(node_id, "apply", first=committed_entries[0].index,
                                  last=committed_entries[-1].index)
        if ready.read_states or committed_entries or snapshot is not None:
            self.reads.ready(ready.read_states, self.state_machine)
        node.advance(ready)
        monitor.advanced(node_id, node)
        if committed_entries or snapshot is not None:  # only these move the applied index
            self._maybe_compact(node)
        snapshots = self.snapshots
        if storage.snapshot_data_size != snapshots.memory.current:  # hold_memory(0), asked inline
            snapshots.hold_memory(0)

    def _role_changed(self, node: RawNode) -> None:
        raft = node.raft
        if raft.role is self.last_role:
            return
        self.last_role = raft.role
        self._event("role", role=raft.role.value, term=raft.term, leader=raft.leader_id)
        self.monitor.role_changed(self.node_id, node)
        self.reads.lost_leader()
        if raft.role is not Role.LEADER:
            for ticket in self.waiting.values():
                ticket.fail(f"node {self.node_id} lost leadership before applying the entry")
            self.waiting.clear()
        if self.on_role_change is not None:
            self.on_role_change(self.node_id, raft.role, raft.term, raft.leader_id)

    def _install_snapshot(self, ready: Ready) -> None:
        snapshot = ready.snapshot
        # Raises on corrupt or missing data, before anything is replaced. A store that
        # fails to read (an I/O error, a dropped connection) is asked again; if it keeps
        # failing, the node stops, as a real server would, rather than run on without the
        # state Raft has just installed (the cluster restarts it; see Cluster._fail_stop).
        for attempt in range(1, INSTALL_READ_ATTEMPTS + 1):
            try:
                self.state_machine, digest = self.snapshots.install_from_ready(snapshot)
                break
            except (OSError, ObjectStoreError, SnapshotCorruptError) as error:
                # SnapshotCorruptError: the bytes read do not hash to the digest; a bit flipped
                # on the way from the disk reads right the next time, a rotten file never does.
                self._event("install_read_failed", index=snapshot.index, attempt=attempt, reason=str(error))
                failure = error
        else:
            raise NodeFailStop(f"node {self.node_id} could not read snapshot {snapshot.index} from its store "
                               f"after {INSTALL_READ_ATTEMPTS} tries ({failure})")
        self.monitor.snapshot_installed(self.node_id, snapshot.index, digest)
        self.monitor.state_at(self.node_id, snapshot.index, digest)
        if self.snapshot_wait is not None:
            self._event("snapshot_recovered", index=snapshot.index, lost_index=self.snapshot_wait.lost_index)
            self.snapshot_wait = None
        self._event("snapshot_installed", index=snapshot.index, term=snapshot.term,
                    size=snapshot.metadata.size)

    def _apply(self, node: RawNode, entry: Entry) -> None:
        machine = self.state_machine
        result = None
        if entry.entry_type.is_conf_change:
            self._apply_conf_change(node, entry)
            machine.applied_index = entry.index
        elif entry.data:
            result = machine.apply(entry.index, entry.data)
        else:
            machine.applied_index = entry.index
        self.monitor.applied(self.node_id, entry)
        if self.monitor.wants_state_at(entry.index):
            self.monitor.state_at(self.node_id, entry.index, state_digest(machine, entry.index))
        ticket = self.waiting.pop(entry.index, None)
        if ticket is not None:
            if ticket.term == entry.term:
                ticket.result = result
                ticket.done.set()
            else:
                ticket.fail(f"entry {entry.index} was replaced by one of term {entry.term}")

    def _apply_conf_change(self, node: RawNode, entry: Entry) -> None:
        # The leader let in only changes that decode and apply; one that does not
        # (an old log, a forgery) changes nothing, on every node alike.
        try:
            change = decode_conf_change(entry)
        except ValueError as error:
            self._event("conf_change_refused", index=entry.index, reason=str(error))
            return
        before = node.raft.conf_state
        refused = node.raft.rejections[CONF_CHANGE_REFUSED_AT_APPLY]
        conf_state = node.apply_conf_change(change)
        self.storage.set_conf_state(conf_state)
        if node.raft.rejections[CONF_CHANGE_REFUSED_AT_APPLY] > refused:
            self._event("conf_change_refused", index=entry.index, change=repr(change))
        elif isinstance(change, ConfChange):
            self._event("conf_change", index=entry.index, change=change.change_type.name.lower(),
                        node_id=change.node_id, voters=list(conf_state.voters),
                        learners=list(conf_state.learners))
        else:
            self._event("conf_change", index=entry.index, change=_describe_joint(before, conf_state),
                        voters=list(conf_state.voters), learners=list(conf_state.learners),
                        voters_outgoing=list(conf_state.voters_outgoing))

    def _maybe_compact(self, node: RawNode) -> None:
        every = self.compaction.every
        if every is None or self.snapshot_wait is not None:
            return
        applied = node.raft.raft_log.applied
        if applied - self.storage.snapshot_metadata.index >= every and applied >= self.compaction_retry_at:
            self.compact()

    def compact(self) -> int:
        """Snapshot the state machine at the applied index and discard old entries."""
        node = self.node
        applied = node.raft.raft_log.applied
        held = self.storage.snapshot_metadata.index
        if applied <= held:
            return held
        # Chunks flow from the machine into the storage (its store, if it has one) as
        # they are made: a large state is never encoded whole in memory.
        chunks = snapshot_chunks_of(self.state_machine, applied)
        limit = getattr(self.snapshots.mode, "max_snapshot_size", None)
        if self.storage.data_store is None and limit is not None:
            # Embedded: memory holds the snapshot, so the limit is the mode's (a store checks its own).
            chunks = within_max_size(applied, chunks, limit, f"{self.snapshots.mode.name.capitalize()}'s")
        try:
            snapshot = self.storage.create_snapshot(applied, node.raft.conf_state, chunks)
        except (OSError, SnapshotTooLargeError) as error:
            # A full or failing disk, or a state over the store's max_snapshot_size: keep the
            # log (nothing is lost) and try again after another round of entries; the node and
            # the cluster go on, and the trace names the reason.
            self.compaction_retry_at = applied + (self.compaction.every or 1)
            self._event("compaction_failed", index=applied, reason=str(error))
            return held
        size = snapshot.metadata.size
        self.monitor.snapshot_created(self.node_id, applied, snapshot.metadata.digest)
        self.monitor.state_at(self.node_id, applied, snapshot.metadata.digest)
        self._event("snapshot_created", index=applied, term=snapshot.term, size=size,
                    snapshot_id=snapshot.metadata.snapshot_id)
        compact_to = max(applied + 1 - self.compaction.keep_entries, self.storage.first_index())
        self.storage.compact(compact_to)
        self._event("compaction", index=applied, size=size, first_index=self.storage.first_index())
        return applied


def _describe_joint(before, after) -> str:
    """A ConfChangeV2's effect in words (the narration prints it as the change)."""
    def nodes(ids) -> str:
        return ", ".join(f"n{n}" for n in ids) or "none"
    if after.is_joint:
        return f"entered a joint configuration: the old voters {nodes(after.voters_outgoing)} must agree too"
    if before.is_joint:
        return f"left the joint configuration of old voters {nodes(before.voters_outgoing)}"
    return "changed the membership in one step"
