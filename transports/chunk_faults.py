"""Faults addressed to snapshot streams: do something to chunk k.

A :class:`ChunkFault` names a chunk by its number ``k`` (1 for the first
chunk sent after the fault was added), optionally only chunks going to one
receiver, and what happens to it:

==================  ========================================================
``drop``            chunk k is lost
``duplicate``       chunk k arrives twice
``corrupt``         one byte of chunk k is flipped (its checksum no longer
                    matches)
``corrupt_source``  one byte of chunk k is flipped before its checksum is
                    computed, as a bad read of the sender's store would do:
                    the chunk passes its checksum, and only the digest of
                    the whole snapshot shows that it is wrong
``delay``           chunk k arrives ``delay`` seconds late
``cut``             the stream is cut after chunk k: later chunks are lost
                    until the receiver asks again (its next request)
``crash_sender``    the sender crashes right after sending chunk k
``crash_receiver``  the receiver crashes right after chunk k is sent
==================  ========================================================

Each fault fires once. Crashes are carried out by the cluster (the
transport only reports them through ``on_crash``), after the current
instant's deliveries, optionally followed by a restart.
"""

from __future__ import annotations

import attrs

from .streaming.messages import SnapshotChunk, SnapshotRequest, chunk_checksum

ACTIONS = ("drop", "duplicate", "corrupt", "corrupt_source", "delay", "cut", "crash_sender", "crash_receiver")


@attrs.frozen
class ChunkFault:
    k: int
    action: str
    to: int | None = None
    delay: float = 0.0
    restart_after: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"chunk numbers start at 1, got k={self.k}")
        if self.action not in ACTIONS:
            raise ValueError(f"unknown chunk fault {self.action!r}; expected one of {', '.join(ACTIONS)}")
        if self.action == "delay" and not self.delay > 0:
            raise ValueError(f"a delay fault needs delay > 0 seconds, got {self.delay}")


@attrs.define(eq=False)
class _Armed:
    fault: ChunkFault
    seen: int = 0
    cutting: tuple[int, int] | None = None  # (sender, receiver) while the cut lasts
    done: bool = False


@attrs.frozen
class ChunkVerdict:
    """What the transport does with one chunk: send these copies (with extra delays)."""

    copies: tuple[tuple[SnapshotChunk, float], ...]
    crash: tuple[tuple[int, float | None], ...] = ()  # (node, restart_after)
    reason: str = ""


class ChunkFaults:
    """The armed chunk faults of one transport."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def add(self, fault: ChunkFault) -> None:
        self._armed.append(_Armed(fault))

    def clear(self) -> None:
        """Disarm every fault, and make a cut stream whole again."""
        self._armed.clear()

    def __bool__(self) -> bool:
        return any(not armed.done or armed.cutting for armed in self._armed)

    def on_request(self, request: SnapshotRequest) -> None:
        """The receiver asked again: a cut stream is whole again."""
        for armed in self._armed:
            if armed.cutting == (request.to, request.from_):
                armed.cutting = None

    def on_chunk(self, chunk: SnapshotChunk) -> ChunkVerdict:
        copies = [(chunk, 0.0)]
        crashes = []
        reasons = []
        lost = False
        # Every armed fault sees every chunk, even one another fault loses: chunk k
        # is the k-th chunk *sent*, whatever became of the ones before.
        for armed in self._armed:
            if armed.cutting == (chunk.from_, chunk.to):
                lost = True
                reasons.append("stream cut")
            fault = armed.fault
            if armed.done or (fault.to is not None and fault.to != chunk.to):
                continue
            armed.seen += 1
            if armed.seen != fault.k:
                continue
            armed.done = True
            action = fault.action
            reasons.append(f"{action} chunk {fault.k}")
            if action == "drop":
                lost = True
            elif action == "duplicate":
                copies.append((copies[0][0], 0.0))
            elif action == "corrupt":
                copies = [(_flip_a_byte(copy), delay) for copy, delay in copies]
            elif action == "corrupt_source":
                copies = [(_flip_a_byte(copy, recompute_checksum=True), delay) for copy, delay in copies]
            elif action == "delay":
                copies = [(copy, delay + fault.delay) for copy, delay in copies]
            elif action == "cut":
                armed.cutting = (chunk.from_, chunk.to)
            elif action == "crash_sender":
                crashes.append((chunk.from_, fault.restart_after))
            else:
                crashes.append((chunk.to, fault.restart_after))
        return ChunkVerdict(() if lost else tuple(copies), tuple(crashes), "; ".join(reasons))


def _flip_a_byte(chunk: SnapshotChunk, *, recompute_checksum: bool = False) -> SnapshotChunk:
    if not chunk.data:
        return attrs.evolve(chunk, checksum=chunk.checksum ^ 1)
    data = bytearray(chunk.data)
    middle = len(data) // 2
    data[middle] ^= 0xFF
    if recompute_checksum:
        return attrs.evolve(chunk, data=bytes(data), checksum=chunk_checksum(data))
    return attrs.evolve(chunk, data=bytes(data))
