"""Fault programs: a cluster's whole story as a list of small values.

A :class:`Program` is a tuple of steps — ``Propose(count=3)``,
``Isolate(node=2)``, ``FailChunk(k=2, action="cut")``, ``Wait(seconds=1.5)``
... — run one after another by one task, so the same program and seed give
the same trace. Every step's ``repr`` is the Python that builds it, so a
program that broke something can be printed, pasted into a scenario file and
replayed (:mod:`simulator.explore.search` writes such files).

A step that does not apply (a node the cluster lacks, restarting a node that
is up, removing the last three members) does nothing: every program is
valid, which lets hypothesis draw and shrink them freely.

:func:`run_program` runs the steps, checks the properties the incremental
:class:`~simulator.monitor.InvariantMonitor` cannot see after every step
(:class:`ProgramChecks`), then runs the liveness phase: faults stop, the
network heals, crashed nodes restart, and within ``liveness_within``
seconds every live node must have applied every committed entry, and every
acknowledged write must be there.
"""

from __future__ import annotations

import attrs
import trio

from ..checks.stores import unbacked_snapshots
from ..checks.transfers import installed_then_failed, restart_from_zero
from ..cluster.client import LivenessError, ProposalTimeoutError
from ..cluster.reads import ReadTimeoutError
from ..cluster.restart import state_digest
from ..machines.state_machines import WorkflowExecutor
from ..observe.trace import CLUSTER, SCENARIO
from .disk_faults import heal_disks

#: Seconds a proposal, a membership change or a leader transfer may take.
STEP_TIMEOUT = 3.0


# -- steps ---------------------------------------------------------------------------


@attrs.frozen
class Propose:
    """``count`` client commands, one after another; each acknowledged one is remembered."""

    count: int = 1

    async def apply(self, run: ProgramRun) -> None:
        for _ in range(self.count):
            await run.propose()


@attrs.frozen
class Wait:
    """Let ``seconds`` of virtual time pass."""

    seconds: float

    async def apply(self, run: ProgramRun) -> None:
        await trio.sleep(self.seconds)


@attrs.frozen
class Partition:
    """Nodes talk only within ``group`` and within the rest."""

    group: tuple[int, ...]

    async def apply(self, run: ProgramRun) -> None:
        ids = run.cluster.node_ids
        inside = tuple(n for n in self.group if n in ids)
        outside = tuple(n for n in ids if n not in inside)
        if inside and outside:
            run.cluster.partition(inside, outside)


@attrs.frozen
class Heal:
    async def apply(self, run: ProgramRun) -> None:
        run.cluster.heal()


@attrs.frozen
class Isolate:
    node: int

    async def apply(self, run: ProgramRun) -> None:
        if self.node in run.cluster.node_ids:
            run.cluster.isolate(self.node)


@attrs.frozen
class OneWay:
    """Messages from ``src`` to ``dst`` are lost."""

    src: int
    dst: int

    async def apply(self, run: ProgramRun) -> None:
        ids = run.cluster.node_ids
        if self.src != self.dst and self.src in ids and self.dst in ids:
            run.cluster.one_way(self.src, self.dst)


@attrs.frozen
class Crash:
    node: int

    async def apply(self, run: ProgramRun) -> None:
        if run.is_member(self.node) and run.cluster.is_up(self.node):
            run.cluster.crash(self.node)


@attrs.frozen
class Restart:
    node: int

    async def apply(self, run: ProgramRun) -> None:
        if run.is_member(self.node) and not run.cluster.is_up(self.node):
            run.cluster.restart(self.node)


@attrs.frozen
class Pause:
    node: int

    async def apply(self, run: ProgramRun) -> None:
        if run.is_member(self.node) and run.cluster.is_up(self.node) and not run.cluster.is_paused(self.node):
            run.cluster.pause(self.node)


@attrs.frozen
class Resume:
    node: int

    async def apply(self, run: ProgramRun) -> None:
        if run.cluster.is_paused(self.node):
            run.cluster.resume(self.node)


@attrs.frozen
class ClockDrift:
    """``node``'s clock runs ``percent`` % fast (or slow, if negative) from now on; 0 heals it."""

    node: int
    percent: float

    async def apply(self, run: ProgramRun) -> None:
        if self.node in run.cluster.node_ids and self.percent > -100:
            run.cluster.drift_clock(self.node, self.percent)


