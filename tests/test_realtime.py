"""Without a MockClock the cluster runs at wall speed (the live-demo mode)."""

from __future__ import annotations

import trio

from simulator import Cluster, KeyValueStore, run


async def _elect_and_write() -> bytes:
    # Short ticks so the election takes a fraction of a second of real time.
    async with Cluster.open(nodes=3, seed=1, tick_interval=0.01, state_machine=KeyValueStore) as cluster:
        assert not isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
        leader = await cluster.wait_for_leader(timeout=30)
        await cluster.propose(KeyValueStore.put("demo", b"live"), timeout=30)
        await cluster.wait_caught_up(timeout=30)
        return cluster.state_machine(leader).get("demo")


def test_realtime_run_elects_and_commits_on_the_wall_clock():
    assert run(_elect_and_write, realtime=True) == b"live"
