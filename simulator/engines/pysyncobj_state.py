"""raftsim's state machines as pysyncobj ``SyncObj`` classes with ``@replicated`` methods.

Each class wraps the native machine (:class:`~simulator.WorkflowExecutor`,
:class:`~simulator.KeyValueStore`) and applies exactly the same command
bytes, so both engines end in the same state and the same ``digest()``.
The named methods (``start``, ``complete_step``, ``put``...) replicate
their arguments as pysyncobj users would write them; ``apply_command``
replicates raftsim's encoded command bytes, which is what
``cluster.propose`` sends on either engine.

pysyncobj snapshots a ``SyncObj`` by pickling the attributes set after its
``__init__``: here, the wrapped machine (``self.machine``). Everything the
simulation needs that is not replicated state is set before
``SyncObj.__init__`` so that pysyncobj leaves it out, and there are no
properties: pysyncobj's ``__init__`` reads every attribute it finds.
"""

from __future__ import annotations

from collections.abc import Callable

from pysyncobj import SyncObj, replicated

from ..machines.state_machines import KeyValueStore, WorkflowExecutor
from .pysyncobj_adapter import SeededTimeouts

#: ``on_apply(node_id, index, command_bytes, result)``: an entry reached the machine.
ApplyHook = Callable[[int, int, bytes, str], None]


class _ReplicatedMachine(SeededTimeouts, SyncObj):
    """A SyncObj node whose replicated state is one raftsim state machine."""

    native_class: type

    def __init__(self, self_node, other_nodes, *, node_id: int, rng, on_apply: ApplyHook, **syncobj_options):
        # Not replicated state: set before SyncObj.__init__, which marks what exists as its own.
        self._node_id = node_id
        self._election_rng = rng
        self._on_apply = on_apply
        super().__init__(self_node, other_nodes, **syncobj_options)
        self.machine = self.native_class()

    def _apply(self, command: bytes) -> str:
        # pysyncobj counts raftLastApplied up after the method returns.
        index = self.raftLastApplied + 1
        result = self.machine.apply(index, command)
        self._on_apply(self._node_id, index, command, result)
        return result

    @replicated
    def apply_command(self, command: bytes) -> str:
        """Apply raftsim command bytes (what ``cluster.propose`` replicates)."""
        return self._apply(command)

    def digest(self) -> str:
        return self.machine.digest()


class PysyncobjWorkflowExecutor(_ReplicatedMachine):
    """The workflow executor as a pysyncobj node: ``start``, ``complete_step``, ``fail_step``."""

    native_class = WorkflowExecutor

    @replicated
    def start(self, workflow_id: str, steps: list[str], payload: bytes = b"") -> str:
        return self._apply(WorkflowExecutor.start(workflow_id, steps, payload))

    @replicated
    def complete_step(self, workflow_id: str, step: str, output: bytes = b"") -> str:
        return self._apply(WorkflowExecutor.complete_step(workflow_id, step, output))

    @replicated
    def fail_step(self, workflow_id: str, step: str, reason: str) -> str:
        return self._apply(WorkflowExecutor.fail_step(workflow_id, step, reason))


class PysyncobjKeyValueStore(_ReplicatedMachine):
    """The key-value store as a pysyncobj node: ``put``, ``delete``; ``get`` reads locally."""

    native_class = KeyValueStore

    @replicated
    def put(self, key: str, value: bytes) -> str:
        return self._apply(KeyValueStore.put(key, value))

    @replicated
    def delete(self, key: str) -> str:
        return self._apply(KeyValueStore.delete(key))

    def get(self, key: str, default: bytes | None = None) -> bytes | None:
        return self.machine.get(key, default)


#: Native state machine class -> its pysyncobj node class.
SYNCOBJ_CLASSES: dict[type, type[_ReplicatedMachine]] = {
    WorkflowExecutor: PysyncobjWorkflowExecutor,
    KeyValueStore: PysyncobjKeyValueStore,
}


def syncobj_class_for(state_machine) -> type[_ReplicatedMachine]:
    """The pysyncobj node class for a native state machine class (or a pysyncobj class itself)."""
    if isinstance(state_machine, type) and issubclass(state_machine, _ReplicatedMachine):
        return state_machine
    cls = SYNCOBJ_CLASSES.get(state_machine)
    if cls is None:
        known = ", ".join(c.__name__ for c in SYNCOBJ_CLASSES)
        raise ValueError(f"no pysyncobj version of state machine {state_machine!r}; known: {known}")
    return cls


__all__ = ["PysyncobjKeyValueStore", "PysyncobjWorkflowExecutor", "syncobj_class_for"]
