"""Chunk faults on a real network: stop a snapshot stream right after chunk k, then cut it or kill its receiver.

The simulator counts chunks as its transport delivers them. Between node
processes the run sees bytes on a link, not chunks, so a fault is placed
in two steps that do not depend on the machine's speed:

1. *hold*: the receiver's links (the receiver pulls, so the chunks are the
   answers on its own links) forward ``k`` chunks and half of the next one,
   then stop (``LinkTable.hold_back_after``); framing adds far less than
   half a chunk, so the receiver can verify exactly ``k`` chunks and no more;
2. once the receiver's ``Status`` shows that offset verified, *act*:

   - ``cut``: close the receiver's connections; it asks again from the
     ``k`` chunks it verified;
   - ``crash_receiver``: ``kill -9`` the receiver after ``k - 1`` chunks
     (chunk ``k`` was on its way, as in the simulator), and restart it
     ``restart_after`` seconds later; it resumes from its disk.

A fault fires once. Other chunk actions of the simulator (drop, corrupt,
duplicate, delay, crash_sender) need a proxy that understands the gRPC
stream, which this one deliberately does not; they are refused by name.
"""

from __future__ import annotations

import trio

SUPPORTED = ("cut", "crash_receiver")


class ChunkFaults:
    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.fired: list[dict] = []

    def arm(self, k: int, action: str, *, to: int | None, restart_after: float | None) -> None:
        if action not in SUPPORTED:
            raise ValueError(f"chunk fault {action!r} cannot be done on a real network by a TCP proxy; "
                             f"expected one of {', '.join(SUPPORTED)}")
        if to is None:
            raise ValueError("a chunk fault on a real network needs its receiver: fail_chunk(k, action, to=N)")
        if k < 1:
            raise ValueError(f"chunk faults count chunks from 1, got k={k}")
        chunk = self.cluster.chunk_size
        verified = k * chunk if action == "cut" else (k - 1) * chunk
        table = self.cluster.proxy.table
        # The receiver may not exist yet (it joins later): its links are counted from now on.
        sources = [node for node in range(1, max(self.cluster.node_ids + [to]) + 1) if node != to]
        held = [table.hold_back_after(to, source, verified + chunk // 2) for source in sources]
        self.cluster.nursery.start_soon(self._fire, k, action, to, sources, held, verified, restart_after)

    async def _fire(self, k, action, to, sources, held, verified, restart_after) -> None:
        cluster = self.cluster
        table = cluster.proxy.table
        async with trio.open_nursery() as first:
            for event in held:
                async def wait(event=event):
                    await event.wait()
                    first.cancel_scope.cancel()
                first.start_soon(wait)
        # The stream stands still mid-chunk; wait until the receiver wrote what reached it.
        with trio.move_on_after(cluster._scaled(30)):
            while _verified(cluster, to) < verified:
                await cluster.observer.wait_for_look()
        reached = _verified(cluster, to)
        self.fired.append({"k": k, "action": action, "to": to, "verified": reached})
        if action == "cut":
            closed = sum(table.cut(to, source) for source in sources)
            cluster._fault("cut_stream", node_id=to, connections=closed, offset=reached)
            return
        cluster._fault("chunk_fault_crash", node_id=to,
                       reason=f"chunk fault crash_receiver after chunk {k}, with {reached} bytes verified")
        cluster.crash(to)
        for source in sources:
            table.release(to, source)
        if restart_after is not None:
            await trio.sleep(restart_after)
            if not cluster.is_up(to):
                cluster.restart(to)


def _verified(cluster, node_id: int) -> int:
    incoming = [view for view in cluster.transfers() if view.to == node_id]
    return max((view.verified_offset for view in incoming), default=0)
