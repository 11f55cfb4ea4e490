"""raftsim: a complete Raft cluster in one Python process, with pluggable snapshot transfer.

This package root re-exports the public API; the modules behind it are
private. Layer 0, the sans-IO Raft core, lives in :mod:`simulator.raft`;
:mod:`simulator.testing` is a synchronous harness that drives a network of
``RawNode`` s without trio.
"""

from ._version import __version__
from .raft import *  # noqa: F403 - the core's public names are ours
from .raft import __all__ as _raft_all

__all__ = ["__version__", *_raft_all]
