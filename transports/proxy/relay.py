"""One proxied TCP connection: two pumps copying bytes each way, obeying the link's faults.

A relay belongs to one directed link (:class:`~.links.LinkState`). It counts
what it carries, honours the link's hold on answers (forwarding exactly the
allowance, then waiting), and ends when both sides have closed, when either
side fails, or when the link is cut (then both sockets are closed at once,
so each end sees its connection drop mid-stream).
"""

from __future__ import annotations

import trio

from .links import BACK, FORWARD, LinkState, LinkTable

#: Largest read per step: big enough for loopback speed, small enough to hold precisely.
READ_SIZE = 256 * 1024


class Relay:
    """See the module docstring. ``await run()`` copies until the connection ends."""

    def __init__(self, table: LinkTable, state: LinkState, client: trio.SocketStream,
                 upstream: trio.SocketStream) -> None:
        self.table = table
        self.state = state
        self.client = client
        self.upstream = upstream
        self._scope = trio.CancelScope()

    def cut(self) -> None:
        self._scope.cancel()

    async def run(self) -> None:
        self.state.live.add(self)
        self.state.connections += 1
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, self.client, self.upstream, FORWARD)
                    nursery.start_soon(self._pump, self.upstream, self.client, BACK)
        finally:
            self.state.live.discard(self)
            for stream in (self.client, self.upstream):
                await trio.aclose_forcefully(stream)

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream, direction: str) -> None:
        state = self.state
        try:
            while True:
                allowed = self.table.allowance(state, direction, READ_SIZE)
                if not allowed:
                    released = state.released
                    await released.wait()  # a cut cancels this wait with the rest of the relay
                    continue
                data = await source.receive_some(allowed)
                if not data:
                    await sink.send_eof()
                    return
                # Count before the await below, so a second connection on the link sees
                # the allowance already spent.
                self.table.carried(state, direction, len(data))
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.cut()  # one side failed: the other must see the connection end too
