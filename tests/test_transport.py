"""``InMemoryClusterTransport`` on its own, without a Cluster.

Each test attaches recording inboxes, runs ``serve`` under the virtual
``autojump_clock`` and sends ``Message`` values by hand, so every arrival
time, drop and counter can be asserted exactly. Times are chosen as binary
fractions (0.25, 0.5, ...) so sums are exact in floating point.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from simulator.raft import Message, MessageType
from transports import Constant, Exponential, InMemoryClusterTransport, LinkConfig, Uniform
from transports.in_memory import CLIENT, MESSAGE, TIMER, Delivered


def message(src: int, dst: int, tag: int = 0, *, kind=MessageType.APPEND, padding: int = 0):
    """A message whose ``index`` identifies it; ``size`` is 64 header bytes + ``padding``."""
    return Message(kind, to=dst, from_=src, index=tag, context=b"p" * padding)


class Observer:
    """Records every observer call as a tuple."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_send(self, message, arrival):
        self.calls.append(("send", message.from_, message.to, message.index, arrival))

    def on_drop(self, message, reason):
        self.calls.append(("drop", message.from_, message.to, message.index, reason))

    def on_duplicate(self, message, arrival):
        self.calls.append(("duplicate", message.from_, message.to, message.index, arrival))

    def on_deliver(self, message):
        self.calls.append(("deliver", message.from_, message.to, message.index))

    def of(self, what: str) -> list[tuple]:
        return [call[1:] for call in self.calls if call[0] == what]


class Inboxes:
    """Attaches ``nodes``; records ``(trio.current_time(), item)`` per node and in global order."""

    def __init__(self, transport: InMemoryClusterTransport, nodes) -> None:
        self.received: dict[int, list[tuple[float, object]]] = {}
        self.order: list[tuple[float, int, object]] = []
        for node in nodes:
            self.attach(transport, node)

    def attach(self, transport, node: int) -> None:
        self.received.setdefault(node, [])
        transport.attach(node, functools.partial(self._deliver, node))

    def _deliver(self, node: int, item) -> None:
        now = trio.current_time()
        self.received[node].append((now, item))
        self.order.append((now, node, item))

    def messages(self, node: int) -> list[tuple[float, int, int]]:
        """``(time, source, tag)`` of messages delivered to ``node``."""
        return [
            (t, item.message.from_, item.message.index)
            for t, item in self.received[node]
            if isinstance(item, Delivered)
        ]

    def tags(self, node: int, source: int | None = None) -> list[int]:
        return [tag for _, src, tag in self.messages(node) if source is None or src == source]


@asynccontextmanager
async def serving(*transports: InMemoryClusterTransport):
    async with trio.open_nursery() as nursery:
        for transport in transports:
            await nursery.start(transport.serve)
        yield
        nursery.cancel_scope.cancel()


def make(link: LinkConfig | None = None, seed: int = 0, nodes=(1, 2, 3)):
    observer = Observer()
    transport = InMemoryClusterTransport(seed=seed, link=link, observer=observer)
    return transport, Inboxes(transport, nodes), observer


# -- latency ---------------------------------------------------------------------


async def test_constant_latency_delivers_at_send_time_plus_latency(autojump_clock):
    transport, inboxes, observer = make(LinkConfig(latency=Constant(0.25)))
    async with serving(transport):
        start = trio.current_time()
        transport.send(message(1, 2, tag=1))
        await trio.sleep(1.5)
        transport.send(message(1, 2, tag=2))
        await trio.sleep(10)
    assert inboxes.messages(2) == [(start + 0.25, 1, 1), (start + 1.75, 1, 2)]
    # The transport announces the arrival time when it accepts the message.
    assert observer.of("send") == [(1, 2, 1, start + 0.25), (1, 2, 2, start + 1.75)]
    assert observer.of("deliver") == [(1, 2, 1), (1, 2, 2)]


async def test_default_link_has_one_millisecond_constant_latency(autojump_clock):
    transport, inboxes, _ = make()
    async with serving(transport):
        start = trio.current_time()
        transport.send(message(1, 2))
        await trio.sleep(1)
    [(arrival, _, _)] = inboxes.messages(2)
    assert arrival - start == pytest.approx(0.001, abs=1e-12)


