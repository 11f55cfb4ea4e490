"""What must always hold: Raft's safety properties, checked on whole states
(``invariants``) and incrementally as a cluster runs (``monitor``). Knows
nothing of clusters or transports, so every driver can use it."""
