"""Whole-cluster property tests: random fault programs, every invariant, replayable failures.

Theory of operation: hypothesis draws a fault program
(:func:`simulator.fault_programs`: propose, partition, heal, isolate,
one-way, crash, restart, pause, resume, add and remove nodes, compact, a
fault on chunk k of a snapshot stream, leader transfer, let time pass) and a
seed. :func:`simulator.explore.search.run_example` writes it as a scenario file
and runs it exactly as ``raftsim run`` does. During the run the invariant
monitor checks every change (election safety, log matching, leader
completeness, state machine safety, indexes never going backwards,
snapshots covering committed entries only and equal to the leader's);
after every step :class:`simulator.explore.programs.ProgramChecks` checks that no
acknowledged write is lost, that a resumed transfer re-sends at most one
chunk, and that log entries are discarded only under a durable snapshot.
Then the liveness phase stops the faults and requires every live member to
catch up and hold every acknowledged write.

A failure fails the test with the shrunk program as a scenario file: its
text is in the message, and the file is kept in ``$RAFTSIM_FAILURES_DIR``
(default ``raftsim-failures/``) for ``raftsim run`` to replay byte for byte.

``RAFTSIM_HYPOTHESIS_PROFILE=thorough`` (see ``conftest.py``) runs 25 times
as many programs per cluster kind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import profile
from hypothesis import HealthCheck, given, settings

from simulator import SearchSpace, fault_programs, seeds
from simulator.explore.search import failure_of, run_example, write_scenario

EXAMPLES = {"ci": 80, "thorough": 2000}[profile()]

SPACES = {
    "embedded": SearchSpace(mode="embedded"),
    "streaming-memory": SearchSpace(mode="streaming"),
    "streaming-disk": SearchSpace(mode="streaming", store="disk"),
    "streaming-5-nodes-small-chunks": SearchSpace(mode="streaming", nodes=5, chunk_size=1024),
}


def failures_dir() -> Path:
    return Path(os.environ.get("RAFTSIM_FAILURES_DIR", "raftsim-failures"))


@pytest.mark.parametrize("kind", sorted(SPACES))
def test_fault_programs_keep_the_cluster_safe_and_live(kind, tmp_path):
    space = SPACES[kind]

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(program=fault_programs(space), seed=seeds())
    def holds(program, seed):
        result = run_example(program, space, seed, tmp_path)
        if result.ok:
            return
        failure = failure_of(result)
        failures_dir().mkdir(parents=True, exist_ok=True)
        name = f"counterexample_{kind}_{result.summary.get('trace_sha256', '')[:12]}.py"
        artefact = write_scenario(failures_dir() / name, program, space, seed, headline=failure)
        raise AssertionError(
            f"{failure}\n"
            f"replay: raftsim run {artefact}\n"
            f"trace sha256 {result.summary.get('trace_sha256')}\n\n{artefact.read_text()}"
        )

    holds()
