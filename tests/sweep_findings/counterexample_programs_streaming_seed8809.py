"""Counterexample: a node that lost its snapshot is caught up by the leader

Written by raftsim's property search (simulator.explore.search). Replay it with

    raftsim run THIS_FILE

(its DEFAULTS say --seed 8809 --mode streaming) and it runs exactly
as it did in the search, trace hash and all.
"""

from simulator import CompactionPolicy, Crash, FailStoreRead, Program, Propose, run_program

from simulator import FailStoreRead, faulty_memory_stores
from transports import LinkConfig, Uniform

CLUSTER = {"nodes": 5, "compaction": CompactionPolicy(every=10, keep_entries=2)}
MODES = ('streaming',)
STREAMING = {"chunk_size": 4096}
DEFECTS = ()
DEFAULTS = {"seed": 8809, "mode": 'streaming', "store": 'memory'}

PROGRAM = Program(
    steps=(
        FailStoreRead(after=3),
        Propose(count=8),
        Crash(node=1),
    ),
    liveness_within=30.0,
)


async def scenario(sim):
    await run_program(sim, PROGRAM, payload_size=1024, warmup=20)


# Swarm configuration of seed 8809: {'nodes': 5, 'mode': 'streaming', 'store': 'faulty', 'chunk_size': 4096, 'link': 'jitter', 'steps': ('Isolate', 'OneWay', 'Crash', 'Restart', 'Pause', 'FailStoreRead'), 'chunk_actions': ()}
CLUSTER = {**CLUSTER, "link": LinkConfig(latency=Uniform(0.0005, 0.02))}
STREAMING = {"chunk_size": 4096, "store": faulty_memory_stores}
