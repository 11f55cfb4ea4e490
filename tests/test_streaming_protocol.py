"""The sans-IO pieces of out-of-band snapshot streaming, without a Cluster.

Mirrors ``transports/streaming`` and ``transports/chunk_faults``:

- ``protocol``: :class:`IncomingTransfer` verdicts and :class:`OutgoingTransfer`
  windows, then a property test pairing the two through a fake lossy link
  (h11's habit: a client and a server, and nothing in between but a list).
- ``registry``: one record per (receiver, snapshot id) and what it counts.
- ``chunk_faults``: what each fault does to chunk k.
- ``endpoint``: :class:`StreamingEndpoint` driven through a recording
  :class:`FakeHost`; the test itself carries messages between hosts and moves
  the clock, so every request, chunk, ack, timer and report is visible.

Sizes are tiny on purpose (a 10-byte snapshot in 4-byte chunks) so that each
expected offset can be read off the test.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from simulator.raft import ConfState, Message, MessageType, Snapshot, SnapshotMetadata, SnapshotStatus
from simulator.snapshots import MemorySnapshotStore, digest_of
from transports import Streaming
from transports.chunk_faults import ACTIONS, ChunkFault, ChunkFaults
from transports.streaming import (
    IncomingTransfer,
    Outcome,
    OutgoingTransfer,
    SnapshotAbort,
    SnapshotAck,
    SnapshotChunk,
    SnapshotOffer,
    SnapshotRequest,
    StreamingEndpoint,
    TransferProgress,
    TransferRegistry,
    Verdict,
    chunk_checksum,
)
from transports.streaming.endpoint import rechunk

DATA = b"0123456789"  # 10 bytes: chunks of 4 are [0, 4) [4, 8) [8, 10)
SNAPSHOT_ID = "2-10-abcdef"
DIGEST = digest_of(DATA)


# ================================================================ protocol helpers


def make_offer(size: int = len(DATA), *, source: int = 1, snapshot_id: str = SNAPSHOT_ID,
               digest: str = DIGEST) -> SnapshotOffer:
    return SnapshotOffer(source=source, index=10, term=2, size=size, digest=digest, snapshot_id=snapshot_id)


def incoming(size: int = len(DATA), verified: int = 0) -> IncomingTransfer:
    return IncomingTransfer(me=2, offer=make_offer(size), verified_offset=verified, started_at=0.0,
                            last_progress_at=0.0)


def chunk_at(offset: int, data: bytes, *, total: int = len(DATA), final: bool | None = None,
             checksum: int | None = None, snapshot_id: str = SNAPSHOT_ID, source: int = 1) -> SnapshotChunk:
    """A chunk as an honest sender would make it, unless a field is overridden."""
    return SnapshotChunk(
        from_=source, to=2, snapshot_index=10, snapshot_term=2, snapshot_id=snapshot_id,
        offset=offset, total_size=total,
        is_final=(offset + len(data) == total) if final is None else final,
        checksum=chunk_checksum(data) if checksum is None else checksum,
        data=data,
    )


def outgoing(total: int = len(DATA), *, chunk_size: int = 4, window: int = 1) -> OutgoingTransfer:
    return OutgoingTransfer(me=1, to=2, snapshot_index=10, snapshot_term=2, snapshot_id=SNAPSHOT_ID,
                            total_size=total, chunk_size=chunk_size, window=window, last_activity_at=0.0)


def request_at(offset: int, *, snapshot_id: str = SNAPSHOT_ID) -> SnapshotRequest:
    return SnapshotRequest(from_=2, to=1, snapshot_index=10, snapshot_term=2, snapshot_id=snapshot_id,
                           offset=offset)


def next_bytes(transfer: OutgoingTransfer, data: bytes) -> bytes:
    """What a store would return for the sender's next chunk."""
    return data[transfer.next_offset : transfer.next_offset + transfer.chunk_size]


# ================================================================ IncomingTransfer


def test_the_next_chunk_in_line_is_accepted():
    transfer = incoming(verified=4)

    assert transfer.check_chunk(chunk_at(4, DATA[4:8])) == (Verdict.ACCEPT, "ok")
    assert transfer.rejections == Counter()
    assert transfer.duplicate_bytes == 0


def test_the_final_chunk_is_accepted_with_its_final_flag():
    transfer = incoming(verified=8)

    assert transfer.check_chunk(chunk_at(8, DATA[8:], final=True)) == (Verdict.ACCEPT, "ok")


def test_already_verified_bytes_are_a_duplicate_and_counted():
    transfer = incoming(verified=8)

    first = transfer.check_chunk(chunk_at(0, DATA[0:4]))
    second = transfer.check_chunk(chunk_at(4, DATA[4:8]))

    assert first == (Verdict.DUPLICATE, "bytes 0..4 already verified")
    assert second == (Verdict.DUPLICATE, "bytes 4..8 already verified")
    assert transfer.duplicate_bytes == 8
    assert transfer.rejections == Counter()
    assert transfer.verified_offset == 8


@pytest.mark.parametrize(
    ("verified", "chunk", "reason", "detail"),
    [
        pytest.param(0, chunk_at(0, DATA[0:4], snapshot_id="9-99-other"), "wrong snapshot",
                     "chunk of snapshot '9-99-other', expected '2-10-abcdef'", id="wrong-snapshot-id"),
        pytest.param(0, chunk_at(0, DATA[0:4], total=11), "wrong total size",
                     "chunk says the snapshot has 11 bytes, the offer said 10", id="wrong-total-size"),
        pytest.param(4, chunk_at(8, DATA[8:]), "gap",
                     "chunk at offset 4 expected, got 8", id="gap"),
        pytest.param(4, chunk_at(2, DATA[2:6]), "overlap",
                     "chunk at offset 4 expected, got 2", id="overlap"),
        pytest.param(8, chunk_at(8, b"89AB", final=True), "too long",
                     "chunk ends at byte 12, more than total_size 10", id="more-than-total-size"),
        pytest.param(4, chunk_at(4, b""), "empty chunk",
                     "empty chunk at offset 4", id="empty-chunk"),
        pytest.param(4, chunk_at(4, DATA[4:8], final=True), "bad final flag",
                     "is_final=True on a chunk ending at 8 of 10", id="final-flag-too-early"),
        pytest.param(8, chunk_at(8, DATA[8:], final=False), "bad final flag",
                     "is_final=False on a chunk ending at 10 of 10", id="final-flag-missing"),
        pytest.param(0, chunk_at(0, DATA[0:4], checksum=chunk_checksum(DATA[0:4]) ^ 0xFF), "bad checksum",
                     f"chunk at offset 0 has checksum {chunk_checksum(DATA[0:4]):#010x}, "
                     f"expected {chunk_checksum(DATA[0:4]) ^ 0xFF:#010x}", id="bad-checksum"),
    ],
)
def test_a_bad_chunk_is_rejected_with_what_was_wrong(verified, chunk, reason, detail):
    transfer = incoming(verified=verified)

    assert transfer.check_chunk(chunk) == (Verdict.REJECT, detail)
    assert transfer.rejections == Counter({reason: 1})
    assert transfer.verified_offset == verified  # a verdict never moves the offset
    assert transfer.duplicate_bytes == 0


def test_rejections_are_counted_per_reason():
    transfer = incoming(verified=4)

    transfer.check_chunk(chunk_at(8, DATA[8:]))
    transfer.check_chunk(chunk_at(8, DATA[8:]))
    transfer.check_chunk(chunk_at(4, DATA[4:8], checksum=0))
    transfer.check_chunk(chunk_at(4, DATA[4:8], snapshot_id="other"))

    assert transfer.rejections == Counter({"gap": 2, "bad checksum": 1, "wrong snapshot": 1})


