"""Counterexamples the 10,000-seed swarm sweep found (issue 21), replayed as they were shrunk.

Each file in ``tests/sweep_findings/`` is the scenario ``raftsim sweep --programs``
wrote for a failing seed, unchanged. In every one a node's store fails to read
its snapshot back when the node restarts, so it comes up without its state and
asks the leader for a snapshot (``simulator.cluster.restart``). They failed in
three ways:

- seeds 3432, 9004: the leader's newest snapshot was the very index the node
  had lost; storage refused to install an index equal to the one it held
  (``SnapshotOutOfDateError`` crashed the run);
- seeds 2067 (and 3432 once that was fixed): the node had acknowledged entries
  past the snapshot before asking; the install dropped them, the leader never
  sent them again, and the cluster stalled;
- seed 8809: a heartbeat moved the waiting node's commit index past the index
  it had asked for, Raft then refused that snapshot, and the node waited for ever.

The Raft-level causes have their own tests (``test_raft_request_snapshot.py``,
``test_storage.py``); these replays check the whole path, store to state machine.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from simulator.cluster.cluster import run
from simulator.scenario import RunOptions, resolve, run_scenario, scenario_defaults

FINDINGS = Path(__file__).parent / "sweep_findings"


def replay(name: str):
    info = resolve(str(FINDINGS / name))
    defaults = scenario_defaults(info)
    clusters = []
    options = RunOptions(seed=defaults["seed"], mode=defaults["mode"], store=defaults["store"])
    result = run(functools.partial(run_scenario, on_cluster=clusters.append), info, options)
    return result, clusters[0].trace


@pytest.mark.parametrize(
    ("seed", "same_index"), [(3432, True), (9004, True), (2067, False), (8809, False)]
)
def test_a_node_that_lost_its_snapshot_gets_it_back_and_the_cluster_settles(seed, same_index):
    result, trace = replay(f"counterexample_programs_streaming_seed{seed}.py")
    assert result.ok, list(result.violations) + list(result.failed_checks)
    lost = trace.of_kind("snapshot_lost")
    recovered = trace.of_kind("snapshot_recovered")
    assert lost and recovered, "the replay no longer exercises a lost snapshot"
    assert {record.node for record in recovered} == {record.node for record in lost}
    if same_index:  # the leader's newest snapshot is the one the node lost
        assert [r.get("index") for r in recovered] == [r.get("lost_index") for r in recovered]


def test_an_install_from_data_the_node_still_held_answers_the_leader():
    # Seed 3432: the node's store still held snapshot 30 (only the read at restart
    # failed); it installed it without a stream, and the leader waited for an answer
    # to its offer until it gave up.
    result, trace = replay("counterexample_programs_streaming_seed3432.py")
    assert result.ok
    unanswered = [r for r in trace.of_kind("transfer_failed") if "never answered" in str(r.get("reason"))]
    assert unanswered == []
    installed_acks = [r for r in trace.records if r.kind == "send" and r.get("type") == "snapshot_ack"
                      and r.get("installed")]
    assert installed_acks


def test_a_damaged_snapshot_is_dropped_and_the_same_index_received_afresh():
    result, trace = replay("damaged_snapshot_same_index.py")
    assert result.ok, list(result.violations) + list(result.failed_checks)
    (lost,) = trace.of_kind("snapshot_lost")
    assert "damaged and was discarded" in lost.get("reason")
    (recovered,) = trace.of_kind("snapshot_recovered")
    assert recovered.get("index") == recovered.get("lost_index") == lost.get("index")
    assert [r for r in trace.of_kind("transfer_started") if r.node == lost.node]  # streamed again
