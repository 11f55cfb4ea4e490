"""A user's own system, as the search tests import it (top-level objects with dotted paths)."""

from __future__ import annotations

import json
import tempfile

from hypothesis import strategies as st

from simulator import DiskSnapshotStore


class GoodCounter:
    def __init__(self):
        self.applied_index, self.total, self.adds = 0, 0, 0

    def apply(self, index, command):
        self.applied_index = index
        try:
            amount = int(command.split()[1])
        except (IndexError, ValueError):
            return "error: expected b'add N'"
        self.total, self.adds = self.total + amount, self.adds + 1
        return str(self.total)

    def snapshot_chunks(self, index):
        yield json.dumps([index, self.total, self.adds]).encode()

    def restore_from_snapshot(self, chunks):
        self.applied_index, self.total, self.adds = json.loads(b"".join(chunks))

    def digest(self):
        return f"{self.total}/{self.adds}"


COMMANDS = st.integers(1, 9).map(lambda n: b"add %d" % n)
STORES_MADE: list[int] = []


def disk_store(node_id: int) -> DiskSnapshotStore:
    STORES_MADE.append(node_id)
    return DiskSnapshotStore(tempfile.mkdtemp(prefix=f"raftsim-user-store-{node_id}-"), chunk_size=64, durable=False)


def totals_agree(cluster) -> None:
    """Every up member that applied the same index holds the same total."""
    seen = {}
    for node_id in cluster.up_nodes():
        machine = cluster.state_machine(node_id)
        seen.setdefault(machine.applied_index, set()).add(machine.total)
    assert all(len(totals) == 1 for totals in seen.values()), f"totals differ: {seen}"


def total_below_40(cluster) -> None:
    for node_id in cluster.up_nodes():
        total = cluster.state_machine(node_id).total
        assert total < 40, f"node {node_id} counted to {total}"