def test_a_checksum_the_caller_matched_is_not_computed_again_but_every_other_check_runs():
    # A receiver that compared checksums on its reading thread says so; the protocol trusts
    # that comparison (so a wrong checksum passes here, which shows it is not recomputed) ...
    transfer = incoming(verified=4)
    assert transfer.check_chunk(chunk_at(4, DATA[4:8], checksum=0), checksum_matched=True) == (Verdict.ACCEPT, "ok")
    # ... and still refuses on position, size, identity and the final flag.
    assert transfer.check_chunk(chunk_at(8, DATA[8:]), checksum_matched=True)[0] is Verdict.REJECT  # a gap
    assert transfer.check_chunk(chunk_at(4, DATA[4:8], snapshot_id="other"), checksum_matched=True)[0] is Verdict.REJECT
    assert transfer.check_chunk(chunk_at(4, DATA[4:8], final=True), checksum_matched=True)[0] is Verdict.REJECT
    assert transfer.rejections == Counter({"gap": 1, "wrong snapshot": 1, "bad final flag": 1})
    # Without the word of the caller, the same chunk is refused for its checksum.
    assert transfer.check_chunk(chunk_at(4, DATA[4:8], checksum=0))[0] is Verdict.REJECT


def test_a_zero_byte_snapshot_accepts_one_empty_final_chunk():
    transfer = incoming(size=0)

    assert transfer.complete
    assert transfer.check_chunk(chunk_at(0, b"", total=0)) == (Verdict.ACCEPT, "ok")


def test_advance_moves_the_verified_offset_and_the_progress_time():
    transfer = incoming()

    transfer.advance(4, now=2.5)

    assert (transfer.verified_offset, transfer.last_progress_at, transfer.started_at) == (4, 2.5, 0.0)
    assert not transfer.complete
    transfer.advance(6, now=3.0)
    assert transfer.complete


def test_request_asks_the_source_from_the_verified_offset():
    transfer = incoming(verified=8)

    assert transfer.request() == SnapshotRequest(
        from_=2, to=1, snapshot_index=10, snapshot_term=2, snapshot_id=SNAPSHOT_ID, offset=8
    )
    assert transfer.retries == 0


def test_retry_asks_again_and_counts_the_retry():
    transfer = incoming(verified=4)

    assert transfer.retry() == transfer.request()
    assert transfer.retry().offset == 4
    assert transfer.retries == 2


def test_change_source_sends_the_next_request_to_the_new_source():
    transfer = incoming(verified=4)

    transfer.change_source(3)

    assert transfer.offer == make_offer(source=3)
    assert transfer.request() == SnapshotRequest(
        from_=2, to=3, snapshot_index=10, snapshot_term=2, snapshot_id=SNAPSHOT_ID, offset=4
    )
    assert transfer.verified_offset == 4


# ================================================================ SnapshotOffer


def test_an_offer_with_a_negative_size_is_refused():
    with pytest.raises(ValueError, match=r"^snapshot size must be >= 0, got -1$"):
        make_offer(size=-1)


@pytest.mark.parametrize(
    ("snapshot_id", "digest"), [("", DIGEST), (SNAPSHOT_ID, ""), ("", "")], ids=["no-id", "no-digest", "neither"]
)
def test_an_offer_without_id_or_digest_is_refused(snapshot_id, digest):
    with pytest.raises(ValueError) as raised:
        make_offer(snapshot_id=snapshot_id, digest=digest)

    assert str(raised.value) == (
        f"snapshot 10 offer needs a snapshot_id and digest for streaming, "
        f"got id={snapshot_id!r} digest={digest!r}"
    )


def test_a_zero_byte_offer_is_valid():
    assert make_offer(size=0).size == 0


# ================================================================ OutgoingTransfer


def test_the_window_limits_chunks_sent_before_an_ack():
    transfer = outgoing(window=2)

    first = transfer.make_chunk(next_bytes(transfer, DATA))
    assert transfer.wants_chunk()
    second = transfer.make_chunk(next_bytes(transfer, DATA))

    assert (first.offset, second.offset) == (0, 4)
    assert not transfer.wants_chunk()
    assert list(transfer.in_flight) == [4, 8]
    assert (transfer.chunks_sent, transfer.bytes_sent, transfer.next_offset) == (2, 8, 8)


def test_an_ack_frees_the_window():
    transfer = outgoing(window=2)
    transfer.make_chunk(next_bytes(transfer, DATA))
    transfer.make_chunk(next_bytes(transfer, DATA))

    transfer.on_ack(4, now=1.5)

    assert transfer.wants_chunk()
    assert list(transfer.in_flight) == [8]
    assert (transfer.acked_offset, transfer.last_activity_at) == (4, 1.5)


def test_an_old_ack_changes_nothing():
    transfer = outgoing(window=2)
    transfer.make_chunk(next_bytes(transfer, DATA))
    transfer.make_chunk(next_bytes(transfer, DATA))
    transfer.on_ack(8, now=1.0)

    transfer.on_ack(4, now=2.0)

    assert (transfer.acked_offset, transfer.last_activity_at) == (8, 1.0)


def test_only_the_last_chunk_is_final_and_nothing_follows_it():
    transfer = outgoing(window=3)

    chunks = [transfer.make_chunk(next_bytes(transfer, DATA)) for _ in range(3)]

    assert [(c.offset, len(c.data), c.is_final) for c in chunks] == [(0, 4, False), (4, 4, False), (8, 2, True)]
    assert all(c.total_size == 10 and c.checksum == chunk_checksum(c.data) for c in chunks)
    assert transfer.final_sent
    transfer.on_ack(10, now=1.0)
    assert not transfer.wants_chunk()


def test_a_request_resumes_from_the_requested_offset():
    transfer = outgoing(window=3)
    for _ in range(3):
        transfer.make_chunk(next_bytes(transfer, DATA))

    assert transfer.on_request(request_at(4), now=7.0) is None

    assert (transfer.next_offset, transfer.acked_offset, transfer.final_sent) == (4, 4, False)
    assert list(transfer.in_flight) == []
    assert transfer.last_activity_at == 7.0
    assert transfer.wants_chunk()
    resent = transfer.make_chunk(next_bytes(transfer, DATA))
    assert (resent.offset, resent.data) == (4, DATA[4:8])
    assert (transfer.chunks_sent, transfer.bytes_sent) == (4, 14)  # counters count every send


@pytest.mark.parametrize("offset", [-1, 11])
def test_a_request_outside_the_snapshot_is_refused(offset):
    transfer = outgoing()
    transfer.make_chunk(next_bytes(transfer, DATA))

    assert transfer.on_request(request_at(offset), now=5.0) == f"offset must lie in [0, 10], got {offset}"
    assert (transfer.next_offset, transfer.last_activity_at, list(transfer.in_flight)) == (4, 0.0, [4])


def test_a_request_for_another_snapshot_is_refused():
    transfer = outgoing()

    assert transfer.on_request(request_at(0, snapshot_id="3-20-xyz"), now=1.0) == (
        "snapshot '3-20-xyz' requested, this transfer sends '2-10-abcdef'"
    )
    assert transfer.last_activity_at == 0.0


def test_make_chunk_refuses_more_than_chunk_size():
    transfer = outgoing()

    with pytest.raises(ValueError, match=r"^chunk of 5 bytes exceeds chunk_size 4$"):
        transfer.make_chunk(DATA[0:5])
    assert (transfer.next_offset, transfer.chunks_sent) == (0, 0)


def test_make_chunk_refuses_data_past_the_end():
    transfer = outgoing()
    transfer.on_request(request_at(8), now=0.0)

    with pytest.raises(ValueError, match=r"^store returned 4 bytes at offset 8 of a 10-byte snapshot$"):
        transfer.make_chunk(b"89AB")
    assert (transfer.next_offset, transfer.chunks_sent) == (8, 0)


def test_make_chunk_refuses_no_data_before_the_end():
    transfer = outgoing()

    with pytest.raises(ValueError, match=r"^store returned 0 bytes at offset 0 of a 10-byte snapshot$"):
        transfer.make_chunk(b"")


