"""Swarm testing and the snapshot-path coverage goals (simulator.explore.swarm, .coverage).

A seed's swarm configuration and program are a pure function of the seed;
every feature is switched on in some seeds and off in others; the file a
swarm run is written to replays it; a faulty store fails reads part way
through a transfer; and every coverage goal is reached by some real run (a
goal that nothing can reach would report 0% forever and hide it).
"""

from __future__ import annotations

from collections import Counter

import pytest

from simulator import FailStoreRead
from simulator.explore import programs as S
from simulator.explore.coverage import GOALS, goals_reached
from simulator.explore.seed_runs import property_of, replay_source, run_seed
from simulator.explore.swarm import (
    CHUNK_SIZES,
    LINK_PROFILES,
    CLOCK_STEPS,
    OPTIONAL_STEPS,
    STORES,
    SwarmConfig,
    draw,
    swarm_source,
)


def test_a_seed_draws_the_same_configuration_and_program_every_time():
    assert draw(17) == draw(17)
    assert len({repr(draw(seed)) for seed in range(20)}) == 20


def test_every_feature_is_on_in_some_seeds_and_off_in_others():
    configs = [draw(seed)[0] for seed in range(300)]
    steps = Counter(name for config in configs for name in config.steps)
    for name in (*OPTIONAL_STEPS, *CLOCK_STEPS):
        assert 0 < steps[name] < len(configs), name
    assert {config.store for config in configs if config.mode == "streaming"} == set(STORES)
    assert {config.link for config in configs} == set(LINK_PROFILES)
    assert {config.chunk_size for config in configs} == set(CHUNK_SIZES)
    assert {config.nodes for config in configs} == {3, 5}
    for config, program in (draw(seed) for seed in range(300)):
        drawn = {type(step).__name__ for step in program.steps} - {"Propose", "Wait"}
        assert drawn <= set(config.steps), (config, program)  # only what the seed switched on
        if config.mode == "embedded":
            assert config.store == "memory" and "FailChunk" not in config.steps


def test_clock_faults_are_drawn_as_a_feature_and_leave_the_other_steps_as_they_were():
    import random

    from simulator.explore.disk_faults import DISK_STEPS
    from simulator.explore.swarm import draw_program, draw_swarm

    with_clocks = 0
    for seed in range(60):
        config, program = draw(seed)
        rng = random.Random(f"swarm/{seed}")
        before = draw_program(rng, plain := draw_swarm(rng))
        clock_steps = [step for step in program.steps if isinstance(step, (S.ClockDrift, S.ClockJump))]
        disk_steps = [step for step in program.steps if isinstance(step, DISK_STEPS)]
        # The steps a seed drew before clock (and disk) faults existed are still there, in order.
        assert [step for step in program.steps if step not in clock_steps + disk_steps] == list(before.steps)
        assert config.steps[:len(plain.steps)] == plain.steps
        if clock_steps:
            with_clocks += 1
            assert {type(step).__name__ for step in clock_steps} == set(config.steps) & set(CLOCK_STEPS)
        elif not disk_steps:
            assert program == before and config == plain
    assert 0 < with_clocks < 60


def test_a_swarm_run_with_clock_faults_replays_from_its_scenario_file():
    seed = next(seed for seed in range(100) if set(CLOCK_STEPS) <= set(draw(seed)[0].steps)
                and len(draw(seed)[1]) <= 8)
    first = run_seed({"target": "programs", "seed": seed, "mode": None})
    config, program = draw(seed)
    again = replay_source(swarm_source(config, program, seed), "swarm_clocks.py")
    assert first["trace_sha256"] and first["trace_sha256"] == again["trace_sha256"]


def test_a_swarm_run_replays_from_its_scenario_file_with_the_same_hash():
    seed = 11
    first = run_seed({"target": "programs", "seed": seed, "mode": None})
    config, program = draw(seed)
    again = replay_source(swarm_source(config, program, seed), "swarm.py")
    assert first["trace_sha256"] and first["trace_sha256"] == again["trace_sha256"]
    assert first["swarm"] == config.describe()


