"""Writes the golden segment files of tests/golden/ from the fixed batch defined here.

    python3 tests/golden/make_golden.py

Run it only when the segment format changes on purpose (with a new format version, in a new
vN directory); tests/storage/test_segment.py checks that the committed file still decodes to
`golden_batch()` and that writing that batch today reproduces it byte for byte.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from seqfast.storage.batch import (
    TAG_ABSENT,
    TAG_BIGINT,
    TAG_FALSE,
    TAG_FLOAT,
    TAG_INT,
    TAG_JSON,
    TAG_NULL,
    TAG_STRING,
    TAG_TRUE,
    Batch,
    sort_by_id,
)
from seqfast.storage.segment import write_segment
from seqfast.testing import Cell, batch_from_cells

V1_DIR = Path(__file__).resolve().parent / "v1"
V1_SEGMENT = V1_DIR / "segment-v1.seg"
# The zstd library that wrote the file: another version may compress the same streams to
# other (equally valid) bytes, so the byte-for-byte check only applies with this one.
V1_INFO = V1_DIR / "segment-v1.json"
BLOCK_ROWS = 16
LEVEL = 3
ROWS = 40

_ABSENT: Cell = (TAG_ABSENT, None)
_TEMPLATES = ["Request {RequestPath} took {Elapsed} ms", "Cache miss for {Key}", "Started"]
_LEVELS = ["Debug", "Warning", "Error"]


def _hex(i: int, width: int) -> str:
    # Deterministic, well-mixed lowercase hex ids.
    return f"{(i + 1) * 0x9E3779B97F4A7C15 * 0xBF58476D1CE4E5B9 % (1 << (4 * width)):0{width}x}"


def _exception(i: int) -> str:
    frames = "".join(
        f"\n   at App.Component{f}.Run() in /src/Component{f}.cs:line {f * 10}" for f in range(8)
    )
    return f"System.InvalidOperationException: attempt {i} failed{frames}"


def _row(i: int) -> dict[str, Cell]:
    mixed: list[Cell] = [
        (TAG_NULL, None),
        (TAG_FALSE, None),
        (TAG_TRUE, None),
        (TAG_INT, -(2**63) + i),
        (TAG_FLOAT, [math.inf, -math.inf, math.nan, -0.0, 1e-300][i % 5]),
        (TAG_STRING, "Grüße 世界 " + str(i)),
        (TAG_JSON, json.dumps({"k": [i, None, True], "s": "é"}, separators=(",", ":"))),
        (TAG_BIGINT, str(2**64 + i) if i % 2 else str(-(2**63) - 1 - i)),
        _ABSENT,
    ]
    return {
        "@mt": (TAG_STRING, _TEMPLATES[i % 3]),  # dictionary
        "@l": (TAG_STRING, _LEVELS[i % 3]) if i % 4 else _ABSENT,  # sparse dictionary
        "@tr": (TAG_STRING, _hex(i // 4, 32)),  # dictionary of hex values
        "@sp": (TAG_STRING, _hex(i, 16)),  # hex
        "RequestPath": (TAG_STRING, f"/orders/{i * 7919 % 1000}/Items"),  # plain
        "Elapsed": (TAG_FLOAT, round(i * 1.2345, 4)) if i % 3 else _ABSENT,  # decimal floats
        "Ratio": (TAG_FLOAT, i / 7),  # raw floats
        "StatusCode": (TAG_INT, [200, 404, 500][i % 3]),  # frame of reference, 1 byte
        "UserId": (TAG_INT, 10**12 + i * 977),  # frame of reference, wider
        "Mixed": mixed[i % len(mixed)],  # every tag
        "Flag": (TAG_TRUE, None),  # constant tags, no stream
        "Empty": (TAG_STRING, ""),  # empty strings
        "Rare": (TAG_STRING, "once") if i == 33 else _ABSENT,  # one block only
        "@x": (TAG_STRING, _exception(i)) if i % 5 == 0 else _ABSENT,  # compressible text
    }


def golden_batch() -> Batch:
    rows = [_row(i) for i in range(ROWS)]
    # Some timestamps repeat, so rows are ordered by arrival number among equals.
    ts = [17_000_000_000_000_000 + (i - (i % 3 == 1)) * 12_345 for i in range(ROWS)]
    batch = batch_from_cells(
        ts,
        [1000 + (i * 37) % ROWS for i in range(ROWS)],
        {name: [row[name] for row in rows] for name in rows[0]},
    )
    return sort_by_id(batch)


def main() -> None:
    V1_DIR.mkdir(parents=True, exist_ok=True)
    meta = write_segment(V1_SEGMENT, golden_batch(), block_rows=BLOCK_ROWS, level=LEVEL)
    V1_INFO.write_text(
        json.dumps({"zstd": zstandard.ZSTD_VERSION, "block_rows": BLOCK_ROWS, "level": LEVEL})
        + "\n"
    )
    print(f"wrote {meta.path} ({meta.size_bytes} bytes, {meta.rows} rows)")


if __name__ == "__main__":
    main()
