"""Sample replicated state machines: the seed's workflow executor and a key-value store.

A state machine applies committed commands in log order and can be saved to
and restored from snapshot bytes; the contract they follow is
:mod:`simulator.machines.contracts`. Two rules make them safe to replicate:

- ``apply`` never raises on a committed command: a command that makes no
  sense (unknown workflow, garbled bytes) is a deterministic no-op, counted
  in ``rejected_commands`` and answered with an error result, so every
  replica stays identical.
- Snapshot bytes use :mod:`simulator.codec` (never pickle), in a canonical
  order, so the same state always gives the same bytes and ``digest()``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate

import attrs

from ..snapshots.digests import hasher_digest, new_hasher
from .codec import DecodeError, Reader, Writer
from .contracts import StateMachine

__all__ = ["KeyValueStore", "StateMachine", "Workflow", "WorkflowExecutor", "Step"]

#: Bytes a built-in machine encodes before it hands a chunk to the node (see
#: ``StateMachine.snapshot_chunks``): small enough to keep memory flat, large
#: enough that a store writes few, big pieces.
SNAPSHOT_PIECE = 256 * 1024


class _SnapshotHeader:
    """Checks the first fields of a snapshot: format name and applied index."""

    @staticmethod
    def write(writer: Writer, kind: str, index: int) -> None:
        writer.text(kind).int(index)

    @staticmethod
    def read(reader: Reader, kind: str) -> int:
        start = reader.offset
        found = reader.text()
        if found != kind:
            raise reader.fail(start, f"snapshot format {kind!r}", repr(found))
        return reader.int()


def _pieces(writer: Writer) -> Iterator[bytes]:
    """Drain ``writer`` once it holds a piece's worth (call after each field group)."""
    if writer.pending >= SNAPSHOT_PIECE:
        if writer.pending:
            yield writer.drain()


def _digest(machine) -> str:
    hasher = new_hasher()  # the algorithm new snapshots are digested with: states compare with them
    for chunk in machine.snapshot_chunks(machine.applied_index):
        hasher.update(chunk)
    return hasher_digest(hasher)


def _check_snapshot_index(machine, index: int) -> None:
    if index != machine.applied_index:
        raise ValueError(
            f"a snapshot captures the applied state: index {machine.applied_index} expected, "
            f"got {index}"
        )


# -- workflow executor -------------------------------------------------------------

PENDING, COMPLETED, FAILED, RUNNING = "pending", "completed", "failed", "running"


@attrs.define
class Step:
    name: str
    status: str = PENDING
    output: bytes = b""


@attrs.define
class Workflow:
    workflow_id: str
    steps: list[Step]
    payload: bytes = b""

    @property
    def status(self) -> str:
        statuses = {step.status for step in self.steps}
        if FAILED in statuses:
            return FAILED
        if statuses <= {COMPLETED}:
            return COMPLETED
        return RUNNING


