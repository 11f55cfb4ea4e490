"""The transport's alarms (``transports.alarms``): the same instants, order and
cancellation as the trio deadlines they replace, measured against trio itself."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from transports import InMemoryClusterTransport
from transports.alarms import Completion
from transports.deliveries import CLIENT


async def _served(nursery, alongside: bool) -> InMemoryClusterTransport:
    """A serving transport; ``alongside``: with a second one serving, so neither fast-forwards
    and virtual time moves by trio's autojump instead (the sleeping path of ``_serve``)."""
    transport = InMemoryClusterTransport()
    await nursery.start(transport.serve)
    if alongside:
        await nursery.start(InMemoryClusterTransport().serve)
    return transport


def _applier(transport: InMemoryClusterTransport, log: list, done) -> None:
    def inbox(item) -> None:
        log.append(("delivered", item, trio.current_time()))
        done.set()

    transport.attach(1, inbox)


async def _wait_with(kind: str, transport, done, deadline: float) -> bool:
    if kind == "trio":  # what the client did before: a cancel scope and an Event
        with trio.move_on_at(deadline):
            await done.wait()
        return done.is_set()
    return await transport.alarms.wait_done(done, deadline)


def _fresh_run(main, *args):
    """Each variant in its own run, on its own virtual clock from 0: exact floats compare."""
    return trio.run(main, *args, clock=trio.testing.MockClock(autojump_threshold=0))


async def _race(kind: str, alongside: bool, start: float, apply_at: float, deadline: float) -> list:
    log: list = []
    async with trio.open_nursery() as nursery:
        transport = await _served(nursery, alongside)
        done = trio.Event() if kind == "trio" else Completion()
        _applier(transport, log, done)
        await trio.sleep_until(start)
        transport.schedule(1, apply_at, "apply", kind=CLIENT, order=(1, 1))
        applied = await _wait_with(kind, transport, done, deadline)
        log.append(("woke", applied, trio.current_time()))
        await trio.sleep(1)  # what is still due is delivered
        nursery.cancel_scope.cancel()
    return log


@pytest.mark.parametrize("alongside", [False, True], ids=["fast-forward", "autojump"])
@pytest.mark.parametrize(
    ("start", "apply_at", "deadline"),
    [(0, 0.3, 0.7), (0, 0.7, 0.3), (0, 0.1 + 0.2, 0.3), (0, 0.3, 0.1 + 0.2), (0, 0.5, 0.5),
     # Ties where the clock's jump, start + (deadline - start), misses the deadline's float.
     (0.1, 0.45, 0.45), (0.3, 0.9, 0.9), (0.35, 1.7, 1.7), (0.3, 0.9000000000000001, 0.9)],
    ids=["applied-first", "timed-out", "tie-by-float", "tie-by-float-2", "tie", "short-jump",
         "long-jump", "long-jump-2", "long-jump-3"],
)
def test_wait_done_wakes_when_and_as_a_trio_deadline_would(alongside, start, apply_at, deadline):
    """Applied before the deadline: woken by it, at its instant. Due at the deadline's
    instant: the deadline comes first (the waiter runs before that instant's items)."""
    ours = _fresh_run(_race, "alarms", alongside, start, apply_at, deadline)
    assert ours == _fresh_run(_race, "trio", alongside, start, apply_at, deadline)
    woke = [entry for entry in ours if entry[0] == "woke"][0]
    assert [entry[0] for entry in ours] == (["delivered", "woke"] if woke[1] else ["woke", "delivered"])
    if start == 0:  # from 0 the jump lands on the deadline itself; later, as trio's arithmetic has it
        assert woke[1] is (apply_at < deadline)


async def _sleeper(kind: str, alongside: bool, offsets: list[float]) -> list:
    log: list = []
    async with trio.open_nursery() as nursery:
        transport = await _served(nursery, alongside)
        transport.attach(1, lambda item: log.append(("delivered", item, trio.current_time())))
        start = trio.current_time()
        for number, offset in enumerate(offsets, 1):
            transport.schedule(1, start + offset, f"item {number}", kind=CLIENT, order=(1, number))
        for offset in offsets:
            at = start + offset
            await (trio.sleep_until(at) if kind == "trio" else transport.alarms.sleep_until(at))
            log.append(("woke", offset, trio.current_time()))
        nursery.cancel_scope.cancel()
    return log


