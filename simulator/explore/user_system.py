"""Property search over *your* system: your state machine, your commands, your store, your checks.

``SearchSpace(state_machine=Counter, commands=<hypothesis strategy of bytes>,
store_factory=make_store, checks=(my_check,))`` makes the search
(:func:`simulator.search`) run fault programs on a cluster of your machine:
every ``Propose`` step becomes :class:`ProposeCommands` with commands drawn
from your strategy (and shrunk by hypothesis like the rest of the program), a
warm-up of your commands starts each program so logs compact and snapshots
of *your* state travel, streaming nodes keep snapshots in stores from your
factory (``node_id -> store``), and each check runs after every step and at
the end, beside raftsim's own invariants.

A check is a function of the cluster; it fails by raising ``AssertionError``
(its message is the failure), e.g. :func:`linearizable` for a key-value
machine. The counterexample file imports your objects by their dotted paths
(``from mypackage.counter import Counter``), so ``raftsim run FILE`` replays
it wherever your package is importable (``PYTHONPATH``). That is why every
object must be defined at the top level of an importable module: the space
checks it when it is built and names the one that is not.
"""

from __future__ import annotations

import importlib
import textwrap

import attrs

from ..cluster.client import ProposalTimeoutError
from ..cluster.kv_history import check_linearizability
from .programs import STEP_TIMEOUT, AcknowledgedWrite, Program, ProgramRun


@attrs.frozen
class ProposeCommands:
    """Your ``commands``, proposed one after another; each acknowledged one is remembered."""

    commands: tuple[bytes, ...]

    async def apply(self, run: ProgramRun) -> None:
        for command in self.commands:
            try:
                result = await run.cluster.propose(command, timeout=STEP_TIMEOUT)
            except ProposalTimeoutError:
                continue  # not acknowledged: it may or may not be applied, both are fine
            run.acknowledged.append(AcknowledgedWrite(result.index, result.term, command))


def linearizable(cluster) -> None:
    """A check for key-value machines: the client history is linearizable (stale reads left out)."""
    verdict = check_linearizability(cluster)
    assert verdict.linearizable, verdict.describe()


def dotted_path(thing: object, role: str) -> str:
    """``module.qualname`` of ``thing``, checked to import back to the same object."""
    module, name = getattr(thing, "__module__", None), getattr(thing, "__qualname__", None)
    where = f"{role} {thing!r}"
    if not module or not name or "<locals>" in name or "<lambda>" in name or module == "__main__":
        raise ValueError(f"{where}: the counterexample file imports it by its dotted path, so it must be "
                         f"defined at the top level of an importable module (got {module}.{name})")
    found = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part, None)
    if found is not thing:
        raise ValueError(f"{where}: importing {module}.{name} gives another object; define it at the top "
                         "level of its module under that name")
    return f"{module}.{name}"


def check_space(space) -> None:
    """Refuse a user space the counterexample file could not replay."""
    if space.state_machine is None:
        if space.commands is not None or space.checks or space.store_factory is not None:
            raise ValueError("commands, store_factory and checks go with your own state_machine; pass it too "
                             "(a built-in one works: state_machine=KeyValueStore with a strategy of its commands)")
        return
    dotted_path(space.state_machine, "state_machine")
    if space.commands is None:
        raise ValueError("state_machine needs commands: a hypothesis strategy of the bytes commands it applies")
    if not hasattr(space.commands, "example"):
        raise ValueError(f"commands must be a hypothesis strategy of bytes, got {space.commands!r}")
    if space.store_factory is not None:
        dotted_path(space.store_factory, "store_factory")
        if space.store != "memory":
            raise ValueError(f"store_factory replaces the store; leave store at 'memory', got {space.store!r}")
    for check in space.checks:
        if not callable(check):
            raise ValueError(f"a check must be a function of the cluster, got {check!r}")
        dotted_path(check, "check")


def user_propose_strategy(space):
    """``ProposeCommands`` steps drawn from the user's strategy."""
    from hypothesis import strategies as st

    return st.builds(ProposeCommands, commands=st.lists(space.commands, min_size=1, max_size=8).map(tuple))


