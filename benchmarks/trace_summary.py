"""What a run's summary costs when it reads only the trace kinds it needs, beside building every record.

A run's summary (``raftsim run --json``, and every property-search program)
asks the trace for the times of ``apply``/``snapshot_installed`` events, the
transfers' senders, and the trace hash. The baseline is how it was done
before issue 21's sixth pass: build every ``TraceRecord``, filter them, and
hash each record's JSON. Now ``Trace.of_kind`` builds only the records of the
kinds asked for (``flows.TRANSFER_KINDS`` for the senders) and ``sha256``
hashes the published rows directly. Both are run on fresh copies of the same
trace, alternating; the script checks they give the same results.

Workload: a 5-node cluster under ``steady_load`` with per-message trace
records, for the given virtual seconds.

Run: ``python benchmarks/trace_summary.py [--virtual-seconds 20] [--repeats 5] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time

from benchlib import print_table, ratio, write_json

from simulator import Cluster, run
from simulator.explore.schedules import steady_load
from simulator.observe.flows import TRANSFER_KINDS, transfers
from simulator.observe.trace import Trace

SUMMARY_KINDS = ("apply", "snapshot_installed")


def recorded_rows(virtual_seconds: float) -> list[tuple]:
    rows: list[tuple] = []

    async def main() -> None:
        async with Cluster.open(nodes=5, seed=1, record_messages=True) as cluster:
            await steady_load(cluster, duration=virtual_seconds, interval=0.1)
            cluster.trace.flush()
            rows.extend(cluster.trace._rows)

    run(main)
    return rows


def fresh_trace(rows: list[tuple]) -> Trace:
    """A trace holding ``rows`` as published, no record built, nothing hashed yet."""
    trace = Trace()
    trace._rows = list(rows)
    return trace


def every_record(trace: Trace) -> tuple:
    """The baseline: build every record, filter, and hash each record's JSON."""
    records = trace.records
    times = [record.time for record in records if record.kind in SUMMARY_KINDS]
    tracks = transfers(records)
    digest = hashlib.sha256()
    for record in records:
        digest.update(record.to_json().encode("utf-8") + b"\n")
    return times, [track.sources for track in tracks], digest.hexdigest()


def asked_kinds_only(trace: Trace) -> tuple:
    times = [record.time for record in trace.of_kind(*SUMMARY_KINDS)]
    tracks = transfers(trace.of_kind(*TRANSFER_KINDS))
    return times, [track.sources for track in tracks], trace.sha256()


def cpu_seconds(work, rows: list[tuple]) -> tuple[float, tuple]:
    trace = fresh_trace(rows)
    started = time.process_time()
    result = work(trace)
    return time.process_time() - started, result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--virtual-seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.virtual_seconds <= 0:
        parser.error("--repeats must be at least 1 and --virtual-seconds above 0")
    rows = recorded_rows(args.virtual_seconds)
    baseline, now = [], []
    for _ in range(args.repeats):
        seconds, expected = cpu_seconds(every_record, rows)
        baseline.append(seconds)
        seconds, got = cpu_seconds(asked_kinds_only, rows)
        now.append(seconds)
        if got != expected:
            raise SystemExit("reading only the asked kinds gave a different summary than reading every record")
    result = {
        "events": len(rows),
        "virtual_seconds": args.virtual_seconds,
        "repeats": args.repeats,
        "every_record_cpu_seconds": statistics.median(baseline),
        "asked_kinds_cpu_seconds": statistics.median(now),
        "runs": {"every_record": baseline, "asked_kinds": now},
        "load_average": os.getloadavg(),
    }
    result["ratio"] = ratio(result["asked_kinds_cpu_seconds"], result["every_record_cpu_seconds"])
    print_table(
        f"A run's summary over a trace of {len(rows):,} events (medians of {args.repeats} alternating runs)",
        ["variant", "CPU s", "ratio"],
        [["every record built (baseline)", f"{result['every_record_cpu_seconds']:.4f}", "1.00"],
         ["only the asked kinds", f"{result['asked_kinds_cpu_seconds']:.4f}", f"{result['ratio']:.2f}"]],
        "Both give the same apply times, transfer senders and trace hash (checked).",
    )
    write_json(args.json, "trace_summary", ["benchmarks/trace_summary.py", *argv], result)


if __name__ == "__main__":
    main()
