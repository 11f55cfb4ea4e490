"""Counterexample: error: SnapshotOutOfDateError

Written by raftsim's property search (simulator.explore.search). Replay it with

    raftsim run THIS_FILE

(its DEFAULTS say --seed 3432 --mode streaming) and it runs exactly
as it did in the search, trace hash and all.
"""

from simulator import CompactionPolicy, Crash, FailStoreRead, Program, Propose, run_program

from simulator import FailStoreRead, faulty_memory_stores
from transports import Exponential, LinkConfig

CLUSTER = {"nodes": 3, "compaction": CompactionPolicy(every=10, keep_entries=2)}
MODES = ('streaming',)
STREAMING = {"chunk_size": 4096}
DEFECTS = ()
DEFAULTS = {"seed": 3432, "mode": 'streaming', "store": 'memory'}

PROGRAM = Program(
    steps=(
        Propose(count=1),
        Propose(count=8),
        FailStoreRead(after=0),
        Crash(node=2),
    ),
    liveness_within=30.0,
)


async def scenario(sim):
    await run_program(sim, PROGRAM, payload_size=1024, warmup=20)


# Swarm configuration of seed 3432: {'nodes': 3, 'mode': 'streaming', 'store': 'faulty', 'chunk_size': 4096, 'link': 'reordering', 'steps': ('Crash', 'Restart', 'Resume', 'AddNode', 'Compact', 'TransferLeader', 'FailStoreRead'), 'chunk_actions': ()}
CLUSTER = {**CLUSTER, "link": LinkConfig(latency=Exponential(0.005, 0.0005), duplicate=0.02, reorder=0.05)}
STREAMING = {"chunk_size": 4096, "store": faulty_memory_stores}
