"""``RawNode``: the application's handle on one Raft node (raft-rs ``RawNode``).

The application drives a node in a loop::

    node.tick()                      # every tick of its clock
    node.step(message)               # every message from a peer
    node.propose(data)               # client requests
    while node.has_ready():
        ready = node.ready()
        # 1. install ready.snapshot (state machine + storage), if any
        # 2. persist ready.entries and ready.hard_state
        # 3. send ready.messages (only now: they may promise what was persisted)
        # 4. apply ready.committed_entries; call apply_conf_change for
        #    CONF_CHANGE / CONF_CHANGE_V2 entries and save the returned ConfState
        # 5. serve each of ready.read_states once applied >= its index
        node.advance(ready)

``Ready`` lists its fields in that order.
"""

from __future__ import annotations

import enum
import random

import attrs

from .config import Config
from .errors import ProposalDroppedError, ReadyMisuseError, RequestSnapshotDroppedError
from .membership import AnyConfChange, changed_conf_state, conf_change_entry
from .messages import (
    INVALID_ID,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageKinds,
    MessageType,
    Snapshot,
)
from .progress import ProgressState, ProgressStates
from .raft import Raft
from .role import Role, Roles
from .read_only import LEASE_CONTEXT, ReadState
from .reasons import LOCAL_FROM_NETWORK, MALFORMED, MISADDRESSED, UNKNOWN_SENDER
from .storage import Storage

MT = MessageKinds


class SnapshotStatus(enum.Enum):
    """How a snapshot transfer to a follower ended (``report_snapshot``)."""

    FINISH = "finish"
    FAILURE = "failure"


@attrs.frozen
class SoftState:
    """Volatile state the application may want to show: who leads, and our role."""

    leader_id: int
    role: Role


@attrs.frozen
class Ready:
    """Everything the application must do, in field order, before ``advance``.

    - ``snapshot``: install it first (restore the state machine, replace storage);
      ``data`` is ``None`` when it travels out of band and must be fetched.
    - ``entries`` and ``hard_state``: persist them.
    - ``messages``: send them, only after persisting.
    - ``committed_entries``: apply them to the state machine, in order.
    - ``read_states``: reads confirmed by the leader; serve each once the
      state machine has applied its ``index``.
    """

    number: int
    soft_state: SoftState | None
    snapshot: Snapshot | None
    entries: tuple[Entry, ...]
    hard_state: HardState | None
    messages: tuple[Message, ...]
    committed_entries: tuple[Entry, ...]
    read_states: tuple[ReadState, ...] = ()


@attrs.frozen
class PeerProgress:
    """A leader's view of one follower, as reported by ``statistics()``."""

    node_id: int
    state: ProgressState
    match_index: int
    next_index: int
    pending_snapshot: int
    is_learner: bool
    recently_active: bool


@attrs.frozen
class RaftStatistics:
    """A snapshot of one node's Raft state and counters."""

    node_id: int
    role: Role
    term: int
    vote: int
    leader_id: int
    commit: int
    applied: int
    first_index: int
    last_index: int
    snapshot_index: int
    conf_state: ConfState
    lead_transferee: int | None
    progress: tuple[PeerProgress, ...]
    #: (reason, count) for every message ignored or refused, sorted by reason.
    rejections: tuple[tuple[str, int], ...]
    #: (event, count) for elections, snapshots sent, transfers..., sorted by event.
    events: tuple[tuple[str, int], ...]

    def rejected(self, reason: str) -> int:
        return dict(self.rejections).get(reason, 0)

    def event(self, name: str) -> int:
        return dict(self.events).get(name, 0)


