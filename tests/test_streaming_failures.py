"""Streaming endpoints facing garbage, endless rejections, a refusing Raft and a full disk.

Issue 15, items 2, 4, 5 and 6. Driven through the recording host and wire of
``test_streaming_protocol`` (a 10-byte snapshot in 4-byte chunks), so every
request, timer, ack and report is visible. What each test shows:

- a garbage offer is counted as ``malformed_offer`` and never raises;
- chunks that keep being rejected are asked for again with a back-off, and
  the receiver gives up with a named reason; a later snapshot gets every
  digest-restart try again;
- a transfer is ``installed`` only once Raft took the snapshot, and only an
  installed ack of the whole snapshot finishes the sender's transfer;
- an ``OSError`` from the store (a full disk) pauses or ends one transfer with
  a named reason and is retried later; nothing escapes to the node.
"""

from __future__ import annotations

import errno

import attrs
import pytest

from simulator.raft import ConfState, Message, MessageType, Snapshot, SnapshotMetadata, SnapshotStatus
from simulator.snapshots import MemorySnapshotStore, digest_of
from test_streaming_protocol import (
    DATA,
    DIGEST,
    MODE,
    SNAPSHOT_ID,
    Net,
    corrupted,
    offer_message,
    save,
    two_nodes,
)
from transports import Streaming
from transports.streaming import Outcome, SnapshotAbort, SnapshotAck, SnapshotChunk, SnapshotRequest
from transports.streaming.endpoint import MAX_DIGEST_RESTARTS

# ------------------------------------------------------------------ item 5: garbage offers


def _garbage(**fields) -> Message:
    metadata = dict(index=10, term=2, conf_state=ConfState(voters=(1, 2, 3)), size=len(DATA), digest=DIGEST,
                    snapshot_id=SNAPSHOT_ID)
    metadata.update(fields)
    return Message(MessageType.SNAPSHOT, to=2, from_=1, term=2, snapshot=Snapshot(SnapshotMetadata(**metadata), None))


GARBAGE = {
    "digest md5:abc": dict(digest="md5:abc"),
    "id with a newline": dict(snapshot_id="2-10\nabc"),
    "float size": dict(size=4.0),
    "bool size": dict(size=True),
    "negative size": dict(size=-1),
    "term -1": dict(term=-1),
    "index a string": dict(index="10"),
    "index -1": dict(index=-1),
    "digest not a string": dict(digest=7),
    "id not a string": dict(snapshot_id=("a",)),
    "membership not one": dict(conf_state=("x", None)),
}


@pytest.mark.parametrize("fields", GARBAGE.values(), ids=list(GARBAGE))
def test_a_garbage_offer_is_counted_as_malformed_and_never_raises(fields):
    net = Net()
    follower = net.node(2)

    follower.endpoint.on_offer(_garbage(**fields))

    assert follower.endpoint.counters["malformed_offer"] == 1
    assert follower.host.event_kinds() == ["transfer_refused"]
    assert follower.host.sent == [] and follower.host.installed == [] and follower.host.stepped == []
    assert follower.store.partial_transfers() == []


# ------------------------------------------------------------------ item 6: back-off and give up


def _every_chunk(change):
    return lambda message: [change(message)] if isinstance(message, SnapshotChunk) else [message]


class _Timed:
    """Records when each request leaves ``host`` (the clock of the net at that moment)."""

    def __init__(self, host) -> None:
        self.times: list[float] = []
        send = host.send

        def timed_send(message) -> None:
            if isinstance(message, SnapshotRequest):
                self.times.append(host.clock)
            send(message)

        host.send = timed_send


@pytest.mark.parametrize(
    ("name", "tamper", "reason"),
    [
        ("every chunk corrupted", _every_chunk(corrupted), "chunk rejected: chunk at offset 0 has checksum"),
        ("total size contradicts the offer", _every_chunk(lambda c: attrs.evolve(c, total_size=c.total_size + 1)),
         "chunk rejected: chunk says the snapshot has 11 bytes, the offer said 10"),
    ],
)
def test_chunks_rejected_again_and_again_are_asked_for_with_back_off_until_the_receiver_gives_up(
        name, tamper, reason):
    net, leader, follower = two_nodes()
    requests = _Timed(follower.host)
    net.tamper = tamper

    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    net.advance(1000.0)

    # One immediate re-request, then the idle timer's: 1, 2, 4, 8, 8, ... seconds apart.
    times = requests.times
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert gaps[0] == 0.0
    assert gaps[1:] == [1.0, 2.0, 4.0] + [8.0] * (MODE.max_idle_retries - 3)
    (aborted,) = follower.host.of_kind("transfer_aborted")
    assert aborted["reason"].startswith(f"no progress after {MODE.max_idle_retries} retries (last: {reason}")
    assert follower.endpoint.incoming is None
    assert net.registry.get(2, SNAPSHOT_ID).outcome is Outcome.ABORTED


