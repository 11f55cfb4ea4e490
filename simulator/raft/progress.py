"""What the leader knows of each follower, and counting quorums.

Flow control (raft-rs ``Progress``): a follower is in one of three states.

=========  ==============================================================
PROBE      one append at a time until the leader learns where the
           follower's log matches; paused after each send until a
           response or heartbeat response arrives.
REPLICATE  appends are sent optimistically (``next_index`` moves on send)
           while fewer than ``max_inflight`` are unacknowledged.
SNAPSHOT   a snapshot is on its way; nothing else is sent until the
           follower answers or the transfer is reported finished/failed.
=========  ==============================================================
"""

from __future__ import annotations

import enum
from collections import deque

import attrs

from .messages import ConfState, _ReprEnum


class ProgressState(_ReprEnum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class ProgressStates:
    """:class:`ProgressState`'s members as plain class attributes, read several times
    per message (see ``messages.MessageKinds`` for why: enum class reads are slow on 3.11)."""

    PROBE = ProgressState.PROBE
    REPLICATE = ProgressState.REPLICATE
    SNAPSHOT = ProgressState.SNAPSHOT


@attrs.define(eq=False)
class Inflights:
    """Last indexes of appends sent but not acknowledged, oldest first, at most ``capacity``."""

    capacity: int
    _indexes: deque[int] = attrs.Factory(deque)

    def add(self, last_index: int) -> None:
        if self.full():
            raise AssertionError(f"inflight window of {self.capacity} is already full")
        self._indexes.append(last_index)

    def free_to(self, index: int) -> None:
        """Acknowledge every append whose last index is <= ``index``."""
        while self._indexes and self._indexes[0] <= index:
            self._indexes.popleft()

    def free_first_one(self) -> None:
        if self._indexes:
            self._indexes.popleft()

    def full(self) -> bool:
        return len(self._indexes) >= self.capacity

    def reset(self) -> None:
        self._indexes.clear()

    def __len__(self) -> int:
        return len(self._indexes)


@attrs.define(eq=False)
class Progress:
    """The leader's view of one follower's log."""

    match_index: int
    next_index: int
    inflights: Inflights
    state: ProgressState = ProgressStates.PROBE
    paused: bool = False
    pending_snapshot: int = 0
    recent_active: bool = False
    is_learner: bool = False
    #: The follower asked for a snapshot at or past this index (0: it did not).
    pending_request_snapshot: int = 0
    #: Newest leader tick of a lease heartbeat the follower acknowledged (-1: none).
    lease_ack_tick: int = -1

    def _reset_state(self, state: ProgressState) -> None:
        self.paused = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        # After a snapshot, probe right after it: the follower has at least that.
        if self.state is ProgressStates.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressStates.PROBE)
            self.next_index = max(self.match_index + 1, pending + 1)
        else:
            self._reset_state(ProgressStates.PROBE)
            self.next_index = self.match_index + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressStates.REPLICATE)
        self.next_index = self.match_index + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressStates.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def snapshot_failure(self) -> None:
        self.pending_snapshot = 0

    def maybe_update(self, index: int) -> bool:
        """The follower acknowledged up to ``index``; False if that is old news."""
        updated = self.match_index < index
        if updated:
            self.match_index = index
            self.paused = False
        self.next_index = max(self.next_index, index + 1)
        return updated

    def optimistic_update(self, last_sent: int) -> None:
        self.next_index = last_sent + 1

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an append at ``rejected``; move ``next_index`` back.

        Returns False for a stale rejection (one that does not answer the
        latest probe), which must be ignored.
        """
        if self.state is ProgressStates.REPLICATE:
            if rejected <= self.match_index:
                return False
            self.next_index = self.match_index + 1
            return True
        if self.next_index - 1 != rejected:
            return False
        self.next_index = max(min(rejected, match_hint + 1), self.match_index + 1, 1)
        self.paused = False
        return True

    def is_paused(self) -> bool:
        if self.state is ProgressStates.PROBE:
            return self.paused
        if self.state is ProgressStates.REPLICATE:
            return self.inflights.full()
        return True

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def quorum(voter_count: int) -> int:
    return voter_count // 2 + 1


@attrs.define(eq=False)
class ProgressTracker:
    """Progress of every member, the current membership, and the votes of an election."""

    max_inflight: int
    progress: dict[int, Progress] = attrs.Factory(dict)
    conf_state: ConfState = ConfState()
    votes: dict[int, bool] = attrs.Factory(dict)

    def apply_conf(self, conf_state: ConfState, next_index: int) -> None:
        """Switch to ``conf_state``: new members start probing at ``next_index``."""
        members = set(conf_state.members)
        for node_id in sorted(self.progress):
            if node_id not in members:
                del self.progress[node_id]
        for node_id in conf_state.members:
            progress = self.progress.get(node_id)
            if progress is None:
                progress = Progress(
                    match_index=0,
                    next_index=next_index,
                    inflights=Inflights(self.max_inflight),
                    # A newcomer counts as active so check-quorum does not
                    # depose the leader before the newcomer could answer.
                    recent_active=True,
                )
                self.progress[node_id] = progress
            progress.is_learner = node_id in conf_state.learners
        self.conf_state = conf_state

    @property
    def voters(self) -> tuple[int, ...]:
        """Every voter, of both halves while the configuration is joint."""
        return self.conf_state.all_voters

    def is_voter(self, node_id: int) -> bool:
        conf = self.conf_state
        return node_id in conf.voters or node_id in conf.voters_outgoing

    def is_singleton(self) -> bool:
        """One voter decides alone (a joint configuration never does)."""
        return len(self.conf_state.voters) == 1 and not self.conf_state.voters_outgoing

    def items(self):
        """(id, progress) pairs in id order: the order messages go out in."""
        return sorted(self.progress.items())

    def _halves(self) -> tuple[tuple[int, ...], ...]:
        """The majority configurations a decision needs: one, or both halves when joint."""
        conf = self.conf_state
        if conf.voters_outgoing:
            return (conf.voters, conf.voters_outgoing)
        return (conf.voters,)

    def committed_index(self) -> int:
        """Largest index replicated on a quorum of voters (in both halves when joint)."""
        result = None
        for voters in self._halves():
            if not voters:
                continue
            matched = sorted((self.progress[v].match_index for v in voters), reverse=True)
            index = matched[quorum(len(voters)) - 1]
            result = index if result is None else min(result, index)
        return result or 0

    def has_quorum(self, ids) -> bool:
        """Do ``ids`` contain a majority of every half of the configuration?"""
        ids = set(ids)
        halves = [voters for voters in self._halves() if voters]
        return bool(halves) and all(
            sum(1 for v in voters if v in ids) >= quorum(len(voters)) for voters in halves
        )

    def quorum_recently_active(self, self_id: int) -> bool:
        """Did a quorum of voters (this node included) answer since the last check? Resets the flags."""
        active = set()
        for node_id, progress in self.items():
            if node_id == self_id:
                progress.recent_active = True
            if progress.recent_active and self.is_voter(node_id):
                active.add(node_id)
            progress.recent_active = node_id == self_id
        return self.has_quorum(active)

    def reset_votes(self) -> None:
        self.votes.clear()

    def record_vote(self, node_id: int, granted: bool) -> None:
        self.votes.setdefault(node_id, granted)

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        """(granted, rejected, result) counting voters only; a joint configuration needs both halves."""
        voters = self.voters
        granted = sum(1 for v in voters if self.votes.get(v) is True)
        rejected = sum(1 for v in voters if self.votes.get(v) is False)
        results = [self._half_result(half) for half in self._halves() if half]
        if not results:
            return granted, rejected, VoteResult.LOST
        if VoteResult.LOST in results:
            return granted, rejected, VoteResult.LOST
        if all(result is VoteResult.WON for result in results):
            return granted, rejected, VoteResult.WON
        return granted, rejected, VoteResult.PENDING

    def _half_result(self, voters: tuple[int, ...]) -> VoteResult:
        granted = sum(1 for v in voters if self.votes.get(v) is True)
        rejected = sum(1 for v in voters if self.votes.get(v) is False)
        needed = quorum(len(voters))
        if granted >= needed:
            return VoteResult.WON
        if len(voters) - rejected < needed:
            return VoteResult.LOST
        return VoteResult.PENDING
