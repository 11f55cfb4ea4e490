"""The gRPC node's sqlite Raft log refuses a damaged database by name (issue 22, disk faults).

What sqlite (WAL, synchronous=FULL) detects of each disk fault is in
``docs/disk_faults.md``; these are the cheap ones to test: a file that is not a
database, a database whose pages are broken, rows raftsim did not write.
Each is one error naming the file, and the node command turns it into one
line and exit code 2, never a traceback.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from test_grpc_harness import free_port

from simulator.raft import ConfState, Entry, HardState
from simulator.snapshots import DiskSnapshotStore
from transports.grpc import SqliteRaftStorage
from transports.grpc.storage import RaftLogCorruptError

VOTERS = ConfState(voters=(1, 2, 3))


def _open(tmp_path):
    return SqliteRaftStorage.open(tmp_path / "raft.sqlite3", DiskSnapshotStore(tmp_path / "snapshots"), VOTERS)


def _written(tmp_path) -> None:
    storage = _open(tmp_path)
    with storage.ready_batch():
        storage.append([Entry(1, index, b"x" * 3000) for index in range(1, 60)])
        storage.set_hard_state(HardState(term=1, vote=1, commit=50))
    storage.close()


def test_a_file_that_is_not_a_database_is_refused_by_name(tmp_path):
    (tmp_path / "raft.sqlite3").write_bytes(b"these bytes were never a database" * 200)
    with pytest.raises(RaftLogCorruptError, match=r"raft\.sqlite3: cannot read the Raft log database"):
        _open(tmp_path)


def test_a_database_with_a_broken_page_is_refused_by_name(tmp_path):
    _written(tmp_path)
    path = tmp_path / "raft.sqlite3"
    raw = bytearray(path.read_bytes())
    page = int.from_bytes(raw[16:18], "big")
    # The root page of the entries table is page 3 or later; scribble over the page headers
    # after the first (the b-tree structure quick_check walks).
    for start in range(page, len(raw), page):
        raw[start:start + 12] = b"\xff" * 12
    path.write_bytes(bytes(raw))
    with pytest.raises(RaftLogCorruptError, match=r"raft\.sqlite3: .*(damaged|cannot read)"):
        _open(tmp_path)


def test_rows_raftsim_did_not_write_are_refused_by_name(tmp_path):
    _written(tmp_path)
    db = sqlite3.connect(tmp_path / "raft.sqlite3")
    db.execute("UPDATE meta SET value = 'not json' WHERE key = 'hard_state'")
    db.commit()
    db.close()
    with pytest.raises(RaftLogCorruptError, match="holds rows raftsim did not write"):
        _open(tmp_path)


def test_a_healthy_database_still_opens(tmp_path):
    _written(tmp_path)
    assert _open(tmp_path).initial_state().hard_state == HardState(term=1, vote=1, commit=50)


def test_the_node_command_says_one_line_and_exits_2(tmp_path):
    data = tmp_path / "node-1"
    data.mkdir()
    (data / "raft.sqlite3").write_bytes(b"not a database" * 500)
    address = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "node", "--id", "1", "--listen", address,
         "--peers", f"1={address}", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "raftsim node:" in line]
    assert len(lines) == 1 and "raft.sqlite3" in lines[0] and "Raft log database" in lines[0]