@attrs.define(eq=False, getstate_setstate=False)
class WorkflowExecutor:
    """The seed's workflow executor: start workflows, complete or fail their steps.

    Payloads (on start) and outputs (on completion) are stored in the state,
    so a scenario can make snapshots as large as it needs by sending big ones.
    Build commands with :meth:`start`, :meth:`complete_step`, :meth:`fail_step`.
    """

    SNAPSHOT_FORMAT = "raftsim-workflows-v1"

    workflows: dict[str, Workflow] = attrs.Factory(dict)
    applied_index: int = 0
    rejected_commands: int = 0
    #: The workflows' encoded fields, in snapshot order (sorted ids), kept between
    #: snapshots. Every compaction and every cross-replica state check encodes the whole
    #: state, and a long run holds tens of thousands of workflows, nearly all unchanged
    #: since the last snapshot: a snapshot encodes only the workflows commands touched
    #: since (``_touched``) and joins the rest as they are, so its Python work follows
    #: what changed, not the size of the state. The state is read-only outside commands;
    #: the cache is rebuilt if ``workflows`` is replaced or no longer matches in size.
    _order: list[str] = attrs.field(factory=list, init=False, repr=False)
    _fields: list[bytes] = attrs.field(factory=list, init=False, repr=False)
    _touched: set[str] = attrs.field(factory=set, init=False, repr=False)
    _cached_for: dict | None = attrs.field(default=None, init=False, repr=False)

    # Pickling ------------------------------------------------------------------
    # pysyncobj snapshots a machine by pickling it. Only the replicated state goes
    # into a pickle: the encoding cache is derived from it, would add its own bytes to
    # every snapshot pysyncobj sends, and holds a set whose order follows the string
    # hash seed, which would make the same run's bytes differ between processes.

    def __getstate__(self) -> dict:
        return {"workflows": self.workflows, "applied_index": self.applied_index,
                "rejected_commands": self.rejected_commands}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["workflows"], state["applied_index"], state["rejected_commands"])

    # Commands ------------------------------------------------------------------

    @staticmethod
    def start(workflow_id: str, steps: list[str] | tuple[str, ...], payload: bytes = b"") -> bytes:
        writer = Writer().text("start").text(workflow_id).int(len(steps))
        for step in steps:
            writer.text(step)
        return writer.bytes(payload).getvalue()

    @staticmethod
    def complete_step(workflow_id: str, step: str, output: bytes = b"") -> bytes:
        return Writer().text("complete").text(workflow_id).text(step).bytes(output).getvalue()

    @staticmethod
    def fail_step(workflow_id: str, step: str, reason: str) -> bytes:
        return Writer().text("fail").text(workflow_id).text(step).text(reason).getvalue()

    # Applying ------------------------------------------------------------------

    def apply(self, index: int, command: bytes) -> str:
        self.applied_index = index
        try:
            return self._apply(Reader(command, "workflow command"))
        except DecodeError as error:
            self.rejected_commands += 1
            return f"error: {error}"

    def _apply(self, reader: Reader) -> str:
        op = reader.text()
        workflow_id = reader.text()
        if op == "start":
            steps = [reader.text() for _ in range(reader.int())]
            payload = reader.bytes()
            reader.expect_end()
            if workflow_id in self.workflows:
                return self._reject(f"workflow {workflow_id!r} already exists")
            if len(set(steps)) != len(steps):
                return self._reject(f"workflow {workflow_id!r} repeats a step name")
            self.workflows[workflow_id] = Workflow(workflow_id, [Step(s) for s in steps], payload)
            self._touched.add(workflow_id)
            return "ok"
        if op in ("complete", "fail"):
            step_name = reader.text()
            detail = reader.bytes() if op == "complete" else reader.text().encode("utf-8")
            reader.expect_end()
            workflow = self.workflows.get(workflow_id)
            if workflow is None:
                return self._reject(f"no workflow {workflow_id!r}")
            step = next((s for s in workflow.steps if s.name == step_name), None)
            if step is None:
                return self._reject(f"workflow {workflow_id!r} has no step {step_name!r}")
            if step.status != PENDING:
                return self._reject(f"step {step_name!r} of {workflow_id!r} is already {step.status}")
            step.status = COMPLETED if op == "complete" else FAILED
            step.output = detail
            self._touched.add(workflow_id)
            return "ok"
        return self._reject(f"unknown workflow command {op!r}; expected start, complete or fail")

    def _reject(self, reason: str) -> str:
        self.rejected_commands += 1
        return f"error: {reason}"

    # Snapshots -----------------------------------------------------------------

    def snapshot_chunks(self, index: int) -> Iterator[bytes]:
        """The state at ``index`` (the applied index), encoded a piece at a time.

        A piece ends after the first workflow that brings it to ``SNAPSHOT_PIECE``
        bytes or more, exactly as if the workflows were written one by one.
        """
        _check_snapshot_index(self, index)
        writer = Writer()
        _SnapshotHeader.write(writer, self.SNAPSHOT_FORMAT, index)
        head = writer.int(self.rejected_commands).int(len(self.workflows)).getvalue()
        fields = list(self._encoded_fields())  # a copy: another snapshot may update the cache meanwhile
        # ends[k]: bytes of the snapshot up to and including workflow k - 1 (ends[0]: the head).
        ends = list(accumulate(map(len, fields), initial=len(head)))
        start, done = 0, 0  # first workflow of the piece; bytes yielded so far
        while start < len(fields):
            # The piece ends after the first workflow that takes it to a piece's worth.
            stop = min(bisect_left(ends, done + SNAPSHOT_PIECE, start + 1), len(fields))
            piece = b"".join(fields[start:stop])
            yield head + piece if start == 0 else piece
            start, done = stop, ends[stop]
        if not fields:
            yield head

    def _encoded_fields(self) -> list[bytes]:
        """Every workflow's encoded fields in id order, encoding only what changed."""
        workflows, order, fields = self.workflows, self._order, self._fields
        if self._cached_for is not workflows or not self._touched <= workflows.keys():
            order[:] = sorted(workflows)
            fields[:] = [_encode_workflow(workflow_id, workflows[workflow_id]) for workflow_id in order]
            self._cached_for = workflows
        else:
            for workflow_id in sorted(self._touched):
                position = bisect_left(order, workflow_id)
                encoded = _encode_workflow(workflow_id, workflows[workflow_id])
                if position < len(order) and order[position] == workflow_id:
                    fields[position] = encoded
                else:
                    order.insert(position, workflow_id)
                    fields.insert(position, encoded)
        self._touched.clear()
        if len(order) != len(workflows):  # changed outside commands: encode it all again
            self._cached_for = None
            return self._encoded_fields()
        return fields

    def create_snapshot(self, index: int) -> bytes:
        """The whole snapshot as one ``bytes`` (small states, tests); nodes use :meth:`snapshot_chunks`."""
        return b"".join(self.snapshot_chunks(index))

    def restore_from_snapshot(self, chunks: Iterable[bytes]) -> None:
        """Replace the state with the snapshot in ``chunks``; on bad data raise and keep the old state."""
        reader = Reader(chunks, "workflow snapshot")
        index = _SnapshotHeader.read(reader, self.SNAPSHOT_FORMAT)
        rejected = reader.int()
        workflows = {}
        for _ in range(reader.int()):
            workflow_id = reader.text()
            payload = reader.bytes()
            steps = [
                Step(reader.text(), reader.text(), reader.bytes()) for _ in range(reader.int())
            ]
            workflows[workflow_id] = Workflow(workflow_id, steps, payload)
        reader.expect_end()
        self.workflows, self.applied_index, self.rejected_commands = workflows, index, rejected
        self._touched.clear()  # a new dict: the next snapshot encodes it all

    def digest(self) -> str:
        return _digest(self)


