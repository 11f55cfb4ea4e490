"""Fault schedules and client workloads: what happens to a cluster, and when.

A :class:`FaultSchedule` is a list of :class:`FaultStep` values — a virtual
time, the name of a cluster fault method, and its arguments. Its ``repr``
is a Python expression, so a schedule that broke something can be pasted
into a test and replayed. :func:`random_fault_schedule` draws one from a
seed; :func:`apply_schedule` hands it to a cluster.

:func:`steady_load` is the standard client workload: one command every
``interval`` seconds of virtual time, each retried until its own timeout.
"""

from __future__ import annotations

import random

import attrs
import trio

from transports import LinkConfig, Uniform

from ..cluster.client import ProposalTimeoutError

#: Fault method names a schedule may use; each is a method of ``Cluster``.
FAULTS = (
    "partition",
    "isolate",
    "one_way",
    "bridge",
    "majorities_ring",
    "heal",
    "crash",
    "restart",
    "pause",
    "resume",
    "set_links",
    "reset_links",
)


@attrs.frozen
class FaultStep:
    at: float
    fault: str
    args: tuple = ()

    def __attrs_post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; expected one of {', '.join(FAULTS)}")
        if self.at < 0:
            raise ValueError(f"fault time must be >= 0 s, got {self.at}")


@attrs.frozen
class FaultSchedule:
    steps: tuple[FaultStep, ...] = ()

    def __iter__(self):
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)


def random_fault_schedule(
    seed: int,
    node_ids: list[int],
    duration: float,
    *,
    mean_gap: float = 8.0,
    fault_length: tuple[float, float] = (1.0, 6.0),
) -> FaultSchedule:
    """A seeded schedule of faults, each healed or undone ``fault_length`` seconds later.

    At most a minority of nodes is crashed or paused at once, so the cluster
    can keep committing between (and often during) faults.
    """
    rng = random.Random(f"faults/{seed}")
    ids = sorted(node_ids)
    minority = (len(ids) - 1) // 2
    steps: list[FaultStep] = []
    now = rng.uniform(1.0, mean_gap)
    while now < duration:
        length = rng.uniform(*fault_length)
        end = min(now + length, duration)
        kind = rng.choice(("partition", "isolate", "one_way", "crash", "pause", "links", "bridge", "ring"))
        if kind == "partition" and len(ids) >= 2:
            shuffled = ids[:]
            rng.shuffle(shuffled)
            cut = rng.randint(1, len(ids) - 1)
            groups = (tuple(sorted(shuffled[:cut])), tuple(sorted(shuffled[cut:])))
            steps += [FaultStep(now, "partition", groups), FaultStep(end, "heal")]
        elif kind == "isolate":
            steps += [FaultStep(now, "isolate", (rng.choice(ids),)), FaultStep(end, "heal")]
        elif kind == "one_way" and len(ids) >= 2:
            a, b = rng.sample(ids, 2)
            steps += [FaultStep(now, "one_way", (a, b)), FaultStep(end, "heal")]
        elif kind in ("crash", "pause") and minority >= 1:
            victims = sorted(rng.sample(ids, rng.randint(1, minority)))
            undo = "restart" if kind == "crash" else "resume"
            steps += [FaultStep(now, kind, (victim,)) for victim in victims]
            steps += [FaultStep(end, undo, (victim,)) for victim in victims]
        elif kind == "links":
            config = LinkConfig(
                latency=Uniform(0.001, rng.uniform(0.002, 0.05)),
                loss=round(rng.uniform(0.0, 0.2), 3),
                duplicate=round(rng.uniform(0.0, 0.1), 3),
                reorder=round(rng.uniform(0.0, 0.2), 3),
            )
            steps += [FaultStep(now, "set_links", (config,)), FaultStep(end, "reset_links")]
        elif kind == "bridge" and len(ids) >= 3:
            steps += [FaultStep(now, "bridge"), FaultStep(end, "heal")]
        elif kind == "ring" and len(ids) >= 3:
            steps += [FaultStep(now, "majorities_ring"), FaultStep(end, "heal")]
        now = end + rng.expovariate(1 / mean_gap)
    steps.sort(key=lambda step: step.at)  # stable: undo steps stay after their fault
    return FaultSchedule(tuple(steps))


def apply_schedule(cluster, schedule: FaultSchedule) -> None:
    """Schedule every step on ``cluster`` (times are seconds since the cluster opened)."""
    for step in schedule:
        cluster.at(step.at, getattr(cluster, step.fault), *step.args)


@attrs.define
class LoadResult:
    proposed: int = 0
    committed: int = 0
    timed_out: int = 0


async def steady_load(
    cluster,
    *,
    duration: float,
    interval: float = 0.05,
    timeout: float = 2.0,
    command=lambda number: b"cmd-%d" % number,
) -> LoadResult:
    """Propose ``command(n)`` every ``interval`` seconds for ``duration`` seconds, one at a time."""
    result = LoadResult()
    deadline = trio.current_time() + duration
    next_slot = trio.current_time()
    # A simulated cluster's own sleep has no trio cancel scope per slot; anything else, trio's.
    sleep_until = getattr(cluster, "sleep_until", trio.sleep_until)
    while next_slot < deadline:
        await sleep_until(next_slot)
        result.proposed += 1
        try:
            await cluster.propose(command(result.proposed), timeout=timeout)
            result.committed += 1
        except ProposalTimeoutError:
            result.timed_out += 1
        next_slot = max(next_slot + interval, trio.current_time())
    return result
