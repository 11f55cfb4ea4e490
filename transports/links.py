"""How one directed link between two nodes behaves: latency, bandwidth, loss.

A :class:`LinkConfig` is a plain value; the transport keeps one per directed
link (a cluster-wide default plus overrides). Latency distributions draw
from the link's own ``random.Random``, so two links never share a stream
and a run replays exactly from its seed.

When to use which latency:

- :class:`Constant` for teaching and golden outputs: every message takes the
  same time, so the story is easy to follow.
- :class:`Uniform` for a LAN-like jitter that still keeps a hard upper bound.
- :class:`Exponential` (with a floor) for long tails: most messages are
  quick, a few are very late, which is what shakes out timeout bugs.
"""

from __future__ import annotations

import math
import random

import attrs

#: The smallest latency a link may have. Positive, so a message is never
#: delivered in the instant it was sent: that keeps delivery order total.
MIN_LATENCY = 1e-6


def _positive(instance, attribute, value) -> None:
    if not value >= MIN_LATENCY:
        raise ValueError(f"{attribute.name} must be >= {MIN_LATENCY} s, got {value!r}")


@attrs.frozen
class Constant:
    """Every message takes ``seconds``."""

    seconds: float = attrs.field(validator=_positive)

    def sample(self, rng: random.Random) -> float:
        return self.seconds

    @property
    def mean(self) -> float:
        return self.seconds


@attrs.frozen
class Uniform:
    """Latency drawn uniformly from ``[low, high]``."""

    low: float = attrs.field(validator=_positive)
    high: float = attrs.field(validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.high < self.low:
            raise ValueError(f"Uniform latency needs low <= high, got {self.low} > {self.high}")

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2


@attrs.frozen
class Exponential:
    """``minimum`` plus an exponential tail with mean ``mean - minimum``."""

    mean: float = attrs.field(validator=_positive)
    minimum: float = attrs.field(default=MIN_LATENCY, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.mean < self.minimum:
            raise ValueError(
                f"Exponential latency needs mean >= minimum, got {self.mean} < {self.minimum}"
            )

    def sample(self, rng: random.Random) -> float:
        tail = self.mean - self.minimum
        return self.minimum + (rng.expovariate(1 / tail) if tail > 0 else 0.0)


Latency = Constant | Uniform | Exponential


def _probability(instance, attribute, value) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} is a probability in [0, 1], got {value!r}")


def _bandwidth(instance, attribute, value) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"bandwidth is bytes per second > 0 (or None for unlimited), got {value!r}")


@attrs.frozen
class LinkConfig:
    """Behaviour of one directed link.

    - ``latency``: time from the last byte leaving to the message arriving.
    - ``bandwidth``: bytes per second; a message occupies the link for
      ``size / bandwidth`` seconds, and messages queue behind it (FIFO).
      ``None`` means unlimited.
    - ``loss``: probability a message is silently dropped.
    - ``duplicate``: probability a message arrives twice.
    - ``reorder``: probability a message is held back by one more latency
      sample, so later messages may overtake it. With 0, a link is FIFO.
    """

    latency: Latency = Constant(0.001)
    bandwidth: float | None = attrs.field(default=None, validator=_bandwidth)
    loss: float = attrs.field(default=0.0, validator=_probability)
    duplicate: float = attrs.field(default=0.0, validator=_probability)
    reorder: float = attrs.field(default=0.0, validator=_probability)

    def transmission_time(self, size: int) -> float:
        """Seconds the link is busy sending ``size`` bytes."""
        if self.bandwidth is None or math.isinf(self.bandwidth):
            return 0.0
        return size / self.bandwidth
