"""A fault proxy for real links: partition, isolate, one_way, heal and cut TCP connections between processes.

The in-process simulator blocks links inside its own transport; node
processes talk over real sockets, so the same vocabulary needs a proxy in
the middle. :func:`open_fault_proxy` opens one in the caller's trio run;
:mod:`.links` says what a link is and what each fault does to it,
:mod:`.proxy` how connections reach it (a CONNECT proxy per node for gRPC
processes, or a plain forwarder per link), :mod:`.relay` how bytes cross it.
"""

from .links import LinkState, LinkTable
from .proxy import FaultProxy, open_fault_proxy
from .relay import Relay

__all__ = ["FaultProxy", "LinkState", "LinkTable", "Relay", "open_fault_proxy"]
