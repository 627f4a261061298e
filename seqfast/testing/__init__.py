"""Test tools shared by seqfast's own tests and by anyone embedding it: builders of batches
from plain values, an exact batch comparison, and hypothesis strategies of arbitrary batches.

Reference oracles of the native code live in `seqfast.testing.reference` (segment codecs) and
`seqfast.testing.reference_clef` (the CLEF shredder).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

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
    Column,
)

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "Cell",
    "assert_batch_equal",
    "batch_from_cells",
    "batches",
    "column_cells",
    "column_from_cells",
]

# One row of a column as plain values: (tag, payload) where the payload is None for ABSENT,
# NULL, FALSE and TRUE, an int for INT, a float for FLOAT and a str for STRING, JSON (the JSON
# text) and BIGINT (the decimal text).
Cell = tuple[int, Any]

_STRING_TAGS = (TAG_STRING, TAG_JSON, TAG_BIGINT)


def column_from_cells(cells: Sequence[Cell]) -> Column:
    """The Column holding `cells`, one per row."""
    nums: list[int] = []
    strings: list[bytes] = []
    for tag, value in cells:
        if tag == TAG_INT:
            nums.append(int(value))
        elif tag == TAG_FLOAT:
            nums.append(struct.unpack("<q", struct.pack("<d", float(value)))[0])
        elif tag in _STRING_TAGS:
            strings.append(str(value).encode("utf-8", "surrogatepass"))
    offsets = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in strings], out=offsets[1:])
    return Column(
        tags=np.array([tag for tag, _ in cells], dtype=np.uint8),
        nums=np.array(nums, dtype=np.int64),
        str_offsets=offsets,
        str_data=b"".join(strings),
    )


def column_cells(col: Column) -> list[Cell]:
    """The inverse of `column_from_cells`."""
    nums = iter(col.nums.tolist())
    offsets = col.str_offsets.tolist()
    cells: list[Cell] = []
    j = 0
    for tag in col.tags.tolist():
        if tag == TAG_INT:
            cells.append((tag, next(nums)))
        elif tag == TAG_FLOAT:
            cells.append((tag, struct.unpack("<d", struct.pack("<q", next(nums)))[0]))
        elif tag in _STRING_TAGS:
            text = col.str_data[offsets[j] : offsets[j + 1]].decode("utf-8", "surrogatepass")
            cells.append((tag, text))
            j += 1
        else:
            cells.append((tag, None))
    return cells


def batch_from_cells(
    ts: Sequence[int], seq: Sequence[int], columns: Mapping[str, Sequence[Cell]]
) -> Batch:
    """A Batch with these timestamps, arrival numbers and columns (each one cell per row)."""
    n = len(ts)
    if len(seq) != n or any(len(cells) != n for cells in columns.values()):
        raise ValueError("every column needs one cell per row")
    return Batch(
        n=n,
        ts=np.array(ts, dtype=np.int64),
        seq=np.array(seq, dtype=np.int64),
        columns={name: column_from_cells(cells) for name, cells in columns.items()},
    )


def assert_batch_equal(actual: Batch, expected: Batch) -> None:
    """Fails with a precise message unless the batches hold exactly the same rows, columns
    and value bits (floats compared bit for bit, so NaN equals the same NaN)."""
    assert actual.n == expected.n, f"n: {actual.n} != {expected.n}"
    np.testing.assert_array_equal(actual.ts, expected.ts, err_msg="ts")
    np.testing.assert_array_equal(actual.seq, expected.seq, err_msg="seq")
    assert sorted(actual.columns) == sorted(expected.columns), (
        f"columns: {sorted(actual.columns)} != {sorted(expected.columns)}"
    )
    for name, want in expected.columns.items():
        got = actual.columns[name]
        assert got.tags.dtype == np.uint8 and got.tags.shape == (actual.n,), name
        np.testing.assert_array_equal(got.tags, want.tags, err_msg=f"{name!r} tags")
        assert got.nums.dtype == np.int64, name
        np.testing.assert_array_equal(got.nums, want.nums, err_msg=f"{name!r} nums")
        assert got.str_offsets.dtype == np.int64, name
        np.testing.assert_array_equal(
            got.str_offsets, want.str_offsets, err_msg=f"{name!r} str_offsets"
        )
        assert bytes(got.str_data) == bytes(want.str_data), f"{name!r} str_data"


def batches(
    *, min_rows: int = 0, max_rows: int = 40, max_columns: int = 5, sort: bool = True
) -> SearchStrategy[Batch]:
    """Arbitrary batches: every tag, columns mixing kinds, sparse columns, empty and non-ASCII
    strings, repetitive strings (dictionary-coded), hex ids, JSON, big integers, duplicate
    timestamps.  Sorted by (ts, seq) unless `sort` is False.  Needs hypothesis."""
    from hypothesis import strategies as st

    from seqfast.storage.batch import sort_by_id

    hex_ids = st.integers(0, 2**64 - 1).map(lambda v: f"{v:016x}")
    texts = st.text(st.characters(codec="utf-8"), max_size=12)
    json_texts = st.recursive(
        st.none() | st.booleans() | st.integers() | texts,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
        max_leaves=6,
    ).map(lambda v: _json_text(v))
    bigints = st.integers(2**63, 2**200).flatmap(lambda v: st.sampled_from([v, -v - 1]))

    constants = st.sampled_from([TAG_ABSENT, TAG_NULL, TAG_FALSE, TAG_TRUE]).map(
        lambda t: (t, None)
    )
    numbers = st.one_of(
        st.integers(-(2**63), 2**63 - 1).map(lambda v: (TAG_INT, v)),
        st.integers(-5, 300).map(lambda v: (TAG_INT, v)),
        st.floats().map(lambda v: (TAG_FLOAT, v)),
    )
    others = st.one_of(
        texts.map(lambda v: (TAG_STRING, v)),
        hex_ids.map(lambda v: (TAG_STRING, v)),
        json_texts.map(lambda v: (TAG_JSON, v)),
        bigints.map(lambda v: (TAG_BIGINT, str(v))),
    )

    def cells(kind: str, pool: list[str]) -> SearchStrategy[Cell]:
        # A column has a kind, so that dictionary, hex and plain strings all occur.
        pooled = st.sampled_from(pool).map(lambda v: (TAG_STRING, v))
        if kind == "hex":
            return constants | hex_ids.map(lambda v: (TAG_STRING, v))
        if kind == "pool":
            return constants | pooled
        if kind == "numbers":
            return constants | numbers
        return constants | numbers | pooled | others

    def column_cells_strategy(n: int) -> SearchStrategy[list[Cell]]:
        kinds = st.sampled_from(["hex", "pool", "numbers", "mixed"])
        pools = st.lists(texts | hex_ids, min_size=1, max_size=3) | st.lists(
            hex_ids, min_size=1, max_size=3
        )
        return st.tuples(kinds, pools).flatmap(
            lambda kp: st.lists(cells(*kp), min_size=n, max_size=n)
        )

    @st.composite
    def build(draw: st.DrawFn) -> Batch:
        n = draw(st.integers(min_rows, max_rows))
        ts = draw(st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n))
        seq = draw(st.permutations(range(n)))
        names = draw(st.lists(texts, max_size=max_columns, unique=True))
        columns = {name: draw(column_cells_strategy(n)) for name in names}
        batch = batch_from_cells(ts, list(seq), columns)
        return sort_by_id(batch) if sort else batch

    strategy: SearchStrategy[Batch] = build()
    return strategy


def _json_text(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
