"""``raftsim replay TRACE``: tell a recorded trace (``raftsim run --trace``) again."""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError

NAME = "replay"


def add_parser(commands) -> None:
    replay = commands.add_parser(NAME, help="tell a recorded trace (raftsim run --trace)")
    replay.add_argument("trace", help="a JSONL trace file")
    replay.add_argument("--html", metavar="FILE.html",
                        help="also write the trace as one self-contained HTML page (slider, lanes, logs, story)")


def execute(args, out) -> int:
    from simulator.observe.narration import narrate
    from simulator.observe.trace import read_jsonl

    from .teaching import check_html, write_page

    path = Path(args.trace)
    if not path.is_file():
        raise UsageError(f"no trace file {args.trace!r}")
    check_html(args)
    try:
        records = read_jsonl(path)
    except ValueError as error:
        raise UsageError(str(error)) from None
    for number, record in enumerate(records, start=1):
        try:
            sentence = narrate(record)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as error:
            # Fields of the right names but the wrong kinds: an edited or foreign trace.
            raise UsageError(f"{args.trace}: record {number} ({record.kind}) cannot be told: its fields are "
                             f"not as raftsim writes them ({type(error).__name__}: {error})") from None
        if sentence is not None:
            print(f"[{record.time:9.3f}s] {sentence}", file=out)
    if args.html:
        write_page(args.html, records, f"raftsim replay {path.name}", from_file=True)
    return 0
