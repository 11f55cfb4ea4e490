"""Tasks of a simulated cluster woken at virtual instants by the delivery task, not by trio.

A client waiting for its proposal with a timeout, and a workload sleeping
until its next slot, would each enter a trio cancel scope per wait: a
deadline registered with trio, a ``Cancelled`` raised through the task's
frames when it expires, a scope to unwind, an ``Event`` and its parking lot
to wake it. On the standard workload that was about a quarter of the
cluster's CPU time outside the deliveries themselves.

The in-memory transport already moves virtual time itself
(``InMemoryClusterTransport._fast_forward``), so it keeps these instants
too: :class:`Alarms` is a heap of parked tasks, looked at exactly where
trio's own deadlines are, and counted with the same arithmetic, so a task
wakes at the same instant, bit for bit, and, like a task whose trio deadline
expires, before that instant's deliveries. A parked task is cancellable
(its alarm is dropped), and a :class:`Completion` set meanwhile wakes it
early and drops its alarm. If the transport stops serving, every parked task
is let go and finishes its wait on trio's own deadlines. The transport's
``alarms`` offer the two waits: :meth:`Alarms.sleep_until` and
:meth:`Alarms.wait_done`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import trio

# A parked task is ``[at, sequence, task]``; the task is set to None once it was
# woken or cancelled, and a cancelled entry is dropped when it reaches the top of the heap.
_AT, _TASK = 0, 2
_MIN_SWEEP = 64


def _abort_for(entry: list) -> Callable:
    def abort(_raise_cancel) -> trio.lowlevel.Abort:
        entry[_TASK] = None  # nobody may reschedule it now: trio does, with Cancelled
        return trio.lowlevel.Abort.SUCCEEDED

    return abort


def _claim(completion: Completion | None, entry: list) -> None:
    """Make ``entry`` the one waiter that setting ``completion`` wakes."""
    if completion is not None:
        waiter = completion._waiter
        if waiter is not None and waiter[_TASK] is not None:
            raise RuntimeError("a Completion has one waiter; another task is waiting for it already")
        completion._waiter = entry


def _wake(entry: list) -> None:
    task = entry[_TASK]
    if task is not None:
        entry[_TASK] = None
        trio.lowlevel.reschedule(task)


class Alarms:
    """Parked tasks by the virtual instant they are to be woken at; see the module docstring."""

    def __init__(self, on_new: Callable[[float], None] | None = None) -> None:
        self._heap: list[list] = []
        self._sequence = 0
        # Heap size at which entries woken early (a Completion set before its deadline)
        # are swept out: they are otherwise dropped only when their instant comes.
        self._sweep_at = _MIN_SWEEP
        #: True while the delivery task keeps the instants (it fires them); else trio does.
        self.serving = False
        #: ``on_new(at)``: an alarm was set; whoever sleeps past ``at`` must wake up.
        self.on_new = on_new

    def __len__(self) -> int:
        """Alarms set and not yet fired, cancelled ones not yet dropped included."""
        return len(self._heap)

    async def sleep_until(self, at: float) -> None:
        """``trio.sleep_until(at)``: woken by the delivery task while it serves."""
        while self.serving:
            if at <= trio.current_time():
                await trio.lowlevel.checkpoint()  # as trio's sleep into the past: a schedule point
                return
            await self.park(at)
            if trio.current_time() >= at:
                return
        await trio.sleep_until(at)  # not served (any more): trio keeps the instant

    async def wait_done(self, completion: Completion, deadline: float) -> bool:
        """``with trio.move_on_at(deadline): await completion.wait()``; then ``completion.is_set()``."""
        if self.serving and not completion.is_set() and deadline > trio.current_time():
            await self.park(deadline, completion)
            if completion.is_set() or self.serving or trio.current_time() >= deadline:
                return completion.is_set()
        with trio.move_on_at(deadline):  # not served (any more), or nothing to wait for
            await completion.wait()
        return completion.is_set()

    async def park(self, at: float, completion: Completion | None = None) -> None:
        """Block the current task until ``at``, or ``completion`` is set, or
        :meth:`release_all`; cancellable. The caller tells which from the clock and ``completion``."""
        self._sequence += 1
        entry = [at, self._sequence, trio.lowlevel.current_task()]
        _claim(completion, entry)
        if len(self._heap) >= self._sweep_at:
            self._sweep()
        heapq.heappush(self._heap, entry)
        if self.on_new is not None:
            self.on_new(at)
        await trio.lowlevel.wait_task_rescheduled(_abort_for(entry))

    def _sweep(self) -> None:
        """Drop woken and cancelled entries (amortised: the next sweep waits for twice as many)."""
        live = [entry for entry in self._heap if entry[_TASK] is not None]
        heapq.heapify(live)
        self._heap = live
        self._sweep_at = max(_MIN_SWEEP, 2 * len(live))

    def next_at(self) -> float:
        """The earliest instant a parked task waits for (``inf``: none)."""
        heap = self._heap
        while heap and heap[0][_TASK] is None:
            heapq.heappop(heap)
        return heap[0][_AT] if heap else math.inf

    def fire_due(self, now: float) -> bool:
        """Wake every task whose instant is ``<= now``; ``True`` if any was woken."""
        heap = self._heap
        woke = False
        while heap and heap[0][_AT] <= now:
            entry = heapq.heappop(heap)
            if entry[_TASK] is not None:
                _wake(entry)
                woke = True
        return woke

    def release_all(self) -> None:
        """The delivery task stops: wake every parked task now, to wait on under trio's deadlines."""
        self.serving = False
        heap, self._heap = self._heap, []
        for entry in sorted(heap):
            _wake(entry)


class Completion:
    """Something that happens once (an entry applied, a request failed), with one waiter.

    What ``trio.Event`` offers a single waiting task (``set``, ``is_set``,
    ``wait``), without a parking lot; :meth:`Alarms.wait_done`
    waits for it with a virtual deadline and no cancel scope.
    """

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: list | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            _wake(waiter)  # its alarm, if any, is dropped with it

    async def wait(self) -> None:
        """Until :meth:`set` (a checkpoint if it already was); one task at a time."""
        if self._set:
            await trio.lowlevel.checkpoint()
            return
        entry = [math.inf, 0, trio.lowlevel.current_task()]
        _claim(self, entry)
        await trio.lowlevel.wait_task_rescheduled(_abort_for(entry))