def test_a_snapshot_after_a_digest_abort_gets_every_restart_again():
    net, leader, follower = two_nodes()
    newer = b"the newer snapshot"
    save(leader, newer, index=20, term=3, snapshot_id="3-20-newer")
    wrong = digest_of(b"not these bytes")

    follower.endpoint.on_offer(offer_message(1, 2, digest=wrong))
    net.deliver()
    first = len(follower.host.of_kind("transfer_digest_mismatch"))
    follower.endpoint.on_offer(offer_message(1, 2, index=20, term=3, size=len(newer), digest=wrong,
                                             snapshot_id="3-20-newer"))
    net.deliver()
    second = len(follower.host.of_kind("transfer_digest_mismatch")) - first

    assert first == second == MAX_DIGEST_RESTARTS + 1
    reasons = [event["reason"] for event in follower.host.of_kind("transfer_aborted")]
    assert reasons == [f"digest mismatch {MAX_DIGEST_RESTARTS + 1} times"] * 2


# ------------------------------------------------------------------ item 4: installed means installed


def test_a_snapshot_raft_refuses_is_not_reported_installed_and_the_sender_hears_why():
    net, leader, follower = two_nodes()
    installs = []

    def refusing_install(message):
        installs.append(message)
        return "stale_term"

    follower.host.install = refusing_install
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()

    assert len(installs) == 1
    record = net.registry.get(2, SNAPSHOT_ID)
    assert record.outcome is Outcome.ABORTED
    assert follower.host.of_kind("transfer_installed") == []
    (aborted,) = follower.host.of_kind("transfer_aborted")
    assert aborted["reason"] == "Raft refused the snapshot (stale_term)"
    assert not any(ack.installed for ack in follower.host.sent_of(SnapshotAck))
    assert follower.host.sent_of(SnapshotAbort) == [
        SnapshotAbort(from_=2, to=1, snapshot_id=SNAPSHOT_ID, reason="Raft refused the snapshot (stale_term)")]
    assert leader.host.reports == [(2, SnapshotStatus.FAILURE)]
    assert leader.endpoint.outgoing == {}
    assert follower.endpoint.counters["install_refused"] == 1


def test_an_installed_ack_that_does_not_cover_the_snapshot_does_not_finish_the_transfer():
    net, leader, follower = two_nodes()
    net.tamper = lambda message: [] if isinstance(message, SnapshotChunk) and message.offset >= 4 else [message]
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    assert 2 in leader.endpoint.outgoing

    leader.endpoint.on_stream_message(SnapshotAck(from_=2, to=1, snapshot_id=SNAPSHOT_ID, offset=4, installed=True))

    assert leader.host.reports == []
    assert 2 in leader.endpoint.outgoing
    assert leader.endpoint.counters["mismatched_installed_ack"] == 1


# ------------------------------------------------------------------ item 2: a full disk on the receiver


