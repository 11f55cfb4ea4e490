"""Tests of layer 1, the snapshot stores (``simulator.snapshots``).

Shared semantics run against both stores through the ``kind`` fixture; the
agreement state machine drives both with the same operations and compares
everything observable. Disk-only behaviour (files, recovery, corruption,
reading in chunks) follows; crash recovery at every write step is in
``test_disk_store_crash.py``.

Most disk stores here use ``durable=False`` (no fsync) for speed: write order
and renames are the same, and ``test_durable_writes_fsync_before_each_rename``
checks the fsyncs themselves.
"""

from __future__ import annotations

import hashlib

import blake3
import itertools
import json
import os
import shutil
import stat
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import simulator.snapshots.disk as disk_module
from simulator.snapshots.disk_io import Files
from simulator.snapshots import (
    DiskSnapshotStore,
    MemorySnapshotStore,
    SnapshotChunkError,
    SnapshotCorruptError,
    SnapshotDigestError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    SnapshotStore,
    SnapshotStoreError,
    digest_of,
)

KINDS = ("memory", "disk")


def counting_clock():
    counter = itertools.count(1)
    return lambda: float(next(counter))


class Stores:
    """Makes stores of one kind; ``reopen`` is a restart for disk, the same store for memory."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.directory = directory
        self.clock = counting_clock()

    def new(self, chunk_size: int = 4, **options) -> SnapshotStore:
        if self.kind == "memory":
            return MemorySnapshotStore(chunk_size=chunk_size, clock=self.clock)
        options.setdefault("durable", False)
        return DiskSnapshotStore(self.directory, chunk_size=chunk_size, clock=self.clock, **options)

    def reopen(self, store: SnapshotStore) -> SnapshotStore:
        if self.kind == "memory":
            return store
        return DiskSnapshotStore(self.directory, chunk_size=store.chunk_size, clock=self.clock, durable=False)


@pytest.fixture(params=KINDS)
def stores(request, tmp_path) -> Stores:
    return Stores(request.param, tmp_path / "snapshots")


def open_writer_for(store, index: int, data: bytes, *, term: int = 1, snapshot_id: str = "snap", conf_state=None):
    return store.open_writer(
        index, term=term, size=len(data), digest=digest_of(data), snapshot_id=snapshot_id, conf_state=conf_state
    )


# ----------------------------------------------------------- saving and reading


def test_both_stores_implement_the_protocol(stores):
    assert isinstance(stores.new(), SnapshotStore)


def test_save_then_read_metadata_and_stream(stores):
    store = stores.new(chunk_size=4)
    location = store.save_snapshot(7, b"hello world", term=3, conf_state=((1, 2, 3), (4,)))
    meta = store.snapshot_metadata(7)
    assert (meta.index, meta.term, meta.size) == (7, 3, 11)
    assert meta.digest == "blake3:" + blake3.blake3(b"hello world").hexdigest()  # the default algorithm
    assert meta.conf_state == ((1, 2, 3), (4,))
    assert meta.snapshot_id == f"3-7-{meta.digest[7:19]}"
    assert meta.created_at == 1.0
    assert meta.location == location
    if stores.kind == "memory":
        assert location == "memory://snapshot-0000000000000007"
    else:
        assert location == str(stores.directory / "snapshot-0000000000000007.bin")
    assert store.read_snapshot(7) == b"hello world"
    assert list(store.stream_snapshot(7)) == [b"hell", b"o wo", b"rld"]
    assert list(store.stream_snapshot(7, 5)) == [b" wor", b"ld"]
    assert list(store.stream_snapshot(7, 11)) == []


def test_conf_state_accepts_an_object_with_voters_and_learners(stores):
    class Membership:
        voters, learners = [1, 2], []

    store = stores.new()
    store.save_snapshot(1, b"x", term=1, conf_state=Membership())
    assert store.snapshot_metadata(1).conf_state == ((1, 2), ())
    with pytest.raises(ValueError, match="pair"):
        store.save_snapshot(2, b"x", term=1, conf_state=(1, 2, 3))


@pytest.mark.parametrize("offset", [-1, 12, True, "3"])
def test_stream_offset_outside_the_snapshot_is_refused_at_the_call(stores, offset):
    store = stores.new()
    store.save_snapshot(1, b"hello world", term=1)
    with pytest.raises(ValueError, match=r"range 0\.\.11"):
        store.stream_snapshot(1, offset)


def test_unknown_index_names_the_available_ones(stores):
    store = stores.new()
    with pytest.raises(SnapshotNotFoundError, match="available: none"):
        store.snapshot_metadata(5)
    store.save_snapshot(3, b"a", term=1)
    store.save_snapshot(9, b"b", term=1)
    for call in (store.snapshot_metadata, store.stream_snapshot, store.read_snapshot):
        with pytest.raises(KeyError, match=r"no complete snapshot at index 5; available: \[3, 9\]"):
            call(5)


CHUNKING = dict(size=st.integers(0, 70), chunk_size=st.integers(1, 80), data=st.data())


def check_chunking(store, index, payload, chunk_size, offset):
    chunks = list(store.stream_snapshot(index, offset))
    assert b"".join(chunks) == payload[offset:]
    assert all(len(chunk) == chunk_size for chunk in chunks[:-1])
    assert all(0 < len(chunk) <= chunk_size for chunk in chunks)
    assert len(chunks) == -(-(len(payload) - offset) // chunk_size)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**CHUNKING)
@example(size=0, chunk_size=1, data=None)
@example(size=1, chunk_size=1, data=None)
@example(size=1, chunk_size=4, data=None)
@example(size=64, chunk_size=16, data=None)  # an exact multiple
@example(size=64, chunk_size=64, data=None)
@example(size=10, chunk_size=80, data=None)  # chunk larger than the data
def test_streamed_chunks_reassemble_exactly(kind, tmp_path, size, chunk_size, data):
    # One directory per example: hypothesis reuses tmp_path across examples.
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    store = Stores(kind, directory).new(chunk_size=chunk_size)
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    offsets = {0, size, size // 2, min(size, chunk_size)}
    if data is not None:
        offsets.add(data.draw(st.integers(0, size), label="offset"))
    store.save_snapshot(1, payload, term=1)
    for offset in sorted(offsets):
        check_chunking(store, 1, payload, chunk_size, offset)
    shutil.rmtree(directory)


@pytest.mark.parametrize("pieces", [[], [b""], [b"ab", b"", b"cdefg", bytearray(b"h"), memoryview(b"ij")]])
def test_saving_from_a_generator_equals_saving_bytes(stores, pieces):
    store = stores.new(chunk_size=3)
    whole = b"".join(bytes(piece) for piece in pieces)
    store.save_snapshot(1, whole, term=2)
    store.save_snapshot(2, (piece for piece in pieces), term=2)
    first, second = store.snapshot_metadata(1), store.snapshot_metadata(2)
    assert (first.size, first.digest) == (second.size, second.digest)
    assert list(store.stream_snapshot(1)) == list(store.stream_snapshot(2))


def test_a_failing_data_source_leaves_nothing_behind(stores):
    def source():
        yield b"partial data"
        raise RuntimeError("state machine failed")

    store = stores.new()
    with pytest.raises(RuntimeError):
        store.save_snapshot(1, source(), term=1)
    assert store.list_snapshots() == []
    if stores.kind == "disk":
        assert os.listdir(stores.directory) == []


@pytest.mark.parametrize(("data", "message"), [("text", "got str"), ([b"ok", 7], "chunk 1 must be bytes"), (5, "int")])
def test_save_refuses_data_that_is_not_bytes(stores, data, message):
    store = stores.new()
    with pytest.raises(TypeError, match=message):
        store.save_snapshot(1, data, term=1)
    assert not store.has_snapshot(1)


def test_saving_the_same_snapshot_again_is_a_no_op_and_a_different_one_is_refused(stores):
    store = stores.new()
    location = store.save_snapshot(4, b"state", term=2)
    created = store.snapshot_metadata(4).created_at
    assert store.save_snapshot(4, [b"st", b"ate"], term=2) == location
    assert store.snapshot_metadata(4).created_at == created
    with pytest.raises(SnapshotExistsError, match="already exists"):
        store.save_snapshot(4, b"other", term=2)
    assert store.read_snapshot(4) == b"state"


def test_list_latest_has_snapshot_and_compaction_keeps_the_newest(stores):
    store = stores.new()
    assert store.latest() is None and store.list_snapshots() == []
    for index in (5, 1, 3, 4, 2):
        store.save_snapshot(index, bytes([index]) * index, term=1)
    assert [s.index for s in store.list_snapshots()] == [1, 2, 3, 4, 5]
    assert store.latest().index == 5 and store.has_snapshot(3) and not store.has_snapshot(6)
    assert store.compact_snapshots(10) == []
    assert store.compact_snapshots(2) == [1, 2, 3]
    assert [s.index for s in store.list_snapshots()] == [4, 5]
    for keep_count in (0, -1, True):
        with pytest.raises(ValueError, match="keep_count must be an integer >= 1"):
            store.compact_snapshots(keep_count)
    assert store.compact_snapshots(1) == [4]
    assert store.latest().index == 5 and store.read_snapshot(5) == b"\x05" * 5
    store = stores.reopen(store)
    assert [s.index for s in store.list_snapshots()] == [5]


def test_compaction_racing_a_stream(stores):
    store = stores.new(chunk_size=2)
    for index in (1, 2, 3):
        store.save_snapshot(index, b"abcdef", term=1)
    started, not_started = store.stream_snapshot(1), store.stream_snapshot(2)
    assert next(started) == b"ab"
    assert store.compact_snapshots(1) == [1, 2]
    assert list(started) == [b"cd", b"ef"]  # a stream that began reading finishes
    with pytest.raises(SnapshotNotFoundError, match=r"snapshot 2 was deleted .* available: \[3\]"):
        next(not_started)


def test_a_sha256_snapshot_from_an_older_sender_is_received_verified_and_streamed(stores):
    """Digests are versioned by name: a receiver verifies in the sender's algorithm."""
    data = b"sent by a version that digests with sha256"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    store = stores.new(chunk_size=8)
    writer = store.open_writer(4, term=2, size=len(data), digest=digest, snapshot_id="old")
    writer.write(0, data[:16])
    store = stores.reopen(store)  # a restart: the progress record's prefix digest is sha256 too
    writer = store.open_writer(4, term=2, size=len(data), digest=digest, snapshot_id="old")
    assert writer.offset == 16
    for offset in range(16, len(data), 8):
        writer.write(offset, data[offset : offset + 8])
    assert writer.commit().digest == digest
    assert b"".join(stores.reopen(store).stream_snapshot(4)) == data
    wrong = store.open_writer(5, term=2, size=len(data), digest="sha256:" + "0" * 64, snapshot_id="bad")
    wrong.write(0, data)
    with pytest.raises(SnapshotDigestError, match="with digest sha256:"):
        wrong.commit()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(digest="md5:abc"), r"digest algorithm 'md5' is not one this version verifies \(known: blake3, sha256\)"),
        (dict(digest="blake3:abc"), "digest must be 'blake3:' followed by 64 lowercase hex digits"),
        (dict(snapshot_id=""), "snapshot_id must be a non-empty"),
        (dict(size=-1), "size must be an integer >= 0"),
        (dict(term=None), "term must be an integer >= 0"),
    ],
)
def test_open_writer_checks_its_arguments(stores, arguments, message):
    good = dict(term=1, size=3, digest=digest_of(b"abc"), snapshot_id="s")
    with pytest.raises(ValueError, match=message):
        stores.new().open_writer(1, **{**good, **arguments})


