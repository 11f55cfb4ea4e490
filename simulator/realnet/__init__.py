"""Scenarios on a real network: one OS process per node, gRPC between them, faults in a proxy.

``raftsim run SCENARIO --transport grpc`` lands here (:mod:`.runner`). The
cluster facade (:mod:`.cluster`) offers the part of the simulated
``Cluster`` API that scenarios use, done with real things: processes
(:mod:`.processes`), the fault proxy (``transports.proxy``), what the run
sees of the nodes (:mod:`.observing`, :mod:`.transfers`), and chunk faults
placed by bytes on a link (:mod:`.chunk_faults`).

Importing this package needs nothing beyond the simulator; opening a
cluster imports ``transports.grpc`` (the ``grpc`` extra) when it runs.
"""

from .cluster import ProcessCluster
from .runner import NOT_DETERMINISTIC, run_grpc_scenario, run_over_grpc, summarize_grpc

__all__ = ["NOT_DETERMINISTIC", "ProcessCluster", "run_grpc_scenario", "run_over_grpc", "summarize_grpc"]
