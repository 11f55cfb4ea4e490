"""``InMemoryClusterTransport``: the network between nodes of one trio process.

Theory of operation. Each node attaches one inbox callback, and this
transport is its only caller. Everything a node reacts to — messages from
peers, its clock ticks, client commands — reaches it through that inbox, in
one explicit total order: ``(time, kind, destination, source, sequence)``.
That order, not trio's scheduler, decides what happens, which is what makes
a run replay byte for byte (DESIGN.md section 5).

:meth:`InMemoryClusterTransport.send` is synchronous: it decides at once,
with the link's own random generator, whether the message is lost or
duplicated and when it arrives (latency, plus time spent queued behind
earlier messages on a bandwidth-limited link), and files it in a heap.
:meth:`InMemoryClusterTransport.serve` is the one task that delivers. At
each instant it first waits until every other task is blocked — scenario
code has applied its faults, clients have submitted their commands — and
only then hands out everything due, in order; nodes react synchronously.
A node attached with a ``settle`` hook steps every item of the instant into
its core first and runs its Ready loop once afterwards (``settle()``, nodes
in id order), rather than once per item: the per-item cost of a Ready cycle
was the largest share of a delivery, and a leader hearing from four
followers at one instant now persists, sends and applies once.
On a virtual clock it then moves straight on to the next instant for as
long as no other task could act before it (see ``_fast_forward``).

Latency is always positive (``links.MIN_LATENCY``), and a timer is never
due in the instant it was armed, so nothing put in the heap while an
instant is delivered is due in that same instant.

Why not one trio task per node reading a memory channel? Measured on the
standard workload, that ran at about half the speed (20 k against 41 k
delivered messages per wall second), and trio's scheduler would still have
had to be kept from deciding anything.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import trio
import trio.testing

from .alarms import Alarms
from .chunk_faults import ChunkFault, ChunkFaults
from .deliveries import CLIENT, MESSAGE, TIMER, Delivered, ReadTimedOut, TransportObserver
from .link_controls import LinkControls
from .link_statistics import Link, LinkState, TransportStatistics, transport_statistics
from .links import MIN_LATENCY, Constant, LinkConfig
from .streaming.messages import SnapshotChunk, SnapshotRequest

if TYPE_CHECKING:
    from simulator.raft import Message


class _Wakeups(trio.abc.Instrument):
    """Notes that trio made some task runnable (``task_scheduled``): while none is,
    virtual time may move on without a trip through the scheduler."""

    def __init__(self) -> None:
        self.scheduled = False

    def task_scheduled(self, task) -> None:
        self.scheduled = True


#: How many transports are serving in this trio run. Fast-forward is safe only
#: for a lone transport: two would each jump the clock past the other's items.
_SERVING = trio.lowlevel.RunVar("raftsim_serving_transports", default=0)


class InMemoryClusterTransport(LinkControls):
    """Moves Raft messages between nodes in one trio process; see the module docstring."""

    def __init__(
        self,
        *,
        seed: int = 0,
        link: LinkConfig | None = None,
        observer: TransportObserver | None = None,
        snapshot_mode=None,
    ) -> None:
        self.seed = seed
        self.snapshot_mode = snapshot_mode
        self.chunk_faults = ChunkFaults()
        #: ``on_crash(node, restart_after, reason)``: carries out crash_* chunk faults.
        self.on_crash = None
        #: ``on_snapshot_fate(message, delivered)``: a Raft message carrying snapshot data
        #: arrived or was lost. Raft needs to hear it (``report_snapshot``), or the
        #: leader would wait for that follower forever.
        self.on_snapshot_fate = None
        #: ``on_cut_short(chunk, carried)``: a pulled response's requester hung up after
        #: ``carried`` of its bytes; whoever counted the whole chunk as sent corrects that.
        self.on_cut_short = None
        LinkControls.__init__(self, link if link is not None else LinkConfig())
        self.set_observer(observer if observer is not None else TransportObserver())
        self._links: dict[Link, LinkState] = {}
        self._inboxes: dict[int, Callable[[object], None]] = {}
        self._settlers: dict[int, Callable[[], None]] = {}
        self._heap: list[tuple] = []
        self._local_sequence: Counter = Counter()
        self._wakeup = trio.Event()
        # When the serving task sleeps, until when; -inf while it is awake: it looks at the
        # heap before it sleeps again, so an item pushed meanwhile needs no wake-up call.
        self._sleeping_until = -math.inf
        self._batch_time: float | None = None
        self._perfect_link: LinkConfig | None = None
        self._wakeups = _Wakeups()
        #: Tasks parked until a virtual instant, woken by ``serve`` (``transports.alarms``).
        self.alarms = Alarms(on_new=self._alarm_set)
        self.delivered_items = 0
        # Follower pull with a request timeout (FetchSnapshot): when each requester last asked.
        self._asked_at: dict[Link, float] = {}

    @property
    def snapshot_mode(self):
        """How snapshots travel (``Embedded()`` or ``Streaming(...)``); nodes read it."""
        return self._snapshot_mode

    @snapshot_mode.setter
    def snapshot_mode(self, mode) -> None:
        self._snapshot_mode = mode
        # Looked at for every message sent: read once here, not per message.
        self._request_timeout = getattr(mode, "request_timeout", None)

    def set_observer(self, observer: TransportObserver) -> None:
        """Who hears about sends, drops, deliveries (the trace, usually)."""
        self.observer = observer
        # An observer that records no per-message events (``record_messages=False``)
        # says so, and is then not called for every send and delivery at all.
        self._observe_messages = getattr(observer, "record_messages", True)
        # Optional hook: observers that do not care about batches may leave it out.
        self._on_batch = getattr(observer, "on_batch", None) or (lambda: None)

    @classmethod
    def with_embedded_snapshots(cls, **options) -> InMemoryClusterTransport:
        """The seed's ``new_with_embedded_snapshots``: snapshot data rides in the Raft message."""
        from .modes import Embedded

        return cls(snapshot_mode=Embedded(), **options)

    @classmethod
    def with_streaming_snapshots(
        cls, *, store=None, chunk_size: int | None = None, **options
    ) -> InMemoryClusterTransport:
        """The seed's ``new_with_streaming_snapshots``: data streams out of band from ``store``.

        ``store`` maps a node id to that node's ``SnapshotStore`` (default: one
        in-memory store per node); the other ``Streaming`` options may be given too.
        """
        from .modes import Streaming

        mode_options = {
            key: options.pop(key)
            for key in ("chunks_in_flight", "rate_limit", "max_concurrent_per_sender",
                        "idle_timeout", "max_idle_retries")
            if key in options
        }
        if store is not None:
            mode_options["store"] = store
        if chunk_size is not None:
            mode_options["chunk_size"] = chunk_size
        return cls(snapshot_mode=Streaming(**mode_options), **options)

    # -- nodes ----------------------------------------------------------------

    def attach(
        self, node_id: int, deliver: Callable[[object], None], settle: Callable[[], None] | None = None
    ) -> None:
        """Connect ``node_id``: ``deliver(item)`` is called for everything due to it, in order.

        With ``settle``, a node reacts to an instant in two steps, as a Raft server
        does with a batch read off its sockets: ``deliver`` steps each item into the
        core, and ``settle()`` is called once after everything due at that instant
        has been handed out (nodes in ascending id order), to run the Ready loop
        once for all of it.
        """
        if node_id in self._inboxes:
            raise ValueError(f"node {node_id} is already attached")
        self._inboxes[node_id] = deliver
        if settle is not None:
            self._settlers[node_id] = settle

    def detach(self, node_id: int) -> None:
        """Disconnect ``node_id`` (it crashed or left); what arrives for it is dropped."""
        self._inboxes.pop(node_id, None)
        self._settlers.pop(node_id, None)

    def is_attached(self, node_id: int) -> bool:
        return node_id in self._inboxes

    # -- links ------------------------------------------------------------------

    def _link(self, src: int, dst: int) -> LinkState:
        state = self._links.get((src, dst))
        if state is None:
            # A generator per link, derived from the run seed: links never share a stream.
            state = LinkState(rng=random.Random(f"{self.seed}/link/{src}->{dst}"))
            self._links[(src, dst)] = state
        return state

    # -- sending ---------------------------------------------------------------

    def add_chunk_fault(self, fault: ChunkFault) -> None:
        """Arm a fault for chunk k of the snapshot streams (see ``transports.chunk_faults``)."""
        self.chunk_faults.add(fault)

    def clear_chunk_faults(self) -> None:
        """Disarm every chunk fault that has not fired yet, and end any cut."""
        self.chunk_faults.clear()

    def send(self, message: Message) -> None:
        """Put ``message`` on the wire now; it arrives later, once, twice, or never."""
        kind = type(message)
        # Chunk faults act on stream messages only: a Raft message need not ask them.
        if (kind is SnapshotRequest or kind is SnapshotChunk) and self.chunk_faults:
            if kind is SnapshotRequest:
                self.chunk_faults.on_request(message)
            elif kind is SnapshotChunk:
                verdict = self.chunk_faults.on_chunk(message)
                if not verdict.copies:
                    self._transmit(message, 0.0, fault=verdict.reason)
                for copy, delay in verdict.copies:
                    self._transmit(copy, delay)
                for node, restart_after in verdict.crash:
                    if self.on_crash is not None:
                        self.on_crash(node, restart_after, verdict.reason)
                return
        self._transmit(message, 0.0)

    def _read_timeout(self, message) -> float | None:
        """The receiver's read timeout for ``message``: only embedded snapshot data has one."""
        read_timeout = getattr(self.snapshot_mode, "read_timeout", None)
        if read_timeout is None:
            return None
        snapshot = getattr(message, "snapshot", None)
        return read_timeout if snapshot is not None and snapshot.data is not None else None

    def bytes_carried(self, message) -> int:
        """Bytes of ``message`` the link carries before its receiver hangs up (all of them
        unless a read timeout cuts it short). Depends only on the link's settings and the
        message, so a sender's records can count what really crosses the wire."""
        size = message.size
        read_timeout = self._read_timeout(message)
        if read_timeout is None:
            return size
        config = self._link_overrides.get((message.from_, message.to), self.default_link)
        transmission = config.transmission_time(size)
        if transmission <= read_timeout:
            return size
        return int(size * read_timeout / transmission)

    def _embedded_snapshot_fate(self, message, delivered: bool) -> None:
        snapshot = getattr(message, "snapshot", None)
        if snapshot is not None and snapshot.data is not None and self.on_snapshot_fate is not None:
            self.on_snapshot_fate(message, delivered)

    def current_time(self) -> float:
        """``trio.current_time()``, but cheap while a batch is delivered (all of it is at one instant)."""
        batch_time = self._batch_time
        return batch_time if batch_time is not None else trio.current_time()

    def _transmit(self, message: Message, extra_delay: float, fault: str | None = None) -> None:
        now = self.current_time()
        src, dst = message.from_, message.to
        key = (src, dst)
        if self._request_timeout is not None and type(message) is SnapshotRequest:
            self._asked_at[(dst, src)] = now  # the answer, dst -> src, is due within the timeout
        config = self._link_overrides.get(key, self.default_link)
        link = self._links.get(key) or self._link(src, dst)
        size = message.size
        msg_type = getattr(message, "msg_type", None)
        kind = msg_type._value_ if msg_type is not None else message.kind
        counts = link.by_kind.get(kind)  # see LinkState.by_kind
        if counts is None:
            counts = link.by_kind[kind] = [0, 0]
        counts[0] += 1
        counts[1] += size
        if (
            (config is self._perfect_link or self._is_perfect(config))
            and msg_type is not None and kind != "snapshot" and fault is None and key not in self._blocked
        ):
            # The common case, a Raft message without snapshot data on a perfect link: what
            # the general path below does for it, without its draws, timeouts and branches.
            start = link.busy_until
            if now > start:
                start = now
            link.busy_until = start
            arrival = start + config.latency.seconds + extra_delay
            if arrival < link.last_arrival:
                arrival = link.last_arrival  # FIFO
            link.last_arrival = arrival
            link.sequence += 1
            heapq.heappush(self._heap, (arrival, MESSAGE, dst, src, link.sequence, Delivered(message)))
            if arrival < self._sleeping_until:
                self._wakeup.set()
            if self._observe_messages:
                self.observer.on_send(message, arrival)
            return
        # Draw only what this link's settings need: a perfect link with constant
        # latency (the common case) costs no random numbers at all.
        rng = link.rng
        lost = config.loss > 0 and rng.random() < config.loss
        duplicated = config.duplicate > 0 and rng.random() < config.duplicate
        held_back = config.reorder > 0 and rng.random() < config.reorder
        latency = config.latency.sample(rng)

        # The bytes occupy the link even if they are lost on the way.
        start = max(now, link.busy_until)
        transmission = config.transmission_time(size) if config.bandwidth is not None else 0.0
        read_timeout = self._read_timeout(message) if kind == "snapshot" else None
        hang_up = None  # why the receiver stops reading before the message is whole
        if read_timeout is not None and transmission > read_timeout:
            # The receiver hangs up after read_timeout: the rest of the bytes never flow
            # (nor count as sent: only what the link carried until then).
            carried = self.bytes_carried(message)
            counts[1] -= size - carried
            transmission = read_timeout
            hang_up = f"read timeout: still arriving after {read_timeout:g} s"
        elif kind == "snapshot_chunk" and self._request_timeout is not None:
            # A pulled response (FetchSnapshot): its requester gives up request_timeout after
            # asking and drops the connection; what has not left the sender by then never does.
            deadline = self._asked_at.get(key, now) + self._request_timeout
            if start + transmission + latency > deadline:
                budget = max(0.0, deadline - latency - start)
                carried = int(size * budget / transmission) if transmission > 0 else 0
                counts[1] -= size - carried
                transmission = min(transmission, budget)
                hang_up = f"request timeout: the answer was not in {self._request_timeout:g} s after asking"
                if self.on_cut_short is not None:
                    self.on_cut_short(message, max(0, len(message.data) - (size - carried)))
        link.busy_until = start + transmission
        if fault is not None:
            link.dropped += 1
            self.observer.on_drop(message, fault)
            self._embedded_snapshot_fate(message, False)
            return
        if key in self._blocked:
            link.dropped += 1
            self.observer.on_drop(message, "link blocked")
            self._embedded_snapshot_fate(message, False)
            return
        if lost:
            link.dropped += 1
            self.observer.on_drop(message, "lost")
            self._embedded_snapshot_fate(message, False)
            return
        arrival = link.busy_until + latency + extra_delay
        if hang_up is not None:
            self._push(arrival, MESSAGE, dst, src, link, ReadTimedOut(message, hang_up))
            return
        if held_back:
            arrival += config.latency.sample(rng)
        else:
            # A FIFO link: never overtake what was sent before.
            arrival = max(arrival, link.last_arrival)
            link.last_arrival = arrival
        link.sequence += 1
        heapq.heappush(self._heap, (arrival, MESSAGE, dst, src, link.sequence, Delivered(message)))
        if arrival < self._sleeping_until:
            self._wakeup.set()
        if self._observe_messages:
            self.observer.on_send(message, arrival)
        if duplicated:
            copy_arrival = max(arrival, link.busy_until + config.latency.sample(rng))
            link.duplicated += 1
            self._push(copy_arrival, MESSAGE, dst, src, link, Delivered(message))
            self.observer.on_duplicate(message, copy_arrival)

    def _is_perfect(self, config: LinkConfig) -> bool:
        """Constant latency, unlimited bandwidth, nothing lost, duplicated or held back
        (the last such config seen is remembered: links nearly always share one)."""
        perfect = (type(config.latency) is Constant and config.bandwidth is None
                   and not config.loss and not config.duplicate and not config.reorder)
        if perfect:
            self._perfect_link = config
        return perfect

    def _push(self, at: float, kind: int, dst: int, src: int, link: LinkState, item) -> None:
        link.sequence += 1
        heapq.heappush(self._heap, (at, kind, dst, src, link.sequence, item))
        if at < self._sleeping_until:
            self._wakeup.set()

    def schedule(
        self, node_id: int, at: float, item, *, kind: int = TIMER, order: tuple[int, int] | None = None
    ) -> None:
        """Hand ``item`` to ``node_id``'s inbox at time ``at`` (timers, client commands).

        ``order`` is ``(source, sequence)`` deciding the place among items due
        at the same instant; clients pass their own id and counter so that
        concurrent clients are ordered by who they are, not by which task
        trio happened to run first. Without it, items keep the order of calls.
        """
        if kind not in (TIMER, CLIENT):
            raise ValueError(f"schedule() is for TIMER or CLIENT items, got kind {kind}")
        if kind == TIMER:
            # A timer is never due in the instant it is armed: one armed while the
            # instant's items are delivered would otherwise be delivered at once,
            # and a timer re-arming itself so would loop within that instant.
            at = max(at, self.current_time() + MIN_LATENCY)
        if order is None:
            self._local_sequence[node_id] += 1
            order = (0, self._local_sequence[node_id])
        heapq.heappush(self._heap, (at, kind, node_id, order[0], order[1], item))
        if at < self._sleeping_until:
            self._wakeup.set()

    def _alarm_set(self, at: float) -> None:
        if at < self._sleeping_until:  # a parked task's instant comes before the server wakes
            self._wakeup.set()

    # -- delivering ------------------------------------------------------------

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Deliver everything, in order, forever. Run it in the cluster's nursery."""
        _SERVING.set(_SERVING.get() + 1)
        trio.lowlevel.add_instrument(self._wakeups)
        self.alarms.serving = True
        try:
            task_status.started()
            await self._serve()
        finally:
            self.alarms.release_all()  # their waits go on under trio's own deadlines
            trio.lowlevel.remove_instrument(self._wakeups)
            _SERVING.set(_SERVING.get() - 1)

    async def _serve(self) -> None:
        heap = self._heap
        clock = trio.lowlevel.current_clock()
        # On a virtual clock that only moves when everything waits, we may move it
        # ourselves: that is exactly what autojump would do, minus a trip through
        # trio's scheduler for every instant. Other users of wait_all_tasks_blocked
        # would not be seen as waiting; none exist in the simulator.
        can_jump = isinstance(clock, trio.testing.MockClock) and clock.rate == 0
        alarms = self.alarms
        while True:
            # Let every other task finish what it does at this instant first.
            await trio.testing.wait_all_tasks_blocked()
            now = trio.current_time()
            if alarms.fire_due(now):
                continue  # like tasks whose trio deadline expired: they act before this instant's items
            jumping = can_jump and _SERVING.get() == 1
            if heap and heap[0][0] <= now:
                self._deliver_due(now)
                if not jumping:
                    continue
            if jumping and self._fast_forward(clock):
                continue
            self._wakeup = trio.Event()
            self._sleeping_until = min(heap[0][0] if heap else math.inf, alarms.next_at())
            with trio.move_on_at(self._sleeping_until):
                await self._wakeup.wait()
            self._sleeping_until = -math.inf

    def _fast_forward(self, clock) -> bool:
        """Move virtual time on ourselves while every other task waits.

        Deliver later instants at once while no other task could act before
        them; when another task's deadline comes first, jump the clock to it
        (as autojump would) and return ``True``: the caller's next
        ``wait_all_tasks_blocked`` lets trio wake that task, with no sleep,
        cancel scope or event of ours in between. Safe only because nothing
        else can happen in between: no task is runnable (nobody was woken by
        what we delivered). ``False``: nothing to jump to (all wait for good).
        """
        heap = self._heap
        wakeups = self._wakeups
        state = trio.lowlevel.current_statistics()
        if state.tasks_runnable:
            return True
        now = clock.current_time()  # what trio.current_time() asks
        # Until a task is woken, none runs, so none can change its deadline either:
        # asking trio once is enough (its statistics cost more than a delivery).
        task_at = now + state.seconds_to_next_deadline
        alarm_at = self.alarms.next_at()
        if alarm_at < math.inf:
            # An alarm is a deadline too, counted as trio counts its own (bit for bit).
            task_at = min(task_at, now + (alarm_at - now))
        wakeups.scheduled = False
        while True:
            next_at = heap[0][0] if heap else math.inf
            if task_at <= next_at:
                if math.isinf(task_at):
                    return False
                if task_at > now:
                    clock.jump(task_at - now)
                self.alarms.fire_due(clock.current_time())
                return True
            clock.jump(next_at - now)
            # The clock itself (what trio.current_time() asks, minus two calls); read back,
            # not assumed to be next_at: the jump's float sum may differ in the last bit.
            # Delivering takes no virtual time: it stays valid.
            now = clock.current_time()
            self._deliver_due(now)
            if wakeups.scheduled:  # what we delivered woke a task: let it run first
                return True

    def _deliver_due(self, now: float) -> None:
        self._on_batch()
        self._batch_time = now
        try:
            self._deliver_batch(now)
        finally:
            self._batch_time = None
            self._on_batch()

    def _deliver_batch(self, now: float) -> None:
        heap = self._heap
        # Nodes that got something this instant and settle once for all of it. What
        # settling sends or arms is never due now (latencies and timers are never zero);
        # anything else filed for now meanwhile is handed out, and settled, by the next pass.
        unsettled: dict[int, Callable[[], None]] = {}
        while heap and heap[0][0] <= now:
            self._hand_out(now, unsettled)
            for node_id in sorted(unsettled):
                unsettled[node_id]()
            unsettled.clear()

    def _hand_out(self, now: float, unsettled: dict[int, Callable[[], None]]) -> None:
        heap = self._heap
        inboxes = self._inboxes
        settlers = self._settlers
        links = self._links
        on_deliver = self.observer.on_deliver if self._observe_messages else None
        # Only Raft messages carrying snapshot data have a fate to report; most carry none.
        watch_fate = self.on_snapshot_fate is not None
        pop = heapq.heappop
        while heap and heap[0][0] <= now:
            _, kind, dst, src, _, item = pop(heap)
            inbox = inboxes.get(dst)
            if kind == MESSAGE:
                message = item.message
                link = links[(src, dst)]
                if inbox is None or type(item) is ReadTimedOut:
                    link.dropped += 1
                    self.observer.on_drop(message, "destination down" if inbox is None else item.reason)
                    self._embedded_snapshot_fate(message, False)
                    continue
                link.delivered += 1
                if on_deliver is not None:
                    on_deliver(message)
                if watch_fate and getattr(message, "snapshot", None) is not None:
                    self._embedded_snapshot_fate(message, True)
            elif inbox is None:
                # A timer or client command for a node that is down: tell the
                # client (if any) instead of letting it wait forever.
                undeliverable = getattr(item, "undeliverable", None)
                if undeliverable is not None:
                    undeliverable(f"node {dst} is down")
                continue
            self.delivered_items += 1
            inbox(item)
            if dst not in unsettled:
                settle = settlers.get(dst)
                if settle is not None:
                    unsettled[dst] = settle

    def pending(self) -> int:
        """Items waiting to be delivered."""
        return len(self._heap)

    # -- observation -----------------------------------------------------------

    def statistics(self) -> TransportStatistics:
        return transport_statistics(self._links)


def message_kind(message) -> str:
    """``append``, ``snapshot``, ``snapshot_chunk``...: how statistics and the trace name it."""
    msg_type = getattr(message, "msg_type", None)
    if msg_type is not None:  # a Raft message (the common case, so asked first)
        # ``_value_`` is the plain attribute behind the enum's ``value`` property,
        # which costs a descriptor call per message.
        return msg_type._value_
    return message.kind


def all_links(node_ids: Iterable[int]) -> list[Link]:
    ids = sorted(node_ids)
    return [(a, b) for a in ids for b in ids if a != b]
