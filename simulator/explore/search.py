"""Property search: random fault programs, shrunk failures, replayable scenario files.

:func:`fault_programs` is a hypothesis strategy for :class:`~simulator.explore.programs.Program`
values over a :class:`SearchSpace` (cluster size, snapshot mode, store,
chunk size, defects switched on). :func:`run_example` renders a program as a
scenario file and runs it exactly as ``raftsim run`` would, so the file a
failing example leaves behind replays it byte for byte (same trace hash).
:func:`search` asks hypothesis for the smallest failing program and returns
it as a :class:`Counterexample`.

hypothesis is imported only when a strategy is built: ``import simulator``
does not need it (it comes with the ``test`` and ``notebooks`` extras).
"""

from __future__ import annotations

import functools
import hashlib
import random
import textwrap
from pathlib import Path
from typing import Any

import attrs

from ..cluster.cluster import run
from ..raft import defects
from ..scenario import RunOptions, ScenarioResult, resolve, run_scenario
from . import programs as S
from .damage import DAMAGES, DamageStore
from .disk_faults import DISK_OPS, DiskError, FillDisk, FlipBitOnRead, FreeDisk, LostFsync, MisdirectedWrite
from .programs import Program
from .user_system import check_space, user_propose_strategy, user_scenario_source, with_warmup

CHUNK_ACTIONS = ("drop", "duplicate", "corrupt", "corrupt_source", "delay", "cut",
                 "crash_sender", "crash_receiver")
WAITS = (0.1, 0.5, 1.0, 2.0, 5.0)
VOCABULARIES = ("all", "transfers")
TRANSFER_STEPS = (S.Propose, S.Wait, S.Crash, S.Restart, S.AddNode, S.Compact, S.FailChunk, S.TransferLeader)


@attrs.frozen
class SearchSpace:
    """What kind of cluster the programs run on."""

    nodes: int = 3
    mode: str = "streaming"
    store: str = "memory"
    chunk_size: int = 4096
    payload_size: int = 1024
    #: Commands proposed before the program starts, so that logs are compacted
    #: and any node that falls behind (or joins) needs a snapshot transfer.
    warmup: int = 30
    compaction_every: int = 10
    keep_entries: int = 2
    max_steps: int = 12
    liveness_within: float = 30.0
    defects: tuple[str, ...] = ()
    #: "all" steps, or only those that make and disturb snapshot "transfers"
    #: (no network faults or membership removals): a smaller space, searched faster.
    vocabulary: str = "all"
    #: Your own system (simulator.explore.user_system): a state machine class or factory,
    #: a hypothesis strategy of its commands, a node_id -> SnapshotStore factory, and
    #: checks (functions of the cluster that raise AssertionError); all importable.
    state_machine: Any = None
    commands: Any = None
    store_factory: Any = None
    checks: tuple = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self) -> None:
        RunOptions(mode=self.mode, store=self.store)  # validates both, with their error messages
        unknown = sorted(set(self.defects) - defects.DEFECTS.keys())
        if unknown:
            raise ValueError(f"unknown defect {unknown[0]!r}; expected one of {', '.join(sorted(defects.DEFECTS))}")
        if self.vocabulary not in VOCABULARIES:
            raise ValueError(f"vocabulary must be one of {', '.join(VOCABULARIES)}, got {self.vocabulary!r}")
        if self.nodes < 1 or self.max_steps < 0:
            raise ValueError(f"need nodes >= 1 and max_steps >= 0, got {self.nodes} and {self.max_steps}")
        check_space(self)

    @property
    def own_system(self) -> bool:
        return self.state_machine is not None


#: Clock drifts (percent) and jumps (seconds) the search draws.
DRIFTS = (-50.0, -10.0, 0.0, 10.0, 100.0)
JUMPS = (-2.0, -0.5, 0.5, 2.0)


