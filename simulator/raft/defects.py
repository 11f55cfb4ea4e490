"""Deliberate bugs, switched on only to prove that the checks catch them.

A property test that never fails might be testing nothing. Each defect
below breaks one rule the simulator relies on, in the smallest way a real
implementation could get it wrong; ``tests/test_defects_caught.py`` switches
each on and asserts that the property search finds a violation and shrinks
it to a short program. Scenarios may list defects in ``DEFECTS = (...)`` to
demonstrate the same thing (``notebooks/04_property_testing.ipynb``).

The switch is a module-level set, not a configuration field, so no
production code path carries a "be wrong" parameter; :func:`injected` turns
defects on for the duration of a ``with`` block and always turns them off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

#: A leader commits an entry from an earlier term by counting the replicas
#: that hold it (the rule Raft's paper, section 5.4.2, forbids).
COMMIT_OLD_TERM = "commit_old_term"
#: A receiver publishes a streamed snapshot without comparing its digest
#: with the offer's, so bytes that passed every chunk checksum but are wrong
#: end to end get installed.
INSTALL_UNVERIFIED = "install_unverified"
#: A receiver resumes an interrupted transfer from offset 0 instead of its
#: last verified offset, so everything it had is sent again.
RESUME_FROM_ZERO = "resume_from_zero"

DEFECTS = {
    COMMIT_OLD_TERM: "count replicas of an entry from an earlier term towards committing it",
    INSTALL_UNVERIFIED: "install a streamed snapshot without checking its digest",
    RESUME_FROM_ZERO: "resume an interrupted snapshot transfer from offset 0",
}

_active: set[str] = set()


def active(name: str) -> bool:
    """Is defect ``name`` switched on? (Cheap: called on hot paths.)"""
    return bool(_active) and name in _active


@contextmanager
def injected(*names: str) -> Iterator[None]:
    """Switch on ``names`` (from :data:`DEFECTS`) inside the ``with`` block."""
    unknown = sorted(set(names) - DEFECTS.keys())
    if unknown:
        raise ValueError(f"unknown defect {unknown[0]!r}; expected one of {', '.join(sorted(DEFECTS))}")
    before = set(_active)
    _active.update(names)
    try:
        yield
    finally:
        _active.clear()
        _active.update(before)
