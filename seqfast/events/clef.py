"""CLEF (newline-delimited JSON events) in and out.

`shred` turns CLEF bytes into a `Batch` with the native shredder; its rules are written out in
`seqfast.testing.reference_clef`, the pure-Python oracle it is tested against.  `encode_events`
turns CLEF-shaped dicts into CLEF bytes, so that `Store.ingest` shares the one ingest path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import orjson

from seqfast import _native
from seqfast.errors import InvalidEvents
from seqfast.storage.batch import Batch, Column

DEFAULT_MAX_EVENT_BYTES = 256 * 1024


def shred(data: bytes, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> Batch:
    """The events of a CLEF payload as columns; InvalidEvents names the first bad line.

    `seq` is 0..n-1: the store assigns real arrival numbers when it commits the batch.
    """
    try:
        n, ts, columns = _native.shred_clef(data, max_event_bytes)
    except ValueError as exc:
        line, reason = exc.args[0]
        raise InvalidEvents(line, reason) from None
    batch = Batch(n=n, ts=ts, seq=np.arange(n, dtype=np.int64))
    for key, tags, nums, offsets, blob in columns:
        batch.columns[key] = Column(tags=tags, nums=nums, str_offsets=offsets, str_data=blob)
    return batch


def dumps_json(value: Any) -> bytes:
    """Compact JSON of a value, exact for integers of any size."""
    try:
        return orjson.dumps(value)
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library keeps them exact.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_events(events: Iterable[Mapping[str, Any]]) -> bytes:
    """CLEF bytes of CLEF-shaped dicts, one line each; InvalidEvents for what is not a mapping
    or cannot be written as JSON."""
    lines = []
    for number, event in enumerate(events, start=1):
        if not isinstance(event, Mapping):
            raise InvalidEvents(number, "not a JSON object")
        try:
            lines.append(dumps_json(event))
        except (TypeError, ValueError) as exc:
            raise InvalidEvents(number, f"cannot be written as JSON: {exc}") from None
    lines.append(b"")
    return b"\n".join(lines)
