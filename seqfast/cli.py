"""The `seqfast` command line.

Errors a user can cause (a bad file, a locked or damaged data directory, invalid events) end
with exit status 1 and one sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import orjson

from seqfast.cluster.cli import add_parsers as add_cluster_parsers
from seqfast.config import add_arguments, config_from_args
from seqfast.errors import SeqfastError
from seqfast.meta.apikey_cli import add_parser as add_apikey_parser
from seqfast.meta.signal_cli import add_parsers as add_signal_parsers
from seqfast.query_cli import add_parsers as add_query_parsers
from seqfast.storage.store import Store
from seqfast.storage.store import open as open_store

DEFAULT_DATA_DIR = "./seqfast-data"
# Ingest a file in pieces of about this size: one commit-log record each.
_CHUNK_BYTES = 4 << 20


def _ingest(args: argparse.Namespace) -> int:
    total = 0
    with open_store(args.data) as store:
        for name in args.files:
            source = sys.stdin.buffer if name == "-" else Path(name).open("rb")  # noqa: SIM115
            with source:
                total += _ingest_stream(store, source)
    print(f"ingested {total} events", file=sys.stderr)
    return 0


def _ingest_stream(store: Store, source: BinaryIO) -> int:
    """Commits a CLEF stream in pieces cut at line ends; each piece is one atomic batch."""
    total = 0
    pending = b""
    while True:
        chunk = source.read(_CHUNK_BYTES)
        if not chunk:
            break
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        pending = data[cut:]
        total += store.ingest_clef(data[:cut])
    if pending:
        total += store.ingest_clef(pending)
    return total


def _events(args: argparse.Namespace) -> int:
    with open_store(args.data) as store:
        for event in store.events(
            start=args.start, end=args.end, after_id=args.after, limit=args.limit
        ):
            sys.stdout.buffer.write(orjson.dumps(event) + b"\n")
    return 0


def _stats(args: argparse.Namespace) -> int:
    with open_store(args.data) as store:
        sys.stdout.buffer.write(orjson.dumps(store.stats(), option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqfast", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def with_data(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data", default=DEFAULT_DATA_DIR, help="data directory (%(default)s)")
        return p

    ingest = with_data(sub.add_parser("ingest", help="store CLEF files (or - for stdin)"))
    ingest.add_argument("files", nargs="+")
    ingest.set_defaults(run=_ingest)

    events = with_data(sub.add_parser("events", help="print events as CLEF, newest first"))
    events.add_argument("--start", help="from this timestamp (inclusive)")
    events.add_argument("--end", help="to this timestamp (exclusive)")
    events.add_argument("--after", help="continue after this event id")
    events.add_argument("--limit", type=int, default=100)
    events.set_defaults(run=_events)

    stats = with_data(sub.add_parser("stats", help="events, segments and bytes on disk"))
    stats.set_defaults(run=_stats)

    serve = sub.add_parser(
        "serve",
        help="serve the Seq-compatible HTTP API",
        description="Serve the Seq-compatible HTTP API.  Every setting also comes from a "
        "SEQFAST_* environment variable or a TOML file (--config); the command line wins.",
    )
    add_arguments(serve)
    serve.set_defaults(run=_serve)

    add_apikey_parser(sub)
    add_signal_parsers(sub)
    add_query_parsers(sub)
    add_cluster_parsers(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from seqfast.server import run

    return run(config_from_args(args, os.environ))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except SeqfastError as exc:
        print(f"seqfast: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"seqfast: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
