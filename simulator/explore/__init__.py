"""Looking for bugs: fault programs as values, seeded fault schedules and
workloads, the property search that shrinks a failure to a replayable
scenario file, and seed sweeps on Dask (``sweep``: one task per seed, the
worker side in ``seed_runs``) with swarm-drawn programs (``swarm``) and
snapshot-path coverage goals (``coverage``)."""