async def send_spaced(transport, count: int, spacing: float) -> list[float]:
    """Send ``count`` messages 1->2, ``spacing`` apart (tags 0..count-1); the send times."""
    sent_at = []
    for tag in range(count):
        sent_at.append(trio.current_time())
        transport.send(message(1, 2, tag))
        await trio.sleep(spacing)
    return sent_at


async def test_uniform_latency_stays_within_its_bounds(autojump_clock):
    transport, inboxes, _ = make(LinkConfig(latency=Uniform(0.01, 0.09)))
    async with serving(transport):
        # Spaced wider than the highest latency, so FIFO never holds a message back.
        sent_at = await send_spaced(transport, 200, spacing=1.0)
        await trio.sleep(1)
    delays = [t - sent_at[tag] for t, _, tag in inboxes.messages(2)]
    assert len(delays) == 200
    assert all(0.01 - 1e-9 <= delay <= 0.09 + 1e-9 for delay in delays)
    # Spread over the whole range, not stuck at one value.
    assert min(delays) < 0.02 and max(delays) > 0.08


async def test_exponential_latency_is_never_below_its_minimum(autojump_clock):
    transport, inboxes, _ = make(LinkConfig(latency=Exponential(mean=0.05, minimum=0.02)))
    async with serving(transport):
        sent_at = await send_spaced(transport, 200, spacing=5.0)
        await trio.sleep(5)
    delays = [t - sent_at[tag] for t, _, tag in inboxes.messages(2)]
    assert len(delays) == 200
    assert min(delays) >= 0.02 - 1e-9
    # A long tail above the mean, and ``mean`` is the mean (not a rate).
    assert max(delays) > 0.1
    assert 0.04 < sum(delays) / len(delays) < 0.06


async def test_random_latency_link_is_fifo_without_reordering(autojump_clock):
    """Latency varies far more than the gap between sends, yet nothing overtakes."""
    transport, inboxes, _ = make(LinkConfig(latency=Uniform(0.001, 0.5)))
    async with serving(transport):
        await send_spaced(transport, 100, spacing=0.01)
        await trio.sleep(1)
    arrivals = inboxes.messages(2)
    assert [tag for _, _, tag in arrivals] == list(range(100))
    times = [t for t, _, _ in arrivals]
    assert times == sorted(times)


async def test_reorder_one_lets_later_messages_overtake_earlier_ones(autojump_clock):
    transport, inboxes, _ = make(LinkConfig(latency=Uniform(0.001, 0.5), reorder=1.0))
    async with serving(transport):
        await send_spaced(transport, 50, spacing=0.01)
        await trio.sleep(2)
    tags = inboxes.tags(2)
    assert sorted(tags) == list(range(50))  # reordered, not lost
    assert tags != list(range(50))


# -- bandwidth -------------------------------------------------------------------


async def test_bandwidth_delays_a_message_by_its_transmission_time(autojump_clock):
    # 128 bytes at 128 B/s occupy the link for 1 s, then 0.25 s of latency.
    link = LinkConfig(latency=Constant(0.25), bandwidth=128)
    transport, inboxes, _ = make(link)
    async with serving(transport):
        start = trio.current_time()
        transport.send(message(1, 2, tag=1, padding=64))
        await trio.sleep(10)
    assert message(1, 2, padding=64).size == 128
    assert inboxes.messages(2) == [(start + 1.25, 1, 1)]


async def test_bandwidth_queues_a_second_message_behind_the_first(autojump_clock):
    link = LinkConfig(latency=Constant(0.25), bandwidth=128)
    transport, inboxes, _ = make(link)
    async with serving(transport):
        start = trio.current_time()
        transport.send(message(1, 2, tag=1, padding=64))  # 1.0 s on the wire
        transport.send(message(1, 2, tag=2))  # 64 bytes: 0.5 s, after the first
        transport.send(message(1, 3, tag=3, padding=64))  # another link: not queued
        await trio.sleep(5)
        transport.send(message(1, 2, tag=4))  # the link is idle again
        await trio.sleep(5)
    assert inboxes.messages(2) == [
        (start + 1.25, 1, 1),
        (start + 1.75, 1, 2),
        (start + 5.75, 1, 4),
    ]
    assert inboxes.messages(3) == [(start + 1.25, 1, 3)]


# -- loss, blocking, duplication, dead destinations -----------------------------------


