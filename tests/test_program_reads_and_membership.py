"""The property search's vocabulary for reads and joint membership changes (issue 17).

``Read`` reads the newest acknowledged workflow through ReadIndex (the
cluster's ReadChecker and the step itself check what it returns);
``ChangeMembership`` replaces members through a joint configuration. Both
do nothing where they do not apply, as every step does, and both are drawn
by ``fault_programs``.
"""

from __future__ import annotations

import pytest
from hypothesis import find

from simulator import (
    ChangeMembership,
    Cluster,
    CompactionPolicy,
    InvariantViolation,
    Program,
    ProgramRun,
    Propose,
    Read,
    SearchSpace,
    fault_programs,
)
from simulator.explore.programs import AcknowledgedWrite
from transports import Embedded, Streaming


def cluster(mode):
    return Cluster.open(nodes=3, seed=11, snapshot_mode=mode,
                        compaction=CompactionPolicy(every=10, keep_entries=2))


@pytest.mark.parametrize("mode", [Embedded(), Streaming(chunk_size=1024)], ids=["embedded", "streaming"])
async def test_a_program_reads_and_swaps_members_and_passes_every_check(autojump_clock, mode):
    async with cluster(mode) as running:
        run = ProgramRun(running, payload_size=256)
        program = Program((Propose(count=12), Read(), Read(node=2), ChangeMembership(add=2, remove=(1, 2)),
                           Propose(count=3), Read()), liveness_within=20.0)
        await run.run(program)
        assert running.read_checker.reads_checked == 3
        assert running.members() == [3, 4, 5]
        run.checks.acknowledged_writes_applied()


async def test_a_read_that_misses_an_acknowledged_write_is_reported(autojump_clock):
    async with cluster(Embedded()) as running:
        run = ProgramRun(running, payload_size=16)
        await Propose(count=2).apply(run)
        run.acknowledged.append(AcknowledgedWrite(index=1, term=1, command=b"", key="wf-never"))
        with pytest.raises(InvariantViolation, match="^linearizable read: a read of 'wf-never'"):
            await Read().apply(run)


async def test_change_membership_never_leaves_fewer_than_three_voters(autojump_clock):
    async with cluster(Embedded()) as running:
        run = ProgramRun(running, payload_size=16)
        await Propose(count=2).apply(run)
        await ChangeMembership(add=0, remove=(1,)).apply(run)
        assert running.members() == [1, 2, 3]


def test_both_steps_are_in_the_search_vocabulary():
    space = SearchSpace(max_steps=12)
    for kind in (Read, ChangeMembership):
        found = find(fault_programs(space), lambda p, kind=kind: any(isinstance(s, kind) for s in p.steps))
        assert any(isinstance(step, kind) for step in found.steps)
        assert eval(repr(found), {"Program": Program, kind.__name__: kind}) == found
