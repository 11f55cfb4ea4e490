"""Which checksum per chunk, which digest for the whole snapshot: CPU seconds per GiB.

Every candidate hashes the same bytes in the same run, in rounds that
interleave the candidates (so a burst of load on the shared machine lands on
all of them alike); the figure per candidate is the median over rounds of CPU
seconds (user + system of this process) per GiB, and its ratio to the
baseline the project uses today: zlib's CRC-32 per chunk, sha256 for the
whole.

- Per chunk (a wire check, re-computed by the receiver for every chunk):
  CRC-32 (``zlib``), CRC-32C (``crc32c``, hardware SSE4.2 when the CPU has
  it) and xxh3-64 (``xxhash``), each over chunks of ``--chunk-size``.
- Whole snapshot (the digest a snapshot is identified and verified by, so it
  must resist a crafted collision): sha256 (``hashlib``), BLAKE2b
  (``hashlib``), and BLAKE3 (``blake3``) single-threaded.

Candidates whose package is not installed are reported as missing, not
skipped silently. The data is random (incompressible, so no candidate
benefits from zeros).

Run: ``python benchmarks/checksums.py [--size 256MiB] [--chunk-size 1MiB] [--rounds 5] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import zlib
from collections.abc import Callable

from benchlib import (
    GIB,
    MIB,
    Stopwatch,
    parse_size,
    print_table,
    ratio,
    size_label,
    write_json,
)


def _optional(module: str):
    try:
        return __import__(module)
    except ImportError:
        return None


crc32c = _optional("crc32c")
xxhash = _optional("xxhash")
blake3 = _optional("blake3")


def per_chunk_candidates() -> dict[str, Callable[[memoryview], object] | None]:
    return {
        "crc32 (zlib)": zlib.crc32,
        "crc32c (crc32c)": crc32c.crc32c if crc32c else None,
        "xxh3_64 (xxhash)": xxhash.xxh3_64_intdigest if xxhash else None,
    }


def _whole(factory: Callable[[], object]) -> Callable[[list[memoryview]], object]:
    def digest(chunks: list[memoryview]) -> object:
        hasher = factory()
        for chunk in chunks:
            hasher.update(chunk)
        return hasher.digest()

    return digest


def whole_candidates() -> dict[str, Callable[[list[memoryview]], object] | None]:
    return {
        "sha256 (hashlib)": _whole(hashlib.sha256),
        "blake2b (hashlib)": _whole(hashlib.blake2b),
        "blake3 (blake3, 1 thread)": _whole(lambda: blake3.blake3(max_threads=1)) if blake3 else None,
    }


def measure(size: int, chunk_size: int, rounds: int) -> dict:
    data = memoryview(os.urandom(size))
    chunks = [data[start:start + chunk_size] for start in range(0, size, chunk_size)]
    chunkers = per_chunk_candidates()
    wholes = whole_candidates()
    samples: dict[str, list[float]] = {name: [] for name in [*chunkers, *wholes]}
    for _ in range(rounds):
        for name, function in chunkers.items():
            if function is not None:
                with Stopwatch() as watch:
                    for chunk in chunks:
                        function(chunk)
                samples[name].append(watch.cpu * GIB / size)
        for name, function in wholes.items():
            if function is not None:
                with Stopwatch() as watch:
                    function(chunks)
                samples[name].append(watch.cpu * GIB / size)

    def rows(candidates: dict, baseline: str) -> list[dict]:
        base = statistics.median(samples[baseline])
        out = []
        for name, function in candidates.items():
            if function is None:
                out.append({"name": name, "installed": False})
                continue
            median = statistics.median(samples[name])
            out.append({
                "name": name, "installed": True, "cpu_seconds_per_gib": median,
                "samples": samples[name], "ratio_to_baseline": ratio(median, base),
                "gib_per_cpu_second": 1 / median if median else None,
            })
        return out

    return {
        "size": size, "chunk_size": chunk_size, "rounds": rounds, "load_average": os.getloadavg(),
        "per_chunk": rows(chunkers, "crc32 (zlib)"),
        "whole": rows(wholes, "sha256 (hashlib)"),
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=256 * MIB, help="bytes hashed per round")
    parser.add_argument("--chunk-size", type=parse_size, default=MIB)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    results = measure(args.size, args.chunk_size, args.rounds)
    for part, title in (("per_chunk", f"per {size_label(args.chunk_size)} chunk; baseline crc32 (zlib)"),
                        ("whole", "whole snapshot digest; baseline sha256 (hashlib)")):
        print_table(
            f"Checksums, {title}; {size_label(args.size)} x {args.rounds} rounds, medians",
            ["candidate", "CPU s / GiB", "GiB / CPU s", "ratio to baseline"],
            [[row["name"], f"{row['cpu_seconds_per_gib']:.3f}", f"{row['gib_per_cpu_second']:.2f}",
              f"{row['ratio_to_baseline']:.3f}"] if row["installed"] else [row["name"], "not installed", "", ""]
             for row in results[part]],
        )
    print(f"load average at the end: {results['load_average']}")
    write_json(args.json, "checksums", ["benchmarks/checksums.py", *argv], results)


if __name__ == "__main__":
    main()