def test_a_zero_byte_snapshot_sends_exactly_one_empty_final_chunk():
    transfer = outgoing(total=0, window=4)

    assert transfer.wants_chunk()
    chunk = transfer.make_chunk(b"")

    assert (chunk.offset, chunk.data, chunk.total_size, chunk.is_final) == (0, b"", 0, True)
    assert chunk.checksum == chunk_checksum(b"")
    assert not transfer.wants_chunk()
    assert (transfer.chunks_sent, transfer.bytes_sent) == (1, 0)


def test_chunk_size_one_sends_one_byte_per_chunk():
    transfer = outgoing(total=3, chunk_size=1)
    data = b"abc"
    chunks = []
    while transfer.wants_chunk():
        chunks.append(transfer.make_chunk(next_bytes(transfer, data)))
        transfer.on_ack(transfer.next_offset, now=1.0)

    assert [(c.offset, c.data, c.is_final) for c in chunks] == [(0, b"a", False), (1, b"b", False), (2, b"c", True)]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("chunk_size", 0, "chunk_size must be a positive number of bytes, got 0"),
     ("window", 0, "chunks in flight must be >= 1, got 0")],
)
def test_an_outgoing_transfer_needs_a_positive_chunk_size_and_window(field, value, message):
    options = {"total": 10, "chunk_size": 4, "window": 1}
    options[field] = value
    with pytest.raises(ValueError, match=f"^{message}$"):
        outgoing(**options)


# ================================================================ a sender and a receiver over a lossy link

LINK_FAULTS = ("deliver", "drop", "duplicate", "reorder", "corrupt")


def corrupted(chunk: SnapshotChunk) -> SnapshotChunk:
    """One byte flipped in the data (or, for an empty chunk, in the checksum)."""
    if not chunk.data:
        return attrs.evolve(chunk, checksum=chunk.checksum ^ 1)
    data = bytearray(chunk.data)
    data[len(data) // 2] ^= 0xFF
    return attrs.evolve(chunk, data=bytes(data))


class LossyLink:
    """Messages in both directions, in one FIFO; the i-th message sent suffers ``faults[i]``.

    ``reorder`` holds a message back until the next one is sent (or the link
    is otherwise idle); ``corrupt`` only harms chunks (requests and acks have
    no checksum to catch it, so they are delivered as sent). Once the faults
    run out, the link is perfect, so every run can finish.
    """

    def __init__(self, faults) -> None:
        self.faults = deque(faults)
        self.queue: deque = deque()
        self.held: list = []
        self.corrupted_sent = 0

    def send(self, message) -> None:
        fault = self.faults.popleft() if self.faults else "deliver"
        if fault == "drop":
            return
        if fault == "reorder":
            self.held.append(message)
            return
        if fault == "corrupt" and isinstance(message, SnapshotChunk):
            message = corrupted(message)
            self.corrupted_sent += 1
        self.queue.append(message)
        if fault == "duplicate":
            self.queue.append(message)
        self.queue.extend(self.held)  # what was held back arrives after this message
        self.held.clear()

    def receive(self):
        if not self.queue and self.held:
            self.queue.extend(self.held)
            self.held.clear()
        return self.queue.popleft() if self.queue else None


def transfer_over(link: LossyLink, data: bytes, chunk_size: int, window: int, *, max_steps: int = 20_000):
    """Stream ``data`` from an OutgoingTransfer to an IncomingTransfer over ``link``.

    The receiver asks again from its verified offset after every rejected
    chunk and whenever nothing moves (the sender's window is full and the
    link is empty). Returns the sender, the receiver, the accepted chunks and
    every chunk the sender made.
    """
    offer = SnapshotOffer(source=1, index=10, term=2, size=len(data), digest=digest_of(data),
                          snapshot_id=SNAPSHOT_ID)
    receiver = IncomingTransfer(me=2, offer=offer, verified_offset=0, started_at=0.0, last_progress_at=0.0)
    sender = OutgoingTransfer(me=1, to=2, snapshot_index=10, snapshot_term=2, snapshot_id=SNAPSHOT_ID,
                              total_size=len(data), chunk_size=chunk_size, window=window,
                              last_activity_at=0.0)
    accepted: list[SnapshotChunk] = []
    made: list[SnapshotChunk] = []
    link.send(receiver.request())
    asked = False  # a sender streams only once asked (the endpoint makes it on the first request)
    final_accepted = False
    for step in itertools.count():
        assert step < max_steps, "the transfer did not finish"
        while asked and sender.wants_chunk():
            chunk = sender.make_chunk(next_bytes(sender, data))
            made.append(chunk)
            link.send(chunk)
        if final_accepted:
            break
        message = link.receive()
        now = float(step)
        if message is None:  # stalled: the window is full and nothing arrives
            link.send(receiver.retry())
        elif isinstance(message, SnapshotRequest):
            assert sender.on_request(message, now) is None
            asked = True
        elif isinstance(message, SnapshotAck):
            sender.on_ack(message.offset, now)
        else:
            verdict, _detail = receiver.check_chunk(message)
            if verdict is Verdict.ACCEPT:
                assert message.data == data[message.offset : message.offset + len(message.data)], (
                    "a corrupt chunk was accepted"
                )
                accepted.append(message)
                receiver.advance(len(message.data), now)
                link.send(SnapshotAck(from_=2, to=1, snapshot_id=SNAPSHOT_ID, offset=receiver.verified_offset))
                final_accepted = message.is_final
            elif verdict is Verdict.REJECT:
                link.send(receiver.request())
    return sender, receiver, accepted, made


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(min_size=0, max_size=200),
    chunk_size=st.integers(min_value=1, max_value=64),
    window=st.integers(min_value=1, max_value=5),
    faults=st.lists(st.sampled_from(LINK_FAULTS), max_size=40),
)
@example(data=b"", chunk_size=1, window=1, faults=["corrupt", "drop", "duplicate"])
@example(data=DATA, chunk_size=5, window=2, faults=["deliver", "reorder", "deliver", "corrupt"])
def test_a_lossy_link_always_delivers_exactly_the_original_bytes(data, chunk_size, window, faults):
    link = LossyLink(faults)

    _sender, receiver, accepted, _made = transfer_over(link, data, chunk_size, window)

    assert b"".join(chunk.data for chunk in accepted) == data
    assert [chunk.offset for chunk in accepted] == list(itertools.accumulate(
        [len(chunk.data) for chunk in accepted[:-1]], initial=0))
    assert receiver.complete and receiver.verified_offset == len(data)
    if set(faults) <= {"deliver", "duplicate"}:  # nothing lost, reordered or spoiled: nothing to reject
        assert receiver.rejections == Counter()


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=200),
    chunk_size=st.integers(min_value=1, max_value=64),
    window=st.integers(min_value=1, max_value=5),
)
@example(data=b"", chunk_size=4, window=1)
@example(data=bytes(64), chunk_size=16, window=3)
def test_a_perfect_link_sends_every_byte_once(data, chunk_size, window):
    sender, receiver, accepted, made = transfer_over(LossyLink([]), data, chunk_size, window)

    expected_offsets = list(range(0, len(data), chunk_size)) or [0]
    assert [chunk.offset for chunk in made] == expected_offsets
    assert accepted == made
    assert sender.bytes_sent == len(data)
    assert (receiver.retries, receiver.duplicate_bytes, receiver.rejections) == (0, 0, Counter())


# ================================================================ TransferRegistry


def start(registry: TransferRegistry, *, from_: int = 1, to: int = 2, snapshot_id: str = SNAPSHOT_ID,
          now: float = 0.0):
    return registry.start(from_=from_, to=to, snapshot_index=10, snapshot_id=snapshot_id, mode="streaming",
                          size=100, now=now)


def test_start_opens_a_record_reported_by_progress():
    registry = TransferRegistry()

    record = start(registry, now=1.5)

    assert registry.get(2, SNAPSHOT_ID) is record
    assert registry.progress() == [TransferProgress(
        from_=1, to=2, snapshot_index=10, snapshot_id=SNAPSHOT_ID, mode="streaming", size=100,
        bytes_done=0, bytes_sent=0, resent_bytes=0, retries=0, started_at=1.5, updated_at=1.5,
        outcome=Outcome.IN_PROGRESS,
    )]


