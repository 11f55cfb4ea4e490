"""Cloud snapshot stores beyond the shared contract: layout, visibility, faults, secrets,
replication, and the fault-injecting wrapper.

The contract every store keeps is in ``test_store_contract.py``. These tests
run against moto's S3 server and gcp-storage-emulator on 127.0.0.1
(``cloud_servers.py``). Network faults in the middle of an upload or a
download are injected by wrapping the boto3 client (``FlakyClient``): the
store sees exactly the exception boto3 raises when a connection drops.
"""

from __future__ import annotations

import logging
import tracemalloc

import botocore.exceptions
import pytest
from cloud_servers import (  # noqa: F401 - fixtures
    S3_SECRET,
    gcs_bucket,
    gcs_client,
    gcs_emulator,
    moto_server,
    s3_bucket,
    s3_client,
    start,
    stop,
)

from simulator.snapshots import (
    MemorySnapshotStore,
    SnapshotCorruptError,
    SnapshotNotFoundError,
    SnapshotStore,
    digest_of,
)
from simulator.snapshots._bucket import (
    BucketNotFoundError,
    CredentialsError,
    ObjectStoreError,
    ObjectStoreUnavailableError,
    RetryPolicy,
)
from simulator.snapshots.faulty import FaultyStore
from simulator.snapshots.gcs import GCSSnapshotStore
from simulator.snapshots.replicated import ReplicatedSnapshotStore
from simulator.snapshots.s3 import MIN_PART_SIZE, S3SnapshotStore

MIB = 1024 * 1024


class FlakyClient:
    """A boto3 client whose named operations fail like a dropped connection.

    ``fail[name] = (after, times)``: the calls after the first ``after`` ones
    fail, ``times`` of them; then the operation works again.
    """

    def __init__(self, client) -> None:
        self._client = client
        self.fail: dict[str, tuple[int, int]] = {}
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(**arguments):
            count = self.calls[name] = self.calls.get(name, 0) + 1
            after, times = self.fail.get(name, (0, 0))
            if after < count <= after + times:
                raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/dropped")
            return method(**arguments)

        return call


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def s3_store(moto_server, s3_bucket, sleeps):
    def make(prefix="node-1", client=None, **options):
        options.setdefault("retry", RetryPolicy(attempts=3, base_delay=0.01, sleep=sleeps))
        return S3SnapshotStore(s3_bucket, prefix, client=client or s3_client(moto_server.endpoint), **options)

    return make


