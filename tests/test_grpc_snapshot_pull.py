"""The receiver's side of a streamed snapshot (transports/grpc/snapshot_pull.py) against a real
gRPC server in this process that misbehaves on purpose: bad checksums, wrong bytes, early ends."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import grpc
import pytest
import trio

from simulator.raft import ConfState, Message, MessageType, Snapshot, SnapshotMetadata
from simulator.snapshots import DiskSnapshotStore
from simulator.snapshots.checksums import chunk_checksum
from transports.grpc.events import EventLog
from transports.grpc.proto import snapshot_pb2 as spb
from transports.grpc.proto import snapshot_pb2_grpc
from transports.grpc.snapshot_pull import SnapshotPuller

CHUNK = 4096
DATA = bytes(range(256)) * (10 * CHUNK // 256)  # 10 chunks
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
SNAPSHOT_ID = "2-9-" + DIGEST[7:19]


class Sender(snapshot_pb2_grpc.SnapshotTransferServicer):
    """Serves DATA from the requested offset; ``faults`` says what to spoil, once each."""

    def __init__(self, faults: set[str], data: bytes = DATA) -> None:
        self.faults = set(faults)
        self.data = data
        self.requests: list[int] = []

    def TransferSnapshot(self, request, context):
        self.requests.append(request.offset)
        offset, sent = request.offset, 0
        while offset < len(self.data) and (request.max_chunks == 0 or sent < request.max_chunks):
            piece = self.data[offset:offset + CHUNK]
            checksum = chunk_checksum(piece)
            if offset == 3 * CHUNK and "bad checksum" in self.faults:
                self.faults.discard("bad checksum")
                checksum ^= 1
            if offset == 5 * CHUNK and "end early" in self.faults:
                self.faults.discard("end early")
                return
            yield spb.SnapshotChunk(data=piece, offset=offset, total_size=len(self.data),
                                    is_final=offset + len(piece) == len(self.data), checksum=checksum,
                                    checksum_version=2, snapshot_id=SNAPSHOT_ID, snapshot_index=9,
                                    snapshot_term=2, sender=1, digest=DIGEST)
            offset += len(piece)
            sent += 1


@pytest.fixture
def sender_address():
    servers = []

    def start(sender: Sender) -> str:
        server = grpc.server(ThreadPoolExecutor(4))
        snapshot_pb2_grpc.add_SnapshotTransferServicer_to_server(sender, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(0)


def offer() -> Message:
    meta = SnapshotMetadata(index=9, term=2, conf_state=ConfState(voters=(1,)), size=len(DATA), digest=DIGEST,
                            snapshot_id=SNAPSHOT_ID)
    return Message(MessageType.SNAPSHOT, to=2, from_=1, term=2, snapshot=Snapshot(meta, None))


async def pull(tmp_path, address: str) -> tuple[SnapshotPuller, list[Message]]:
    """A fresh disk store's puller pulls ``offer()`` to the end (see :func:`pull_to_the_end`)."""
    return await pull_to_the_end(DiskSnapshotStore(tmp_path / "store", chunk_size=CHUNK, durable=False), address)


async def test_a_clean_stream_is_pulled_window_by_window_and_delivered(tmp_path, sender_address):
    sender = Sender(set())
    puller, delivered = await pull(tmp_path, sender_address(sender))
    assert sender.requests == [0, 3 * CHUNK, 6 * CHUNK, 9 * CHUNK]
    assert delivered == [offer()] and puller.store.read_snapshot(9) == DATA


async def test_a_bad_checksum_is_named_and_asked_again_from_the_verified_offset(tmp_path, sender_address):
    sender = Sender({"bad checksum"})
    puller, delivered = await pull(tmp_path, sender_address(sender))
    assert puller.events.counts["checksum failed"] == 1
    assert 3 * CHUNK in sender.requests[1:]  # asked again from the chunk that failed
    assert delivered == [offer()] and puller.store.read_snapshot(9) == DATA


async def test_a_stream_that_ends_early_is_a_cut_and_resumes(tmp_path, sender_address):
    sender = Sender({"end early"})
    puller, delivered = await pull(tmp_path, sender_address(sender))
    assert puller.events.counts["stream cut"] == 1
    assert sender.requests == [0, 3 * CHUNK, 5 * CHUNK, 8 * CHUNK]  # resumed where the stream ended
    assert delivered == [offer()]


