"""The Raft state machine of one node: roles, elections, and the common step.

Theory of operation: everything that happens to a node is a :class:`Message`
passed to :meth:`Raft.step` — messages from peers, and local ones such as
``HUP`` (time to campaign) or ``BEAT`` (time to send heartbeats) that
:meth:`Raft.tick` generates. ``step`` first settles terms (the same for every
role), then hands the message to the step function of the current role.
Outgoing messages collect in ``Raft.messages``; the ``RawNode`` hands them out
through ``Ready``. Nothing here does I/O, reads a clock or uses the global
random generator.

Leader-side replication (appends, snapshots, responses) lives in
:mod:`.replication`, which this class mixes in.
"""

from __future__ import annotations

import enum
import random
from collections import Counter

import attrs

from .config import Config
from .errors import ProposalDroppedError
from .follower import FollowerLog
from .log import RaftLog
from .membership import MembershipChanges
from .messages import (
    CAMPAIGN_TRANSFER,
    INVALID_ID,
    ConfState,
    Entry,
    HardState,
    TERMLESS_MESSAGES,
    Message,
    MessageKinds,
)
from .progress import ProgressTracker, VoteResult
from .read_only import ReadIndexHandling, ReadOnly, ReadState
from .reasons import (
    CAMPAIGN_REFUSED_UNAPPLIED_CONF_CHANGE,
    MALFORMED,
    PROPOSAL_DROPPED,
    PROPOSAL_NOT_FORWARDED,
    READ_DROPPED,
    STALE_TERM,
    UNKNOWN_SENDER,
    VOTE_IN_LEASE,
    WRONG_ROLE,
)
from .replication import LeaderReplication
from .role import Roles
from .storage import Storage

MT = MessageKinds


class CampaignKind(enum.Enum):
    PRE_ELECTION = "pre_election"
    ELECTION = "election"
    TRANSFER = "transfer"  # skips pre-vote and the voters' leader lease


