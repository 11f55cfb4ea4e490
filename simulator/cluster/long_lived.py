"""Keep the cyclic garbage collector's full passes cheap while clusters run.

A long simulation holds over a million objects that live until it ends: the
trace's rows, the invariant monitor's records, every replica's state machine.
CPython's collector traverses all of them in each full collection, and it
makes one every time the heap has grown by a quarter. Measured on one hour
of 5-node life: 10 full collections took 4.8 of 36.8 CPU seconds, a share
that grows with the run.

While a cluster is open, everything that survives a full collection is moved
to the permanent generation (``gc.freeze()``), so the next full pass
traverses only what was made since. Frozen objects are still freed by
reference counting as usual; only reference cycles among them wait until
the last open cluster closes, when they are handed back to the collector
(``gc.unfreeze()``). Collection never decides behaviour in the simulator
(nothing reacts to finalizers or weak references dying), so runs replay the
same with or without this.

A program that froze objects itself (a pre-forking server calls
``gc.freeze()`` so children share pages) owns the permanent generation: if
anything is frozen when the first cluster opens, this stays out of the way,
because ``gc.unfreeze()`` cannot tell our objects from the program's.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_open = 0


def _freeze_survivors(phase: str, info: dict) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


@contextmanager
def survivors_frozen() -> Iterator[None]:
    """While inside (nested or not), objects surviving a full collection are frozen."""
    global _open
    if _open == 0 and gc.get_freeze_count() > 0:
        yield  # someone else's freeze: never undo it (the run is only slower)
        return
    _open += 1
    if _open == 1:
        gc.callbacks.append(_freeze_survivors)
    try:
        yield
    finally:
        _open -= 1
        if _open == 0:
            gc.callbacks.remove(_freeze_survivors)
            gc.unfreeze()