async def test_loss_one_drops_every_message_as_lost(autojump_clock):
    transport, inboxes, observer = make(LinkConfig(loss=1.0))
    async with serving(transport):
        for tag in range(10):
            transport.send(message(1, 2, tag))
        await trio.sleep(1)
    assert inboxes.received[2] == []
    assert observer.of("drop") == [(1, 2, tag, "lost") for tag in range(10)]
    assert observer.of("send") == []
    stats = transport.statistics().link(1, 2)
    assert (stats.messages_sent, stats.messages_dropped, stats.messages_delivered) == (10, 10, 0)


async def test_blocked_link_drops_one_direction_until_unblocked(autojump_clock):
    transport, inboxes, observer = make()
    async with serving(transport):
        transport.block(1, 2)
        assert transport.is_blocked(1, 2) and not transport.is_blocked(2, 1)
        assert transport.blocked_links == [(1, 2)]
        transport.send(message(1, 2, tag=1))
        transport.send(message(2, 1, tag=2))
        await trio.sleep(1)
        assert inboxes.tags(2) == []
        assert inboxes.tags(1) == [2]
        assert observer.of("drop") == [(1, 2, 1, "link blocked")]

        transport.unblock(1, 2)
        assert transport.blocked_links == []
        transport.send(message(1, 2, tag=3))
        await trio.sleep(1)
    assert inboxes.tags(2) == [3]


async def test_duplicate_one_delivers_every_message_twice(autojump_clock):
    transport, inboxes, observer = make(LinkConfig(latency=Constant(0.25), duplicate=1.0))
    async with serving(transport):
        for tag in range(3):
            transport.send(message(1, 2, tag))
        await trio.sleep(1)
    assert sorted(inboxes.tags(2)) == [0, 0, 1, 1, 2, 2]
    assert [call[:3] for call in observer.of("duplicate")] == [(1, 2, 0), (1, 2, 1), (1, 2, 2)]
    stats = transport.statistics()
    assert (stats.messages_sent, stats.messages_delivered, stats.messages_duplicated) == (3, 6, 3)


async def test_message_for_a_detached_node_is_dropped_as_destination_down(autojump_clock):
    transport, inboxes, observer = make(LinkConfig(latency=Constant(0.25)))
    async with serving(transport):
        transport.send(message(1, 2, tag=1))
        await trio.sleep(0.125)
        transport.detach(2)  # crashed while the message was on the wire
        assert not transport.is_attached(2)
        await trio.sleep(1)
        assert observer.of("drop") == [(1, 2, 1, "destination down")]

        inboxes.attach(transport, 2)  # back up: new messages get through
        transport.send(message(1, 2, tag=2))
        await trio.sleep(1)
    assert inboxes.tags(2) == [2]
    stats = transport.statistics().link(1, 2)
    assert (stats.messages_sent, stats.messages_dropped, stats.messages_delivered) == (2, 1, 1)