class Raft(FollowerLog, LeaderReplication, ReadIndexHandling, MembershipChanges):
    """One node's Raft state. Use it through :class:`~simulator.raft.raw_node.RawNode`."""

    def __init__(self, config: Config, storage: Storage, rng: random.Random) -> None:
        config.validate()
        self.id = config.id
        self.config = config
        self.rng = rng
        self.raft_log = RaftLog.new(storage)
        raft_state = storage.initial_state()
        self.prs = ProgressTracker(max_inflight=config.max_inflight_msgs)
        self.prs.apply_conf(raft_state.conf_state, self.raft_log.last_index() + 1)
        self.messages: list[Message] = []
        self.rejections: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.term = 0
        self.vote = INVALID_ID
        self.role = Roles.FOLLOWER
        self.leader_id = INVALID_ID
        self.lead_transferee: int | None = None
        self.pending_conf_index = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self.read_only = ReadOnly(config.read_only_option)
        #: Reads confirmed since the last ``Ready`` (handed out there).
        self.read_states: list[ReadState] = []
        #: Reads that reached a leader before it committed an entry of its term.
        self.pending_read_requests: list[Message] = []
        #: A follower's outstanding request_snapshot index (0: none).
        self.pending_request_snapshot = 0
        #: Ticks since this node became leader (the clock of its read lease).
        self.leader_ticks = 0

        hard_state = raft_state.hard_state
        if hard_state != HardState():
            self._load_hard_state(hard_state)
        if config.applied > 0:
            self.raft_log.applied_to(config.applied)
        self.become_follower(self.term, INVALID_ID)

    def _load_hard_state(self, hard_state: HardState) -> None:
        last = self.raft_log.last_index()
        if not self.raft_log.committed <= hard_state.commit <= last:
            raise ValueError(
                f"stored commit {hard_state.commit} must lie in "
                f"[{self.raft_log.committed}, {last}] (storage and hard state disagree)"
            )
        self.raft_log.committed = hard_state.commit
        self.term = hard_state.term
        self.vote = hard_state.vote

    # -- state --------------------------------------------------------------

    @property
    def hard_state(self) -> HardState:
        return HardState(term=self.term, vote=self.vote, commit=self.raft_log.committed)

    @property
    def promotable(self) -> bool:
        """Only a voter may campaign: learners and removed nodes stay quiet."""
        return self.prs.is_voter(self.id)

    @property
    def conf_state(self) -> ConfState:
        return self.prs.conf_state

    def _reject(self, reason: str) -> None:
        self.rejections[reason] += 1

    def _send(self, message: Message) -> None:
        self.messages.append(message)

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = INVALID_ID
        self.leader_id = INVALID_ID
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_election_timeout()
        self.lead_transferee = None
        self.prs.reset_votes()
        self.pending_conf_index = 0
        self.read_only = ReadOnly(self.config.read_only_option)
        self.pending_read_requests = []
        self.leader_ticks = 0
        last = self.raft_log.last_index()
        for node_id, progress in self.prs.items():
            progress.match_index = last if node_id == self.id else 0
            progress.next_index = last + 1
            progress.become_probe()
            progress.next_index = last + 1
            progress.pending_request_snapshot = 0
            progress.lease_ack_tick = -1
            # Only our own answer is known: a new leader that hears from no quorum
            # within one election timeout steps down (raft-rs resets these too).
            progress.recent_active = node_id == self.id

    def _reset_randomized_election_timeout(self) -> None:
        low, high = self.config.election_range
        self.randomized_election_timeout = self.rng.randrange(low, high)

    def become_follower(self, term: int, leader_id: int) -> None:
        self._reset(term)
        self.leader_id = leader_id
        self.role = Roles.FOLLOWER

    def become_pre_candidate(self) -> None:
        if self.role is Roles.LEADER:
            raise AssertionError("a leader cannot become a pre-candidate")
        # Neither the term nor the vote change: that is the point of pre-vote.
        self.role = Roles.PRE_CANDIDATE
        self.prs.reset_votes()
        self.leader_id = INVALID_ID

    def become_candidate(self) -> None:
        if self.role is Roles.LEADER:
            raise AssertionError("a leader cannot become a candidate")
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Roles.CANDIDATE

    def become_leader(self) -> None:
        if self.role is Roles.FOLLOWER:
            raise AssertionError("a follower cannot become leader without an election")
        self._reset(self.term)
        self.leader_id = self.id
        self.role = Roles.LEADER
        self.events["became_leader"] += 1
        self.prs.progress[self.id].become_replicate()
        # Any conf change in the log may be uncommitted: allow a new one only after it.
        self.pending_conf_index = self.raft_log.last_index()
        # An entry of the new term: committing it commits everything before (§5.4.2).
        self.append_entries([Entry(term=0, index=0)])

    # -- time ---------------------------------------------------------------

    def tick(self) -> None:
        if self.role is Roles.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.step(Message(MT.HUP, to=self.id, from_=self.id))

    def _tick_heartbeat(self) -> None:
        self.leader_ticks += 1
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.config.election_tick:
            self.election_elapsed = 0
            if self.config.check_quorum:
                self.step(Message(MT.CHECK_QUORUM, to=self.id, from_=self.id))
            if self.role is Roles.LEADER and self.lead_transferee is not None:
                self.events["leader_transfer_aborted"] += 1
                self.lead_transferee = None
        if self.role is not Roles.LEADER:
            return
        if self.heartbeat_elapsed >= self.config.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self.step(Message(MT.BEAT, to=self.id, from_=self.id))

    # -- elections ----------------------------------------------------------

    def hup(self, transfer: bool = False) -> None:
        if self.role is Roles.LEADER:
            return
        if not self.promotable:
            self.events["campaign_refused_not_voter"] += 1
            return
        if self._has_unapplied_conf_change():
            # Membership may be about to change; campaigning now could use a stale view.
            self.events[CAMPAIGN_REFUSED_UNAPPLIED_CONF_CHANGE] += 1
            return
        if transfer:
            self.campaign(CampaignKind.TRANSFER)
        elif self.config.pre_vote:
            self.campaign(CampaignKind.PRE_ELECTION)
        else:
            self.campaign(CampaignKind.ELECTION)

    def _has_unapplied_conf_change(self) -> bool:
        log = self.raft_log
        if log.committed <= log.applied:
            return False
        low = max(log.applied + 1, log.first_index())
        return any(entry.entry_type.is_conf_change for entry in log.slice(low, log.committed + 1))

    def campaign(self, kind: CampaignKind) -> None:
        if kind is CampaignKind.PRE_ELECTION:
            self.become_pre_candidate()
            self.events["pre_elections"] += 1
            vote_type, term = MT.REQUEST_PRE_VOTE, self.term + 1
        else:
            self.become_candidate()
            self.events["elections"] += 1
            vote_type, term = MT.REQUEST_VOTE, self.term
        if self._poll(self.id, True) is VoteResult.WON:
            # A single-voter cluster wins at once.
            if kind is CampaignKind.PRE_ELECTION:
                self.campaign(CampaignKind.ELECTION)
            else:
                self.become_leader()
            return
        context = CAMPAIGN_TRANSFER if kind is CampaignKind.TRANSFER else b""
        last_index = self.raft_log.last_index()
        last_term = self.raft_log.last_term()
        for voter in self.prs.voters:
            if voter != self.id:
                self._send(
                    Message(
                        vote_type,
                        to=voter,
                        from_=self.id,
                        term=term,
                        index=last_index,
                        log_term=last_term,
                        context=context,
                        priority=self.config.priority,
                    )
                )

    def _poll(self, voter: int, granted: bool) -> VoteResult:
        self.prs.record_vote(voter, granted)
        return self.prs.tally_votes()[2]

    # -- step ---------------------------------------------------------------

    def step(self, m: Message) -> None:
        """Handle one message. Raises only ``ProposalDroppedError`` (for proposals)."""
        if m.msg_type is MT.APPEND and not _append_is_well_formed(m) or (
            m.msg_type is MT.SNAPSHOT and (m.snapshot is None or m.snapshot.is_empty)
        ):
            # Checked before the term: a garbled message must not move it.
            self._reject(MALFORMED)
            return
        if m.term == 0:
            if m.msg_type not in TERMLESS_MESSAGES:
                # Only local messages and forwarded requests carry no term; anything else
                # without one is garbage from the network, and must not reach the role steps.
                self._reject(MALFORMED)
                return
            # local message, or a forwarded proposal / transfer request / read index
        elif m.term > self.term:
            if m.msg_type in (MT.REQUEST_VOTE, MT.REQUEST_PRE_VOTE):
                forced = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.config.check_quorum
                    and self.leader_id != INVALID_ID
                    and self.election_elapsed < self.config.election_tick
                )
                if in_lease and not forced:
                    # We heard from a leader recently: this candidate is likely a
                    # partitioned node coming back; do not let it disrupt the term.
                    self._reject(VOTE_IN_LEASE)
                    return
            if m.msg_type is MT.REQUEST_PRE_VOTE or (
                m.msg_type is MT.REQUEST_PRE_VOTE_RESPONSE and not m.reject
            ):
                # A pre-vote carries a future term without claiming it; a granted
                # pre-vote is answered in that future term. Neither moves ours.
                pass
            elif m.msg_type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
                self.become_follower(m.term, m.from_)
            else:
                self.become_follower(m.term, INVALID_ID)
        elif m.term < self.term:
            self._step_stale_term(m)
            return

        kind = m.msg_type
        if kind is MT.REQUEST_VOTE or kind is MT.REQUEST_PRE_VOTE:
            self._step_vote_request(m)
        elif kind is MT.HUP:
            self.hup()
        elif self.role is Roles.LEADER:
            self.step_leader(m)
        elif self.role is Roles.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _step_stale_term(self, m: Message) -> None:
        self._reject(STALE_TERM)
        if (self.config.check_quorum or self.config.pre_vote) and m.msg_type in (
            MT.APPEND,
            MT.HEARTBEAT,
        ):
            # A leader cut off by a partition keeps its old term; tell it ours so it
            # steps down (with check-quorum / pre-vote we would otherwise ignore it
            # forever and it would never learn).
            self._send(Message(MT.APPEND_RESPONSE, to=m.from_, from_=self.id, term=self.term))
        elif m.msg_type is MT.REQUEST_PRE_VOTE:
            self._send(
                Message(
                    MT.REQUEST_PRE_VOTE_RESPONSE,
                    to=m.from_,
                    from_=self.id,
                    term=self.term,
                    reject=True,
                )
            )

    def _step_vote_request(self, m: Message) -> None:
        pre_vote = m.msg_type is MT.REQUEST_PRE_VOTE
        can_vote = (
            self.vote == m.from_
            or (self.vote == INVALID_ID and self.leader_id == INVALID_ID)
            or (pre_vote and m.term > self.term)
        )
        response_type = MT.REQUEST_PRE_VOTE_RESPONSE if pre_vote else MT.REQUEST_VOTE_RESPONSE
        # Election priority (raft-rs): among equally up-to-date logs, only a candidate
        # of at least our priority gets our vote.
        outranked = m.index <= self.raft_log.last_index() and m.priority < self.config.priority
        if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term) and not outranked:
            self._send(Message(response_type, to=m.from_, from_=self.id, term=m.term))
            if not pre_vote:
                self.election_elapsed = 0
                self.vote = m.from_
        else:
            self._send(
                Message(response_type, to=m.from_, from_=self.id, term=self.term, reject=True)
            )

    def _step_follower(self, m: Message) -> None:
        kind = m.msg_type
        if kind is MT.PROPOSE:
            if self.leader_id == INVALID_ID:
                self._reject(PROPOSAL_DROPPED)
                raise ProposalDroppedError(f"node {self.id} knows no leader to forward to")
            if self.config.disable_proposal_forwarding:
                self._reject(PROPOSAL_NOT_FORWARDED)
                raise ProposalDroppedError(
                    f"node {self.id} is a follower and proposal forwarding is disabled"
                )
            self._send(Message(MT.PROPOSE, to=self.leader_id, from_=self.id, entries=m.entries))
        elif kind is MT.APPEND:
            self.election_elapsed = 0
            self.leader_id = m.from_
            self._handle_append(m)
        elif kind is MT.HEARTBEAT:
            self.election_elapsed = 0
            self.leader_id = m.from_
            self._handle_heartbeat(m)
        elif kind is MT.SNAPSHOT:
            self.election_elapsed = 0
            self.leader_id = m.from_
            self._handle_snapshot(m)
        elif kind is MT.TRANSFER_LEADER:
            if self.leader_id == INVALID_ID:
                self._reject(PROPOSAL_DROPPED)
                return
            if m.from_ == self.leader_id:
                return  # the transferee already leads
            self._send(attrs.evolve(m, to=self.leader_id))
        elif kind is MT.READ_INDEX:
            self._step_follower_read_index(m)
        elif kind is MT.READ_INDEX_RESPONSE:
            self._step_read_index_response(m)
        elif kind is MT.TIMEOUT_NOW:
            if self.promotable:
                self.events["timeout_now_received"] += 1
                self.hup(transfer=True)
            else:
                self._reject(WRONG_ROLE)
        else:
            self._reject(WRONG_ROLE)

    def _step_candidate(self, m: Message) -> None:
        kind = m.msg_type
        expected_response = (
            MT.REQUEST_PRE_VOTE_RESPONSE
            if self.role is Roles.PRE_CANDIDATE
            else MT.REQUEST_VOTE_RESPONSE
        )
        if kind is MT.PROPOSE:
            self._reject(PROPOSAL_DROPPED)
            raise ProposalDroppedError(f"node {self.id} is campaigning; no leader to take it")
        if kind is MT.READ_INDEX:
            self._reject(READ_DROPPED)
            return
        if kind in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
            # A leader of our term exists (terms are equal here): follow it.
            self.become_follower(m.term, m.from_)
            self._step_follower(m)
        elif kind in (MT.REQUEST_VOTE_RESPONSE, MT.REQUEST_PRE_VOTE_RESPONSE) and (
            kind is not expected_response
        ):
            return  # a late answer to our pre-vote, or to a vote we no longer hold
        elif kind is expected_response:
            if not self.prs.is_voter(m.from_):
                self._reject(UNKNOWN_SENDER)
                return
            result = self._poll(m.from_, not m.reject)
            if result is VoteResult.WON:
                if self.role is Roles.PRE_CANDIDATE:
                    self.campaign(CampaignKind.ELECTION)
                else:
                    self.become_leader()
                    self.broadcast_append()
            elif result is VoteResult.LOST:
                # A pre-candidate loses without having changed the term.
                self.become_follower(self.term, INVALID_ID)
        else:
            self._reject(WRONG_ROLE)


def _append_is_well_formed(m: Message) -> bool:
    """Entries follow ``m.index`` one by one, with terms between ``m.log_term`` and ``m.term``."""
    expected_index = m.index + 1
    previous_term = m.log_term
    for entry in m.entries:
        if entry.index != expected_index or not previous_term <= entry.term <= m.term:
            return False
        expected_index += 1
        previous_term = entry.term
    return m.log_term <= m.term
