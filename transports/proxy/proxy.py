"""``FaultProxy``: the listeners that put every node-to-node connection on a controllable link.

Two front doors, one :class:`~.links.LinkTable`:

- **egress** (:meth:`FaultProxy.egress`): one HTTP ``CONNECT`` proxy per
  node. A node process started with ``grpc_proxy=http://ADDRESS`` in its
  environment opens every gRPC connection through it (grpcio's standard
  proxy support); the ``CONNECT HOST:PORT`` line names the destination, so
  the proxy knows the link ``(node, destination)`` without the nodes
  knowing about it. Nodes keep their real addresses everywhere (in
  ``--peers`` and in membership changes), so a node that joins later is
  proxied like the others.
- **forward** (:meth:`FaultProxy.forward`): a plain TCP port that relays to
  one fixed target as one fixed link, for programs that cannot be told to
  use a proxy (pysyncobj nodes, raw sockets in tests).

Each listens on ``127.0.0.1`` on a port the OS picks. Open the proxy with
``async with open_fault_proxy() as proxy:``; leaving the block closes every
listener and connection.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import trio

from .links import LinkTable
from .relay import Relay

#: Longest CONNECT request head accepted, and how long a client may take to send it.
MAX_HEAD = 8192
HEAD_TIMEOUT = 10.0


class FaultProxy:
    """See the module docstring."""

    def __init__(self, nursery: trio.Nursery, host: str = "127.0.0.1") -> None:
        self.nursery = nursery
        self.host = host
        self.table = LinkTable()
        #: node id -> the ``HOST:PORT`` it really listens on (destinations of CONNECT).
        self.addresses: dict[int, str] = {}
        #: Requests refused as malformed or for an unknown destination, with the reason.
        self.rejected: list[str] = []

    # -- front doors ----------------------------------------------------------------

    async def egress(self, node_id: int) -> str:
        """Start node ``node_id``'s CONNECT proxy; its ``HOST:PORT``."""
        return await self._listen(lambda stream: self._connect_request(node_id, stream))

    async def forward(self, src: int, dst: int, target: str) -> str:
        """Start a plain relay for the link ``src -> dst`` to ``target``; its ``HOST:PORT``."""
        return await self._listen(lambda stream: self._relay(src, dst, stream, target, b""))

    async def _listen(self, handler) -> str:
        [listener] = await trio.open_tcp_listeners(0, host=self.host)
        self.nursery.start_soon(trio.serve_listeners, handler, [listener])
        host, port = listener.socket.getsockname()[:2]
        return f"{host}:{port}"

    # -- connections ----------------------------------------------------------------

    def node_at(self, address: str) -> int | None:
        host, _, port = address.rpartition(":")
        host = "127.0.0.1" if host in ("localhost", "[::1]", "::1") else host
        for node_id, known in self.addresses.items():
            known_host, _, known_port = known.rpartition(":")
            known_host = "127.0.0.1" if known_host in ("localhost", "[::1]", "::1") else known_host
            if (known_host, known_port) == (host, port):
                return node_id
        return None

    async def _connect_request(self, node_id: int, stream: trio.SocketStream) -> None:
        head, rest = b"", b""
        with trio.move_on_after(HEAD_TIMEOUT):
            while b"\r\n\r\n" not in head and len(head) <= MAX_HEAD:
                data = await _receive(stream)
                if not data:
                    break
                head += data
        head, sep, rest = head.partition(b"\r\n\r\n")
        words = head.split(b"\r\n", 1)[0].split()
        if not sep or len(words) != 3 or words[0] != b"CONNECT" or not words[2].startswith(b"HTTP/1."):
            self.rejected.append(f"from node {node_id}: not a CONNECT request: {head[:80]!r}")
            await _answer(stream, b"400 Bad Request")
            return
        target = words[1].decode("ascii", "replace")
        dst = self.node_at(target)
        if dst is None:
            self.rejected.append(f"from node {node_id}: {target} is no known node; known: {self.addresses}")
            await _answer(stream, b"403 Forbidden")
            return
        await self._relay(node_id, dst, stream, target, rest, answer=True)

    async def _relay(self, src: int, dst: int, stream: trio.SocketStream, target: str, early: bytes,
                     *, answer: bool = False) -> None:
        table = self.table
        if table.is_blocked(src, dst):
            table.link(src, dst).refused += 1
            if answer:
                await _answer(stream, b"503 Link Blocked")
            await trio.aclose_forcefully(stream)
            return
        host, _, port = target.rpartition(":")
        try:
            upstream = await trio.open_tcp_stream(host.strip("[]"), int(port))
        except OSError:
            if answer:
                await _answer(stream, b"502 Bad Gateway")
            await trio.aclose_forcefully(stream)
            return
        try:
            if answer:
                await stream.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if early:
                await upstream.send_all(early)
        except (trio.BrokenResourceError, OSError):
            await trio.aclose_forcefully(upstream)
            await trio.aclose_forcefully(stream)
            return
        await Relay(table, table.link(src, dst), stream, upstream).run()


async def _receive(stream: trio.SocketStream) -> bytes:
    try:
        return await stream.receive_some(MAX_HEAD)
    except (trio.BrokenResourceError, OSError):
        return b""


async def _answer(stream: trio.SocketStream, status: bytes) -> None:
    try:
        await stream.send_all(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
    except (trio.BrokenResourceError, OSError):
        pass
    await trio.aclose_forcefully(stream)


@asynccontextmanager
async def open_fault_proxy(host: str = "127.0.0.1"):
    """A :class:`FaultProxy` whose listeners and relays live as long as the block."""
    async with trio.open_nursery() as nursery:
        proxy = FaultProxy(nursery, host)
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel()
