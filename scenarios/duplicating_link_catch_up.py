"""Duplicating link catch-up: the network now and then delivers a message twice while a snapshot streams.

The cluster holds ``--param size=...`` bytes of state (48 MiB by default);
the links carry 20 MB/s and deliver ``--param duplicate=...`` of the
messages twice (10 %), as a retrying proxy or a flapping route does. Nothing
is lost.

raftsim ignores a chunk it already verified, so the duplicates cost only
their own bytes. openraft (``--policy openraft``) checks that each chunk
starts exactly where the receiver stands; a late copy of an earlier chunk
is a ``SnapshotMismatch``, and the sender goes back to offset 0 (openraft
fd5c657f, "Chunked should reset offset 0 when a SnapshotMismatch error is
received"): every duplicate during the transfer throws the snapshot away,
and the larger the snapshot the less likely a transfer gets through
without one. Try
``raftsim compare duplicating_link_catch_up --policies raftsim,openraft``.
"""

from simulator import Param, load_state
from transports import Constant, LinkConfig

CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001), bandwidth=20_000_000)}
MODES = ("streaming",)
PARAMS = {"size": Param(48 * 1024 * 1024, minimum=1, help="bytes of workflow state"),
          "duplicate": Param(0.1, minimum=0.0, maximum=1.0, help="share of messages the links deliver twice"),
          "within": Param(60.0, minimum=1.0, help="virtual seconds the newcomer has to catch up")}


async def scenario(sim):
    cluster = sim.cluster
    size, duplicate, within = sim.params["size"], sim.params["duplicate"], sim.params["within"]
    leader = await load_state(cluster, size, timeout=600)
    cluster.compact(leader)
    cluster.set_links(LinkConfig(latency=Constant(0.001), bandwidth=20_000_000, duplicate=duplicate))
    newcomer = max(cluster.node_ids) + 1
    sim.say(f"n{leader} holds {size / 2**20:.1f} MiB of state; n{newcomer} joins, and the links deliver "
            f"{duplicate:.0%} of the messages twice")
    started = cluster.now()
    caught_up = await sim.join_within(within)
    transfers = [t for t in cluster.transfers() if t.to == newcomer]
    sent = sum(t.bytes_sent for t in transfers)
    resent = sum(t.resent_bytes for t in transfers)
    sim.say(f"{len(transfers)} transfer(s) to n{newcomer}: {sent / 2**20:.1f} MiB sent, {resent / 2**20:.1f} MiB "
            f"of them again, in {cluster.now() - started:.1f} s")
    sim.check(caught_up, f"n{newcomer} caught up within {within:g} s despite the duplicates")
