"""The leader's side of Raft: proposals, appends, snapshots, heartbeats, transfers.

Mixed into :class:`~simulator.raft.raft.Raft`; it reads and changes the
same state (``self.prs``, ``self.raft_log``, ``self.messages``). Split out
because it is the part that decides what to send to whom, and the place
where snapshot transfer plugs in: when a follower needs entries that were
compacted, :meth:`send_append` asks storage for a snapshot and moves that
follower to the ``SNAPSHOT`` progress state, where it stays until the
follower answers or :meth:`RawNode.report_snapshot` says how the transfer
ended.
"""

from __future__ import annotations

import attrs

from .errors import (
    CompactedError,
    ConfChangePendingError,
    InvalidConfChangeError,
    ProposalDroppedError,
    SnapshotTemporarilyUnavailableError,
)
from .membership import decode_conf_change
from .messages import INVALID_ID, Entry, Message, MessageKinds
from .progress import ProgressStates
from .reasons import (
    CONF_CHANGE_DROPPED,
    CONF_CHANGE_INVALID,
    MALFORMED,
    PROPOSAL_DROPPED,
    SNAPSHOT_UNAVAILABLE,
    TRANSFER_TO_NON_VOTER,
    UNCOMMITTED_SIZE_EXCEEDED,
    UNKNOWN_SENDER,
    WRONG_ROLE,
)

MT = MessageKinds


