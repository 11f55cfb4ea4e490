"""One end of a streaming measurement, as its own OS process (run by ``grpc_streaming.py``).

Roles (the first argument):

- ``serve KIND SIZE CHUNK DIR``: save a SIZE-byte snapshot in a KIND store
  (memory or disk under DIR) and serve it with the node's own
  ``SnapshotTransfer`` service (``transports.grpc``: ``SnapshotServer``
  behind ``SnapshotService``, bridged to a trio thread as in a node
  process); prints ``{"address", "metadata"}`` and serves until stdin closes.
  The pulling roles also print the CPU seconds of their whole process
  (every thread, user and system) from the call to the end: the receiver's
  cost per byte, which decides its speed when the cores are shared.
- ``pull KIND CHUNK DIR ADDRESS METADATA_JSON IN_FLIGHT [SYNC_EVERY]``: pull that snapshot
  with the node's own ``SnapshotPuller`` into a KIND store (checksums per
  chunk, durable progress, digest at commit) and print the seconds from the
  offer to the verified commit.
- ``bare-serve SIZE CHUNK [OPTIONS]`` / ``bare-pull ADDRESS SIZE [STREAMS CHANNELS OPTIONS VERIFY]``:
  grpcio alone, the ceiling of any gRPC design in Python: server-streaming
  calls of ready-made CHUNK-byte messages (no protobuf, store, checksum or
  trio), STREAMS concurrent calls of equal ranges over CHANNELS connections,
  each read by a plain loop on its own thread, with the HTTP/2 OPTIONS of
  :data:`BARE_OPTIONS`, and with VERIFY=1 a receiver's per-byte work;
  prints the seconds from the calls to the last byte.
- ``verify-floor SIZE CHUNK``: no network at all: the per-byte work a receiver
  cannot skip, on SIZE bytes in CHUNK pieces, on one thread: each chunk's
  CRC-32C, the running digest of the snapshot (the store's: BLAKE3), and one copy into memory the
  receiver keeps (what a memory store holds); prints the seconds. A pull can
  be no faster than this unless that work runs beside the network on
  another core.
- ``raw-send ADDRESS SIZE PIECE [FILE]``: the baseline sender: SIZE bytes
  over one plain TCP connection, from memory (or read from FILE).
- ``raw-receive SIZE PIECE [FILE]``: the baseline receiver: prints its
  address, then reads SIZE bytes into a reused buffer (or writes them to FILE
  and fsyncs once at the end), and prints the seconds from the first byte.

Each prints one JSON object as its last line of stdout.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import MIB, peak_rss  # noqa: E402
from relay import SNAPSHOT_INDEX, SNAPSHOT_TERM, open_store, snapshot_blocks  # noqa: E402

CONF_STATE = ((1,), ())


def serve(kind: str, size: int, chunk: int, folder: str) -> None:
    import grpc
    import trio

    from transports.grpc.events import EventLog
    from transports.grpc.links import server_options
    from transports.grpc.services import SnapshotService, TrioBridge
    from transports.grpc.snapshot_serve import SnapshotServer

    store = open_store(kind, Path(folder) / "sender" if kind == "disk" else None, chunk)
    store.save_snapshot(SNAPSHOT_INDEX, snapshot_blocks(size), term=SNAPSHOT_TERM, conf_state=CONF_STATE)
    meta = store.snapshot_metadata(SNAPSHOT_INDEX)

    async def main() -> None:
        events = EventLog(1)
        node = SimpleNamespace(node_id=1, events=events, snapshot_server=SnapshotServer(1, store, events))
        server = grpc.server(ThreadPoolExecutor(max_workers=4), options=server_options())  # a node's
        server.add_generic_rpc_handlers((SnapshotService(TrioBridge(trio.lowlevel.current_trio_token()), node)
                                         .handler(),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        print(json.dumps({"address": f"127.0.0.1:{port}", "metadata": {
            "index": meta.index, "term": meta.term, "size": meta.size, "digest": meta.digest,
            "snapshot_id": meta.snapshot_id}}), flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes our stdin
        server.stop(grace=None)
        print(json.dumps({"peak_rss": peak_rss()}), flush=True)

    trio.run(main)


def offer_and_channel(metadata: str, address: str):
    """The snapshot offer node 1 sends node 2 for the served snapshot (``metadata``: the
    ``serve`` line's JSON), and a ready gRPC channel to the serving process."""
    import grpc

    from simulator.raft import ConfState, Message, MessageType, Snapshot, SnapshotMetadata
    from transports.grpc.links import channel_options

    fields = json.loads(metadata)
    offer = Message(msg_type=MessageType.SNAPSHOT, from_=1, to=2, term=fields["term"], snapshot=Snapshot(
        data=None, metadata=SnapshotMetadata(index=fields["index"], term=fields["term"],
                                             conf_state=ConfState.of(voters=[1]), size=fields["size"],
                                             digest=fields["digest"], snapshot_id=fields["snapshot_id"])))
    channel = grpc.insecure_channel(address, options=channel_options())
    grpc.channel_ready_future(channel).result(timeout=30)
    return offer, channel


def pull(kind: str, chunk: int, folder: str, address: str, metadata: str, in_flight: int,
         sync_every: int = 1) -> None:
    import trio

    from transports.grpc.events import EventLog
    from transports.grpc.snapshot_pull import SnapshotPuller

    store = open_store(kind, Path(folder) / "receiver" if kind == "disk" else None, chunk, sync_every)
    offer, channel = offer_and_channel(metadata, address)

    async def main() -> tuple[float, float]:
        done = trio.Event()
        puller = SnapshotPuller(2, store, EventLog(2), channel_to=lambda peer: channel,
                                deliver=lambda message: done.set(), chunks_in_flight=in_flight)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(puller.run)
            await trio.sleep(0.01)  # the puller's nursery is open
            started, cpu = time.perf_counter(), time.process_time()
            puller.on_offer(offer)
            await done.wait()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            nursery.cancel_scope.cancel()
        return seconds, cpu

    seconds, cpu = trio.run(main)
    assert store.has_snapshot(offer.snapshot.metadata.index), "the pull ended without a verified snapshot"
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss": peak_rss()}), flush=True)


#: grpcio options the bare rows can set on both ends (``--bare-options``): name -> channel arg.
BARE_OPTIONS = {
    "frame": "grpc.http2.max_frame_size",
    "lookahead": "grpc.http2.lookahead_bytes",
    "bdp": "grpc.http2.bdp_probe",
    "write_buffer": "grpc.http2.write_buffer_size",
    "read_chunk": "grpc.experimental.tcp_read_chunk_size",
    "min_read_chunk": "grpc.experimental.tcp_min_read_chunk_size",
    "max_read_chunk": "grpc.experimental.tcp_max_read_chunk_size",
}


def _bare_options(spec: str) -> list[tuple[str, int]]:
    """``frame=16777215,bdp=0`` -> grpcio channel args (empty spec: grpcio's defaults)."""
    options = []
    for item in filter(None, spec.split(",")):
        name, _, value = item.partition("=")
        options.append((BARE_OPTIONS[name], int(value)))
    return options


def _range_request(start: int, end: int) -> bytes:
    return start.to_bytes(8, "big") + end.to_bytes(8, "big")


def bare_serve(size: int, chunk: int, spec: str = "") -> None:
    """Serve ranges of SIZE bytes: a request is (start, end), the reply is that range in CHUNK
    messages, cut from one ready-made block (no copy beyond grpcio's own)."""
    import grpc

    block = next(snapshot_blocks(chunk, chunk))

    def stream(request, context):
        start, end = int.from_bytes(request[:8], "big"), int.from_bytes(request[8:16], "big")
        for offset in range(start, end, chunk):
            yield block[: min(chunk, end - offset)]

    server = grpc.server(ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_send_message_length", 1 << 30), *_bare_options(spec)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "bench.Bare", {"Stream": grpc.unary_stream_rpc_method_handler(stream)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"address": f"127.0.0.1:{port}"}), flush=True)
    sys.stdin.read()
    server.stop(grace=None)
    print(json.dumps({"peak_rss": peak_rss()}), flush=True)


def bare_pull(address: str, size: int, streams: int = 1, channels: int = 1, spec: str = "",
              verify: int = 0) -> None:
    """Pull SIZE bytes as STREAMS concurrent calls of equal ranges, each read by its own thread,
    spread over CHANNELS channels (each its own TCP connection: a local subchannel pool and a
    distinct channel arg keep grpcio from sharing one). With VERIFY=1 every message also gets a
    receiver's per-byte work (CRC-32C, the store's running digest, one copy kept): on the reading
    thread for the CRC, on one consumer for the digest and copy, as a verifying receiver must."""
    import queue

    import grpc

    from simulator.snapshots.checksums import chunk_checksum
    from simulator.snapshots.digests import new_hasher

    kept, hasher, handed = [], new_hasher(), queue.Queue(maxsize=16)

    def consume() -> None:
        while (message := handed.get()) is not None:
            hasher.update(message)
            kept.append(bytes(message))

    consumer = threading.Thread(target=consume) if verify else None

    options = [("grpc.max_receive_message_length", 1 << 30), *_bare_options(spec)]
    if channels > 1:
        options.append(("grpc.use_local_subchannel_pool", 1))
    opened = [grpc.insecure_channel(address, options=[*options, ("bench.channel", number)])
              for number in range(channels)]
    for channel in opened:
        grpc.channel_ready_future(channel).result(timeout=30)
    step = -(-size // streams)
    ranges = [(start, min(start + step, size)) for start in range(0, size, step)]
    received = [0] * len(ranges)

    def read(number: int) -> None:
        call = opened[number % channels].unary_stream("/bench.Bare/Stream")(_range_request(*ranges[number]))
        count = 0
        for message in call:
            count += len(message)
            if verify:
                chunk_checksum(message)
                handed.put(message)
        received[number] = count

    started, cpu = time.perf_counter(), time.process_time()
    if consumer is not None:
        consumer.start()
    with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
        list(pool.map(read, range(len(ranges))))
    if consumer is not None:
        handed.put(None)
        consumer.join()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert sum(received) == size, f"{sum(received)} bytes received, {size} expected"
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss": peak_rss()}), flush=True)


def verify_floor(size: int, chunk: int) -> None:
    from simulator.snapshots.checksums import chunk_checksum
    from simulator.snapshots.digests import new_hasher

    block = next(snapshot_blocks(chunk, chunk))
    kept, hasher = [], new_hasher()  # the digest a store computes as it receives (BLAKE3)
    started = time.perf_counter()
    for offset in range(0, size, chunk):
        data = memoryview(block)[: min(chunk, size - offset)]
        chunk_checksum(data)
        hasher.update(data)
        kept.append(bytes(data))
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "kept": sum(map(len, kept)), "peak_rss": peak_rss()}), flush=True)