def with_warmup(space, programs):
    """Programs that start with up to ``space.warmup`` of the user's commands (shrinkable)."""
    from hypothesis import strategies as st

    warmups = st.lists(space.commands, max_size=space.warmup).map(lambda drawn: ProposeCommands(tuple(drawn)))
    return st.tuples(warmups, programs).map(
        lambda pair: attrs.evolve(pair[1], steps=(pair[0], *pair[1].steps)) if pair[0].commands else pair[1])


def _import_lines(space) -> tuple[list[str], dict[str, str]]:
    """``from module import Name`` lines, and the name each object goes by in the file."""
    lines, names = [], {}
    objects = [("state_machine", space.state_machine), ("store_factory", space.store_factory)]
    objects += [(f"check {number}", check) for number, check in enumerate(space.checks)]
    for role, thing in objects:
        if thing is None:
            continue
        module, _, name = dotted_path(thing, role).rpartition(".")
        top = name.split(".")[0]
        alias = top if top not in names.values() else f"{top}_{len(names)}"
        lines.append(f"from {module} import {top}" + (f" as {alias}" if alias != top else ""))
        names[role] = alias + name[len(top):]
    return sorted(set(lines)), names


def user_scenario_source(program: Program, space, seed: int, *, headline: str = "") -> str:
    """The scenario file of a program on the user's system (see the module docstring)."""
    used = sorted({type(step).__name__ for step in program.steps} | {"CompactionPolicy", "Program",
                                                                    "run_user_program"})
    imports, names = _import_lines(space)
    steps = "".join(f"        {step!r},\n" for step in program.steps)
    title = textwrap.fill(f"Counterexample: {headline or 'a fault program on your own system'}",
                          width=76, subsequent_indent="    ").replace('"""', "'''")
    streaming = f'{{"chunk_size": {space.chunk_size}'
    streaming += f', "store": {names["store_factory"]}}}' if "store_factory" in names else "}"
    checks = ", ".join(names[f"check {n}"] for n in range(len(space.checks)))
    return (
        f'"""{title}\n\n'
        "Written by raftsim's property search over your own system. Replay it with\n\n"
        "    raftsim run THIS_FILE\n\n"
        "where your package is importable (PYTHONPATH); its DEFAULTS pin the seed and\n"
        "mode it failed with, and it runs exactly as it did in the search.\n"
        '"""\n\n'
        f"from simulator import {', '.join(used)}\n"
        + "".join(f"{line}\n" for line in imports) + "\n"
        f"CLUSTER = {{\"nodes\": {space.nodes}, \"state_machine\": {names['state_machine']}, "
        f"\"compaction\": CompactionPolicy(every={space.compaction_every}, keep_entries={space.keep_entries})}}\n"
        f"MODES = ({space.mode!r},)\n"
        f"STREAMING = {streaming}\n"
        f"DEFECTS = {tuple(space.defects)!r}\n"
        f"DEFAULTS = {{\"seed\": {seed}, \"mode\": {space.mode!r}, \"store\": {space.store!r}}}\n"
        f"CHECKS = ({checks}{',' if len(space.checks) == 1 else ''})\n\n"
        "PROGRAM = Program(\n"
        "    steps=(\n"
        f"{steps}"
        "    ),\n"
        f"    liveness_within={program.liveness_within!r},\n"
        ")\n\n\n"
        "async def scenario(sim):\n"
        "    await run_user_program(sim, PROGRAM, checks=CHECKS)\n"
    )


def _run_checks(run: ProgramRun, checks) -> None:
    for check in checks:
        try:
            check(run.cluster)
        except AssertionError as failure:
            detail = str(failure).splitlines()[0] if str(failure) else "it failed"
            raise run.cluster.monitor.violation(f"check {check.__qualname__}", detail) from failure


async def run_user_program(sim, program: Program, *, checks=()) -> ProgramRun:
    """Run ``program`` on ``sim.cluster`` (your machine) with your ``checks`` after every step
    and after the liveness phase, beside raftsim's own."""
    run = ProgramRun(sim.cluster)
    for number, step in enumerate(program.steps, 1):
        run.say(f"step {number}: {step!r}")
        await step.apply(run)
        run.checks.after_step()
        _run_checks(run, checks)
    await run.liveness(program.liveness_within)
    _run_checks(run, checks)
    return run


__all__ = ["ProposeCommands", "linearizable", "run_user_program"]