def test_start_again_continues_the_record_with_the_new_sender():
    registry = TransferRegistry()
    record = start(registry, now=1.0)
    record.bytes_done, record.retries = 40, 2

    again = start(registry, from_=3, now=4.0)

    assert again is record
    assert (record.from_, record.started_at, record.updated_at) == (3, 1.0, 4.0)
    assert (record.bytes_done, record.retries, record.outcome) == (40, 2, Outcome.IN_PROGRESS)
    assert len(registry.progress()) == 1


def test_start_after_an_abort_continues_the_same_record():
    registry = TransferRegistry()
    record = start(registry, now=1.0)
    record.bytes_done, record.retries, record.outcome = 40, 3, Outcome.ABORTED

    again = start(registry, now=9.0)

    assert again is record
    assert (record.outcome, record.bytes_done, record.retries, record.started_at) == (
        Outcome.IN_PROGRESS, 40, 3, 1.0)


def test_start_after_an_install_opens_a_new_record():
    registry = TransferRegistry()
    first = start(registry, now=1.0)
    first.bytes_done, first.bytes_sent, first.outcome = 100, 100, Outcome.INSTALLED

    second = start(registry, now=9.0)

    assert second is not first
    assert registry.get(2, SNAPSHOT_ID) is second
    assert (second.bytes_done, second.bytes_sent, second.started_at, second.outcome) == (
        0, 0, 9.0, Outcome.IN_PROGRESS)


def test_a_transfer_after_an_installed_one_is_listed_after_it():
    # "The run's transfers, in the order they started": the installed one stays in the list.
    registry = TransferRegistry()
    first = start(registry, now=1.0)
    first.outcome = Outcome.INSTALLED

    start(registry, now=9.0)

    assert [(p.started_at, p.outcome) for p in registry.progress()] == [
        (1.0, Outcome.INSTALLED), (9.0, Outcome.IN_PROGRESS)]


def test_records_are_per_receiver_in_the_order_they_started():
    registry = TransferRegistry()
    start(registry, to=3, now=1.0)
    start(registry, to=2, now=2.0)
    start(registry, to=3, snapshot_id="3-20-xyz", now=3.0)

    assert [(p.to, p.snapshot_id) for p in registry.progress()] == [
        (3, SNAPSHOT_ID), (2, SNAPSHOT_ID), (3, "3-20-xyz")]


def test_sent_counts_bytes_resent_below_the_frontier_of_any_sender():
    registry = TransferRegistry()
    start(registry, from_=1, now=0.0)
    registry.sent(2, SNAPSHOT_ID, 0, 30, now=1.0)
    registry.sent(2, SNAPSHOT_ID, 30, 30, now=2.0)   # frontier 60, acknowledged only up to 30
    start(registry, from_=3, now=3.0)                # a new leader resumes from 30
    registry.sent(2, SNAPSHOT_ID, 30, 30, now=4.0)   # all resent
    registry.sent(2, SNAPSHOT_ID, 60, 30, now=5.0)   # new bytes
    registry.sent(2, SNAPSHOT_ID, 50, 20, now=6.0)   # 50..70 lies below the frontier of 90: resent

    record = registry.get(2, SNAPSHOT_ID)
    assert (record.bytes_sent, record.resent_bytes, record.frontier, record.updated_at) == (140, 50, 90, 6.0)
    assert record.from_ == 3


def test_sent_straddling_the_frontier_counts_only_the_bytes_below_it():
    registry = TransferRegistry()
    start(registry)
    registry.sent(2, SNAPSHOT_ID, 0, 40, now=1.0)

    registry.sent(2, SNAPSHOT_ID, 30, 20, now=2.0)

    record = registry.get(2, SNAPSHOT_ID)
    assert (record.bytes_sent, record.resent_bytes, record.frontier) == (60, 10, 50)


def test_sent_for_an_unknown_transfer_is_ignored():
    registry = TransferRegistry()

    registry.sent(2, SNAPSHOT_ID, 0, 40, now=1.0)

    assert registry.progress() == []


def progress(*, size=100, bytes_done=0, started_at=0.0, updated_at=0.0, outcome=Outcome.IN_PROGRESS):
    return TransferProgress(from_=1, to=2, snapshot_index=10, snapshot_id=SNAPSHOT_ID, mode="streaming",
                            size=size, bytes_done=bytes_done, bytes_sent=bytes_done, resent_bytes=0, retries=0,
                            started_at=started_at, updated_at=updated_at, outcome=outcome)


def test_fraction_is_bytes_done_over_size_and_one_for_an_empty_snapshot():
    assert progress(bytes_done=25).fraction == 0.25
    assert progress(size=0).fraction == 1.0


def test_rate_is_verified_bytes_per_second_since_the_start():
    assert progress(bytes_done=50, started_at=1.0, updated_at=3.0).rate == 25.0
    assert progress(bytes_done=50, started_at=1.0, updated_at=1.0).rate == 0.0


def test_eta_is_the_rest_at_the_current_rate():
    assert progress(bytes_done=50, started_at=1.0, updated_at=3.0).eta == 2.0
    assert progress(bytes_done=0, started_at=1.0, updated_at=3.0).eta is None
    assert progress(bytes_done=100, started_at=1.0, updated_at=3.0, outcome=Outcome.INSTALLED).eta == 0.0


# ================================================================ chunk faults


def numbered_chunk(number: int, *, to: int = 2, source: int = 1, data: bytes = b"abcd") -> SnapshotChunk:
    return SnapshotChunk(from_=source, to=to, snapshot_index=10, snapshot_term=2, snapshot_id=SNAPSHOT_ID,
                         offset=4 * number, total_size=400, is_final=False, checksum=chunk_checksum(data),
                         data=data)


def faults_with(*faults: ChunkFault) -> ChunkFaults:
    armed = ChunkFaults()
    for fault in faults:
        armed.add(fault)
    return armed


def copies_of(verdict) -> list[tuple[int, float]]:
    return [(chunk.offset, delay) for chunk, delay in verdict.copies]


def test_chunk_numbers_start_at_one():
    with pytest.raises(ValueError, match=r"^chunk numbers start at 1, got k=0$"):
        ChunkFault(0, "drop")


def test_an_unknown_chunk_fault_is_refused():
    with pytest.raises(ValueError) as raised:
        ChunkFault(1, "explode")
    assert str(raised.value) == (
        "unknown chunk fault 'explode'; expected one of "
        "drop, duplicate, corrupt, corrupt_source, delay, cut, crash_sender, crash_receiver"
    )


@pytest.mark.parametrize("delay", [0.0, -1.0])
def test_a_delay_fault_needs_a_positive_delay(delay):
    with pytest.raises(ValueError, match=f"^a delay fault needs delay > 0 seconds, got {delay}$"):
        ChunkFault(1, "delay", delay=delay)


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_is_a_valid_fault(action):
    fault = ChunkFault(3, action, delay=0.5 if action == "delay" else 0.0)
    assert (fault.k, fault.action) == (3, action)


def test_drop_loses_chunk_k_only():
    faults = faults_with(ChunkFault(2, "drop"))

    verdicts = [faults.on_chunk(numbered_chunk(n)) for n in range(4)]

    assert [copies_of(v) for v in verdicts] == [[(0, 0.0)], [], [(8, 0.0)], [(12, 0.0)]]
    assert verdicts[1].reason == "drop chunk 2"
    assert verdicts[1].crash == ()


def test_duplicate_sends_chunk_k_twice():
    faults = faults_with(ChunkFault(1, "duplicate"))

    verdict = faults.on_chunk(numbered_chunk(0))

    assert verdict.copies == ((numbered_chunk(0), 0.0), (numbered_chunk(0), 0.0))
    assert verdict.reason == "duplicate chunk 1"


