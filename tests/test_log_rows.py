"""Each node's log as the trace tells it (simulator.observe.logs) equals its real storage.

For every native scenario in each of its modes, the log reconstructed from
the trace alone (entry terms, snapshot boundary, commit index) is compared
with what each node's storage holds when the run ends; the same holds for
the JSONL file of the run, so a replayed page shows the same logs.
"""

from __future__ import annotations

import functools

import pytest

from simulator.cluster.cluster import run
from simulator.observe.logs import log_changes, logs_at, replay
from simulator.observe.trace import read_jsonl
from simulator.scenario import find_scenarios, load_module, resolve, run_scenario, scenario_defaults
from simulator.scenario.script import RunOptions


def _cases():
    for info in find_scenarios():
        module = load_module(info.path)
        if "native" not in getattr(module, "ENGINES", ("native",)):
            continue
        for mode in getattr(module, "MODES", ("embedded", "streaming")):
            yield info.name, mode


def _run(name: str, mode: str, trace_path=None):
    info = resolve(name)
    defaults = scenario_defaults(info)
    options = RunOptions(seed=0, mode=mode, store=defaults.get("store") or "memory")
    clusters = []
    story = functools.partial(run_scenario, on_cluster=clusters.append, trace_path=trace_path)
    result = run(story, info, options)
    return clusters[0], result


@pytest.mark.parametrize(("name", "mode"), list(_cases()))
def test_trace_tells_each_nodes_log_as_its_storage_holds_it(name, mode, tmp_path):
    cluster, _ = _run(name, mode, tmp_path / "run.jsonl")
    told = logs_at(cluster.trace.records)
    for node in cluster.node_ids:
        storage = cluster.storage(node)
        log = told[node]
        first, last = storage.first_index(), storage.last_index()
        assert log.last_index == last, f"n{node}: last index {log.last_index}, storage {last}"
        assert log.snapshot_index <= first - 1
        real = [storage.term(index) for index in range(first, last + 1)]
        assert [log.term(index) for index in range(first, last + 1)] == real, f"n{node} entry terms"
        assert log.commit == storage.hard_state.commit, f"n{node} commit"
    assert logs_at(read_jsonl(tmp_path / "run.jsonl")) == told


def test_logs_at_a_time_before_the_end_is_the_replay_up_to_then():
    cluster, _ = _run("leader_change_during_transfer", "streaming")
    records = cluster.trace.records
    changes = log_changes(records)
    leader_change = next(r.time for r in records if r.kind == "role" and r.get("term") == 2
                         and r.get("role") == "leader")
    before = logs_at(records, leader_change - 1e-9)
    after = logs_at(records, leader_change)
    assert all(2 not in log.terms for log in before.values())
    assert any(log.terms and log.terms[-1] == 2 for log in after.values())  # the new leader's empty entry
    assert replay(changes) == logs_at(records)
