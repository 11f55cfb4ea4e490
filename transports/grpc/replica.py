"""The Raft loop of a node process: the same ``RawNode`` Ready loop as the simulator, on real time.

Theory of operation. Everything that touches Raft state runs on the one
trio thread of the process: clock ticks (a task), messages that the gRPC
service threads hand over with ``trio.from_thread``, client proposals, and
the snapshot transfer tasks. Each reaction is a plain method call followed
by :meth:`Replica.process_ready`, which has no ``await`` inside, so it is
atomic with respect to every other reaction, as in the simulator's
``NodeRunner``. For each ``Ready``, in the order ``RawNode`` documents:

1. install ``ready.snapshot`` (restore a fresh state machine from the bytes,
   or from the node's store when they came out of band);
2. persist entries and hard state, in *one* sqlite commit
   (:meth:`SqliteRaftStorage.ready_batch`), so the fsync happens before
3. the messages are queued for the peers (:mod:`.links`);
4. apply committed entries (membership changes update the address book
   from the address the change carries) and wake waiting clients;
5. ``advance``.

What differs from the simulated node is only where inputs come from and
where outputs go: the :class:`SnapshotRouting` given to the replica decides
what a snapshot message means for this mode (Embedded: data inside;
Streaming: metadata only, the bytes pulled by :mod:`.snapshot_pull`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs
import trio

from simulator.raft import (
    INVALID_ID,
    ConfChange,
    ConfChangeType,
    Config,
    Message,
    MessageType,
    RaftError,
    RawNode,
    Ready,
    Role,
    SnapshotStatus,
    decode_conf_change,
)

from . import events as ev
from .storage import SqliteRaftStorage


class NotLeaderError(Exception):
    """This node cannot take the request; ``leader_id`` may know better."""

    def __init__(self, message: str, leader_id: int) -> None:
        super().__init__(message)
        self.leader_id = leader_id


@attrs.define(eq=False)
class Ticket:
    """A client waiting for its entry to be applied."""

    index: int
    term: int
    done: trio.Event = attrs.Factory(trio.Event)
    result: str | None = None
    error: str | None = None

    def fail(self, reason: str) -> None:
        if not self.done.is_set():
            self.error = reason
            self.done.set()


@attrs.define(eq=False)
class ReadWaiter:
    """A linearizable read waiting for the leader to confirm it, then for the state machine."""

    index: int | None = None  # the read index, once the leader confirmed its leadership
    done: trio.Event = attrs.Factory(trio.Event)
    error: str | None = None


class Replica:
    """One node's Raft state, state machine and Ready loop; see the module docstring."""

    def __init__(self, *, config: Config, storage: SqliteRaftStorage, make_state_machine: Callable,
                 send: Callable[[Message], None], events: ev.EventLog, snapshots,
                 on_peer_added: Callable[[int, str], None], compact_every: int | None = None,
                 keep_entries: int = 0) -> None:
        self.config = config
        self.storage = storage
        self.make_state_machine = make_state_machine
        self.send = send
        self.events = events
        self.snapshots = snapshots  # Embedded or streaming routing (snapshot_routing.py)
        self.on_peer_added = on_peer_added
        self.compact_every = compact_every
        self.keep_entries = keep_entries
        self.waiting: dict[int, Ticket] = {}
        self.reads: dict[bytes, ReadWaiter] = {}
        self._read_serial = 0
        self.last_role: Role | None = None
        self._digest_cache: tuple[int, str] | None = None
        machine = make_state_machine()
        snapshot = storage.snapshot_metadata
        chunks = storage.snapshot_chunks()
        if snapshot.index > 0 and chunks is not None:
            machine.restore_from_snapshot(chunks)
        self.state_machine = machine
        config = attrs.evolve(config, applied=max(config.applied, snapshot.index))
        # Real time, real network: nothing to replay, so the election jitter is seeded by the OS.
        self.node = RawNode(config, storage, random.Random())

    @property
    def node_id(self) -> int:
        return self.config.id

    @property
    def role(self) -> Role:
        return self.node.raft.role

    @property
    def leader_id(self) -> int:
        return self.node.raft.leader_id

    # -- inputs ----------------------------------------------------------------------------

    def tick(self) -> None:
        self.node.tick()
        self.snapshots.on_tick(self)
        self.process_ready()

    def receive(self, message: Message) -> None:
        """A message from a peer, already decoded and validated at the wire."""
        if message.msg_type is MessageType.SNAPSHOT and message.snapshot is not None \
                and message.snapshot.data is None and message.term >= self.node.raft.term:
            self.snapshots.on_offer(self, message)  # data moves out of band first (stale terms: Raft refuses)
        else:
            self.node.step(message)
        self.process_ready()

    def step(self, message: Message) -> None:
        """Hand a message straight to Raft (a snapshot whose data is now in the store)."""
        self.node.step(message)
        self.process_ready()

    def report_unreachable(self, peer: int) -> None:
        self.node.report_unreachable(peer)
        self.process_ready()

    def report_snapshot(self, peer: int, status: SnapshotStatus) -> None:
        self.node.report_snapshot(peer, status)
        self.process_ready()

    def propose(self, data: bytes = b"", conf_change: ConfChange | None = None) -> Ticket:
        raft = self.node.raft
        if raft.role is not Role.LEADER:
            raise NotLeaderError(
                f"node {self.node_id} is not the leader (leader: {raft.leader_id or 'unknown'})", raft.leader_id
            )
        if conf_change is not None:
            self.node.propose_conf_change(conf_change)
        else:
            self.node.propose(data)
        ticket = Ticket(index=raft.raft_log.last_index(), term=raft.term)
        self.waiting[ticket.index] = ticket
        self.process_ready()
        return ticket

    async def propose_and_wait(self, data: bytes = b"", conf_change: ConfChange | None = None,
                               timeout: float = 30.0) -> Ticket:
        """Propose and wait until applied; the ticket carries the result or the error."""
        try:
            ticket = self.propose(data, conf_change)
        except RaftError as error:
            return Ticket(index=0, term=0, error=f"node {self.node_id} refused the proposal: {error}")
        with trio.move_on_after(timeout):
            await ticket.done.wait()
        if not ticket.done.is_set():
            ticket.fail(f"entry {ticket.index} was not applied within {timeout:g} s")
        return ticket

    async def read_barrier(self, timeout: float = 5.0) -> str | None:
        """Wait until a read of the state machine is linearizable (Raft's ReadIndex): the
        leader confirms with a quorum that it still leads, and the state machine has applied
        the commit index it had then. No log entry is written. Returns why not, or ``None``."""
        raft = self.node.raft
        if raft.role is not Role.LEADER:
            raise NotLeaderError(f"node {self.node_id} is not the leader (leader: {raft.leader_id or 'unknown'})",
                                 raft.leader_id)
        self._read_serial += 1
        context = f"read-{self.node_id}-{self._read_serial}".encode()
        waiter = self.reads[context] = ReadWaiter()
        try:
            self.node.read_index(context)
            self.process_ready()
            with trio.move_on_after(timeout):
                await waiter.done.wait()
        finally:
            del self.reads[context]
        if not waiter.done.is_set():
            return f"read index not confirmed within {timeout:g} s"
        return waiter.error

    def _serve_reads(self, read_states=()) -> None:
        for state in read_states:
            waiter = self.reads.get(state.request_ctx)
            if waiter is not None:
                waiter.index = state.index
        applied = self.node.raft.raft_log.applied
        for waiter in self.reads.values():
            if waiter.index is not None and waiter.index <= applied:
                waiter.done.set()

    # -- the Ready loop --------------------------------------------------------------------

    def process_ready(self) -> None:
        node = self.node
        while node.has_ready():
            self._handle_ready(node, node.ready())

    def _handle_ready(self, node: RawNode, ready: Ready) -> None:
        storage = self.storage
        if ready.soft_state is not None:
            self._role_changed()
        if ready.snapshot is not None or ready.entries or ready.hard_state is not None:
            with storage.ready_batch():  # one commit, one fsync, before any message leaves
                if ready.snapshot is not None:
                    self.state_machine = self.snapshots.install(self, ready.snapshot)
                    self._digest_cache = None
                if ready.entries:
                    storage.append(ready.entries)
                if ready.hard_state is not None:
                    storage.set_hard_state(ready.hard_state)
        for message in ready.messages:
            self.snapshots.outgoing(self, message)
            self.send(message)
        for entry in ready.committed_entries:
            self._apply(entry)
        node.advance(ready)
        if self.reads:
            self._serve_reads(ready.read_states)
        if self.compact_every is not None:
            applied = node.raft.raft_log.applied
            if applied - storage.snapshot_metadata.index >= self.compact_every:
                self.compact()

    def _role_changed(self) -> None:
        raft = self.node.raft
        if raft.role is self.last_role:
            return
        self.last_role = raft.role
        self.events(ev.ROLE_CHANGED, f"{raft.role.value} in term {raft.term}, leader {raft.leader_id or 'unknown'}")
        if raft.role is not Role.LEADER:
            for ticket in self.waiting.values():
                ticket.fail(f"node {self.node_id} lost leadership before applying entry {ticket.index}")
            self.waiting.clear()
            for waiter in self.reads.values():
                waiter.error = f"node {self.node_id} lost leadership before the read was confirmed"
                waiter.done.set()

    def _apply(self, entry) -> None:
        machine = self.state_machine
        result = None
        if entry.entry_type.is_conf_change:
            machine.applied_index = entry.index
            self._apply_conf_change(entry)
        elif entry.data:
            result = machine.apply(entry.index, entry.data)
        else:
            machine.applied_index = entry.index
        ticket = self.waiting.pop(entry.index, None)
        if ticket is not None:
            if ticket.term == entry.term:
                ticket.result = result
                ticket.done.set()
            else:
                ticket.fail(f"entry {entry.index} was replaced by one of term {entry.term}")

    def _apply_conf_change(self, entry) -> None:
        # The leader let in only changes that decode; one that does not (an old log,
        # a forgery) changes nothing, on every node alike.
        try:
            change = decode_conf_change(entry)
        except ValueError as error:
            self.events(ev.MEMBERSHIP_CHANGED, f"entry {entry.index} refused: {error}")
            return
        conf_state = self.node.apply_conf_change(change)
        self.storage.set_conf_state(conf_state)
        if isinstance(change, ConfChange) and change.context \
                and change.change_type is not ConfChangeType.REMOVE_NODE:
            # A single-server add carries the newcomer's address, so every member learns it.
            address = change.context.decode("utf-8", "replace")
            self.storage.save_peer_address(change.node_id, address)
            self.on_peer_added(change.node_id, address)
        self.events(ev.MEMBERSHIP_CHANGED, f"{change!r} at {entry.index}: voters {list(conf_state.voters)}, "
                                           f"learners {list(conf_state.learners)}")

    def compact(self) -> int:
        """Snapshot the state machine at the applied index; discard entries it covers."""
        node = self.node
        applied = node.raft.raft_log.applied
        if applied <= self.storage.snapshot_metadata.index:
            return self.storage.snapshot_metadata.index
        # The chunk contract (simulator/machines/contracts.py): the chunks (or one bytes object)
        # stream into the snapshot store as the machine makes them; the store checks their type.
        chunks = self.state_machine.snapshot_chunks(applied)
        snapshot = self.storage.create_snapshot(applied, node.raft.conf_state, chunks)
        compact_to = max(applied + 1 - self.keep_entries, self.storage.first_index())
        self.storage.compact(compact_to)
        self.events(ev.SNAPSHOT_CREATED, f"index {applied}, {snapshot.metadata.size} bytes, "
                                         f"id {snapshot.metadata.snapshot_id}")
        return applied

    # -- observation -----------------------------------------------------------------------

    def state_digest(self) -> str:
        """Digest of the state machine at its applied index (cached per index: it is costly)."""
        applied = self.state_machine.applied_index
        if self._digest_cache is None or self._digest_cache[0] != applied:
            self._digest_cache = (applied, self.state_machine.digest())
        return self._digest_cache[1]

    def leader_hint(self) -> int:
        leader = self.node.raft.leader_id
        return INVALID_ID if leader == self.node_id and self.role is not Role.LEADER else leader