def test_chunk_size_must_be_positive(stores):
    with pytest.raises(ValueError, match="chunk_size must be a positive number of bytes, got 0"):
        stores.new(chunk_size=0)


# ----------------------------------------------------------------- the writer


def test_writer_receives_a_snapshot_in_pieces(stores):
    store = stores.new(chunk_size=5)
    data = b"0123456789abcdef"
    writer = open_writer_for(store, 8, data, term=4, snapshot_id="leader-snap", conf_state=((1, 2), ()))
    assert (writer.offset, writer.resumed_from, writer.size) == (0, 0, 16)
    for start in range(0, 16, 5):
        assert writer.write(start, data[start : start + 5]) == min(start + 5, 16)
    assert not store.has_snapshot(8)
    meta = writer.commit()
    assert writer.closed and store.partial_transfers() == []
    assert (meta.index, meta.term, meta.snapshot_id, meta.conf_state) == (8, 4, "leader-snap", ((1, 2), ()))
    assert store.snapshot_metadata(8) == meta
    assert store.read_snapshot(8) == data
    with pytest.raises(SnapshotStoreError, match="closed because it was committed"):
        writer.write(16, b"")


def test_writer_refuses_gaps_overlaps_and_extra_bytes_without_writing(stores):
    store = stores.new()
    data = b"abcdefgh"
    writer = open_writer_for(store, 1, data)
    writer.write(0, b"abc")
    with pytest.raises(SnapshotChunkError, match=r"chunk at offset 3 expected, got 5 \(would leave a gap of 2 bytes\)"):
        writer.write(5, b"fgh")
    with pytest.raises(SnapshotChunkError, match=r"chunk at offset 3 expected, got 1 \(overlaps 2 bytes"):
        writer.write(1, b"bcd")
    with pytest.raises(SnapshotChunkError, match="more bytes than total_size 8"):
        writer.write(3, b"defghXYZ")
    with pytest.raises(TypeError, match="chunk data must be bytes"):
        writer.write(3, "def")
    assert writer.offset == 3 and store.partial_transfers()[0].offset == 3
    with pytest.raises(SnapshotChunkError, match="commit after 3 of 8 bytes"):
        writer.commit()
    writer.write(3, b"defgh")
    writer.commit()
    assert store.read_snapshot(1) == data


