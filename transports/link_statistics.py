"""Per-link state and counters of the in-memory transport, and the statistics made of them."""

from __future__ import annotations

import random
from collections import Counter

import attrs

Link = tuple[int, int]


@attrs.frozen
class LinkStatistics:
    messages_sent: int
    bytes_sent: int
    messages_delivered: int
    messages_dropped: int
    messages_duplicated: int
    by_kind: tuple[tuple[str, int, int], ...]  # (kind, messages, bytes) sent


@attrs.frozen
class TransportStatistics:
    """Counters of the whole network and of each directed link."""

    messages_sent: int
    bytes_sent: int
    messages_delivered: int
    messages_dropped: int
    messages_duplicated: int
    links: tuple[tuple[Link, LinkStatistics], ...]

    def link(self, src: int, dst: int) -> LinkStatistics | None:
        return dict(self.links).get((src, dst))


@attrs.define(eq=False)
class LinkState:
    """What the transport keeps per directed link: its generator, queue and counters."""

    rng: random.Random
    busy_until: float = 0.0
    last_arrival: float = 0.0
    sequence: int = 0
    sent: int = 0
    sent_bytes: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    kind_messages: Counter = attrs.Factory(Counter)
    kind_bytes: Counter = attrs.Factory(Counter)


def transport_statistics(links: dict[Link, LinkState]) -> TransportStatistics:
    """The network's counters, and each directed link's, in link order."""
    per_link = []
    for key in sorted(links):
        state = links[key]
        per_link.append(
            (
                key,
                LinkStatistics(
                    messages_sent=state.sent,
                    bytes_sent=state.sent_bytes,
                    messages_delivered=state.delivered,
                    messages_dropped=state.dropped,
                    messages_duplicated=state.duplicated,
                    by_kind=tuple(
                        (kind, state.kind_messages[kind], state.kind_bytes[kind])
                        for kind in sorted(state.kind_messages)
                    ),
                ),
            )
        )
    return TransportStatistics(
        messages_sent=sum(s.messages_sent for _, s in per_link),
        bytes_sent=sum(s.bytes_sent for _, s in per_link),
        messages_delivered=sum(s.messages_delivered for _, s in per_link),
        messages_dropped=sum(s.messages_dropped for _, s in per_link),
        messages_duplicated=sum(s.messages_duplicated for _, s in per_link),
        links=tuple(per_link),
    )
