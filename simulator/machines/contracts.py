"""The contracts raftsim holds your code to: your state machine, your snapshot store.

Implement one of these protocols, run its conformance kit
(:func:`simulator.testing.check_state_machine`,
:func:`simulator.testing.check_snapshot_store`) in your own test suite, and
the simulated cluster drives your object exactly as it drives the built-in
ones, in every transfer mode. Nothing here needs subclassing: the protocols
are structural (``typing.Protocol``).

StateMachine: what a node replicates
====================================

A node calls four things, always in this way:

``apply(index, command) -> result``
    A committed command, in log order, exactly once per life of the machine.
    ``command`` is the ``bytes`` a client proposed. It must never raise for a
    command that makes no sense: every replica applies the same log, so
    answer with an error *result* and change nothing (or change something
    deterministically). The result is what the client that proposed the
    command gets back (``cluster.propose`` returns it); keep it small.
    Set ``applied_index = index`` before returning.

``applied_index`` (a plain, writable attribute)
    The index of the last entry the machine holds. The node also sets it
    itself for entries that carry no command (empty entries, membership
    changes), so it must be assignable.

``snapshot_chunks(index) -> Iterable[bytes]``
    The state at ``index`` (always the current ``applied_index``) as a
    sequence of byte chunks. The node consumes the iterable as it writes the
    snapshot into its :class:`~simulator.snapshots.SnapshotStore`, so a
    generator that encodes one piece of state at a time keeps the leader's
    memory flat at any state size: with a disk store, snapshotting a 1 GiB
    state adds a few chunks to the leader's memory, not a second gigabyte
    (``benchmarks/snapshot_memory.py`` measures it). Any chunk sizes are fine
    (the store re-chunks by its ``chunk_size``); tens of KiB to a few MiB
    each are efficient. The bytes must be canonical: the same state gives the
    same bytes on every node, because replicas compare snapshot digests
    (iterate dicts in sorted order; never pickle). Returning a single
    ``bytes`` object is accepted as one chunk, for small states. The
    iterable must not be affected by ``apply`` calls: the node consumes it
    completely before it applies anything else.

``restore_from_snapshot(chunks: Iterable[bytes]) -> None``
    Replace the whole state with the snapshot whose bytes are the
    concatenation of ``chunks``, and set ``applied_index`` to the index it
    was taken at. Chunk boundaries carry no meaning (they are the store's or
    the transport's, not the ones ``snapshot_chunks`` produced), and the
    iterable may be a one-shot iterator streamed from disk: read it once, in
    order. Embedded and Streaming transfer call it the same way. If the bytes
    are not a valid snapshot, raise (any ``Exception``) and keep the old
    state: the node then refuses to install the snapshot. raftsim calls it
    on a fresh machine from the factory, but a machine must not rely on that.

``digest() -> str``
    A short text identifying the current state; equal states give equal
    digests on every node. Used to compare replicas at the end of a run, and
    by the conformance kit. ``"blake3:" + hex`` (or ``"sha256:"``) of the snapshot bytes is the
    usual choice (hash the chunks as they are produced; do not join them).

The smallest useful machine (JSON, a few lines, passes the kit)::

    class Counter:
        def __init__(self):
            self.applied_index, self.value = 0, 0

        def apply(self, index, command):
            self.applied_index = index
            if command != b"inc":
                return "error: expected b'inc'"
            self.value += 1
            return str(self.value)

        def snapshot_chunks(self, index):
            yield json.dumps({"index": index, "value": self.value}).encode()

        def restore_from_snapshot(self, chunks):
            state = json.loads(b"".join(chunks))
            self.applied_index, self.value = state["index"], state["value"]

        def digest(self):
            return f"counter:{self.value}"

Rules of thumb for very large states (the 10 GiB case): produce chunks
lazily from the live structures (never build the encoding first), keep each
chunk bounded, and restore by parsing the chunk stream incrementally
(:class:`simulator.machines.codec.Reader` accepts an iterable of chunks and
holds only the field being read). The node never joins the chunks when it
has a snapshot store; without one (``Embedded`` mode keeps snapshot data in
the Raft storage, as the seed does) the data is held in memory by design.

SnapshotStore: where snapshot bytes live
========================================

The store protocol, its writer and its recovery rule are defined in
:mod:`simulator.snapshots.protocol` and re-exported here and from
``simulator``: :class:`SnapshotStore`, and :class:`ResumableWriter`, what
``open_writer`` returns (the resumable receiving side of a transfer; the
built-in :class:`SnapshotWriter` is one). A store written from scratch
implements both, with no raftsim base class; ``reopened()`` is how a store
declares what survives a restart of its process, and the cluster calls it
for every store when a node restarts. ``save_snapshot`` receives the chunks
of ``StateMachine.snapshot_chunks`` as a generator: write them as they come.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from ..snapshots import ResumableWriter, SnapshotStore, SnapshotWriter

__all__ = ["ResumableWriter", "SnapshotStore", "SnapshotWriter", "StateMachine", "snapshot_chunks_of"]


@runtime_checkable
class StateMachine(Protocol):
    """What a node needs from the application it replicates; see the module docstring."""

    applied_index: int

    def apply(self, index: int, command: bytes) -> object: ...

    def snapshot_chunks(self, index: int) -> Iterable[bytes]: ...

    def restore_from_snapshot(self, chunks: Iterable[bytes]) -> None: ...

    def digest(self) -> str: ...


def snapshot_chunks_of(machine: StateMachine, index: int) -> Iterator[bytes]:
    """The chunks of ``machine``'s snapshot at ``index``, type-checked as they are consumed.

    A ``bytes`` result is one chunk; anything else must be an iterable of
    bytes-like chunks. A wrong type raises ``TypeError`` naming the machine and
    the chunk, instead of failing deep inside a store.
    """
    produced = machine.snapshot_chunks(index)
    name = type(machine).__name__
    if isinstance(produced, (bytes, bytearray, memoryview)):
        yield bytes(produced)
        return
    if isinstance(produced, str) or not isinstance(produced, Iterable):
        raise TypeError(
            f"{name}.snapshot_chunks must return an iterable of bytes chunks, got {type(produced).__name__}"
        )
    for number, chunk in enumerate(produced):
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"{name}.snapshot_chunks chunk {number} must be bytes, got {type(chunk).__name__}"
            )
        yield chunk
