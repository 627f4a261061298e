"""`seqfast search FILTER` and `seqfast query SQL`: reading a data directory from the shell.

Both open the store directly (so not while a server holds the directory; ask the server with
`curl .../api/events` then).  A filter or query that cannot be run ends with exit status 2,
the reason on stderr and a caret under the place it went wrong; so does a bad option value.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from typing import Any, Final, TextIO

import orjson

from seqfast import _native
from seqfast.events import levels
from seqfast.events.clef import dumps_json
from seqfast.events.seq_shape import rendered_message
from seqfast.query.errors import QuerySyntaxError
from seqfast.query.execute import QueryResult, QueryTimeout
from seqfast.query.values import QueryError
from seqfast.storage.ids import parse_event_id

DEFAULT_DATA_DIR: Final = "./seqfast-data"
FORMATS: Final = ("table", "json", "csv")
_SHORT_LEVELS: Final = {
    "Verbose": "VRB",
    "Debug": "DBG",
    "Information": "INF",
    "Warning": "WRN",
    "Error": "ERR",
    "Fatal": "FTL",
}


class UsageError(Exception):
    """A bad filter, query or option value: exit status 2."""


def _timestamp(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    if _native.parse_timestamp_text(value) is None:
        raise UsageError(
            f"{option} {value!r} is not a timestamp: use ISO-8601, such as 2024-05-01T12:00:00Z"
        )
    return value


def syntax_message(exc: QuerySyntaxError, text: str) -> str:
    """The error, the line it is on and a caret under the character it starts at."""
    from seqfast.api.query_routes import caret

    lines = [exc.message]
    if exc.suggestion:
        lines.append(exc.suggestion)
    lines.append(caret(text, exc.position))
    return "\n".join(lines)


def short_level(level: Any) -> str:
    name = levels.canonical(level) if isinstance(level, str) else None
    if name is None:
        return str(level) if level is not None else "INF"
    return _SHORT_LEVELS[name]


def _cell(value: Any) -> str:
    from seqfast.api.query_routes import _csv_cell

    return _csv_cell(value)


def write_events(events: Sequence[dict[str, Any]], fmt: str, out: TextIO) -> None:
    """Search results: table lines (`time [LVL] message`), CLEF lines, or CSV."""
    if fmt == "json":
        for event in events:
            out.write(dumps_json(event).decode("utf-8") + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["Id", "Timestamp", "Level", "Message", "Exception"])
        for event in events:
            writer.writerow(
                [
                    event.get("@id", ""),
                    event.get("@t", ""),
                    event.get("@l", ""),
                    rendered_message(event),
                    event.get("@x", ""),
                ]
            )
        return
    for event in events:
        out.write(f"{event.get('@t', '')} [{short_level(event.get('@l'))}] ")
        out.write(rendered_message(event) + "\n")
        exception = event.get("@x")
        if isinstance(exception, str) and exception:
            out.write(exception.rstrip("\n") + "\n")


def write_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        for i, text in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], len(text))

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=False)).rstrip()

    out.write(line(columns) + "\n")
    out.write(line(["-" * w for w in widths]) + "\n")
    for row in cells:
        out.write(line(row) + "\n")


def write_result(result: QueryResult, fmt: str, out: TextIO) -> None:
    """A query result as a table, as Seq's `/api/data` JSON, or as CSV."""
    from seqfast.api.query_routes import result_csv

    columns, rows, slices = list(result.columns), result.rows, result.slices
    if fmt == "json":
        body: dict[str, Any] = {"Columns": columns}
        if slices is not None:
            body["Slices"] = slices
        else:
            body["Rows"] = rows
        out.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode("utf-8") + "\n")
        return
    if fmt == "csv":
        out.write(result_csv(columns, rows).replace("\r\n", "\n"))
        return
    write_table(columns, rows, out)


def _run_guarded(args: argparse.Namespace, text: str, body: Any) -> int:
    try:
        return int(body())
    except QuerySyntaxError as exc:
        print(f"seqfast: {syntax_message(exc, text)}", file=sys.stderr)
        return 2
    except (QueryError, UsageError) as exc:
        print(f"seqfast: {exc}", file=sys.stderr)
        return 2
    except QueryTimeout:
        print(
            f"seqfast: the {args.command} did not finish within {args.timeout:g} s "
            "(--timeout): narrow the time range or the filter",
            file=sys.stderr,
        )
        return 1


def _search(args: argparse.Namespace) -> int:
    from seqfast.storage.store import open as open_store

    def body() -> int:
        start = _timestamp(args.start, "--from")
        end = _timestamp(args.end, "--to")
        if args.count < 0:
            raise UsageError(f"--count must be 0 or more, not {args.count}")
        if args.after is not None:
            try:
                parse_event_id(args.after)
            except ValueError as exc:
                raise UsageError(f"--after: {exc}") from None
        with open_store(args.data) as store:
            result = store.search(
                args.filter or None,
                start=start,
                end=end,
                after_id=args.after,
                limit=args.count,
                timeout=args.timeout,
            )
        write_events(result.events, args.format, sys.stdout)
        return 0

    return _run_guarded(args, args.filter or "", body)


def _query(args: argparse.Namespace) -> int:
    from seqfast.storage.store import open as open_store

    def body() -> int:
        start = _timestamp(args.start, "--from")
        end = _timestamp(args.end, "--to")
        with open_store(args.data) as store:
            result = store.query(args.sql, start=start, end=end, timeout=args.timeout)
        write_result(result, args.format, sys.stdout)
        return 0

    return _run_guarded(args, args.sql, body)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=DEFAULT_DATA_DIR, help="data directory (%(default)s)")
    p.add_argument("--from", dest="start", metavar="TIME", help="from this time (inclusive)")
    p.add_argument("--to", dest="end", metavar="TIME", help="to this time (exclusive)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output (%(default)s)")
    p.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="give up after this long"
    )


def add_parsers(subparsers: Any) -> None:
    """Registers `search` and `query` on `subparsers` (from `add_subparsers()`)."""
    search = subparsers.add_parser(
        "search",
        help="print events matching a filter, newest first",
        description="Print events matching a Seq filter, newest first.",
    )
    search.add_argument("filter", nargs="?", default="", help="Seq filter (empty: every event)")
    search.add_argument("--count", type=int, default=30, help="at most this many (%(default)s)")
    search.add_argument("--after", metavar="ID", help="continue after this event id")
    _common(search)
    search.set_defaults(run=_search)

    query = subparsers.add_parser(
        "query",
        help="run a select query",
        description="Run a Seq SQL-style query, such as "
        '"select count(*) from stream group by @Level".',
    )
    query.add_argument("sql", help="the query")
    _common(query)
    query.set_defaults(run=_query)
