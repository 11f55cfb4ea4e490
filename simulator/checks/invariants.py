"""Raft's safety properties, checked against what the nodes show at any moment.

The checker is fed observations (:meth:`InvariantChecker.observe`) after
every step and ``Ready``; it keeps the little history the properties need
(who led which term, which entries were seen committed and when, the highest
commit / applied index each node ever showed) and raises
:class:`InvariantViolation` naming the property and the nodes at the first
breach. It knows nothing about how the nodes are driven, so the synchronous
harness and the trio cluster share it.
"""

from __future__ import annotations

import attrs

from ..raft import Entry, RawNode, Role


class InvariantViolation(AssertionError):
    """A Raft safety property does not hold; ``invariant`` names which."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@attrs.frozen
class NodeView:
    """What one node shows: its role and term, its log, and its state machine's history."""

    node_id: int
    role: Role
    term: int
    commit: int
    applied: int
    #: (index, term) of the entry just before ``entries`` (the snapshot point).
    base: tuple[int, int]
    entries: tuple[Entry, ...]
    #: Data of the normal entries applied to the state machine, oldest first, with indexes.
    applied_history: tuple[tuple[int, bytes], ...]

    @classmethod
    def of(cls, node: RawNode, applied_history) -> NodeView:
        log = node.raft.raft_log
        base_index = log.first_index() - 1
        return cls(
            node_id=node.id,
            role=node.raft.role,
            term=node.raft.term,
            commit=log.committed,
            applied=log.applied,
            base=(base_index, log.term(base_index)),
            entries=tuple(log.all_entries()),
            applied_history=tuple(applied_history),
        )

    def term_at(self, index: int) -> int | None:
        """Term of the entry at ``index``, or ``None`` if this node cannot tell."""
        base_index, base_term = self.base
        if index == base_index:
            return base_term
        offset = index - base_index - 1
        if 0 <= offset < len(self.entries):
            return self.entries[offset].term
        return None

    def entry_at(self, index: int) -> Entry | None:
        offset = index - self.base[0] - 1
        if 0 <= offset < len(self.entries):
            return self.entries[offset]
        return None


@attrs.frozen
class _CommittedEntry:
    term: int
    data: bytes
    #: Term of the node that first showed it committed: leaders of later terms must hold it.
    seen_in_term: int
    seen_at: int


@attrs.define(eq=False)
class InvariantChecker:
    """Checks election safety, log matching, leader completeness, state machine
    safety, and that commit / applied never go backwards."""

    leaders: dict[int, int] = attrs.Factory(dict)  # term -> leader id
    committed: dict[int, _CommittedEntry] = attrs.Factory(dict)  # index -> entry
    high_water: dict[int, tuple[int, int]] = attrs.Factory(dict)  # node -> (commit, applied)
    checks: int = 0

    def observe(self, views: list[NodeView]) -> None:
        """Check every property against the nodes' current views (sorted by id)."""
        self.checks += 1
        views = sorted(views, key=lambda view: view.node_id)
        for view in views:
            self._check_leader_unique(view)
            self._check_monotonic(view)
            self._record_committed(view)
        for position, first in enumerate(views):
            for second in views[position + 1 :]:
                self._check_log_matching(first, second)
                self._check_state_machine_safety(first, second)
        for view in views:
            if view.role is Role.LEADER:
                self._check_leader_completeness(view)

    def _check_leader_unique(self, view: NodeView) -> None:
        if view.role is not Role.LEADER:
            return
        known = self.leaders.setdefault(view.term, view.node_id)
        if known != view.node_id:
            raise InvariantViolation(
                "election safety",
                f"nodes {known} and {view.node_id} were both leader in term {view.term}",
            )

    def _check_monotonic(self, view: NodeView) -> None:
        commit, applied = self.high_water.get(view.node_id, (0, 0))
        if view.commit < commit:
            raise InvariantViolation(
                "commit monotonic",
                f"node {view.node_id} commit went back from {commit} to {view.commit}",
            )
        if view.applied < applied:
            raise InvariantViolation(
                "applied monotonic",
                f"node {view.node_id} applied went back from {applied} to {view.applied}",
            )
        self.high_water[view.node_id] = (view.commit, view.applied)

    def _record_committed(self, view: NodeView) -> None:
        for index in range(view.base[0] + 1, view.commit + 1):
            entry = view.entry_at(index)
            if entry is None:
                continue
            known = self.committed.get(index)
            if known is None:
                self.committed[index] = _CommittedEntry(
                    entry.term, entry.data, view.term, view.node_id
                )
            elif (known.term, known.data) != (entry.term, entry.data):
                raise InvariantViolation(
                    "state machine safety",
                    f"index {index} committed as term {known.term} on node {known.seen_at} "
                    f"but as term {entry.term} on node {view.node_id}",
                )

    def _check_log_matching(self, first: NodeView, second: NodeView) -> None:
        low = max(first.base[0], second.base[0])
        high = min(first.base[0] + len(first.entries), second.base[0] + len(second.entries))
        matched_below = False
        # Walk down from the top: once two entries agree on the term, every entry
        # below them must be identical.
        for index in range(high, low, -1):
            a, b = first.entry_at(index), second.entry_at(index)
            if a is None or b is None:
                continue
            if matched_below and a != b:
                raise InvariantViolation(
                    "log matching",
                    f"nodes {first.node_id} and {second.node_id} agree on a later entry "
                    f"but differ at index {index}: {a!r} vs {b!r}",
                )
            if a.term == b.term:
                if a != b:
                    raise InvariantViolation(
                        "log matching",
                        f"nodes {first.node_id} and {second.node_id} hold different entries "
                        f"of term {a.term} at index {index}",
                    )
                matched_below = True

    def _check_state_machine_safety(self, first: NodeView, second: NodeView) -> None:
        shorter, longer = sorted((first, second), key=lambda v: len(v.applied_history))
        prefix = longer.applied_history[: len(shorter.applied_history)]
        if prefix != shorter.applied_history:
            for position, (a, b) in enumerate(zip(shorter.applied_history, prefix)):
                if a != b:
                    raise InvariantViolation(
                        "state machine safety",
                        f"node {shorter.node_id} applied {a!r} as its entry #{position} "
                        f"where node {longer.node_id} applied {b!r}",
                    )

    def _check_leader_completeness(self, view: NodeView) -> None:
        for index, entry in self.committed.items():
            if entry.seen_in_term >= view.term or index <= view.base[0]:
                continue
            held = view.term_at(index)
            if held != entry.term:
                raise InvariantViolation(
                    "leader completeness",
                    f"leader {view.node_id} of term {view.term} lacks entry {index} "
                    f"(term {entry.term}) committed in term {entry.seen_in_term}",
                )