class Command:
    """A client command that wants to know when it cannot be delivered."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reasons: list[str] = []

    def undeliverable(self, reason: str) -> None:
        self.reasons.append(reason)


async def test_scheduled_item_for_a_detached_node_is_told_it_is_undeliverable(autojump_clock):
    transport, inboxes, _ = make(nodes=(1,))
    command = Command("c")
    async with serving(transport):
        now = trio.current_time()
        transport.schedule(2, now + 0.5, command, kind=CLIENT, order=(1, 1))
        transport.schedule(2, now + 0.5, "a timer without the hook")  # silently discarded
        await trio.sleep(1)
    assert command.reasons == ["node 2 is down"]
    assert transport.delivered_items == 0
    assert transport.pending() == 0


async def test_attaching_a_node_twice_is_refused(autojump_clock):
    transport, _, _ = make(nodes=(1,))
    with pytest.raises(ValueError, match="node 1 is already attached"):
        transport.attach(1, lambda item: None)


async def test_set_link_overrides_one_direction_only(autojump_clock):
    transport, inboxes, _ = make(LinkConfig(latency=Constant(0.25)))
    transport.set_link(1, 2, LinkConfig(latency=Constant(0.5)))
    assert transport.link_config(2, 1) == LinkConfig(latency=Constant(0.25))
    async with serving(transport):
        start = trio.current_time()
        transport.send(message(1, 2, tag=1))
        transport.send(message(2, 1, tag=2))
        await trio.sleep(1)
        transport.reset_links()
        transport.send(message(1, 2, tag=3))
        await trio.sleep(1)
    assert inboxes.messages(2) == [(start + 0.5, 1, 1), (start + 1.25, 1, 3)]
    assert inboxes.messages(1) == [(start + 0.25, 2, 2)]


# -- scheduled items and the total order ----------------------------------------------


async def test_timer_and_client_items_arrive_at_exactly_their_time(autojump_clock):
    transport, inboxes, _ = make()
    async with serving(transport):
        start = trio.current_time()
        transport.schedule(1, start + 1.25, "timer-b")
        transport.schedule(1, start + 0.5, "timer-a")
        transport.schedule(2, start + 0.75, "client", kind=CLIENT, order=(1, 1))
        await trio.sleep(2)
    assert inboxes.received[1] == [(start + 0.5, "timer-a"), (start + 1.25, "timer-b")]
    assert inboxes.received[2] == [(start + 0.75, "client")]


async def test_schedule_refuses_the_message_kind(autojump_clock):
    transport, _, _ = make()
    with pytest.raises(ValueError, match="TIMER or CLIENT"):
        transport.schedule(1, trio.current_time() + 1, "x", kind=MESSAGE)


async def test_items_due_at_the_same_instant_follow_the_documented_total_order(autojump_clock):
    """Timers, then client commands, then messages; each by destination, source, sequence."""
    transport, inboxes, _ = make(LinkConfig(latency=Constant(0.25)))
    async with serving(transport):
        start = trio.current_time()
        due = start + 1.0
        # Scrambled call order: the delivery order must not depend on it.
        transport.schedule(2, due, "client c2#5 -> 2", kind=CLIENT, order=(2, 5))
        transport.schedule(2, due, "timer -> 2 (first)", kind=TIMER)
        transport.schedule(2, due, "client c1#9 -> 2", kind=CLIENT, order=(1, 9))
        transport.schedule(1, due, "client c3#1 -> 1", kind=CLIENT, order=(3, 1))
        transport.schedule(1, due, "timer -> 1")
        transport.schedule(2, due, "client c1#3 -> 2", kind=CLIENT, order=(1, 3))
        transport.schedule(2, due, "timer -> 2 (second)")
        await trio.sleep_until(due - 0.25)
        transport.send(message(3, 2, tag=32))
        transport.send(message(1, 2, tag=12))
        transport.send(message(2, 1, tag=21))
        transport.send(message(1, 2, tag=13))
        await trio.sleep(1)
    assert {t for t, _, _ in inboxes.order} == {due}
    order = [
        (node, f"message {item.message.index}" if isinstance(item, Delivered) else item)
        for _, node, item in inboxes.order
    ]
    assert order == [
        (1, "timer -> 1"),
        (2, "timer -> 2 (first)"),
        (2, "timer -> 2 (second)"),
        (1, "client c3#1 -> 1"),
        (2, "client c1#3 -> 2"),
        (2, "client c1#9 -> 2"),
        (2, "client c2#5 -> 2"),
        (1, "message 21"),
        (2, "message 12"),
        (2, "message 13"),
        (2, "message 32"),
    ]


async def test_a_settling_node_settles_once_per_instant_after_all_its_items(autojump_clock):
    """With ``settle``, every item of an instant is handed out first; then each node that
    got one settles once, in node-id order, whatever the order of kinds and sources."""
    transport = InMemoryClusterTransport(link=LinkConfig(latency=Constant(0.25)))
    log: list[tuple] = []
    for node in (3, 1, 2):  # attached out of order: settling must not follow attachment
        transport.attach(node, functools.partial(lambda node, item: log.append(("item", node, item)), node),
                         functools.partial(lambda node: log.append(("settle", node, trio.current_time())), node))
    async with serving(transport):
        due = trio.current_time() + 1.0
        transport.schedule(3, due, "timer -> 3")
        transport.schedule(1, due, "client -> 1", kind=CLIENT, order=(1, 1))
        await trio.sleep_until(due - 0.25)
        transport.send(message(2, 1, tag=21))
        transport.send(message(3, 1, tag=31))
        await trio.sleep(0.5)
        transport.send(message(1, 3, tag=13))  # a later instant: its own settle
        await trio.sleep(1)
    items = [(entry[1], entry[2] if isinstance(entry[2], str) else entry[2].message.index)
             for entry in log if entry[0] == "item"]
    assert items == [(3, "timer -> 3"), (1, "client -> 1"), (1, 21), (1, 31), (3, 13)]
    kinds = [entry[0] for entry in log]
    assert kinds == ["item"] * 4 + ["settle"] * 2 + ["item", "settle"]
    settles = [(entry[1], entry[2] - due) for entry in log if entry[0] == "settle"]
    assert settles == [(1, 0.0), (3, 0.0), (3, 0.5)]  # node 2 got nothing: it does not settle


async def test_an_item_filed_for_now_while_settling_is_handed_out_and_settled_in_the_same_instant(autojump_clock):
    transport = InMemoryClusterTransport()
    log: list[tuple] = []

    def settle(node: int) -> None:
        log.append(("settle", node))
        if node == 1 and len(log) < 4:  # something files an item for this very instant
            transport.schedule(2, transport.current_time(), "client -> 2", kind=CLIENT, order=(1, 1))

    for node in (1, 2):
        transport.attach(node, functools.partial(lambda node, item: log.append(("item", node, item)), node),
                         functools.partial(settle, node))
    async with serving(transport):
        transport.schedule(1, trio.current_time() + 1.0, "timer -> 1")
        await trio.sleep(2)
    assert log == [("item", 1, "timer -> 1"), ("settle", 1), ("item", 2, "client -> 2"), ("settle", 2)]


async def test_a_detached_node_no_longer_settles(autojump_clock):
    transport = InMemoryClusterTransport()
    settled: list[int] = []
    transport.attach(1, lambda item: None, lambda: settled.append(1))
    transport.detach(1)
    transport.attach(1, lambda item: None)  # back without a settle hook
    async with serving(transport):
        transport.schedule(1, trio.current_time() + 1.0, "timer -> 1")
        await trio.sleep(2)
    assert settled == []


# -- statistics ------------------------------------------------------------------------


async def test_statistics_count_messages_and_bytes_per_link_and_kind(autojump_clock):
    transport, _, _ = make()
    async with serving(transport):
        transport.send(message(1, 2, kind=MessageType.APPEND))  # 64 bytes
        transport.send(message(1, 2, kind=MessageType.APPEND, padding=10))  # 74 bytes
        transport.send(message(1, 2, kind=MessageType.HEARTBEAT))  # 64 bytes
        transport.send(message(2, 1, kind=MessageType.APPEND_RESPONSE, padding=1))  # 65 bytes
        transport.block(1, 3)
        transport.send(message(1, 3, kind=MessageType.HEARTBEAT))  # 64 bytes, dropped
        await trio.sleep(1)
    stats = transport.statistics()
    assert [link for link, _ in stats.links] == [(1, 2), (1, 3), (2, 1)]
    one_two = stats.link(1, 2)
    assert (one_two.messages_sent, one_two.bytes_sent, one_two.messages_delivered) == (3, 202, 3)
    assert one_two.by_kind == (("append", 2, 138), ("heartbeat", 1, 64))
    one_three = stats.link(1, 3)
    assert (one_three.messages_sent, one_three.bytes_sent) == (1, 64)
    assert (one_three.messages_delivered, one_three.messages_dropped) == (0, 1)
    assert one_three.by_kind == (("heartbeat", 1, 64),)
    assert stats.link(2, 1).by_kind == (("append_response", 1, 65),)
    assert stats.link(3, 1) is None
    assert (stats.messages_sent, stats.bytes_sent) == (5, 331)
    assert stats.messages_delivered == 4
    assert (stats.messages_dropped, stats.messages_duplicated) == (1, 0)


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: LinkConfig(latency=Constant(0)), "seconds"),
        (lambda: LinkConfig(latency=Constant(-0.5)), "seconds"),
        (lambda: LinkConfig(latency=Uniform(-0.1, 0.1)), "low"),
        (lambda: LinkConfig(latency=Uniform(0.1, 0)), "high"),
        (lambda: LinkConfig(latency=Uniform(0.5, 0.1)), "low"),
        (lambda: LinkConfig(latency=Exponential(mean=0)), "mean"),
        (lambda: LinkConfig(latency=Exponential(mean=0.1, minimum=0)), "minimum"),
        (lambda: LinkConfig(loss=1.5), "loss"),
        (lambda: LinkConfig(loss=-0.1), "loss"),
        (lambda: LinkConfig(duplicate=2.0), "duplicate"),
        (lambda: LinkConfig(reorder=1.01), "reorder"),
        (lambda: LinkConfig(bandwidth=0), "bandwidth"),
        (lambda: LinkConfig(bandwidth=-100), "bandwidth"),
    ],
)
def test_invalid_link_config_is_refused_naming_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()


def test_uniform_with_low_above_high_names_both_bounds():
    with pytest.raises(ValueError, match=r"low <= high.*0\.5 > 0\.1"):
        Uniform(0.5, 0.1)


# -- determinism ------------------------------------------------------------------------

NOISY = LinkConfig(latency=Uniform(0.001, 0.1), loss=0.2, duplicate=0.2, reorder=0.2)


def run_virtual(async_fn, *args):
    """Run ``async_fn`` in a fresh trio run on its own virtual clock starting at 0."""
    return trio.run(async_fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


async def scripted_run(seed: int, link: LinkConfig, links, count: int = 60):
    """Send ``count`` rounds (one message per link in ``links``, 1/128 s apart); what happened."""
    transport, inboxes, observer = make(link, seed=seed)
    async with serving(transport):
        for tag in range(count):
            for src, dst in links:
                transport.send(message(src, dst, tag))
            await trio.sleep(0.0078125)
        await trio.sleep(2)
    return inboxes, observer


def test_same_seed_and_links_give_identical_arrivals():
    links = [(1, 2), (2, 1), (3, 2)]
    first_inboxes, first_observer = run_virtual(scripted_run, 7, NOISY, links)
    second_inboxes, second_observer = run_virtual(scripted_run, 7, NOISY, links)
    assert first_inboxes.order == second_inboxes.order
    assert first_observer.calls == second_observer.calls
    # The run exercised every random decision.
    assert first_observer.of("drop") and first_observer.of("duplicate")
    assert first_inboxes.tags(2, source=1) != sorted(first_inboxes.tags(2, source=1))


def test_different_seeds_give_different_arrivals_with_random_latency():
    link = LinkConfig(latency=Uniform(0.001, 0.1))
    first, _ = run_virtual(scripted_run, 7, link, [(1, 2)])
    second, _ = run_virtual(scripted_run, 8, link, [(1, 2)])
    assert first.tags(2) == second.tags(2) == list(range(60))  # same messages, FIFO
    assert first.messages(2) != second.messages(2)  # at different times


def test_a_links_random_stream_ignores_traffic_on_other_links():
    alone, _ = run_virtual(scripted_run, 3, NOISY, [(1, 2)])
    # The same 1->2 sends, each surrounded by traffic on every other link.
    busy, _ = run_virtual(scripted_run, 3, NOISY, [(2, 1), (3, 2), (1, 2), (1, 3), (2, 3)])
    busy_from_one = [entry for entry in busy.messages(2) if entry[1] == 1]
    assert alone.messages(2) == busy_from_one
    assert len(busy.messages(2)) > len(busy_from_one)


# -- running alongside other tasks --------------------------------------------------------


async def test_two_transports_in_one_run_each_deliver_at_the_announced_arrival(autojump_clock):
    """E.g. two same-seed clusters side by side in one test: each transport has items due at
    the same instants, and neither may skip past the other's while fast-forwarding."""
    transports = [make(LinkConfig(latency=Constant(0.25)), seed=1) for _ in range(2)]
    async with serving(*(transport for transport, _, _ in transports)):
        start = trio.current_time()
        for transport, _, _ in transports:
            transport.set_link(1, 3, LinkConfig(latency=Constant(0.75)))
            transport.send(message(1, 2, tag=1))
            transport.send(message(1, 3, tag=2))
        await trio.sleep(2)
    for _, inboxes, _ in transports:
        assert inboxes.messages(2) == [(start + 0.25, 1, 1)]
        assert inboxes.messages(3) == [(start + 0.75, 1, 2)]


def test_transports_package_imports_on_its_own():
    """``from transports import LinkConfig`` must work as the first import of a program."""
    completed = subprocess.run(
        [sys.executable, "-c", "import transports; print(transports.LinkConfig())"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    assert completed.returncode == 0, completed.stderr
