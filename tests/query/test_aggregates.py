"""Aggregate states: one pass over all rows equals any split into parts merged in any order."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast.query import aggregates as agg
from seqfast.query.values import UNDEFINED, QueryError, Values

values_st = st.one_of(
    st.just(UNDEFINED),
    st.none(),
    st.booleans(),
    st.integers(-50, 50).map(Decimal),
    st.decimals(-100, 100, places=2, allow_nan=False, allow_infinity=False),
    st.sampled_from(["a", "b", "A", "ß", "z"]),
    st.sampled_from([["a"], ["a", "b"], {"k": "v"}]),
)

FACTORIES: list[Callable[[], agg.Aggregate]] = [
    lambda: agg.Count(star=True),
    lambda: agg.Count(star=False),
    lambda: agg.Sum(mean=False),
    lambda: agg.Sum(mean=True),
    lambda: agg.Extreme(maximum=False),
    lambda: agg.Extreme(maximum=True),
    lambda: agg.Percentile(95),
    lambda: agg.Percentile(0),
    lambda: agg.Percentile(50),
    lambda: agg.Extremal(last=False),
    lambda: agg.Extremal(last=True),
    lambda: agg.Truth(every=False),
    lambda: agg.Truth(every=True),
    lambda: agg.Distinct(ci=False, counting=True),
    lambda: agg.Distinct(ci=True, counting=False),
    lambda: agg.Ranked(2, top=True),
    lambda: agg.Ranked(3, top=False),
]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return abs(a - b) <= Decimal("1e-9") * max(Decimal(1), abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a is b or (type(a) is type(b) and a == b)


def fold_rows(
    state: agg.Aggregate, groups: int, rows: list[int], gids: list[int], values: list[Any]
) -> agg.Aggregate:
    state.grow(groups)
    if rows:
        idx = np.array(rows, dtype=np.int64)
        v = Values.from_python([values[i] for i in rows])
        ts = idx * 7 % 5  # ties in time, broken by arrival
        state.update(np.array([gids[i] for i in rows], dtype=np.int64), v, ts, idx)
    return state


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 3), values_st), min_size=0, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_merging_parts_equals_one_pass(
    data: list[tuple[int, Any]], cuts: list[int], order: Any
) -> None:
    gids = [g for g, _ in data]
    values = [v for _, v in data]
    groups = 4
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    parts = [list(range(a, b)) for a, b in itertools.pairwise(bounds)]
    order.shuffle(parts)
    for factory in FACTORIES:
        whole = fold_rows(factory(), groups, list(range(len(data))), gids, values)
        # Each part numbers the groups its own way: group g is part-local (g + shift) % groups.
        merged = factory()
        merged.grow(groups)
        for shift, part in enumerate(parts):
            local = [(g + shift) % groups for g in gids]
            state = fold_rows(factory(), groups, part, local, values)
            mapping = np.array([(g - shift) % groups for g in range(groups)], dtype=np.int64)
            merged.merge(state, mapping)
        for g in range(groups):
            assert same(merged.result(g), whole.result(g)), (type(whole).__name__, g)


def test_semantics_on_a_small_group() -> None:
    values = [Decimal(3), Decimal(1), None, UNDEFINED, "x", Decimal(2), True, Decimal(5)]
    rows = list(range(len(values)))
    gids = [0] * len(values)

    def result(state: agg.Aggregate) -> Any:
        return fold_rows(state, 1, rows, gids, values).result(0)

    assert result(agg.Count(star=True)) == 8
    assert result(agg.Count(star=False)) == 6  # defined and not null
    assert result(agg.Sum(mean=False)) == 11
    assert result(agg.Sum(mean=True)) == Decimal("2.75")
    assert result(agg.Extreme(maximum=False)) == 1
    assert result(agg.Percentile(50)) == 2  # nearest rank: 2 of [1, 2, 3, 5]
    assert result(agg.Percentile(75)) == 3
    assert result(agg.Percentile(100)) == 5
    assert result(agg.Truth(every=False)) is True
    assert result(agg.Truth(every=True)) is False
    assert result(agg.Distinct(ci=False, counting=True)) == 6
    assert result(agg.Ranked(2, top=True)) == ["x", Decimal(5)]  # strings after numbers
    assert result(agg.Ranked(2, top=False)) == [Decimal(1), Decimal(2)]


def test_empty_groups_have_no_value() -> None:
    for factory in (
        lambda: agg.Sum(mean=True),
        lambda: agg.Extreme(maximum=True),
        lambda: agg.Percentile(9),
    ):
        assert fold_rows(factory(), 1, [], [], []).result(0) is UNDEFINED
    assert fold_rows(agg.Count(star=True), 1, [], [], []).result(0) == 0


def test_bad_parameters() -> None:
    with pytest.raises(QueryError):
        agg.Percentile(100.5)
    with pytest.raises(QueryError):
        agg.Ranked(0, top=True)


def test_hashable_keys_follow_seq_equality() -> None:
    assert agg.hashable(Decimal("1.0")) == agg.hashable(Decimal(1))
    assert agg.hashable(True) != agg.hashable(Decimal(1))
    assert agg.hashable("Web", ci=True) == agg.hashable("WEB", ci=True)
    assert agg.hashable({"a": [1, "x"]}) == agg.hashable({"a": [1, "x"]})
