"""Disk faults as fault-program steps, in the style of TigerBeetle's storage simulator.

Each step arms one fault in a node's file layer (:class:`~simulator.snapshots.disk_io.FaultyDisk`,
put under the node's :class:`~simulator.snapshots.DiskSnapshotStore` the first
time a step needs it). The fault then hits the store's next matching
operation, whenever the run gets there: which fault, on which node and when is
decided by the program alone, so a run replays byte for byte. Every step does
nothing on stores that are not on disk, and on a node that is down (one-shot
faults are aimed at a running node's next operations).

What catches each fault, and how the node recovers, is in
``docs/disk_faults.md``; :func:`heal_disks` clears them all for the liveness phase.
"""

from __future__ import annotations

import attrs

from ..snapshots import DiskSnapshotStore
from ..snapshots.disk_io import DISK_OPS, FaultyDisk


def faulty_disk(run, node: int) -> FaultyDisk | None:
    """``node``'s faulty file layer, put in place if needed; ``None`` if it has no disk store."""
    cluster = run.cluster
    if node not in cluster.node_ids:
        return None
    store = cluster.store(node)
    if not isinstance(store, DiskSnapshotStore):
        return None
    if not isinstance(store.files, FaultyDisk):
        store.files = FaultyDisk(name=f"n{node}'s disk")
    return store.files


def _running_disk(run, node: int) -> FaultyDisk | None:
    if not run.is_member(node) or not run.cluster.is_up(node):
        return None
    return faulty_disk(run, node)


@attrs.frozen
class FillDisk:
    """``node``'s disk is full: every write fails with ENOSPC until :class:`FreeDisk` (or the end)."""

    node: int

    async def apply(self, run) -> None:
        disk = _running_disk(run, self.node)
        if disk is not None and not disk.full:
            disk.fill()
            run.say(f"n{self.node}'s disk is full: its writes fail with ENOSPC until room is made")


@attrs.frozen
class FreeDisk:
    """Room is made on ``node``'s disk again."""

    node: int

    async def apply(self, run) -> None:
        disk = faulty_disk(run, self.node)
        if disk is not None and disk.full:
            disk.make_room()
            run.say(f"n{self.node}'s disk has room again")


@attrs.frozen
class DiskError:
    """``node``'s disk fails its next ``op`` (read, write or fsync) with EIO."""

    node: int
    op: str = "write"

    def __attrs_post_init__(self) -> None:
        if self.op not in DISK_OPS:
            raise ValueError(f"op must be one of {', '.join(DISK_OPS)}, got {self.op!r}")

    async def apply(self, run) -> None:
        disk = _running_disk(run, self.node)
        if disk is not None:
            disk.fail(self.op)
            run.say(f"n{self.node}'s disk will fail its next {self.op} with EIO (an I/O error)")


@attrs.frozen
class FlipBitOnRead:
    """The next read of snapshot data on ``node`` returns one bit flipped (the bytes on disk stay right)."""

    node: int

    async def apply(self, run) -> None:
        disk = _running_disk(run, self.node)
        if disk is not None:
            disk.flip_bit_on_read()
            run.say(f"n{self.node}'s disk will flip one bit in its next read of snapshot data")


@attrs.frozen
class MisdirectedWrite:
    """The next write of snapshot data on ``node`` lands one write's length away from its place."""

    node: int

    async def apply(self, run) -> None:
        disk = _running_disk(run, self.node)
        if disk is not None:
            disk.misdirect_write()
            run.say(f"n{self.node}'s disk will put its next write of snapshot data in the wrong place")


@attrs.frozen
class LostFsync:
    """From now until ``node`` crashes, its fsyncs succeed without reaching the disk; the crash
    loses every write since (``torn``: the last of them lands half-way).

    One lying disk at a time: the step does nothing while another member's disk lies or
    another member still waits for the snapshot its disk lost. Raft assumes durable storage;
    lying disks on a majority can lose what they acknowledged (the documented limit).
    """

    node: int
    torn: bool = False

    async def apply(self, run) -> None:
        cluster = run.cluster
        for other in run.members():
            if other == self.node:
                continue
            store = cluster.store(other)
            if isinstance(getattr(store, "files", None), FaultyDisk) and store.files.lying:
                return
            if getattr(cluster.runners[other], "snapshot_wait", None) is not None:
                return
        disk = _running_disk(run, self.node)
        if disk is not None and not disk.lying:
            disk.lose_fsyncs(cluster.store(self.node).snapshot_dir, torn=self.torn)
            torn = ", and the last write before it is torn" if self.torn else ""
            run.say(f"n{self.node}'s disk acknowledges fsyncs without making anything durable: "
                    f"its next crash loses every write from now on{torn}")


#: Every disk-fault step, for the search's and the swarm's vocabularies.
DISK_STEPS = (FillDisk, FreeDisk, DiskError, FlipBitOnRead, MisdirectedWrite, LostFsync)


def heal_disks(run) -> None:
    """The liveness phase: every armed disk fault is cleared (lying disks stay lying until a crash)."""
    for node in run.cluster.node_ids:
        store = run.cluster.store(node)
        files = getattr(store, "files", None)
        if isinstance(files, FaultyDisk):
            files.heal()
