"""Linearizable reads without writing to the log: ReadIndex (§6.4 of the Raft thesis).

A read must see every write acknowledged before it began. Serving it from a
node's state machine is only safe if that node is still the leader when the
read arrives and has applied everything committed by then. ReadIndex gets
there without appending an entry:

1. The leader records its commit index as the *read index*. A new leader
   does not know the true commit index until it has committed an entry of
   its own term, so reads wait (are queued) until then.
2. It confirms it is still the leader: with :attr:`ReadOnlyOption.SAFE` by a
   round of heartbeats carrying the read's context that a quorum answers;
   with :attr:`ReadOnlyOption.LEASE_BASED` by its lease: no round trip
   while a quorum acknowledged a heartbeat sent less than ``election_tick -
   2`` ticks ago (each of those voters refuses any other candidate for
   ``election_tick`` ticks after hearing it), else the same round as SAFE.
   Correct only while clocks drift less than the lease's margin.
3. The read is handed back as a :class:`ReadState` in ``Ready.read_states``
   (or, for a follower that forwarded it, in a ``READ_INDEX_RESPONSE``); the
   application serves it once its applied index reaches ``index``.

The bookkeeping follows raft-rs ``ReadOnly``: requests queue in arrival
order, a heartbeat answer acknowledges its context, and a quorum of
acknowledgements for one context releases it and every request queued
before it (the same heartbeat round proved leadership for them too).
"""

from __future__ import annotations

import struct
from collections import deque

import attrs

from .messages import INVALID_ID, Message, MessageKinds, _ReprEnum
from .reasons import MALFORMED, READ_DROPPED

MT = MessageKinds


class ReadOnlyOption(_ReprEnum):
    """How a leader confirms it still leads before serving a read (raft-rs ``ReadOnlyOption``)."""

    SAFE = "safe"
    LEASE_BASED = "lease_based"


@attrs.frozen
class ReadState:
    """A read that may be served once the state machine has applied ``index``."""

    index: int
    request_ctx: bytes


@attrs.define(eq=False)
class _PendingRead:
    request: Message
    index: int
    acks: set[int]


class ReadOnly:
    """Read requests waiting for a quorum of heartbeat answers, oldest first."""

    def __init__(self, option: ReadOnlyOption) -> None:
        self.option = option
        self._pending: dict[bytes, _PendingRead] = {}
        self._queue: deque[bytes] = deque()

    def add_request(self, index: int, request: Message, self_id: int) -> None:
        context = request.entries[0].data
        if context in self._pending:
            return  # the same context asked twice: the first answer serves both
        self._pending[context] = _PendingRead(request, index, {self_id})
        self._queue.append(context)

    def recv_ack(self, node_id: int, context: bytes) -> set[int] | None:
        pending = self._pending.get(context)
        if pending is None:
            return None
        pending.acks.add(node_id)
        return pending.acks

    def advance(self, context: bytes) -> list[_PendingRead]:
        """Release the request for ``context`` and every one queued before it."""
        if context not in self._pending:
            return []
        released = []
        while self._queue:
            head = self._queue.popleft()
            released.append(self._pending.pop(head))
            if head == context:
                break
        return released

    def last_pending_context(self) -> bytes:
        return self._queue[-1] if self._queue else b""

    def __len__(self) -> int:
        return len(self._queue)


#: Heartbeat context of a lease-based leader: a marker and the leader's tick when it sent it.
LEASE_CONTEXT = b"\x00lease"
_LEASE_TICK = struct.Struct(">Q")


def lease_context(tick: int) -> bytes:
    return LEASE_CONTEXT + _LEASE_TICK.pack(tick)


def lease_tick(context: bytes) -> int | None:
    if len(context) != len(LEASE_CONTEXT) + _LEASE_TICK.size or not context.startswith(LEASE_CONTEXT):
        return None
    return _LEASE_TICK.unpack_from(context, len(LEASE_CONTEXT))[0]


