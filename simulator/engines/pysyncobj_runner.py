"""One pysyncobj node in the simulation: its life, its inbox, and what it is seen to do.

A :class:`PysyncobjRunner` owns one ``SyncObj`` (built with ``autoTick=False``)
and is called by the transport's delivery task for each inbox item, in the
transport's total order: a :class:`~simulator.node.Tick` runs ``doTick(0)``,
a message runs pysyncobj's receive callback, a client command calls the
replicated method. After each call it looks at the node from outside (role,
term, commit, applied, log bounds, snapshot bytes held) and turns what
changed into trace events and monitor checks.

An exception pysyncobj raises while handling an item is recorded as an
``engine_error`` event and the node goes on, as pysyncobj's own tick thread
does (it logs and continues). A call that would never return
(:class:`~simulator.engines.pysyncobj_adapter.EngineLivelock`) leaves the node
hung: it is stopped and reported, as an operator would find it.
"""

from __future__ import annotations

import random

import attrs
from pysyncobj.config import FAIL_REASON

from transports.in_memory import Delivered

from ..checks.invariants import InvariantViolation
from ..cluster.node import ClientCommand, ProposalTicket, Tick
from ..raft import ConfState, Role
from . import pysyncobj_adapter as adapter
from .pysyncobj_adapter import EngineLivelock, PysyncobjMessage, SimNode
from .pysyncobj_state import _ReplicatedMachine

_ROLES = {0: "follower", 1: "candidate", 2: "leader"}
_FAIL_NAMES = {value: name.lower() for name, value in vars(FAIL_REASON).items() if name.isupper()}


