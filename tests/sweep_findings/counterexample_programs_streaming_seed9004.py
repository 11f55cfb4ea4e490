"""Counterexample: error: SnapshotOutOfDateError

Written by raftsim's property search (simulator.explore.search). Replay it with

    raftsim run THIS_FILE

(its DEFAULTS say --seed 9004 --mode streaming) and it runs exactly
as it did in the search, trace hash and all.
"""

from simulator import CompactionPolicy, Crash, FailStoreRead, Program, Propose, run_program

from simulator import FailStoreRead, faulty_memory_stores
from transports import LinkConfig

CLUSTER = {"nodes": 3, "compaction": CompactionPolicy(every=10, keep_entries=2)}
MODES = ('streaming',)
STREAMING = {"chunk_size": 4096}
DEFECTS = ()
DEFAULTS = {"seed": 9004, "mode": 'streaming', "store": 'memory'}

PROGRAM = Program(
    steps=(
        Propose(count=7),
        Propose(count=2),
        FailStoreRead(after=3),
        Crash(node=1),
    ),
    liveness_within=30.0,
)


async def scenario(sim):
    await run_program(sim, PROGRAM, payload_size=1024, warmup=20)


# Swarm configuration of seed 9004: {'nodes': 3, 'mode': 'streaming', 'store': 'faulty', 'chunk_size': 4096, 'link': 'constant', 'steps': ('Partition', 'OneWay', 'Crash', 'Pause', 'RemoveNode', 'FailStoreRead'), 'chunk_actions': ()}
CLUSTER = {**CLUSTER, "link": LinkConfig()}
STREAMING = {"chunk_size": 4096, "store": faulty_memory_stores}
