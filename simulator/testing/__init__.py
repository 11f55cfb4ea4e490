"""Testing tools for users of raftsim: what a test suite imports.

- :class:`Network`: a synchronous network of ``RawNode`` s that tests the Raft
  core without trio (raft-rs's ``harness``, etcd's ``rafttest``).
"""

from .harness import AppliedLog, HarnessNode, Network

__all__ = ["AppliedLog", "HarnessNode", "Network"]
