"""Follower pull: the leader uploads the snapshot once to a shared store, followers read it.

The common setting mirrors ``test_snapshot_transfer.py``: a 3-node cluster
applies 100 workflows of 200 bytes and compacts; a 4th node joins and can
only catch up by snapshot (about 24 KB, seven chunks of ``CHUNK``). Here the
shared store is a ``FaultyStore`` around a memory store (to inject store
faults), or an S3 store on moto's server; each runs on virtual time.
"""

from __future__ import annotations

import pytest
from cloud_servers import moto_server, s3_bucket, s3_client  # noqa: F401 - fixtures

from simulator import Cluster, CompactionPolicy, WorkflowExecutor
from simulator.snapshots import FaultyStore, MemorySnapshotStore
from simulator.snapshots.s3 import S3SnapshotStore
from transports import Streaming
from transports.streaming import Outcome, Verdict, chunk_checksum
from transports.streaming.pull import PullDownload, SnapshotLocation
from transports.streaming.pulling import PullingEndpoint

CHUNK = 4096
NEW = 4


async def joined(cluster) -> object:
    """Load the cluster, compact, add node 4, wait until everyone caught up; its transfer."""
    await cluster.wait_for_leader()
    for number in range(100):
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch"], bytes([number]) * 200),
                              timeout=30)
    await cluster.wait_caught_up()
    await cluster.add_node(timeout=120)
    await cluster.wait_caught_up(timeout=120)
    digests = {cluster.state_machine(node).digest() for node in cluster.node_ids}
    assert len(digests) == 1
    [transfer] = [t for t in cluster.transfers() if t.to == NEW]
    return transfer


def open_cluster(shared, **options):
    mode = Streaming(chunk_size=CHUNK, pull=shared, **options)
    return Cluster.open(nodes=3, seed=1, snapshot_mode=mode,
                        compaction=CompactionPolicy(every=50, keep_entries=5))


def events(cluster, kind, node=None):
    return [r for r in cluster.trace.of_kind(kind) if node is None or r.node == node]