def raw_send(address: str, size: int, piece: int, source: str | None) -> None:
    host, _, port = address.rpartition(":")
    block = memoryview(next(snapshot_blocks(piece, piece)))
    with socket.create_connection((host, int(port))) as connection:
        if source:
            with open(source, "rb") as file:
                while data := file.read(piece):
                    connection.sendall(data)
        else:
            sent = 0
            while sent < size:
                length = min(piece, size - sent)
                connection.sendall(block[:length])
                sent += length
        connection.shutdown(socket.SHUT_WR)
        connection.recv(1)  # the receiver closes when it has everything
    print(json.dumps({"sent": size}), flush=True)


def raw_receive(size: int, piece: int, target: str | None) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    print(json.dumps({"address": "127.0.0.1:%d" % listener.getsockname()[1]}), flush=True)
    connection, _ = listener.accept()
    buffer = bytearray(piece)
    view = memoryview(buffer)
    received = 0
    file = open(target, "wb") if target else None
    started = None
    try:
        while received < size:
            count = connection.recv_into(view)
            if not count:
                break
            if started is None:
                started = time.perf_counter()
            if file is not None:
                file.write(view[:count])
            received += count
        if file is not None:
            file.flush()
            os.fsync(file.fileno())
    finally:
        if file is not None:
            file.close()
    seconds = time.perf_counter() - started
    connection.close()
    print(json.dumps({"seconds": seconds, "received": received, "peak_rss": peak_rss()}), flush=True)


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role == "serve":
        serve(rest[0], int(rest[1]), int(rest[2]), rest[3])
    elif role == "pull":
        pull(rest[0], int(rest[1]), rest[2], rest[3], rest[4], int(rest[5]), int(rest[6]) if len(rest) > 6 else 1)
    elif role == "bare-serve":
        bare_serve(int(rest[0]), int(rest[1]), *rest[2:3])
    elif role == "bare-pull":
        bare_pull(rest[0], int(rest[1]), *map(int, rest[2:4]), *rest[4:5], *map(int, rest[5:6]))
    elif role == "verify-floor":
        verify_floor(int(rest[0]), int(rest[1]))
    elif role == "raw-send":
        raw_send(rest[0], int(rest[1]), int(rest[2]), rest[3] if len(rest) > 3 else None)
    elif role == "raw-receive":
        raw_receive(int(rest[0]), int(rest[1]), rest[2] if len(rest) > 2 else None)
    else:
        raise SystemExit(f"role must be serve, pull, bare-serve, bare-pull, verify-floor, raw-send or raw-receive, "
                         f"got {role!r}; MIB={MIB}")