async def test_bytes_that_do_not_match_the_digest_are_never_installed(tmp_path, sender_address):
    wrong = DATA[:-1] + b"\x00"  # every chunk checks out, the whole does not
    puller, delivered = await pull(tmp_path, sender_address(Sender(set(), data=wrong)))
    assert puller.events.counts["digest failed"] == 1
    assert delivered == [] and not puller.store.has_snapshot(9) and puller.store.partial_transfers() == []


async def test_only_an_offer_of_the_same_or_a_later_term_supersedes_a_running_pull(tmp_path, sender_address):
    import threading

    release = threading.Event()

    class Stalling(Sender):
        def TransferSnapshot(self, request, context):
            for number, chunk in enumerate(super().TransferSnapshot(request, context)):
                if number == 1:
                    release.wait(30)  # hold the stream inside the call
                yield chunk

    channel = grpc.insecure_channel(sender_address(Stalling(set())))
    store = DiskSnapshotStore(tmp_path / "store", chunk_size=CHUNK, durable=False)
    puller = SnapshotPuller(2, store, EventLog(2), channel_to=lambda peer: channel, deliver=lambda m: None)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(puller.run)
            await trio.testing.wait_all_tasks_blocked()
            puller.on_offer(offer())
            first = puller.current
            with trio.fail_after(30):
                while first.transfer.verified_offset == 0:
                    await trio.sleep(0.01)
            other = SnapshotMetadata(index=12, term=1, conf_state=ConfState(voters=(1,)), size=5,
                                     digest="sha256:" + "0" * 64, snapshot_id="1-12-000000000000")
            stale = Message(MessageType.SNAPSHOT, to=2, from_=3, term=1, snapshot=Snapshot(other, None))
            puller.on_offer(stale)  # term 1 < the running offer's term 2
            assert puller.current is first and first.outcome == "in_progress"
            newer = Message(MessageType.SNAPSHOT, to=2, from_=3, term=2, snapshot=Snapshot(other, None))
            puller.on_offer(newer)
            assert first.outcome == "superseded" and puller.current.transfer.offer.snapshot_id == other.snapshot_id
            assert [p.index for p in store.partial_transfers()] == [12]  # the old partial data is gone
            release.set()
            nursery.cancel_scope.cancel()
    finally:
        release.set()
        channel.close()


