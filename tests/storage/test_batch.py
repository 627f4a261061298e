"""concat, take, sort_by_id and to_events on batches, against plain-Python models of them."""

from __future__ import annotations

import decimal
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast.storage import batch as batches
from seqfast.storage import ids
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
)
from seqfast.testing import (
    Cell,
    assert_batch_equal,
    batch_from_cells,
    column_cells,
)
from seqfast.testing import (
    batches as batch_strategy,
)

ABSENT: Cell = (TAG_ABSENT, None)


def rows_of(batch: Batch) -> list[tuple[int, int, dict[str, Cell]]]:
    """The batch as one (ts, seq, {column: cell}) per row, ABSENT cells left out."""
    cells = {name: column_cells(col) for name, col in batch.columns.items()}
    return [
        (
            int(batch.ts[i]),
            int(batch.seq[i]),
            {name: c[i] for name, c in cells.items() if c[i][0] != TAG_ABSENT},
        )
        for i in range(batch.n)
    ]


def same_rows(
    a: list[tuple[int, int, dict[str, Cell]]], b: list[tuple[int, int, dict[str, Cell]]]
) -> bool:
    # Cells compared by their text, so that NaN equals NaN; column order does not matter.
    def norm(rows: list[tuple[int, int, dict[str, Cell]]]) -> str:
        return repr([(ts, seq, sorted(cells.items())) for ts, seq, cells in rows])

    return norm(a) == norm(b)


def sample() -> Batch:
    return batch_from_cells(
        [30, 10, 20, 10],
        [0, 1, 2, 3],
        {
            "@mt": [(TAG_STRING, "a {x}"), ABSENT, (TAG_STRING, "b"), (TAG_STRING, "ü")],
            "x": [(TAG_INT, 1), (TAG_FLOAT, 2.5), (TAG_NULL, None), (TAG_JSON, "[1]")],
            "@l": [ABSENT, (TAG_STRING, "Error"), ABSENT, (TAG_TRUE, None)],
        },
    )


# --- concat -----------------------------------------------------------------------------------


@given(st.lists(batch_strategy(max_rows=8, max_columns=3, sort=False), max_size=4))
def test_concat_is_the_rows_one_after_the_other(parts: list[Batch]) -> None:
    joined = batches.concat(parts)
    assert joined.n == sum(p.n for p in parts)
    assert same_rows(rows_of(joined), [r for p in parts for r in rows_of(p)])
    assert list(joined.columns) == list(dict.fromkeys(n for p in parts for n in p.columns))


def test_concat_fills_missing_columns_with_absent() -> None:
    a = batch_from_cells([1], [1], {"x": [(TAG_INT, 5)]})
    b = batch_from_cells([2, 3], [2, 3], {"y": [(TAG_STRING, "s"), (TAG_STRING, "t")]})
    joined = batches.concat([a, b])
    assert column_cells(joined.columns["x"]) == [(TAG_INT, 5), ABSENT, ABSENT]
    assert column_cells(joined.columns["y"]) == [ABSENT, (TAG_STRING, "s"), (TAG_STRING, "t")]


def test_concat_of_nothing_and_of_one() -> None:
    assert batches.concat([]).n == 0
    one = sample()
    assert batches.concat([one]) is one


# --- take and sort ----------------------------------------------------------------------------


@given(batch_strategy(max_rows=20, sort=False), st.data())
def test_take_selects_rows_in_order(batch: Batch, data: st.DataObject) -> None:
    indices = data.draw(st.lists(st.integers(0, max(batch.n - 1, 0)), max_size=30))
    if batch.n == 0:
        indices = []
    taken = batches.take(batch, np.array(indices, dtype=np.int64))
    original = rows_of(batch)
    assert same_rows(rows_of(taken), [original[i] for i in indices])
    assert list(taken.columns) == list(batch.columns)


def test_take_rejects_out_of_range_rows() -> None:
    with pytest.raises(IndexError):
        batches.take(sample(), np.array([4]))
    with pytest.raises(IndexError):
        batches.take(sample(), np.array([-1]))


def test_take_of_nothing_keeps_the_columns() -> None:
    taken = batches.take(sample(), np.array([], dtype=np.int64))
    assert taken.n == 0 and set(taken.columns) == {"@mt", "x", "@l"}
    assert taken.columns["@mt"].str_offsets.tolist() == [0]


@given(batch_strategy(max_rows=30, sort=False))
def test_sort_by_id_orders_by_ts_then_seq(batch: Batch) -> None:
    ordered = batches.sort_by_id(batch)
    expected = sorted(rows_of(batch), key=lambda r: (r[0], r[1]))
    assert same_rows(rows_of(ordered), expected)
    assert batches.is_sorted_by_id(ordered)


