"""Raft engines besides raftsim's own: real pysyncobj nodes under the same simulation.

:class:`PysyncobjCluster` runs unmodified pysyncobj ``SyncObj`` nodes over
raftsim's transport, on virtual time, with the native cluster's faults,
client API, trace format and the safety checks that apply. Everything
raftsim changes around pysyncobj is in :mod:`.pysyncobj_adapter`.
"""

from .pysyncobj_adapter import PYSYNCOBJ_VERSION, EngineLivelock, PysyncobjWorkarounds
from .pysyncobj_cluster import PysyncobjCluster
from .pysyncobj_state import PysyncobjKeyValueStore, PysyncobjWorkflowExecutor

#: Engines ``raftsim run --engine`` knows.
ENGINES = ("native", "pysyncobj")

__all__ = [
    "ENGINES",
    "PYSYNCOBJ_VERSION",
    "EngineLivelock",
    "PysyncobjCluster",
    "PysyncobjKeyValueStore",
    "PysyncobjWorkarounds",
    "PysyncobjWorkflowExecutor",
]
