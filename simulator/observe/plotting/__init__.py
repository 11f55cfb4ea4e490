"""Pictures of a run, with matplotlib: messages, roles, transfers, memory, and a node table.

Every plot reads a finished cluster or its trace (``cluster.trace``, records
from :func:`simulator.read_jsonl`, or a JSONL path), draws on the ``ax`` you
give it or on a new figure, and returns the axes:

=========================  =====================================================
``plot_messages``          message-sequence diagram: lanes per node, arrows over
                           virtual time, snapshot streams on their own lanes,
                           faults shaded, compactions marked
``plot_roles``             role and term of each node over time
``plot_transfers``         verified bytes of each snapshot transfer over time,
                           retries and resumptions marked
``plot_memory``            snapshot bytes in memory per node over time (needs
                           the cluster: memory is not in the trace)
``plot_catch_up``          a :func:`simulator.sweep_catch_up` metric by snapshot
``plot_peak_memory``       size, one line per transfer mode
``plot_policies``          a :func:`simulator.compare_policies` measure, one bar
                           per real system's snapshot policy, with its interval
``node_table``             node states as a table (HTML in Jupyter, rich on a
                           terminal)
=========================  =====================================================

matplotlib comes with the ``notebooks`` extra (``pip install 'raftsim[notebooks]'``).
"""

try:
    import matplotlib  # noqa: F401 - only to say clearly what is missing
except ImportError:  # pragma: no cover - the test extra installs it
    raise ImportError(
        "simulator's plots need matplotlib, which is not installed; "
        "install it with pip install 'raftsim[notebooks]' (or pip install matplotlib)"
    ) from None

from .memory import plot_catch_up, plot_memory, plot_peak_memory
from .policies import plot_policies
from .roles import plot_roles
from .sequence import plot_messages
from .tables import NodeState, NodeTable, node_table
from .transfers import plot_transfers

__all__ = [
    "NodeState",
    "NodeTable",
    "node_table",
    "plot_catch_up",
    "plot_memory",
    "plot_messages",
    "plot_peak_memory",
    "plot_policies",
    "plot_roles",
    "plot_transfers",
]