def test_sort_by_id_keeps_ties_in_order_and_returns_sorted_input() -> None:
    batch = batch_from_cells([5, 5, 1], [7, 7, 9], {"k": [(TAG_INT, 1), (TAG_INT, 2), ABSENT]})
    ordered = batches.sort_by_id(batch)
    assert column_cells(ordered.columns["k"]) == [ABSENT, (TAG_INT, 1), (TAG_INT, 2)]
    assert batches.sort_by_id(ordered) is ordered


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**32))
def test_take_is_vectorised_enough_for_large_batches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 100_000
    tags = rng.choice(np.array([TAG_ABSENT, TAG_INT, TAG_STRING], dtype=np.uint8), n)
    strings = [f"s{i}".encode() for i in range(int(np.count_nonzero(tags == TAG_STRING)))]
    offsets = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in strings], out=offsets[1:])
    col = batches.Column(
        tags=tags,
        nums=np.arange(int(np.count_nonzero(tags == TAG_INT)), dtype=np.int64),
        str_offsets=offsets,
        str_data=b"".join(strings),
    )
    batch = Batch(
        n=n,
        ts=rng.integers(0, 1000, n, dtype=np.int64),
        seq=np.arange(n, dtype=np.int64),
        columns={"c": col},
    )
    ordered = batches.sort_by_id(batch)
    assert batches.is_sorted_by_id(ordered)
    back = batches.take(ordered, np.argsort(ordered.seq, kind="stable"))
    assert_batch_equal(back, batch)


# --- to_events --------------------------------------------------------------------------------


def test_to_events_converts_every_tag() -> None:
    big = 2**70
    batch = batch_from_cells(
        [0, 17_000_000_000_000_000],
        [1, 2],
        {
            "null": [(TAG_NULL, None), ABSENT],
            "bools": [(TAG_FALSE, None), (TAG_TRUE, None)],
            "int": [(TAG_INT, -(2**63)), (TAG_INT, 2**63 - 1)],
            "float": [(TAG_FLOAT, -0.0), (TAG_FLOAT, 1.5e300)],
            "text": [(TAG_STRING, ""), (TAG_STRING, "Grüße, 世界 🎉")],
            "json": [(TAG_JSON, '{"a":[1,{"b":null}],"c":"é"}'), (TAG_JSON, f"[{big},1.5]")],
            "bigint": [(TAG_BIGINT, str(big)), (TAG_BIGINT, str(-big))],
            "@l": [ABSENT, (TAG_STRING, "Warning")],
        },
    )
    first, second = batches.to_events(batch)
    assert first == {
        "@t": ids.format_ticks(0),
        "@id": ids.event_id(0, 1),
        "null": None,
        "bools": False,
        "int": -(2**63),
        "float": -0.0,
        "text": "",
        "json": {"a": [1, {"b": None}], "c": "é"},
        "bigint": big,
        "@l": "Information",
    }
    assert math.copysign(1.0, first["float"]) == -1.0
    assert second == {
        "@t": ids.format_ticks(17_000_000_000_000_000),
        "@id": ids.event_id(17_000_000_000_000_000, 2),
        "bools": True,
        "int": 2**63 - 1,
        "float": 1.5e300,
        "text": "Grüße, 世界 🎉",
        "json": [big, 1.5],
        "bigint": -big,
        "@l": "Warning",
    }
    assert list(first)[:2] == ["@t", "@id"]


def test_to_events_of_selected_rows_and_huge_integers() -> None:
    digits = "9" * 5000  # beyond CPython's default int(str) digit limit
    batch = batch_from_cells(
        [1, 2, 3],
        [1, 2, 3],
        {"v": [(TAG_INT, 1), (TAG_BIGINT, digits), (TAG_JSON, f"[{digits}]")]},
    )
    events = batches.to_events(batch, [2, 0, 1])
    assert [e["@id"] for e in events] == [ids.event_id(t, t) for t in (3, 1, 2)]
    huge = int(decimal.Decimal(digits))
    assert events[0]["v"] == [huge]
    assert events[1]["v"] == 1
    assert events[2]["v"] == huge
    with pytest.raises(IndexError):
        batches.to_events(batch, [3])


def test_to_events_level_default_only_when_absent() -> None:
    batch = batch_from_cells([1, 2], [1, 2], {"@l": [(TAG_NULL, None), ABSENT]})
    assert [e["@l"] for e in batches.to_events(batch)] == [None, "Information"]
    bare = batch_from_cells([1], [1], {})
    assert batches.to_events(bare)[0]["@l"] == "Information"


@given(batch_strategy(max_rows=10, max_columns=4))
def test_to_events_matches_cells(batch: Batch) -> None:
    events = batches.to_events(batch)
    for event, (ts, seq, cells) in zip(events, rows_of(batch), strict=True):
        assert event["@t"] == ids.format_ticks(ts)
        assert event["@id"] == ids.event_id(ts, seq)
        for name, (tag, value) in cells.items():
            if name in ("@t", "@id"):
                continue
            got = event[name]
            if tag == TAG_FLOAT:
                assert repr(got) == repr(value)
            elif tag == TAG_BIGINT:
                assert got == int(value)
            elif tag == TAG_JSON:
                assert got == json.loads(value)
            elif tag in (TAG_FALSE, TAG_TRUE):
                assert got is (tag == TAG_TRUE)
            else:
                assert got == value


@pytest.mark.parametrize(
    "text",
    [
        "[-9223372036854775809]",  # orjson would quietly make these floats
        "[18446744073709551616]",
        '{"a":123456789012345678901234567890}',
        '["1234567890123456789012",0.12345678901234567890]',  # long digit runs, not integers
        "[-9223372036854775808,18446744073709551615]",
    ],
)
def test_json_integers_stay_exact(text: str) -> None:
    batch = batch_from_cells([1], [1], {"j": [(TAG_JSON, text)]})
    assert batches.to_events(batch)[0]["j"] == json.loads(text)
