"""Node processes on loopback over gRPC: the seed's integration tests, for real, and the faults.

Every node is a ``python -m transports.grpc.node`` process with a port
picked free at run time; tests wait on conditions read through the control
service, with generous deadlines, never on fixed sleeps. The two seed tests
and the durability test move 100 MB or restart nodes and are marked
``slow`` (deselect with ``-m "not slow"``).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading

import grpc
import pytest
from cloud_servers import S3_KEY_ID, S3_SECRET, moto_server, s3_bucket, s3_client  # noqa: F401 - fixtures
from test_grpc_harness import (
    MIB,
    REPO_ROOT,
    Cluster,
    Proxy,
    free_port,
    load_state,
    wait_until,
)

from simulator import KeyValueStore
from transports.grpc import ClusterUnavailableError
from transports.grpc.proto import control_pb2, raft_pb2, snapshot_pb2, snapshot_pb2_grpc

#: The seed's size: a snapshot of 100 MB and more.
SEED_STATE_BYTES = 100 * MIB + 1
CHUNK = MIB
#: The window the resume tests run with: small beside the snapshot, so that "a cut re-sends at
#: most one chunk per chunk in flight" can fail (the node's default window, 64 chunks or 64 MiB,
#: is larger than the 40 MiB snapshot of the leader-change test).
CHUNKS_IN_FLIGHT = 4
SMALL_WINDOW = ("--chunks-in-flight", str(CHUNKS_IN_FLIGHT))


@pytest.fixture
def cluster_factory(tmp_path):
    made = []

    def make(size=3, **options) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster-{len(made)}", size, **options).start()
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


def compact_all(cluster: Cluster) -> int:
    """Compact every node once all of them applied the leader's commit: on a loaded machine a
    follower may lag by an entry, and its snapshot would then be a different one."""
    commit = cluster.status(cluster.leader()).commit
    wait_until(lambda: all(cluster.status(i).applied >= commit for i in sorted(cluster.addresses)),
               "every node to apply what the leader committed")
    indexes = [cluster.client.stub(cluster.addresses[i]).Compact(control_pb2.CompactRequest()).snapshot_index
               for i in sorted(cluster.addresses)]
    return min(indexes)


def caught_up(cluster: Cluster, node_id: int) -> bool:
    leader = cluster.status(cluster.leader())
    return cluster.status(node_id).applied >= leader.commit


def assert_same_state(cluster: Cluster, node_ids) -> None:
    digests = {i: cluster.status(i, with_digest=True).state_digest for i in node_ids}
    assert len(set(digests.values())) == 1, digests


def incoming(status):
    pulls = [t for t in status.transfers if t.incoming]
    return pulls[-1] if pulls else None


@pytest.mark.slow
def test_snapshot_transfer_over_grpc(cluster_factory):
    """Three node processes, a 100 MB+ state, a fourth node joins and catches up by streaming."""
    cluster = cluster_factory(3)
    cluster.leader()
    load_state(cluster, SEED_STATE_BYTES)
    snapshot_index = compact_all(cluster)

    joiner = cluster.add_process(4)
    reply = cluster.client.add_node(4, joiner.address, as_learner=True)
    assert reply.ok, reply
    wait_until(lambda: caught_up(cluster, 4), "node 4 catches up", timeout=300)

    status = cluster.status(4)
    assert status.snapshot_index >= snapshot_index
    pull = incoming(status)
    assert pull.outcome == "installed" and pull.size > 100 * MIB and pull.verified_offset == pull.size
    leader = cluster.status(cluster.leader())
    sent = [t for t in leader.transfers if t.peer == 4 and not t.incoming]
    assert sent and sent[-1].bytes_sent == sent[-1].size and sent[-1].resent_bytes == 0
    assert_same_state(cluster, [1, 2, 3, 4])

    promoted = cluster.client.add_node(4, joiner.address, as_learner=False)
    assert promoted.ok and 4 in promoted.voters


@pytest.mark.slow
def test_snapshot_transfer_resumability(cluster_factory):
    """The stream is cut and the receiver killed with -9 mid-transfer; it resumes from its offset."""
    cluster = cluster_factory(3, extra=SMALL_WINDOW)
    cluster.leader()
    load_state(cluster, SEED_STATE_BYTES)
    compact_all(cluster)

    # Node 4 reaches the others only through proxies that the test cuts and holds.
    proxies = {i: Proxy(address) for i, address in cluster.addresses.items()}
    try:
        for proxy in proxies.values():
            proxy.hold_after(24 * MIB)  # the transfer cannot finish before the test lets it
        joiner = cluster.add_process(4, peers={i: p.address for i, p in proxies.items()})
        assert cluster.client.add_node(4, joiner.address, as_learner=True).ok
        leader = cluster.leader()

        wait_until(lambda: (incoming(cluster.status(4)) or False) and
                   incoming(cluster.status(4)).verified_offset >= 16 * MIB, "16 MiB verified")
        # Held mid-stream (node 4 waits inside a call for the next chunk), then cut.
        wait_until(lambda: proxies[leader].budget == 0, "the proxy to hold the stream")
        proxies[leader].cut()
        wait_until(lambda: cluster.status(4).counters["stream cut"], "node 4 to notice the cut")
        for proxy in proxies.values():
            proxy.hold_after(16 * MIB)
        verified = wait_until(lambda: (incoming(cluster.status(4)).verified_offset >= 32 * MIB
                                       and incoming(cluster.status(4)).verified_offset), "32 MiB verified")
        assert verified < 40 * MIB  # still mid-transfer: the proxy holds the rest
        joiner.kill9()

        joiner.start()  # the same data directory: its partial snapshot is there
        for proxy in proxies.values():
            proxy.hold_after(None)
        wait_until(lambda: caught_up(cluster, 4), "node 4 catches up after its restart", timeout=300)
    finally:
        for proxy in proxies.values():
            proxy.close()

    pull = incoming(cluster.status(4))
    assert pull.outcome == "installed" and pull.resumed_from >= verified, (pull, verified)
    assert "transfer resumed" in joiner.log()
    sent = [t for t in cluster.status(cluster.leader()).transfers if t.peer == 4 and not t.incoming][-1]
    # Each resumption re-sends at most one chunk per chunk in flight; nothing else is sent twice.
    assert sent.resumptions >= 1
    assert sent.largest_resend <= CHUNKS_IN_FLIGHT * CHUNK, sent
    assert sent.resent_bytes <= sent.resumptions * CHUNKS_IN_FLIGHT * CHUNK, sent
    assert sent.bytes_sent == sent.size + sent.resent_bytes
    assert_same_state(cluster, [cluster.leader(), 4])


@pytest.mark.slow
def test_a_new_leader_with_the_same_snapshot_continues_the_transfer(cluster_factory):
    """The sender (the leader) is killed with -9 mid-transfer; the next leader holds the same
    snapshot (same id: same state at the same index) and the receiver continues from its offset."""
    cluster = cluster_factory(3, extra=SMALL_WINDOW)
    cluster.leader()
    load_state(cluster, 40 * MIB)
    compact_all(cluster)
    # The premise: every node holds the same snapshot, so the next leader can continue the transfer.
    assert len({cluster.status(i).snapshot_index for i in (1, 2, 3)}) == 1
    proxies = {i: Proxy(address) for i, address in cluster.addresses.items()}
    try:
        for proxy in proxies.values():
            proxy.hold_after(16 * MIB)
        joiner = cluster.add_process(4, peers={i: p.address for i, p in proxies.items()})
        assert cluster.client.add_node(4, joiner.address, as_learner=True).ok
        old_leader = cluster.leader()
        wait_until(lambda: proxies[old_leader].budget == 0, "the proxy to hold the stream")
        verified = incoming(cluster.status(4)).verified_offset
        assert 0 < verified <= 16 * MIB
        cluster.nodes[old_leader].kill9()
        for proxy in proxies.values():
            proxy.hold_after(None)
        wait_until(lambda: caught_up(cluster, 4), "node 4 catches up from the new leader", timeout=300)
        new_leader = cluster.leader()
    finally:
        for proxy in proxies.values():
            proxy.close()
    assert new_leader != old_leader
    pull = incoming(cluster.status(4))
    assert pull.outcome == "installed" and pull.peer == new_leader and pull.resumed_from == 0  # same process
    sent = [t for t in cluster.status(new_leader).transfers if t.peer == 4 and not t.incoming][-1]
    assert sent.bytes_sent <= sent.size - verified + CHUNKS_IN_FLIGHT * CHUNK, (sent, verified)
    survivors = [i for i in (1, 2, 3) if i != old_leader]
    assert_same_state(cluster, survivors + [4])


@pytest.mark.slow
def test_no_acknowledged_write_is_lost_when_each_node_is_killed_in_turn(cluster_factory):
    cluster = cluster_factory(3, extra=("--compact-every", "25"))
    cluster.leader()
    acknowledged: dict[str, bytes] = {}
    stop = threading.Event()

    def write() -> None:
        number = 0
        while not stop.is_set():
            key, value = f"w{number:05d}", f"value {number}".encode() * 10
            number += 1
            try:
                if cluster.client.propose(KeyValueStore.put(key, value)).ok:
                    acknowledged[key] = value
            except (ClusterUnavailableError, grpc.RpcError):
                pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        for victim in (1, 2, 3):
            before = len(acknowledged)
            wait_until(lambda n=before: len(acknowledged) >= n + 20, f"writes before killing node {victim}")
            cluster.nodes[victim].kill9()
            during = len(acknowledged)
            wait_until(lambda n=during: len(acknowledged) >= n + 20, f"writes while node {victim} is down")
            cluster.nodes[victim].start()
            wait_until(lambda v=victim: caught_up(cluster, v), f"node {victim} catches up after kill -9")
    finally:
        stop.set()
        writer.join(timeout=120)
    assert len(acknowledged) >= 120
    for key, value in sorted(acknowledged.items()):
        assert cluster.client.get(key) == value, key
    wait_until(lambda: all(caught_up(cluster, i) for i in (1, 2, 3)), "every node caught up")
    assert_same_state(cluster, [1, 2, 3])


def test_embedded_snapshots_catch_up_a_new_node(cluster_factory):
    cluster = cluster_factory(3, mode="embedded")
    cluster.leader()
    load_state(cluster, 3 * MIB, value_bytes=256 * 1024)
    compact_all(cluster)
    joiner = cluster.add_process(4)
    assert cluster.client.add_node(4, joiner.address, as_learner=True).ok
    wait_until(lambda: caught_up(cluster, 4), "node 4 catches up")
    assert "snapshot installed: snapshot" in joiner.log() and "embedded" in joiner.log()
    assert incoming(cluster.status(4)) is None  # nothing was streamed
    assert_same_state(cluster, [1, 2, 3, 4])
    removed = cluster.client.remove_node(4)
    assert removed.ok and 4 not in removed.learners and list(removed.voters) == [1, 2, 3]


def test_streaming_between_s3_stores(cluster_factory, moto_server, s3_bucket):
    """--store s3://bucket/prefix: each node keeps its snapshots under prefix/node-N in the bucket."""
    env = {"AWS_ENDPOINT_URL": moto_server.endpoint, "AWS_ACCESS_KEY_ID": S3_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1"}
    cluster = cluster_factory(3, extra=("--store", f"s3://{s3_bucket}/run", "--chunk-size", "256KiB"), env=env)
    cluster.leader()
    load_state(cluster, 2 * MIB, value_bytes=256 * 1024)
    compact_all(cluster)
    joiner = cluster.add_process(4)
    assert cluster.client.add_node(4, joiner.address, as_learner=True).ok
    wait_until(lambda: caught_up(cluster, 4), "node 4 catches up")
    pull = incoming(cluster.status(4))
    assert pull.outcome == "installed" and pull.verified_offset == pull.size > 2 * MIB
    keys = [o["Key"] for o in s3_client(moto_server.endpoint).list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(key.startswith("run/node-4/") for key in keys)
    assert_same_state(cluster, [1, 2, 3, 4])


def test_an_unreachable_peer_is_one_line_per_outage_and_every_failure_counted(tmp_path):
    cluster = Cluster(tmp_path / "run", 3)
    try:
        for node_id in (1, 2):  # node 3 never starts
            cluster.nodes[node_id].start()
        leader = cluster.leader()
        wait_until(lambda: cluster.status(leader).counters["peer unreachable"] >= 5, "repeated failed sends")
        lines = [line for line in cluster.nodes[leader].log().splitlines()
                 if "peer unreachable: node 3" in line]
        assert len(lines) == 1, lines
        cluster.nodes[3].start()
        wait_until(lambda: "peer reachable: node 3" in cluster.nodes[leader].log(), "node 3 reachable again")
        wait_until(lambda: caught_up(cluster, 3), "node 3 catches up")
    finally:
        cluster.close()


def _raw_send(address: str, payload: bytes):
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary("/raftsim.v1.RaftTransport/Send")  # bytes in, bytes out
        return raft_pb2.SendReply.FromString(call(payload, timeout=30))


def test_garbage_and_old_protocol_peers_never_crash_a_node(cluster_factory):
    cluster = cluster_factory(1)
    cluster.leader()
    address = cluster.addresses[1]
    host, port = address.split(":")
    with socket.create_connection((host, int(port))) as raw:  # not even HTTP/2
        raw.sendall(b"\x00\xffGET / HTTP/1.0\r\n\r\n" + bytes(range(256)) * 16)
    assert _raw_send(address, b"\xff\xfe garbage \x00").refused == 1

    old = raft_pb2.MessageBatch(messages=[raft_pb2.Message(msg_type=42, to=1, term=1)])  # a type we never had
    assert _raw_send(address, old.SerializeToString()).refused == 1
    term = cluster.status(1).term  # a heartbeat of the current term: a leader ignores it
    heartbeat = raft_pb2.MessageBatch(messages=[raft_pb2.Message(msg_type=raft_pb2.HEARTBEAT, to=1, term=term)])
    setattr(heartbeat.messages[0], "from", 2)
    newer = heartbeat.SerializeToString() + bytes([0xFA, 0x06, 3]) + b"new"  # field 111, unknown to us
    assert _raw_send(address, newer).accepted == 1

    status = cluster.status(1)
    assert status.counters["garbage from peer"] == 2
    assert status.role == "leader"  # still serving, still leading
    log = cluster.nodes[1].log()
    assert "garbage from peer" in log and "msg_type 42 is not a network message type" in log
    assert "Traceback" not in log

    stub = snapshot_pb2_grpc.SnapshotTransferStub(grpc.insecure_channel(address))
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.TransferSnapshot(snapshot_pb2.SnapshotRequest(snapshot_index=999, offset=5), timeout=30))
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND and "held: none" in refused.value.details()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_node_shuts_down_cleanly_on_a_signal(cluster_factory, sig):
    cluster = cluster_factory(1)
    cluster.leader()
    assert cluster.client.propose(KeyValueStore.put("kept", b"yes")).ok
    node = cluster.nodes[1]
    assert node.stop(sig) == 0
    log = node.log()
    assert f"got {sig.name}: shutting down" in log and "stopping" in log and "Traceback" not in log
    node.start()  # and it comes back with what it had
    cluster.leader()
    assert cluster.client.get("kept") == b"yes"


def _run_node(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "transports.grpc.node", *flags], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_a_port_in_use_is_one_line_and_exit_code_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = _run_node("--id", "1", "--listen", address, "--peers", f"1={address}",
                           "--data-dir", str(tmp_path / "n1"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"raftsim node: port in use: cannot listen on {address}: Address already in use"]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--peers", "1=localhost"), "address must be HOST:PORT"),
        (("--peers", "x=127.0.0.1:1"), "peers must be ID=HOST:PORT"),
        (("--chunk-size", "-4"), "a positive size such as 65536"),
        (("--store", "ftp://x"), "--store must be disk, s3://bucket/prefix or gs://bucket/prefix"),
        (("--state-machine", "nowhere:Thing"), "--state-machine nowhere:Thing: cannot import it"),
        (("--id", "0"), "--id must be >= 1, got 0"),
        (("--mode", "carrier-pigeon"), "argument --mode: invalid choice: 'carrier-pigeon'"),
    ],
)
def test_bad_flags_are_named_with_exit_code_2(tmp_path, flags, expected):
    address = f"127.0.0.1:{free_port()}"
    base = {"--id": "1", "--listen": address, "--peers": f"1={address}", "--data-dir": str(tmp_path / "n1")}
    base.update(dict(zip(flags[::2], flags[1::2])))
    result = _run_node(*[item for pair in base.items() for item in pair])
    assert result.returncode == 2
    [line] = result.stderr.splitlines()  # one line, no usage dump, no traceback
    assert expected in line
