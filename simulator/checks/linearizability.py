"""Is a key-value history linearizable? Wing & Gong's search, with Lowe's memo, per key.

Theory of operation. A history is linearizable if every operation can be
given a single instant between its invocation and its completion such that,
taken in the order of those instants, the operations are a legal run of the
sequential object (here a register per key: ``put`` sets it, ``delete``
empties it, ``get`` returns it). Keys are independent, so each key's
sub-history is checked alone (P-compositionality, as Porcupine does), which
keeps the search small.

The search (Wing & Gong 1993; Lowe 2017; the form Porcupine uses) walks a
list of call and return events in time order. At a call it tries to
linearize that operation now: if the model accepts it, it is lifted out of
the list and the search goes on from the start; if the model refuses it, or
the configuration (set of linearized operations, register value) was already
explored, it tries the next call. Reaching a return means the operation
whose return it is must already have been linearized: backtrack. Linearizing
every operation proves the history linearizable; backtracking past the first
call proves it is not. Operations that overlap are concurrent: one that
ends at the very instant another begins is *not* ordered before it (virtual
time has many events per instant; ordering them would invent precedence).

A write whose outcome is unknown (the client timed out) may take effect at
any instant after its invocation, or never: its return event sits at
infinity, and once only such operations remain the history is accepted.

When a key is not linearizable, :func:`check_kv_history` shrinks its
sub-history to a minimal one (removing any single operation from it makes it
linearizable) and explains it in words; ``simulator.plot_history`` draws it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import attrs

PUT, DELETE, GET = "put", "delete", "get"


@attrs.frozen
class KVOperation:
    """One operation on one key. ``value`` is what a put wrote or what a get returned
    (``None``: absent). ``completed`` is ``None`` for a write whose outcome is unknown.
    ``result`` is a delete's answer (``"ok"`` / ``"not found"``), if known."""

    op_id: int
    client: int
    kind: str
    key: str
    value: bytes | None
    invoked: float
    completed: float | None
    result: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind not in (PUT, DELETE, GET):
            raise ValueError(f"operation kind must be put, delete or get, got {self.kind!r}")
        if self.completed is None and self.kind == GET:
            raise ValueError(f"get #{self.op_id} has no completion; a read that never answered changes nothing, "
                             "leave it out")
        if self.completed is not None and self.completed < self.invoked:
            raise ValueError(f"operation #{self.op_id} completes at {self.completed}, before its invocation")

    def describe(self) -> str:
        end = "unknown outcome" if self.completed is None else f"{self.completed:.3f}"
        if self.kind == PUT:
            what = f"put {self.key!r} = {self.value!r}"
        elif self.kind == DELETE:
            what = f"delete {self.key!r}" + (f" -> {self.result}" if self.result else "")
        else:
            what = f"get {self.key!r} -> {self.value!r}"
        return f"#{self.op_id} client {self.client}: {what}  [{self.invoked:.3f} .. {end}]"


def _step(state: bytes | None, operation: KVOperation) -> tuple[bool, bytes | None]:
    """The register: whether ``operation`` is legal in ``state``, and the state after it."""
    if operation.kind == PUT:
        return True, operation.value
    if operation.kind == DELETE:
        if operation.result == "not found":
            return state is None, None
        if operation.result == "ok":
            return state is not None, None
        return True, None
    return operation.value == state, state


class _Event:
    __slots__ = ("op", "is_call", "match", "prev", "next")

    def __init__(self, op: int, is_call: bool) -> None:
        self.op, self.is_call = op, is_call
        self.match = self.prev = self.next = None


def is_linearizable(operations: list[KVOperation], initial: bytes | None = None) -> bool:
    """Whether one key's operations are linearizable from register value ``initial``."""
    events = []
    for number, operation in enumerate(operations):
        end = math.inf if operation.completed is None else operation.completed
        # At equal times calls sort before returns: operations touching an instant overlap.
        events.append((operation.invoked, 0, number))
        events.append((end, 1, number))
    events.sort()
    head = _Event(-1, False)
    previous, calls = head, {}
    for _, is_return, number in events:
        event = _Event(number, not is_return)
        if is_return:
            event.match, calls[number].match = calls[number], event
        else:
            calls[number] = event
        previous.next, event.prev = event, previous
        previous = event

    def lift(call: _Event) -> None:
        for event in (call, call.match):
            event.prev.next = event.next
            if event.next is not None:
                event.next.prev = event.prev

    def unlift(call: _Event) -> None:
        for event in (call.match, call):
            event.prev.next = event
            if event.next is not None:
                event.next.prev = event

    state, linearized = initial, 0
    explored: set[tuple[int, bytes | None]] = set()
    stack: list[tuple[_Event, bytes | None]] = []
    entry = head.next
    while head.next is not None:
        if entry.is_call:
            legal, after = _step(state, operations[entry.op])
            if legal:
                configuration = (linearized | (1 << entry.op), after)
                if configuration not in explored:
                    explored.add(configuration)
                    stack.append((entry, state))
                    state, linearized = after, configuration[0]
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if operations[entry.op].completed is None:
                return True  # only writes of unknown outcome remain: they may never have happened
            if not stack:
                return False
            entry, state = stack.pop()
            linearized &= ~(1 << entry.op)
            unlift(entry)
            entry = entry.next
    return True


