"""The simulated cluster: nodes on virtual time, their client, snapshot handling and faults.

``cluster`` runs the nodes (``node``) over the in-memory transport, ``client``
proposes and waits, ``snapshot_handling`` is a node's part in snapshot
transfer, ``faults`` shapes network faults, ``catch_up`` measures a
newcomer's catch-up. Public names are re-exported by :mod:`simulator`.
"""
