"""What the in-memory transport hands to a node's inbox, and who hears about it.

Every item due to a node goes through its inbox in one total order; these are
the kinds of item (timers, client commands, messages), the wrapper of an
arriving message, and the observer hooks the trace implements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from simulator.raft import Message

#: Delivery kinds, in the order they are handed out within one instant.
TIMER, CLIENT, MESSAGE = 0, 1, 2


class Delivered:
    """A message arriving at its destination's inbox.

    One is made for every message sent, so it is a bare slotted class: an
    attrs frozen class spent more time in ``__init__`` than the heap push.
    """

    __slots__ = ("message",)

    def __init__(self, message: Message) -> None:
        self.message = message

    def __eq__(self, other: object) -> bool:
        return type(other) is Delivered and other.message == self.message

    __hash__ = None  # type: ignore[assignment]  # mutable slot: not a dict key

    def __repr__(self) -> str:
        return f"Delivered(message={self.message!r})"


@attrs.frozen
class ReadTimedOut:
    """A message its receiver stopped reading before it was whole (``Embedded(read_timeout=...)``,
    or a pulled response past its request timeout)."""

    message: Message
    reason: str


class TransportObserver:
    """Hooks the transport calls as it moves messages; the trace implements them."""

    def on_send(self, message: Message, arrival: float) -> None: ...

    def on_drop(self, message: Message, reason: str) -> None: ...

    def on_duplicate(self, message: Message, arrival: float) -> None: ...

    def on_deliver(self, message: Message) -> None: ...

    def on_batch(self) -> None:
        """Called before and after each batch of deliveries at one instant."""