def _encode_workflow(workflow_id: str, workflow: Workflow) -> bytes:
    """One workflow's fields in a workflow snapshot."""
    writer = Writer().text(workflow_id).bytes(workflow.payload).int(len(workflow.steps))
    for step in workflow.steps:
        writer.text(step.name).text(step.status).bytes(step.output)
    return writer.getvalue()


# -- key-value store ----------------------------------------------------------------


@attrs.define(eq=False)
class KeyValueStore:
    """A dictionary of text keys to byte values. Commands: :meth:`put`, :meth:`delete`."""

    SNAPSHOT_FORMAT = "raftsim-kv-v1"

    data: dict[str, bytes] = attrs.Factory(dict)
    applied_index: int = 0
    rejected_commands: int = 0

    @staticmethod
    def put(key: str, value: bytes) -> bytes:
        return Writer().text("put").text(key).bytes(value).getvalue()

    @staticmethod
    def delete(key: str) -> bytes:
        return Writer().text("delete").text(key).getvalue()

    def get(self, key: str, default: bytes | None = None) -> bytes | None:
        return self.data.get(key, default)

    def apply(self, index: int, command: bytes) -> str:
        self.applied_index = index
        try:
            reader = Reader(command, "key-value command")
            op = reader.text()
            key = reader.text()
            if op == "put":
                value = reader.bytes()
                reader.expect_end()
                self.data[key] = value
                return "ok"
            if op == "delete":
                reader.expect_end()
                return "ok" if self.data.pop(key, None) is not None else "not found"
            self.rejected_commands += 1
            return f"error: unknown key-value command {op!r}; expected put or delete"
        except DecodeError as error:
            self.rejected_commands += 1
            return f"error: {error}"

    def snapshot_chunks(self, index: int) -> Iterator[bytes]:
        """The state at ``index`` (the applied index), encoded a piece at a time."""
        _check_snapshot_index(self, index)
        writer = Writer()
        _SnapshotHeader.write(writer, self.SNAPSHOT_FORMAT, index)
        writer.int(self.rejected_commands).int(len(self.data))
        for key in sorted(self.data):
            writer.text(key).bytes(self.data[key])
            yield from _pieces(writer)
        if writer.pending:
            yield writer.drain()

    def create_snapshot(self, index: int) -> bytes:
        """The whole snapshot as one ``bytes`` (small states, tests); nodes use :meth:`snapshot_chunks`."""
        return b"".join(self.snapshot_chunks(index))

    def restore_from_snapshot(self, chunks: Iterable[bytes]) -> None:
        """Replace the state with the snapshot in ``chunks``; on bad data raise and keep the old state."""
        reader = Reader(chunks, "key-value snapshot")
        index = _SnapshotHeader.read(reader, self.SNAPSHOT_FORMAT)
        rejected = reader.int()
        items = {reader.text(): reader.bytes() for _ in range(reader.int())}
        reader.expect_end()
        self.data, self.applied_index, self.rejected_commands = items, index, rejected

    def digest(self) -> str:
        return _digest(self)
