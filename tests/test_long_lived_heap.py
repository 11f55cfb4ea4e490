"""While a cluster is open, survivors of older collections are frozen (``simulator.cluster.long_lived``).

A long run holds a million objects that live until it ends; middle and full
collections must not traverse them again and again, and the cycles frozen meanwhile must
still be collected once the last cluster closes.
"""

from __future__ import annotations

import gc
import weakref

from simulator import Cluster, run
from simulator.cluster.long_lived import survivors_frozen


class _Node:
    """A reference cycle with a weak reference to see when it is collected."""

    def __init__(self) -> None:
        self.me = self


def test_survivors_of_a_middle_or_full_collection_are_frozen_until_the_last_one_closes():
    assert gc.get_freeze_count() == 0
    with survivors_frozen():
        with survivors_frozen():  # nested clusters share one policy
            cycle = _Node()
            alive = weakref.ref(cycle)
            del cycle
            gc.collect(0)  # a young collection: nothing frozen
            assert gc.get_freeze_count() == 0
            kept = [[] for _ in range(10)]  # tracked by the collector, unlike object()
            gc.collect(1)
            assert gc.get_freeze_count() >= len(kept)
            assert alive() is None  # garbage before the middle pass is collected by it
            gc.unfreeze()
            more = [[] for _ in range(10)]
            gc.collect()
            assert gc.get_freeze_count() >= len(kept) + len(more)
            frozen_cycle = _Node()
            frozen = weakref.ref(frozen_cycle)
            gc.collect()  # survives: frozen with the rest
            del frozen_cycle
            gc.collect()
            assert frozen() is not None  # a frozen cycle waits ...
        assert gc.get_freeze_count() > 0  # ... while a cluster is still open
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert frozen() is None  # ... and is collected once the last one closed
    assert all(callback.__name__ != "_freeze_survivors" for callback in gc.callbacks)


def test_an_open_cluster_freezes_survivors_and_hands_them_back_when_it_closes():
    async def main() -> int:
        async with Cluster.open(nodes=3, seed=1) as cluster:
            await cluster.wait_for_leader()
            gc.collect()
            return gc.get_freeze_count()

    assert run(main) > 0
    assert gc.get_freeze_count() == 0


def test_a_program_that_froze_objects_itself_keeps_its_freeze():
    gc.collect()
    gc.freeze()  # a pre-forking server's own freeze
    try:
        mine = gc.get_freeze_count()
        assert mine > 0

        async def main() -> bool:
            async with Cluster.open(nodes=3, seed=1) as cluster:
                await cluster.wait_for_leader()
                gc.collect()
                return any(callback.__name__ == "_freeze_survivors" for callback in gc.callbacks)

        assert run(main) is False  # stays out of the way while open ...
        assert gc.get_freeze_count() >= mine  # ... and does not undo the program's freeze when closed
    finally:
        gc.unfreeze()