def objects(moto_server, bucket, prefix=""):
    listing = s3_client(moto_server.endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", ()))


# ----------------------------------------------------------------- layout and size


def test_objects_are_laid_out_like_the_disk_store(s3_store, moto_server, s3_bucket):
    store = s3_store("cluster/a")
    store.save_snapshot(12, b"abc", term=2)
    writer = store.open_writer(13, term=2, size=4, digest=digest_of(b"wxyz"), snapshot_id="s")
    writer.write(0, b"wx")
    assert objects(moto_server, s3_bucket, "cluster/a/") == [
        "cluster/a/snapshot-0000000000000012.bin",
        "cluster/a/snapshot-0000000000000012.meta.json",
        "cluster/a/snapshot-0000000000000013.partial.json",
        "cluster/a/snapshot-0000000000000013.partial/00000000000000000000",
    ]
    assert store.snapshot_metadata(12).location == f"s3://{s3_bucket}/cluster/a/snapshot-0000000000000012.bin"
    assert isinstance(store, SnapshotStore)


def test_large_snapshot_goes_up_in_parts_holding_one_part(s3_store, moto_server, s3_bucket):
    store = s3_store(part_size=MIN_PART_SIZE, chunk_size=MIB)
    part = bytes(range(256)) * (MIB // 256)

    def pieces():  # 24 MiB, made as it is consumed
        for number in range(24):
            yield part[:-1] + bytes([number])

    tracemalloc.start()
    try:
        store.save_snapshot(1, pieces(), term=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The part being filled and the one going out, never the 24 MiB.
    assert peak < 3 * MIN_PART_SIZE < meta_size(24)
    meta = store.snapshot_metadata(1)
    assert meta.size == 24 * MIB
    head = s3_client(moto_server.endpoint).head_object(Bucket=s3_bucket, Key="node-1/snapshot-0000000000000001.bin")
    assert head["ETag"].strip('"').endswith("-5")  # a multipart object: four full parts and the rest
    assert list(store.stream_snapshot(1, 23 * MIB)) == [part[:-1] + bytes([23])]


def meta_size(mebibytes: int) -> int:
    return mebibytes * MIB


# --------------------------------------------------------------- faults and errors


def test_missing_bucket_is_a_clear_error(moto_server, gcs_emulator):
    with pytest.raises(BucketNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        S3SnapshotStore("no-such-bucket", client=s3_client(moto_server.endpoint))
    with pytest.raises(BucketNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        GCSSnapshotStore("no-such-bucket", client=gcs_client(gcs_emulator.endpoint))


def test_unreachable_store_fails_after_bounded_retries(sleeps):
    retry = RetryPolicy(attempts=3, base_delay=0.5, max_delay=0.8, sleep=sleeps)
    with pytest.raises(ObjectStoreUnavailableError, match=r"open in s3://b/p failed 3 time\(s\)"):
        S3SnapshotStore("b", "p", client=s3_client("http://127.0.0.1:9"), retry=retry)
    assert sleeps == [0.5, 0.8]  # doubling, capped; never from a clock
    with pytest.raises(ObjectStoreUnavailableError, match="failed 3 time"):
        GCSSnapshotStore("b", client=gcs_client("http://127.0.0.1:9"), retry=retry)


def test_refused_credentials_are_a_clear_error_without_the_secret():
    server = start("moto-auth", env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        with pytest.raises(CredentialsError, match="credentials were refused") as refused:
            S3SnapshotStore("any-bucket", client=s3_client(server.endpoint))
        assert S3_SECRET not in str(refused.value) and S3_SECRET not in repr(refused.value)
    finally:
        stop(server)


def test_secrets_never_reach_reprs_errors_or_logs(moto_server, s3_bucket, caplog):
    caplog.set_level(logging.DEBUG)
    store = S3SnapshotStore(s3_bucket, "secret-test", endpoint_url=moto_server.endpoint, region="us-east-1",
                            access_key_id="AKIDLOGTEST", secret_access_key=S3_SECRET)
    store.save_snapshot(1, b"data", term=1)
    with pytest.raises(SnapshotNotFoundError) as missing:
        store.snapshot_metadata(2)
    with pytest.raises(BucketNotFoundError) as no_bucket:
        S3SnapshotStore("absent-bucket", endpoint_url=moto_server.endpoint, access_key_id="AKIDLOGTEST",
                        secret_access_key=S3_SECRET)
    texts = [repr(store), str(store.__dict__), repr(store.bucket), str(missing.value), str(no_bucket.value),
             store.snapshot_metadata(1).location, caplog.text]
    assert caplog.text  # boto3 did log its requests at DEBUG
    for text in texts:
        assert S3_SECRET not in text


def test_network_error_mid_upload_aborts_and_leaves_nothing(s3_store, moto_server, s3_bucket):
    flaky = FlakyClient(s3_client(moto_server.endpoint))
    store = s3_store(client=flaky, part_size=MIN_PART_SIZE)
    flaky.fail["upload_part"] = (1, 10)  # the second part never gets through
    with pytest.raises(ObjectStoreUnavailableError, match="upload part 2 of snapshot-0000000000000003.bin"):
        store.save_snapshot(3, [b"x" * MIN_PART_SIZE] * 3, term=1)
    assert objects(moto_server, s3_bucket, "node-1/") == []
    assert s3_client(moto_server.endpoint).list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert s3_store().list_snapshots() == []


def test_a_dropped_connection_is_retried_with_backoff(s3_store, moto_server, sleeps):
    flaky = FlakyClient(s3_client(moto_server.endpoint))
    store = s3_store(client=flaky, chunk_size=4)
    store.save_snapshot(1, b"0123456789", term=1)
    flaky.fail["get_object"] = (flaky.calls.get("get_object", 0) + 1, 2)  # the second chunk, twice
    assert list(store.stream_snapshot(1)) == [b"0123", b"4567", b"89"]
    assert sleeps == [0.01, 0.02]


def test_interrupted_commit_keeps_the_partial_for_a_resume(s3_store, moto_server):
    flaky = FlakyClient(s3_client(moto_server.endpoint))
    store = s3_store(client=flaky)
    data = b"partial then whole"
    writer = store.open_writer(5, term=1, size=len(data), digest=digest_of(data), snapshot_id="s")
    writer.write(0, data[:7])
    writer.write(7, data[7:])
    flaky.fail["put_object"] = (flaky.calls["put_object"], 3)  # publishing fails, retries used up
    with pytest.raises(ObjectStoreUnavailableError):
        writer.commit()
    again = s3_store()
    assert again.list_snapshots() == []
    [partial] = again.partial_transfers()
    assert partial.offset == len(data)
    again.open_writer(5, term=1, size=len(data), digest=digest_of(data), snapshot_id="s").commit()
    assert again.read_snapshot(5) == data


def test_bytes_changed_behind_the_stores_back_fail_the_digest(s3_store, moto_server, s3_bucket):
    store = s3_store(chunk_size=4)
    store.save_snapshot(1, b"original", term=1)
    s3_client(moto_server.endpoint).put_object(Bucket=s3_bucket, Key="node-1/snapshot-0000000000000001.bin",
                                               Body=b"tampered")
    with pytest.raises(SnapshotCorruptError, match="has digest blake3:.*metadata expects"):
        store.read_snapshot(1)


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "not valid UTF-8 JSON"),
    (b'{"format": "raftsim-snapshot", "version": 1}', "field 'digest' is missing|field 'index' is missing"),
])
def test_malformed_metadata_is_reported_and_the_snapshot_ignored(s3_store, moto_server, s3_bucket, body, message):
    store = s3_store()
    store.save_snapshot(1, b"one", term=1)
    store.save_snapshot(2, b"two", term=1)
    s3_client(moto_server.endpoint).put_object(Bucket=s3_bucket, Key="node-1/snapshot-0000000000000002.meta.json",
                                               Body=body)
    again = s3_store()
    assert [s.index for s in again.list_snapshots()] == [1]
    assert any(__import__("re").search(message, problem) for problem in again.problems)
    with pytest.raises(SnapshotNotFoundError, match="no usable snapshot at index 2"):
        again.snapshot_metadata(2)


def test_data_without_metadata_is_never_a_snapshot(s3_store, moto_server, s3_bucket):
    s3_client(moto_server.endpoint).put_object(Bucket=s3_bucket, Key="node-1/snapshot-0000000000000004.bin",
                                               Body=b"orphan")
    store = s3_store()
    assert (store.list_snapshots(), store.has_snapshot(4)) == ([], False)
    assert any("has no metadata object" in problem for problem in store.problems)


def test_a_second_store_on_the_same_prefix_sees_new_and_compacted_snapshots(s3_store):
    writer_side, reader_side = s3_store("shared"), s3_store("shared")
    writer_side.save_snapshot(1, b"a", term=1)
    writer_side.save_snapshot(2, b"b", term=1)
    assert reader_side.has_snapshot(2) and reader_side.read_snapshot(2) == b"b"
    writer_side.compact_snapshots(1)
    assert [s.index for s in reader_side.list_snapshots()] == [2]


def test_gcs_resumable_upload_of_a_large_snapshot(gcs_emulator, gcs_bucket):
    store = GCSSnapshotStore(gcs_bucket, "big", client=gcs_client(gcs_emulator.endpoint),
                             part_size=256 * 1024, chunk_size=100_000)
    data = bytes(range(256)) * 4000  # 1,024,000 bytes: four parts
    store.save_snapshot(9, (data[i:i + 70_000] for i in range(0, len(data), 70_000)), term=3)
    assert store.read_snapshot(9) == data
    assert b"".join(store.stream_snapshot(9, 1_000_000)) == data[1_000_000:]


# ----------------------------------------------------------------- replication


def test_replicated_store_copies_reports_lag_and_fails_over(s3_store, gcs_emulator, gcs_bucket):
    primary = FaultyStore(s3_store("primary", chunk_size=4), name="primary")
    region_b = FaultyStore(GCSSnapshotStore(gcs_bucket, "region-b", client=gcs_client(gcs_emulator.endpoint),
                                            chunk_size=4), name="region-b")
    region_c = MemorySnapshotStore(chunk_size=4)
    store = ReplicatedSnapshotStore(primary, [region_b, region_c])
    store.save_snapshot(1, b"first snapshot", term=1)
    assert region_b.inner.read_snapshot(1) == region_c.read_snapshot(1) == b"first snapshot"
    assert region_b.inner.snapshot_metadata(1).snapshot_id == primary.snapshot_metadata(1).snapshot_id

    region_b.go_down()
    store.save_snapshot(2, b"second", term=1)
    store.save_snapshot(3, b"third", term=1)
    status_b, status_c = store.replication_status()
    assert (status_b.healthy, status_b.pending, status_b.index_lag, status_b.failures) == (False, (2, 3), 2, 2)
    assert "unavailable (injected fault)" in status_b.last_error
    assert (status_c.healthy, status_c.pending, status_c.index_lag, status_c.replicated) == (True, (), 0, 3)
    region_b.come_back()
    assert store.catch_up()[0].pending == ()
    assert region_b.inner.read_snapshot(3) == b"third"

    primary.go_down()  # the primary region is lost: reads come from the next healthy store
    assert store.read_snapshot(3) == b"third"
    assert [s.index for s in store.list_snapshots()] == [1, 2, 3]
    primary.come_back()
    primary.fail_reads(1, after=1)  # dies after the first chunk: the stream goes on from byte 4 elsewhere
    assert list(store.stream_snapshot(1)) == [b"firs", b"t sn", b"apsh", b"ot"]
    assert primary.injected["failed_read"] == 1

    assert store.compact_snapshots(1) == [1, 2]
    assert [s.index for s in region_b.inner.list_snapshots()] == [3]
    assert [s.index for s in region_c.list_snapshots()] == [3]


def test_replicated_writer_commit_replicates(s3_store):
    region_b = MemorySnapshotStore()
    store = ReplicatedSnapshotStore(s3_store("primary-w"), [region_b])
    data = b"received in pieces"
    writer = store.open_writer(4, term=2, size=len(data), digest=digest_of(data), snapshot_id="w")
    writer.write(0, data[:5])
    writer.write(5, data[5:])
    assert writer.offset == len(data)
    writer.commit()
    assert region_b.read_snapshot(4) == data
    with pytest.raises(ValueError, match="at least one secondary"):
        ReplicatedSnapshotStore(region_b, [])


def test_faulty_store_corrupts_and_fails_reads_on_demand():
    store = FaultyStore(MemorySnapshotStore(chunk_size=3), name="flaky")
    store.save_snapshot(1, b"abcdef", term=1)
    store.corrupt_reads(1)
    assert list(store.stream_snapshot(1, 3)) == [bytes([ord("d") ^ 0xFF]) + b"ef"]
    store.fail_reads(1)
    with pytest.raises(ObjectStoreUnavailableError, match="connection reset mid-download"):
        store.read_snapshot(1)
    store.go_down()
    with pytest.raises(ObjectStoreError, match="flaky: the store is unavailable"):
        store.has_snapshot(1)
    store.come_back()
    assert store.read_snapshot(1) == b"abcdef"
    assert store.injected == {"corrupt_read": 1, "failed_read": 1, "down": 1}


def test_the_package_works_without_the_cloud_extra():
    """``import simulator`` (and every non-cloud store) needs neither boto3 nor google-cloud-storage;
    asking for a cloud store then says which extra to install."""
    import subprocess
    import sys

    program = """
import sys
class NoCloud:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('boto3', 'botocore', 'google'):
            raise ImportError('not installed: ' + name)
sys.meta_path.insert(0, NoCloud())
import simulator
from simulator import Cluster, FaultyStore, ReplicatedSnapshotStore, MemorySnapshotStore
from transports import Streaming
Streaming(pull=FaultyStore(MemorySnapshotStore()))
try:
    simulator.S3SnapshotStore
except ImportError as error:
    print(error)
"""
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert "S3SnapshotStore needs boto3" in completed.stdout
    assert "pip install 'raftsim[cloud]'" in completed.stdout


class FlakySession:
    """Wraps the GCS client's HTTP session: requests whose method and URL match fail like a
    dropped connection, ``times`` of them, after ``after`` matching ones went through."""

    def __init__(self, session, method: str, url_part: str, *, after: int, times: int) -> None:
        self._session = session
        self.method, self.url_part, self.after, self.times, self.seen = method, url_part, after, times, 0

    def __getattr__(self, name):
        return getattr(self._session, name)

    def request(self, method, url, *args, **kwargs):
        import requests

        if method == self.method and self.url_part in url:
            self.seen += 1
            if self.after < self.seen <= self.after + self.times:
                raise requests.exceptions.ConnectionError("connection reset by peer (injected)")
        return self._session.request(method, url, *args, **kwargs)


def flaky_gcs_store(endpoint, bucket, prefix, sleeps, **flaky):
    client = gcs_client(endpoint)
    client._http_internal = FlakySession(client._http, **flaky)
    return GCSSnapshotStore(bucket, prefix, client=client, part_size=256 * 1024, chunk_size=100_000,
                            retry=RetryPolicy(attempts=3, base_delay=0.01, sleep=sleeps))


def test_gcs_network_error_mid_upload_abandons_it_and_leaves_nothing(gcs_emulator, gcs_bucket, sleeps):
    store = flaky_gcs_store(gcs_emulator.endpoint, gcs_bucket, "mid-upload", sleeps,
                            method="PUT", url_part="upload", after=1, times=1)
    with pytest.raises(ObjectStoreError, match="the upload was abandoned"):
        store.save_snapshot(1, [b"z" * 100_000] * 10, term=1)
    again = GCSSnapshotStore(gcs_bucket, "mid-upload", client=gcs_client(gcs_emulator.endpoint))
    assert (again.list_snapshots(), again.bucket.list()) == ([], [])


def test_gcs_dropped_download_is_retried(gcs_emulator, gcs_bucket, sleeps):
    data = bytes(range(256)) * 1000
    GCSSnapshotStore(gcs_bucket, "retry", client=gcs_client(gcs_emulator.endpoint)).save_snapshot(
        2, data, term=1)
    store = flaky_gcs_store(gcs_emulator.endpoint, gcs_bucket, "retry", sleeps,
                            method="GET", url_part="alt=media", after=1, times=2)
    assert store.read_snapshot(2) == data
    assert sleeps == [0.01, 0.02]