@attrs.frozen
class ClockJump:
    """``node``'s clock leaps ``seconds`` ahead, or back if negative (an NTP step)."""

    node: int
    seconds: float

    async def apply(self, run: ProgramRun) -> None:
        if self.node in run.cluster.node_ids and self.seconds != 0:
            run.cluster.jump_clock(self.node, self.seconds)


@attrs.frozen
class AddNode:
    """A new node joins as a learner, catches up (by snapshot if the log was compacted), is promoted."""

    async def apply(self, run: ProgramRun) -> None:
        try:
            await run.cluster.add_node(timeout=4 * STEP_TIMEOUT)
        except (ProposalTimeoutError, LivenessError):
            pass  # faults got in the way; the node keeps trying in the background


@attrs.frozen
class RemoveNode:
    """``node`` leaves the membership (never below three members)."""

    node: int

    async def apply(self, run: ProgramRun) -> None:
        if run.is_member(self.node) and len(run.members()) > 3:
            try:
                await run.cluster.remove_node(self.node, timeout=STEP_TIMEOUT)
            except (ProposalTimeoutError, LivenessError):
                pass


@attrs.frozen
class Compact:
    """``node`` snapshots its state machine and discards its log now."""

    node: int

    async def apply(self, run: ProgramRun) -> None:
        if run.is_member(self.node) and run.cluster.is_up(self.node) and not run.cluster.is_paused(self.node):
            run.cluster.compact(self.node)


@attrs.frozen
class FailChunk:
    """Arm a chunk fault: ``action`` happens to the ``k``-th snapshot chunk sent from now on."""

    k: int
    action: str
    restart_after: float | None = 1.0

    async def apply(self, run: ProgramRun) -> None:
        crashes = self.action in ("crash_sender", "crash_receiver")
        run.cluster.fail_chunk(
            self.k, self.action, delay=2.0 if self.action == "delay" else 0.0,
            restart_after=self.restart_after if crashes else None,
        )


@attrs.frozen
class TransferLeader:
    node: int

    async def apply(self, run: ProgramRun) -> None:
        leader = run.cluster.leader_id()
        if leader is not None and leader != self.node and run.is_member(self.node):
            run.cluster.transfer_leader(self.node)


@attrs.frozen
class Read:
    """A linearizable read (ReadIndex) of the newest acknowledged workflow, at ``node`` or the leader.

    The cluster's ReadChecker checks the read index covers every write
    acknowledged before the read; here the value must show that workflow too.
    """

    node: int | None = None

    async def apply(self, run: ProgramRun) -> None:
        if not run.acknowledged:
            return
        write = run.acknowledged[-1]
        cluster = run.cluster
        via = self.node if self.node in cluster.node_ids and cluster.is_up(self.node) else None
        try:
            result = await cluster.read(write.key, node=via, timeout=STEP_TIMEOUT)
        except ReadTimeoutError:
            return  # faults got in the way: an unanswered read is allowed, a wrong one is not
        if result.value is None:
            raise run.checks._violation(
                "linearizable read",
                f"a read of {write.key!r} at node {result.node_id} (read index {result.read_index}) "
                f"found nothing, though the write was acknowledged at index {write.index}",
            )


@attrs.frozen
class ChangeMembership:
    """Joint consensus: ``add`` new nodes and remove ``remove`` in one change (never below three voters)."""

    add: int = 1
    remove: tuple[int, ...] = ()

    async def apply(self, run: ProgramRun) -> None:
        members = run.members()
        remove = tuple(sorted({n for n in self.remove if n in members}))
        if len(members) + self.add - len(remove) < 3:
            return
        try:
            await run.cluster.change_membership(add=self.add, remove=remove, timeout=4 * STEP_TIMEOUT)
        except (ProposalTimeoutError, LivenessError):
            pass  # faults got in the way; the joint configuration is left once they stop


STEPS = (Propose, Wait, Partition, Heal, Isolate, OneWay, Crash, Restart, Pause, Resume,
         AddNode, RemoveNode, Compact, FailChunk, TransferLeader, Read, ChangeMembership, ClockDrift, ClockJump)


