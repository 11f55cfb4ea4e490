"""``raftsim run SCENARIO --transport grpc``: the stories on node processes on 127.0.0.1.

Each run starts real ``python -m transports.grpc.node`` processes with ports
picked at run time and a fault proxy in front of every link; every wait in
the runs is on a condition the nodes report, with deadlines stretched for a
loaded machine. The slow ones (a restart that waits for the leader to offer
again, several hundred proposals) are marked ``slow``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("grpc")

from simulator.cli.main import main

MIB = 1024 * 1024


def _run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["run", *args, "--transport", "grpc"], out=out)
    return code, out.getvalue()


def _run_json(*args: str) -> dict:
    code, text = _run(*args, "--json")
    summary = json.loads(text)
    assert code == 0, summary.get("failed_checks")
    return summary


def _simulated_keys(scenario: str, *args: str) -> set[str]:
    out = io.StringIO()
    assert main(["run", scenario, *args, "--json"], out=out) == 0
    return set(json.loads(out.getvalue()))


def _same_state(summary: dict) -> None:
    nodes = summary["nodes"]
    assert all(node["up"] for node in nodes)
    assert len({node["state_digest"] for node in nodes}) == 1
    assert nodes[0]["state_digest"].startswith("blake3:")


def test_basic_crash_is_kill_9_and_restart_continues_from_disk() -> None:
    summary = _run_json("basic")
    assert summary["transport"] == "grpc" and summary["clock"] == "wall" and summary["deterministic"] is False
    assert _simulated_keys("basic") <= set(summary), "the simulator's summary keys, all of them"
    _same_state(summary)
    # The crashed leader came back on its data directory: it holds every command, it did not start empty.
    assert min(node["applied"] for node in summary["nodes"]) >= 11


def test_text_output_says_plainly_it_is_not_deterministic() -> None:
    code, text = _run("basic", "--quiet")
    assert code == 0
    assert "NOT deterministic" in text.splitlines()[0]
    assert "wall seconds (not deterministic)" in text


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["embedded", "streaming"])
def test_node_join_catches_up_by_snapshot_over_grpc(mode: str) -> None:
    summary = _run_json("node_join", "--mode", mode)
    [transfer] = summary["transfers"]
    assert (transfer["to"], transfer["mode"], transfer["outcome"]) == (4, mode, "installed")
    assert transfer["bytes_sent"] >= transfer["size"] > 300 * 1024
    _same_state(summary)


def test_large_snapshot_streams_between_processes() -> None:
    summary = _run_json("large_snapshot", "--mode", "streaming")
    [transfer] = summary["transfers"]
    assert transfer["outcome"] == "installed" and transfer["size"] > 7 * MIB
    assert transfer["resent_bytes"] == 0
    _same_state(summary)


def test_mid_transfer_cut_resumes_from_the_verified_offset() -> None:
    summary = _run_json("mid_transfer_failure", "--param", "k=2")
    [transfer] = summary["transfers"]
    assert transfer["outcome"] == "installed"
    assert transfer["retries"] == 1 and 0 < transfer["resent_bytes"] <= MIB
    assert transfer["bytes_sent"] <= transfer["size"] + MIB
    assert any(link["cuts"] for link in summary["links"]), "the proxy closed live connections"
    _same_state(summary)


@pytest.mark.slow
def test_receiver_killed_mid_transfer_resumes_from_its_disk() -> None:
    summary = _run_json("follower_restart_disk")
    [transfer] = summary["transfers"]
    assert transfer["outcome"] == "installed" and 0 < transfer["resent_bytes"] <= MIB
    _same_state(summary)


def test_isolate_and_heal_through_the_proxy(tmp_path) -> None:
    story = tmp_path / "isolation.py"
    story.write_text(textwrap.dedent('''
        """Isolation over gRPC: the leader is cut off, the others elect, the network heals."""
        from simulator import WorkflowExecutor

        NETWORKS = ("simulated", "grpc")

        async def scenario(sim):
            cluster = sim.cluster
            old = await cluster.wait_for_leader()
            await cluster.propose(WorkflowExecutor.start("before", ["a"]))
            cluster.isolate(old)
            await cluster.wait_until(lambda: cluster.leader_id() not in (None, old), timeout=30,
                                     what="a leader among the connected majority")
            await cluster.propose(WorkflowExecutor.start("during", ["b"]))
            sim.check(cluster.proxy.table.link(old, cluster.leader_id()).refused > 0
                      or cluster.proxy.table.link(cluster.leader_id(), old).refused > 0,
                      "the proxy refused connections across the cut")
            cluster.heal()
            await cluster.check_liveness(within=30)
            sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
                      f"n{old} caught up once the network healed")
    '''))
    summary = _run_json(str(story))
    _same_state(summary)
    assert summary["failed_checks"] == []


def test_a_scenario_that_did_not_opt_in_is_refused_in_one_line(capsys) -> None:
    code = main(["run", "compaction_race", "--transport", "grpc"], out=io.StringIO())
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "runs on the simulated network only" in error


def test_the_simulator_runs_without_grpc_installed() -> None:
    # A finder that refuses grpc stands for an install without the extra.
    program = textwrap.dedent('''
        import importlib.abc, io, sys
        class NoGrpc(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "grpc" or name.startswith(("grpc.", "google.protobuf")):
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, NoGrpc())
        import simulator.realnet, transports.proxy
        from simulator.cli.main import main
        assert main(["run", "basic", "--json"], out=io.StringIO()) == 0
        sys.exit(main(["run", "basic", "--transport", "grpc"], out=io.StringIO()))
    ''')
    done = subprocess.run([sys.executable, "-c", program], check=False, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    assert "needs the grpc extra" in done.stderr and "Traceback" not in done.stderr
