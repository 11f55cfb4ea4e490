"""Testing tools for users of raftsim: what a test suite imports.

- :class:`Network`: a synchronous network of ``RawNode`` s that tests the Raft
  core without trio (raft-rs's ``harness``, etcd's ``rafttest``).
- :func:`check_state_machine`: the conformance kit for your own state machine
  (the contract: :mod:`simulator.machines.contracts`).
- :func:`check_snapshot_store`: the conformance kit for your own snapshot store.
"""

from .harness import AppliedLog, HarnessNode, Network
from .machine_kit import ContractViolation, MachineReport, check_state_machine
from .store_kit import check_snapshot_store

__all__ = ["AppliedLog", "ContractViolation", "HarnessNode", "MachineReport", "Network", "check_snapshot_store",
           "check_state_machine"]
