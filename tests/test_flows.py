"""Snapshot transfers as the trace tells them (simulator.observe.flows).

A run's summary reads the transfers from only the events ``transfers()``
looks at (``TRANSFER_KINDS``); that must give exactly the tracks that reading
every record gives, for scenarios with cuts, retries, resumes, a change of
leader and lost embedded messages (``TRANSFER_KINDS`` missing a kind that
``transfers()`` reads would show here as different tracks).
"""

from __future__ import annotations

import functools

import attrs
import pytest

from simulator.cluster.cluster import run
from simulator.observe.flows import TRANSFER_KINDS, transfers
from simulator.scenario import resolve, run_scenario, scenario_defaults
from simulator.scenario.script import RunOptions


def _trace(name: str, mode: str):
    info = resolve(name)
    options = RunOptions(seed=0, mode=mode, store=scenario_defaults(info).get("store") or "memory")
    clusters = []
    run(functools.partial(run_scenario, on_cluster=clusters.append), info, options)
    return clusters[0].trace


@pytest.mark.parametrize(("name", "mode"), [
    ("mid_transfer_failure", "streaming"),
    ("leader_change_during_transfer", "streaming"),
    ("flaky_link_catch_up", "streaming"),
    ("mid_transfer_failure", "embedded"),
    ("slow_link_catch_up", "embedded"),
    ("disk_faults", "streaming"),
])
def test_transfers_from_the_transfer_kinds_alone_equal_those_from_every_record(name, mode):
    trace = _trace(name, mode)
    everything = [attrs.asdict(track) for track in transfers(trace.records)]
    assert everything, "the scenario should transfer a snapshot"
    assert [attrs.asdict(track) for track in transfers(trace.of_kind(*TRANSFER_KINDS))] == everything


def test_the_scenarios_above_exercise_what_tracks_record():
    """So that the comparison above covers retries, resumes, a second sender and a lost message."""
    tracks = {(name, mode): transfers(_trace(name, mode).records) for name, mode in (
        ("mid_transfer_failure", "streaming"), ("leader_change_during_transfer", "streaming"),
        ("mid_transfer_failure", "embedded"))}
    assert tracks["mid_transfer_failure", "streaming"][0].retries
    [changed_leader] = tracks["leader_change_during_transfer", "streaming"]
    assert changed_leader.resumes and len(changed_leader.sources) == 2
    assert tracks["mid_transfer_failure", "embedded"][0].lost
