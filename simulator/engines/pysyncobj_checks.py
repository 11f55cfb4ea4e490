"""Safety properties checked on pysyncobj nodes as they run.

pysyncobj keeps its Raft state private, so these checks use what can be
seen from outside a node: its role and term after each call, every entry
its state machine applies (index and command bytes), snapshots it creates
and installs, and the writes clients were told succeeded.

- election safety: at most one leader per term;
- state machine safety: every node applies the same command at each index;
- applied never goes backwards within a node's life;
- no lost acknowledged write: an index a client was told is applied never
  holds another command anywhere, and every caught-up node holds it;
- an installed snapshot equals the state its sender had at that index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import attrs

from ..checks.invariants import InvariantViolation


def command_digest(command: bytes) -> str:
    return hashlib.sha256(command).hexdigest()[:16]


@attrs.define(eq=False)
class PysyncobjMonitor:
    """See the module docstring; ``context()`` gives a trace excerpt for error messages."""

    context: Callable[[], str] = lambda: ""
    leaders: dict[int, int] = attrs.Factory(dict)  # term -> node
    applied: dict[int, tuple[int, str]] = attrs.Factory(dict)  # index -> (first node, command digest)
    highest_applied: dict[int, int] = attrs.Factory(dict)
    acknowledged: dict[int, str] = attrs.Factory(dict)  # index -> command digest
    snapshots: dict[int, str] = attrs.Factory(dict)  # index -> state digest at creation
    checks: int = 0

    def violation(self, invariant: str, detail: str) -> InvariantViolation:
        """An ``InvariantViolation`` naming ``invariant``, with the last trace events."""
        excerpt = self.context()
        return InvariantViolation(invariant, f"{detail}\nlast trace events:\n{excerpt}" if excerpt else detail)

    def node_started(self, node_id: int) -> None:
        self.highest_applied[node_id] = 0

    def leader_elected(self, node_id: int, term: int) -> None:
        self.checks += 1
        other = self.leaders.setdefault(term, node_id)
        if other != node_id:
            raise self.violation("election safety", f"n{other} and n{node_id} both led term {term}")

    def entry_applied(self, node_id: int, index: int, command: bytes) -> None:
        self.checks += 1
        previous = self.highest_applied.get(node_id, 0)
        if index <= previous:
            raise self.violation(
                "applied index monotonic", f"n{node_id} applied index {index} after {previous}"
            )
        self.highest_applied[node_id] = index
        digest = command_digest(command)
        first = self.applied.setdefault(index, (node_id, digest))
        if first[1] != digest:
            acknowledged = self.acknowledged.get(index)
            name = "no lost acknowledged write" if acknowledged == first[1] else "state machine safety"
            raise self.violation(
                name,
                f"n{node_id} applied command {digest} at index {index}, "
                f"but n{first[0]} applied {first[1]} there",
            )

    def write_acknowledged(self, index: int, command: bytes) -> None:
        self.checks += 1
        digest = command_digest(command)
        applied = self.applied.get(index)
        if applied is not None and applied[1] != digest:
            raise self.violation(
                "no lost acknowledged write",
                f"a client was told index {index} holds command {digest}; nodes applied {applied[1]}",
            )
        self.acknowledged[index] = digest

    def snapshot_created(self, index: int, state_digest: str) -> None:
        self.snapshots.setdefault(index, state_digest)

    def snapshot_installed(self, node_id: int, index: int, state_digest: str) -> None:
        self.checks += 1
        previous = self.highest_applied.get(node_id, 0)
        if index < previous:
            raise self.violation(
                "applied index monotonic", f"n{node_id} installed a snapshot at {index} after applying {previous}"
            )
        self.highest_applied[node_id] = index
        expected = self.snapshots.get(index)
        if expected is not None and expected != state_digest:
            raise self.violation(
                "snapshot integrity",
                f"n{node_id} installed a snapshot at index {index} whose state {state_digest[:19]} "
                f"differs from the sender's {expected[:19]}",
            )

    def lost_acknowledged_writes(self, applied_by_node: dict[int, int]) -> list[str]:
        """Acknowledged indexes a caught-up node has not reached (for end-of-run checks)."""
        if not self.acknowledged:
            return []
        highest = max(self.acknowledged)
        return [
            f"n{node_id} applied up to {applied}, below acknowledged index {highest}"
            for node_id, applied in sorted(applied_by_node.items())
            if applied < highest
        ]


__all__ = ["PysyncobjMonitor"]
