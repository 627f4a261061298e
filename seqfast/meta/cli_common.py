"""What the metadata commands (`seqfast apikey`, `seqfast signal`, `seqfast retention`) share:
how they find the metadata database, and how they print a table."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def with_database(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds --data, --metadata-db and --config, as `config.add_arguments` names them: the
    metadata database is found exactly as `seqfast serve` finds it."""
    parser.add_argument("--data", metavar="DIR", help="data directory (default ./seqfast-data)")
    parser.add_argument(
        "--metadata-db",
        metavar="URL",
        help="SQLAlchemy URL of the metadata database (default <data>/metadata.sqlite)",
    )
    parser.add_argument("--config", metavar="FILE", type=Path, help="the server's TOML config file")
    return parser


def table(rows: Sequence[Sequence[str]]) -> str:
    """`rows` (the first one the header) as left-aligned columns two blanks apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in rows
    )