def test_bad_digest_on_commit_publishes_nothing_and_removes_the_partial(stores):
    store = stores.new()
    store.save_snapshot(1, b"old", term=1)
    writer = store.open_writer(2, term=1, size=4, digest=digest_of(b"good"), snapshot_id="s")
    writer.write(0, b"evil")
    with pytest.raises(SnapshotDigestError, match=f"expected {digest_of(b'good')}; the partial data was removed"):
        writer.commit()
    assert [s.index for s in store.list_snapshots()] == [1]
    assert store.partial_transfers() == []
    assert writer.closed
    if stores.kind == "disk":
        assert sorted(os.listdir(stores.directory)) == [
            "snapshot-0000000000000001.bin",
            "snapshot-0000000000000001.meta.json",
        ]
    assert [s.index for s in stores.reopen(store).list_snapshots()] == [1]


def test_empty_snapshot_and_writer(stores):
    store = stores.new()
    store.save_snapshot(1, b"", term=1)
    assert list(store.stream_snapshot(1)) == [] and store.read_snapshot(1) == b""
    writer = open_writer_for(store, 2, b"")
    assert writer.commit().size == 0
    assert stores.reopen(store).read_snapshot(2) == b""


def test_no_writer_for_a_snapshot_that_is_already_complete(stores):
    store = stores.new()
    store.save_snapshot(3, b"abc", term=1)
    with pytest.raises(SnapshotExistsError, match="index 3 is already complete"):
        open_writer_for(store, 3, b"abc")


