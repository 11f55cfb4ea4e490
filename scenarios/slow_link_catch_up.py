"""Slow link catch-up: a newcomer needs a snapshot larger than its link carries in five seconds.

The cluster holds ``--param size=...`` bytes of workflow state (12 MiB by
default) and the newcomer's link carries 2 MB/s, so the snapshot needs
about six seconds on the wire. Nothing else goes wrong.

raftsim's Streaming sends it in chunks and finishes in about six seconds.
etcd's policy (``--policy etcd``) sends the whole snapshot in one message
and its receiver reads each message with a fixed five-second timeout: the
message is cut off every time, the leader sends it again, and the
newcomer never catches up. That is etcd-io/etcd#16377, where an 87 MB
snapshot never arrived: a deadline that does not scale with the size
makes a large enough snapshot impossible to send. Zeebe (``--policy
zeebe``) fails the same way one level down (camunda#14671): a chunk is a
whole snapshot file, each must be answered within 2.5 s, and a timeout
starts the transfer over at the first chunk. Try
``raftsim compare slow_link_catch_up --policies all``.
"""

from simulator import Param, load_state
from transports import Constant, LinkConfig

CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001), bandwidth=2_000_000)}
PARAMS = {"size": Param(12 * 1024 * 1024, minimum=1, help="bytes of workflow state"),
          "within": Param(60.0, minimum=1.0, help="virtual seconds the newcomer has to catch up")}


async def scenario(sim):
    cluster = sim.cluster
    size, within = sim.params["size"], sim.params["within"]
    leader = await load_state(cluster, size, timeout=600)
    cluster.compact(leader)
    sim.say(f"n{leader} holds {size / 2**20:.1f} MiB of state in its snapshot; a newcomer joins over a "
            f"2 MB/s link, so the snapshot needs about {size / 2_000_000:.1f} s on the wire")
    started = cluster.now()
    newcomer = max(cluster.node_ids) + 1
    caught_up = await sim.join_within(within)
    transfers = [t for t in cluster.transfers() if t.to == newcomer]
    sent = sum(t.bytes_sent for t in transfers)
    sim.say(f"{len(transfers)} transfer(s) to n{newcomer} sent {sent / 2**20:.1f} MiB in "
            f"{cluster.now() - started:.1f} s")
    sim.check(caught_up, f"n{newcomer} caught up within {within:g} s")