class LeaderReplication:
    """Leader behaviour; see the module docstring. Not usable on its own."""

    # -- appending to our own log -------------------------------------------

    def append_entries(self, entries: list[Entry]) -> None:
        """Stamp ``entries`` with our term and the next indexes, append, and count our own ack."""
        last = self.raft_log.last_index()
        stamped = [
            attrs.evolve(entry, term=self.term, index=last + offset)
            for offset, entry in enumerate(entries, start=1)
        ]
        last = self.raft_log.append(stamped)
        self.prs.progress[self.id].maybe_update(last)
        self.maybe_commit()

    def maybe_commit(self) -> bool:
        if not self.raft_log.maybe_commit(self.prs.committed_index(), self.term):
            return False
        # The first commit of our term tells us the true commit index: reads may go.
        self._release_deferred_reads()
        return True

    def _broadcast_commit(self) -> None:
        """Tell followers the commit index moved (unless ``skip_bcast_commit``)."""
        if not self.config.skip_bcast_commit or self.pending_conf_index > self.raft_log.applied:
            # A pending membership change is always broadcast: the new members wait on it.
            self.broadcast_append()

    # -- sending ------------------------------------------------------------

    def broadcast_append(self) -> None:
        for node_id, _ in self.prs.items():
            if node_id != self.id:
                self.send_append(node_id)

    def send_append(self, to: int) -> bool:
        """Send what ``to`` is missing: entries, or a snapshot if they were compacted."""
        progress = self.prs.progress[to]
        if progress.is_paused():
            return False
        if progress.pending_request_snapshot:
            return self._send_snapshot(to)
        log = self.raft_log
        try:
            prev_term = log.term(progress.next_index - 1)
            entries = log.entries(progress.next_index, self.config.max_size_per_msg)
        except CompactedError:
            return self._send_snapshot(to)
        if not (self.config.batch_append and entries and self._batch_into_waiting_append(to, entries)):
            self._send(
                Message(
                    MT.APPEND,
                    to=to,
                    from_=self.id,
                    term=self.term,
                    index=progress.next_index - 1,
                    log_term=prev_term,
                    entries=tuple(entries),
                    commit=log.committed,
                )
            )
        if entries:
            if progress.state is ProgressStates.REPLICATE:
                last_sent = entries[-1].index
                progress.optimistic_update(last_sent)
                progress.inflights.add(last_sent)
            elif progress.state is ProgressStates.PROBE:
                progress.pause()
        return True

    def _batch_into_waiting_append(self, to: int, entries: list[Entry]) -> bool:
        """``batch_append``: extend an append to ``to`` not yet handed out, if ``entries`` follow it."""
        for position in range(len(self.messages) - 1, -1, -1):
            waiting = self.messages[position]
            if waiting.to != to or waiting.msg_type is not MT.APPEND:
                continue
            if not waiting.entries or waiting.entries[-1].index + 1 != entries[0].index:
                return False
            self.messages[position] = attrs.evolve(
                waiting, entries=waiting.entries + tuple(entries), commit=self.raft_log.committed
            )
            self.events["appends_batched"] += 1
            return True
        return False

    def _send_snapshot(self, to: int) -> bool:
        progress = self.prs.progress[to]
        if not progress.recent_active:
            # Do not spend a snapshot on a node we have not heard from lately.
            self.events["snapshot_skipped_inactive"] += 1
            return False
        request_index = progress.pending_request_snapshot or progress.next_index - 1
        try:
            snapshot = self.raft_log.snapshot(request_index, to)
        except SnapshotTemporarilyUnavailableError:
            # Storage is still making one; the next heartbeat response retries.
            self._reject(SNAPSHOT_UNAVAILABLE)
            return False
        if snapshot.is_empty:
            raise AssertionError(f"storage returned an empty snapshot for node {to}")
        self._send(
            Message(MT.SNAPSHOT, to=to, from_=self.id, term=self.term, snapshot=snapshot)
        )
        progress.become_snapshot(snapshot.index)
        if progress.pending_request_snapshot:
            progress.pending_request_snapshot = 0
            self.events["requested_snapshots_sent"] += 1
        self.events["snapshots_sent"] += 1
        return True

    def _send_heartbeat(self, to: int, context: bytes = b"") -> None:
        # Never claim a commit index the follower may not hold yet.
        commit = min(self.prs.progress[to].match_index, self.raft_log.committed)
        self._send(
            Message(MT.HEARTBEAT, to=to, from_=self.id, term=self.term, commit=commit, context=context)
        )

    def broadcast_heartbeat(self, context: bytes = b"") -> None:
        for node_id, _ in self.prs.items():
            if node_id != self.id:
                self._send_heartbeat(node_id, context)

    def _send_timeout_now(self, to: int) -> None:
        self._send(Message(MT.TIMEOUT_NOW, to=to, from_=self.id, term=self.term))

    # -- the leader's step --------------------------------------------------

    def step_leader(self, m: Message) -> None:
        kind = m.msg_type
        if kind is MT.BEAT:
            # Carry the newest pending read (answers to it confirm every read before
            # it) or, lease-based, the tick the lease is counted from.
            self.broadcast_heartbeat(self.heartbeat_context())
            return
        if kind is MT.READ_INDEX:
            self._step_leader_read_index(m)
            return
        if kind is MT.CHECK_QUORUM:
            if not self.prs.quorum_recently_active(self.id):
                self.events["stepped_down_no_quorum"] += 1
                self.become_follower(self.term, INVALID_ID)
            return
        if kind is MT.PROPOSE:
            self._propose(m)
            return
        if kind is MT.TRANSFER_LEADER:
            self._transfer_leader(m.from_)
            return
        if kind in (MT.REQUEST_VOTE_RESPONSE, MT.REQUEST_PRE_VOTE_RESPONSE):
            return  # votes arriving after we already won
        if kind in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
            # Another leader in our own term would break election safety; refuse.
            self._reject(WRONG_ROLE)
            return

        progress = self.prs.progress.get(m.from_)
        if progress is None:
            self._reject(UNKNOWN_SENDER)
            return
        if kind is MT.APPEND_RESPONSE:
            progress.recent_active = True
            self._handle_append_response(m, progress)
        elif kind is MT.HEARTBEAT_RESPONSE:
            progress.recent_active = True
            progress.resume()
            if progress.state is ProgressStates.REPLICATE and progress.inflights.full():
                progress.inflights.free_first_one()
            if progress.match_index < self.raft_log.last_index() or progress.pending_request_snapshot:
                self.send_append(m.from_)
            self._read_acknowledged(m)
        elif kind is MT.SNAP_STATUS:
            if progress.state is not ProgressStates.SNAPSHOT:
                return
            if m.reject:
                progress.snapshot_failure()
                self.events["snapshot_failures_reported"] += 1
            else:
                self.events["snapshot_finishes_reported"] += 1
            progress.become_probe()
            # Wait for the follower's append response (finish) or a heartbeat
            # interval (failure) before the next try.
            progress.pause()
        elif kind is MT.UNREACHABLE:
            if progress.state is ProgressStates.REPLICATE:
                progress.become_probe()
        else:
            self._reject(WRONG_ROLE)

    def _propose(self, m: Message) -> None:
        if not m.entries:
            self._reject(MALFORMED)
            raise ProposalDroppedError("a proposal needs at least one entry")
        if self.id not in self.prs.progress:
            self._reject(PROPOSAL_DROPPED)
            raise ProposalDroppedError(f"node {self.id} leads but was removed from the cluster")
        if self.lead_transferee is not None:
            self._reject(PROPOSAL_DROPPED)
            raise ProposalDroppedError(
                f"leadership is being transferred to node {self.lead_transferee}"
            )
        limit = self.config.max_uncommitted_size
        if limit is not None:
            self._check_uncommitted_size(m.entries, limit)
        entries = list(m.entries)
        for position, entry in enumerate(entries):
            if not entry.entry_type.is_conf_change:
                continue
            # Forwarded changes were checked against the sender's view, which may be
            # stale or forged: check them against ours, as propose_conf_change does.
            try:
                self.check_conf_change(decode_conf_change(entry))
            except ValueError:
                self._reject(MALFORMED)
            except ConfChangePendingError:
                # One membership change at a time: keep the slot, drop the change.
                self._reject(CONF_CHANGE_DROPPED)
            except InvalidConfChangeError:
                self._reject(CONF_CHANGE_INVALID)
            else:
                self.pending_conf_index = self.raft_log.last_index() + position + 1
                continue
            entries[position] = Entry(term=0, index=0)
        self.append_entries(entries)
        self.broadcast_append()

    def _check_uncommitted_size(self, proposed, limit: int) -> None:
        """``max_uncommitted_size``: refuse data beyond ``limit`` bytes waiting to commit."""
        log = self.raft_log
        size = sum(entry.size for entry in proposed)
        if size == 0:
            return  # empty entries (leader no-ops, leave-joint) always go
        waiting = sum(entry.size for entry in log.slice(log.committed + 1, log.last_index() + 1))
        if waiting > 0 and waiting + size > limit:
            self._reject(UNCOMMITTED_SIZE_EXCEEDED)
            raise ProposalDroppedError(
                f"{waiting} bytes wait to commit; {size} more would pass max_uncommitted_size={limit}"
            )

    def _handle_append_response(self, m: Message, progress) -> None:
        log = self.raft_log
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                # Skip every entry of a term the follower cannot have.
                next_probe = log.find_conflict_by_term(m.reject_hint, m.log_term)[0]
            if m.request_snapshot:
                self._snapshot_requested(m, progress)
                return
            if progress.maybe_decrease_to(m.index, next_probe):
                if progress.state is ProgressStates.REPLICATE:
                    progress.become_probe()
                self.send_append(m.from_)
            return
        if m.index > log.last_index():
            self._reject(MALFORMED)  # acknowledges entries we never had
            return
        was_paused = progress.is_paused()
        if not progress.maybe_update(m.index):
            return
        if progress.state is ProgressStates.PROBE:
            progress.become_replicate()
        elif progress.state is ProgressStates.SNAPSHOT:
            if progress.match_index >= progress.pending_snapshot:
                self.events["snapshot_caught_up"] += 1
                progress.become_probe()
        else:
            progress.inflights.free_to(m.index)

        if self.maybe_commit():
            self._broadcast_commit()
        elif was_paused:
            self.send_append(m.from_)
        # Keep the pipe full while the window allows.
        while progress.state is ProgressStates.REPLICATE and progress.next_index <= log.last_index():
            if not self.send_append(m.from_):
                break
        if m.from_ == self.lead_transferee and progress.match_index == log.last_index():
            self.events["leader_transfer_timeout_now"] += 1
            self._send_timeout_now(m.from_)

    def _snapshot_requested(self, m: Message, progress) -> None:
        """A follower knows its state is bad and asks for a snapshot at or past ``m.request_snapshot``."""
        self.events["snapshot_requests_received"] += 1
        if progress.state is ProgressStates.SNAPSHOT:
            return  # one is already on its way
        progress.pending_request_snapshot = max(progress.pending_request_snapshot, m.request_snapshot)
        progress.become_probe()
        self.send_append(m.from_)

    def _transfer_leader(self, transferee: int) -> None:
        progress = self.prs.progress.get(transferee)
        if progress is None or progress.is_learner:
            self._reject(TRANSFER_TO_NON_VOTER)
            return
        if self.lead_transferee is not None:
            if self.lead_transferee == transferee:
                return
            self.lead_transferee = None
        if transferee == self.id:
            return
        # The transfer must finish within an election timeout, or it is aborted.
        self.election_elapsed = 0
        self.lead_transferee = transferee
        self.events["leader_transfers_started"] += 1
        if progress.match_index == self.raft_log.last_index():
            self._send_timeout_now(transferee)
        else:
            self.send_append(transferee)

    def after_leader_conf_change(self) -> None:
        """Re-count the quorum, and step down if we removed ourselves."""
        if not self.prs.is_voter(self.id):
            # Hand over to the most up-to-date voter so the cluster need not wait
            # an election timeout, then stop leading.
            candidates = [
                (progress.match_index, -node_id, node_id)
                for node_id, progress in self.prs.items()
                if self.prs.is_voter(node_id)
            ]
            if candidates:
                self._send_timeout_now(max(candidates)[2])
            self.events["leader_removed_itself"] += 1
            self.become_follower(self.term, INVALID_ID)
            return
        if self.lead_transferee is not None and self.lead_transferee not in self.prs.progress:
            self.lead_transferee = None
        # The quorum may have shrunk (commit may move) and newcomers need probing.
        self.maybe_commit()
        self.broadcast_append()
