"""A pysyncobj 0.3.17 node as its own OS process, over pysyncobj's own TCP, for ``grpc_catch_up.py``.

    python benchmarks/pysyncobj_node.py SELF_ADDRESS PARTNER,PARTNER DATA_DIR

A key-value state machine (``put`` is ``@replicated``) whose snapshots are
pysyncobj's file-based full dump (``fullDumpFile``: the state pickled and
gzipped). It reads one command per line on stdin and answers one JSON line:

- ``status``: pysyncobj's ``getStatus()`` (commit, last applied, leader...)
  and this process's resident memory (now and peak);
- ``load COUNT SIZE``: propose COUNT puts of SIZE random bytes (seeded by
  the key, so incompressible and the same in every run), then wait until
  all are applied here (SIZE must stay under pysyncobj's 64 KiB batch: a
  larger command breaks its transport, see ``scenarios/pysyncobj_large_command.py``);
- ``compact``: ``forceLogCompaction()`` and wait until the dump is written;
- ``reset-peak``: make the peak resident memory the current one;
- ``quit``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from pysyncobj import SyncObj, SyncObjConf, replicated


class KeyValue(SyncObj):
    def __init__(self, address: str, partners: list[str], folder: Path) -> None:
        conf = SyncObjConf(fullDumpFile=str(folder / "dump.bin"), logCompactionMinEntries=10**9,
                           logCompactionMinTime=10**9, dynamicMembershipChange=False)
        super().__init__(address, partners, conf)
        self._data: dict[str, bytes] = {}

    @replicated
    def put(self, key: str, value: bytes) -> int:
        self._data[key] = value
        return len(self._data)


def memory() -> tuple[int, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def main() -> None:
    address, partners, folder = sys.argv[1], [p for p in sys.argv[2].split(",") if p], Path(sys.argv[3])
    folder.mkdir(parents=True, exist_ok=True)
    node = KeyValue(address, partners, folder)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "status":
            status = {key: value for key, value in node.getStatus().items()
                      if isinstance(value, (int, float, str, bool)) or value is None}
            status["leader"] = str(node.getStatus().get("leader"))
            status["keys"] = len(node._data)
            status["rss"], status["peak_rss"] = memory()
            answer = status
        elif words[0] == "load":
            count, size = int(words[1]), int(words[2])
            # Pipelined, as a busy client would; pysyncobj batches them into its ticks.
            for number in range(count):
                node.put(f"k{number}", random.Random(number).randbytes(size))
            while len(node._data) < count:
                time.sleep(0.05)
            answer = {"loaded": count}
        elif words[0] == "compact":
            node.forceLogCompaction()
            while not Path(folder / "dump.bin").exists() or node.getStatus().get("log_len", 0) > 16:
                time.sleep(0.05)
            answer = {"compacted": node.getStatus().get("log_len"), "dump_bytes": (folder / "dump.bin").stat().st_size}
        elif words[0] == "reset-peak":
            Path("/proc/self/clear_refs").write_text("5")
            answer = {"reset": True}
        elif words[0] == "quit":
            node.destroy()
            answer = {"quit": True}
        else:
            answer = {"error": f"unknown command {words[0]!r}"}
        print(json.dumps(answer), flush=True)
        if words[0] == "quit":
            break


if __name__ == "__main__":
    main()