def is_read_request(m: Message) -> bool:
    """A read request or answer carries exactly one entry: the caller's non-empty context."""
    return len(m.entries) == 1 and bool(m.entries[0].data)


class ReadIndexHandling:
    """ReadIndex on the leader and the follower; mixed into ``Raft`` like the other roles."""

    def _committed_in_current_term(self) -> bool:
        log = self.raft_log
        return log.term_or_zero(log.committed) == self.term

    def _step_leader_read_index(self, m: Message) -> None:
        if not is_read_request(m):
            self._reject(MALFORMED)
            return
        if not self._committed_in_current_term():
            # We may not know what is committed yet (§6.4): the empty entry of our
            # term commits soon, and then these reads go ahead.
            self.pending_read_requests.append(m)
            self.events["reads_deferred_until_term_commit"] += 1
            return
        self._serve_read_index(m)

    def _serve_read_index(self, m: Message) -> None:
        index = self.raft_log.committed
        if self.prs.is_singleton() or self._lease_valid():
            # Alone, or inside the lease: no round trip needed.
            self._answer_read(m, index)
            return
        self.read_only.add_request(index, m, self.id)
        self.broadcast_heartbeat(self.read_only.last_pending_context())

    def heartbeat_context(self) -> bytes:
        """What the next heartbeats carry: the newest pending read, else (lease-based) our tick."""
        pending = self.read_only.last_pending_context()
        if pending or self.read_only.option is not ReadOnlyOption.LEASE_BASED:
            return pending
        return lease_context(self.leader_ticks)

    def _lease_valid(self) -> bool:
        if self.read_only.option is not ReadOnlyOption.LEASE_BASED or self.lead_transferee is not None:
            return False  # a transferee may win at once: no lease during a transfer
        # A voter that heard a heartbeat sent at tick t refuses other candidates until at
        # least t + election_tick - 1 (its ticks run out of phase with ours by < 1 tick).
        oldest = self.leader_ticks - (self.config.election_tick - 2)
        holding = {self.id} | {
            node_id for node_id, progress in self.prs.items() if progress.lease_ack_tick >= max(oldest, 0)
        }
        return self.prs.has_quorum(holding)

    def _answer_read(self, request: Message, index: int) -> None:
        self.events["reads_served"] += 1
        if request.from_ in (INVALID_ID, self.id):
            self.read_states.append(ReadState(index, request.entries[0].data))
        else:
            self._send(
                Message(
                    MT.READ_INDEX_RESPONSE,
                    to=request.from_,
                    from_=self.id,
                    term=self.term,
                    index=index,
                    entries=request.entries,
                )
            )

    def _read_acknowledged(self, m: Message) -> None:
        """A heartbeat answer carrying a read context: release the reads a quorum confirmed."""
        if not m.context:
            return
        tick = lease_tick(m.context)
        if tick is not None:
            progress = self.prs.progress[m.from_]
            if tick <= self.leader_ticks:  # never trust a tick from the future (forged)
                progress.lease_ack_tick = max(progress.lease_ack_tick, tick)
            return
        acks = self.read_only.recv_ack(m.from_, m.context)
        if acks is None or not self.prs.has_quorum(acks):
            return
        for pending in self.read_only.advance(m.context):
            self._answer_read(pending.request, pending.index)

    def _release_deferred_reads(self) -> None:
        if self.pending_read_requests and self._committed_in_current_term():
            deferred, self.pending_read_requests = self.pending_read_requests, []
            for m in deferred:
                self._serve_read_index(m)

    def _step_follower_read_index(self, m: Message) -> None:
        if not is_read_request(m):
            self._reject(MALFORMED)
            return
        if self.leader_id == INVALID_ID:
            # No leader to confirm the read: the caller retries (its read times out).
            self._reject(READ_DROPPED)
            return
        self._send(Message(MT.READ_INDEX, to=self.leader_id, from_=self.id, entries=m.entries))

    def _step_read_index_response(self, m: Message) -> None:
        if not is_read_request(m):
            self._reject(MALFORMED)
            return
        self.read_states.append(ReadState(m.index, m.entries[0].data))
