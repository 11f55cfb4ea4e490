"""Which gRPC stack for a trio program: grpcio from trio threads, beside plain grpcio and purerpc.

    python benchmarks/trio_grpc_stacks.py [--count 100] [--repeats 3] [--json FILE]

A server process streams ``count`` messages of 1 MiB (the seed's
``SnapshotChunk``) to a client process on loopback; each stack serves and
reads them its own way, interleaved repeat by repeat (medians reported):

- **grpcio, sync client** (the baseline): grpcio's thread-pool server, a
  plain blocking client iterating the response stream;
- **grpcio, from trio**: the same server; the client is a trio program
  that takes each message with ``trio.to_thread.run_sync(next, call)``,
  which is how a node pulls snapshot chunks (transports/grpc/snapshot_pull.py);
- **purerpc on trio**: purerpc's own server and client, natively on trio
  (anyio). purerpc is not a dependency of raftsim (its last release is
  0.8.0, from 2022); install it beside to include it, else it is skipped.

grpc.aio is not measured: it runs on an asyncio loop, which a trio program
can only reach from another thread, i.e. the same bridging as the sync API
plus a second event loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import MIB, print_table, ratio, write_json

from transports.grpc.proto import snapshot_pb2 as spb

STACKS = ("grpcio-sync", "grpcio-trio", "purerpc-trio")
OPTIONS = [("grpc.max_send_message_length", 64 * MIB), ("grpc.max_receive_message_length", 64 * MIB)]


def _chunks(count: int):
    payload = os.urandom(MIB)
    for number in range(count):
        yield spb.SnapshotChunk(data=payload, offset=number * MIB, total_size=count * MIB,
                                is_final=number == count - 1)


def serve(stack: str, count: int) -> None:
    """Child: serve on a free port, print it, serve until stdin closes."""
    if stack.startswith("grpcio"):
        from concurrent.futures import ThreadPoolExecutor

        import grpc

        from transports.grpc.proto import snapshot_pb2_grpc

        class Service(snapshot_pb2_grpc.SnapshotTransferServicer):
            def TransferSnapshot(self, request, context):
                yield from _chunks(count)

        server = grpc.server(ThreadPoolExecutor(4), options=OPTIONS)
        snapshot_pb2_grpc.add_SnapshotTransferServicer_to_server(Service(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        print(port, flush=True)
        sys.stdin.read()
        server.stop(0)
        return
    import socket

    import purerpc

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    service = purerpc.Service("raftsim.v1.SnapshotTransfer")

    async def transfer(request):
        for chunk in _chunks(count):
            yield chunk

    service.add_method("TransferSnapshot", transfer, _purerpc_signature())
    server = purerpc.Server(port=port)
    server.add_service(service)
    print(port, flush=True)
    server.serve(backend="trio")  # killed by the parent


def _purerpc_signature():
    import purerpc

    return purerpc.RPCSignature(purerpc.Cardinality.UNARY_STREAM, spb.SnapshotRequest, spb.SnapshotChunk)


def fetch(stack: str, port: int) -> tuple[int, float]:
    """Read the stream twice (the first warms up); bytes and seconds of the second."""
    if stack.startswith("grpcio"):
        import grpc
        import trio

        from transports.grpc.proto import snapshot_pb2_grpc

        stub = snapshot_pb2_grpc.SnapshotTransferStub(grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS))
        list(stub.TransferSnapshot(spb.SnapshotRequest()))
        if stack == "grpcio-sync":
            start = time.perf_counter()
            total = sum(len(chunk.data) for chunk in stub.TransferSnapshot(spb.SnapshotRequest()))
            return total, time.perf_counter() - start

        async def from_trio() -> int:
            call, total = stub.TransferSnapshot(spb.SnapshotRequest()), 0
            while (chunk := await trio.to_thread.run_sync(next, call, None)) is not None:
                total += len(chunk.data)
            return total

        start = time.perf_counter()
        total = trio.run(from_trio)
        return total, time.perf_counter() - start
    import purerpc
    import trio

    async def native() -> tuple[int, float]:
        async with purerpc.insecure_channel("127.0.0.1", port) as channel:
            stub = purerpc.Client("raftsim.v1.SnapshotTransfer", channel).get_method_stub(
                "TransferSnapshot", _purerpc_signature())
            async for _ in stub(spb.SnapshotRequest()):
                pass
            start, total = time.perf_counter(), 0
            async for chunk in stub(spb.SnapshotRequest()):
                total += len(chunk.data)
            return total, time.perf_counter() - start

    return trio.run(native)


def _wait_listening(port: int, timeout: float = 30.0) -> None:
    """purerpc prints its port before it listens: wait until a connection is accepted."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def measure(stack: str, count: int) -> float:
    server = subprocess.Popen([sys.executable, __file__, "--serve", stack, "--count", str(count)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        _wait_listening(port)
        total, seconds = fetch(stack, port)
        assert total == count * MIB, (stack, total)
        return total / seconds
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.count)
        return
    try:
        import purerpc  # noqa: F401

        stacks = STACKS
    except ImportError:
        stacks = STACKS[:2]
    rates: dict[str, list[float]] = {stack: [] for stack in stacks}
    for _ in range(args.repeats):
        for stack in stacks:
            rates[stack].append(measure(stack, args.count))
    medians = {stack: statistics.median(values) for stack, values in rates.items()}
    baseline = medians["grpcio-sync"]
    print_table(f"{args.count} x 1 MiB server-streamed between two processes on loopback (median of "
                f"{args.repeats})", ["stack", "MB/s", "x grpcio sync"],
                [[stack, f"{rate / 1e6:.0f}", f"{ratio(rate, baseline):.2f}"] for stack, rate in medians.items()])
    write_json(args.json, "trio_grpc_stacks", sys.argv, {stack: {"bytes_per_second": rate, "runs": rates[stack]}
                                                         for stack, rate in medians.items()})


if __name__ == "__main__":
    main()
