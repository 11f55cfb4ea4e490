"""Each node's clock, and its faults: drift (a clock that runs fast or slow) and jumps.

A node knows time only by its ticks (``RawNode.tick``): elections, heartbeats,
check-quorum and read leases all count them. So a clock fault is a change in
when a node's ticks come, decided here and applied by the cluster when it
delivers a node's :class:`~simulator.cluster.node.Tick`:

============  ==============================================================
drift +x %    the node ticks every ``tick_interval / (1 + x/100)`` seconds:
              its timeouts pass sooner (x > 0) or later (x < 0) than its
              peers'
jump +s       the node's clock leaps ahead: its next tick brings
              ``s / tick_interval`` extra ticks at once
jump -s       the node's clock is set back: it ticks not at all for ``s``
              seconds, then as before
============  ==============================================================

Raft's safety never depends on clocks, with one exception the theory names:
a leader serving reads from a lease (``ReadOnlyOption.LEASE_BASED``) assumes
its clock runs no slower than its followers' by more than the lease's
margin. ``scenarios/stale_lease_read.py`` shows what happens past that bound.

Everything here is a function of the virtual time it is given, so runs with
clock faults replay byte for byte like any other.
"""

from __future__ import annotations

import math

import attrs


@attrs.define
class NodeClocks:
    """The clock faults in force, per node; the default is a perfect clock."""

    tick_interval: float
    rates: dict[int, float] = attrs.Factory(dict)  # 1.0 = true time; absent = 1.0
    stalled_until: dict[int, float] = attrs.Factory(dict)
    extra_ticks: dict[int, int] = attrs.Factory(dict)

    def drift(self, node_id: int, percent: float) -> None:
        if not math.isfinite(percent) or percent <= -100:
            raise ValueError(f"clock drift must be a finite percentage above -100, got {percent}")
        if percent == 0:
            self.rates.pop(node_id, None)
        else:
            self.rates[node_id] = 1 + percent / 100

    def jump(self, node_id: int, seconds: float, now: float) -> int:
        """Leap ``node_id``'s clock by ``seconds`` (back if negative); the ticks it gains or loses."""
        if not math.isfinite(seconds) or seconds == 0:
            raise ValueError(f"a clock jump needs a finite, non-zero number of seconds, got {seconds}")
        ticks = int(abs(seconds) / self.tick_interval)
        if seconds > 0:
            self.extra_ticks[node_id] = self.extra_ticks.get(node_id, 0) + ticks
        else:
            self.stalled_until[node_id] = max(self.stalled_until.get(node_id, now), now) + abs(seconds)
        return ticks if seconds > 0 else -ticks

    def rate(self, node_id: int) -> float:
        return self.rates.get(node_id, 1.0)

    def ticks_due(self, node_id: int, now: float) -> int:
        """How many ticks the node's clock gives at this tick of real time: 1, 0 while set back, more after a leap."""
        stalled = self.stalled_until.get(node_id)
        if stalled is not None:
            if now < stalled:
                return 0
            del self.stalled_until[node_id]
        return 1 + self.extra_ticks.pop(node_id, 0)

    def next_tick(self, node_id: int, now: float) -> float:
        """When the node's next tick comes, in real (virtual) time."""
        rate = self.rates.get(node_id)
        # Exactly now + tick_interval for a perfect clock: traces without clock faults stay as they were.
        return now + self.tick_interval if rate is None else now + self.tick_interval / rate


class ClockFaultsMixin:
    """The clock half of :class:`~simulator.cluster.cluster.Cluster`'s fault vocabulary."""

    def drift_clock(self, node_id: int, percent: float) -> None:
        """Make ``node_id``'s clock run ``percent`` % fast (or slow, if negative) from now on; 0 heals it."""
        self._runner(node_id)  # an unknown node is an error
        self.clocks.drift(node_id, percent)
        self._fault("clock_drift", node_id=node_id, percent=percent)

    def jump_clock(self, node_id: int, seconds: float) -> None:
        """Leap ``node_id``'s clock ``seconds`` ahead (or back, if negative), as an NTP step would."""
        self._runner(node_id)
        ticks = self.clocks.jump(node_id, seconds, self.transport.current_time())
        self._fault("clock_jump", node_id=node_id, seconds=seconds, ticks=ticks)

    def clock_rate(self, node_id: int) -> float:
        """``node_id``'s clock speed relative to true time (1.0: no drift)."""
        return self.clocks.rate(node_id)
