"""The wire contract shipped in the wheel: transports/grpc/proto/*.proto.

Two promises: the committed generated code is exactly what grpcio-tools
makes from the .proto files (so nobody edits one without the other), and a
client built from the shipped .proto files alone, with no raftsim code on
its path, fetches a snapshot from a running node and checks its digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
from grpc_tools import protoc
from test_grpc_harness import Cluster

import transports.grpc.proto as shipped
from simulator import KeyValueStore
from transports.grpc.proto import control_pb2

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = Path(shipped.__file__).parent
PROTOS = sorted(PROTO_DIR.glob("*.proto"))


def test_the_protos_are_shipped_and_declare_the_seeds_messages():
    assert [p.name for p in PROTOS] == ["control.proto", "raft.proto", "snapshot.proto"]
    text = (PROTO_DIR / "snapshot.proto").read_text()
    assert "package raftsim.v1;" in text
    assert "rpc TransferSnapshot(SnapshotRequest) returns (stream SnapshotChunk);" in text
    from transports.grpc.proto import snapshot_pb2

    fields = {m: {f.name: f.number for f in getattr(snapshot_pb2, m).DESCRIPTOR.fields}
              for m in ("SnapshotRequest", "SnapshotChunk")}
    assert {"snapshot_index": 1, "snapshot_term": 2, "offset": 3}.items() <= fields["SnapshotRequest"].items()
    assert {"data": 1, "offset": 2, "total_size": 3, "is_final": 4}.items() <= fields["SnapshotChunk"].items()


def test_regenerating_the_python_code_changes_nothing(tmp_path):
    relative = [str(p.relative_to(REPO_ROOT)) for p in PROTOS]
    status = protoc.main(["protoc", f"-I{REPO_ROOT}", f"-I{Path(protoc.__file__).parent / '_proto'}",
                          f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
                          *relative])
    assert status == 0
    generated = sorted(tmp_path.rglob("*_pb2*.py*"))
    assert len(generated) == 9
    for path in generated:
        committed = REPO_ROOT / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed.relative_to(REPO_ROOT)} differs from what grpcio-tools generates; regenerate it with "
            "python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. "
            "transports/grpc/proto/*.proto")


CONTRACT_CLIENT = r'''
import hashlib, json, sys, zlib
import crc32c, grpc
import control_pb2, control_pb2_grpc, snapshot_pb2, snapshot_pb2_grpc

address, offset = sys.argv[1], int(sys.argv[2])
channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)])
status = control_pb2_grpc.ControlStub(channel).Status(control_pb2.StatusRequest(), timeout=30)
stub = snapshot_pb2_grpc.SnapshotTransferStub(channel)
request = snapshot_pb2.SnapshotRequest(snapshot_index=status.snapshot_index, snapshot_term=0, offset=offset)
data, chunks, final, total = bytearray(), 0, False, None
for chunk in stub.TransferSnapshot(request, timeout=60):
    assert chunk.offset == offset + len(data), (chunk.offset, offset + len(data))
    check = {0: zlib.crc32, 1: zlib.crc32, 2: crc32c.crc32c}[chunk.checksum_version]
    assert check(chunk.data) == chunk.checksum, chunk.checksum_version
    data += chunk.data
    chunks, final, total, digest = chunks + 1, chunk.is_final, chunk.total_size, chunk.digest
try:
    list(stub.TransferSnapshot(snapshot_pb2.SnapshotRequest(snapshot_index=10**9), timeout=30))
    missing = "served"
except grpc.RpcError as error:
    missing = error.code().name + ": " + error.details()
print(json.dumps({"index": status.snapshot_index, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                  "total": total, "final": final, "chunks": chunks, "digest": digest, "missing": missing}))
'''


@pytest.fixture
def contract_client(tmp_path):
    """The shipped .proto files compiled into a folder with nothing else: a stranger's client."""
    out = tmp_path / "client"
    out.mkdir()
    status = protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{Path(protoc.__file__).parent / '_proto'}",
                          f"--python_out={out}", f"--grpc_python_out={out}", *[p.name for p in PROTOS]])
    assert status == 0
    (out / "client.py").write_text(CONTRACT_CLIENT)

    def fetch(address: str, offset: int = 0) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "grpc_proxy", "http_proxy")}
        result = subprocess.run([sys.executable, str(out / "client.py"), address, str(offset)], cwd=out, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return fetch


def test_a_client_built_from_the_shipped_protos_fetches_a_snapshot(tmp_path, contract_client):
    cluster = Cluster(tmp_path / "run", size=1, extra=("--chunk-size", "64KiB")).start()
    try:
        cluster.leader()
        expected = KeyValueStore()
        for number in range(6):
            key, value = f"key-{number}", bytes([number]) * 100_000
            reply = cluster.client.propose(KeyValueStore.put(key, value))
            assert reply.ok
            expected.apply(reply.index, KeyValueStore.put(key, value))
        compacted = cluster.client.stub(cluster.addresses[1]).Compact(control_pb2.CompactRequest())
        expected.applied_index = compacted.snapshot_index
        snapshot_bytes = expected.create_snapshot(compacted.snapshot_index)

        whole = contract_client(cluster.addresses[1])
        assert whole["index"] == compacted.snapshot_index
        assert whole["sha256"] == hashlib.sha256(snapshot_bytes).hexdigest()
        assert whole["digest"] == "blake3:" + blake3.blake3(snapshot_bytes).hexdigest()  # the name travels with it
        assert whole["size"] == whole["total"] == len(snapshot_bytes) and whole["final"]
        assert whole["chunks"] == -(-len(snapshot_bytes) // 65536)
        assert whole["missing"].startswith("NOT_FOUND: snapshot index 1000000000")

        resumed = contract_client(cluster.addresses[1], offset=100_000)
        assert resumed["sha256"] == hashlib.sha256(snapshot_bytes[100_000:]).hexdigest()
    finally:
        cluster.close()