def test_transfer_resumes_from_the_recorded_offset(stores):
    store = stores.new()
    data = bytes(range(100))
    writer = open_writer_for(store, 10, data, term=2, snapshot_id="s10")
    writer.write(0, data[:30])
    writer.write(30, data[30:64])
    store = stores.reopen(store)  # a receiver restart, for the disk store
    [partial] = store.partial_transfers()
    assert (partial.index, partial.offset, partial.size, partial.snapshot_id) == (10, 64, 100, "s10")
    resumed = open_writer_for(store, 10, data, term=2, snapshot_id="s10")
    assert resumed.offset == resumed.resumed_from == 64
    if stores.kind == "memory":  # the old writer object is still around: it must not write any more
        with pytest.raises(SnapshotStoreError, match="superseded"):
            writer.write(64, data[64:])
    resumed.write(64, data[64:])
    resumed.commit()
    assert store.read_snapshot(10) == data


def test_resuming_takes_the_newest_membership(stores):
    store = stores.new()
    open_writer_for(store, 1, b"abcd", conf_state=((1,), ())).write(0, b"ab")
    store = stores.reopen(store)
    writer = open_writer_for(store, 1, b"abcd", conf_state=((1,), (2,)))
    assert writer.offset == 2
    store = stores.reopen(store)
    writer = open_writer_for(store, 1, b"abcd", conf_state=((1,), (2,)))
    writer.write(2, b"cd")
    assert writer.commit().conf_state == ((1,), (2,))


@pytest.mark.parametrize("newer", ["index", "snapshot_id", "term"])
def test_another_snapshot_supersedes_the_partial_transfer(stores, newer):
    store = stores.new()
    old = open_writer_for(store, 10, b"old data", term=1, snapshot_id="a")
    old.write(0, b"old")
    index, term, snapshot_id = 10, 1, "a"
    if newer == "index":
        index = 20
    elif newer == "term":
        term = 2
    else:
        snapshot_id = "b"
    new = open_writer_for(store, index, b"new", term=term, snapshot_id=snapshot_id)
    assert [(p.index, p.snapshot_id, p.offset) for p in store.partial_transfers()] == [(index, snapshot_id, 0)]
    with pytest.raises(SnapshotStoreError, match="superseded"):
        old.write(3, b" data")
    old.abort()  # harmless: it no longer owns anything
    if stores.kind == "disk":
        names = sorted(os.listdir(stores.directory))
        assert names == [f"snapshot-{index:016}.partial", f"snapshot-{index:016}.partial.json"]
    new.write(0, b"new")
    new.commit()
    assert store.read_snapshot(index) == b"new"


