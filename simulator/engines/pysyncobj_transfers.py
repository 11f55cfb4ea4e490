"""pysyncobj's in-band snapshot transfers, as raftsim's progress view and summary count them.

pysyncobj sends a snapshot as ``append_entries`` messages whose ``serialized``
field is ``(piece, is_first, is_last)``: 64 KiB pieces of its gzipped
pickle, with no acknowledgement per piece, started from the first piece
again whenever the leader begins anew (a new leader, a broken connection,
a newer snapshot). Everything sent to bring one node up to date by
snapshot, until it installs one, is one transfer here: a start from the
first piece while it is in progress is a retry, and bytes sent again at
offsets already sent count as re-sent, as for native transfers.

Piece faults (:class:`PieceFault`, armed with ``PysyncobjCluster.fail_piece``)
are pysyncobj's counterpart of the native chunk faults: they act right
after piece ``k`` is handed to the wire, which is where pysyncobj's own
transport would write it.
"""

from __future__ import annotations

import attrs

from transports.streaming import TransferRegistry
from transports.streaming.protocol import Outcome

from . import pysyncobj_adapter as adapter
from .pysyncobj_adapter import PysyncobjMessage

#: What a piece fault does right after piece k is sent.
PIECE_ACTIONS = ("cut", "crash_sender")


@attrs.frozen
class PieceFault:
    """After piece ``k`` (1 for the first piece sent after the fault was armed) to ``to`` (any node if
    ``None``): ``cut`` the link both ways for ``cut_for`` seconds (the pieces after k are lost), or
    ``crash_sender`` (it sends nothing more: pysyncobj would send every later piece in the same call).
    Fires once."""

    k: int
    action: str
    to: int | None = None
    cut_for: float = 1.0

    def __attrs_post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"piece numbers start at 1, got k={self.k}")
        if self.action not in PIECE_ACTIONS:
            raise ValueError(f"unknown piece fault {self.action!r}; expected one of {', '.join(PIECE_ACTIONS)}")
        if not self.cut_for > 0:
            raise ValueError(f"a cut needs cut_for > 0 seconds, got {self.cut_for}")


class PysyncobjTransfers:
    """Feeds a :class:`TransferRegistry` from the pieces pysyncobj sends and delivers."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.registry = TransferRegistry()
        self._episode: dict[int, int] = {}  # receiver -> transfers it completed
        self._send_offset: dict[tuple[int, int], int] = {}
        self._receive_offset: dict[int, int] = {}
        self._faults: list[list] = []  # [fault, pieces seen]; removed once fired
        self._silenced: dict[int, str] = {}  # sender -> why its messages are lost until it crashes

    def _id(self, to: int) -> str:
        return f"pysyncobj-n{to}-{self._episode.get(to, 0)}"

    def send(self, message: PysyncobjMessage) -> None:
        """The wire pysyncobj's transport writes to: count, then hand to raftsim's transport."""
        silenced = self._silenced.get(message.from_)
        if silenced is not None:
            self.cluster.trace.on_drop(message, silenced)
            return
        piece = message.snapshot_piece
        if piece is not None:
            self._sent(message, piece)
        self.cluster.transport.send(message)
        if piece is not None and self._faults:
            self._piece_sent(message)

    def add_fault(self, fault: PieceFault) -> None:
        self._faults.append([fault, 0])

    def _piece_sent(self, message: PysyncobjMessage) -> None:
        for armed in list(self._faults):
            fault = armed[0]
            if fault.to is not None and fault.to != message.to:
                continue
            armed[1] += 1
            if armed[1] == fault.k:
                self._faults.remove(armed)
                self._fire(fault, message.from_, message.to)

    def _fire(self, fault: PieceFault, sender: int, receiver: int) -> None:
        cluster, reason = self.cluster, f"{fault.action} after piece {fault.k}"
        cluster.piece_fault_event("piece_fault", src=sender, to=receiver, k=fault.k, action=fault.action)
        if fault.action == "cut":
            for src, dst in ((sender, receiver), (receiver, sender)):
                cluster.transport.block(src, dst)

            def mend() -> None:
                for src, dst in ((sender, receiver), (receiver, sender)):
                    cluster.transport.unblock(src, dst)
                cluster.piece_fault_event("piece_cut_mended", src=sender, to=receiver)

            cluster.at(cluster.now() + fault.cut_for, mend)
            return
        # Not inside the sender's own call into pysyncobj: right after it, silent meanwhile.
        self._silenced[sender] = reason

        def crash_now() -> None:
            del self._silenced[sender]
            if cluster.is_up(sender):
                cluster.crash(sender)

        cluster.at(cluster.now(), crash_now)

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


__all__ = ["PIECE_ACTIONS", "PieceFault", "PysyncobjTransfers"]
