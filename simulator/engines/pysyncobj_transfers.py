"""pysyncobj's in-band snapshot transfers, as raftsim's progress view and summary count them.

pysyncobj sends a snapshot as ``append_entries`` messages whose ``serialized``
field is ``(piece, is_first, is_last)``: 64 KiB pieces of its gzipped
pickle, with no acknowledgement per piece, started from the first piece
again whenever the leader begins anew (a new leader, a broken connection,
a newer snapshot). Everything sent to bring one node up to date by
snapshot, until it installs one, is one transfer here: a start from the
first piece while it is in progress is a retry, and bytes sent again at
offsets already sent count as re-sent, as for native transfers.
"""

from __future__ import annotations

from transports.streaming import TransferRegistry
from transports.streaming.protocol import Outcome

from . import pysyncobj_adapter as adapter
from .pysyncobj_adapter import PysyncobjMessage


class PysyncobjTransfers:
    """Feeds a :class:`TransferRegistry` from the pieces pysyncobj sends and delivers."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.registry = TransferRegistry()
        self._episode: dict[int, int] = {}  # receiver -> transfers it completed
        self._send_offset: dict[tuple[int, int], int] = {}
        self._receive_offset: dict[int, int] = {}

    def _id(self, to: int) -> str:
        return f"pysyncobj-n{to}-{self._episode.get(to, 0)}"

    def send(self, message: PysyncobjMessage) -> None:
        """The wire pysyncobj's transport writes to: count, then hand to raftsim's transport."""
        piece = message.snapshot_piece
        if piece is not None:
            self._sent(message, piece)
        self.cluster.transport.send(message)

    def _sent(self, message: PysyncobjMessage, piece) -> None:
        data, is_first, _ = piece
        now = self.cluster.transport.current_time()
        to, snapshot_id = message.to, self._id(message.to)
        if is_first:
            sender = self.cluster.runners[message.from_].syncobj
            index, size = adapter.snapshot_index(sender), adapter.own_snapshot_bytes(sender)
            record = self.registry.get(to, snapshot_id)
            restarting = record is not None and record.outcome is Outcome.IN_PROGRESS
            record = self.registry.start(from_=message.from_, to=to, snapshot_index=index,
                                         snapshot_id=snapshot_id, mode="pysyncobj", size=size, now=now)
            record.snapshot_index, record.size = index, size
            if restarting:
                record.retries += 1
            self._send_offset[(message.from_, to)] = 0
            self.cluster.trace.node_event(message.from_, "snapshot_sent", to=to, index=index, size=size,
                                          mode="pysyncobj", restart=restarting)
        offset = self._send_offset.get((message.from_, to), 0)
        self.registry.sent(to, snapshot_id, offset, len(data), now)
        self._send_offset[(message.from_, to)] = offset + len(data)

    def delivered(self, message: PysyncobjMessage) -> None:
        piece = message.snapshot_piece
        if piece is None:
            return
        data, is_first, _ = piece
        received = 0 if is_first else self._receive_offset.get(message.to, 0)
        received += len(data)
        self._receive_offset[message.to] = received
        record = self.registry.get(message.to, self._id(message.to))
        if record is not None and record.outcome is Outcome.IN_PROGRESS:
            record.bytes_done = min(received, record.size)
            record.updated_at = self.cluster.transport.current_time()

    def installed(self, node_id: int, index: int) -> int:
        """``node_id`` loaded a snapshot at ``index``; returns its size."""
        record = self.registry.get(node_id, self._id(node_id))
        if record is None:
            return 0
        record.outcome = Outcome.INSTALLED
        record.bytes_done = record.size
        record.snapshot_index = index
        record.updated_at = self.cluster.transport.current_time()
        self._episode[node_id] = self._episode.get(node_id, 0) + 1
        return record.size

    def progress(self):
        return self.registry.progress()


__all__ = ["PysyncobjTransfers"]