def test_saving_a_snapshot_drops_the_transfer_at_that_index(stores):
    store = stores.new()
    writer = open_writer_for(store, 5, b"abcdef")
    writer.write(0, b"abc")
    store.save_snapshot(5, b"abcdef", term=1)
    assert store.partial_transfers() == []
    with pytest.raises(SnapshotStoreError, match="superseded"):
        writer.write(3, b"def")


def test_abort_removes_the_partial(stores):
    store = stores.new()
    writer = open_writer_for(store, 5, b"abcdef")
    writer.write(0, b"abc")
    writer.abort()
    assert store.partial_transfers() == [] and writer.closed
    if stores.kind == "disk":
        assert os.listdir(stores.directory) == []
    assert open_writer_for(store, 5, b"abcdef").offset == 0


# ------------------------------------------------------------------ agreement


class StoresAgree(RuleBasedStateMachine):
    """The memory and the disk store, driven by the same operations, agree on
    everything observable (outcomes, error types, metadata but location)."""

    @initialize()
    def open_stores(self):
        self.directory = tempfile.mkdtemp(prefix="raftsim-agree-")
        self.memory = MemorySnapshotStore(chunk_size=3, clock=counting_clock())
        self.disk_clock = counting_clock()
        self.disk = DiskSnapshotStore(self.directory, chunk_size=3, clock=self.disk_clock, durable=False)
        self.writers = None

    def teardown(self):
        shutil.rmtree(self.directory, ignore_errors=True)

    def both(self, operation):
        results = []
        for store in (self.memory, self.disk):
            try:
                results.append(("ok", operation(store)))
            except (SnapshotStoreError, ValueError) as error:
                results.append(("error", type(error).__name__))
        assert results[0] == results[1]
        return results[0]

    @rule(index=st.integers(1, 6), data=st.binary(max_size=10), cut=st.integers(0, 10), term=st.integers(1, 2))
    def save(self, index, data, cut, term):
        self.both(lambda s: s.save_snapshot(index, [data[:cut], data[cut:]], term=term) and None)

    @rule(index=st.integers(1, 6), offset=st.integers(0, 11))
    def stream(self, index, offset):
        self.both(lambda s: list(s.stream_snapshot(index, offset)))

    @rule(keep=st.integers(0, 4))
    def compact(self, keep):
        self.both(lambda s: s.compact_snapshots(keep))

    @rule(index=st.integers(1, 6), data=st.binary(max_size=10), snapshot_id=st.sampled_from(["x", "y"]))
    def open_writer(self, index, data, snapshot_id):
        status, _ = self.both(lambda s: open_writer_for(s, index, data, snapshot_id=snapshot_id) and None)
        if status == "ok":
            self.writers = (
                open_writer_for(self.memory, index, data, snapshot_id=snapshot_id),
                open_writer_for(self.disk, index, data, snapshot_id=snapshot_id),
            )
            self.payload = data

    @precondition(lambda self: self.writers is not None)
    @rule(skew=st.sampled_from([0, 0, 0, -1, 1]), length=st.integers(0, 5), garble=st.sampled_from([False] * 5 + [True]))
    def write(self, skew, length, garble):
        offset = max(0, self.writers[0].offset + skew)
        chunk = self.payload[offset : offset + length] or b"?" * length
        if garble:  # right place, wrong bytes: only the digest on commit can tell
            chunk = bytes(byte ^ 0xFF for byte in chunk)
        outcomes = []
        for writer in self.writers:
            try:
                outcomes.append(writer.write(offset, chunk))
            except SnapshotStoreError as error:
                outcomes.append(type(error).__name__)
        assert outcomes[0] == outcomes[1]

    @precondition(lambda self: self.writers is not None)
    @rule()
    def write_the_rest(self):
        outcomes = []
        for writer in self.writers:
            try:
                outcomes.append(writer.write(writer.offset, self.payload[writer.offset :]))
            except SnapshotStoreError as error:
                outcomes.append(type(error).__name__)
        assert outcomes[0] == outcomes[1]

    @precondition(lambda self: self.writers is not None)
    @rule(abort=st.booleans())
    def finish(self, abort):
        outcomes = []
        for writer in self.writers:
            try:
                outcomes.append(writer.abort() if abort else writer.commit().size)
            except SnapshotStoreError as error:
                outcomes.append(type(error).__name__)
        assert outcomes[0] == outcomes[1]

    @rule()
    def restart_disk_store(self):
        self.disk = DiskSnapshotStore(self.directory, chunk_size=3, clock=self.disk_clock, durable=False)
        assert self.disk.problems == []
        self.writers = None  # the old disk writer belongs to a dead store

    @invariant()
    def same_observations(self):
        def view(store):
            return (
                [(s.index, s.term, s.size, s.digest, s.snapshot_id, s.created_at) for s in store.list_snapshots()],
                [(p.index, p.size, p.digest, p.snapshot_id, p.offset) for p in store.partial_transfers()],
                store.latest() and store.latest().index,
            )

        assert view(self.memory) == view(self.disk)


