"""Follower pull from the leader over the cluster's links: Kafka KRaft's ``FetchSnapshot`` (KIP-630).

In KRaft the leader never pushes a snapshot. A follower whose fetch falls
below the leader's log start learns the snapshot's id and then asks for it,
one ``FetchSnapshot`` request at a time, each naming the byte ``Position`` it
has written so far; each response carries the bytes from that position on,
at most ``MaxBytes`` of them, and the follower asks again until it has
``Size`` bytes. What this module takes from Kafka (``raft/.../KafkaRaftClient.java``,
``FollowerState.java``, ``QuorumConfig.java``, ``FetchSnapshotRequest.json``):

- **How much one response carries.** The follower's request sets no
  ``MaxBytes``, so the schema's default, ``0x7fffffff``, applies, and the
  leader answers with ``snapshot.slice(position, min(maxBytes, size))``: the
  whole rest of the snapshot in one response (``FETCH_MAX_BYTES`` here; the
  mode's ``max_bytes`` stands for ``MaxBytes``, so smaller ones can be tried).
- **How long the follower waits for it.** An ordinary request with
  ``controller.quorum.request.timeout.ms`` = 2000 ms; a response not in by
  then is abandoned (the network client drops the connection: what was on the
  wire stops flowing, which the in-memory transport models by cutting the
  response at that deadline) and asked again after
  ``controller.quorum.retry.backoff.ms`` = 20 ms, from the same position.
  The timeout does not scale with the response's size: a rest of the snapshot
  the link cannot carry in 2 s never arrives, however often it is asked for.
- **Position.** Resuming from the written position is the design; a
  response whose position is not what the follower holds is an
  ``IllegalStateException`` in Kafka, which cannot happen here because only
  the answer to the outstanding request is read.
- **Leader change.** The partial snapshot lives in the follower's
  ``FollowerState``; a new leader means a new state, whose predecessor closes
  the unfinished writer (deleting the partial): the fetch starts again at 0.
  So does a restart (a partial snapshot file is not kept) and a leader that
  no longer holds the snapshot (``SNAPSHOT_NOT_FOUND``).

Not modelled: the election a voter starts when it has had no successful
fetch for ``controller.quorum.fetch.timeout.ms`` (2 s); the newcomers of
raftsim's scenarios are learners (KRaft's observers), which never start one.

The leader's side is :class:`~.sending.SnapshotSending` with one response in
flight per request: it sends only when asked, never on an acknowledgement.
"""

from __future__ import annotations

from simulator.raft import Message

from .endpoint import StreamingEndpoint
from .messages import SnapshotAck, SnapshotChunk
from .protocol import IncomingTransfer
from .timers import StreamTimer

#: ``MaxBytes``' default in ``FetchSnapshotRequest.json`` (the follower sets none).
FETCH_MAX_BYTES = 0x7FFFFFFF
#: ``controller.quorum.request.timeout.ms`` default, in seconds.
REQUEST_TIMEOUT = 2.0
#: ``controller.quorum.retry.backoff.ms`` default, in seconds.
RETRY_BACKOFF = 0.02


class FetchSnapshotEndpoint(StreamingEndpoint):
    """A node's end of KRaft-style snapshot fetching; see the module docstring."""

    # -- the follower ---------------------------------------------------------------

    def on_offer(self, message: Message) -> None:
        active = self.incoming
        metadata = message.snapshot.metadata
        if (active is not None and active.offer.snapshot_id == metadata.snapshot_id
                and active.offer.source != message.from_):
            # A new leader: a new FollowerState, and the old one's partial is closed, deleted.
            self._offer_message = message
            if active.verified_offset:
                self._start_over(active)
            active.change_source(message.from_)
            self._request(active, fresh=True)
            return
        super().on_offer(message)

    def _discards_partials(self) -> bool:
        return True  # an unfinished snapshot file does not survive a restart

    def _patience(self, transfer: IncomingTransfer) -> float:
        return self.mode.request_timeout  # fixed: it does not grow with the response

    def _on_receive_idle(self, timer: StreamTimer) -> None:
        transfer = self.incoming
        if transfer is None or timer.generation != self._generation:
            return
        # The response did not arrive within the request timeout; the transport cut it off.
        self._idle_retries += 1
        transfer.retries += 1
        record = self.registry.get(self.node_id, transfer.offer.snapshot_id)
        if record is not None:
            record.retries += 1
        self.host.event("transfer_retry", source=transfer.offer.source, index=transfer.offer.index,
                        offset=transfer.verified_offset, attempt=self._idle_retries)
        self._generation += 1
        self.host.schedule(self.mode.retry_backoff, StreamTimer(
            "fetch_retry", transfer.offer.source, transfer.offer.snapshot_id, self._generation))

    def on_chunk(self, chunk: SnapshotChunk) -> None:
        transfer = self.incoming
        before = transfer.verified_offset if transfer is not None else None
        super().on_chunk(chunk)
        if (transfer is not None and self.incoming is transfer and not transfer.complete
                and transfer.verified_offset != before):
            self._send_request(transfer)  # the next FetchSnapshot, from the new position

    def on_timer(self, timer: StreamTimer) -> None:
        if timer.purpose == "fetch_retry":
            transfer = self.incoming
            if (transfer is not None and timer.generation == self._generation
                    and timer.snapshot_id == transfer.offer.snapshot_id):
                self._request(transfer)
            return
        super().on_timer(timer)

    # -- the leader -------------------------------------------------------------------

    def _new_outgoing(self, request):
        transfer = super()._new_outgoing(request)
        transfer.chunk_size = self.mode.max_bytes  # one response: at most MaxBytes from the position
        return transfer

    def on_ack(self, ack: SnapshotAck) -> None:
        if ack.installed:
            super().on_ack(ack)
            return
        # Progress is noted, but only a request makes the leader send (a pull, not a push).
        transfer = self.outgoing.get(ack.from_)
        if transfer is not None and ack.snapshot_id == transfer.snapshot_id:
            transfer.on_ack(ack.offset, self.host.now())
