"""Swarm testing: each seed also chooses which features exist in its run at all.

Drawing every fault kind in every run spreads a sweep thin: a program with
crashes, partitions, lossy links and chunk faults mixed together rarely lets
one of them play out (a partition heals the cut a chunk fault was waiting
for). Swarm testing (Groce et al., 2012; TigerBeetle's simulator does the
same) draws, per seed, a *configuration* first: which step kinds (clock drift
and jumps among them) and chunk fault actions are enabled, which link profile, snapshot mode, chunk size and
store. The program is then drawn from that configuration only, so rare
combinations (a faulty store under a narrow link with streaming, say) get
many dense runs instead of a few diluted ones.

Everything is drawn from ``random.Random(f"swarm/{seed}")``: the same seed
gives the same configuration and program on any machine, which is what lets
a sweep's worker re-derive a failing run from its seed alone.

:func:`swarm_source` writes a configuration and program as a scenario file
(:func:`simulator.explore.search.scenario_source` plus the swarm's own
settings), so a failure replays with ``raftsim run FILE``.
"""

from __future__ import annotations

import random
import re

import attrs

from ..snapshots import FaultyStore, MemorySnapshotStore
from . import programs as S
from .disk_faults import DISK_OPS, DISK_STEPS, DiskError, FillDisk, FreeDisk, LostFsync
from .programs import Program
from .search import CHUNK_ACTIONS, DRIFTS, JUMPS, WAITS, SearchSpace, scenario_source

#: Link profiles a seed may run on: name -> the ``LinkConfig`` as written in a scenario file.
LINK_PROFILES: dict[str, str] = {
    "constant": "LinkConfig()",
    "jitter": "LinkConfig(latency=Uniform(0.0005, 0.02))",
    "lossy": "LinkConfig(latency=Uniform(0.0005, 0.005), loss=0.01)",
    "reordering": "LinkConfig(latency=Exponential(0.005, 0.0005), duplicate=0.02, reorder=0.05)",
    "narrow": "LinkConfig(bandwidth=200000.0)",
}
#: Kinds drawn twice as often: they make or disturb snapshot transfers.
_TRANSFER_MAKERS = ("Crash", "Restart", "AddNode", "FailChunk", "FailStoreRead", "TransferLeader")
MODES = ("embedded", "streaming")
STORES = ("memory", "disk", "faulty")
CHUNK_SIZES = (512, 1024, 4096)
#: Disk faults (simulator.explore.disk_faults) a seed on the disk store may switch on. Drawn
#: from a generator of their own (``swarm/{seed}/disks``) and inserted into the program drawn
#: as before, so every seed runs the program it ran before they existed, plus its disk steps.
#: A full disk is given room again later (``FreeDisk``) in the same program.
DISK_STEPS_BY_NAME = {step.__name__: step for step in DISK_STEPS}
DISK_STEP_NAMES = tuple(name for name in DISK_STEPS_BY_NAME if name != "FreeDisk")
#: Disk steps inserted per enabled disk fault kind, at most.
MAX_DISK_STEPS = 2
#: Step kinds a seed may switch on; Propose and Wait are always on (a run needs load and time).
OPTIONAL_STEPS = ("Partition", "Heal", "Isolate", "OneWay", "Crash", "Restart", "Pause", "Resume",
                  "AddNode", "RemoveNode", "Compact", "FailChunk", "TransferLeader", "FailStoreRead")
#: Clock faults a seed may switch on. Drawn from a generator of their own
#: (``swarm/{seed}/clocks``) and inserted into the program drawn as before, so a
#: seed that switches neither on runs exactly the program it ran before they existed
#: (a sweep's recorded seeds keep their meaning), and one that does keeps its other steps.
CLOCK_STEPS = ("ClockDrift", "ClockJump")
#: Clock steps inserted per enabled clock kind, at most.
MAX_CLOCK_STEPS = 2


# -- the store fault a swarm may enable ------------------------------------------------------


def faulty_memory_stores(node_id: int) -> FaultyStore:
    """``Streaming(store=...)`` factory: each node's in-memory store, able to fail reads on demand.

    The store reads in pieces of the smallest swarm chunk size, so a read can
    fail part way through any snapshot, not only before its first megabyte.
    """
    return FaultyStore(MemorySnapshotStore(chunk_size=min(CHUNK_SIZES)), name=f"n{node_id}'s store")