StoresAgree.TestCase.settings = settings(max_examples=100, stateful_step_count=25, deadline=None)
test_stores_agree = StoresAgree.TestCase


# ------------------------------------------------------------------ disk only


@pytest.fixture
def directory(tmp_path) -> Path:
    return tmp_path / "snapshots"


def disk_store(directory: Path, **options) -> DiskSnapshotStore:
    options.setdefault("durable", False)
    options.setdefault("chunk_size", 4)
    return DiskSnapshotStore(directory, clock=lambda: 1700000000.5, **options)


def test_disk_files_and_metadata_format(directory):
    store = disk_store(directory)
    store.save_snapshot(12, b"data", term=5, conf_state=((1, 2), (3,)), snapshot_id="id-12")
    assert sorted(os.listdir(directory)) == ["snapshot-0000000000000012.bin", "snapshot-0000000000000012.meta.json"]
    assert (directory / "snapshot-0000000000000012.bin").read_bytes() == b"data"
    meta = json.loads((directory / "snapshot-0000000000000012.meta.json").read_text())
    assert meta == {
        "format": "raftsim-snapshot",
        "version": 1,
        "index": 12,
        "term": 5,
        "timestamp": 1700000000.5,
        "size": 4,
        "digest": digest_of(b"data"),
        "snapshot_id": "id-12",
        "conf_state": {"voters": [1, 2], "learners": [3]},
    }
    reopened = disk_store(directory)
    assert reopened.list_snapshots() == store.list_snapshots()
    assert reopened.problems == [] and reopened.recovery_actions == []


def test_durable_writes_fsync_before_each_rename(directory, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "fsync-file")
        real_fsync(descriptor)

    def replace(source, target):
        events.append(f"replace {Path(target).name}")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store = disk_store(directory, durable=True, fault_injector=events.append)
    store.save_snapshot(1, b"abc", term=1)
    assert events == [
        "data_written",
        "fsync-file",
        "data_fsynced",
        "replace snapshot-0000000000000001.bin",
        "fsync-dir",
        "data_renamed",
        "fsync-file",
        "meta_tmp_written",
        "replace snapshot-0000000000000001.meta.json",
        "fsync-dir",
        "meta_renamed",
    ]
    events.clear()
    writer = open_writer_for(store, 2, b"xy")
    events.clear()
    writer.write(0, b"x")
    # One fsync per chunk, no rename: the progress record goes into a trailer slot of the same file.
    assert events == ["partial_appended", "partial_slot_written", "fsync-file", "partial_fsynced"]


def test_reopening_removes_orphaned_temporary_files_only(directory):
    store = disk_store(directory)
    store.save_snapshot(1, b"good", term=1)
    (directory / "snapshot-0000000000000002.bin.tmp").write_bytes(b"half")
    (directory / "snapshot-0000000000000001.meta.json.tmp").write_bytes(b"{")
    (directory / "notes.tmp").write_bytes(b"not ours")
    reopened = disk_store(directory)
    assert sorted(os.listdir(directory)) == [
        "notes.tmp",
        "snapshot-0000000000000001.bin",
        "snapshot-0000000000000001.meta.json",
    ]
    assert len(reopened.recovery_actions) == 2
    assert all("temporary file" in action for action in reopened.recovery_actions)
    assert reopened.problems == [] and reopened.read_snapshot(1) == b"good"


def corrupt_meta(directory: Path, index: int, change) -> None:
    path = directory / f"snapshot-{index:016}.meta.json"
    path.write_text(change(path.read_text()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda text: text[:-10], "snapshot-0000000000000003.meta.json is not valid UTF-8 JSON"),
        (lambda text: "[1, 2]", "must hold a JSON object, found list"),
        (lambda text: text.replace('"digest"', '"digestive"'), "field 'digest' is missing"),
        (lambda text: text.replace('"size": 3', '"size": "3"'), "field 'size': size must be an integer >= 0"),
        (lambda text: text.replace('"index": 3', '"index": 4'), "records index 4, expected 3"),
        (lambda text: text.replace('"version": 1', '"version": 9'), "version 1 expected, found 9"),
        (lambda text: text.replace("blake3:", "md5:"), "field 'digest': digest algorithm 'md5' is not one"),
    ],
)
def test_corrupt_metadata_is_reported_and_the_older_snapshot_stays(directory, change, message):
    store = disk_store(directory)
    store.save_snapshot(2, b"older", term=1)
    store.save_snapshot(3, b"new", term=1)
    corrupt_meta(directory, 3, change)
    reopened = disk_store(directory)
    assert [s.index for s in reopened.list_snapshots()] == [2]
    assert reopened.latest().index == 2 and reopened.read_snapshot(2) == b"older"
    [problem] = reopened.problems
    assert message in problem
    # Ignored, never deleted, and never touched by compaction.
    assert reopened.compact_snapshots(1) == []
    assert (directory / "snapshot-0000000000000003.bin").exists()


