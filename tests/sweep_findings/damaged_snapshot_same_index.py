"""A node's newest snapshot is damaged on disk while it is down, and the leader's newest is the same index.

Hand-written after the sweep's seeds 3432 and 9004 (a lost snapshot re-fetched at
the same index): with a flipped byte rather than a failed read, the store still
listed the damaged copy, the node took it for the leader's offer (no transfer
needed), and the install read the bad bytes (``SnapshotCorruptError`` crashed
the run). The node now drops a copy that fails its digest when it restarts, and
receives the index afresh. Seed 2 is one where the indexes coincide.
"""

from simulator import CompactionPolicy, Crash, Program, Propose, run_program
from simulator.explore.damage import DamageStore

CLUSTER = {"nodes": 3, "compaction": CompactionPolicy(every=10, keep_entries=2)}
MODES = ("streaming",)
DEFECTS = ()
DEFAULTS = {"seed": 2, "mode": "streaming", "store": "disk"}

PROGRAM = Program(
    steps=(Propose(count=9), Crash(node=2), DamageStore(node=2, how="flip_byte")),
    liveness_within=30.0,
)


async def scenario(sim):
    await run_program(sim, PROGRAM, payload_size=1024, warmup=20)
