"""Coverage goals for the snapshot path: did a run reach the rare moments we want tested?

A sweep that never resumes a transfer part way, never changes leader while
bytes are in flight, and never sees a store fail in the middle of a read has
not tested those paths, however many seeds it ran. Each goal here is a
predicate over one run's trace (event counts, read after the run, so goals
cost nothing while it runs); :func:`goals_reached` names those a run
reached, and a sweep reports how often each was reached.

The goals read only trace events, never the cluster's internals, so they
work on a recorded JSONL trace too (``raftsim run --trace``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: Event kinds that end a receiver's transfer (``transfer_installed``, ``transfer_failed``...).
_RECEIVER_ENDS = ("transfer_installed", "transfer_failed", "transfer_abandoned", "transfer_superseded",
                  "snapshot_installed")


def _fields(record) -> dict:
    return dict(record.fields)


def _transfer_started(records) -> bool:
    return any(record.kind in ("transfer_started", "snapshot_sent") for record in records)


def _resumed_past_zero(records) -> bool:
    """A receiver asked again from a verified offset > 0 (resume at chunk k > 0)."""
    for record in records:
        if record.kind in ("transfer_retry", "transfer_resumed") and _fields(record).get("offset", 0) > 0:
            return True
    return False


def _leader_changed_mid_transfer(records) -> bool:
    """Some node became leader while a streamed transfer was open at a receiver."""
    open_at: set[int] = set()
    for record in records:
        if record.kind == "transfer_started":
            open_at.add(record.node)
        elif record.kind in _RECEIVER_ENDS or record.kind == "start":
            open_at.discard(record.node)  # a restart forgets what it was receiving
        elif record.kind == "role" and _fields(record).get("role") == "leader" and open_at:
            return True
    return False


def _store_failed_mid_read(records) -> bool:
    """A sender's store failed a chunk read after the receiver had verified chunks of that snapshot."""
    progressed: set[int] = set()  # snapshot indexes of which some chunk arrived
    for record in records:
        fields = _fields(record)
        if record.kind == "transfer_progress":
            progressed.add(fields.get("index"))
        elif record.kind == "transfer_failed":
            reason = str(fields.get("reason", ""))
            if "cannot read snapshot" in reason and any(f"snapshot {index}" in reason for index in progressed):
                return True
    return False


def _retried_then_installed(records) -> bool:
    retried = False
    for record in records:
        if record.kind == "transfer_retry":
            retried = True
        elif record.kind == "transfer_installed" and retried:
            return True
    return False


def _corrupt_chunk_caught(records) -> bool:
    return any(record.kind in ("chunk_rejected", "transfer_digest_mismatch") for record in records)


def _joined_by_snapshot(records) -> bool:
    """A node added to the cluster caught up through a snapshot."""
    added: set[int] = set()
    for record in records:
        if record.kind == "node_added":
            added.add(_fields(record).get("node_id"))
        elif record.kind == "snapshot_installed" and record.node in added:
            return True
    return False


def _compaction_during_transfer(records) -> bool:
    """A sender compacted (made a newer snapshot) while one of its transfers was open."""
    sending: dict[int, int] = {}  # sender -> open transfers
    for record in records:
        fields = _fields(record)
        if record.kind == "snapshot_sent" and fields.get("mode") == "streaming":
            sending[record.node] = sending.get(record.node, 0) + 1
        elif record.kind in ("transfer_sent", "transfer_failed") and record.node in sending:
            sending[record.node] = max(0, sending[record.node] - 1)
        elif record.kind == "compaction" and sending.get(record.node):
            return True
    return False


#: name -> predicate over a run's trace records. Names are what reports show.
GOALS: dict[str, Callable[[list], bool]] = {
    "snapshot transfer started": _transfer_started,
    "resumed at chunk k > 0": _resumed_past_zero,
    "leader changed mid-transfer": _leader_changed_mid_transfer,
    "store failed mid-read": _store_failed_mid_read,
    "transfer retried, then installed": _retried_then_installed,
    "corrupt chunk or digest caught": _corrupt_chunk_caught,
    "joining node caught up by snapshot": _joined_by_snapshot,
    "compaction during an outgoing transfer": _compaction_during_transfer,
}


def goals_reached(records: Iterable) -> tuple[str, ...]:
    """Names of the :data:`GOALS` this run's trace reaches, in :data:`GOALS` order."""
    records = list(records)
    return tuple(name for name, reached in GOALS.items() if reached(records))
