"""`Values`, the columnar value of an expression: conversions, masks, row selection and
grouping, which the query executor builds on."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast.query import ast as A
from seqfast.query import vector
from seqfast.query.values import (
    K_ARRAY,
    K_FALSE,
    K_NULL,
    K_NUMBER,
    K_OBJECT,
    K_STRING,
    K_TRUE,
    K_UNDEFINED,
    UNDEFINED,
    Values,
    equal,
    fold,
    fold_deep,
)
from seqfast.storage.batch import TAG_STRING
from seqfast.testing import batch_from_cells

scalars = st.one_of(
    st.just(UNDEFINED),
    st.none(),
    st.booleans(),
    # Within 2**53: mixed with fractions, numbers are float64 (values.py), which holds every
    # integer up to there exactly; beyond it only all-integer columns stay exact.
    st.integers(-(2**53), 2**53).map(Decimal),
    st.sampled_from([Decimal("0.5"), Decimal("-2.25"), Decimal("1E+3")]),
    st.text(st.sampled_from(list("aAbBéÉßıI ")), max_size=4),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner.filter(lambda v: v is not UNDEFINED), max_size=3)
        | st.dictionaries(
            st.sampled_from(["a", "b", "A"]), inner.filter(lambda v: v is not UNDEFINED), max_size=2
        )
    ),
    max_leaves=5,
)


def test_kinds_and_masks() -> None:
    v = Values.from_python([UNDEFINED, None, False, True, Decimal(1), "x", [1], {"a": 1}])
    assert v.kind.tolist() == [
        K_UNDEFINED, K_NULL, K_FALSE, K_TRUE, K_NUMBER, K_STRING, K_ARRAY, K_OBJECT,
    ]  # fmt: skip
    assert v.true_mask().tolist() == [False, False, False, True, False, False, False, False]
    assert v.defined_mask().tolist() == [False] + [True] * 7
    assert v.numbers[4] == 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=8))
def test_python_round_trip(items: list[Any]) -> None:
    v = Values.from_python(items)
    assert v.n == len(items)
    back = v.to_python()
    for a, b in zip(items, back, strict=True):
        assert (a is UNDEFINED and b is UNDEFINED) or (
            a is not UNDEFINED and b is not UNDEFINED and equal(a, b) and type(a) is type(b)
        )


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=10), st.booleans())
def test_group_codes_are_equality_classes(items: list[Any], ci: bool) -> None:
    v = Values.from_python(items)
    codes, keys = v.group_codes(ci=ci)
    assert codes.shape == (len(items),)

    def same(a: Any, b: Any) -> bool:
        if a is UNDEFINED or b is UNDEFINED:
            return a is b
        return equal(fold_deep(a), fold_deep(b)) if ci else equal(a, b)

    for x in range(len(items)):
        key = keys[codes[x]]
        assert same(key, items[x])
        for y in range(len(items)):
            assert (codes[x] == codes[y]) == same(items[x], items[y])


@settings(max_examples=100, deadline=None)
@given(st.lists(values, min_size=1, max_size=8), st.data())
def test_take_selects_rows(items: list[Any], data: st.DataObject) -> None:
    v = Values.from_python(items)
    rows = data.draw(st.lists(st.integers(0, len(items) - 1), max_size=10))
    taken = v.take(np.array(rows, dtype=np.int64)).to_python()
    assert taken == [v.to_python()[r] for r in rows]
    assert v.to_python(np.array(rows, dtype=np.int64)) == taken


def test_group_codes_of_a_dictionary_column_need_no_row_work() -> None:
    n = 10_000
    words = ["Error", "error", "Warning"]
    batch = batch_from_cells(
        list(range(n)), list(range(n)), {"L": [(TAG_STRING, words[k % 3]) for k in range(n)]}
    )
    v = vector.evaluate(A.Property("L"), batch)
    assert v.has_dictionary()
    codes, keys = v.group_codes()
    assert keys == ["Error", "error", "Warning"]
    assert codes[:6].tolist() == [0, 1, 2, 0, 1, 2]
    codes_ci, keys_ci = v.group_codes(ci=True)
    assert keys_ci == ["Error", "Warning"]
    assert codes_ci[:3].tolist() == [0, 0, 1]


def test_numbers_group_exactly_beyond_float_precision() -> None:
    v = vector.evaluate(
        A.Binary("+", A.BuiltIn("Timestamp"), A.Number(Decimal(1))),
        batch_from_cells([0, 1, 1], [0, 1, 2], {}),
    )
    codes, keys = v.group_codes()
    assert codes.tolist() == [0, 1, 1]
    assert keys == [Decimal(621355968000000001), Decimal(621355968000000002)]


def test_fold_keeps_characters_in_place() -> None:
    assert fold("straße ı") == "STRAßE I"
    assert len(fold("ﬁ")) == 1  # a ligature whose upper case is two characters stays
