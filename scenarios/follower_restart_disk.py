"""Follower restart: the receiving node crashes mid-snapshot and, after a restart, resumes from its disk.

Run it with ``--store disk`` (or ``--store disk:DIR`` to keep the files
and look at them): every node then keeps its snapshots in a
``DiskSnapshotStore``, real files in a folder. A fourth node joins and is
streamed a snapshot of about five 1 MiB chunks (``--chunk-size`` changes
the chunk, and the snapshot grows with it); right after chunk ``k`` is
sent (``--param k=...``, 3 by default) the newcomer crashes, and half a
second later it restarts.

What to watch: the crash loses everything in the node's memory, and chunk
``k``, which was on its way. What it had verified and written before is on
disk: a partial snapshot file plus a small record of the verified offset.
On restart the node reopens its store and finds that partial. The leader
does not know the node restarted: it notices only when its stream has been
silent for three seconds, gives up, and Raft offers the snapshot again.
The node then resumes from its verified offset instead of from zero: only
the lost chunk is sent again. Without ``--store disk`` the run uses the
in-memory store, which stands for a disk and also survives the crash, so
the story is the same but no file is written.

Why streaming only: in embedded mode nothing partial is ever written. The
snapshot lives in one message in memory, and a crash loses all of it.
"""

from simulator import Param
from transports import Constant, LinkConfig

CLUSTER = {"nodes": 3, "link": LinkConfig(latency=Constant(0.001), bandwidth=12_500_000)}
PARAMS = {"k": Param(3, minimum=1, help="the chunk after which the receiver crashes")}
MODES = ("streaming",)
#: Also on node processes over gRPC: ``raftsim run NAME --transport grpc``.
NETWORKS = ("simulated", "grpc")
WORKFLOWS = 20


async def scenario(sim):
    cluster = sim.cluster
    k = sim.params["k"]
    chunk_size = sim.chunk_size
    # A snapshot a little under max(5, k + 2) chunks: chunk k is never the last.
    payload = sim.workflow_payload(chunks=max(5, k + 2), workflows=WORKFLOWS)
    store = "on disk" if sim.options.store.startswith("disk") else "in memory, standing for a disk"
    leader = await cluster.wait_for_leader()
    sim.say(f"every node keeps its snapshots {store}; "
            f"n{leader} leads and the cluster takes {WORKFLOWS} workflows of {payload:,} bytes each")
    await sim.load_workflows(WORKFLOWS, payload)
    await cluster.wait_caught_up()
    cluster.compact(leader)

    newcomer = max(cluster.node_ids) + 1
    cluster.fail_chunk(k, "crash_receiver", to=newcomer, restart_after=0.5)
    await cluster.add_node(timeout=60)
    await cluster.wait_caught_up()

    [transfer] = [t for t in cluster.transfers() if t.to == newcomer]
    resumed = [r for r in cluster.trace.of_kind("transfer_resumed") if r.node == newcomer]
    sim.say(f"n{newcomer} got the {transfer.size:,}-byte snapshot for {transfer.bytes_sent:,} bytes sent, "
            f"{transfer.resent_bytes:,} of them twice")
    sim.check(transfer.outcome.value == "installed", f"n{newcomer} installed the snapshot after restarting")
    sim.check([r.get("offset") for r in resumed] == [(k - 1) * chunk_size],
              f"n{newcomer} resumed from the {k - 1} chunks it had verified before the crash")
    sim.check(transfer.resent_bytes <= chunk_size, "at most one chunk crossed the wire twice")
    sim.check(len({cluster.state_machine(n).digest() for n in cluster.node_ids}) == 1,
              "every node holds the same state")
