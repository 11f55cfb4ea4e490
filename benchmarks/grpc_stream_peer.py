"""One end of a streaming measurement, as its own OS process (run by ``grpc_streaming.py``).

Roles (the first argument):

- ``serve KIND SIZE CHUNK DIR``: save a SIZE-byte snapshot in a KIND store
  (memory or disk under DIR) and serve it with the node's own
  ``SnapshotTransfer`` service (``transports.grpc``: ``SnapshotServer``
  behind ``SnapshotService``, bridged to a trio thread as in a node
  process); prints ``{"address", "metadata"}`` and serves until stdin closes.
- ``pull KIND CHUNK DIR ADDRESS METADATA_JSON IN_FLIGHT [SYNC_EVERY]``: pull that snapshot
  with the node's own ``SnapshotPuller`` into a KIND store (checksums per
  chunk, durable progress, sha256 at commit) and print the seconds from the
  offer to the verified commit.
- ``bare-serve SIZE CHUNK`` / ``bare-pull ADDRESS SIZE``: grpcio alone, the
  ceiling of any gRPC design in Python: a server-streaming call of ready-made
  CHUNK-byte messages (no protobuf, store, checksum or trio), read by a plain
  loop; prints the seconds from the call to the last byte.
- ``verify-floor SIZE CHUNK``: no network at all: the per-byte work a receiver
  cannot skip, on SIZE bytes in CHUNK pieces, on one thread: each chunk's
  CRC-32C, the running sha256 of the snapshot, and one copy into memory the
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
    from transports.grpc.links import MAX_MESSAGE_BYTES
    from transports.grpc.services import SnapshotService, TrioBridge
    from transports.grpc.snapshot_serve import SnapshotServer

    store = open_store(kind, Path(folder) / "sender" if kind == "disk" else None, chunk)
    store.save_snapshot(SNAPSHOT_INDEX, snapshot_blocks(size), term=SNAPSHOT_TERM, conf_state=CONF_STATE)
    meta = store.snapshot_metadata(SNAPSHOT_INDEX)

    async def main() -> None:
        events = EventLog(1)
        node = SimpleNamespace(node_id=1, events=events, snapshot_server=SnapshotServer(1, store, events))
        server = grpc.server(ThreadPoolExecutor(max_workers=4),
                             options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
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


def pull(kind: str, chunk: int, folder: str, address: str, metadata: str, in_flight: int,
         sync_every: int = 1) -> None:
    import grpc
    import trio

    from simulator.raft import ConfState, Message, MessageType, Snapshot, SnapshotMetadata
    from transports.grpc.events import EventLog
    from transports.grpc.links import channel_options
    from transports.grpc.snapshot_pull import SnapshotPuller

    store = open_store(kind, Path(folder) / "receiver" if kind == "disk" else None, chunk, sync_every)
    fields = json.loads(metadata)
    offer = Message(msg_type=MessageType.SNAPSHOT, from_=1, to=2, term=fields["term"], snapshot=Snapshot(
        data=None, metadata=SnapshotMetadata(index=fields["index"], term=fields["term"],
                                             conf_state=ConfState.of(voters=[1]), size=fields["size"],
                                             digest=fields["digest"], snapshot_id=fields["snapshot_id"])))
    channel = grpc.insecure_channel(address, options=channel_options())
    grpc.channel_ready_future(channel).result(timeout=30)

    async def main() -> float:
        done = trio.Event()
        puller = SnapshotPuller(2, store, EventLog(2), channel_to=lambda peer: channel,
                                deliver=lambda message: done.set(), chunks_in_flight=in_flight)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(puller.run)
            await trio.sleep(0.01)  # the puller's nursery is open
            started = time.perf_counter()
            puller.on_offer(offer)
            await done.wait()
            seconds = time.perf_counter() - started
            nursery.cancel_scope.cancel()
        return seconds

    seconds = trio.run(main)
    assert store.has_snapshot(fields["index"]), "the pull ended without a verified snapshot"
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss()}), flush=True)


def bare_serve(size: int, chunk: int) -> None:
    import grpc

    block = next(snapshot_blocks(chunk, chunk))

    def stream(request, context):
        for offset in range(0, size, chunk):
            yield block[: min(chunk, size - offset)]

    server = grpc.server(ThreadPoolExecutor(max_workers=4), options=[("grpc.max_send_message_length", 1 << 30)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "bench.Bare", {"Stream": grpc.unary_stream_rpc_method_handler(stream)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(json.dumps({"address": f"127.0.0.1:{port}"}), flush=True)
    sys.stdin.read()
    server.stop(grace=None)
    print(json.dumps({"peak_rss": peak_rss()}), flush=True)


def bare_pull(address: str, size: int) -> None:
    import grpc

    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 1 << 30)])
    grpc.channel_ready_future(channel).result(timeout=30)
    started = time.perf_counter()
    received = sum(len(message) for message in channel.unary_stream("/bench.Bare/Stream")(b""))
    seconds = time.perf_counter() - started
    assert received == size, f"{received} bytes received, {size} expected"
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss()}), flush=True)


def verify_floor(size: int, chunk: int) -> None:
    import hashlib

    from simulator.snapshots.checksums import chunk_checksum

    block = next(snapshot_blocks(chunk, chunk))
    kept, hasher = [], hashlib.sha256()
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
        bare_serve(int(rest[0]), int(rest[1]))
    elif role == "bare-pull":
        bare_pull(rest[0], int(rest[1]))
    elif role == "verify-floor":
        verify_floor(int(rest[0]), int(rest[1]))
    elif role == "raw-send":
        raw_send(rest[0], int(rest[1]), int(rest[2]), rest[3] if len(rest) > 3 else None)
    elif role == "raw-receive":
        raw_receive(int(rest[0]), int(rest[1]), rest[2] if len(rest) > 2 else None)
    else:
        raise SystemExit(f"role must be serve, pull, bare-serve, bare-pull, verify-floor, raw-send or raw-receive, "
                         f"got {role!r}; MIB={MIB}")
