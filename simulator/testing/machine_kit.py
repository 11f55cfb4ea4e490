"""``check_state_machine``: the conformance kit for a user's :class:`~simulator.StateMachine`.

Run it in your own test suite with a factory and a few commands of your
machine; it raises :class:`ContractViolation` naming the rule broken (the
rules are those of :mod:`simulator.machines.contracts`) and returns a short
report when every rule holds::

    from simulator.testing import check_state_machine

    def test_counter_follows_the_contract():
        check_state_machine(Counter, [b"inc", b"inc", b"reset"])

What it checks, on fresh machines from the factory:

- the machine has the four members of the protocol; ``applied_index`` starts
  at 0 and is the entry's index after every ``apply``;
- ``apply`` never raises, not even for garbage commands (every replica applies
  the same log, so an error is a result, not an exception);
- two machines that applied the same commands produce the same snapshot bytes
  and the same digest (canonical encoding), and asking twice gives the same;
- ``snapshot_chunks`` yields bytes chunks;
- a fresh machine restored from the snapshot equals the original (digest,
  applied index, snapshot bytes) whatever the chunk boundaries: one chunk,
  one byte per chunk, a one-shot iterator; a machine that already holds other
  state is replaced entirely;
- a restored machine then applies further commands exactly as the original;
- a snapshot that ``restore_from_snapshot`` refuses (truncated) leaves the old
  state untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import attrs

from ..machines.contracts import StateMachine, snapshot_chunks_of

GARBAGE_COMMANDS = (b"", b"\x00", b"\xff\xfe garbage \x00\x01", b"{" * 3, bytes(range(256)))


class ContractViolation(AssertionError):
    """A user's object breaks a raftsim contract; the message names the rule and what happened."""


@attrs.frozen
class MachineReport:
    """What :func:`check_state_machine` exercised (every rule held)."""

    commands_applied: int
    snapshot_size: int
    chunk_count: int
    refused_truncated_snapshot: bool


def _fail(rule: str, detail: str) -> ContractViolation:
    return ContractViolation(f"StateMachine contract, {rule}: {detail}")


def _snapshot(machine: StateMachine) -> tuple[bytes, int]:
    try:
        chunks = list(snapshot_chunks_of(machine, machine.applied_index))
    except TypeError as error:
        raise _fail("snapshot_chunks yields bytes", str(error)) from None
    return b"".join(chunks), len(chunks)


def _one_shot(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _new(factory: Callable[[], StateMachine]) -> StateMachine:
    machine = factory()
    missing = [name for name in ("apply", "snapshot_chunks", "restore_from_snapshot", "digest")
               if not callable(getattr(machine, name, None))]
    if missing:
        raise _fail("the protocol's methods", f"{type(machine).__name__} lacks {', '.join(missing)}")
    if getattr(machine, "applied_index", None) != 0:
        raise _fail("a new machine", f"applied_index 0 expected, got {getattr(machine, 'applied_index', None)!r}")
    return machine


def _apply_all(machine: StateMachine, commands: Iterable[bytes], first_index: int) -> int:
    index = first_index - 1
    for index, command in enumerate(commands, start=first_index):
        try:
            machine.apply(index, command)
        except Exception as error:  # noqa: BLE001 - the rule is "never raises"
            raise _fail("apply never raises", f"apply({index}, {command!r}) raised {error!r}") from None
        if machine.applied_index != index:
            raise _fail("apply sets applied_index",
                        f"after apply({index}, ...) applied_index is {machine.applied_index!r}")
    return index


def _restore(machine: StateMachine, chunks: Iterable[bytes], how: str) -> None:
    try:
        machine.restore_from_snapshot(chunks)
    except Exception as error:  # noqa: BLE001 - any failure to restore its own snapshot breaks the rule
        raise _fail("restore_from_snapshot accepts its own snapshot",
                    f"restoring from {how} raised {error!r}") from None


def _same_state(rule: str, expected: StateMachine, actual: StateMachine, expected_bytes: bytes) -> None:
    if actual.applied_index != expected.applied_index:
        raise _fail(rule, f"applied_index {expected.applied_index} expected, got {actual.applied_index}")
    if actual.digest() != expected.digest():
        raise _fail(rule, f"digest {expected.digest()!r} expected, got {actual.digest()!r}")
    got, _ = _snapshot(actual)
    if got != expected_bytes:
        raise _fail(rule, f"snapshot of {len(expected_bytes)} bytes expected, got {len(got)} different bytes")


def check_state_machine(factory: Callable[[], StateMachine], commands: Sequence[bytes]) -> MachineReport:
    """Check that machines made by ``factory`` follow the StateMachine contract.

    ``commands`` are valid commands of your machine (``bytes``, as clients
    propose them), in an order that makes sense; give at least two and let
    them change the state, so restores have something to prove. The kit adds
    garbage commands of its own. Raises :class:`ContractViolation`.
    """
    commands = [bytes(command) for command in commands]
    if len(commands) < 2:
        raise ValueError(f"at least 2 commands expected, to build state worth snapshotting; got {len(commands)}")
    half = len(commands) // 2
    original, twin = _new(factory), _new(factory)
    last = _apply_all(original, [*commands[:half], *GARBAGE_COMMANDS, *commands[half:half + 1]], 1)
    _apply_all(twin, [*commands[:half], *GARBAGE_COMMANDS, *commands[half:half + 1]], 1)

    data, chunk_count = _snapshot(original)
    if _snapshot(original)[0] != data:
        raise _fail("snapshots are canonical", "two snapshots of the same state differ")
    if _snapshot(twin)[0] != data or twin.digest() != original.digest():
        raise _fail("snapshots are canonical",
                    "two machines that applied the same commands give different snapshots or digests")

    rule = "restore equals the snapshotted state"
    for how, chunks in [("one chunk", [data]), ("one-byte chunks", [data[i:i + 1] for i in range(len(data))]),
                        ("a one-shot iterator of 7-byte chunks", _one_shot(data, 7))]:
        restored = _new(factory)
        _restore(restored, chunks, how)
        _same_state(f"{rule} ({how})", original, restored, data)

    replaced = _new(factory)
    _apply_all(replaced, list(reversed(commands)), 1)
    _restore(replaced, _one_shot(data, 3), "chunks, on a machine holding other state")
    _same_state(f"{rule} (restored over other state)", original, replaced, data)

    rest = commands[half + 1:] or commands[:1]
    _apply_all(original, rest, last + 1)
    _apply_all(replaced, rest, last + 1)
    after, _ = _snapshot(original)
    _same_state("a restored machine continues like the original", original, replaced, after)

    refused = False
    if len(after) >= 2:
        victim = _new(factory)
        _restore(victim, [after], "one chunk")
        before_digest, before_index = victim.digest(), victim.applied_index
        try:
            victim.restore_from_snapshot(iter([after[: len(after) // 2]]))
        except Exception:  # noqa: BLE001 - refusing is what we hope for
            refused = True
            if (victim.digest(), victim.applied_index) != (before_digest, before_index):
                raise _fail("a refused snapshot keeps the old state",
                            "restore_from_snapshot raised on a truncated snapshot but changed the state") from None
    return MachineReport(commands_applied=last + len(rest), snapshot_size=len(after), chunk_count=chunk_count,
                         refused_truncated_snapshot=refused)
