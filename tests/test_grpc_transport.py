"""GrpcClusterTransport, the Python API the node processes are built on (transports/grpc/transport.py)."""

from __future__ import annotations

import pytest
import trio
from test_grpc_harness import free_port

from simulator import KeyValueStore
from simulator.snapshots import DiskSnapshotStore, MemorySnapshotStore
from transports import Embedded, Streaming
from transports.grpc import (
    ClusterClient,
    GrpcClusterTransport,
    NodeConfig,
    NodeSettings,
)
from transports.grpc.server import PortInUseError

MIB = 1024 * 1024


def test_the_seeds_constructors_choose_the_mode():
    nodes = [NodeConfig(1, "127.0.0.1:7001"), NodeConfig(2, "127.0.0.1:7002")]
    embedded = GrpcClusterTransport.new_with_embedded_snapshots(nodes)
    assert isinstance(embedded.mode, Embedded) and embedded.address_of(2) == "127.0.0.1:7002"
    store = MemorySnapshotStore()
    streaming = GrpcClusterTransport.new_with_streaming_snapshots(nodes, store)
    assert isinstance(streaming.mode, Streaming) and streaming.mode.chunk_size == MIB
    assert streaming.mode.store(1) is store


def test_bad_configurations_are_refused_by_name():
    with pytest.raises(ValueError, match="node ids must be unique"):
        GrpcClusterTransport.new_with_embedded_snapshots([NodeConfig(1, "h:1"), NodeConfig(1, "h:2")])
    with pytest.raises(ValueError, match="address must be HOST:PORT"):
        NodeConfig(1, "nowhere")
    with pytest.raises(ValueError, match="node id must be an integer >= 1"):
        NodeConfig(0, "h:1")
    transport = GrpcClusterTransport.new_with_streaming_snapshots([NodeConfig(1, "h:1")], MemorySnapshotStore(),
                                                                 chunk_size=4 * MIB)
    with pytest.raises(ValueError, match="the store cuts 1048576-byte chunks, chunk_size is 4194304"):
        transport.mode.store(1)
    with pytest.raises(KeyError, match="node 5 is not in the transport"):
        transport.address_of(5)


async def test_a_node_served_in_this_process_takes_commands(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    store = DiskSnapshotStore(tmp_path / "snapshots")
    transport = GrpcClusterTransport.new_with_streaming_snapshots([NodeConfig(1, address)], store)
    settings = NodeSettings(tick_seconds=0.02, election_tick=10, heartbeat_tick=1)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(lambda task_status: transport.serve(
            1, tmp_path, make_state_machine=KeyValueStore, settings=settings, task_status=task_status))
        with ClusterClient({1: address}, timeout=60) as client:
            reply = await trio.to_thread.run_sync(client.propose, KeyValueStore.put("k", b"v"))
            assert reply.ok and reply.result == "ok"
            last_index = server.replica.node.raft.raft_log.last_index()
            assert await trio.to_thread.run_sync(client.get, "k") == b"v"
            assert await trio.to_thread.run_sync(client.get, "missing") is None
            # Reads go through ReadIndex: confirmed by the leader, nothing written to the log.
            assert server.replica.node.raft.raft_log.last_index() == last_index
        assert server.replica.state_machine.get("k") == b"v"

        with pytest.raises(PortInUseError, match=f"cannot listen on {address}"):
            await GrpcClusterTransport.new_with_embedded_snapshots([NodeConfig(1, address)]).serve(
                1, tmp_path / "second", make_state_machine=KeyValueStore)
        nursery.cancel_scope.cancel()
    assert (tmp_path / "raft.sqlite3").exists()


class ChunkOnlyCounter:
    """A state machine written only to the chunk contract (simulator/machines/contracts.py):
    no ``create_snapshot``, and ``restore_from_snapshot`` reads an iterable of byte chunks."""

    restored_from: list = []  # chunk types seen by the last restore, across instances

    def __init__(self) -> None:
        self.applied_index = 0
        self.count = 0

    def apply(self, index: int, command: bytes) -> object:
        self.count += 1
        self.applied_index = index
        return "ok"

    def snapshot_chunks(self, index: int):
        yield b"counter:"
        yield f"{index}:{self.count}".encode()

    def restore_from_snapshot(self, chunks) -> None:
        chunks = list(chunks)
        ChunkOnlyCounter.restored_from = [type(chunk) for chunk in chunks]
        if not all(isinstance(chunk, (bytes, bytearray, memoryview)) for chunk in chunks):
            raise TypeError(f"chunks of bytes expected, got {ChunkOnlyCounter.restored_from}")
        tag, index, count = b"".join(chunks).split(b":")
        assert tag == b"counter"
        self.applied_index, self.count = int(index), int(count)

    def digest(self) -> str:
        return f"{self.applied_index}:{self.count}"


def test_an_embedded_snapshot_restores_a_machine_through_the_chunk_contract():
    from types import SimpleNamespace

    from transports.grpc.snapshot_modes import _restore

    machine = _restore(SimpleNamespace(make_state_machine=ChunkOnlyCounter), b"counter:7:5")
    assert (machine.applied_index, machine.count) == (7, 5) and ChunkOnlyCounter.restored_from == [bytes]


async def test_a_node_snapshots_and_restores_a_machine_written_only_to_the_chunk_contract(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    transport = GrpcClusterTransport.new_with_streaming_snapshots(
        [NodeConfig(1, address)], DiskSnapshotStore(tmp_path / "snapshots"))
    settings = NodeSettings(tick_seconds=0.02, election_tick=10, heartbeat_tick=1, compact_every=3)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(lambda task_status: transport.serve(
            1, tmp_path, make_state_machine=ChunkOnlyCounter, settings=settings, task_status=task_status))
        with ClusterClient({1: address}, timeout=60) as client:
            for _ in range(4):
                assert (await trio.to_thread.run_sync(client.propose, b"add")).ok
        with trio.fail_after(30):
            while server.replica.storage.snapshot_metadata.index == 0:  # compacted through snapshot_chunks
                await trio.sleep(0.02)
        snapshot_index = server.replica.storage.snapshot_metadata.index
        nursery.cancel_scope.cancel()
    ChunkOnlyCounter.restored_from = []
    async with trio.open_nursery() as nursery:  # a restart restores from the store, chunk by chunk
        server = await nursery.start(lambda task_status: transport.serve(
            1, tmp_path, make_state_machine=ChunkOnlyCounter, settings=settings, task_status=task_status))
        assert ChunkOnlyCounter.restored_from and set(ChunkOnlyCounter.restored_from) <= {bytes, memoryview}
        assert server.replica.state_machine.applied_index >= snapshot_index
        nursery.cancel_scope.cancel()
