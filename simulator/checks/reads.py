"""Linearizable reads, checked as a cluster runs.

A read is linearizable if it reflects every write acknowledged to any client
before the read began (and nothing that was never committed, which state
machine safety already guarantees). Indexes make that cheap to check: a
write acknowledged at index ``w`` is committed, so any later leader's commit
index is at least ``w``. A correct ReadIndex read that began after the
acknowledgement gets a read index ``r >= w`` and is served from a state
machine that applied ``a >= r``. :class:`ReadChecker` records the highest
acknowledged index when each read begins and checks both inequalities when
it is served: a new leader answering before it committed an entry of its
term, or a deposed leader answering from its own old commit index, fails
the first.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .invariants import InvariantViolation

LINEARIZABLE_READ = "linearizable read"


@attrs.define(eq=False)
class ReadChecker:
    """See the module docstring. ``violation(invariant, detail)`` builds the error to raise."""

    violation: Callable[[str, str], InvariantViolation]
    #: Highest log index of a write acknowledged to a client so far.
    acknowledged: int = 0
    reads_checked: int = 0

    def write_acknowledged(self, index: int) -> None:
        self.acknowledged = max(self.acknowledged, index)

    def read_started(self) -> int:
        """The watermark a read beginning now must reflect."""
        return self.acknowledged

    def read_served(
        self, *, node_id: int, key: str, started_after: int, read_index: int, applied_index: int
    ) -> None:
        self.reads_checked += 1
        if read_index < started_after:
            raise self.violation(
                LINEARIZABLE_READ,
                f"node {node_id} served a read of {key!r} at read index {read_index}, but a write "
                f"at index {started_after} was acknowledged before the read began",
            )
        if applied_index < read_index:
            raise self.violation(
                LINEARIZABLE_READ,
                f"node {node_id} served a read of {key!r} from state applied to {applied_index}, "
                f"before reaching its read index {read_index}",
            )