def test_missing_halves_and_wrong_sizes_are_reported(directory):
    store = disk_store(directory)
    for index in (1, 2, 3, 4):
        store.save_snapshot(index, b"abcdef", term=1)
    os.remove(directory / "snapshot-0000000000000002.meta.json")
    os.remove(directory / "snapshot-0000000000000003.bin")
    with open(directory / "snapshot-0000000000000004.bin", "r+b") as file:
        file.truncate(4)
    reopened = disk_store(directory)
    assert [s.index for s in reopened.list_snapshots()] == [1]
    assert reopened.recovery_actions == [
        "removed snapshot-0000000000000002.bin: data without metadata snapshot-0000000000000002.meta.json, "
        "left by a save or compaction that was interrupted (metadata marks a complete snapshot)",
    ]
    assert sorted(reopened.problems) == [
        "snapshot-0000000000000003.meta.json has no data file snapshot-0000000000000003.bin; ignored, "
        "expected both files",
        "snapshot-0000000000000004.bin has 4 bytes, snapshot-0000000000000004.meta.json records size 6 "
        "(truncated or overwritten); ignored",
    ]


def test_a_flipped_byte_is_detected_on_read_and_at_the_end_of_a_stream(directory):
    store = disk_store(directory, chunk_size=4)
    data = bytes(range(10))
    store.save_snapshot(1, data, term=1)
    path = directory / "snapshot-0000000000000001.bin"
    path.write_bytes(b"\xff" + data[1:])
    actual = digest_of(b"\xff" + data[1:])
    reopened = disk_store(directory, chunk_size=4)
    assert reopened.problems == []  # same size: only reading can tell
    # The file's name, not its path: the message may land in a trace, whose hash must not vary.
    expected_message = f"{path.name} has digest {actual}, metadata expects {digest_of(data)}"
    with pytest.raises(SnapshotCorruptError, match=expected_message):
        reopened.read_snapshot(1)
    received = []
    with pytest.raises(SnapshotCorruptError, match=expected_message):
        for chunk in reopened.stream_snapshot(1, 0):
            received.append(chunk)
    assert received == [b"\xff" + data[1:4], data[4:8]]  # the last chunk is held back
    with pytest.raises(SnapshotCorruptError):
        list(reopened.stream_snapshot(1, 6))  # a resumed stream checks the bytes it skips too


def test_every_read_is_hashed_even_of_a_snapshot_the_store_wrote_itself(directory, monkeypatch):
    """A disk can return other bits than it was given, so no read is trusted because this
    store object wrote the file: the restore after a transfer has no later check."""
    import simulator.snapshots.base as base_module

    made = []
    real = base_module.hasher_for
    monkeypatch.setattr(base_module, "hasher_for", lambda digest: made.append(digest) or real(digest))
    store = disk_store(directory, chunk_size=4)
    data = bytes(range(10))
    store.save_snapshot(1, data, term=1)
    writer = open_writer_for(store, 2, data[::-1])
    writer.write(0, data[::-1])
    writer.commit()
    made.clear()
    assert store.read_snapshot(1) == data and store.read_snapshot(2) == data[::-1]
    assert made == [digest_of(data), digest_of(data[::-1])]
    with open(directory / "snapshot-0000000000000002.bin", "ab") as file:
        file.write(b"!")
    with pytest.raises(SnapshotCorruptError, match="has bytes past the size 10"):
        store.read_snapshot(2)


def test_data_removed_or_grown_behind_the_stores_back(directory):
    store = disk_store(directory)
    store.save_snapshot(1, b"abcdef", term=1)
    store.save_snapshot(2, b"abcdef", term=1)
    with open(directory / "snapshot-0000000000000002.bin", "ab") as file:
        file.write(b"!")
    with pytest.raises(SnapshotCorruptError, match="has bytes past the size 6"):
        store.read_snapshot(2)
    os.remove(directory / "snapshot-0000000000000001.bin")
    with pytest.raises(SnapshotCorruptError, match="is missing"):
        store.read_snapshot(1)