@attrs.frozen
class FailStoreRead:
    """The leader's snapshot store fails one chunk read, after ``after`` more reads succeed.

    Does nothing unless the stores are :class:`FaultyStore` s (a swarm with the
    ``faulty`` store): a mid-transfer read failure, as a flaky disk or object
    store gives.
    """

    after: int = 0

    async def apply(self, run) -> None:
        leader = run.cluster.leader_id()
        if leader is None:
            return
        store = run.cluster.store(leader)
        if isinstance(store, FaultyStore):
            store.fail_reads(1, after=self.after)


# -- drawing a configuration and a program -----------------------------------------------------


@attrs.frozen
class SwarmConfig:
    """What one seed's run may contain (see the module docstring)."""

    nodes: int
    mode: str
    store: str
    chunk_size: int
    link: str
    steps: tuple[str, ...]
    chunk_actions: tuple[str, ...]

    def space(self, defects: tuple[str, ...] = (), *, max_steps: int = 12) -> SearchSpace:
        """The :class:`SearchSpace` it runs in (a ``faulty`` store is memory plus :class:`FailStoreRead`)."""
        return SearchSpace(nodes=self.nodes, mode=self.mode, store="disk" if self.store == "disk" else "memory",
                           chunk_size=self.chunk_size, payload_size=1024, warmup=20, max_steps=max_steps,
                           liveness_within=30.0, defects=tuple(defects))

    def describe(self) -> dict:
        return attrs.asdict(self)


def _subset(rng: random.Random, names: tuple[str, ...]) -> tuple[str, ...]:
    """Each name with probability 1/2 (the swarm's coin per feature)."""
    return tuple(name for name in names if rng.random() < 0.5)


def draw_swarm(rng: random.Random) -> SwarmConfig:
    mode = rng.choice(MODES)
    steps = _subset(rng, OPTIONAL_STEPS)
    if mode == "embedded":  # nothing streams: chunk and store faults would be no-ops
        steps = tuple(name for name in steps if name not in ("FailChunk", "FailStoreRead"))
    store = rng.choice(STORES) if mode == "streaming" else "memory"
    if store != "faulty":
        steps = tuple(name for name in steps if name != "FailStoreRead")
    actions = _subset(rng, CHUNK_ACTIONS) or (rng.choice(CHUNK_ACTIONS),)
    return SwarmConfig(
        nodes=rng.choice((3, 3, 5)), mode=mode, store=store, chunk_size=rng.choice(CHUNK_SIZES),
        link=rng.choice(tuple(LINK_PROFILES)), steps=steps,
        chunk_actions=actions if "FailChunk" in steps else (),
    )


def _draw_step(rng: random.Random, kind: str, config: SwarmConfig):
    def node() -> int:  # the first members, or one of two a program may add
        return rng.randint(1, config.nodes + 2)

    if kind == "Propose":
        return S.Propose(count=rng.randint(1, 8))
    if kind == "Wait":
        return S.Wait(seconds=rng.choice(WAITS))
    if kind == "Partition":
        size = rng.randint(1, config.nodes)
        return S.Partition(group=tuple(sorted(rng.sample(range(1, config.nodes + 3), size))))
    if kind == "Heal":
        return S.Heal()
    if kind == "OneWay":
        return S.OneWay(src=node(), dst=node())
    if kind == "AddNode":
        return S.AddNode()
    if kind == "FailChunk":
        return S.FailChunk(k=rng.randint(1, 4), action=rng.choice(config.chunk_actions))
    if kind == "FailStoreRead":
        return FailStoreRead(after=rng.randint(0, 4))
    if kind == "ClockDrift":
        return S.ClockDrift(node=node(), percent=rng.choice(DRIFTS))
    if kind == "ClockJump":
        return S.ClockJump(node=node(), seconds=rng.choice(JUMPS))
    if kind == "DiskError":
        return DiskError(node=node(), op=rng.choice(DISK_OPS))
    if kind == "LostFsync":
        return LostFsync(node=node(), torn=rng.random() < 0.5)
    if kind in DISK_STEPS_BY_NAME:
        return DISK_STEPS_BY_NAME[kind](node=node())
    return getattr(S, kind)(node=node())


def draw_program(rng: random.Random, config: SwarmConfig, *, max_steps: int = 12) -> Program:
    """Up to ``max_steps`` steps drawn from the kinds ``config`` enables.

    Steps that start snapshot transfers (a node falling behind or joining)
    and those that disturb them are drawn twice as often as the rest.
    """
    kinds = ["Propose", "Propose", "Wait", *config.steps,
             *(kind for kind in config.steps if kind in _TRANSFER_MAKERS)]
    length = rng.randint(min(3, max_steps), max_steps)
    return Program(tuple(_draw_step(rng, rng.choice(kinds), config) for _ in range(length)), liveness_within=30.0)


