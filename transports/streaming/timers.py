"""Timers a streaming endpoint arms through its node's inbox, and how it compares times."""

from __future__ import annotations

import attrs

#: Virtual times are floats: a timer armed for "the rest of the period" may come
#: back a rounding error early. Closer than this counts as on time.
TIME_EPSILON = 1e-9


@attrs.frozen
class StreamTimer:
    """Inbox item: wake the endpoint. ``generation`` ignores timers of a finished transfer."""

    purpose: str  # "receive_idle", "send_next", "send_idle", "offer_timeout"
    peer: int
    snapshot_id: str
    generation: int