def _explained(operations: list[KVOperation], initial: bytes | None) -> bool:
    """Whether every get's value is the initial one or written by a put among ``operations``."""
    written = {initial} | {o.value for o in operations if o.kind == PUT}
    return all(o.value in written for o in operations if o.kind == GET)


def minimal_violation(operations: list[KVOperation], initial: bytes | None = None) -> list[KVOperation]:
    """A smallest story of the violation: a sub-history that is not linearizable, in which
    every value read was written (or initial), and from which no operation can be dropped
    without making it linearizable or leaving a read unexplained.

    First the shortest such prefix (operations in completion order), then one
    operation at a time is dropped while the rest still fails.
    """
    ordered = sorted(operations, key=lambda o: (math.inf if o.completed is None else o.completed, o.op_id))
    kept = ordered
    for length in range(1, len(ordered) + 1):
        prefix = ordered[:length]
        if _explained(prefix, initial) and not is_linearizable(prefix, initial):
            kept = prefix
            break
    for operation in list(kept):
        trial = [other for other in kept if other is not operation]
        if _explained(trial, initial) and not is_linearizable(trial, initial):
            kept = trial
    return sorted(kept, key=lambda o: (o.invoked, o.op_id))


def _precedes(a: KVOperation, b: KVOperation) -> bool:
    return a.completed is not None and a.completed < b.invoked


def explain(key: str, operations: list[KVOperation], initial: bytes | None = None) -> str:
    """Words for a minimal non-linearizable sub-history of ``key``."""
    lines = [f"key {key!r}: these {len(operations)} operations cannot be placed one after another, each within "
             f"its own time span, so that a single register (starting {initial!r}) explains every result:"]
    lines += [f"  {operation.describe()}" for operation in operations]
    orders = [(a, b) for a in operations for b in operations if _precedes(a, b)]
    if orders:
        lines.append("real time fixes: " + "; ".join(
            f"#{a.op_id} ended ({a.completed:.3f}) before #{b.op_id} began ({b.invoked:.3f})" for a, b in orders))
    else:
        lines.append("they all overlap in time, so any order is allowed")
    if len(operations) <= 7:
        legal_orders = [order for order in itertools.permutations(operations)
                        if not any(_precedes(later, earlier) for i, earlier in enumerate(order)
                                   for later in order[i + 1:])]
        lines.append(f"each of the {len(legal_orders)} orders that respect real time breaks the register, e.g. "
                     + _first_break(legal_orders[0], initial) if legal_orders else "no order respects real time")
    return "\n".join(lines)


def _first_break(order: tuple[KVOperation, ...], initial: bytes | None) -> str:
    state = initial
    for operation in order:
        legal, after = _step(state, operation)
        if not legal:
            did = f"read {operation.value!r}" if operation.kind == GET else f"answered {operation.result!r}"
            sequence = ", ".join(f"#{o.op_id}" for o in order)
            return f"in the order {sequence}, #{operation.op_id} {did} while the register held {state!r}"
        state = after
    return "(no break found)"


@attrs.frozen
class KeyVerdict:
    key: str
    operations: int
    linearizable: bool
    minimal: tuple[KVOperation, ...] = ()
    explanation: str = ""


@attrs.frozen
class HistoryVerdict:
    """The verdict per key; ``linearizable`` if every key is."""

    keys: tuple[KeyVerdict, ...]

    @property
    def linearizable(self) -> bool:
        return all(verdict.linearizable for verdict in self.keys)

    @property
    def violations(self) -> list[KeyVerdict]:
        return [verdict for verdict in self.keys if not verdict.linearizable]

    def describe(self) -> str:
        if self.linearizable:
            return f"linearizable: {sum(v.operations for v in self.keys)} operations on {len(self.keys)} keys"
        return "\n\n".join(verdict.explanation for verdict in self.violations)


def check_kv_history(operations: Iterable[KVOperation], initial: dict[str, bytes] | None = None) -> HistoryVerdict:
    """Check a key-value history for linearizability, key by key (see the module docstring)."""
    by_key: dict[str, list[KVOperation]] = {}
    for operation in operations:
        by_key.setdefault(operation.key, []).append(operation)
    verdicts = []
    for key in sorted(by_key):
        start = (initial or {}).get(key)
        history = by_key[key]
        if is_linearizable(history, start):
            verdicts.append(KeyVerdict(key, len(history), True))
            continue
        minimal = minimal_violation(history, start)
        verdicts.append(KeyVerdict(key, len(history), False, tuple(minimal), explain(key, minimal, start)))
    return HistoryVerdict(tuple(verdicts))
