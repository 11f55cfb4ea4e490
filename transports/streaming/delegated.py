"""Delegated snapshots: a follower near the receiver sends on the leader's behalf (CockroachDB).

CockroachDB (v23.1 on; cockroachdb/cockroach#83991 "kv: enable delegate
snapshots"; the v23.1 docs, "Delegated snapshots") has the leader pick a
follower close to the recipient to send a snapshot; the follower checks it
can send a snapshot valid for the recipient, and if it cannot, or does not
get on with it quickly, the attempt is abandoned and the leader sends it.

Here, when a transfer starts the receiver asks its host who should send
(``StreamHost.delegate_for``: the cluster picks the nearest node holding the
very snapshot offered, or nobody, see :mod:`simulator.cluster.delegation`)
and requests the data from that node instead of the leader, telling the
leader (an acknowledgement at offset 0) so that it does not count its offer
as unanswered. The delegate serves the request from its own store, with
the mode's rate limit and send concurrency. If the delegate makes no
progress for one idle period, the receiver falls back to the leader (and,
under ``resume="from_zero"``, starts over). The leader's Raft learns of the
install from the receiver's reply to the offer it installed, as usual.
"""

from __future__ import annotations

from simulator.raft import Message

from .endpoint import StreamingEndpoint
from .messages import SnapshotAck
from .protocol import IncomingTransfer
from .timers import TIME_EPSILON, StreamTimer


class DelegatingEndpoint(StreamingEndpoint):
    """A streaming endpoint whose transfers may be sent by a delegate; see the module docstring."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._delegates: dict[str, int | None] = {}  # snapshot id -> who sends it (None: the leader)

    # -- the receiver ---------------------------------------------------------------

    def _leader(self) -> int:
        return self._offer_message.from_

    def _delegated(self, transfer: IncomingTransfer) -> bool:
        delegate = self._delegates.get(transfer.offer.snapshot_id)
        return delegate is not None and transfer.offer.source == delegate

    def _request(self, transfer: IncomingTransfer, *, fresh: bool = False) -> None:
        snapshot_id = transfer.offer.snapshot_id
        if snapshot_id not in self._delegates:
            leader = transfer.offer.source
            delegate = self.host.delegate_for(snapshot_id, leader)
            self._delegates[snapshot_id] = delegate
            if delegate is not None:
                transfer.change_source(delegate)
                self.host.event("transfer_delegated", leader=leader, delegate=delegate,
                                index=transfer.offer.index)
                self.host.send(SnapshotAck(from_=self.node_id, to=leader, snapshot_id=snapshot_id, offset=0))
        super()._request(transfer, fresh=fresh)

    def on_offer(self, message: Message) -> None:
        active = self.incoming
        if (active is not None and self._delegated(active)
                and active.offer.snapshot_id == message.snapshot.metadata.snapshot_id):
            self._offer_message = message  # the leader's offer, installed at the end
            return  # its delegate is sending it; the fallback is the idle timer's to decide
        super().on_offer(message)

    def _on_receive_idle(self, timer: StreamTimer) -> None:
        transfer = self.incoming
        if (transfer is not None and timer.generation == self._generation and self._delegated(transfer)
                and self.host.now() - transfer.idle_since() >= self._patience(transfer) - TIME_EPSILON):
            delegate, leader = transfer.offer.source, self._leader()
            self._delegates[transfer.offer.snapshot_id] = None
            transfer.change_source(leader)
            self.host.event("transfer_resumed", source=leader, index=transfer.offer.index,
                            offset=transfer.verified_offset,
                            reason=f"delegate n{delegate} made no progress: the leader sends it")
        super()._on_receive_idle(timer)

    def _finish_incoming(self, outcome, reason: str) -> None:
        snapshot_id = self.incoming.offer.snapshot_id
        super()._finish_incoming(outcome, reason)
        self._delegates.pop(snapshot_id, None)  # a later offer of it chooses again

    # -- the leader -------------------------------------------------------------------

    def on_ack(self, ack: SnapshotAck) -> None:
        if ack.from_ not in self.outgoing and self._offers.get(ack.from_) == ack.snapshot_id:
            del self._offers[ack.from_]  # delegated: our offer is answered, a follower sends
            return
        super().on_ack(ack)