@attrs.frozen
class Program:
    """Steps run in order, then the liveness phase (see the module docstring)."""

    steps: tuple = ()
    liveness_within: float = 30.0

    def __len__(self) -> int:
        return len(self.steps)


# -- running -------------------------------------------------------------------------


@attrs.frozen
class AcknowledgedWrite:
    index: int
    term: int
    command: bytes
    key: str = ""


class ProgramRun:
    """One program on one cluster: the steps' shared state and the per-step checks."""

    def __init__(self, cluster, *, payload_size: int = 1024) -> None:
        self.cluster = cluster
        self.payload_size = payload_size
        self.proposed = 0
        self.acknowledged: list[AcknowledgedWrite] = []
        self.checks = ProgramChecks(self)

    def members(self) -> list[int]:
        return self.cluster.members()

    def is_member(self, node_id: int) -> bool:
        return node_id in self.cluster.members()

    async def propose(self) -> None:
        self.proposed += 1
        number = self.proposed
        # A payload makes the state, and so each snapshot, span several chunks.
        key = f"wf-{number}"
        command = WorkflowExecutor.start(key, ("fetch", "build"), b"%06d" % number + bytes(self.payload_size))
        try:
            result = await self.cluster.propose(command, timeout=STEP_TIMEOUT)
        except ProposalTimeoutError:
            return  # not acknowledged: it may or may not be applied, both are fine
        self.acknowledged.append(AcknowledgedWrite(result.index, result.term, command, key))

    def say(self, text: str) -> None:
        self.cluster.trace.event(trio.current_time(), CLUSTER, "say", SCENARIO, text=text)

    async def run(self, program: Program) -> None:
        for number, step in enumerate(program.steps, 1):
            self.say(f"step {number}: {step!r}")
            await step.apply(self)
            self.checks.after_step()
        await self.liveness(program.liveness_within)

    async def liveness(self, within: float) -> None:
        """Faults stop; then every live member must catch up, and keep every acknowledged write."""
        cluster = self.cluster
        self.say("liveness phase: faults stop, the network heals, every node is back")
        cluster.disarm_chunk_faults()
        heal_disks(self)
        cluster.heal()
        cluster.reset_links()
        for node_id in self.members():
            if cluster.is_paused(node_id):
                cluster.resume(node_id)
            elif not cluster.is_up(node_id):
                cluster.restart(node_id)
        await cluster.check_liveness(within=within)
        self.checks.after_step()
        self.checks.acknowledged_writes_applied()
        self.checks.replicas_agree()
        self.checks.snapshots_read_back()
        self.checks.transfers_keep_their_progress()


