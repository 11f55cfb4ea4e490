"""``simulator.schedules``: seeded random fault schedules and their steps.

The schedule is checked by replaying it on a small model of the cluster's
fault rules (a node can only be restarted if crashed, resumed if paused...),
so a schedule that would make ``Cluster`` raise, or take down a majority,
fails here first.
"""

from __future__ import annotations

import pytest

from simulator.explore.schedules import (
    FAULTS,
    FaultSchedule,
    FaultStep,
    apply_schedule,
    random_fault_schedule,
)
from transports import Constant, LinkConfig, Uniform

SIZES = [1, 2, 3, 4, 5, 7]
SEEDS = range(12)
HEALTHY_LINKS = LinkConfig(latency=Constant(0.001))


def ids_of(size: int) -> list[int]:
    return list(range(1, size + 1))


class Model:
    """What a schedule does to a cluster, with the cluster's preconditions as assertions."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self.crashed: set[int] = set()
        self.paused: set[int] = set()
        self.network_fault: str | None = None
        self.links = HEALTHY_LINKS
        self.most_down = 0

    def step(self, step: FaultStep) -> None:
        getattr(self, step.fault)(*step.args)
        self.most_down = max(self.most_down, len(self.crashed | self.paused))

    def _node(self, node: int) -> None:
        assert node in self.ids, f"node {node} is not in {self.ids}"

    def crash(self, node):
        self._node(node)
        assert node not in self.crashed, f"node {node} crashed twice"
        assert node not in self.paused, f"node {node} crashed while paused"
        self.crashed.add(node)

    def restart(self, node):
        assert node in self.crashed, f"node {node} restarted while up"
        self.crashed.remove(node)

    def pause(self, node):
        self._node(node)
        assert node not in self.crashed | self.paused, f"node {node} paused while down or paused"
        self.paused.add(node)

    def resume(self, node):
        assert node in self.paused, f"node {node} resumed while not paused"
        self.paused.remove(node)

    def _network(self, name: str) -> None:
        assert self.network_fault is None, f"{name} on top of {self.network_fault}"
        self.network_fault = name

    def partition(self, *groups):
        members = [node for group in groups for node in group]
        assert sorted(members) == self.ids, f"groups {groups} do not split {self.ids}"
        assert all(groups), f"empty group in {groups}"
        self._network("partition")

    def isolate(self, node):
        self._node(node)
        self._network("isolate")

    def one_way(self, a, b):
        self._node(a)
        self._node(b)
        assert a != b
        self._network("one_way")

    def bridge(self):
        assert len(self.ids) >= 3
        self._network("bridge")

    def majorities_ring(self):
        assert len(self.ids) >= 3
        self._network("majorities_ring")

    def heal(self):
        assert self.network_fault is not None, "heal without a fault"
        self.network_fault = None

    def set_links(self, config):
        assert isinstance(config, LinkConfig)
        self.links = config

    def reset_links(self):
        assert self.links != HEALTHY_LINKS, "reset_links without a link fault"
        self.links = HEALTHY_LINKS


def replay(schedule: FaultSchedule, ids: list[int]) -> Model:
    model = Model(ids)
    for step in schedule:
        model.step(step)
    return model


# -- random_fault_schedule ---------------------------------------------------------------


def test_same_seed_gives_the_same_schedule():
    ids = [1, 2, 3, 4, 5]
    assert random_fault_schedule(5, ids, 300) == random_fault_schedule(5, ids, 300)


def test_node_id_order_does_not_change_the_schedule():
    assert random_fault_schedule(5, [3, 1, 2], 300) == random_fault_schedule(5, [1, 2, 3], 300)


def test_different_seeds_give_different_schedules():
    schedules = {random_fault_schedule(seed, [1, 2, 3, 4, 5], 300) for seed in SEEDS}
    assert len(schedules) == len(SEEDS)


@pytest.mark.parametrize("size", SIZES)
def test_steps_are_sorted_by_time_and_within_the_duration(size):
    for seed in SEEDS:
        schedule = random_fault_schedule(seed, ids_of(size), 200)
        times = [step.at for step in schedule]
        assert times == sorted(times)
        assert all(0 <= at <= 200 for at in times)


def test_a_run_shorter_than_the_first_gap_has_no_faults():
    assert random_fault_schedule(1, [1, 2, 3], 0.5) == FaultSchedule()


@pytest.mark.parametrize("size", SIZES)
def test_every_crash_is_restarted_and_every_pause_resumed_with_at_most_a_minority_down(size):
    for seed in SEEDS:
        schedule = random_fault_schedule(seed, ids_of(size), 300)
        model = replay(schedule, ids_of(size))
        assert model.crashed == set() and model.paused == set(), f"seed {seed}"
        assert model.most_down <= (size - 1) // 2, f"seed {seed}"


@pytest.mark.parametrize("size", SIZES)
def test_every_network_fault_is_healed_and_links_restored(size):
    for seed in SEEDS:
        model = replay(random_fault_schedule(seed, ids_of(size), 300), ids_of(size))
        assert model.network_fault is None, f"seed {seed}"
        assert model.links == HEALTHY_LINKS, f"seed {seed}"


def test_each_crash_is_undone_by_a_restart_of_the_same_node_later():
    schedule = random_fault_schedule(3, ids_of(5), 600)
    steps = schedule.steps
    crashes = [(i, step) for i, step in enumerate(steps) if step.fault in ("crash", "pause")]
    assert crashes, "the schedule should exercise node faults"
    for position, step in crashes:
        undo = "restart" if step.fault == "crash" else "resume"
        later = steps[position + 1 :]
        assert any(s.fault == undo and s.args == step.args and s.at > step.at for s in later), step


def test_long_schedules_use_every_kind_of_fault():
    used = {step.fault for seed in SEEDS for step in random_fault_schedule(seed, ids_of(5), 600)}
    assert used == set(FAULTS)


@pytest.mark.parametrize("seed", SEEDS)
def test_repr_of_a_schedule_evaluates_back_to_an_equal_schedule(seed):
    schedule = random_fault_schedule(seed, ids_of(5), 300)
    scope = {
        "FaultSchedule": FaultSchedule,
        "FaultStep": FaultStep,
        "LinkConfig": LinkConfig,
        "Uniform": Uniform,
        "Constant": Constant,
    }
    assert eval(repr(schedule), scope) == schedule


def test_repr_round_trip_covers_link_settings():
    """At least one schedule above carries a LinkConfig through its repr."""
    assert any(
        step.fault == "set_links" and isinstance(step.args[0].latency, Uniform)
        for seed in SEEDS
        for step in random_fault_schedule(seed, ids_of(5), 300)
    )


# -- FaultStep and FaultSchedule ------------------------------------------------------------


def test_fault_step_refuses_an_unknown_fault():
    with pytest.raises(ValueError, match="unknown fault 'explode'; expected one of partition"):
        FaultStep(1.0, "explode")


@pytest.mark.parametrize("at", [-0.001, -5])
def test_fault_step_refuses_a_negative_time(at):
    with pytest.raises(ValueError, match=f"fault time must be >= 0 s, got {at}"):
        FaultStep(at, "heal")


def test_fault_step_at_zero_is_allowed():
    assert FaultStep(0, "heal").at == 0


def test_schedule_iterates_and_counts_its_steps():
    steps = (FaultStep(1.0, "isolate", (2,)), FaultStep(3.0, "heal"))
    schedule = FaultSchedule(steps)
    assert list(schedule) == list(steps)
    assert len(schedule) == 2


def test_apply_schedule_hands_each_step_to_the_cluster_method_at_its_time():
    class FakeCluster:
        def __init__(self):
            self.scheduled = []

        def at(self, when, action, *args):
            self.scheduled.append((when, action.__name__, args))

        def isolate(self, node): ...

        def heal(self): ...

    cluster = FakeCluster()
    steps = (FaultStep(1.5, "isolate", (2,)), FaultStep(4.0, "heal"))
    apply_schedule(cluster, FaultSchedule(steps))
    assert cluster.scheduled == [(1.5, "isolate", (2,)), (4.0, "heal", ())]