def _store_fault_run(store: str) -> dict:
    config = SwarmConfig(nodes=3, mode="streaming", store=store, chunk_size=512, link="constant",
                         steps=("Crash", "Restart", "FailStoreRead"), chunk_actions=())
    program = S.Program((S.Crash(node=3), S.Propose(count=10), FailStoreRead(after=2), S.Restart(node=3),
                         S.Wait(seconds=2.0)))
    return replay_source(swarm_source(config, program, 7), "store_fault.py")


def test_a_faulty_store_fails_a_read_in_the_middle_of_a_transfer_and_the_transfer_recovers():
    faulty = _store_fault_run("faulty")
    assert faulty["ok"], faulty["failure"]
    assert "store failed mid-read" in faulty["goals"]
    plain = _store_fault_run("memory")  # FailStoreRead does nothing on a store that cannot fail
    assert plain["ok"] and "store failed mid-read" not in plain["goals"]


@pytest.mark.parametrize("task, goals", [
    ({"target": "basic", "seed": 0, "mode": "streaming"}, ()),
    ({"target": "mid_transfer_failure", "seed": 0, "mode": "streaming"},
     ("snapshot transfer started", "resumed at chunk k > 0", "transfer retried, then installed",
      "joining node caught up by snapshot")),
    ({"target": "leader_change_during_transfer", "seed": 0, "mode": "streaming"},
     ("leader changed mid-transfer",)),
    ({"target": "compaction_race", "seed": 0, "mode": "streaming"},
     ("compaction during an outgoing transfer",)),
])
def test_coverage_goals_of_real_runs(task, goals):
    reached = run_seed(task)["goals"]
    if not goals:
        assert reached == []
    for goal in goals:
        assert goal in reached, (goal, reached)


def test_a_corrupt_chunk_is_a_coverage_goal_reached():
    config = SwarmConfig(nodes=3, mode="streaming", store="memory", chunk_size=512, link="constant",
                         steps=("FailChunk", "AddNode"), chunk_actions=("corrupt",))
    program = S.Program((S.FailChunk(k=2, action="corrupt"), S.AddNode(), S.Wait(seconds=1.0)))
    outcome = replay_source(swarm_source(config, program, 3), "corrupt.py")
    assert outcome["ok"] and "corrupt chunk or digest caught" in outcome["goals"]


def test_every_goal_is_reached_by_one_of_the_runs_above():
    reached = set()
    for task in ({"target": "mid_transfer_failure", "seed": 0, "mode": "streaming"},
                 {"target": "leader_change_during_transfer", "seed": 0, "mode": "streaming"},
                 {"target": "compaction_race", "seed": 0, "mode": "streaming"}):
        reached.update(run_seed(task)["goals"])
    reached.update(_store_fault_run("faulty")["goals"])
    assert set(GOALS) - reached == {"corrupt chunk or digest caught"}  # the test above reaches that one
    assert goals_reached([]) == ()


@pytest.mark.parametrize("failure, prop", [
    ("election safety: nodes 1 and 2 were both leader in term 3", "election safety"),
    ("the story got stuck: no leader within 10 s", "liveness: the story got stuck"),
    ("error: ObjectStoreUnavailableError: read of snapshot 30 failed", "error: ObjectStoreUnavailableError"),
    ("n4 re-sent 3 chunks", "n# re-sent # chunks"),
])
def test_failures_are_grouped_by_the_property_they_break(failure, prop):
    assert property_of(failure) == prop



def test_a_run_that_raises_is_a_finding_grouped_by_type_with_a_replayable_hash():
    # A sweep must report a run that blows up (a simulator bug, or a story's own error), not die,
    # and the trace up to the error must replay with the same hash on another worker.
    story = (
        '"""A story that breaks part way."""\n'
        "import trio\n"
        'CLUSTER = {"nodes": 3}\n'
        'DEFAULTS = {"seed": 5, "mode": "embedded", "store": "memory"}\n\n'
        "async def scenario(sim):\n"
        "    await sim.cluster.wait_for_leader(timeout=10)\n"
        "    await trio.sleep(1.0)\n"
        '    raise RuntimeError("the story broke")\n'
    )
    first, again = (replay_source(story, "broke.py") for _ in range(2))
    assert not first["ok"] and first["property"].startswith("error: "), first
    assert "the story broke" in first["failure"]
    assert first["trace_sha256"] and first["trace_sha256"] == again["trace_sha256"]
    assert first["virtual_seconds"] > 1.0  # the trace runs up to the error
