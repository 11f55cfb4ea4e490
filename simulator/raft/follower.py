"""The follower's side of Raft: accepting appends, heartbeats and snapshots.

Mixed into :class:`~simulator.raft.raft.Raft` like
:class:`~simulator.raft.replication.LeaderReplication`; it reads and changes
the same state. Here the follower decides what its log becomes — append,
truncate a conflicting suffix, move the commit index, or replace the whole
log with a newer snapshot — and answers so the leader can go on.
"""

from __future__ import annotations

from .messages import Message, MessageKinds, Snapshot
from .reasons import (
    APPEND_CONFLICTS_COMMITTED,
    APPEND_MISMATCH,
    COMMIT_PAST_LOG,
    MALFORMED,
    SNAPSHOT_NOT_NEWER,
)

MT = MessageKinds


class FollowerLog:
    """Follower behaviour; see the module docstring. Not usable on its own."""

    def _respond_append(self, m: Message, **fields) -> None:
        self._send(Message(MT.APPEND_RESPONSE, to=m.from_, from_=self.id, term=self.term, **fields))

    def request_snapshot(self, request_index: int) -> None:
        """Ask the leader for a snapshot at or past ``request_index`` (``RawNode.request_snapshot``)."""
        self.pending_request_snapshot = request_index
        self.events["snapshots_requested"] += 1
        self._send_request_snapshot()

    def _send_request_snapshot(self) -> None:
        # A rejecting append response that names the index, as raft-rs sends it.
        log = self.raft_log
        self._send(
            Message(
                MT.APPEND_RESPONSE,
                to=self.leader_id,
                from_=self.id,
                term=self.term,
                index=log.committed,
                reject=True,
                reject_hint=log.last_index(),
                request_snapshot=self.pending_request_snapshot,
            )
        )

    def _handle_append(self, m: Message) -> None:
        log = self.raft_log
        if self.pending_request_snapshot:
            # Our state is bad: take nothing but the snapshot; remind the leader.
            self._send_request_snapshot()
            return
        if m.index < log.committed:
            # Old news: everything up to our commit index is known to match.
            self._respond_append(m, index=log.committed)
            return
        if log.match_term(m.index, m.log_term):
            conflict = log.find_conflict(m.entries)
            if conflict and conflict <= log.committed:
                self._reject(APPEND_CONFLICTS_COMMITTED)
                return
            last_new = log.append_after_match(m.index, m.commit, m.entries, conflict)
            self._respond_append(m, index=last_new)
            return
        self._reject(APPEND_MISMATCH)
        hint_index, hint_term = log.find_conflict_by_term(
            min(m.index, log.last_index()), m.log_term
        )
        self._respond_append(m, index=m.index, reject=True, reject_hint=hint_index, log_term=hint_term)

    def _handle_heartbeat(self, m: Message) -> None:
        if self.pending_request_snapshot:
            # Our state is bad: the commit index waits for the snapshot. Moving it past
            # the requested index would make us refuse the very snapshot we asked for.
            pass
        elif m.commit > self.raft_log.last_index():
            # The leader believes we hold entries we do not have; commit nothing.
            self._reject(COMMIT_PAST_LOG)
        else:
            self.raft_log.commit_to(m.commit)
        self._send(
            Message(MT.HEARTBEAT_RESPONSE, to=m.from_, from_=self.id, term=self.term, context=m.context)
        )

    def _handle_snapshot(self, m: Message) -> None:
        snapshot = m.snapshot
        if self._restore(snapshot):
            self.events["snapshot_accepted"] += 1
            self._respond_append(m, index=self.raft_log.last_index())
        else:
            self._respond_append(m, index=self.raft_log.committed)

    def _restore(self, snapshot: Snapshot) -> bool:
        """Take ``snapshot`` in place of our log if it is newer than what we have."""
        log = self.raft_log
        requested = self.pending_request_snapshot
        if snapshot.index < requested or (not requested and snapshot.index <= log.committed) or (
            snapshot.index < log.committed
        ):
            if requested and snapshot.index >= requested:
                # Refusing what we asked for leaves us waiting for ever: say so loudly.
                raise AssertionError(
                    f"node {self.id} asked for a snapshot at or past {requested} and refuses "
                    f"{snapshot.index}: its commit index {log.committed} moved while it waited"
                )
            self._reject(SNAPSHOT_NOT_NEWER)
            return False
        if self.id not in snapshot.metadata.conf_state.members:
            # A snapshot whose membership excludes us cannot be ours to install.
            self._reject(MALFORMED)
            return False
        if not requested and log.match_term(snapshot.index, snapshot.term):
            # We already hold that entry: just fast-forward the commit index.
            self.events["snapshot_fast_forward"] += 1
            log.commit_to(snapshot.index)
            return False
        # Asked for (our state machine lost what the log had applied): a log that
        # holds the snapshot's last entry keeps what follows it; we may have
        # acknowledged those entries, and the leader counted them.
        log.restore(snapshot, keep_following=bool(requested) and log.match_term(snapshot.index, snapshot.term))
        self.prs.apply_conf(snapshot.metadata.conf_state, log.last_index() + 1)
        if requested:
            self.pending_request_snapshot = 0
            self.events["requested_snapshot_installed"] += 1
        return True