def test_chunks_in_another_field_order_or_with_a_repeated_data_field_parse_as_protobuf_says():
    from transports.grpc.snapshot_pull import GarbageChunk, chunk_from_bytes

    message = spb.SnapshotChunk(data=b"abc", offset=8, total_size=11, checksum=5, checksum_version=2,
                                snapshot_id=SNAPSHOT_ID, sender=1)
    header = spb.SnapshotChunk(offset=8, total_size=11, checksum=5, checksum_version=2, snapshot_id=SNAPSHOT_ID,
                               sender=1).SerializeToString()
    data_last = header + spb.SnapshotChunk(data=b"abc").SerializeToString()  # not our layout: parsed whole
    twice = spb.SnapshotChunk(data=b"old").SerializeToString() + data_last  # the last data field wins
    for raw, data in ((message.SerializeToString(), b"abc"), (data_last, b"abc"), (twice, b"abc")):
        chunk = chunk_from_bytes(raw, me=2)
        assert bytes(chunk.data) == data and (chunk.offset, chunk.total_size, chunk.to) == (8, 11, 2)
    with pytest.raises(GarbageChunk, match="not a SnapshotChunk"):
        chunk_from_bytes(b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", me=2)
    with pytest.raises(GarbageChunk, match="not a SnapshotChunk"):
        chunk_from_bytes(b"\xff\xfe garbage", me=2)


async def test_a_sender_that_answers_garbage_is_named_and_the_pull_does_not_crash(tmp_path):
    def garbage(request, context):
        yield b"\xff\xfe garbage"

    server = grpc.server(ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("raftsim.v1.SnapshotTransfer", {
        "TransferSnapshot": grpc.unary_stream_rpc_method_handler(garbage)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    store = DiskSnapshotStore(tmp_path / "store", chunk_size=CHUNK, durable=False)
    puller = SnapshotPuller(2, store, EventLog(2), channel_to=lambda peer: channel, deliver=lambda m: None)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(puller.run)
            await trio.testing.wait_all_tasks_blocked()
            puller.on_offer(offer())
            with trio.fail_after(30):
                while puller.events.counts["garbage from peer"] < 2:  # named, and asked again
                    await trio.sleep(0.01)
            assert puller.current is not None and puller.current.transfer.verified_offset == 0
            nursery.cancel_scope.cancel()
    finally:
        channel.close()
        server.stop(0)


# -- the read-back before publishing runs beside the node's loop, not on it ---------------------

GOOD = b"the last good snapshot " * 40


class BlockingReadBack(DiskSnapshotStore):
    """A disk store whose read-back of a received snapshot waits for the test to release it
    (at most ``HOLD`` seconds, so that a read-back on the trio thread, which the test cannot
    release, fails the test instead of hanging it). ``spoil`` flips a byte of the data on
    disk first, as a misdirected write would have."""

    HOLD = 10.0

    def __init__(self, *args, spoil: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.spoil = spoil
        self.started, self.release, self.done = threading.Event(), threading.Event(), threading.Event()
        self.released_by_test = False
        self.on_trio_thread: bool | None = None

    def _check_written(self, path, size, digest, what, *, exact=False):
        if not str(path).endswith(".partial"):  # a snapshot saved whole: not the received one
            return super()._check_written(path, size, digest, what, exact=exact)
        self.on_trio_thread = trio.lowlevel.in_trio_run()
        if self.spoil:
            with open(path, "r+b") as file:
                first = file.read(1)
                file.seek(0)
                file.write(bytes([first[0] ^ 0xFF]))
        self.started.set()
        self.released_by_test = self.release.wait(self.HOLD)
        try:
            return super()._check_written(path, size, digest, what, exact=exact)
        finally:
            self.done.set()


async def wait_until(condition, what: str, seconds: float = 30) -> None:
    with trio.move_on_after(seconds):
        while not condition():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"waited {seconds:g} s for {what}")


def start_pull(nursery, store, address, delivered):
    channel = grpc.insecure_channel(address)
    puller = SnapshotPuller(2, store, EventLog(2), channel_to=lambda peer: channel, deliver=delivered.append,
                            chunks_in_flight=3)
    nursery.start_soon(puller.run)
    return puller, channel


async def pull_to_the_end(store, address) -> tuple[SnapshotPuller, list[Message]]:
    """The puller on ``store`` pulls ``offer()`` from ``address`` until the pull ends, however it ends;
    returns it and what it handed to Raft."""
    delivered: list[Message] = []
    async with trio.open_nursery() as nursery:
        puller, channel = start_pull(nursery, store, address, delivered)
        await trio.testing.wait_all_tasks_blocked()
        puller.on_offer(offer())
        await wait_until(lambda: puller.current is None, "the pull to end")
        nursery.cancel_scope.cancel()
    channel.close()
    return puller, delivered


def held_store(tmp_path) -> BlockingReadBack:
    """A disk store holding snapshot 3 (the last good one) whose read-back waits for ``release``."""
    store = BlockingReadBack(tmp_path / "store", chunk_size=CHUNK, durable=False)
    store.save_snapshot(3, GOOD, term=1)
    return store


@asynccontextmanager
async def pull_held_in_read_back(store, address, delivered):
    """The puller, pulling ``offer()`` with its read-back started and held until the test sets
    ``store.release``; on leaving, its tasks are cancelled and the read-back released."""
    channel = None
    try:
        async with trio.open_nursery() as nursery:
            puller, channel = start_pull(nursery, store, address, delivered)
            await trio.testing.wait_all_tasks_blocked()
            puller.on_offer(offer())
            await wait_until(store.started.is_set, "the read-back to start")
            yield puller
            nursery.cancel_scope.cancel()
    finally:
        store.release.set()
        if channel is not None:
            channel.close()


async def test_the_node_keeps_running_while_the_snapshot_is_read_back_and_then_installs_it(tmp_path, sender_address):
    store = held_store(tmp_path)
    delivered: list[Message] = []
    async with pull_held_in_read_back(store, sender_address(Sender(set())), delivered) as puller:
        # This loop is trio work: it gets to run only if the read-back is off the trio thread.
        ticks = 0
        while ticks < 5:
            await trio.sleep(0.001)
            ticks += 1
        assert not store.done.is_set()  # still blocked: the ticks ran beside it
        puller.on_offer(offer())  # the node handles a re-offer meanwhile (Raft's retry)
        assert puller.current is not None and puller.current.outcome == "in_progress"
        assert delivered == [] and not store.has_snapshot(9)  # nothing before the bytes are verified
        store.release.set()
        await wait_until(lambda: puller.current is None, "the pull to finish")
    assert store.released_by_test and store.on_trio_thread is False
    assert delivered == [offer()] and store.read_snapshot(9) == DATA and store.read_snapshot(3) == GOOD
    assert puller.finished[-1].outcome == "installed" and store.partial_transfers() == []
    assert store.reopened().read_snapshot(9) == DATA


async def test_a_pull_superseded_during_the_read_back_publishes_nothing(tmp_path, sender_address):
    store = held_store(tmp_path)
    delivered: list[Message] = []
    async with pull_held_in_read_back(store, sender_address(Sender(set())), delivered) as puller:
        first = puller.current
        other = SnapshotMetadata(index=12, term=2, conf_state=ConfState(voters=(1,)), size=5,
                                 digest="sha256:" + "0" * 64, snapshot_id="2-12-000000000000")
        puller.on_offer(Message(MessageType.SNAPSHOT, to=2, from_=3, term=2, snapshot=Snapshot(other, None)))
        assert first.outcome == "superseded" and [p.index for p in store.partial_transfers()] == [12]
        store.release.set()
        # The first pull's task ends once its read-back thread returns; the new pull's runs on.
        await wait_until(lambda: len(puller._nursery.child_tasks) == 1, "the superseded pull to end")
    assert store.released_by_test and first.outcome == "superseded"
    assert delivered == [] and puller.events.counts["snapshot installed"] == 0
    assert [s.index for s in store.list_snapshots()] == [3] and store.read_snapshot(3) == GOOD
    assert [p.index for p in store.partial_transfers()] == [12]  # the newer transfer's data is untouched


async def test_bytes_that_do_not_read_back_as_written_are_removed_and_nothing_is_installed(
        tmp_path, sender_address):
    store = BlockingReadBack(tmp_path / "store", chunk_size=CHUNK, durable=False, spoil=True)
    store.save_snapshot(3, GOOD, term=1)
    store.release.set()  # not held: only the spoiled bytes matter here
    puller, delivered = await pull_to_the_end(store, sender_address(Sender(set())))
    assert store.on_trio_thread is False and puller.events.counts["digest failed"] == 1
    assert puller.finished[-1].outcome == "aborted" and delivered == []
    assert not store.has_snapshot(9) and store.partial_transfers() == []
    assert [s.index for s in store.list_snapshots()] == [3] and store.reopened().read_snapshot(3) == GOOD


async def test_a_writer_that_cannot_commit_in_steps_commits_in_one_call(tmp_path, sender_address):
    # A store written from scratch may return its own writer, without prepare_commit.
    commits: list[dict] = []

    class OneStepWriter:
        def __init__(self, writer) -> None:
            self._writer = writer

        def __getattr__(self, name):
            if name == "prepare_commit":
                raise AttributeError(name)
            return getattr(self._writer, name)

        def commit(self, **options):
            commits.append(options)
            return self._writer.commit(**options)

    class OneStepStore(DiskSnapshotStore):
        def open_writer(self, index, **identity):
            return OneStepWriter(super().open_writer(index, **identity))

    store = OneStepStore(tmp_path / "store", chunk_size=CHUNK, durable=False)
    _, delivered = await pull_to_the_end(store, sender_address(Sender(set())))
    assert commits == [{}] and delivered == [offer()] and store.read_snapshot(9) == DATA


async def test_a_pull_the_node_itself_superseded_during_the_read_back_says_so_and_publishes_nothing(
        tmp_path, sender_address):
    # Not an offer this time: the node's own store saved a snapshot at the pulled index
    # while the read-back ran. The pull must end named, not crash the node's nursery.
    store = held_store(tmp_path)
    delivered: list[Message] = []
    async with pull_held_in_read_back(store, sender_address(Sender(set())), delivered) as puller:
        first = puller.current
        store.save_snapshot(9, b"the node's own snapshot 9", term=2)
        store.release.set()
        await wait_until(lambda: puller.current is None, "the pull to end")
    assert first.outcome == "superseded" and puller.finished == [first]
    assert puller.events.counts["chunk refused"] == 1 and puller.events.counts["snapshot installed"] == 0
    assert delivered == [] and store.read_snapshot(9) == b"the node's own snapshot 9"
    assert store.read_snapshot(3) == GOOD and store.partial_transfers() == []
