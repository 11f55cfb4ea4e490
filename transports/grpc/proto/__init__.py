"""The wire contract, package ``raftsim.v1``: the .proto files and the code grpcio-tools makes from them.

- ``snapshot.proto``: the seed's ``SnapshotTransfer`` service (its field numbers, additions after them);
- ``raft.proto``: Raft messages mirroring ``simulator.raft.messages`` and the ``RaftTransport`` service;
- ``control.proto``: ``Control`` (status, proposals, membership, compaction).

The ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` files are generated, never edited::

    python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. transports/grpc/proto/*.proto

(run from the repository root; ``tests/test_grpc_contract.py`` fails if they differ from what that makes).
The .proto files import nothing from each other, so a client in any language compiles any one alone.
"""
