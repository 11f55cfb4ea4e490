"""Per-link state and counters of the in-memory transport, and the statistics made of them."""

from __future__ import annotations

import random

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
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    #: ``kind -> [messages, bytes]`` sent. Updated for every message, so one plain dict
    #: of two-slot lists (a lookup and two list increments) rather than four Counter
    #: updates; the link's totals are the sums, made only when statistics are asked for.
    by_kind: dict[str, list[int]] = attrs.Factory(dict)

    @property
    def sent(self) -> int:
        return sum(counts[0] for counts in self.by_kind.values())

    @property
    def sent_bytes(self) -> int:
        return sum(counts[1] for counts in self.by_kind.values())


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
                        (kind, messages, sent_bytes)
                        for kind, (messages, sent_bytes) in sorted(state.by_kind.items())
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
