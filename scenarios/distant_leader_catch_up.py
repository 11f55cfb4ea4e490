"""Distant leader catch-up: the newcomer is far from the leader but next to a follower that holds the snapshot.

Three nodes hold ``--param size=...`` bytes of state (12 MiB by default) and
each compacts at the same index, so all three hold the same snapshot. A
newcomer joins in another region: its links to and from the leader carry
``--param wan=...`` bytes per second (2 MB/s), while the rest of the
cluster reaches it over a local 50 MB/s link.

raftsim's Streaming has the leader send the snapshot, so it crosses the slow
link: about six seconds. CockroachDB delegates (``--policy cockroachdb``;
cockroachdb/cockroach#83991): the follower nearest the newcomer that holds
the same snapshot sends it over the fast link, at CockroachDB's 32 MiB/s rate
limit, and the leader only offers it. Compare the catch-up times with
``raftsim compare distant_leader_catch_up --policies raftsim,tikv,cockroachdb``.
"""

from simulator import Param, load_state
from transports import Constant, LinkConfig

CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001), bandwidth=50_000_000)}
MODES = ("streaming",)
PARAMS = {"size": Param(12 * 1024 * 1024, minimum=1, help="bytes of workflow state"),
          "wan": Param(2_000_000.0, minimum=1000.0, help="bytes per second between the leader and the newcomer"),
          "within": Param(60.0, minimum=1.0, help="virtual seconds the newcomer has to catch up")}


async def scenario(sim):
    cluster = sim.cluster
    size, wan, within = sim.params["size"], sim.params["wan"], sim.params["within"]
    leader = await load_state(cluster, size, timeout=600)
    for node in cluster.node_ids:  # the same index everywhere: every node holds the same snapshot
        cluster.compact(node)
    newcomer = max(cluster.node_ids) + 1
    slow = LinkConfig(latency=Constant(0.04), bandwidth=wan)
    cluster.set_link(leader, newcomer, slow)
    cluster.set_link(newcomer, leader, slow)
    sim.say(f"every node holds the same {size / 2**20:.1f} MiB snapshot; n{newcomer} joins {wan / 1e6:g} MB/s "
            f"away from the leader n{leader}, 50 MB/s from the others")
    started = cluster.now()
    caught_up = await sim.join_within(within)
    transfers = [t for t in cluster.transfers() if t.to == newcomer]
    senders = sorted({t.from_ for t in transfers})
    sim.say(f"n{newcomer} caught up in {cluster.now() - started:.1f} s; the snapshot was sent by "
            f"{', '.join(f'n{n}' for n in senders)} ({sum(t.bytes_sent for t in transfers) / 2**20:.1f} MiB)")
    sim.check(caught_up, f"n{newcomer} caught up within {within:g} s")
