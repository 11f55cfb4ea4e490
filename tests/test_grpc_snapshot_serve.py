"""The sender's side of a streamed snapshot (transports/grpc/snapshot_serve.py), without a network."""

from __future__ import annotations

import grpc
import pytest

from simulator.snapshots import DiskSnapshotStore
from transports.grpc.events import EventLog
from transports.grpc.proto import snapshot_pb2 as spb
from transports.grpc.snapshot_serve import SnapshotServer, StreamRefused

CHUNK = 1024
DATA = bytes(range(256)) * (40 * CHUNK // 256)  # 40 chunks


class CountingStore(DiskSnapshotStore):
    """A disk store (it verifies the digest as it streams) that counts the bytes read from it."""

    bytes_read = 0

    def _open_reader(self, snapshot):
        reader = super()._open_reader(snapshot)
        store = self

        class Counting:
            def read_at(self, position, length):
                data = reader.read_at(position, length)
                store.bytes_read += len(data)
                return data

            def close(self):
                reader.close()

        return Counting()


@pytest.fixture
def server(tmp_path):
    store = CountingStore(tmp_path, chunk_size=CHUNK, durable=False)
    store.save_snapshot(7, DATA, term=2)
    return SnapshotServer(1, store, EventLog(1))


def serve(server, offset, max_chunks, requester=4):
    stream = server.open(spb.SnapshotRequest(snapshot_index=7, offset=offset, requester=requester,
                                             max_chunks=max_chunks))
    chunks = []
    while (chunk := server.next_chunk(stream)) is not None:
        chunks.append(chunk)
    return chunks


def test_windows_of_chunks_read_the_snapshot_once(server):
    """Regression: every window reopened the store, which hashes the prefix first (quadratic reads)."""
    offset, received = 0, bytearray()
    while offset < len(DATA):
        chunks = serve(server, offset, max_chunks=4)
        received += b"".join(c.data for c in chunks)
        offset += sum(len(c.data) for c in chunks)
    assert bytes(received) == DATA and chunks[-1].is_final
    assert server.store.bytes_read == len(DATA)
    record = server.registry.get(4, chunks[0].snapshot_id)
    assert record.bytes_sent == len(DATA) and record.resent_bytes == 0


def test_a_resume_counts_what_is_sent_again(server):
    serve(server, 0, max_chunks=10)
    again = serve(server, 6 * CHUNK, max_chunks=0)  # the receiver verified 6 of the 10 chunks
    assert again[0].offset == 6 * CHUNK and again[-1].is_final
    record = server.registry.get(4, again[0].snapshot_id)
    assert record.resent_bytes == record.largest_resend == 4 * CHUNK and record.retries == 1
    assert record.bytes_sent == len(DATA) + 4 * CHUNK


def test_a_superseded_call_stops_instead_of_sharing_the_reader(server):
    old = server.open(spb.SnapshotRequest(snapshot_index=7, requester=4))
    assert server.next_chunk(old).offset == 0
    new = server.open(spb.SnapshotRequest(snapshot_index=7, requester=4, offset=CHUNK))
    assert server.next_chunk(old) is None
    assert [server.next_chunk(new).offset for _ in range(2)] == [CHUNK, 2 * CHUNK]


def test_chunks_carry_what_a_receiver_checks(server):
    [chunk] = serve(server, 39 * CHUNK, max_chunks=0)
    assert (chunk.total_size, chunk.is_final, chunk.sender, chunk.snapshot_index, chunk.snapshot_term) == \
        (len(DATA), True, 1, 7, 2)
    assert chunk.digest == server.store.snapshot_metadata(7).digest and chunk.checksum_version >= 1


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (spb.SnapshotRequest(snapshot_index=8), grpc.StatusCode.NOT_FOUND, "snapshot index 8 term 0 is not held"),
        (spb.SnapshotRequest(snapshot_id="9-9-x"), grpc.StatusCode.NOT_FOUND, "held: 7"),
        (spb.SnapshotRequest(snapshot_index=7, snapshot_term=3), grpc.StatusCode.NOT_FOUND, "term 3"),
        (spb.SnapshotRequest(snapshot_index=7, offset=len(DATA) + 1), grpc.StatusCode.OUT_OF_RANGE,
         f"offset must lie in [0, {len(DATA)}]"),
    ],
)
def test_requests_that_cannot_be_served_are_refused_by_name(server, request_, code, message):
    with pytest.raises(StreamRefused, match=message.replace("[", r"\[").replace("]", r"\]")) as refused:
        server.open(request_)
    assert refused.value.code is code


def test_a_batch_is_encoded_so_protobuf_reads_the_same_chunks(server):
    from transports.grpc.snapshot_pull import chunk_from_bytes
    from transports.grpc.snapshot_serve import encode_chunk

    stream = server.open(spb.SnapshotRequest(snapshot_index=7, requester=4, max_chunks=10))
    batch = server.next_batch(stream, max_bytes=3 * CHUNK)
    assert len(batch) == 3
    for number, (data, header) in enumerate(batch):
        wire = encode_chunk(data, header)
        parsed = spb.SnapshotChunk.FromString(wire)  # what any protobuf client reads
        assert parsed.data == DATA[number * CHUNK:(number + 1) * CHUNK] and parsed.offset == number * CHUNK
        assert parsed.digest == server.store.snapshot_metadata(7).digest and parsed.sender == 1
        fast = chunk_from_bytes(wire, me=4)  # the receiver's parse, without copying the data
        assert isinstance(fast.data, memoryview) and bytes(fast.data) == parsed.data
        assert (fast.offset, fast.checksum, fast.snapshot_id) == (parsed.offset, parsed.checksum, parsed.snapshot_id)


def test_max_bytes_ends_a_call_before_a_chunk_would_pass_it_but_sends_at_least_one(server):
    chunks = serve_bytes(server, 0, max_bytes=3 * CHUNK + 10)
    assert [c.offset for c in chunks] == [0, CHUNK, 2 * CHUNK]
    assert [c.offset for c in serve_bytes(server, 3 * CHUNK, max_bytes=1)] == [3 * CHUNK]
    assert len(serve_bytes(server, 4 * CHUNK, max_bytes=0)) == 36  # 0: no limit in bytes


def serve_bytes(server, offset, max_bytes):
    stream = server.open(spb.SnapshotRequest(snapshot_index=7, offset=offset, requester=4, max_bytes=max_bytes))
    return [c for c in iter(lambda: server.next_chunk(stream), None)]
