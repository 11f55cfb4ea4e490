"""The ``SnapshotStore`` contract, one suite over every store: memory, disk, S3, GCS.

S3 runs against moto's server and GCS against gcp-storage-emulator, both real
HTTP servers on 127.0.0.1 (see ``cloud_servers.py``). Each test gets its own
prefix in one bucket per store kind. ``reopen`` is a restart: a new store
object on the same directory or bucket prefix (the memory store stays).

The agreement machine at the end drives all four stores with the same
operations and requires the same observations, in the manner of
hypothesis's own ``test_database_agreement.py``.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

import pytest
from cloud_servers import gcs_client, new_bucket_name, s3_client, shared
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from simulator.snapshots import (
    DiskSnapshotStore,
    MemorySnapshotStore,
    SnapshotChunkError,
    SnapshotDigestError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    SnapshotStore,
    SnapshotStoreError,
    digest_of,
)
from simulator.snapshots.gcs import GCSSnapshotStore
from simulator.snapshots.s3 import S3SnapshotStore

KINDS = ("memory", "disk", "s3", "gcs")
_PREFIXES = itertools.count(1)


def counting_clock():
    counter = itertools.count(1)
    return lambda: float(next(counter))


class Stores:
    """Makes stores of one kind; ``reopen`` opens the same place again, as after a restart."""

    def __init__(self, kind: str, place) -> None:
        self.kind = kind
        self.place = place  # a directory, or (client, bucket, prefix)
        self.clock = counting_clock()

    def new(self, chunk_size: int = 4) -> SnapshotStore:
        if self.kind == "memory":
            return MemorySnapshotStore(chunk_size=chunk_size, clock=self.clock)
        if self.kind == "disk":
            return DiskSnapshotStore(self.place, chunk_size=chunk_size, clock=self.clock, durable=False)
        client, bucket, prefix = self.place
        cls = S3SnapshotStore if self.kind == "s3" else GCSSnapshotStore
        return cls(bucket, prefix, client=client, chunk_size=chunk_size, clock=self.clock)

    def reopen(self, store: SnapshotStore) -> SnapshotStore:
        return store if self.kind == "memory" else self.new(store.chunk_size)


@pytest.fixture(scope="module")
def buckets(request):
    """One bucket per cloud kind for this module: (client, bucket name)."""
    moto, gcs = shared(request, "moto"), shared(request, "gcs")
    s3, google = s3_client(moto.endpoint), gcs_client(gcs.endpoint)
    s3_name, gcs_name = new_bucket_name("s3"), new_bucket_name("gcs")
    s3.create_bucket(Bucket=s3_name)
    google.create_bucket(gcs_name)
    return {"s3": (s3, s3_name), "gcs": (google, gcs_name)}


def make_stores(kind: str, buckets, directory: Path) -> Stores:
    if kind in ("memory", "disk"):
        return Stores(kind, directory)
    client, bucket = buckets[kind]
    return Stores(kind, (client, bucket, f"contract/{next(_PREFIXES)}"))


@pytest.fixture(params=KINDS)
def stores(request, buckets, tmp_path) -> Stores:
    return make_stores(request.param, buckets, tmp_path / "snapshots")


def open_writer_for(store, index, data, *, term=1, snapshot_id="snap", conf_state=None):
    return store.open_writer(index, term=term, size=len(data), digest=digest_of(data),
                             snapshot_id=snapshot_id, conf_state=conf_state)


# ----------------------------------------------------------- saving and reading


def test_every_store_implements_the_protocol(stores):
    assert isinstance(stores.new(), SnapshotStore)


def test_save_then_read_metadata_stream_and_ranges(stores):
    store = stores.new(chunk_size=4)
    location = store.save_snapshot(7, b"hello world", term=3, conf_state=((1, 2, 3), (4,)))
    meta = store.snapshot_metadata(7)
    assert (meta.index, meta.term, meta.size, meta.digest) == (7, 3, 11, digest_of(b"hello world"))
    assert (meta.conf_state, meta.created_at, meta.location) == (((1, 2, 3), (4,)), 1.0, location)
    assert meta.snapshot_id == f"3-7-{meta.digest[7:19]}"
    assert store.read_snapshot(7) == b"hello world"
    assert list(store.stream_snapshot(7)) == [b"hell", b"o wo", b"rld"]
    assert list(store.stream_snapshot(7, 5)) == [b" wor", b"ld"]
    assert list(store.stream_snapshot(7, 11)) == []
    again = stores.reopen(store)
    assert again.snapshot_metadata(7) == meta
    assert list(again.stream_snapshot(7, 9)) == [b"ld"]


@pytest.mark.parametrize("offset", [-1, 12, True])
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


def test_saving_from_a_generator_and_a_failing_source(stores):
    store = stores.new()
    store.save_snapshot(1, (piece for piece in [b"ab", b"", bytearray(b"cd"), memoryview(b"e")]), term=1)
    assert store.read_snapshot(1) == b"abcde"

    def broken():
        yield b"abc"
        raise OSError("source failed")

    with pytest.raises(OSError, match="source failed"):
        store.save_snapshot(2, broken(), term=1)
    assert [s.index for s in stores.reopen(store).list_snapshots()] == [1]


def test_same_snapshot_again_is_a_no_op_and_a_different_one_is_refused(stores):
    store = stores.new()
    location = store.save_snapshot(4, b"data", term=2)
    assert store.save_snapshot(4, [b"da", b"ta"], term=2) == location
    with pytest.raises(SnapshotExistsError, match="already exists"):
        store.save_snapshot(4, b"other", term=2)
    assert stores.reopen(store).read_snapshot(4) == b"data"


def test_listing_latest_and_compaction_keep_the_newest(stores):
    store = stores.new()
    assert (store.list_snapshots(), store.latest()) == ([], None)
    for index in (5, 2, 9, 7):
        store.save_snapshot(index, bytes([index]) * index, term=1)
    assert [s.index for s in store.list_snapshots()] == [2, 5, 7, 9]
    assert store.latest().index == 9
    with pytest.raises(ValueError, match="keep_count must be an integer >= 1"):
        store.compact_snapshots(0)
    assert store.compact_snapshots(2) == [2, 5]
    assert store.compact_snapshots(5) == []
    again = stores.reopen(store)
    assert [s.index for s in again.list_snapshots()] == [7, 9]
    assert not again.has_snapshot(2) and again.has_snapshot(9)
    assert again.read_snapshot(7) == bytes([7]) * 7


# ------------------------------------------------------------ partial transfers


def test_writer_receives_in_pieces_refusing_gaps_overlaps_and_extra_bytes(stores):
    store = stores.new(chunk_size=3)
    data = b"0123456789"
    writer = open_writer_for(store, 4, data, conf_state=((1,), ()))
    assert writer.write(0, data[:4]) == 4
    for offset, chunk, message in [(6, b"67", "gap of 2 bytes"), (2, b"23", "overlaps 2 bytes"),
                                   (4, b"456789X", "more bytes than total_size 10")]:
        with pytest.raises(SnapshotChunkError, match=message):
            writer.write(offset, chunk)
    with pytest.raises(SnapshotChunkError, match="commit after 4 of 10 bytes"):
        writer.commit()
    assert [p.offset for p in store.partial_transfers()] == [4]
    assert not store.has_snapshot(4)
    writer.write(4, data[4:])
    snapshot = writer.commit()
    assert (snapshot.index, snapshot.size, snapshot.conf_state) == (4, 10, ((1,), ()))
    assert store.partial_transfers() == []
    assert stores.reopen(store).read_snapshot(4) == data


def test_transfer_resumes_after_a_restart_from_the_recorded_offset(stores):
    store = stores.new()
    data = b"resumable snapshot"
    writer = open_writer_for(store, 3, data)
    writer.write(0, data[:5])
    writer.write(5, data[5:9])
    store = stores.reopen(store)
    [partial] = store.partial_transfers()
    assert (partial.index, partial.offset, partial.size) == (3, 9, len(data))
    writer = open_writer_for(store, 3, data)
    assert writer.resumed_from == 9
    writer.write(9, data[9:])
    writer.commit()
    assert stores.reopen(store).read_snapshot(3) == data


def test_bad_digest_publishes_nothing_and_removes_the_partial(stores):
    store = stores.new()
    writer = store.open_writer(2, term=1, size=4, digest=digest_of(b"good"), snapshot_id="s")
    writer.write(0, b"evil")
    with pytest.raises(SnapshotDigestError, match="partial data was removed"):
        writer.commit()
    again = stores.reopen(store)
    assert (again.list_snapshots(), again.partial_transfers()) == ([], [])


def test_another_snapshot_supersedes_the_partial_and_abort_removes_it(stores):
    store = stores.new()
    first = open_writer_for(store, 3, b"first", snapshot_id="a")
    first.write(0, b"fir")
    second = open_writer_for(store, 5, b"second", snapshot_id="b")
    with pytest.raises(SnapshotStoreError, match="superseded"):
        first.write(3, b"st")
    assert [p.index for p in store.partial_transfers()] == [5]
    second.write(0, b"sec")
    second.abort()
    again = stores.reopen(store)
    assert (again.partial_transfers(), again.list_snapshots()) == ([], [])


def test_empty_snapshot_saved_and_received(stores):
    store = stores.new()
    store.save_snapshot(1, b"", term=1)
    assert (store.read_snapshot(1), list(store.stream_snapshot(1))) == (b"", [])
    writer = open_writer_for(store, 2, b"")
    assert writer.commit().size == 0
    assert stores.reopen(store).read_snapshot(2) == b""


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 40), chunk_size=st.integers(1, 50), data=st.data())
def test_streamed_chunks_reassemble_exactly(kind, buckets, tmp_path_factory, size, chunk_size, data):
    stores = make_stores(kind, buckets, tmp_path_factory.mktemp("chunks"))
    payload = bytes(range(size))
    store = stores.new(chunk_size=chunk_size)
    store.save_snapshot(1, payload, term=1)
    offset = data.draw(st.integers(0, size))
    chunks = list(store.stream_snapshot(1, offset))
    assert b"".join(chunks) == payload[offset:]
    assert all(0 < len(chunk) <= chunk_size for chunk in chunks)
    assert all(len(chunk) == chunk_size for chunk in chunks[:-1])


# ------------------------------------------------------------------ agreement


def _agreement_buckets():
    return _AGREEMENT_PLACES  # set by the fixture below before the machine runs


_AGREEMENT_PLACES: dict = {}


class StoresAgree(RuleBasedStateMachine):
    """Memory, disk, S3 and GCS stores, driven by the same operations, agree on
    everything observable: outcomes, error types, metadata but location."""

    @initialize()
    def open_stores(self):
        self.directory = tempfile.mkdtemp(prefix="raftsim-agree-")
        places = _agreement_buckets()
        self.factories = [make_stores(kind, places, Path(self.directory) / "disk") for kind in KINDS]
        self.stores = [stores.new(chunk_size=3) for stores in self.factories]
        self.writers = None

    def teardown(self):
        shutil.rmtree(self.directory, ignore_errors=True)

    def all(self, operation):
        results = []
        for store in self.stores:
            try:
                results.append(("ok", operation(store)))
            except (SnapshotStoreError, ValueError) as error:
                results.append(("error", type(error).__name__))
        assert all(result == results[0] for result in results), list(zip(KINDS, results))
        return results[0]

    @rule(index=st.integers(1, 5), data=st.binary(max_size=8), cut=st.integers(0, 8), term=st.integers(1, 2))
    def save(self, index, data, cut, term):
        self.all(lambda s: s.save_snapshot(index, [data[:cut], data[cut:]], term=term) and None)

    @rule(index=st.integers(1, 5), offset=st.integers(0, 9))
    def stream(self, index, offset):
        self.all(lambda s: list(s.stream_snapshot(index, offset)))

    @rule(keep=st.integers(0, 3))
    def compact(self, keep):
        self.all(lambda s: s.compact_snapshots(keep))

    @rule(index=st.integers(1, 5), data=st.binary(max_size=8), snapshot_id=st.sampled_from(["x", "y"]))
    def open_writer(self, index, data, snapshot_id):
        status, _ = self.all(lambda s: open_writer_for(s, index, data, snapshot_id=snapshot_id) and None)
        if status == "ok":
            self.writers = [open_writer_for(s, index, data, snapshot_id=snapshot_id) for s in self.stores]
            self.payload = data

    @precondition(lambda self: self.writers is not None)
    @rule(skew=st.sampled_from([0, 0, 0, -1, 1]), length=st.integers(0, 4), garble=st.booleans())
    def write(self, skew, length, garble):
        offset = max(0, self.writers[0].offset + skew)
        chunk = self.payload[offset:offset + length] or b"?" * length
        if garble:  # right place, wrong bytes: only the digest on commit can tell
            chunk = bytes(byte ^ 0xFF for byte in chunk)
        self._each_writer(lambda writer: writer.write(offset, chunk))

    @precondition(lambda self: self.writers is not None)
    @rule(abort=st.booleans())
    def finish(self, abort):
        self._each_writer(lambda writer: writer.write(writer.offset, self.payload[writer.offset:]))
        self._each_writer(lambda writer: writer.abort() if abort else writer.commit().size)

    def _each_writer(self, action):
        outcomes = []
        for writer in self.writers:
            try:
                outcomes.append(action(writer))
            except SnapshotStoreError as error:
                outcomes.append(type(error).__name__)
        assert all(outcome == outcomes[0] for outcome in outcomes), list(zip(KINDS, outcomes))

    @rule()
    def restart(self):
        self.stores = [factory.reopen(store) for factory, store in zip(self.factories, self.stores)]
        assert all(getattr(store, "problems", []) == [] for store in self.stores)
        self.writers = None  # writers of the old store objects are gone with them

    @invariant()
    def same_observations(self):
        def view(store):
            latest = store.latest()
            return (
                [(s.index, s.term, s.size, s.digest, s.snapshot_id, s.conf_state) for s in store.list_snapshots()],
                [(p.index, p.size, p.digest, p.snapshot_id, p.offset) for p in store.partial_transfers()],
                latest and latest.index,
            )

        views = [view(store) for store in self.stores]
        assert all(v == views[0] for v in views), list(zip(KINDS, views))


StoresAgree.TestCase.settings = settings(max_examples=12, stateful_step_count=12, deadline=None)


@pytest.fixture
def agreement_places(buckets):
    _AGREEMENT_PLACES.clear()
    _AGREEMENT_PLACES.update(buckets)
    yield
    _AGREEMENT_PLACES.clear()


@pytest.mark.usefixtures("agreement_places")
class TestStoresAgree(StoresAgree.TestCase):
    pass