def test_corrupt_flips_one_byte_so_the_checksum_no_longer_matches():
    faults = faults_with(ChunkFault(1, "corrupt"))
    chunk = numbered_chunk(0, data=b"abcdef")

    ((copy, delay),) = faults.on_chunk(chunk).copies

    assert delay == 0.0
    assert copy.checksum == chunk.checksum
    assert chunk_checksum(copy.data) != copy.checksum
    assert len(copy.data) == len(chunk.data)
    assert sum(a != b for a, b in zip(copy.data, chunk.data)) == 1
    assert attrs.evolve(copy, data=chunk.data) == chunk


def test_corrupt_spoils_the_checksum_of_an_empty_chunk():
    faults = faults_with(ChunkFault(1, "corrupt"))
    chunk = numbered_chunk(0, data=b"")

    ((copy, _),) = faults.on_chunk(chunk).copies

    assert copy.data == b""
    assert chunk_checksum(copy.data) != copy.checksum


def test_delay_holds_chunk_k_back():
    faults = faults_with(ChunkFault(1, "delay", delay=0.75))

    verdict = faults.on_chunk(numbered_chunk(0))

    assert copies_of(verdict) == [(0, 0.75)]
    assert verdict.reason == "delay chunk 1"


def test_cut_loses_later_chunks_until_the_receiver_asks_again():
    faults = faults_with(ChunkFault(2, "cut"))

    before = [faults.on_chunk(numbered_chunk(n)) for n in range(4)]
    faults.on_request(SnapshotRequest(from_=2, to=1, snapshot_index=10, snapshot_term=2,
                                      snapshot_id=SNAPSHOT_ID, offset=8))
    after = faults.on_chunk(numbered_chunk(2))

    assert [copies_of(v) for v in before] == [[(0, 0.0)], [(4, 0.0)], [], []]
    assert [v.reason for v in before] == ["", "cut chunk 2", "stream cut", "stream cut"]
    assert copies_of(after) == [(8, 0.0)]
    assert not faults


def test_a_cut_stream_spares_other_receivers_and_their_requests_do_not_mend_it():
    faults = faults_with(ChunkFault(1, "cut", to=2))
    faults.on_chunk(numbered_chunk(0, to=2))

    other = faults.on_chunk(numbered_chunk(0, to=3))
    faults.on_request(SnapshotRequest(from_=3, to=1, snapshot_index=10, snapshot_term=2,
                                      snapshot_id=SNAPSHOT_ID, offset=0))
    still_cut = faults.on_chunk(numbered_chunk(1, to=2))

    assert copies_of(other) == [(0, 0.0)]
    assert copies_of(still_cut) == []
    assert faults  # armed while the cut lasts


@pytest.mark.parametrize(("action", "crashed"), [("crash_sender", 1), ("crash_receiver", 2)])
def test_crash_faults_deliver_chunk_k_and_name_the_node_to_crash(action, crashed):
    faults = faults_with(ChunkFault(2, action, restart_after=1.5))

    first = faults.on_chunk(numbered_chunk(0))
    second = faults.on_chunk(numbered_chunk(1))

    assert first.crash == ()
    assert copies_of(second) == [(4, 0.0)]
    assert second.crash == ((crashed, 1.5),)
    assert second.reason == f"{action} chunk 2"


def test_a_fault_for_one_receiver_counts_only_its_chunks():
    faults = faults_with(ChunkFault(2, "drop", to=3))

    verdicts = [faults.on_chunk(numbered_chunk(n, to=to)) for n, to in
                [(0, 3), (0, 2), (1, 2), (1, 3), (2, 3)]]

    assert [copies_of(v) for v in verdicts] == [[(0, 0.0)], [(0, 0.0)], [(4, 0.0)], [], [(8, 0.0)]]


def test_a_fault_fires_once():
    faults = faults_with(ChunkFault(1, "duplicate"))
    assert faults

    first = faults.on_chunk(numbered_chunk(0))
    later = [faults.on_chunk(numbered_chunk(n)) for n in range(1, 5)]

    assert len(first.copies) == 2
    assert [len(v.copies) for v in later] == [1, 1, 1, 1]
    assert not faults


def test_a_dropped_chunk_still_counts_for_later_faults():
    # Chunk k is "the k-th chunk sent after the fault was added": a lost chunk was sent.
    faults = faults_with(ChunkFault(1, "drop"), ChunkFault(2, "duplicate"))

    verdicts = [faults.on_chunk(numbered_chunk(n)) for n in range(3)]

    assert [len(v.copies) for v in verdicts] == [0, 2, 1]