class RawNode:
    """One Raft node without I/O: feed it ticks and messages, take ``Ready`` hand-offs."""

    def __init__(self, config: Config, storage: Storage, rng: random.Random) -> None:
        self.raft = Raft(config, storage, rng)
        self._previous_soft_state = self._soft_state()
        self._previous_hard_state = storage.initial_state().hard_state
        self._ready_number = 0
        self._outstanding: Ready | None = None

    @property
    def id(self) -> int:
        return self.raft.id

    @property
    def storage(self) -> Storage:
        return self.raft.raft_log.storage

    def _soft_state(self) -> SoftState:
        return SoftState(self.raft.leader_id, self.raft.role)

    # -- inputs -------------------------------------------------------------

    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (with pre-vote if configured)."""
        self.raft.step(Message(MT.HUP, to=self.id, from_=self.id))

    def step(self, message: Message) -> None:
        """Handle a message from a peer. Bad messages are counted, never raised."""
        if not _has_valid_types(message):
            self.raft.rejections[MALFORMED] += 1
            return
        self.step_typed(message)

    def step_typed(self, message: Message) -> None:
        """:meth:`step` for a message whose field types hold by construction: one another
        ``RawNode`` of this process built, handed over by an in-process transport. The
        type check belongs where bytes or user input become messages (a decoder,
        :meth:`step`); everything that depends on the receiver is still checked here."""
        if message.is_local:
            # Local kinds come from tick()/report_*(); from the network they are forged.
            self.raft.rejections[LOCAL_FROM_NETWORK] += 1
            return
        if message.to != self.id or message.from_ in (INVALID_ID, self.id):
            self.raft.rejections[MISADDRESSED] += 1
            return
        if message.is_response and message.from_ not in self.raft.prs.progress:
            self.raft.rejections[UNKNOWN_SENDER] += 1
            return
        try:
            self.raft.step(message)
        except ProposalDroppedError:
            pass  # already counted as proposal_dropped

    def propose(self, data: bytes) -> None:
        """Propose a normal entry; raises ``ProposalDroppedError`` if it cannot be taken."""
        self.raft.step(
            Message(MT.PROPOSE, to=self.id, from_=self.id, entries=(Entry(term=0, index=0, data=bytes(data)),))
        )

    def propose_conf_change(self, change: AnyConfChange) -> None:
        """Propose a membership change (``ConfChange`` or ``ConfChangeV2``).

        Raises ``ConfChangePendingError`` if another is not applied yet and
        ``InvalidConfChangeError`` if it cannot apply; the leader checks
        forwarded changes the same way (:meth:`Raft.check_conf_change`).
        """
        raft = self.raft
        if raft.role is Roles.LEADER:
            raft.check_conf_change(change)
        else:
            changed_conf_state(raft.conf_state, change)  # our view; the leader checks again
        raft.step(Message(MT.PROPOSE, to=self.id, from_=self.id, entries=(conf_change_entry(change),)))

    def apply_conf_change(self, change: AnyConfChange) -> ConfState:
        """Apply a committed membership change; save the returned ``ConfState`` to storage.

        A change that cannot apply (it would remove the last voter, say) is
        refused and counted (``conf_change_refused_at_apply``); the returned
        configuration is then the unchanged one.
        """
        return self.raft.apply_conf_change(change)

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read; ``Ready.read_states`` answers with ``context``.

        ``context`` must be non-empty and unique among reads in flight. On a
        follower the request goes to the leader; with no leader it is dropped
        (counted as ``read_index_dropped``) and the caller retries.
        """
        if not isinstance(context, bytes) or not context or context.startswith(LEASE_CONTEXT):
            raise ValueError(
                f"read context must be non-empty bytes not starting with {LEASE_CONTEXT!r}, "
                f"got {context!r}"
            )
        entry = Entry(term=0, index=0, data=context)
        self.raft.step(Message(MT.READ_INDEX, to=self.id, from_=self.id, entries=(entry,)))

    def request_snapshot(self, request_index: int | None = None) -> None:
        """Follower: ask the leader for a snapshot at or past ``request_index`` (default: our commit).

        For a follower that knows its state is bad (a damaged snapshot on
        disk, say): it ignores appends until the snapshot is installed.
        """
        raft = self.raft
        if raft.role is not Roles.FOLLOWER or raft.leader_id == INVALID_ID:
            raise RequestSnapshotDroppedError(
                f"node {self.id} is {raft.role.value} and knows leader {raft.leader_id}; "
                "only a follower with a leader can request a snapshot"
            )
        if raft.pending_request_snapshot:
            raise RequestSnapshotDroppedError(
                f"node {self.id} already requested a snapshot at {raft.pending_request_snapshot}"
            )
        index = raft.raft_log.committed if request_index is None else request_index
        raft.request_snapshot(max(index, 1))

    def transfer_leader(self, transferee: int) -> None:
        """Ask the leader to hand leadership to ``transferee`` (it must be a voter)."""
        self.raft.step(Message(MT.TRANSFER_LEADER, to=self.id, from_=transferee))

    def report_snapshot(self, to: int, status: SnapshotStatus) -> None:
        """Tell the leader how sending a snapshot to ``to`` ended."""
        self.raft.step(
            Message(MT.SNAP_STATUS, to=self.id, from_=to, reject=status is SnapshotStatus.FAILURE)
        )

    def report_unreachable(self, to: int) -> None:
        """Tell the leader a message to ``to`` could not be delivered."""
        self.raft.step(Message(MT.UNREACHABLE, to=self.id, from_=to))

    # -- the Ready hand-off -------------------------------------------------

    def has_ready(self) -> bool:
        # Called after every input, so it compares fields instead of building values.
        raft = self.raft
        log = raft.raft_log
        if raft.messages or log.unstable.entries or log.unstable.snapshot is not None or raft.read_states:
            return True
        hard, soft = self._previous_hard_state, self._previous_soft_state
        return (
            raft.term != hard.term
            or raft.vote != hard.vote
            or log.committed != hard.commit
            or raft.leader_id != soft.leader_id
            or raft.role is not soft.role
            or log.has_next_entries()
        )

    def ready(self) -> Ready:
        """What to do next. Call ``advance`` with it before asking again."""
        if self._outstanding is not None:
            raise ReadyMisuseError(
                f"Ready {self._outstanding.number} was not advanced; call advance() first"
            )
        raft = self.raft
        log = raft.raft_log
        # Compared field by field and built only when changed: most Ready cycles
        # (one per delivered message) change neither the soft nor the hard state.
        soft, hard = self._previous_soft_state, self._previous_hard_state
        soft_state = None
        if raft.leader_id != soft.leader_id or raft.role is not soft.role:
            soft_state = SoftState(raft.leader_id, raft.role)
        hard_state = None
        if raft.term != hard.term or raft.vote != hard.vote or log.committed != hard.commit:
            hard_state = HardState(term=raft.term, vote=raft.vote, commit=log.committed)
        self._ready_number += 1
        unstable = log.unstable
        ready = Ready(
            self._ready_number,
            soft_state,
            unstable.snapshot,
            tuple(unstable.entries),
            hard_state,
            tuple(raft.messages),
            tuple(log.next_entries(raft.config.max_committed_size_per_ready)) if log.has_next_entries() else (),
            tuple(raft.read_states) if raft.read_states else (),
        )
        raft.messages.clear()
        if raft.read_states:
            raft.read_states.clear()
        self._outstanding = ready
        return ready

    def advance(self, ready: Ready) -> None:
        """Everything in ``ready`` was done: persisted, sent and applied."""
        if self._outstanding is None:
            raise ReadyMisuseError("advance() called without an outstanding Ready")
        if ready is not self._outstanding:
            raise ReadyMisuseError(
                f"advance() got Ready {ready.number}, expected Ready {self._outstanding.number}"
            )
        self._outstanding = None
        log = self.raft.raft_log
        if ready.soft_state is not None:
            self._previous_soft_state = ready.soft_state
        if ready.hard_state is not None:
            self._previous_hard_state = ready.hard_state
        if ready.snapshot is not None:
            log.stable_snapshot_to(ready.snapshot.index)
            log.applied_to(max(log.applied, ready.snapshot.index))
        if ready.entries:
            last = ready.entries[-1]
            log.stable_to(last.index, last.term)
        if ready.committed_entries:
            log.applied_to(ready.committed_entries[-1].index)
        self.raft.maybe_auto_leave()

    # -- observation --------------------------------------------------------

    def statistics(self) -> RaftStatistics:
        raft = self.raft
        log = raft.raft_log
        progress = ()
        if raft.role is Roles.LEADER:
            progress = tuple(
                PeerProgress(
                    node_id=node_id,
                    state=p.state,
                    match_index=p.match_index,
                    next_index=p.next_index,
                    pending_snapshot=p.pending_snapshot,
                    is_learner=p.is_learner,
                    recently_active=p.recent_active,
                )
                for node_id, p in raft.prs.items()
            )
        return RaftStatistics(
            node_id=raft.id,
            role=raft.role,
            term=raft.term,
            vote=raft.vote,
            leader_id=raft.leader_id,
            commit=log.committed,
            applied=log.applied,
            first_index=log.first_index(),
            last_index=log.last_index(),
            snapshot_index=log.first_index() - 1,
            conf_state=raft.conf_state,
            lead_transferee=raft.lead_transferee,
            progress=progress,
            rejections=tuple(sorted(raft.rejections.items())),
            events=tuple(sorted(raft.events.items())),
        )


