"""Looking for bugs: fault programs as values, seeded fault schedules and
workloads, and the property search that shrinks a failure to a replayable
scenario file."""
