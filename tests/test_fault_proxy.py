"""The fault proxy with plain sockets: real listeners on 127.0.0.1, ports picked at run time."""

from __future__ import annotations

import trio

from transports.proxy import open_fault_proxy


async def _serve(nursery: trio.Nursery, handler) -> str:
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    nursery.start_soon(trio.serve_listeners, handler, [listener])
    return f"127.0.0.1:{listener.socket.getsockname()[1]}"


async def _echo(stream: trio.SocketStream) -> None:
    try:
        async for data in stream:
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


def _sender_of(size: int):
    """A server that answers any first byte with ``size`` bytes (a snapshot stream's shape)."""
    async def send(stream: trio.SocketStream) -> None:
        try:
            await stream.receive_some(1)
            await stream.send_all(bytes(range(256)) * (size // 256))
            await stream.send_eof()
            await stream.receive_some(1)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    return send


async def _open(address: str) -> trio.SocketStream:
    host, _, port = address.rpartition(":")
    return await trio.open_tcp_stream(host, int(port))


async def _read_exactly(stream: trio.SocketStream, count: int) -> bytes:
    data = b""
    while len(data) < count:
        more = await stream.receive_some(count - len(data))
        if not more:
            break
        data += more
    return data


async def _read_to_end(stream: trio.SocketStream) -> tuple[bytes, bool]:
    """Everything until EOF; and whether the connection ended by a failure rather than EOF."""
    data = b""
    try:
        while True:
            more = await stream.receive_some(65536)
            if not more:
                return data, False
            data += more
    except trio.BrokenResourceError:
        return data, True


async def _connect_via(proxy_address: str, target: str) -> tuple[trio.SocketStream, bytes]:
    stream = await _open(proxy_address)
    await stream.send_all(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        more = await stream.receive_some(1)
        if not more:
            break
        head += more
    return stream, head.split(b"\r\n", 1)[0]


async def test_forward_relays_both_ways_and_counts_the_bytes(nursery) -> None:
    target = await _serve(nursery, _echo)
    async with open_fault_proxy() as proxy:
        address = await proxy.forward(1, 2, target)
        stream = await _open(address)
        await stream.send_all(b"hello over a proxied link")
        assert await _read_exactly(stream, 25) == b"hello over a proxied link"
        await stream.aclose()
        link = proxy.table.link(1, 2)
        assert (link.forward_bytes, link.back_bytes, link.connections) == (25, 25, 1)


async def test_egress_names_the_link_from_the_connect_line(nursery) -> None:
    node_2 = await _serve(nursery, _echo)
    node_3 = await _serve(nursery, _echo)
    async with open_fault_proxy() as proxy:
        proxy.addresses.update({1: "127.0.0.1:1", 2: node_2, 3: node_3})
        egress = await proxy.egress(1)
        stream, status = await _connect_via(egress, node_3)
        assert status.startswith(b"HTTP/1.1 200")
        await stream.send_all(b"ping")
        assert await _read_exactly(stream, 4) == b"ping"
        assert proxy.table.link(1, 3).forward_bytes == 4
        assert proxy.table.link(1, 2).connections == 0


async def test_egress_refuses_garbage_and_unknown_destinations_without_stopping(nursery) -> None:
    node_2 = await _serve(nursery, _echo)
    async with open_fault_proxy() as proxy:
        proxy.addresses.update({2: node_2})
        egress = await proxy.egress(1)
        garbage = await _open(egress)
        await garbage.send_all(b"\x00\x01 not http at all\r\n\r\n")
        assert (await _read_to_end(garbage))[0].startswith(b"HTTP/1.1 400")
        _, status = await _connect_via(egress, "127.0.0.1:9")
        assert status.startswith(b"HTTP/1.1 403")
        assert len(proxy.rejected) == 2 and "not a CONNECT request" in proxy.rejected[0]
        _, status = await _connect_via(egress, node_2)  # still serving
        assert status.startswith(b"HTTP/1.1 200")


async def test_one_way_blocks_one_direction_and_cuts_its_live_connections(nursery) -> None:
    node_1 = await _serve(nursery, _echo)
    node_2 = await _serve(nursery, _echo)
    async with open_fault_proxy() as proxy:
        proxy.addresses.update({1: node_1, 2: node_2})
        egress_1, egress_2 = await proxy.egress(1), await proxy.egress(2)
        live, _ = await _connect_via(egress_1, node_2)
        proxy.table.one_way(1, 2)
        data, failed = await _read_to_end(live)
        assert data == b"" and proxy.table.link(1, 2).cuts == 1
        _, status = await _connect_via(egress_1, node_2)
        assert status.startswith(b"HTTP/1.1 503")
        back, status = await _connect_via(egress_2, node_1)  # the other direction still works
        assert status.startswith(b"HTTP/1.1 200")
        await back.send_all(b"b reaches a")
        assert await _read_exactly(back, 11) == b"b reaches a"
        proxy.table.heal()
        _, status = await _connect_via(egress_1, node_2)
        assert status.startswith(b"HTTP/1.1 200")


async def test_partition_and_isolate_use_the_simulators_shapes(nursery) -> None:
    async with open_fault_proxy() as proxy:
        table = proxy.table
        table.partition([1, 2, 3], [1], [2, 3])
        assert table.blocked == {(1, 2), (2, 1), (1, 3), (3, 1)}
        table.partition([1, 2, 3], [1, 2])  # replaces: 3 is in no group, so alone
        assert table.blocked == {(1, 3), (3, 1), (2, 3), (3, 2)}
        table.heal()
        table.isolate([1, 2, 3], 2)
        assert table.blocked == {(2, 1), (1, 2), (2, 3), (3, 2)}


async def test_cut_closes_a_stream_mid_way_and_the_link_stays_usable(nursery) -> None:
    size = 8 * 1024 * 1024
    target = await _serve(nursery, _sender_of(size))
    async with open_fault_proxy() as proxy:
        address = await proxy.forward(2, 1, target)
        held = proxy.table.hold_back_after(2, 1, 3 * 1024 * 1024 + 100)
        stream = await _open(address)
        await stream.send_all(b"?")
        first = await _read_exactly(stream, 3 * 1024 * 1024 + 100)
        await held.wait()
        assert len(first) == 3 * 1024 * 1024 + 100
        assert proxy.table.link(2, 1).back_bytes == 3 * 1024 * 1024 + 100  # exactly: the hold is precise
        assert proxy.table.cut(2, 1) == 1
        rest, _ = await _read_to_end(stream)
        assert rest == b""  # nothing after the hold point crossed
        again = await _open(address)  # cut, not blocked: a new connection gets everything
        await again.send_all(b"?")
        whole, failed = await _read_to_end(again)
        assert len(whole) == size
        assert not failed
        assert proxy.table.link(2, 1).connections == 2


async def test_release_lets_a_held_link_flow_again(nursery) -> None:
    target = await _serve(nursery, _sender_of(1024 * 1024))
    async with open_fault_proxy() as proxy:
        address = await proxy.forward(2, 1, target)
        held = proxy.table.hold_back_after(2, 1, 1000)
        stream = await _open(address)
        await stream.send_all(b"?")
        assert len(await _read_exactly(stream, 1000)) == 1000
        await held.wait()
        proxy.table.release(2, 1)
        rest, failed = await _read_to_end(stream)
        assert len(rest) == 1024 * 1024 - 1000 and not failed
