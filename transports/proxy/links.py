"""The fault table of a proxied network: which directed links work, and what each one carries.

Theory of operation. A *link* ``(src, dst)`` is every TCP connection that
node ``src`` opens to node ``dst``: the calls ``src`` makes (its Raft
messages, the snapshot chunks it pulls) and their answers. A Raft message
from ``a`` to ``b`` therefore travels on link ``(a, b)`` only, so blocking
that one link is the simulator's ``one_way(a, b)``.

A blocked link cuts its live connections and refuses new ones, as an
unplugged cable would once TCP notices; ``heal`` lets them connect again.
``cut`` closes the live connections of a link but keeps it open: the
callers see their calls fail mid-stream and connect again.

``hold_back_after(src, dst, n)`` lets exactly ``n`` more bytes of answers
(``dst`` to ``src``) through the link and then stops forwarding them until
the link is cut or released: the run uses it to stop a snapshot stream
right after chunk ``k`` whatever the speed of the machine, then acts (cut
the stream, kill the receiver) once the receiver shows what it verified.

The shapes (``partition``, ``isolate``, ``one_way``) are the simulator's own
(:mod:`transports.faults`): the same words on both networks.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import trio

from .. import faults

Link = tuple[int, int]
FORWARD, BACK = "forward", "back"


@attrs.define(eq=False)
class LinkState:
    """What one directed link carried so far, and what holds it."""

    src: int
    dst: int
    connections: int = 0  # opened so far
    refused: int = 0  # connections refused while blocked
    cuts: int = 0  # live connections closed by cut/block
    forward_bytes: int = 0  # src -> dst
    back_bytes: int = 0  # dst -> src
    #: Answer bytes still let through before the link holds; None: no hold.
    back_allowance: int | None = None
    held: trio.Event = attrs.Factory(trio.Event)
    released: trio.Event = attrs.Factory(trio.Event)
    live: set = attrs.Factory(set)  # Relays open on this link

    def snapshot(self) -> dict:
        return {"src": self.src, "dst": self.dst, "connections": self.connections, "refused": self.refused,
                "cuts": self.cuts, "forward_bytes": self.forward_bytes, "back_bytes": self.back_bytes,
                "live": len(self.live), "holding": self.held.is_set() and not self.released.is_set()}


class LinkTable:
    """Blocked links, per-link counters and holds; see the module docstring."""

    def __init__(self) -> None:
        self.blocked: set[Link] = set()
        self._links: dict[Link, LinkState] = {}

    def link(self, src: int, dst: int) -> LinkState:
        state = self._links.get((src, dst))
        if state is None:
            state = self._links[(src, dst)] = LinkState(src, dst)
        return state

    def statistics(self) -> list[dict]:
        return [self._links[key].snapshot() for key in sorted(self._links)]

    def is_blocked(self, src: int, dst: int) -> bool:
        return (src, dst) in self.blocked

    # -- the fault vocabulary ---------------------------------------------------------

    def block(self, links: Iterable[Link]) -> None:
        for src, dst in sorted(set(links)):
            self.blocked.add((src, dst))
            self.cut(src, dst)

    def partition(self, nodes: Iterable[int], *groups: Iterable[int]) -> None:
        """Nodes talk only within their group; replaces the faults in force."""
        shape = faults.partition(nodes, *groups)
        self.heal()
        self.block(shape)

    def isolate(self, nodes: Iterable[int], node: int) -> None:
        self.block(faults.isolate(nodes, node))

    def one_way(self, a: int, b: int) -> None:
        self.block(faults.one_way(a, b))

    def heal(self) -> None:
        self.blocked.clear()

    def cut(self, src: int, dst: int) -> int:
        """Close the live connections of ``src -> dst`` (the link stays usable); how many."""
        state = self.link(src, dst)
        relays = list(state.live)
        for relay in relays:
            relay.cut()
        state.cuts += len(relays)
        self.release(src, dst)
        return len(relays)

    def cut_between(self, a: int, b: int) -> int:
        """Cut both directions between ``a`` and ``b``."""
        return self.cut(a, b) + self.cut(b, a)

    # -- holds --------------------------------------------------------------------------

    def hold_back_after(self, src: int, dst: int, count: int) -> trio.Event:
        """Forward ``count`` more answer bytes on ``src -> dst``, then stop; the event fires then."""
        if count < 0:
            raise ValueError(f"a byte count >= 0 expected, got {count}")
        state = self.link(src, dst)
        state.back_allowance = count
        state.held = trio.Event()
        state.released = trio.Event()
        if count == 0:
            state.held.set()
        return state.held

    def release(self, src: int, dst: int) -> None:
        """Forget the hold on ``src -> dst``: its bytes flow freely again."""
        state = self.link(src, dst)
        state.back_allowance = None
        state.released.set()

    def allowance(self, state: LinkState, direction: str, wanted: int) -> int | None:
        """How many of ``wanted`` bytes may pass now; 0 means wait for ``state.released``."""
        if direction == FORWARD or state.back_allowance is None:
            return wanted
        return min(wanted, state.back_allowance)

    def carried(self, state: LinkState, direction: str, count: int) -> None:
        if direction == FORWARD:
            state.forward_bytes += count
            return
        state.back_bytes += count
        if state.back_allowance is not None:
            # Two connections of one link reading at once may overshoot by a read; clamp.
            state.back_allowance = max(0, state.back_allowance - count)
            if state.back_allowance == 0:
                state.held.set()
