"""A fault-program step that damages a crashed node's snapshot files before it restarts.

Disks lose and corrupt files; a node must notice when it restarts (see
:mod:`simulator.cluster.restart`) rather than diverge silently. The property
search draws :class:`DamageStore` between a ``Crash`` and a ``Restart`` so
that it keeps hunting for that class of defect (issue 15).
"""

from __future__ import annotations

import os

import attrs

from ..snapshots import DiskSnapshotStore
from ..snapshots.files import BIN, META, file_name, parse_name

#: What can happen to the newest snapshot's files.
DAMAGES = ("delete_metadata", "delete_data", "truncate_data", "flip_byte")


@attrs.frozen
class DamageStore:
    """While ``node`` is down, its newest snapshot on disk suffers ``how`` (one of :data:`DAMAGES`).

    Does nothing unless the node is a crashed member whose store is a
    ``DiskSnapshotStore`` holding a snapshot (file damage needs files).
    """

    node: int
    how: str = "delete_metadata"

    def __attrs_post_init__(self) -> None:
        if self.how not in DAMAGES:
            raise ValueError(f"damage must be one of {', '.join(DAMAGES)}, got {self.how!r}")

    async def apply(self, run) -> None:
        cluster = run.cluster
        if not run.is_member(self.node) or cluster.is_up(self.node):
            return
        store = cluster.store(self.node)
        if not isinstance(store, DiskSnapshotStore):
            return
        directory = store.snapshot_dir
        indexes = [parsed[0] for name in os.listdir(directory)
                   if (parsed := parse_name(name)) is not None and parsed[1] == META]
        if not indexes:
            return
        index = max(indexes)
        meta, data = directory / file_name(index, META), directory / file_name(index, BIN)
        if self.how == "delete_metadata":
            meta.unlink()
        elif not data.exists():
            return
        elif self.how == "delete_data":
            data.unlink()
        elif self.how == "truncate_data":
            with open(data, "r+b") as file:
                file.truncate(data.stat().st_size // 2)
        else:
            raw = bytearray(data.read_bytes())
            if not raw:
                return
            raw[len(raw) // 2] ^= 0x01
            data.write_bytes(bytes(raw))
        run.say(f"n{self.node}'s snapshot {index} on disk: {self.how.replace('_', ' ')}")
