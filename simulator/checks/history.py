"""The client history: every operation a client invoked, when, and how it ended, in virtual time.

A cluster keeps one :class:`OperationLog` (``cluster.history``). Each client
operation is recorded twice: at its invocation (the virtual time the client
asked) and at its completion (the time the answer reached the client), with
the result. That is all a linearizability checker needs
(:mod:`simulator.checks.linearizability`): the real-time order of
operations that did not overlap, and what each one returned.

How an operation can end, and what it means for the checker:

======================  ====================================================
``ok``                  it took effect once, between invocation and completion
                        (with at-least-once retries a command may have taken
                        effect more than once: the checker sees the effects)
``failed``              it certainly did not take effect (refused before any
                        attempt was sent); left out of checks
``unknown``             a write that timed out: it may have taken effect at any
                        time after its invocation, or never
======================  ====================================================

A read that times out changed nothing and is ``failed``.
"""

from __future__ import annotations

import attrs

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"


@attrs.frozen
class ClientOperation:
    """One client operation. ``kind`` is ``command`` (``argument`` is the command's
    bytes, ``result`` what ``apply`` returned), ``read`` (a ReadIndex read:
    ``argument`` is the key, ``result`` the value read) or ``stale_read`` (a
    local read that may be stale, recorded so checkers can show what it breaks)."""

    op_id: int
    client: int
    kind: str
    argument: object
    invoked: float
    completed: float | None = None
    outcome: str | None = None  # None while in flight
    result: object = None
    node_id: int | None = None

    def describe(self) -> str:
        span = f"[{self.invoked:.3f} .. {'?' if self.completed is None else f'{self.completed:.3f}'}]"
        return f"#{self.op_id} client {self.client} {self.kind} {self.argument!r} {span} -> {self.outcome} {self.result!r}"


class OperationLog:
    """Append-only record of client operations (see the module docstring)."""

    def __init__(self) -> None:
        self._operations: list[ClientOperation] = []

    def __len__(self) -> int:
        return len(self._operations)

    @property
    def operations(self) -> list[ClientOperation]:
        return list(self._operations)

    def invoke(self, client: int, kind: str, argument: object, *, at: float) -> int:
        op_id = len(self._operations)
        self._operations.append(ClientOperation(op_id, client, kind, argument, invoked=at))
        return op_id

    def _finish(self, op_id: int, at: float | None, outcome: str, result: object, node_id: int | None) -> None:
        operation = self._operations[op_id]
        if operation.outcome is not None:
            raise ValueError(f"operation #{op_id} already ended ({operation.outcome}); one ending expected")
        if at is not None and at < operation.invoked:
            raise ValueError(f"operation #{op_id} completes at {at}, before its invocation at {operation.invoked}")
        # What attrs.evolve would build, at a third of its cost (once per client operation).
        self._operations[op_id] = ClientOperation(
            operation.op_id, operation.client, operation.kind, operation.argument, operation.invoked,
            completed=at, outcome=outcome, result=result, node_id=node_id)

    def completed(self, op_id: int, *, at: float, result: object = None, node_id: int | None = None) -> None:
        """The operation took effect and answered ``result`` at ``at``."""
        self._finish(op_id, at, OK, result, node_id)

    def failed(self, op_id: int, *, at: float, reason: str) -> None:
        """The operation certainly did not take effect."""
        self._finish(op_id, at, FAILED, reason, None)

    def unknown(self, op_id: int, *, reason: str) -> None:
        """The client gave up without knowing whether the operation took effect."""
        self._finish(op_id, None, UNKNOWN, reason, None)