class ProgramChecks:
    """The properties checked after every step, beyond the monitor's (DESIGN section 8)."""

    def __init__(self, run: ProgramRun) -> None:
        self.run = run

    def after_step(self) -> None:
        self.no_acknowledged_write_lost()
        self.resumes_resend_at_most_one_chunk()
        self.log_discarded_only_under_a_durable_snapshot()

    def transfers_keep_their_progress(self) -> None:
        """At the end of a run: snapshot liveness (:mod:`simulator.checks.transfers`), no verified
        bytes thrown away, no acknowledged install reported failed. Only for modes that promise
        to resume (reading the whole trace once, not after every step)."""
        cluster = self.run.cluster
        if getattr(cluster.snapshot_mode, "resume", None) != "verified_offset":
            return
        records = cluster.trace.records
        for finding in restart_from_zero(records):
            raise self._violation("a transfer keeps the bytes it verified", finding)
        for finding in installed_then_failed(records):
            raise self._violation("an acknowledged install is never discarded by its sender", finding)

    def snapshots_read_back(self) -> None:
        """At the end of a run: every member's newest snapshot reads back from its store with the
        digest Raft recorded (:mod:`simulator.checks.stores`), so a disk fault nobody noticed
        cannot pass in silence."""
        for finding in unbacked_snapshots(self.run.cluster, self.run.members()):
            raise self._violation("a node's snapshot is backed by its store", finding)

    def _violation(self, invariant: str, detail: str):
        # Through the monitor, so the error carries the last trace events as its own do.
        return self.run.cluster.monitor.violation(invariant, detail)

    def no_acknowledged_write_lost(self) -> None:
        committed = self.run.cluster.monitor.committed_entries
        for write in self.run.acknowledged:
            known = committed.get(write.index)
            if known is not None and known[0] != write.term:
                raise self._violation(
                    "no acknowledged write is lost",
                    f"the client was told its write committed at index {write.index} in term "
                    f"{write.term}; the entry committed there now is of term {known[0]}",
                )

    def acknowledged_writes_applied(self) -> None:
        """After the liveness phase: every live member applied every acknowledged write."""
        cluster = self.run.cluster
        applied = cluster.monitor.applied_entries
        for write in self.run.acknowledged:
            entry = applied.get(write.index)
            if entry is None or (entry[0], entry[1]) != (write.term, write.command):
                raise self._violation(
                    "no acknowledged write is lost",
                    f"the write acknowledged at index {write.index} (term {write.term}) is not the "
                    f"entry applied there ({'nothing' if entry is None else f'term {entry[0]}'})",
                )
            for node_id in self.run.members():
                have = cluster.runners[node_id].node.raft.raft_log.applied
                if have < write.index:
                    raise self._violation(
                        "no acknowledged write is lost",
                        f"node {node_id} applied up to {have}, short of the write acknowledged "
                        f"at index {write.index}",
                    )

    def replicas_agree(self) -> None:
        """After the liveness phase: no member still waits for the snapshot it lost, and
        members that applied the same index hold the same state (the monitor's invariant,
        checked at the end of the run as well as at snapshot points)."""
        cluster = self.run.cluster
        for node_id in self.run.members():
            runner = cluster.runners[node_id]
            wait = getattr(runner, "snapshot_wait", None)
            if wait is not None:
                raise self._violation(
                    "a node that lost its snapshot is caught up by the leader",
                    f"node {node_id} lost snapshot {wait.lost_index} ({wait.reason}) and still waits",
                )
            applied = runner.node.raft.raft_log.applied
            cluster.monitor.state_at(node_id, applied, state_digest(runner.state_machine, applied))

    def resumes_resend_at_most_one_chunk(self) -> None:
        mode = self.run.cluster.snapshot_mode
        window = getattr(mode, "chunk_size", None)
        if window is None:  # embedded: all or nothing, nothing to resume
            return
        window *= mode.chunks_in_flight
        for transfer in self.run.cluster.transfers():
            if transfer.mode == "streaming" and transfer.largest_resend > window:
                raise self._violation(
                    "a resumed transfer re-sends at most one chunk",
                    f"the transfer of snapshot {transfer.snapshot_index} to node {transfer.to} resumed "
                    f"asking for {transfer.largest_resend} bytes again; at most {window} "
                    f"(chunk size x chunks in flight) were in flight",
                )

    def log_discarded_only_under_a_durable_snapshot(self) -> None:
        cluster = self.run.cluster
        for node_id in cluster.node_ids:
            if getattr(cluster.runners[node_id], "snapshot_wait", None) is not None:
                continue  # it lost that snapshot on disk, knows it, and waits for the leader's
            storage = cluster.storage(node_id)
            covered = storage.snapshot_metadata.index
            if storage.first_index() > covered + 1:
                raise self._violation(
                    "log entries are discarded only under a durable snapshot",
                    f"node {node_id} discarded its log up to {storage.first_index() - 1}, "
                    f"its snapshot covers only up to {covered}",
                )
            store = storage.data_store
            if covered and store is not None and not store.has_snapshot(covered):
                raise self._violation(
                    "log entries are discarded only under a durable snapshot",
                    f"node {node_id} discarded its log up to {covered} but its snapshot store "
                    f"no longer holds snapshot {covered}",
                )


async def run_program(sim, program: Program, *, payload_size: int = 1024, warmup: int = 0) -> ProgramRun:
    """Run ``program`` on ``sim.cluster`` (a scenario's ``sim``, or anything with ``.cluster``),
    after ``warmup`` commands (acknowledged writes like any other)."""
    run = ProgramRun(sim.cluster, payload_size=payload_size)
    if warmup:
        run.say(f"warm-up: {warmup} commands")
        await Propose(count=warmup).apply(run)
    await run.run(program)
    return run