def test_streaming_reads_one_chunk_at_a_time(directory, monkeypatch):
    chunk_size = 4096
    store = disk_store(directory, chunk_size=chunk_size)
    size = 1024 * 1024 + 123
    store.save_snapshot(1, (bytes([n % 251]) * 8192 for n in range(size // 8192 + 1)), term=1)
    data_size = store.snapshot_metadata(1).size
    reads = []

    class SpyFile:
        def __init__(self, file):
            self._file = file

        def read(self, size=-1):
            reads.append(size)
            return self._file.read(size)

        def __getattr__(self, name):
            return getattr(self._file, name)

    class SpyFiles(Files):  # the store's file layer is the one place its reads go through
        def open(self, path, mode):
            return SpyFile(super().open(path, mode))

    monkeypatch.setattr(store, "files", SpyFiles())
    chunks = 0
    for chunk in store.stream_snapshot(1, 10_000):
        chunks += 1
        assert len(chunk) <= chunk_size
    assert chunks == -(-(data_size - 10_000) // chunk_size)
    assert reads and all(0 < n <= chunk_size for n in reads)  # never read() of the whole file
    assert sum(reads) <= data_size + 1


def test_saving_from_a_generator_never_holds_the_whole_snapshot(directory):
    store = disk_store(directory)
    piece = 64 * 1024
    total = 16 * 1024 * 1024
    tracemalloc.start()
    try:
        store.save_snapshot(1, (b"x" * piece for _ in range(total // piece)), term=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.snapshot_metadata(1).size == total
    assert peak < 1024 * 1024, f"peak {peak} bytes while saving {total} bytes in {piece}-byte chunks"


def write_data_only_partial(directory: Path, index: int, data: bytes, written: int) -> None:
    """A partial as versions before the progress trailer left it: the data written so
    far, its offset and prefix digest in the JSON record (still resumed, see progress_trailer)."""
    from simulator.snapshots.metadata import PartialSnapshot, partial_to_json

    partial = PartialSnapshot(index=index, term=1, size=len(data), digest=digest_of(data), snapshot_id="snap",
                              conf_state=None, offset=written, location="")
    (directory / f"snapshot-{index:016}.partial").write_bytes(data[:written])
    (directory / f"snapshot-{index:016}.partial.json").write_bytes(
        partial_to_json(partial, prefix_digest=digest_of(data[:written])))


def test_partial_with_unrecorded_bytes_is_truncated_on_reopen(directory):
    directory.mkdir(parents=True, exist_ok=True)
    data = b"0123456789"
    write_data_only_partial(directory, 4, data, 5)
    with open(directory / "snapshot-0000000000000004.partial", "ab") as file:
        file.write(b"56")  # appended, but the crash came before the progress record
    reopened = disk_store(directory)
    assert [p.offset for p in reopened.partial_transfers()] == [5]
    assert "truncated snapshot-0000000000000004.partial from 7 to 5 bytes" in reopened.recovery_actions[0]
    writer = open_writer_for(reopened, 4, data)
    writer.write(5, b"56789")
    writer.commit()
    assert reopened.read_snapshot(4) == data


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-progress", "bad-progress", "no-data"])
def test_damaged_partials_are_removed_and_reported(directory, damage):
    store = disk_store(directory)
    store.save_snapshot(1, b"kept", term=1)
    write_data_only_partial(directory, 4, b"0123456789", 5)
    partial = directory / "snapshot-0000000000000004.partial"
    progress = directory / "snapshot-0000000000000004.partial.json"
    if damage == "flip":
        partial.write_bytes(b"X1234")
    elif damage == "truncate":
        partial.write_bytes(b"012")
    elif damage == "no-progress":
        progress.unlink()
    elif damage == "bad-progress":
        progress.write_text(progress.read_text().replace('"offset": 5', '"offset": 50'))
    else:
        partial.unlink()
    reopened = disk_store(directory)
    assert reopened.partial_transfers() == []
    assert sorted(os.listdir(directory)) == [
        "snapshot-0000000000000001.bin",
        "snapshot-0000000000000001.meta.json",
    ]
    messages = reopened.problems + reopened.recovery_actions
    assert len(messages) == 1
    expected = {
        "flip": "the first 5 bytes have digest",
        "truncate": "has 3 bytes, its progress record says 5 were written",
        "no-progress": "partial data without a progress record",
        "bad-progress": "offset 50 is past the size 10",
        "no-data": "has no partial data",
    }[damage]
    assert expected in messages[0]
    assert reopened.read_snapshot(1) == b"kept"
