"""``raftsim replay TRACE``: tell a recorded trace (``raftsim run --trace``) again."""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError

NAME = "replay"


def add_parser(commands) -> None:
    replay = commands.add_parser(NAME, help="tell a recorded trace (raftsim run --trace)")
    replay.add_argument("trace", help="a JSONL trace file")


def execute(args, out) -> int:
    from simulator.observe.narration import narrate
    from simulator.observe.trace import read_jsonl

    path = Path(args.trace)
    if not path.is_file():
        raise UsageError(f"no trace file {args.trace!r}")
    try:
        records = read_jsonl(path)
    except ValueError as error:
        raise UsageError(str(error)) from None
    for record in records:
        sentence = narrate(record)
        if sentence is not None:
            print(f"[{record.time:9.3f}s] {sentence}", file=out)
    return 0