@pytest.mark.parametrize("alongside", [False, True], ids=["fast-forward", "autojump"])
def test_sleep_until_wakes_at_the_instant_trio_would_before_its_deliveries(alongside):
    offsets = [0.1, 0.1 + 0.2, 0.3, 0.3, 0.0, 2.5, 1.0]  # ties, a float tie, the past
    ours = _fresh_run(_sleeper, "alarms", alongside, offsets)
    assert ours == _fresh_run(_sleeper, "trio", alongside, offsets)
    # A wake-up comes before the item due at the same instant (a trio deadline's order);
    # sleeping until an instant already past wakes without time moving on.
    assert ours[1:3] == [("woke", 0.1, 0.1), ("delivered", "item 1", 0.1)]
    assert ours[5][0] == "woke" and ours[9] == ("delivered", "item 2", 0.1 + 0.2)
    assert ours[-2:] == [("woke", 2.5, 2.5), ("woke", 1.0, 2.5)]


async def test_a_cancelled_wait_drops_its_alarm_and_a_later_set_wakes_nobody(autojump_clock):
    async with trio.open_nursery() as nursery:
        transport = await _served(nursery, False)
        done = Completion()
        log: list = []
        _applier(transport, log, done)
        start = trio.current_time()
        transport.schedule(1, start + 2.0, "apply", kind=CLIENT, order=(1, 1))
        with trio.move_on_at(start + 1.0) as scope:
            await transport.alarms.wait_done(done, start + 5.0)
        assert scope.cancelled_caught and trio.current_time() == start + 1.0
        assert transport.alarms.next_at() == math.inf  # the deadline is gone with the waiter
        await trio.sleep(2)
        assert done.is_set() and [entry[0] for entry in log] == ["delivered"]
        # It waits again, alone: already set, a checkpoint.
        assert await transport.alarms.wait_done(done, start + 10.0)
        with trio.move_on_after(1.0) as scope:  # sleep_until is cancellable too
            await transport.alarms.sleep_until(trio.current_time() + 3.0)
        assert scope.cancelled_caught and transport.alarms.next_at() == math.inf
        nursery.cancel_scope.cancel()


async def test_a_completion_has_one_waiter(autojump_clock):
    async with trio.open_nursery() as nursery:
        transport = await _served(nursery, False)
        done = Completion()
        deadline = trio.current_time() + 10.0
        nursery.start_soon(transport.alarms.wait_done, done, deadline)
        await trio.sleep(1.0)  # it is waiting
        with pytest.raises(RuntimeError, match="one waiter"):
            await transport.alarms.wait_done(done, deadline)
        with pytest.raises(RuntimeError, match="one waiter"):
            await done.wait()
        done.set()
        await done.wait()  # set: anyone may look, at a checkpoint
        nursery.cancel_scope.cancel()


async def test_when_the_transport_stops_serving_waits_go_on_under_trio_deadlines(autojump_clock):
    outer_log: list = []
    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as serving:
            transport = await _served(serving, False)
            start = trio.current_time()
            done = Completion()

            async def sleeper() -> None:
                await transport.alarms.sleep_until(start + 3.0)
                outer_log.append(("slept", trio.current_time() - start))

            async def waiter() -> None:
                applied = await transport.alarms.wait_done(done, start + 4.0)
                outer_log.append(("waited", applied, trio.current_time() - start))

            outer.start_soon(sleeper)
            outer.start_soon(waiter)
            await trio.sleep(1.0)
            serving.cancel_scope.cancel()  # the cluster closed; its user's tasks live on
        await trio.sleep(0.5)
        assert outer_log == []  # let go, but still waiting for their instants
        await transport.alarms.sleep_until(start + 2.0)  # not served: trio's own sleep
        assert trio.current_time() == start + 2.0
    assert outer_log == [("slept", 3.0), ("waited", False, 4.0)]


async def test_deadlines_of_waits_that_ended_early_do_not_pile_up(autojump_clock):
    """A client proposing every tick with a long timeout leaves one deadline per proposal
    behind, under a task sleeping until sooner (the heap's top); they are swept out long
    before their instants come."""
    async with trio.open_nursery() as nursery:
        transport = await _served(nursery, False)
        applied: list = []
        transport.attach(1, lambda done: (applied.append(done), done.set()))
        start = trio.current_time()
        nursery.start_soon(transport.alarms.sleep_until, start + 100.0)
        for number in range(1, 1001):
            done = Completion()
            transport.schedule(1, start + number * 0.01, done, kind=CLIENT, order=(1, number))
            assert await transport.alarms.wait_done(done, start + 3600.0)
            assert len(transport.alarms) <= 128
        assert len(applied) == 1000 and trio.current_time() == start + 10.0
        nursery.cancel_scope.cancel()
