"""The server's own log: CLEF events on stderr, so seqfast can ingest its own logs.

`log("Information", "Listening on {Address}", Address=...)` writes one line.  API keys never
reach this log: callers pass key ids, never tokens.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any, TextIO

import orjson

from seqfast.events import levels

_minimum = levels.rank("Information") or 0


def set_minimum_level(level: str) -> None:
    global _minimum
    rank = levels.rank(level)
    if rank is None:
        raise ValueError(f"{level!r} is not a known level")
    _minimum = rank


def log(level: str, template: str, stream: TextIO | None = None, **properties: Any) -> None:
    if (levels.rank(level) or 0) < _minimum:
        return
    event: dict[str, Any] = {
        "@t": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "@mt": template,
        "@l": level,
    }
    for name, value in properties.items():
        event["@" + name if name.startswith("@") else name] = value
    out = stream if stream is not None else sys.stderr
    out.write(orjson.dumps(event, default=str).decode() + "\n")
    out.flush()
