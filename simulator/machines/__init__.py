"""Replicated state machines: the contract a machine follows, the built-in
workflow executor and key-value store, and the strict binary codec their
commands and snapshots use (never pickle)."""
