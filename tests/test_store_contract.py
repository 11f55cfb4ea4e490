"""The ``SnapshotStore`` contract, one suite over every store: memory, disk, S3, GCS.

S3 runs against moto's server and GCS against gcp-storage-emulator, both real
HTTP servers on 127.0.0.1 (see ``cloud_servers.py``). Each test gets its own
prefix in one bucket per store kind. A restart is what the store declares
through ``reopened()``: a new object on the same directory or bucket prefix
(the memory store stays). The rules themselves are the public conformance kit,
``simulator.testing.check_snapshot_store``; here it runs on every built-in
store, and on broken stores to show it fails them.

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
from simulator.testing import ContractViolation, check_snapshot_store
from simulator.testing.store_kit import CHECKS

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
        return store.reopened()  # what the store declares survives a restart


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


# ------------------------------------------------------------- the kit, on every store


def test_every_store_implements_the_protocol(stores):
    assert isinstance(stores.new(), SnapshotStore)


@pytest.mark.parametrize("kind", KINDS)
def test_every_store_passes_the_conformance_kit(kind, buckets, tmp_path):
    # The kit wants a new, empty store per call: a new directory or bucket prefix each time.
    places = itertools.count(1)
    factory = lambda chunk_size: make_stores(kind, buckets, tmp_path / f"store-{next(places)}").new(chunk_size)  # noqa: E731
    assert check_snapshot_store(factory) == len(CHECKS)


def test_every_store_commits_in_steps_and_a_writer_superseded_meanwhile_publishes_nothing(stores):
    # prepare_commit / CommitCheck.run (what an async caller runs on a worker thread) /
    # commit(verified=...): the gRPC puller's way to commit, on every built-in store.
    store = stores.new()
    store.save_snapshot(1, b"the last good one", term=1)
    data = b"received in steps"
    writer = open_writer_for(store, 4, data)
    writer.write(0, data)
    check = writer.prepare_commit()
    check.run()
    assert writer.commit(verified=check).digest == digest_of(data) and store.read_snapshot(4) == data
    old = open_writer_for(store, 6, data, snapshot_id="old")
    old.write(0, data)
    check = old.prepare_commit()
    newer = open_writer_for(store, 7, b"newer", snapshot_id="new")
    check.run()
    with pytest.raises(SnapshotStoreError, match="superseded"):
        old.commit(verified=check)
    again = stores.reopen(store)
    assert [s.index for s in again.list_snapshots()] == [1, 4] and [p.index for p in again.partial_transfers()] == [7]
    newer.write(0, b"newer")
    assert newer.commit().size == 5


class ForgetfulDiskStore(DiskSnapshotStore):
    """Claims a restart loses nothing, but reopens as an empty store elsewhere."""

    def reopened(self):
        return MemorySnapshotStore(chunk_size=self.chunk_size)


class GapTolerantWriter:
    def __init__(self, writer):
        self._writer = writer

    def __getattr__(self, name):
        return getattr(self._writer, name)

    def write(self, offset, data):
        return self._writer.write(self._writer.offset, data)  # ignores where the chunk belongs


class GapTolerantStore(MemorySnapshotStore):
    def open_writer(self, index, **identity):
        return GapTolerantWriter(super().open_writer(index, **identity))


class UnchunkedStore(MemorySnapshotStore):
    def stream_snapshot(self, index, offset=0):
        chunks = list(super().stream_snapshot(index, offset))
        return iter([b"".join(chunks)] if chunks else [])


@pytest.mark.parametrize("store_class, rule", [
    (ForgetfulDiskStore, "snapshots survive a restart"),
    (GapTolerantStore, "a writer refuses gaps, overlaps and extra bytes"),
    (UnchunkedStore, "streams come in chunk_size chunks"),
])
def test_the_kit_names_the_rule_a_broken_store_breaks(tmp_path, store_class, rule):
    places = itertools.count(1)

    def factory(chunk_size):
        if store_class is ForgetfulDiskStore:
            return ForgetfulDiskStore(tmp_path / f"s{next(places)}", chunk_size=chunk_size, durable=False)
        return store_class(chunk_size=chunk_size)

    with pytest.raises(ContractViolation, match=f"SnapshotStore contract, {rule}"):
        check_snapshot_store(factory)


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