def fault_programs(space: SearchSpace = SearchSpace()):
    """A hypothesis strategy of :class:`Program` values for ``space``."""
    from hypothesis import strategies as st

    # Ids of the first members and of up to two nodes a program may add.
    node = st.integers(min_value=1, max_value=space.nodes + 2)
    # Weights: snapshot transfers need a node to fall behind or join, and a chunk
    # fault armed before the transfer, so those steps are drawn more often.
    group = st.lists(node, min_size=1, max_size=space.nodes, unique=True).map(lambda ids: tuple(sorted(ids)))
    weighted = [  # (weight, step class, strategy)
        (3, S.Propose, st.builds(S.Propose, count=st.integers(1, 8))),
        (2, S.Wait, st.builds(S.Wait, seconds=st.sampled_from(WAITS))),
        (1, S.Partition, st.builds(S.Partition, group=group)),
        (1, S.Heal, st.just(S.Heal())),
        (1, S.Isolate, st.builds(S.Isolate, node=node)),
        (1, S.OneWay, st.builds(S.OneWay, src=node, dst=node)),
        (2, S.Crash, st.builds(S.Crash, node=node)),
        (2, S.Restart, st.builds(S.Restart, node=node)),
        (1, S.Pause, st.builds(S.Pause, node=node)),
        (1, S.Resume, st.builds(S.Resume, node=node)),
        (2, S.AddNode, st.just(S.AddNode())),
        (1, S.RemoveNode, st.builds(S.RemoveNode, node=node)),
        (1, S.Compact, st.builds(S.Compact, node=node)),
        # Disk damage between a crash and a restart (does nothing on other stores).
        (1, DamageStore, st.builds(DamageStore, node=node, how=st.sampled_from(DAMAGES))),
        (3, S.FailChunk, st.builds(S.FailChunk, k=st.integers(1, 4), action=st.sampled_from(CHUNK_ACTIONS))),
        (1, S.TransferLeader, st.builds(S.TransferLeader, node=node)),
        (1, S.Read, st.builds(S.Read, node=st.none() | node)),
        (1, S.ChangeMembership, st.builds(S.ChangeMembership, add=st.integers(0, 2), remove=group)),
        # Disk faults in the store's file layer (do nothing on other stores), one entry so
        # that they together weigh as much as one other kind of step.
        (1, "disk", disk_fault_steps(node)),
        # Clocks: drift within what Raft tolerates; a leap either way, as an NTP step would.
        (1, S.ClockDrift, st.builds(S.ClockDrift, node=node, percent=st.sampled_from(DRIFTS))),
        (1, S.ClockJump, st.builds(S.ClockJump, node=node, seconds=st.sampled_from(JUMPS))),
    ]
    if space.vocabulary == "transfers":
        weighted = [entry for entry in weighted if entry[1] in TRANSFER_STEPS]
    if space.own_system:  # the user's commands; reads need a key-value machine, so none
        weighted = [(weight, kind, user_propose_strategy(space) if kind is S.Propose else strategy)
                    for weight, kind, strategy in weighted if kind is not S.Read]
    step = st.one_of([strategy for weight, _, strategy in weighted for _ in range(weight)])
    programs = st.lists(step, max_size=space.max_steps).map(
        lambda drawn: Program(tuple(drawn), liveness_within=space.liveness_within)
    )
    return with_warmup(space, programs) if space.own_system else programs


def disk_fault_steps(node):
    """A strategy of one disk-fault step (:mod:`simulator.explore.disk_faults`) on a drawn node."""
    from hypothesis import strategies as st

    return st.one_of(
        st.builds(FillDisk, node=node), st.builds(FreeDisk, node=node),
        st.builds(DiskError, node=node, op=st.sampled_from(DISK_OPS)),
        st.builds(FlipBitOnRead, node=node), st.builds(MisdirectedWrite, node=node),
        st.builds(LostFsync, node=node, torn=st.booleans()),
    )


def seeds():
    """Run seeds; they shrink towards 0."""
    from hypothesis import strategies as st

    return st.integers(min_value=0, max_value=2**16)


# -- scenario files ----------------------------------------------------------------