def _insert_drawn(rng: random.Random, config: SwarmConfig, steps: list, kinds, most: int) -> None:
    """Insert 1 to ``most`` steps of each kind in ``kinds`` at drawn places of ``steps``."""
    for kind in kinds:
        for _ in range(rng.randint(1, most)):
            steps.insert(rng.randint(0, len(steps)), _draw_step(rng, kind, config))


def with_clock_faults(rng: random.Random, config: SwarmConfig, program: Program) -> tuple[SwarmConfig, Program]:
    """Switch each clock fault kind on with probability 1/2 and insert 1 to
    ``MAX_CLOCK_STEPS`` steps of each one switched on at drawn places of ``program``."""
    kinds = _subset(rng, CLOCK_STEPS)
    if not kinds:
        return config, program
    steps = list(program.steps)
    _insert_drawn(rng, config, steps, kinds, MAX_CLOCK_STEPS)
    return (attrs.evolve(config, steps=(*config.steps, *kinds)),
            Program(tuple(steps), liveness_within=program.liveness_within))


def with_disk_faults(rng: random.Random, config: SwarmConfig, program: Program) -> tuple[SwarmConfig, Program]:
    """On a disk store, switch each disk fault kind on with probability 1/2 and insert 1 to
    ``MAX_DISK_STEPS`` steps of each one at drawn places of ``program``; each ``FillDisk``
    gets a ``FreeDisk`` of the same node at a drawn later place."""
    kinds = _subset(rng, DISK_STEP_NAMES) if config.store == "disk" else ()
    if not kinds:
        return config, program
    steps = list(program.steps)
    _insert_drawn(rng, config, steps, kinds, MAX_DISK_STEPS)
    for place in reversed(range(len(steps))):
        if isinstance(steps[place], FillDisk):
            steps.insert(rng.randint(place + 1, len(steps)), FreeDisk(node=steps[place].node))
    kinds += ("FreeDisk",) if "FillDisk" in kinds else ()
    return (attrs.evolve(config, steps=(*config.steps, *kinds)),
            Program(tuple(steps), liveness_within=program.liveness_within))


def draw(seed: int, *, max_steps: int = 12) -> tuple[SwarmConfig, Program]:
    """Seed ``seed``'s configuration and program (same seed, same draw, on any machine).

    The program has at most ``max_steps`` steps, plus the steps of the clock
    faults (see :data:`CLOCK_STEPS`) and, on a disk store, the disk faults the
    seed switched on, each drawn from a generator of its own so that switching
    one family on leaves every other draw as it was."""
    rng = random.Random(f"swarm/{seed}")
    config = draw_swarm(rng)
    program = draw_program(rng, config, max_steps=max_steps)
    config, program = with_clock_faults(random.Random(f"swarm/{seed}/clocks"), config, program)
    return with_disk_faults(random.Random(f"swarm/{seed}/disks"), config, program)


# -- as a scenario file ----------------------------------------------------------------------------


def swarm_source(config: SwarmConfig, program: Program, seed: int, defects: tuple[str, ...] = (), *,
                 headline: str = "") -> str:
    """A scenario file running ``program`` in ``config``'s swarm, replayable with ``raftsim run``."""
    space = config.space(defects, max_steps=max(len(program), 1))
    text = scenario_source(program, space, seed, headline=headline)
    uses_store_fault = any(isinstance(step, FailStoreRead) for step in program.steps)
    extra = ["", "", f"# Swarm configuration of seed {seed}: {config.describe()}",
             f"CLUSTER = {{**CLUSTER, \"link\": {LINK_PROFILES[config.link]}}}"]
    imports = set(re.findall(r"[A-Z][A-Za-z]+", LINK_PROFILES[config.link]))
    if config.store == "faulty":
        extra.append(f"STREAMING = {{\"chunk_size\": {config.chunk_size}, \"store\": faulty_memory_stores}}")
    names = sorted({"faulty_memory_stores"} if config.store == "faulty" else set())
    if uses_store_fault:
        names = sorted({*names, "FailStoreRead"})
    header = ""
    if names:
        header += f"from simulator import {', '.join(names)}\n"
    if imports:
        header += f"from transports import {', '.join(sorted(imports))}\n"
    # The swarm's imports join the file's own, before the first definition.
    marker = "\nCLUSTER = "
    text = text.replace(marker, f"\n{header}{marker}", 1) if header else text
    return text + "\n".join(extra) + "\n"