class PysyncobjRunner:
    """See the module docstring. The cluster builds one per node and (re)starts it."""

    def __init__(self, cluster, node_id: int) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.incarnation = 0
        self.syncobj: _ReplicatedMachine | None = None
        self.transport: adapter.SimTransport | None = None
        self._pending: list[ProposalTicket] = []
        self._seen = (None, 0, 0, 0, 0)  # role, term, commit, applied, first index
        self._last_apply: tuple[int, bytes] = (0, b"")
        self._serialized_id = None
        self._last_piece_delivered = False
        #: Index of the snapshot the node holds (made or installed); 0: none.
        self.snapshot_at = 0

    @property
    def is_up(self) -> bool:
        return self.syncobj is not None

    # -- life ----------------------------------------------------------------------

    def start(self, members: list[int]) -> None:
        cluster = self.cluster
        self.incarnation += 1
        others = [SimNode(n) for n in members if n != self.node_id]
        seed = f"{cluster.seed}/pysyncobj/{self.node_id}/{self.incarnation}"
        self.syncobj = cluster.syncobj_class(
            SimNode(self.node_id),
            others,
            node_id=self.node_id,
            rng=random.Random(seed),
            on_apply=self._on_apply,
            conf=adapter.make_conf(
                tick_interval=cluster.tick_interval,
                compaction_entries=cluster.compaction_entries,
                workarounds=cluster.workarounds,
            ),
            nodeClass=SimNode,
            transportClass=adapter.transport_factory(
                wire=cluster.transfers_tracker, workarounds=cluster.workarounds, on_livelock=self._on_livelock
            ),
        )
        self.transport = self.syncobj._SyncObj__transport
        self._seen = (None, 0, 0, 0, 0)
        self._serialized_id = None
        self.snapshot_at = 0  # pysyncobj keeps nothing on disk here
        cluster.monitor.node_started(self.node_id)
        self._event("start", term=0, members=sorted(members))
        self._observe()

    def stop(self, reason: str) -> None:
        """Crash: the node's memory (log, state, snapshot) is gone; pending clients hear so."""
        if self.syncobj is None:
            return
        self.syncobj._doDestroy()
        self.syncobj = None
        self.transport = None
        for ticket in self._pending:
            ticket.fail(reason)
        self._pending.clear()

    # -- inbox ---------------------------------------------------------------------

    def handle(self, item) -> None:
        if self.syncobj is None:
            return
        if isinstance(item, Delivered):
            item = item.message
        if not isinstance(item, (Tick, PysyncobjMessage, ClientCommand)):
            raise TypeError(f"n{self.node_id} got an inbox item it does not know: {item!r}")
        try:
            if isinstance(item, Tick):
                self.transport.refresh_connections(self.cluster.reachable_from(self.node_id))
                self.syncobj.doTick(0)
            elif isinstance(item, PysyncobjMessage):
                self.cluster.transfers_tracker.delivered(item)
                piece = item.snapshot_piece
                self._last_piece_delivered = piece is not None and piece[2]
                self.transport.deliver(item)
            else:
                self._submit(item)
        except EngineLivelock as livelock:
            self._event("engine_hung", reason=str(livelock))
            self.cluster.node_hung(self.node_id, str(livelock))
            return
        except InvariantViolation:
            raise
        except Exception as error:  # pysyncobj's own tick loop logs and carries on; so do we
            what = item.kind if isinstance(item, PysyncobjMessage) else type(item).__name__
            self._event("engine_error", during=what, error=f"{type(error).__name__}: {error}")
        if self.transport is not None:
            self.transport.end_call()
        self._observe()

    def _submit(self, command: ClientCommand) -> None:
        ticket = command.ticket
        if command.conf_change is not None:
            raise TypeError("pysyncobj membership changes go through cluster.add_node/remove_node")
        workarounds = self.cluster.workarounds
        if workarounds.unsplit_commands:
            size = adapter.command_size(self.syncobj, "apply_command", (command.data,))
            if size > workarounds.max_command_bytes:
                ticket.fail(
                    f"command of {len(command.data):,} bytes ({size:,} as pysyncobj pickles it) refused: "
                    f"the adapter keeps commands under {workarounds.max_command_bytes:,} bytes so "
                    "pysyncobj never splits them (workaround, docs/pysyncobj-bugs.md)"
                )
                return
        self._pending.append(ticket)

        def done(result, error) -> None:
            if ticket in self._pending:
                self._pending.remove(ticket)
            if error != FAIL_REASON.SUCCESS:
                ticket.fail(f"pysyncobj: {_FAIL_NAMES.get(error, error)}")
                return
            index, applied_command = self._last_apply
            ticket.index, ticket.node_id, ticket.result = index, self.node_id, result
            ticket.term = self.syncobj.raftCurrentTerm if self.syncobj else 0
            self.cluster.monitor.write_acknowledged(index, applied_command)
            ticket.done.set()

        self.syncobj.apply_command(command.data, callback=done)

    # -- what the node is seen to do -----------------------------------------------------

    def _on_apply(self, node_id: int, index: int, command: bytes, result: str) -> None:
        self._last_apply = (index, command)
        self.cluster.monitor.entry_applied(node_id, index, command)

    def _on_livelock(self, to: int, kind: str, count: int) -> None:
        self._event("engine_loop", to=to, last=kind, messages=count)

    def role(self) -> str:
        return _ROLES[self.syncobj._SyncObj__raftState] if self.syncobj else "down"

    def _observe(self) -> None:
        syncobj = self.syncobj
        if syncobj is None:
            return
        role = self.role()
        term, commit, applied = syncobj.raftCurrentTerm, syncobj.raftCommitIndex, syncobj.raftLastApplied
        first, _ = adapter.log_bounds(syncobj)
        old_role, old_term, old_commit, old_applied, old_first = self._seen
        self._seen = (role, term, commit, applied, first)
        if (role, term) != (old_role, old_term):
            leader = syncobj._getLeader()
            self._event("role", role=role, term=term, leader=leader.number if leader else None)
            if role == "leader":
                self.cluster.monitor.leader_elected(self.node_id, term)
            self.cluster.role_changed()
        if commit != old_commit:
            self._event("commit", index=commit)
        installing, self._last_piece_delivered = self._last_piece_delivered, False
        if installing and applied != old_applied:
            # The last piece of a snapshot arrived and applied moved: pysyncobj loaded it.
            state = syncobj.digest()
            size = self.cluster.transfers_tracker.installed(self.node_id, applied)
            self.snapshot_at = applied
            self._event("snapshot_installed", index=applied, size=size, state=state[7:23])
            self.cluster.monitor.snapshot_installed(self.node_id, applied, state)
        elif applied != old_applied and old_role is not None:
            self._event("apply", first=old_applied + 1, last=applied)
        self._observe_compaction(syncobj, first, old_first)
        self.cluster.memory_changed(self.node_id, adapter.held_snapshot_bytes(syncobj))

    def _observe_compaction(self, syncobj, first: int, old_first: int) -> None:
        serializer = syncobj._SyncObj__serializer
        # pid -1: the in-memory snapshot was just written (the log is cut at the next tick).
        if serializer._Serializer__pid == -1:
            serialized_id = serializer._Serializer__currentID
            if serialized_id != self._serialized_id:
                self._serialized_id = serialized_id
                index = serialized_id + 1
                self.snapshot_at = index
                size = adapter.held_snapshot_bytes(syncobj)
                self._event("snapshot_created", index=index, size=size)
                if syncobj.raftLastApplied == index:
                    self.cluster.monitor.snapshot_created(index, syncobj.digest())
        if first > old_first and old_first:
            self._event("compaction", first_index=first)

    def _event(self, kind: str, **fields) -> None:
        self.cluster.trace.node_event(self.node_id, kind, **fields)

    # -- reading -------------------------------------------------------------------------

    def statistics(self) -> PysyncobjStatistics:
        syncobj = self.syncobj
        first, last = adapter.log_bounds(syncobj)
        leader = syncobj._getLeader()
        return PysyncobjStatistics(
            node_id=self.node_id, role=Role(self.role()), term=syncobj.raftCurrentTerm,
            leader_id=leader.number if leader else 0, commit=syncobj.raftCommitIndex,
            applied=syncobj.raftLastApplied, first_index=first, last_index=last,
            snapshot_index=self.snapshot_at,
            # pysyncobj has no learners: every member it knows of votes.
            conf_state=ConfState(voters=sorted({self.node_id, *self.transport.peers})),
        )


@attrs.frozen
class PysyncobjStatistics:
    """What can be seen of a pysyncobj node; the names of the native ``RaftStatistics``."""

    node_id: int
    role: Role
    term: int
    leader_id: int
    commit: int
    applied: int
    first_index: int
    last_index: int
    snapshot_index: int
    conf_state: ConfState


__all__ = ["PysyncobjRunner", "PysyncobjStatistics"]

