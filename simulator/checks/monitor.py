"""Raft's safety properties, checked incrementally as a cluster runs.

:class:`~simulator.invariants.InvariantChecker` compares whole node states
and costs O(nodes² × log) per check: right for the small synchronous
harness. A cluster that runs for an hour of virtual time needs checks that
cost O(what changed). The :class:`InvariantMonitor` is told about each
change as it happens — a role change, entries persisted, a commit, an
entry applied, a snapshot created or installed — and keeps just enough
history to check every property at that moment:

- election safety: one leader per term (``leaders``);
- log matching, by induction: an entry ``(index, term)`` always carries the
  same data and follows the same term at ``index - 1`` (``entries``);
- leader completeness: a new leader holds every entry committed in an
  earlier term, and a late commit is held by every later leader;
- state machine safety: every node applies the same entry at each index;
- a follower keeps every entry it acknowledged to its leader (the leader
  counted it towards commit and will not send it again);
- commit never goes backwards (across restarts: the hard state is durable);
  applied never goes backwards within a node's life;
- snapshots: never cover uncommitted entries, and an installed snapshot is
  byte-identical to one a node created at that index;
- replicas agree: nodes that applied the same index hold the same state
  (``state_at``). Digesting a whole state costs as much as a snapshot, so a
  node reports its state digest where it snapshots, installs or ends a run,
  and whenever it applies an index some node reported before: a node whose
  state silently lost something is caught at the next snapshot point.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ..raft import CompactedError, Entry, RawNode
from ..raft.role import Roles
from .invariants import InvariantViolation


@attrs.frozen
class _EntryRecord:
    data: bytes
    entry_type: object
    previous_term: int
    node_id: int


@attrs.define(eq=False)
class InvariantMonitor:
    """See the module docstring. ``context()`` supplies a trace excerpt for error messages."""

    context: Callable[[], str] = lambda: ""
    leaders: dict[int, int] = attrs.Factory(dict)
    current_leaders: dict[int, tuple[int, RawNode]] = attrs.Factory(dict)
    entries: dict[tuple[int, int], _EntryRecord] = attrs.Factory(dict)
    committed_entries: dict[int, tuple[int, int]] = attrs.Factory(dict)  # index -> (term, seen_in_term)
    highest_commit: dict[int, int] = attrs.Factory(dict)
    highest_applied: dict[int, int] = attrs.Factory(dict)
    applied_entries: dict[int, tuple[int, bytes, int]] = attrs.Factory(dict)
    snapshots: dict[int, str] = attrs.Factory(dict)  # index -> digest of data created there
    state_digests: dict[int, tuple[str, int]] = attrs.Factory(dict)  # applied index -> (state digest, node)
    max_commit: int = 0
    checks: int = 0

    def violation(self, invariant: str, detail: str) -> InvariantViolation:
        """The error for a broken ``invariant``, with the last trace events attached."""
        excerpt = self.context()
        if excerpt:
            detail = f"{detail}\nlast trace events:\n{excerpt}"
        return InvariantViolation(invariant, detail)

    # -- life cycle -----------------------------------------------------------

    def node_started(self, node_id: int, node: RawNode) -> None:
        self.highest_applied[node_id] = node.raft.raft_log.applied
        self.current_leaders.pop(node_id, None)
        self._check_commit(node_id, node.raft.raft_log.committed)

    def node_stopped(self, node_id: int) -> None:
        self.current_leaders.pop(node_id, None)

    # -- events ----------------------------------------------------------------

    def role_changed(self, node_id: int, node: RawNode) -> None:
        self.checks += 1
        raft = node.raft
        if raft.role is not Roles.LEADER:
            self.current_leaders.pop(node_id, None)
            return
        known = self.leaders.setdefault(raft.term, node_id)
        if known != node_id:
            raise self.violation(
                "election safety", f"nodes {known} and {node_id} were both leader in term {raft.term}"
            )
        self.current_leaders[node_id] = (raft.term, node)
        for index, (term, seen_in_term) in sorted(self.committed_entries.items()):
            if seen_in_term < raft.term:
                self._check_leader_holds(node_id, node, index, term, seen_in_term)

    def _check_leader_holds(self, node_id, node, index, term, seen_in_term) -> None:
        log = node.raft.raft_log
        if index < log.first_index():
            return  # covered by its snapshot
        try:
            held = log.term(index)
        except CompactedError:
            return
        if held != term:
            raise self.violation(
                "leader completeness",
                f"leader {node_id} of term {node.raft.term} holds term {held} at index {index}, "
                f"but an entry of term {term} was committed there in term {seen_in_term}",
            )

    def appended(self, node_id: int, node: RawNode, entries) -> None:
        self.checks += 1
        log = node.raft.raft_log
        try:
            previous_term = log.term(entries[0].index - 1)
        except CompactedError:
            previous_term = None
        for entry in entries:
            record = self.entries.get((entry.index, entry.term))
            if record is None:
                if previous_term is not None:
                    self.entries[(entry.index, entry.term)] = _EntryRecord(
                        entry.data, entry.entry_type, previous_term, node_id
                    )
            elif (record.data, record.entry_type) != (entry.data, entry.entry_type) or (
                previous_term is not None and record.previous_term != previous_term
            ):
                raise self.violation(
                    "log matching",
                    f"node {node_id} holds entry {entry.index} of term {entry.term} after term "
                    f"{previous_term}, node {record.node_id} held a different one after term "
                    f"{record.previous_term}",
                )
            previous_term = entry.term

    def committed(self, node_id: int, node: RawNode, commit: int) -> None:
        self.checks += 1
        previous = self._check_commit(node_id, commit)
        log = node.raft.raft_log
        low = max(previous + 1, log.first_index())
        if low > commit:
            return
        for entry in log.slice(low, commit + 1):
            known = self.committed_entries.get(entry.index)
            if known is None:
                self.committed_entries[entry.index] = (entry.term, node.raft.term)
                for leader_id, (leader_term, leader) in sorted(self.current_leaders.items()):
                    if leader_term > node.raft.term and leader_id != node_id:
                        self._check_leader_holds(leader_id, leader, entry.index, entry.term, node.raft.term)
            elif known[0] != entry.term:
                raise self.violation(
                    "state machine safety",
                    f"node {node_id} committed term {entry.term} at index {entry.index}, "
                    f"term {known[0]} was committed there before",
                )
        self.max_commit = max(self.max_commit, commit)

    def _check_commit(self, node_id: int, commit: int) -> int:
        previous = self.highest_commit.get(node_id, 0)
        if commit < previous:
            raise self.violation(
                "commit monotonic", f"node {node_id} commit went back from {previous} to {commit}"
            )
        self.highest_commit[node_id] = commit
        return previous

    def applied(self, node_id: int, entry: Entry) -> None:
        self.checks += 1
        previous = self.highest_applied.get(node_id, 0)
        if entry.index <= previous:
            raise self.violation(
                "applied monotonic",
                f"node {node_id} applied index {entry.index} after already applying {previous}",
            )
        self.highest_applied[node_id] = entry.index
        known = self.applied_entries.setdefault(entry.index, (entry.term, entry.data, node_id))
        if known[:2] != (entry.term, entry.data):
            raise self.violation(
                "state machine safety",
                f"node {node_id} applied term {entry.term} at index {entry.index}; node {known[2]} "
                f"applied term {known[0]} there",
            )

    def advanced(self, node_id: int, node: RawNode) -> None:
        # Called after every Ready: the last index is read once for both checks.
        raft = node.raft
        log = raft.raft_log
        last_index = log.last_index()
        if not log.applied <= log.committed <= last_index:
            raise self.violation(
                "index order",
                f"node {node_id} must have applied <= commit <= last index, got "
                f"{log.applied}, {log.committed}, {last_index}",
            )
        if raft.role is Roles.FOLLOWER:
            self._check_acknowledged_kept(node_id, raft, last_index)

    def _check_acknowledged_kept(self, node_id: int, raft, last_index: int) -> None:
        """A follower holds every entry it acknowledged to the leader of its term.

        The leader counts those acknowledgements towards commit; a follower that
        drops one (a snapshot install that discards the rest of its log, say) makes a
        committed entry less durable than Raft promises, and the leader, believing
        the follower has it, never sends it again: a silent stall, caught here.
        """
        leader = self.current_leaders.get(raft.leader_id)
        if leader is None or leader[0] != raft.term:
            return
        progress = leader[1].raft.prs.progress.get(node_id)
        if progress is not None and progress.match_index > last_index:
            raise self.violation(
                "a follower keeps the entries it acknowledged",
                f"node {node_id} holds entries up to {last_index}, but it "
                f"acknowledged up to {progress.match_index} to leader {raft.leader_id} of term {raft.term}",
            )

    def snapshot_created(self, node_id: int, index: int, digest: str) -> None:
        """``digest`` is of the snapshot's data (the storage computed it while saving)."""
        self.checks += 1
        if index > self.highest_commit.get(node_id, 0):
            raise self.violation(
                "snapshot covers committed entries only",
                f"node {node_id} made a snapshot at {index} past its commit "
                f"{self.highest_commit.get(node_id, 0)}",
            )
        known = self.snapshots.setdefault(index, digest)
        if known != digest:
            raise self.violation(
                "state machine safety",
                f"node {node_id} snapshot at index {index} differs from one made there before",
            )

    def snapshot_installed(self, node_id: int, index: int, digest: str) -> None:
        """``digest`` is of the data installed (checked against it before installing)."""
        self.checks += 1
        if index > self.max_commit:
            raise self.violation(
                "snapshot covers committed entries only",
                f"node {node_id} installed a snapshot at {index}, beyond any commit "
                f"({self.max_commit})",
            )
        known = self.snapshots.get(index)
        if known is not None and known != digest:
            raise self.violation(
                "installed snapshot equals the leader's state",
                f"node {node_id} installed snapshot {index} with digest {digest}, "
                f"the snapshot made at that index has {known}",
            )
        self.highest_applied[node_id] = max(self.highest_applied.get(node_id, 0), index)
        self._check_commit(node_id, max(index, self.highest_commit.get(node_id, 0)))

    def wants_state_at(self, index: int) -> bool:
        """Whether some node reported its state at ``index``: others passing it should compare."""
        return index in self.state_digests

    def state_at(self, node_id: int, index: int, digest: str) -> None:
        """Node ``node_id``, having applied exactly up to ``index``, holds state ``digest``."""
        self.checks += 1
        known = self.state_digests.setdefault(index, (digest, node_id))
        if known[0] != digest:
            raise self.violation(
                "replicas that applied the same index hold the same state",
                f"node {node_id} applied up to {index} and holds state {digest}; node {known[1]} "
                f"held {known[0]} there",
            )
