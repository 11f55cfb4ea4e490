"""Compaction race: the leader takes a newer snapshot while an older one is still on its way.

The cluster holds about six chunks' worth of workflows (6 MiB unless
``--chunk-size`` says otherwise) and the leader compacts its log into a
snapshot. Clients then write ``--param writes=...`` more commands (20 by
default), and a fourth node joins: it needs the snapshot. The link is
slowish (50 Mbit/s), so the transfer takes about a second. About one chunk
in, the leader compacts again: a newer snapshot exists, and the log
entries right after the old one are gone.

What to watch in streaming mode: the newcomer learns that a newer snapshot
exists and drops the old transfer part way (its partial data is deleted),
then receives the newer one. Part of the old snapshot was sent for
nothing, but never more than what had crossed the link by then.

What to watch in embedded mode: the old snapshot is one message already on
its way; it arrives and is installed, but the entries after it were
compacted away in the meantime, so the leader has to send the newer
snapshot too, whole. Both modes end with every node in the same state;
compare the bytes sent with ``raftsim compare compaction_race``.
"""

import trio

from simulator import WorkflowExecutor
from transports import Constant, LinkConfig

BANDWIDTH = 6_250_000  # bytes per second: 50 Mbit/s
CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001), bandwidth=BANDWIDTH)}
PARAMS = {"writes": 20}
WORKFLOWS = 24


def transfers_to(cluster, node_id: int):
    return [t for t in cluster.transfers() if t.to == node_id]


async def scenario(sim):
    cluster = sim.cluster
    chunk_size = sim.chunk_size
    payload = sim.workflow_payload(chunks=6, workflows=WORKFLOWS)  # a snapshot a little under six chunks
    leader = await cluster.wait_for_leader()
    sim.say(f"n{leader} leads; the cluster takes {WORKFLOWS} workflows of {payload:,} bytes each")
    await sim.load_workflows(WORKFLOWS, payload)
    await cluster.wait_caught_up(timeout=60)
    first = cluster.compact(leader)
    for number in range(sim.params["writes"]):
        await cluster.propose(WorkflowExecutor.start(f"late-{number}", ["fetch"]))
    sim.say(f"n{leader} holds snapshot {first}, and {sim.params['writes']} newer commands in its log")

    newcomer = max(cluster.node_ids) + 1
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: cluster.add_node(timeout=120))
        await sim.wait_for_transfer(newcomer)
        await trio.sleep(1.2 * chunk_size / BANDWIDTH)  # about one chunk in
        second = cluster.compact(leader)
        [old] = transfers_to(cluster, newcomer)
        sim.say(f"n{leader} now holds snapshot {second}, while snapshot {first} is still on its way "
                f"to n{newcomer} ({old.bytes_done:,} of {old.size:,} bytes received and verified)")
    await cluster.wait_caught_up(timeout=30)

    transfers = transfers_to(cluster, newcomer)
    for transfer in transfers:
        sim.say(f"snapshot {transfer.snapshot_index} to n{newcomer}: {transfer.outcome.value}, "
                f"{transfer.bytes_sent:,} of {transfer.size:,} bytes sent")
    installed = [t.snapshot_index for t in transfers if t.outcome.value == "installed"]
    sim.check(installed[-1:] == [second], f"n{newcomer} ended with the newer snapshot {second}")
    if sim.mode == "streaming":
        sim.check(transfers[0].snapshot_index == first and transfers[0].outcome.value != "installed",
                  f"the transfer of the older snapshot {first} was dropped, not finished")
    else:
        sim.check(installed == [first, second], "the whole old snapshot arrived, then the whole new one")
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              "every node holds the same state")
