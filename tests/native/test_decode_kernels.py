"""The query read path's column kernels (native/columns.pyx) agree with plain Python
versions of what they compute, on arbitrary inputs, and refuse inconsistent ones."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast import _native

TAG_INT, TAG_FLOAT, TAG_STRING, TAG_BIGINT = 4, 5, 6, 8
LIMIT = 1e29

tags_lists = st.lists(st.integers(0, 8), max_size=200)
int64s = st.integers(-(2**63), 2**63 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e29, -1e29, 0.0, -0.0])


def u8(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint8)


def i64(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def bits(x: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", x))[0])


@given(st.lists(st.integers(0, 255), max_size=300))
def test_byte_counts_counts_every_value(values: list[int]) -> None:
    counts = _native.byte_counts(u8(values))
    assert counts.tolist() == [values.count(b) for b in range(256)]


@st.composite
def numeric_columns(draw: st.DrawFn) -> tuple[list[int], list[int], list[Any]]:
    tags = draw(tags_lists)
    nums: list[int] = []
    python: list[Any] = []
    for tag in tags:
        if tag == TAG_INT:
            value = draw(int64s)
            nums.append(value)
            python.append(value)
        elif tag == TAG_FLOAT:
            x = draw(floats)
            nums.append(bits(x))
            python.append(x)
        else:
            python.append(None)
    return tags, nums, python


@given(numeric_columns())
def test_column_numbers_places_each_number_at_its_row(
    column: tuple[list[int], list[int], list[Any]],
) -> None:
    tags, nums, python = column
    kind_of_tag = np.arange(256, dtype=np.uint8)[::-1].copy()  # any table
    kind, numbers, exact = _native.column_numbers(u8(tags), i64(nums), kind_of_tag, LIMIT)
    want_kind = [255 - t for t in tags]
    want_numbers = [0.0] * len(tags)
    for i, (tag, value) in enumerate(zip(tags, python, strict=True)):
        if tag == TAG_INT:
            want_numbers[i] = float(value)
        elif tag == TAG_FLOAT:
            if abs(value) < LIMIT:  # False for NaN
                want_numbers[i] = value
            else:
                want_kind[i] = 0
    assert kind.tolist() == want_kind
    if not nums or TAG_FLOAT in tags:
        assert exact is None and numbers is not None
    else:
        # Integers only: given exactly, the floats left to the caller.
        assert exact is not None and numbers is None
        assert exact.tolist() == [
            v if t == TAG_INT else 0 for t, v in zip(tags, python, strict=True)
        ]
        numbers = exact.astype(np.float64)
    assert [struct.pack("<d", x) for x in numbers.tolist()] == [
        struct.pack("<d", x) for x in want_numbers
    ]


def test_column_numbers_refuses_a_wrong_count_of_numbers() -> None:
    table = np.zeros(256, dtype=np.uint8)
    with pytest.raises(ValueError):
        _native.column_numbers(u8([TAG_INT, TAG_INT]), i64([1]), table, LIMIT)
    with pytest.raises(ValueError):
        _native.column_numbers(u8([TAG_INT]), i64([1, 2]), table, LIMIT)
    with pytest.raises(ValueError):
        _native.column_numbers(u8([TAG_FLOAT]), i64([]), table, LIMIT)
    with pytest.raises(ValueError):
        _native.column_numbers(u8([0]), i64([]), np.zeros(9, dtype=np.uint8), LIMIT)


@given(tags_lists, st.integers(0, 8), st.integers(0, 8), st.data())
def test_scatter_codes_gives_each_chosen_row_the_next_code(
    tags: list[int], lo: int, hi: int, data: st.DataObject
) -> None:
    chosen = [i for i, t in enumerate(tags) if lo <= t <= hi]
    codes = data.draw(st.lists(int64s, min_size=len(chosen), max_size=len(chosen)))
    want = [-1] * len(tags)
    for row, code in zip(chosen, codes, strict=True):
        want[row] = code
    assert _native.scatter_codes(u8(tags), i64(codes), lo, hi).tolist() == want
    with pytest.raises(ValueError):
        _native.scatter_codes(u8(tags), i64([*codes, 0]), lo, hi)


@st.composite
def coded_rows(draw: st.DrawFn) -> tuple[list[int], list[int], int]:
    d = draw(st.integers(1, 20))
    kind = draw(st.lists(st.integers(0, 7), max_size=150))
    # Rows of other kinds may hold any code (-1 included); kind 5 rows a valid one.
    codes = [draw(st.integers(0, d - 1)) if k == 5 else draw(st.integers(-1, 50)) for k in kind]
    return kind, codes, d


@given(coded_rows())
def test_used_codes_marks_the_codes_of_rows_of_the_kind(
    rows: tuple[list[int], list[int], int],
) -> None:
    kind, codes, d = rows
    used = _native.used_codes(u8(kind), i64(codes), 5, d)
    seen = {c for k, c in zip(kind, codes, strict=True) if k == 5}
    assert used.tolist() == [1 if j in seen else 0 for j in range(d)]


@given(coded_rows(), st.data())
def test_apply_codes_looks_up_rows_of_the_kind_and_others_by_kind(
    rows: tuple[list[int], list[int], int], data: st.DataObject
) -> None:
    kind, codes, d = rows
    remap = data.draw(st.lists(int64s, min_size=d, max_size=d))
    code_of_kind = data.draw(st.lists(int64s, min_size=256, max_size=256))
    got = _native.apply_codes(u8(kind), i64(codes), 5, i64(remap), i64(code_of_kind))
    want = [remap[c] if k == 5 else code_of_kind[k] for k, c in zip(kind, codes, strict=True)]
    assert got.tolist() == want
    # No kind looked up: codes are not needed.
    plain = _native.apply_codes(u8(kind), i64([]), -1, i64([]), i64(code_of_kind))
    assert plain.tolist() == [code_of_kind[k] for k in kind]


def test_dictionary_kernels_refuse_codes_outside_the_dictionary() -> None:
    with pytest.raises(ValueError):
        _native.used_codes(u8([5, 5]), i64([0, 3]), 5, 3)
    with pytest.raises(ValueError):
        _native.used_codes(u8([5]), i64([-1]), 5, 3)
    with pytest.raises(ValueError):
        _native.used_codes(u8([5, 5]), i64([0]), 5, 3)
    table = i64([0] * 256)
    with pytest.raises(ValueError):
        _native.apply_codes(u8([5]), i64([2]), 5, i64([0, 1]), table)
    with pytest.raises(ValueError):
        _native.apply_codes(u8([5]), i64([0]), 5, i64([0]), i64([0]))


@given(tags_lists, st.integers(0, 8), st.integers(0, 8), st.data())
def test_rank_rows_counts_the_chosen_rows_before_each_row(
    tags: list[int], lo: int, hi: int, data: st.DataObject
) -> None:
    rows = sorted(data.draw(st.lists(st.integers(0, max(0, len(tags) - 1)), max_size=30)))
    if not tags:
        rows = []
    got = _native.rank_rows(u8(tags), lo, hi, i64(rows))
    assert got.tolist() == [sum(1 for t in tags[:r] if lo <= t <= hi) for r in rows]


def test_rank_rows_refuses_rows_out_of_order_or_range() -> None:
    with pytest.raises(ValueError):
        _native.rank_rows(u8([6, 6, 6]), 6, 8, i64([2, 1]))
    with pytest.raises(ValueError):
        _native.rank_rows(u8([6, 6, 6]), 6, 8, i64([3]))
    with pytest.raises(ValueError):
        _native.rank_rows(u8([6, 6, 6]), 6, 8, i64([-1]))


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * float(len(ordered))))
    return ordered[min(rank, len(ordered)) - 1]


finite = st.floats(allow_nan=False, allow_infinity=True, width=64)


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.integers(0, 6), finite | st.sampled_from([1.0, 2.0, 2.0])), max_size=400),
    st.floats(0, 100) | st.sampled_from([0.0, 50.0, 95.0, 99.0, 100.0]),
)
def test_group_percentiles_are_the_nearest_rank_of_each_group(
    pairs: list[tuple[int, float]], p: float
) -> None:
    groups = 7
    values, counts = _native.group_percentiles(
        i64([g for g, _ in pairs]), np.array([x for _, x in pairs], dtype=np.float64), groups, p
    )
    for g in range(groups):
        mine = [x for h, x in pairs if h == g]
        assert counts[g] == len(mine)
        assert values[g] == (nearest_rank(mine, p) if mine else 0.0)


def test_group_percentiles_of_large_groups_with_repeats() -> None:
    # Long runs of equal values and sorted input: the partitioning must neither degrade nor
    # pick a wrong rank.
    rng = np.random.default_rng(5)
    for x in (
        np.repeat(rng.integers(0, 5, 3000).astype(np.float64), 3),
        np.arange(20_000, dtype=np.float64),
        np.arange(20_000, dtype=np.float64)[::-1].copy(),
        rng.normal(size=50_000),
    ):
        g = rng.integers(0, 3, x.size).astype(np.int64)
        values, counts = _native.group_percentiles(g, x, 4, 95.0)
        for group in range(3):
            mine = np.sort(x[g == group])
            rank = max(1, math.ceil(95.0 / 100 * float(mine.size)))
            assert values[group] == mine[rank - 1]
            assert counts[group] == mine.size
        assert counts[3] == 0 and values[3] == 0.0


def test_group_percentiles_refuses_bad_group_numbers() -> None:
    with pytest.raises(ValueError):
        _native.group_percentiles(i64([0, 2]), np.zeros(2), 2, 50.0)
    with pytest.raises(ValueError):
        _native.group_percentiles(i64([-1]), np.zeros(1), 2, 50.0)
    with pytest.raises(ValueError):
        _native.group_percentiles(i64([0]), np.zeros(2), 2, 50.0)


def as_list(strs: list[bytes]) -> tuple[np.ndarray, bytes]:
    offsets = np.zeros(len(strs) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in strs], out=offsets[1:])
    return offsets, b"".join(strs)


byte_strings = st.binary(max_size=12) | st.sampled_from([b"", b"a", b"/orders/1", b"\xc3\xa9"])


@settings(max_examples=200)
@given(st.lists(st.lists(byte_strings, max_size=60), max_size=6))
def test_string_ids_find_what_was_added_and_nothing_else(batches: list[list[bytes]]) -> None:
    ids = _native.StringIds()
    known: dict[bytes, int] = {}
    for strs in batches:
        offsets, data = as_list(strs)
        found = ids.find(offsets, data)
        assert found.tolist() == [known.get(s, -1) for s in strs]
        missing = [i for i, s in enumerate(strs) if s not in known]
        numbers = []
        for i in missing:  # a repeat within the batch keeps its first number
            numbers.append(known.setdefault(strs[i], len(known) + 1000))
        ids.add(offsets, data, i64(missing), i64(numbers))
        assert ids.find(offsets, data).tolist() == [known[s] for s in strs]
        assert len(ids) == len(known)


def test_string_ids_grow_past_many_strings() -> None:
    strs = [f"/path/{i}".encode() for i in range(50_000)]
    offsets, data = as_list(strs)
    ids = _native.StringIds()
    ids.add(offsets, data, np.arange(len(strs), dtype=np.int64), np.arange(len(strs)) * 3)
    assert ids.find(offsets, data).tolist() == [i * 3 for i in range(len(strs))]
    other, other_data = as_list([b"/path/x", b"/path/50000"])
    assert ids.find(other, other_data).tolist() == [-1, -1]


def test_string_ids_refuse_bad_arguments() -> None:
    offsets, data = as_list([b"a", b"b"])
    ids = _native.StringIds()
    with pytest.raises(ValueError):
        ids.add(offsets, data, i64([2]), i64([0]))
    with pytest.raises(ValueError):
        ids.add(offsets, data, i64([0, 1]), i64([0]))
    with pytest.raises(ValueError):
        ids.find(i64([0, 5]), b"ab")