def _has_valid_types(message: object) -> bool:
    """Field types as a decoder would guarantee; values are checked by the core."""
    if type(message) is not Message or type(message.msg_type) is not MessageType:
        return False
    m = message
    # Written out, not looped over a tuple: this runs for every message received.
    if not (
        type(m.to) is int and m.to >= 0
        and type(m.from_) is int and m.from_ >= 0
        and type(m.term) is int and m.term >= 0
        and type(m.log_term) is int and m.log_term >= 0
        and type(m.index) is int and m.index >= 0
        and type(m.commit) is int and m.commit >= 0
        and type(m.reject_hint) is int and m.reject_hint >= 0
        and type(m.request_snapshot) is int and m.request_snapshot >= 0
        and type(m.priority) is int  # any sign: raft-rs priorities are i64
        and type(m.reject) is bool
        and isinstance(m.context, bytes)
    ):
        return False
    if not isinstance(m.entries, tuple):
        return False
    if m.entries and not all(
        isinstance(entry, Entry)
        and type(entry.term) is int
        and type(entry.index) is int
        and isinstance(entry.data, bytes)
        and isinstance(entry.entry_type, EntryType)
        for entry in message.entries
    ):
        return False
    snapshot = message.snapshot
    if snapshot is not None and not (
        isinstance(snapshot, Snapshot)
        and type(snapshot.metadata.index) is int
        and type(snapshot.metadata.term) is int
        and (snapshot.data is None or isinstance(snapshot.data, bytes))
    ):
        return False
    return True