# ================================================================ rechunk


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.binary(max_size=40), max_size=12), size=st.integers(min_value=1, max_value=32))
@example(pieces=[], size=1)
@example(pieces=[b"", b""], size=3)
@example(pieces=[b"abc", b"def"], size=3)
@example(pieces=[b"abcdefgh"], size=1)
def test_rechunk_regroups_pieces_into_exact_chunks(pieces, size):
    chunks = list(rechunk(iter(pieces), size))

    whole = b"".join(pieces)
    assert b"".join(chunks) == whole
    assert all(len(chunk) == size for chunk in chunks[:-1])
    if whole:
        assert 1 <= len(chunks[-1]) <= size
        assert len(chunks) == -(-len(whole) // size)
    else:
        assert chunks == []


# ================================================================ StreamingEndpoint with a fake host

MODE = Streaming(chunk_size=4, chunks_in_flight=1, idle_timeout=1.0, max_idle_retries=3)


class FakeHost:
    """A :class:`~transports.streaming.StreamHost` that records everything the endpoint does.

    ``log`` keeps sends, timers, installs, steps and reports in one order;
    the per-kind lists make assertions short. ``clock`` is what ``now()``
    returns; :class:`Net` moves it.
    """

    def __init__(self, node_id: int, net: Net, committed: int = 0) -> None:
        self.node_id = node_id
        self.net = net
        self.clock = 0.0
        self.committed = committed
        self.log: list[tuple] = []
        self.sent: list = []
        self.scheduled: list[tuple[float, object]] = []  # (delay, item)
        self.installed: list[Message] = []
        self.stepped: list[Message] = []
        self.reports: list[tuple[int, SnapshotStatus]] = []
        self.events: list[tuple[str, dict]] = []
        self.held: list[int] = []

    def now(self) -> float:
        return self.clock

    def send(self, message) -> None:
        self.sent.append(message)
        self.log.append(("send", message))
        self.net.wire.append(message)

    def schedule(self, delay: float, item) -> None:
        self.scheduled.append((delay, item))
        self.log.append(("schedule", delay, item))
        self.net.arm(self.node_id, self.clock + delay, item)

    def install(self, message: Message) -> None:
        self.installed.append(message)
        self.log.append(("install", message))

    def step(self, message: Message) -> None:
        self.stepped.append(message)
        self.log.append(("step", message))

    def report_snapshot(self, to: int, status: SnapshotStatus) -> None:
        self.reports.append((to, status))
        self.log.append(("report", to, status))

    def committed_index(self) -> int:
        return self.committed

    def log_first_index(self) -> int:
        return 1  # the fake leader's log reaches back to the start: no transfer is superseded

    def event(self, kind: str, **fields) -> None:
        self.events.append((kind, fields))

    def hold_memory(self, extra: int) -> None:
        self.held.append(extra)

    # -- reading what happened

    def of_kind(self, kind: str) -> list[dict]:
        return [fields for event_kind, fields in self.events if event_kind == kind]

    def event_kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def sent_of(self, kind: type) -> list:
        return [message for message in self.sent if isinstance(message, kind)]


@attrs.define(eq=False)
class Node:
    endpoint: StreamingEndpoint
    host: FakeHost
    store: MemorySnapshotStore


class Net:
    """Nodes with endpoints, one FIFO wire between them, and timers on one clock.

    ``tamper`` decides what a message becomes on the wire: a list of what
    arrives (``[]`` drops it). ``deliver`` runs the wire until it is empty;
    ``advance`` moves the clock, firing due timers (each followed by delivery).
    """

    def __init__(self, mode: Streaming = MODE) -> None:
        self.mode = mode
        self.registry = TransferRegistry()
        self.nodes: dict[int, Node] = {}
        self.wire: deque = deque()
        self.timers: list = []  # heap of (due, seq, node_id, item)
        self._seq = itertools.count()
        self.clock = 0.0
        self.tamper = lambda message: [message]

    def node(self, node_id: int, *, committed: int = 0, mode: Streaming | None = None) -> Node:
        host = FakeHost(node_id, self, committed)
        host.clock = self.clock
        # The store reads in 3-byte pieces; the endpoint regroups them into the mode's chunks.
        store = MemorySnapshotStore(chunk_size=3, clock=lambda: self.clock)
        endpoint = StreamingEndpoint(node_id, mode or self.mode, store, host, self.registry)
        self.nodes[node_id] = Node(endpoint, host, store)
        return self.nodes[node_id]

    def arm(self, node_id: int, due: float, item) -> None:
        heapq.heappush(self.timers, (due, next(self._seq), node_id, item))

    def set_clock(self, now: float) -> None:
        self.clock = now
        for node in self.nodes.values():
            node.host.clock = now

    def deliver(self, *, until=lambda: False, max_messages: int = 10_000) -> None:
        for _ in range(max_messages):
            if not self.wire or until():
                return
            message = self.wire.popleft()
            for arriving in self.tamper(message):
                self.nodes[arriving.to].endpoint.on_stream_message(arriving)
        raise AssertionError(f"the wire did not drain after {max_messages} messages")

    def advance(self, seconds: float) -> None:
        target = self.clock + seconds
        while self.timers and self.timers[0][0] <= target:
            due, _, node_id, item = heapq.heappop(self.timers)
            self.set_clock(due)
            self.nodes[node_id].endpoint.on_timer(item)
            self.deliver()
        self.set_clock(target)


def save(node: Node, data: bytes = DATA, *, index: int = 10, term: int = 2,
         snapshot_id: str = SNAPSHOT_ID) -> None:
    node.store.save_snapshot(index, data, term=term, snapshot_id=snapshot_id)


def offer_message(source: int, to: int, *, index: int = 10, term: int = 2, size: int = len(DATA),
                  digest: str = DIGEST, snapshot_id: str = SNAPSHOT_ID) -> Message:
    """The metadata-only Raft snapshot message a streaming leader sends."""
    metadata = SnapshotMetadata(index=index, term=term, conf_state=ConfState(voters=(1, 2, 3)), size=size,
                                digest=digest, snapshot_id=snapshot_id)
    return Message(MessageType.SNAPSHOT, to=to, from_=source, term=term, snapshot=Snapshot(metadata, None))


def drop_chunks_from(offset: int):
    """A tamper that loses every chunk starting at or after ``offset``."""
    return lambda message: [] if isinstance(message, SnapshotChunk) and message.offset >= offset else [message]


def drop_everything(message) -> list:
    return []


def two_nodes(mode: Streaming = MODE) -> tuple[Net, Node, Node]:
    net = Net(mode)
    leader, follower = net.node(1), net.node(2)
    save(leader)
    return net, leader, follower


def test_a_transfer_goes_offer_request_chunks_acks_commit_install_finish():
    net, leader, follower = two_nodes()
    offer = offer_message(1, 2)

    follower.endpoint.on_offer(offer)
    net.deliver()

    assert follower.host.sent_of(SnapshotRequest) == [
        SnapshotRequest(from_=2, to=1, snapshot_index=10, snapshot_term=2, snapshot_id=SNAPSHOT_ID, offset=0)]
    assert [(c.offset, c.data, c.is_final) for c in leader.host.sent_of(SnapshotChunk)] == [
        (0, b"0123", False), (4, b"4567", False), (8, b"89", True)]
    assert [(a.offset, a.installed) for a in follower.host.sent_of(SnapshotAck)] == [
        (4, False), (8, False), (10, False), (10, True)]
    assert follower.host.installed == [offer]
    assert follower.store.read_snapshot(10) == DATA
    assert follower.store.snapshot_metadata(10).snapshot_id == SNAPSHOT_ID
    assert follower.store.partial_transfers() == []
    assert leader.host.reports == [(2, SnapshotStatus.FINISH)]
    assert follower.host.event_kinds() == ["transfer_started", "snapshot_request", "transfer_progress",
                                           "transfer_progress", "transfer_progress", "transfer_installed"]
    assert follower.host.of_kind("transfer_progress") == [
        {"source": 1, "index": 10, "offset": offset, "size": 10} for offset in (4, 8, 10)]
    assert leader.host.event_kinds() == ["transfer_sent"]
    assert leader.host.of_kind("transfer_sent") == [
        {"to": 2, "index": 10, "bytes_sent": 10, "reason": "installed"}]
    assert (follower.endpoint.incoming, leader.endpoint.outgoing) == (None, {})
    (record,) = net.registry.progress()
    assert (record.from_, record.to, record.size, record.bytes_done, record.bytes_sent, record.resent_bytes,
            record.retries, record.outcome) == (1, 2, 10, 10, 10, 0, 0, Outcome.INSTALLED)


def test_install_happens_after_every_ack_and_before_the_installed_ack():
    net, _leader, follower = two_nodes()

    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()

    actions = [entry[0] if entry[0] != "send" else type(entry[1]).__name__ for entry in follower.host.log
               if entry[0] != "schedule"]
    assert actions == ["SnapshotRequest", "SnapshotAck", "SnapshotAck", "SnapshotAck", "install", "SnapshotAck"]


def test_an_offer_at_or_below_the_commit_index_is_stepped_straight_to_raft():
    net = Net()
    follower = net.node(2, committed=10)
    offer = offer_message(1, 2, index=10)

    follower.endpoint.on_offer(offer)

    assert follower.host.stepped == [offer]
    assert (follower.host.sent, follower.host.events, follower.host.installed) == ([], [], [])
    assert follower.endpoint.incoming is None
    assert follower.store.partial_transfers() == []


def test_an_offer_without_a_digest_is_refused_and_counted():
    net = Net()
    follower = net.node(2)

    follower.endpoint.on_offer(offer_message(1, 2, digest=""))

    assert follower.endpoint.counters["malformed_offer"] == 1
    assert follower.host.event_kinds() == ["transfer_refused"]
    assert follower.host.sent == []


def test_the_same_snapshot_from_a_new_leader_continues_from_the_verified_offset():
    net, _old_leader, follower = two_nodes()
    new_leader = net.node(3)
    save(new_leader)
    net.tamper = drop_chunks_from(4)
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    assert follower.endpoint.incoming.verified_offset == 4
    net.tamper = lambda message: [message]

    follower.endpoint.on_offer(offer_message(3, 2))
    net.deliver()

    assert follower.host.of_kind("transfer_resumed") == [
        {"source": 3, "index": 10, "offset": 4, "reason": "new leader holds the same snapshot"}]
    assert [(r.to, r.offset) for r in follower.host.sent_of(SnapshotRequest)] == [(1, 0), (3, 4)]
    assert [(c.offset, c.data) for c in new_leader.host.sent_of(SnapshotChunk)] == [(4, b"4567"), (8, b"89")]
    assert follower.store.read_snapshot(10) == DATA
    assert len(follower.host.installed) == 1
    assert new_leader.host.reports == [(2, SnapshotStatus.FINISH)]
    (record,) = net.registry.progress()
    # Sent: 0..4 and 4..8 (lost) by node 1, then 4..8 again and 8..10 by node 3.
    assert (record.from_, record.bytes_done, record.bytes_sent, record.resent_bytes, record.outcome) == (
        3, 10, 14, 4, Outcome.INSTALLED)


def test_the_same_offer_after_a_receiver_crash_resumes_its_partial():
    net, _leader, follower = two_nodes()
    net.tamper = drop_chunks_from(8)
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    follower.endpoint.crashed()
    net.tamper = lambda message: [message]

    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()

    assert follower.host.of_kind("transfer_resumed") == [
        {"source": 1, "index": 10, "offset": 8, "reason": "partial snapshot kept on disk"}]
    assert [r.offset for r in follower.host.sent_of(SnapshotRequest)] == [0, 8]
    assert follower.store.read_snapshot(10) == DATA
    assert len(follower.host.installed) == 1


def test_a_newer_offer_supersedes_the_transfer_and_removes_its_partial():
    net, leader, follower = two_nodes()
    newer = b"a newer snapshot"
    save(leader, newer, index=20, term=3, snapshot_id="3-20-fedcba")
    net.tamper = drop_chunks_from(4)
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    assert [(p.index, p.offset) for p in follower.store.partial_transfers()] == [(10, 4)]
    net.tamper = lambda message: [message]

    newer_offer = offer_message(1, 2, index=20, term=3, size=len(newer), digest=digest_of(newer),
                                snapshot_id="3-20-fedcba")
    follower.endpoint.on_offer(newer_offer)

    assert [(p.index, p.offset) for p in follower.store.partial_transfers()] == [(20, 0)]
    assert follower.host.of_kind("transfer_superseded") == [
        {"source": 1, "index": 10, "retries": 0, "reason": "snapshot 20 supersedes it"}]
    assert net.registry.get(2, SNAPSHOT_ID).outcome is Outcome.SUPERSEDED
    assert follower.host.sent_of(SnapshotRequest)[-1].snapshot_id == "3-20-fedcba"
    net.deliver()
    assert follower.host.installed == [newer_offer]
    assert follower.store.read_snapshot(20) == newer
    assert not follower.store.has_snapshot(10)
    assert follower.store.partial_transfers() == []
    assert leader.host.reports[-1] == (2, SnapshotStatus.FINISH)


def test_an_older_offer_during_a_transfer_is_ignored():
    net, leader, follower = two_nodes()
    save(leader, b"older", index=5, term=1, snapshot_id="1-5-older")
    net.tamper = drop_chunks_from(4)
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()

    follower.endpoint.on_offer(offer_message(1, 2, index=5, term=1, size=5, digest=digest_of(b"older"),
                                             snapshot_id="1-5-older"))

    assert follower.endpoint.counters["older_offer_ignored"] == 1
    assert follower.endpoint.incoming.offer.index == 10
    assert [(p.index, p.offset) for p in follower.store.partial_transfers()] == [(10, 4)]


def test_a_request_for_a_snapshot_the_sender_no_longer_holds_is_aborted_and_reported():
    net, leader, follower = two_nodes()
    save(leader, b"newer", index=20, term=3, snapshot_id="3-20-fedcba")
    assert leader.store.compact_snapshots(1) == [10]

    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()

    reason = "snapshot 10 is no longer held (held: [20])"
    assert leader.host.sent == [SnapshotAbort(from_=1, to=2, snapshot_id=SNAPSHOT_ID, reason=reason)]
    assert leader.host.of_kind("transfer_refused") == [{"to": 2, "index": 10, "reason": reason}]
    assert leader.host.reports == [(2, SnapshotStatus.FAILURE)]
    assert leader.endpoint.outgoing == {}
    # The receiver gives the transfer up and keeps nothing of it.
    assert follower.host.of_kind("transfer_aborted") == [{"source": 1, "index": 10, "retries": 0, "reason": reason}]
    assert follower.endpoint.incoming is None
    assert follower.store.partial_transfers() == []
    assert net.registry.get(2, SNAPSHOT_ID).outcome is Outcome.ABORTED


def test_an_abort_drops_the_transfer_and_its_partial_data():
    net, _leader, follower = two_nodes()
    net.tamper = drop_chunks_from(8)
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    assert [(p.index, p.offset) for p in follower.store.partial_transfers()] == [(10, 8)]

    follower.endpoint.on_stream_message(
        SnapshotAbort(from_=1, to=2, snapshot_id=SNAPSHOT_ID, reason="cannot read snapshot 10"))

    assert follower.endpoint.incoming is None
    assert follower.store.partial_transfers() == []
    assert follower.host.of_kind("transfer_aborted") == [
        {"source": 1, "index": 10, "retries": 0, "reason": "cannot read snapshot 10"}]


def test_a_snapshot_compacted_mid_transfer_is_aborted_on_the_next_request():
    net, leader, follower = two_nodes()
    net.tamper = drop_chunks_from(4)
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    save(leader, b"newer", index=20, term=3, snapshot_id="3-20-fedcba")
    leader.store.compact_snapshots(1)
    net.tamper = lambda message: [message]

    net.advance(1.0)  # the follower's idle timer asks again from 4

    (abort,) = leader.host.sent_of(SnapshotAbort)
    assert abort.reason == "snapshot 10 was compacted away (held: [20])"
    assert leader.host.reports == [(2, SnapshotStatus.FAILURE)]
    assert leader.host.of_kind("transfer_failed")[0]["reason"] == abort.reason
    assert follower.endpoint.incoming is None
    assert follower.store.partial_transfers() == []


def test_an_abort_from_a_former_source_does_not_end_the_transfer():
    # The old leader's abort speaks for its own copy; node 3 still holds the snapshot.
    net, _old_leader, follower = two_nodes()
    new_leader = net.node(3)
    save(new_leader)
    net.tamper = drop_chunks_from(4)
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    net.tamper = drop_everything
    follower.endpoint.on_offer(offer_message(3, 2))
    net.deliver()

    follower.endpoint.on_stream_message(
        SnapshotAbort(from_=1, to=2, snapshot_id=SNAPSHOT_ID, reason="snapshot 10 is no longer held"))

    assert follower.endpoint.incoming is not None
    assert follower.endpoint.incoming.offer.source == 3
    assert [(p.index, p.offset) for p in follower.store.partial_transfers()] == [(10, 4)]
    assert follower.host.of_kind("transfer_aborted") == []


def test_no_progress_for_an_idle_timeout_asks_again():
    net, _leader, follower = two_nodes()
    net.tamper = drop_chunks_from(4)
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    assert [(delay, timer.purpose, timer.peer, timer.snapshot_id) for delay, timer in follower.host.scheduled] == [
        (1.0, "receive_idle", 1, SNAPSHOT_ID)]

    net.advance(1.0)

    assert follower.host.of_kind("transfer_retry") == [{"source": 1, "index": 10, "offset": 4, "attempt": 1}]
    assert [r.offset for r in follower.host.sent_of(SnapshotRequest)] == [0, 4]
    assert follower.endpoint.incoming.retries == 1
    assert net.registry.get(2, SNAPSHOT_ID).retries == 1


def test_progress_postpones_the_idle_retry():
    net, _leader, follower = two_nodes()
    net.tamper = drop_everything
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    net.set_clock(0.5)
    follower.endpoint.on_chunk(chunk_at(0, DATA[0:4]))  # progress at 0.5

    net.advance(0.75)  # the timer due at 1.0 waits out a full idle period: until 1.5

    assert follower.host.of_kind("transfer_retry") == []
    net.advance(0.75)
    assert follower.host.of_kind("transfer_retry") == [{"source": 1, "index": 10, "offset": 4, "attempt": 1}]


def test_after_max_idle_retries_the_receiver_gives_up_and_keeps_its_partial():
    net, _leader, follower = two_nodes()
    net.tamper = drop_chunks_from(4)
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()

    # Each fruitless retry doubles the wait: retries at 1, 3 (1 + 2) and 7 (3 + 4) s.
    net.advance(7.0)
    assert [f["attempt"] for f in follower.host.of_kind("transfer_retry")] == [1, 2, 3]
    assert follower.host.of_kind("transfer_aborted") == []
    net.advance(8.0)

    assert follower.host.of_kind("transfer_aborted") == [
        {"source": 1, "index": 10, "retries": 3, "reason": "no progress after 3 retries"}]
    assert follower.endpoint.incoming is None
    assert [(p.index, p.offset) for p in follower.store.partial_transfers()] == [(10, 4)]
    record = net.registry.get(2, SNAPSHOT_ID)
    assert (record.outcome, record.retries, record.bytes_done) == (Outcome.ABORTED, 3, 4)
    requests = len(follower.host.sent_of(SnapshotRequest))
    net.advance(10.0)
    assert len(follower.host.sent_of(SnapshotRequest)) == requests  # given up: no more asking


def test_a_re_request_after_a_rejected_chunk_adds_no_extra_idle_retries():
    # One transfer waits on one idle timer: each idle period costs one retry, whatever
    # requests were sent before it.
    net, _leader, follower = two_nodes()
    net.tamper = lambda message: [corrupted(message)] if isinstance(message, SnapshotChunk) else [message]
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver(until=lambda: len(follower.host.sent_of(SnapshotRequest)) == 2)
    net.tamper = drop_everything
    net.deliver()

    net.advance(1.0)

    assert [f["attempt"] for f in follower.host.of_kind("transfer_retry")] == [1]


def test_a_silent_receiver_fails_the_sender_after_three_idle_timeouts():
    net, leader, follower = two_nodes()
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver(until=lambda: leader.host.sent_of(SnapshotChunk))
    net.tamper = drop_everything  # from the first chunk on, nothing gets through either way
    net.deliver()
    assert [(delay, timer.purpose, timer.peer, timer.snapshot_id) for delay, timer in leader.host.scheduled] == [
        (3.0, "send_idle", 2, SNAPSHOT_ID)]

    net.advance(2.5)
    assert leader.host.reports == []
    net.advance(0.5)

    assert leader.host.reports == [(2, SnapshotStatus.FAILURE)]
    assert leader.host.of_kind("transfer_failed") == [
        {"to": 2, "index": 10, "bytes_sent": 4, "reason": "receiver silent for 3.000 s"}]
    assert leader.endpoint.outgoing == {}


def test_the_rate_limit_paces_chunks_by_their_length():
    mode = Streaming(chunk_size=4, chunks_in_flight=3, rate_limit=16.0, idle_timeout=1.0)
    net = Net(mode)
    leader = net.node(1)
    save(leader)

    def send_next_timers():
        return [(delay, timer) for delay, timer in leader.host.scheduled if timer.purpose == "send_next"]

    leader.endpoint.on_request(request_at(0))

    assert [c.offset for c in leader.host.sent_of(SnapshotChunk)] == [0]
    ((delay, timer),) = send_next_timers()
    assert (delay, timer.peer, timer.snapshot_id) == (4 / 16.0, 2, SNAPSHOT_ID)
    net.set_clock(0.25)
    leader.endpoint.on_timer(timer)
    assert [c.offset for c in leader.host.sent_of(SnapshotChunk)] == [0, 4]
    assert [delay for delay, _ in send_next_timers()] == [0.25, 0.25]
    net.set_clock(0.5)
    leader.endpoint.on_timer(send_next_timers()[-1][1])
    assert [c.offset for c in leader.host.sent_of(SnapshotChunk)] == [0, 4, 8]
    assert len(send_next_timers()) == 2  # the last chunk was the final one: nothing more to pace


def test_a_sender_over_its_concurrency_limit_serves_the_third_request_when_one_finishes():
    mode = Streaming(chunk_size=4, chunks_in_flight=1, max_concurrent_per_sender=2, idle_timeout=1.0)
    net = Net(mode)
    leader = net.node(1)
    save(leader)
    followers = [net.node(n) for n in (2, 3, 4)]

    for follower in followers:
        follower.endpoint.on_offer(offer_message(1, follower.host.node_id))
    net.deliver()

    assert leader.endpoint.counters["request_queued"] == 1
    log = leader.host.log
    first_report = next(i for i, entry in enumerate(log) if entry[0] == "report")
    chunk_receivers_before = {entry[1].to for entry in log[:first_report]
                              if entry[0] == "send" and isinstance(entry[1], SnapshotChunk)}
    first_chunk_to_4 = next(i for i, entry in enumerate(log)
                            if entry[0] == "send" and isinstance(entry[1], SnapshotChunk) and entry[1].to == 4)
    assert chunk_receivers_before == {2, 3}
    assert first_chunk_to_4 > first_report
    assert sorted(leader.host.reports) == [(n, SnapshotStatus.FINISH) for n in (2, 3, 4)]
    assert all(f.store.read_snapshot(10) == DATA for f in followers)


def test_a_corrupted_chunk_is_rejected_and_asked_for_again_from_the_verified_offset():
    net, _leader, follower = two_nodes()
    spoiled = []

    def corrupt_second_chunk(message):
        if isinstance(message, SnapshotChunk) and message.offset == 4 and not spoiled:
            spoiled.append(message)
            return [corrupted(message)]
        return [message]

    net.tamper = corrupt_second_chunk
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()

    bad = corrupted(spoiled[0])
    assert follower.host.of_kind("chunk_rejected") == [{
        "source": 1, "offset": 4,
        "reason": f"chunk at offset 4 has checksum {chunk_checksum(bad.data):#010x}, expected {bad.checksum:#010x}"}]
    assert [r.offset for r in follower.host.sent_of(SnapshotRequest)] == [0, 4]
    assert follower.endpoint.counters["rejected_chunk"] == 1
    assert follower.store.read_snapshot(10) == DATA
    assert len(follower.host.installed) == 1
    (record,) = net.registry.progress()
    assert (record.retries, record.bytes_sent, record.resent_bytes, record.outcome) == (
        1, 14, 4, Outcome.INSTALLED)


def test_one_corrupted_chunk_resends_at_most_a_window_of_chunks():
    # Streaming docs: "After a failure, at most [chunks_in_flight] chunks cross the wire twice."
    mode = Streaming(chunk_size=4, chunks_in_flight=3, idle_timeout=1.0)
    net = Net(mode)
    leader, follower = net.node(1), net.node(2)
    data = bytes(range(24))  # six chunks
    save(leader, data)
    spoiled = []

    def corrupt_first_chunk(message):
        if isinstance(message, SnapshotChunk) and not spoiled:
            spoiled.append(message)
            return [corrupted(message)]
        return [message]

    net.tamper = corrupt_first_chunk
    follower.endpoint.on_offer(offer_message(1, 2, size=len(data), digest=digest_of(data)))
    net.deliver()

    assert follower.store.read_snapshot(10) == data
    (record,) = net.registry.progress()
    assert record.resent_bytes <= mode.chunks_in_flight * mode.chunk_size


def test_a_digest_mismatch_at_commit_restarts_from_zero_and_installs_nothing():
    net, _leader, follower = two_nodes()
    wrong = digest_of(b"not these bytes")

    follower.endpoint.on_offer(offer_message(1, 2, digest=wrong))
    net.deliver(until=lambda: len(follower.host.sent_of(SnapshotRequest)) == 2)

    (mismatch,) = follower.host.of_kind("transfer_digest_mismatch")
    assert mismatch["index"] == 10
    assert f"with digest {DIGEST}, expected {wrong}" in mismatch["reason"]
    assert [r.offset for r in follower.host.sent_of(SnapshotRequest)] == [0, 0]
    assert follower.host.event_kinds().count("transfer_started") == 2
    assert follower.host.installed == []
    assert not follower.store.has_snapshot(10)
    assert [(p.index, p.offset) for p in follower.store.partial_transfers()] == [(10, 0)]
    assert follower.endpoint.incoming.verified_offset == 0
    assert net.registry.get(2, SNAPSHOT_ID).bytes_done == 0


def test_chunks_arriving_after_the_install_are_strays():
    net, _leader, follower = two_nodes()
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()

    follower.endpoint.on_chunk(chunk_at(8, DATA[8:]))

    assert follower.endpoint.counters["stray_chunk"] == 1
    assert len(follower.host.installed) == 1
    assert follower.host.sent_of(SnapshotAck)[-1].installed
