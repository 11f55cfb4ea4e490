"""``raftsim sweep`` on Dask: a LocalCluster, and a real scheduler with two worker processes.

Each sweep switches on a planted defect (``simulator.raft.defects``), must
report the property it breaks, shrink the fastest-failing seed to a scenario
file on one worker, replay that file on another worker with the same trace
hash, and leave a file that ``raftsim run`` replays with that hash too.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.cli import main as raftsim
from simulator.raft import defects

distributed = pytest.importorskip("distributed")

RESEND = "at most one chunk crossed the wire twice"  # mid_transfer_failure's own check
PROGRAM_RESEND = "a resumed transfer re-sends at most one chunk"  # the program checks' invariant


def _sweep(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = raftsim(["sweep", *argv], out=out)
    return code, out.getvalue()


def _replays_with_hash(path: Path, trace_sha256: str) -> None:
    out = io.StringIO()
    assert raftsim(["run", str(path), "--json"], out=out) == 1  # it still fails...
    summary = json.loads(out.getvalue())
    assert summary["trace_sha256"] == trace_sha256  # ...exactly as it did on the workers


def test_a_local_cluster_sweep_finds_the_planted_defect(tmp_path):
    report_path = tmp_path / "report.json"
    code, text = _sweep(["mid_transfer_failure", "--seeds", "0:4", "--mode", "streaming",
                         "--defect", defects.RESUME_FROM_ZERO, "--workers", "2",
                         "--out", str(tmp_path / "found"), "--json", str(report_path)])
    assert code == 1, text
    report = json.loads(report_path.read_text())
    assert report["runs"] == 4 and report["failing"] == 4 and report["workers"] == 2
    [group] = report["groups"]
    assert group["property"] == RESEND and group["seeds_failing"] == 4
    assert group["still_fails"] and group["hashes_match"]
    assert group["shrunk_on"] != group["replayed_on"]  # two worker processes agree on the trace
    path = Path(group["counterexample"])
    assert f"DEFECTS = ({defects.RESUME_FROM_ZERO!r},)" in path.read_text()
    _replays_with_hash(path, group["trace_sha256"])
    assert report["coverage"]["resumed at chunk k > 0"] == 4
    assert RESEND in text and "coverage goals" in text

    # Without the defect the same seeds pass: the defect, not the scenario, was to blame.
    code, text = _sweep(["mid_transfer_failure", "--seeds", "0:2", "--mode", "streaming", "--workers", "1",
                         "--out", str(tmp_path / "none")])
    assert code == 0, text
    assert not (tmp_path / "none").exists() or not list((tmp_path / "none").iterdir())


def _wait_for(condition, what: str, within: float = 60.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)  # polling a condition, not a timed assertion
    raise AssertionError(f"timed out waiting for {what}")


def _start_scheduler(scheduler_file: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--scheduler-file", str(scheduler_file), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: scheduler_file.exists() and scheduler_file.stat().st_size > 0, "the scheduler")
    return process, json.loads(scheduler_file.read_text())["address"]


@pytest.fixture
def dask_cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, ports chosen by the OS."""
    scheduler_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard"]
    processes = []
    try:
        scheduler, address = _start_scheduler(scheduler_file)
        processes.append(scheduler)
        for _ in range(2):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                 "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1", *common],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_a_sweep_on_a_real_scheduler_with_two_workers_shrinks_a_swarm_failure(tmp_path, dask_cluster):
    report_path = tmp_path / "report.json"
    code, text = _sweep(["--programs", "--seeds", "0:3", "--defect", defects.RESUME_FROM_ZERO,
                         "--scheduler", dask_cluster, "--out", str(tmp_path / "found"),
                         "--json", str(report_path)])
    assert code == 1, text
    report = json.loads(report_path.read_text())
    assert report["workers"] == 2 and report["runs"] == 3
    group = next(group for group in report["groups"] if group["property"] == PROGRAM_RESEND)
    assert group["fastest"]["seed"] == 1
    assert group["still_fails"] and group["hashes_match"]
    assert group["shrunk_on"] != group["replayed_on"]
    assert group["steps_after"] < group["steps_before"]  # shrunk, and still failing the same way
    path = Path(group["counterexample"])
    text = path.read_text()
    assert "Swarm configuration of seed 1" in text and "DEFECTS = ('resume_from_zero',)" in text
    _replays_with_hash(path, group["trace_sha256"])
    assert report["swarm_features"]  # which features the seeds switched on, counted


@pytest.mark.parametrize("argv, says", [
    (["node_join", "--seeds", "5:2"], "--seeds expects 0 <= START < STOP"),
    (["node_join", "--seeds", "many"], "--seeds expects START:STOP"),
    (["--seeds", "0:3"], "nothing to sweep"),
    (["no_such_scenario"], "unknown scenario 'no_such_scenario'"),
    (["node_join", "--defect", "typo"], "unknown defect 'typo'"),
    (["node_join", "--scheduler", "localhost"], "--scheduler expects an address like tcp://HOST:PORT"),
    (["node_join", "--workers", "0"], "--workers must be >= 1"),
    (["node_join", "--max-steps", "0"], "--max-steps must be >= 1"),
    (["partition_during_transfer", "--mode", "embedded"], "runs in streaming mode only"),
])
def test_bad_sweep_input_is_one_line_and_exit_code_2(argv, says, capsys):
    code, _ = _sweep(argv)
    error = capsys.readouterr().err
    assert code == 2
    assert says in error and len(error.strip().splitlines()) == 1, error


def test_the_sweep_speed_benchmark_at_smoke_size(tmp_path):
    output = tmp_path / "sweep_speed.json"
    benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
    completed = subprocess.run([sys.executable, str(benchmarks / "sweep_speed.py"), "--seeds", "3",
                                "--json", str(output)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(output.read_text())["results"]
    baseline, *others = results["variants"]
    assert baseline["ratio"] == 1.0 and [row["name"] for row in others] == [
        "LocalCluster, 1 worker", "LocalCluster, 2 workers"]
    for row in results["variants"]:
        assert row["seeds_per_minute"] == pytest.approx(60 * 3 / row["seconds"])
        assert row["ratio"] == pytest.approx(row["seeds_per_minute"] / baseline["seeds_per_minute"])
        assert row["seeds_per_cpu_minute"] == pytest.approx(60 * 3 / row["run_cpu_seconds"])
    assert len(results["load"]["before"]) == 3


def test_an_unreachable_scheduler_is_one_line_and_exit_code_2(capsys):
    with socket.socket() as probe:  # a port nobody listens on: bound, then closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _ = _sweep(["node_join", "--seeds", "0:2", "--scheduler", f"tcp://127.0.0.1:{port}"])
    error = capsys.readouterr().err
    assert code == 2
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in error
    assert len(error.strip().splitlines()) == 1, error


def test_a_scheduler_without_workers_is_one_line_and_exit_code_2(tmp_path, capsys, monkeypatch):
    from simulator.explore import sweep

    monkeypatch.setattr(sweep, "WORKER_WAIT", 1.0)
    scheduler, address = _start_scheduler(tmp_path / "scheduler.json")
    try:
        code, _ = _sweep(["node_join", "--seeds", "0:2", "--scheduler", address])
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
    error = capsys.readouterr().err
    assert code == 2
    assert f"the Dask scheduler at {address} has no workers" in error and len(error.strip().splitlines()) == 1