def scenario_source(program: Program, space: SearchSpace, seed: int, *, headline: str = "") -> str:
    """The text of a scenario file that runs ``program`` on ``space``'s cluster."""
    if space.own_system:
        return user_scenario_source(program, space, seed, headline=headline)
    used = sorted({type(step).__name__ for step in program.steps} | {"CompactionPolicy", "Program",
                                                                    "run_program"})
    steps = "".join(f"        {step!r},\n" for step in program.steps)
    store = f" --store {space.store}" if space.store != "memory" else ""
    title = textwrap.fill(f"Counterexample: {headline or 'a fault program for the property search'}",
                          width=76, subsequent_indent="    ").replace('"""', "'''")
    return (
        f'"""{title}\n\n'
        "Written by raftsim's property search (simulator.explore.search). Replay it with\n\n"
        "    raftsim run THIS_FILE\n\n"
        f"(its DEFAULTS say --seed {seed} --mode {space.mode}{store}) and it runs exactly\n"
        "as it did in the search, trace hash and all.\n"
        '"""\n\n'
        f"from simulator import {', '.join(used)}\n\n"
        f"CLUSTER = {{\"nodes\": {space.nodes}, \"compaction\": CompactionPolicy(every={space.compaction_every}, "
        f"keep_entries={space.keep_entries})}}\n"
        f"MODES = ({space.mode!r},)\n"
        f"STREAMING = {{\"chunk_size\": {space.chunk_size}}}\n"
        f"DEFECTS = {tuple(space.defects)!r}\n"
        f"DEFAULTS = {{\"seed\": {seed}, \"mode\": {space.mode!r}, \"store\": {space.store!r}}}\n\n"
        "PROGRAM = Program(\n"
        "    steps=(\n"
        f"{steps}"
        "    ),\n"
        f"    liveness_within={program.liveness_within!r},\n"
        ")\n\n\n"
        "async def scenario(sim):\n"
        f"    await run_program(sim, PROGRAM, payload_size={space.payload_size}, warmup={space.warmup})\n"
    )


def write_scenario(path: Path, program: Program, space: SearchSpace, seed: int, *, headline: str = "") -> Path:
    path = Path(path)
    text = scenario_source(program, space, seed, headline=headline).replace("THIS_FILE", str(path))
    path.write_text(text, encoding="utf-8")
    return path


def run_example(
    program: Program, space: SearchSpace, seed: int, directory: Path, *, trace_path: Path | None = None
) -> ScenarioResult:
    """Run ``program`` as the scenario file it is written to in ``directory``, as ``raftsim run`` does.

    The file of a failing run is kept (named by a hash of its text and seed);
    ``trace_path`` keeps the trace as JSONL too (``raftsim run --trace``).
    """
    text = scenario_source(program, space, seed)
    name = "program_" + hashlib.sha256(f"{seed}\n{text}".encode()).hexdigest()[:12]
    Path(directory).mkdir(parents=True, exist_ok=True)
    path = write_scenario(Path(directory) / f"{name}.py", program, space, seed)
    options = RunOptions(seed=seed, mode=space.mode, store=space.store)
    result = run(functools.partial(run_scenario, trace_path=trace_path), resolve(str(path)), options)
    if result.ok:
        path.unlink()  # only failing programs are worth keeping
    return result


def failure_of(result: ScenarioResult) -> str:
    """One line saying what went wrong, or "" for a run that passed."""
    if result.ok:
        return ""
    return (list(result.violations) + list(result.failed_checks))[0]


# -- search -----------------------------------------------------------------------------


@attrs.frozen
class Counterexample:
    program: Program
    seed: int
    space: SearchSpace
    failure: str
    trace_sha256: str
    examples_until_found: int
    examples_run: int

    def write_scenario(self, path: Path) -> Path:
        return write_scenario(path, self.program, self.space, self.seed, headline=self.failure)

    def replay(self, directory: Path, *, trace_path: Path | None = None) -> ScenarioResult:
        """Run it again (same trace hash), optionally keeping the trace for plots."""
        return run_example(self.program, self.space, self.seed, directory, trace_path=trace_path)


def search(space: SearchSpace, directory: Path, *, max_examples: int = 100, seed: int = 0) -> Counterexample | None:
    """The smallest failing (program, seed) hypothesis finds in ``max_examples`` tries, or None.

    Deterministic for a given ``seed``: hypothesis draws from its own seeded
    generator and keeps no example database here.
    """
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample

    counts = {"run": 0, "first": 0}
    last: dict = {}

    def fails(example) -> bool:
        program, run_seed = example
        counts["run"] += 1
        result = run_example(program, space, run_seed, directory)
        failed = not result.ok
        if failed:
            counts["first"] = counts["first"] or counts["run"]
            last[(program, run_seed)] = result
        return failed

    config = settings(
        max_examples=max_examples, database=None, deadline=None, derandomize=False,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    try:
        program, run_seed = find(st.tuples(fault_programs(space), seeds()), fails, settings=config,
                                 random=random.Random(seed))
    except NoSuchExample:
        return None
    result = last.get((program, run_seed)) or run_example(program, space, run_seed, directory)
    return Counterexample(
        program=program, seed=run_seed, space=space, failure=failure_of(result),
        trace_sha256=result.summary.get("trace_sha256", ""),
        examples_until_found=counts["first"], examples_run=counts["run"],
    )
