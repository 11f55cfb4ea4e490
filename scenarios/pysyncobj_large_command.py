"""pysyncobj large command: a command over 64 KiB is split in pieces, and followers raise before the last one.

Real pysyncobj 0.3.17 nodes (``--engine pysyncobj``). A log entry of at
least ``appendEntriesBatchSizeBytes`` (64 KiB) travels in pieces labelled
``start``, ``process`` and ``finish``. The leader labels a piece ``finish``
as soon as ``offset + 64 KiB >= len(command)``, but the pieces cut the
*pickled entry*, which is longer than the command; so pieces before the
last can be labelled ``finish``. Each follower then unpickles a truncated
entry and raises (``UnicodeDecodeError`` or ``EOFError``) out of its
message handler, once per early ``finish`` piece. Commands with bytes
above 0x7f make it certain: pickle protocol 2 stores them as latin-1 text
in UTF-8, twice over, so the pickled entry is about twice the command.
ASCII commands hit it only when their size is just under a multiple of
64 KiB. The follower recovers when the true last piece arrives (the
partial data was kept), but a program driving ``doTick`` itself gets the
exception, and pysyncobj's own tick thread logs it.

By default the workaround is off and the run fails (exit 1). With
``--param workaround=on`` the adapter raises ``appendEntriesBatchSizeBytes``
above the largest command it accepts, so no command is ever split.
See ``docs/pysyncobj-bugs.md``.
"""

from simulator import Param, PysyncobjWorkarounds, WorkflowExecutor
from transports import Constant, LinkConfig

ENGINES = ("pysyncobj",)
FAILS_ON_PURPOSE = "a pysyncobj bug; --param workaround=on avoids it"
CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001))}
PARAMS = {"workaround": Param("off", choices=("on", "off")), "size": 100_000}


def pysyncobj_options(params):
    return {"workarounds": PysyncobjWorkarounds(unsplit_commands=params["workaround"] == "on")}


async def scenario(sim):
    cluster = sim.cluster
    size = sim.params["size"]
    leader = await cluster.wait_for_leader()
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sim.say(f"n{leader} leads; a client starts a workflow carrying {size:,} bytes, most of them above 0x7f")
    result = await cluster.propose(WorkflowExecutor.start("wf-large", ["fetch"], payload))
    await cluster.check_liveness(within=10)
    pieces = [r for r in cluster.trace.of_kind("send") if r.get("type") == "entry_piece"]
    problems = cluster.engine_problems()
    sim.say(f"the command became entry {result.index}; it travelled in {len(pieces)} pieces")
    for problem in problems:
        sim.say(f"pysyncobj: {problem}")
    sim.check(not problems, "no follower raised while receiving the command's pieces")
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              "every node holds the same state")
