"""What an API key does to the events it brings: minimum level and applied properties (pure).

Both work on columns, so a batch of any size costs a handful of numpy operations.  The same
`KeySettings` travel with the batch in its commit-log record, so replaying the log after a crash
stores exactly what was acknowledged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seqfast.events import levels
from seqfast.events.clef import dumps_json
from seqfast.storage import batch as batches
from seqfast.storage.batch import (
    TAG_BIGINT,
    TAG_FALSE,
    TAG_FLOAT,
    TAG_INT,
    TAG_JSON,
    TAG_NULL,
    TAG_STRING,
    TAG_TRUE,
    Batch,
    Column,
)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class KeySettings:
    """`minimum_level`: a Seq level name; events ranked below it are dropped (unknown levels
    pass).  `properties`: name -> JSON value, set on every event, overriding its own."""

    minimum_level: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.minimum_level is not None or bool(self.properties)

    def to_json(self) -> bytes:
        # The standard library, not orjson: property values may be integers beyond 64 bits.
        obj = {"minimum_level": self.minimum_level, "properties": dict(self.properties)}
        return json.dumps(obj, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> KeySettings:
        obj = json.loads(data)
        return cls(minimum_level=obj.get("minimum_level"), properties=obj.get("properties") or {})


def apply(batch: Batch, settings: KeySettings) -> Batch:
    """The batch as the key stores it."""
    if settings.minimum_level is not None:
        batch = drop_below(batch, settings.minimum_level)
    for name, value in settings.properties.items():
        # A property named "@x" is spelled "@@x" in CLEF, so it cannot collide with `@x`.
        key = "@" + name if name.startswith("@") else name
        batch.columns[key] = constant_column(batch.n, value)
    return batch


def drop_below(batch: Batch, minimum_level: str) -> Batch:
    floor = levels.rank(minimum_level)
    if floor is None:
        raise ValueError(f"{minimum_level!r} is not a known level")
    column = batch.columns.get("@l")
    ranks = np.full(batch.n, levels.rank(None), dtype=np.int16)
    if column is not None:
        rows = np.flatnonzero(column.tags == TAG_STRING)
        texts = [
            column.str_data[a:b].decode("utf-8")
            for a, b in zip(
                column.str_offsets[:-1].tolist(), column.str_offsets[1:].tolist(), strict=True
            )
        ]
        # Few distinct levels: rank each spelling once.
        # Unknown spellings are kept: better to store an event than to lose it on a guess.
        known: dict[str, int] = {}
        for text in set(texts):
            known[text] = floor if (r := levels.rank(text)) is None else r
        ranks[rows] = np.array([known[t] for t in texts], dtype=np.int16)
    keep = np.flatnonzero(ranks >= floor)
    if len(keep) == batch.n:
        return batch
    return batches.take(batch, keep)


def constant_column(n: int, value: Any) -> Column:
    """A column holding `value` on each of n rows."""
    nums = np.zeros(0, dtype=np.int64)
    text = b""
    if value is None:
        tag = TAG_NULL
    elif value is True or value is False:
        tag = TAG_TRUE if value else TAG_FALSE
    elif isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            tag, nums = TAG_INT, np.full(n, value, dtype=np.int64)
        else:
            tag, text = TAG_BIGINT, str(value).encode()
    elif isinstance(value, float):
        tag, nums = TAG_FLOAT, np.full(n, value, dtype=np.float64).view(np.int64)
    elif isinstance(value, str):
        tag, text = TAG_STRING, value.encode("utf-8")
    else:
        tag, text = TAG_JSON, dumps_json(value)
    has_text = tag in (TAG_STRING, TAG_JSON, TAG_BIGINT)
    return Column(
        tags=np.full(n, tag, dtype=np.uint8),
        nums=nums,
        str_offsets=(
            np.arange(n + 1, dtype=np.int64) * len(text) if has_text else np.zeros(1, np.int64)
        ),
        str_data=text * n if has_text else b"",
    )
