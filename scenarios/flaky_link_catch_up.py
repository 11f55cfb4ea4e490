"""Flaky link catch-up: the newcomer's link drops for a moment every few seconds while a snapshot streams.

The cluster holds ``--param size=...`` bytes of state (12 MiB by default),
the links carry 4 MB/s, and the newcomer is cut off for ``--param
outage`` seconds every ``--param period`` seconds, so the snapshot (about
three seconds on the wire) is interrupted again and again.

raftsim resumes each interrupted transfer from the newcomer's last
verified offset: every outage costs at most the chunks in flight, and the
newcomer catches up. A policy that starts an interrupted transfer over
from the first byte (hashicorp/raft, openraft, Zeebe, TiKV and CockroachDB:
``--policy hashicorp``) needs an unbroken stretch as long as the whole
transfer, which this link never gives: the same bytes cross the wire again
and again and the newcomer never catches up (the loop of hashicorp/raft#212
and camunda#11496, which asks for resumption). Try
``raftsim compare flaky_link_catch_up --policies all``.
"""

import trio

from simulator import Param, load_state
from transports import Constant, LinkConfig

CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001), bandwidth=4_000_000)}
MODES = ("streaming",)
PARAMS = {"size": Param(12 * 1024 * 1024, minimum=1, help="bytes of workflow state"),
          "period": Param(2.0, minimum=0.5, help="seconds between outages"),
          "outage": Param(0.3, minimum=0.01, help="seconds each outage lasts"),
          "within": Param(60.0, minimum=1.0, help="virtual seconds the newcomer has to catch up")}


async def scenario(sim):
    cluster = sim.cluster
    size, period, outage, within = (sim.params[name] for name in ("size", "period", "outage", "within"))
    leader = await load_state(cluster, size, timeout=600)
    cluster.compact(leader)
    newcomer = max(cluster.node_ids) + 1
    sim.say(f"n{leader} holds {size / 2**20:.1f} MiB of state; n{newcomer} joins, and its link drops for "
            f"{outage:g} s every {period:g} s")
    started = cluster.now()

    async def flaky_link():
        while True:
            await trio.sleep(period - outage)
            if newcomer in cluster.node_ids:
                cluster.isolate(newcomer)
                await trio.sleep(outage)
                cluster.heal()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flaky_link)
        caught_up = await sim.join_within(within)
        nursery.cancel_scope.cancel()
    cluster.heal()
    transfers = [t for t in cluster.transfers() if t.to == newcomer]
    sent = sum(t.bytes_sent for t in transfers)
    resent = sum(t.resent_bytes for t in transfers)
    sim.say(f"{len(transfers)} transfer(s) to n{newcomer}: {sent / 2**20:.1f} MiB sent, {resent / 2**20:.1f} MiB "
            f"of them again, in {cluster.now() - started:.1f} s")
    sim.check(caught_up, f"n{newcomer} caught up within {within:g} s despite the outages")