class FullDiskStore(MemorySnapshotStore):
    """A memory store whose chosen operations fail with ENOSPC while ``full`` is set."""

    def __init__(self, *, failing: set[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.failing = failing
        self.full = True

    def _fail(self, operation: str) -> None:
        if self.full and operation in self.failing:
            raise OSError(errno.ENOSPC, "No space left on device")

    def _begin_transfer(self, transfer) -> None:
        self._fail("begin")
        super()._begin_transfer(transfer)

    def _append_partial(self, transfer, offset, data, *, prefix_digest) -> None:
        self._fail("append")
        super()._append_partial(transfer, offset, data, prefix_digest=prefix_digest)

    def _publish_partial(self, transfer, snapshot) -> None:
        self._fail("publish")
        super()._publish_partial(transfer, snapshot)

    def _open_reader(self, snapshot):
        self._fail("read")
        return super()._open_reader(snapshot)


def _with_store(node, store) -> None:
    node.store = store
    node.endpoint.store = store


def test_a_full_disk_pauses_the_transfer_which_resumes_once_there_is_room():
    net, leader, follower = two_nodes()
    store = FullDiskStore(failing={"append"}, chunk_size=3, clock=lambda: net.clock)
    _with_store(follower, store)

    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    net.advance(2.5)  # two retries, both failing
    assert follower.host.installed == []
    rejected = follower.host.of_kind("chunk_rejected")
    assert rejected and all("No space left on device" in event["reason"] for event in rejected)
    assert follower.endpoint.counters["write_failed"] == len(rejected)

    store.full = False
    net.advance(10.0)

    assert len(follower.host.installed) == 1
    assert store.read_snapshot(10) == DATA
    assert leader.host.reports == [(2, SnapshotStatus.FINISH)]


def test_a_disk_that_stays_full_ends_the_transfer_with_a_named_reason():
    net, _leader, follower = two_nodes()
    _with_store(follower, FullDiskStore(failing={"append"}, chunk_size=3, clock=lambda: net.clock))

    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    net.advance(1000.0)

    (aborted,) = follower.host.of_kind("transfer_aborted")
    assert aborted["reason"].startswith(
        f"no progress after {MODE.max_idle_retries} retries (last: writing to the store failed: ")
    assert "No space left on device" in aborted["reason"]


def test_a_full_disk_at_the_start_refuses_the_offer_for_now_and_a_later_offer_succeeds():
    net, _leader, follower = two_nodes()
    store = FullDiskStore(failing={"begin"}, chunk_size=3, clock=lambda: net.clock)
    _with_store(follower, store)

    follower.endpoint.on_offer(offer_message(1, 2))
    (refused,) = follower.host.of_kind("transfer_refused")
    assert refused["reason"].startswith("cannot start receiving: the store failed (")
    assert follower.endpoint.counters["store_failed"] == 1

    store.full = False
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    assert len(follower.host.installed) == 1


def test_a_full_disk_at_commit_ends_the_transfer_and_the_next_offer_commits_what_was_kept():
    net, leader, follower = two_nodes()
    store = FullDiskStore(failing={"publish"}, chunk_size=3, clock=lambda: net.clock)
    _with_store(follower, store)

    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    (aborted,) = follower.host.of_kind("transfer_aborted")
    assert aborted["reason"].startswith("cannot store the snapshot: ")
    assert [(p.index, p.offset) for p in store.partial_transfers()] == [(10, 10)]
    chunks_before = len(leader.host.sent_of(SnapshotChunk))

    store.full = False
    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()
    assert len(follower.host.installed) == 1
    assert len(leader.host.sent_of(SnapshotChunk)) == chunks_before  # nothing sent again


def test_a_sender_whose_disk_cannot_be_read_ends_that_transfer_and_tells_raft():
    net, leader, follower = two_nodes()
    store = FullDiskStore(failing={"read"}, chunk_size=3, clock=lambda: net.clock)
    store.full = False
    store.save_snapshot(10, DATA, term=2, snapshot_id=SNAPSHOT_ID)
    store.full = True
    _with_store(leader, store)

    follower.endpoint.on_offer(offer_message(1, 2))
    net.deliver()

    assert leader.host.reports == [(2, SnapshotStatus.FAILURE)]
    (failed,) = leader.host.of_kind("transfer_failed")
    assert "cannot read snapshot 10" in failed["reason"] and "No space left on device" in failed["reason"]
    assert follower.host.of_kind("transfer_aborted")[0]["reason"] == failed["reason"]


# ------------------------------------------------------------------ item 4: the node's side


def test_the_node_reports_what_raft_refused_when_it_installs_a_streamed_snapshot():
    from simulator.cluster.snapshot_handling import NodeSnapshots
    from simulator.testing import Network
    from transports.streaming import TransferRegistry

    network = Network((1, 2, 3), embed_snapshots=False)
    network.campaign(1)
    network.stabilize()
    follower = network.node(2)
    term = 5
    follower.raft.become_follower(term, 1)  # a newer term than the one the stream began in

    class Runner:
        node_id = 2
        node = follower

    handling = NodeSnapshots(Runner(), Streaming(), TransferRegistry(), MemorySnapshotStore())

    def snapshot_message(message_term: int) -> Message:
        metadata = SnapshotMetadata(index=50, term=message_term, conf_state=ConfState(voters=(1, 2, 3)),
                                    size=len(DATA), digest=DIGEST, snapshot_id=SNAPSHOT_ID)
        return Message(MessageType.SNAPSHOT, to=2, from_=1, term=message_term, snapshot=Snapshot(metadata, None))

    assert handling.install(snapshot_message(term - 1)) == "stale_term"
    assert handling.install(snapshot_message(term)) is None
    assert follower.raft.raft_log.pending_snapshot().metadata.index == 50
