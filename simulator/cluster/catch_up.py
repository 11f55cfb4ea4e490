"""How long, how many bytes and how much memory a newcomer's catch-up by snapshot costs.

:func:`measure_catch_up` runs one standard experiment: a three-node cluster
takes ``state_size`` bytes of workflow state, its leader compacts the log,
and a fourth node joins, so the only way it can catch up is the snapshot.
:func:`sweep_catch_up` repeats it over snapshot sizes and transfer modes,
for the side-by-side plots of :func:`simulator.plot_catch_up`. :func:`load_state`
is the first half of the experiment on its own, for stories of your own::

    from simulator import run, sweep_catch_up
    from transports import Embedded, Streaming

    runs = run(sweep_catch_up, [256 * 1024, 1024 * 1024], [Embedded(), Streaming(chunk_size=64 * 1024)])

Each result keeps its cluster, so any one run can be looked at closely
afterwards (``plot_transfers(result.cluster)``, ``plot_memory(result.cluster)``).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from transports import Constant, LinkConfig, SnapshotMode

from ..machines.state_machines import WorkflowExecutor
from .cluster import Cluster

#: 100 Mbit/s and 1 ms: a snapshot's size shows in its transfer time.
DEFAULT_LINK = LinkConfig(latency=Constant(0.001), bandwidth=12_500_000)
#: State is loaded in workflows of up to this many bytes each.
PIECE = 256 * 1024
#: About what the state machine keeps per workflow besides its payload.
BOOKKEEPING = 128


@attrs.frozen
class CatchUp:
    """One newcomer's catch-up by snapshot.

    - ``catch_up_seconds``: virtual time from the moment the node was added
      to the moment it installed the snapshot;
    - ``snapshot_bytes_sent``: snapshot data that crossed the wire for it,
      re-sends included;
    - ``wire_bytes``: every byte sent on any link meanwhile (Raft messages,
      stream control, headers);
    - ``peak_memory`` / ``leader_peak_memory``: the most snapshot bytes the
      newcomer / the leader held in memory at once (``Cluster.snapshot_memory``).
    """

    mode: str
    state_size: int
    snapshot_size: int
    catch_up_seconds: float
    snapshot_bytes_sent: int
    wire_bytes: int
    peak_memory: int
    leader_peak_memory: int
    newcomer: int
    leader: int
    cluster: Cluster = attrs.field(eq=False, repr=False)

    def summary(self) -> dict[str, object]:
        """The figures as a dict (one row of a table), without the cluster."""
        return attrs.asdict(self, filter=lambda attribute, _: attribute.name != "cluster")


async def load_state(cluster: Cluster, state_size: int, *, timeout: float = 60) -> int:
    """Propose workflows carrying about ``state_size`` bytes of state; returns the leader's id
    once every node has applied them (compact it next, and a newcomer needs a snapshot)."""
    if state_size < 1:
        raise ValueError(f"state_size must be a positive number of bytes, got {state_size}")
    await cluster.wait_for_leader(timeout=timeout)
    for number in range(-(-state_size // PIECE)):
        share = min(PIECE, state_size - number * PIECE)
        payload = bytes([number % 251]) * max(0, share - BOOKKEEPING)
        await cluster.propose(WorkflowExecutor.start(f"wf-{number}", ["fetch"], payload), timeout=timeout)
    await cluster.wait_caught_up(timeout=timeout)
    return cluster.leader_id()


async def measure_catch_up(
    mode: SnapshotMode, state_size: int, *, seed: int = 0, link: LinkConfig = DEFAULT_LINK
) -> CatchUp:
    """Run the experiment of the module docstring once; call it inside ``simulator.run``."""
    async with Cluster.open(nodes=3, seed=seed, snapshot_mode=mode, link=link) as cluster:
        leader = await load_state(cluster, state_size)
        cluster.compact(leader)
        wire_before = cluster.transport.statistics().bytes_sent
        added_at = cluster.now()
        transfer_time = state_size / (link.bandwidth or 1e9)
        newcomer = await cluster.add_node(timeout=60 + 10 * transfer_time)
        await cluster.wait_caught_up(timeout=60)
        wire_bytes = cluster.transport.statistics().bytes_sent - wire_before
    installed = [record.time for record in cluster.trace.of_kind("snapshot_installed")
                 if record.node == newcomer]
    transfers = [transfer for transfer in cluster.transfers() if transfer.to == newcomer]
    if not installed or not transfers:
        raise RuntimeError(
            f"n{newcomer} caught up without a snapshot; expected the compacted log to force one "
            f"(state_size={state_size})"
        )
    memory = cluster.snapshot_memory()
    return CatchUp(
        mode=mode.name,
        state_size=state_size,
        snapshot_size=transfers[-1].size,
        catch_up_seconds=round(installed[0] - added_at, 9),
        snapshot_bytes_sent=sum(transfer.bytes_sent for transfer in transfers),
        wire_bytes=wire_bytes,
        peak_memory=memory[newcomer][1],
        leader_peak_memory=memory[leader][1],
        newcomer=newcomer,
        leader=leader,
        cluster=cluster,
    )


async def sweep_catch_up(
    sizes: Iterable[int],
    modes: Iterable[SnapshotMode],
    *,
    seed: int = 0,
    link: LinkConfig = DEFAULT_LINK,
) -> list[CatchUp]:
    """:func:`measure_catch_up` for every mode and size, mode by mode, smallest size first."""
    sizes = sorted(sizes)
    modes = list(modes)
    if not sizes or not modes:
        raise ValueError(f"sweep_catch_up needs at least one size and one mode, got {sizes} and {modes}")
    return [await measure_catch_up(mode, size, seed=seed, link=link) for mode in modes for size in sizes]
