"""Keep the cyclic garbage collector's older passes cheap while clusters run.

A long simulation holds over a million objects that live until it ends: the
trace's rows, the invariant monitor's records, every replica's state machine.
CPython's collector traverses all of them in each full collection, and it
makes one every time the heap has grown by a quarter. Measured on one hour
of 5-node life: 10 full collections took 4.8 of 36.8 CPU seconds, a share
that grows with the run.

While a cluster is open, everything that survives a collection of the
middle or oldest generation is moved to the permanent generation
(``gc.freeze()``), so later passes traverse only what was made since: a
long-lived object is looked at twice (as young, then middle-aged) instead of
again in every full pass. Frozen objects are still freed by reference
counting as usual; only reference cycles among them wait until the last open
cluster closes, when they are handed back to the collector
(``gc.unfreeze()``). The simulator makes almost no cyclic garbage: 5 nodes
under steady load for an hour of virtual time, or for 300 s with a crash and a
restart every second, left 29 objects for middle collections and 29 for full
ones when only full collections froze (those 29 now wait until the close), and
the peak memory is the same either way. Freezing only
after full collections (the first version of this module) still spent 0.67 of
21 CPU seconds of that hour collecting, 2.1 of 27 with per-message trace
events; freezing after middle ones too, 0.28 and 0.93. Raising
``gc.set_threshold`` instead was measured and not kept: it defers the first
full pass, which then traverses the whole run so far (0.73 s in the hour).
Collection never decides behaviour in the simulator (nothing reacts to
finalizers or weak references dying), so runs replay the same with or
without this.

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
    # Young collections (generation 0) are left alone: they are frequent and short,
    # and what dies soon after surviving one (trio's tracebacks, say) is still collected.
    if phase == "stop" and info["generation"] >= 1:
        gc.freeze()


@contextmanager
def survivors_frozen() -> Iterator[None]:
    """While inside (nested or not), objects surviving a collection of generation 1 or 2 are frozen."""
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