async def test_the_follower_reads_the_snapshot_from_the_shared_store(autojump_clock):
    shared = FaultyStore(MemorySnapshotStore(chunk_size=CHUNK), name="bucket")
    async with open_cluster(shared) as cluster:
        transfer = await joined(cluster)
        leader = await cluster.wait_for_leader()
        assert (transfer.mode, transfer.outcome, transfer.bytes_done) == ("pull", Outcome.INSTALLED, transfer.size)
        assert transfer.bytes_sent == transfer.size and transfer.resent_bytes == 0
        # The leader sent no chunk at all: a location with the chunks' checksums, that is all.
        sent = {r.get("type") for r in cluster.trace.of_kind("send") if r.get("from") == leader}
        assert "snapshot_chunk" not in sent and "snapshot_location" in sent
        [published] = events(cluster, "snapshot_published", leader)
        assert shared.inner.has_snapshot(published.get("index"))
        progress = [r.get("offset") for r in events(cluster, "transfer_progress", NEW)]
        chunks = -(-transfer.size // CHUNK)
        assert progress == [min(CHUNK * n, transfer.size) for n in range(1, chunks + 1)]
        assert isinstance(cluster.runners[NEW].snapshots.endpoint, PullingEndpoint)


async def test_an_unavailable_store_is_waited_out_and_the_transfer_resumes(autojump_clock):
    shared = FaultyStore(MemorySnapshotStore(chunk_size=CHUNK), name="bucket")
    shared.fail_reads(3, after=2)  # two chunks arrive, then three reads fail
    async with open_cluster(shared) as cluster:
        transfer = await joined(cluster)
        assert transfer.outcome is Outcome.INSTALLED
        assert shared.injected["failed_read"] == 3
        retries = events(cluster, "pull_retry", NEW)
        assert [r.get("offset") for r in retries] == [2 * CHUNK] * 3  # from the verified offset
        assert transfer.resent_bytes == 0  # a failed read brought nothing, so nothing is read twice


async def test_corrupt_bytes_from_the_store_are_rejected_and_read_again(autojump_clock):
    shared = FaultyStore(MemorySnapshotStore(chunk_size=CHUNK), name="bucket")
    shared.corrupt_reads(1)
    async with open_cluster(shared) as cluster:
        transfer = await joined(cluster)
        rejected = events(cluster, "chunk_rejected", NEW)
        assert len(rejected) == 1 and "checksum" in rejected[0].get("reason")
        assert transfer.outcome is Outcome.INSTALLED
        assert transfer.resent_bytes == CHUNK  # the one bad chunk, read again
        assert transfer.retries == 1


async def test_a_slow_store_only_takes_longer(autojump_clock):
    durations = []
    for delay in (0.0, 0.5):
        shared = FaultyStore(MemorySnapshotStore(chunk_size=CHUNK), name="bucket")
        shared.slow_down(delay)
        async with open_cluster(shared) as cluster:
            transfer = await joined(cluster)
            assert transfer.outcome is Outcome.INSTALLED and transfer.retries == 0
            durations.append(transfer.updated_at - transfer.started_at)
    assert durations[1] - durations[0] == pytest.approx(7 * 0.5)  # seven reads, half a second more each


async def test_a_store_that_stays_down_fails_the_publish_and_raft_offers_again(autojump_clock):
    shared = FaultyStore(MemorySnapshotStore(chunk_size=CHUNK), name="bucket")
    shared.go_down()
    async with open_cluster(shared) as cluster:
        cluster.at(8.0, shared.come_back)
        transfer = await joined(cluster)
        assert transfer.outcome is Outcome.INSTALLED
        failed = [r for r in events(cluster, "transfer_failed") if "shared store" in (r.get("reason") or "")]
        assert failed, "the leader reported that it could not publish"
        assert cluster.now() > 8.0


async def test_pull_from_an_s3_bucket(autojump_clock, moto_server, s3_bucket):
    shared = S3SnapshotStore(s3_bucket, "pull/shared", client=s3_client(moto_server.endpoint))
    async with open_cluster(shared) as cluster:
        transfer = await joined(cluster)
        assert (transfer.mode, transfer.outcome) == ("pull", Outcome.INSTALLED)
        [snapshot] = shared.list_snapshots()
        assert snapshot.location.startswith(f"s3://{s3_bucket}/pull/shared/")
        assert snapshot.size == transfer.size


async def test_node_stores_and_the_shared_store_in_one_bucket(autojump_clock, moto_server, s3_bucket):
    options = {"client": s3_client(moto_server.endpoint)}
    mode = Streaming.in_bucket(f"s3://{s3_bucket}/run", pull=True, store_options=options, chunk_size=CHUNK)
    async with Cluster.open(nodes=3, seed=1, snapshot_mode=mode,
                            compaction=CompactionPolicy(every=50, keep_entries=5)) as cluster:
        transfer = await joined(cluster)
        assert transfer.outcome is Outcome.INSTALLED
        assert cluster.store(NEW).url == f"s3://{s3_bucket}/run/node-4"
        assert cluster.store(NEW).has_snapshot(transfer.snapshot_index)
    with pytest.raises(ValueError, match="already holds .* an empty prefix expected"):
        Streaming.in_bucket(f"s3://{s3_bucket}/run", store_options=options)


def location(size=10, chunk=4, checksums=None):
    data = bytes(range(size))
    sums = checksums if checksums is not None else tuple(chunk_checksum(data[i:i + chunk])
                                                         for i in range(0, size, chunk))
    return SnapshotLocation(from_=1, to=2, snapshot_index=5, snapshot_term=1, snapshot_id="s",
                            location="s3://b/p/snapshot-5.bin", total_size=size, chunk_size=chunk,
                            checksums=sums), data


def test_pull_bookkeeping_judges_reads_and_paces_them():
    where, data = location()
    assert PullDownload.check_location(where, size=10, snapshot_id="s") is None
    assert "3 chunk checksums expected" in PullDownload.check_location(
        location(checksums=(1,))[0], size=10, snapshot_id="s")
    assert "the offer said 11" in PullDownload.check_location(where, size=11, snapshot_id="s")
    download = PullDownload(where, read_latency=0.01, read_bandwidth=1000.0)
    assert [download.next_length(offset) for offset in (0, 4, 8)] == [4, 4, 2]
    assert download.check(4, data[4:8]) == (Verdict.ACCEPT, "ok")
    assert download.check(8, data[8:9])[0] is Verdict.REJECT  # short
    verdict, detail = download.check(0, b"\xff" + data[1:4])
    assert verdict is Verdict.REJECT and "checksum" in detail
    assert download.read_time(4, extra=0.5) == pytest.approx(0.01 + 0.004 + 0.5)
    assert [download.failed(1.0) for _ in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    download.succeeded()
    assert download.failures_in_a_row == 0
    assert where.size == 64 + 1 + len(where.location) + 4 * 3


def test_pull_needs_a_store():
    with pytest.raises(TypeError, match="pull must be a SnapshotStore or None"):
        Streaming(pull="s3://bucket")


# ------------------------------------------------------------ scenarios on S3


@pytest.fixture
def s3_environment(monkeypatch, moto_server):
    """Credentials and endpoint the standard way, as ``raftsim run --store s3://...`` finds them."""
    from cloud_servers import S3_KEY_ID, S3_SECRET

    for name, value in {"AWS_ENDPOINT_URL_S3": moto_server.endpoint, "AWS_ACCESS_KEY_ID": S3_KEY_ID,
                        "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("scenario", "pull"), [
    ("node_join", False), ("node_join", True), ("mid_transfer_failure", False), ("mid_transfer_failure", True),
])
def test_scenarios_pass_with_an_s3_store(s3_environment, moto_server, s3_bucket, scenario, pull):
    from simulator import run
    from simulator.scenario import RunOptions, resolve, run_scenario

    options = RunOptions(mode="streaming", store=f"s3://{s3_bucket}/{scenario}", pull=pull,
                         chunk_size=64 * 1024)
    result = run(run_scenario, resolve(scenario), options)
    assert result.ok, (result.violations, result.failed_checks)
    [transfer] = [t for t in result.summary["transfers"] if t["to"] == 4]
    assert (transfer["mode"], transfer["outcome"]) == ("pull" if pull else "streaming", "installed")
    if pull:  # same seed, same options (the same, emptied, prefix): the same trace
        client = s3_client(moto_server.endpoint)
        for item in client.list_objects_v2(Bucket=s3_bucket, Prefix=f"{scenario}/")["Contents"]:
            client.delete_object(Bucket=s3_bucket, Key=item["Key"])
        again = run(run_scenario, resolve(scenario), options)
        assert again.summary["trace_sha256"] == result.summary["trace_sha256"]


# ------------------------------------------------------------ command line


def test_command_line_pull_is_deterministic_across_processes(tmp_path):
    """``raftsim run ... --pull`` twice, in fresh processes with different hash seeds: one trace."""
    import json
    import os
    import subprocess
    import sys

    hashes = []
    for hash_seed in ("1", "2"):
        completed = subprocess.run(
            [sys.executable, "-m", "simulator.cli", "run", "node_join", "--mode", "streaming", "--pull",
             "--chunk-size", "64KiB", "--json"],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        summary = json.loads(completed.stdout)
        assert summary["ok"] and [t["mode"] for t in summary["transfers"] if t["to"] == 4] == ["pull"]
        hashes.append(summary["trace_sha256"])
    assert hashes[0] == hashes[1]


def test_command_line_refuses_a_used_prefix_and_pull_without_streaming(s3_environment, s3_bucket, capsys):
    import io

    from simulator.cli import main

    assert main(["run", "node_join", "--mode", "streaming", "--store", f"s3://{s3_bucket}/cli", "--quiet"],
                out=io.StringIO()) == 0
    for argv, message in [
        (["--mode", "streaming", "--store", f"s3://{s3_bucket}/cli"], "an empty prefix expected"),
        (["--mode", "streaming", "--store", "s3://no-such-bucket/x"], "bucket 'no-such-bucket' does not exist"),
        (["--mode", "embedded", "--pull"], "--pull needs --mode streaming"),
    ]:
        capsys.readouterr()
        assert main(["run", "node_join", *argv], out=io.StringIO()) == 2
        err = capsys.readouterr().err
        assert err.startswith("raftsim: error: ") and message in err and err.count("\n") == 1, err


async def test_the_follower_keeps_pulling_when_its_leader_dies(autojump_clock):
    shared = FaultyStore(MemorySnapshotStore(chunk_size=CHUNK), name="bucket")
    shared.slow_down(0.2)  # seven reads: 1.4 s, long enough to lose the leader half way
    async with open_cluster(shared) as cluster:
        leader = await cluster.wait_for_leader()
        for number in range(100):
            await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch"], bytes([number]) * 200),
                                  timeout=30)
        await cluster.wait_caught_up()
        async with trio_nursery() as nursery:
            nursery.start_soon(lambda: cluster.add_node(timeout=120))
            await cluster.wait_until(
                lambda: any(t.to == NEW and t.bytes_done >= 2 * CHUNK for t in cluster.transfers()),
                timeout=30, what="two chunks pulled")
            cluster.crash(leader)
            crashed_at = cluster.now()
        await cluster.wait_caught_up(timeout=120)
        [installed] = events(cluster, "snapshot_installed", NEW)
        assert installed.time > crashed_at  # the rest was read after the leader was gone
        [transfer] = [t for t in cluster.transfers() if t.to == NEW]
        assert transfer.outcome is Outcome.INSTALLED
        assert transfer.resent_bytes == 0  # it went on from where it was
        assert not [r for r in events(cluster, "pull_started", NEW) if r.get("offset") == 0][1:]
        assert len({cluster.state_machine(n).digest() for n in cluster.node_ids if n != leader}) == 1


def trio_nursery():
    import trio

    return trio.open_nursery()


@pytest.mark.parametrize("action", ["drop", "corrupt", "delay", "cut", "duplicate", "crash_receiver"])
async def test_chunk_faults_apply_to_pulled_chunks(autojump_clock, action):
    shared = FaultyStore(MemorySnapshotStore(chunk_size=CHUNK), name="bucket")
    async with open_cluster(shared) as cluster:
        cluster.fail_chunk(3, action, to=NEW, delay=0.5, restart_after=0.5)
        transfer = await joined(cluster)
        assert (transfer.mode, transfer.outcome) == ("pull", Outcome.INSTALLED)
        assert transfer.resent_bytes <= CHUNK  # resumed from the verified offset
        if action in ("drop", "cut"):  # chunk 3 itself, or the one after it when the stream is cut
            lost_at = 2 * CHUNK if action == "drop" else 3 * CHUNK
            [lost] = events(cluster, "chunk_lost", NEW)
            assert lost.get("offset") == lost_at
            assert [r.get("offset") for r in events(cluster, "transfer_retry", NEW)] == [lost_at]
        if action == "corrupt":
            assert len(events(cluster, "chunk_rejected", NEW)) == 1
        if action == "crash_receiver":
            crashes = [r for r in cluster.trace.of_kind("fault") if r.get("fault") == "chunk_fault_crash"]
            assert [r.get("node_id") for r in crashes] == [NEW]
