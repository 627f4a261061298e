"""Aggregates as mergeable partial states: per block, then per segment, then merged.

Each aggregate keeps arrays indexed by group number.  `update` folds in the rows of one block
(`gids`: the group of each row, already filtered), `merge` folds in another partial state of
the same aggregate whose group g is this one's `mapping[g]`, and `result(g)` gives the final
value in reference shape (`Decimal` numbers, `UNDEFINED` when there is none).  Merging is
associative and commutative (up to float rounding of sums), so blocks can be split over threads
or nodes in any way.

Semantics (Seq's where it documents them, in `seq.md`; the choices where it does not):

* `count(*)` counts rows; `count(x)` rows where `x` is defined and not null.
* `sum`, `mean`, `min`, `max` and `percentile` look at numbers only; with no number in the
  group they are undefined (null in results).  Sums run in float64.
* `percentile(x, p)` is the nearest-rank percentile: the smallest value with at least p % of
  the values at or below it (`p` in 0..100; 0 gives the minimum).  Exact, so the optional
  error bound argument is accepted and has nothing to do.
* `first(x)` / `last(x)`: the value of `x` at the earliest / latest event (by timestamp, then
  arrival) where `x` is defined.
* `any(b)`: some row has `b` exactly true; `all(b)`: every row does.
* `distinct(x)` (rowset) and `count(distinct(x))`: the distinct values of `x` under `=`
  (`distinct(x) ci` folds case and shows each value's least spelling), undefined and null
  left out.
* `top(x, n)` / `bottom(x, n)` (rowsets): the n largest / smallest values of `x` (numbers
  before strings in the order; other kinds are left out), largest / smallest first.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from seqfast import _native
from seqfast.query.values import (
    K_NULL,
    K_NUMBER,
    K_STRING,
    K_UNDEFINED,
    UNDEFINED,
    QueryError,
    Values,
    fold_deep,
    to_decimal,
)

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_I64_MAX: Final = np.iinfo(np.int64).max
_I64_MIN: Final = np.iinfo(np.int64).min


def hashable(value: Any, ci: bool = False) -> Any:
    """A hashable key, equal for values that Seq's `=` calls equal (`ci`: ignoring case).
    Types never mix (True is not 1), numbers compare by value (1.0 is 1).  A string is its
    own key (the common case, and no other key is a str)."""
    if type(value) is str:
        return fold_deep(value) if ci else value
    if value is UNDEFINED:
        return ("u",)
    if value is None:
        return ("z",)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, Decimal | int | float):
        return ("n", Decimal(value) if not isinstance(value, Decimal) else value)
    if isinstance(value, list):
        return ("a", tuple(hashable(v, ci) for v in value))
    if isinstance(value, dict):
        return ("o", frozenset((k, hashable(v, ci)) for k, v in value.items()))
    return ("t", value)  # internal keys (time slices)


def _grow(array: np.ndarray, size: int, fill: Any) -> np.ndarray:
    if array.shape[0] >= size:
        return array
    grown = np.full(size, fill, dtype=array.dtype)
    grown[: array.shape[0]] = array
    return grown


def _json(value: Any) -> Any:
    if value is UNDEFINED or value is None:
        return None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


def _shown(values: Float64Array, present: BoolArray) -> BoolArray:
    """Where a number comes out as a number (not null): present, finite, not too large."""
    with np.errstate(invalid="ignore"):
        return present & np.isfinite(values) & (np.abs(values) < 1e29)


def _json_numbers(values: Float64Array, present: BoolArray) -> list[Any]:
    """JSON-ready numbers: integral ones as int, None where absent, non-finite or too large
    (what `_json(_number(v))` gives, without a Decimal per value)."""
    ok = _shown(values, present)
    out: list[Any] = values.tolist()
    integral = ok & (values == np.trunc(values))
    for i in np.flatnonzero(~ok).tolist():
        out[i] = None
    for i in np.flatnonzero(integral).tolist():
        out[i] = int(out[i])
    return out


def _number(value: float) -> Any:
    if not math.isfinite(value) or abs(value) >= 1e29:
        return UNDEFINED
    return to_decimal(value)


class Aggregate:
    """The interface every partial state implements."""

    size = 0
    # Whether `update` looks at the rows' ts and seq (others are given empty arrays).
    uses_time = False

    def grow(self, size: int) -> None:
        raise NotImplementedError

    def update(
        self, gids: Int64Array, values: Values | None, ts: Int64Array, seq: Int64Array
    ) -> None:
        raise NotImplementedError

    def merge(self, other: Any, mapping: Int64Array) -> None:
        raise NotImplementedError

    def result(self, g: int) -> Any:
        raise NotImplementedError

    def results_json(self, gs: Int64Array) -> list[Any]:
        """JSON-ready results of the groups `gs` (what `to_json(result(g))` gives)."""
        return [_json(self.result(g)) for g in gs.tolist()]

    def results_numbers(self, gs: Int64Array) -> tuple[Float64Array, BoolArray] | None:
        """For aggregates whose results are numbers: the results of the groups `gs` as floats
        and where they are shown as numbers (elsewhere null), for ordering groups without
        building their values.  None for other aggregates."""
        return None

    def fresh(self) -> Aggregate:
        """An empty state of the same aggregate (same parameters)."""
        raise NotImplementedError


class Count(Aggregate):
    def __init__(self, star: bool) -> None:
        self.star = star
        self.counts: Int64Array = np.zeros(0, dtype=np.int64)

    def fresh(self) -> Count:
        return Count(self.star)

    def grow(self, size: int) -> None:
        self.counts = _grow(self.counts, size, 0)
        self.size = max(self.size, size)

    def update(
        self, gids: Int64Array, values: Values | None, ts: Int64Array, seq: Int64Array
    ) -> None:
        if not self.star:
            assert values is not None
            gids = gids[(values.kind != K_UNDEFINED) & (values.kind != K_NULL)]
        self.counts[: self.size] += np.bincount(gids, minlength=self.size)[: self.size]

    def merge(self, other: Count, mapping: Int64Array) -> None:
        np.add.at(self.counts, mapping, other.counts[: mapping.size])

    def result(self, g: int) -> Any:
        return Decimal(int(self.counts[g]))

    def results_json(self, gs: Int64Array) -> list[Any]:
        return list(self.counts[gs].tolist())

    def results_numbers(self, gs: Int64Array) -> tuple[Float64Array, BoolArray]:
        return self.counts[gs].astype(np.float64), np.ones(gs.size, dtype=np.bool_)


def _numbers(gids: Int64Array, values: Values | None) -> tuple[Int64Array, Float64Array]:
    """The groups and values of the rows whose value is a number."""
    assert values is not None
    rows, numbers = values.number_rows()
    return (gids, numbers) if rows is None else (gids[rows], numbers)


class Sum(Aggregate):
    """`sum(x)` and `mean(x)`: a float64 total and a count of numbers per group."""

    def __init__(self, mean: bool) -> None:
        self.mean = mean
        self.totals: Float64Array = np.zeros(0, dtype=np.float64)
        self.counts: Int64Array = np.zeros(0, dtype=np.int64)

    def fresh(self) -> Sum:
        return Sum(self.mean)

    def grow(self, size: int) -> None:
        self.totals = _grow(self.totals, size, 0.0)
        self.counts = _grow(self.counts, size, 0)
        self.size = max(self.size, size)

    def update(
        self, gids: Int64Array, values: Values | None, ts: Int64Array, seq: Int64Array
    ) -> None:
        g, x = _numbers(gids, values)
        self.totals[: self.size] += np.bincount(g, weights=x, minlength=self.size)[: self.size]
        self.counts[: self.size] += np.bincount(g, minlength=self.size)[: self.size]

    def merge(self, other: Sum, mapping: Int64Array) -> None:
        np.add.at(self.totals, mapping, other.totals[: mapping.size])
        np.add.at(self.counts, mapping, other.counts[: mapping.size])

    def result(self, g: int) -> Any:
        count = int(self.counts[g])
        if count == 0:
            return UNDEFINED
        total = float(self.totals[g])
        return _number(total / count if self.mean else total)

    def results_numbers(self, gs: Int64Array) -> tuple[Float64Array, BoolArray]:
        counts = self.counts[gs]
        totals = self.totals[gs]
        if self.mean:
            with np.errstate(invalid="ignore", divide="ignore"):
                totals = totals / counts
        return totals, _shown(totals, counts > 0)

    def results_json(self, gs: Int64Array) -> list[Any]:
        return _json_numbers(*self.results_numbers(gs))


class Extreme(Aggregate):
    """`min(x)` and `max(x)` over numbers."""

    def __init__(self, maximum: bool) -> None:
        self.maximum = maximum
        self.fill = -np.inf if maximum else np.inf
        self.best: Float64Array = np.zeros(0, dtype=np.float64)
        self.counts: Int64Array = np.zeros(0, dtype=np.int64)

    def fresh(self) -> Extreme:
        return Extreme(self.maximum)

    def grow(self, size: int) -> None:
        self.best = _grow(self.best, size, self.fill)
        self.counts = _grow(self.counts, size, 0)
        self.size = max(self.size, size)

    def _fold(self, g: Int64Array, x: Float64Array) -> None:
        (np.maximum if self.maximum else np.minimum).at(self.best, g, x)

    def update(
        self, gids: Int64Array, values: Values | None, ts: Int64Array, seq: Int64Array
    ) -> None:
        g, x = _numbers(gids, values)
        self._fold(g, x)
        self.counts[: self.size] += np.bincount(g, minlength=self.size)[: self.size]

    def merge(self, other: Extreme, mapping: Int64Array) -> None:
        self._fold(mapping, other.best[: mapping.size])
        np.add.at(self.counts, mapping, other.counts[: mapping.size])

    def result(self, g: int) -> Any:
        return _number(float(self.best[g])) if self.counts[g] else UNDEFINED

    def results_json(self, gs: Int64Array) -> list[Any]:
        return _json_numbers(self.best[gs], self.counts[gs] > 0)

    def results_numbers(self, gs: Int64Array) -> tuple[Float64Array, BoolArray]:
        best = self.best[gs]
        return best, _shown(best, self.counts[gs] > 0)


class Percentile(Aggregate):
    """`percentile(x, p)`: keeps every number (exact nearest-rank)."""

    def __init__(self, p: float) -> None:
        if not 0 <= p <= 100:
            raise QueryError(f"a percentile must be between 0 and 100, not {p}")
        self.p = p
        self.gid_chunks: list[Int64Array] = []
        self.value_chunks: list[Float64Array] = []
        self._picked: tuple[Float64Array, Int64Array] | None = None

    def fresh(self) -> Percentile:
        return Percentile(self.p)

    def grow(self, size: int) -> None:
        self.size = max(self.size, size)

    def update(
        self, gids: Int64Array, values: Values | None, ts: Int64Array, seq: Int64Array
    ) -> None:
        g, x = _numbers(gids, values)
        if g.size:
            self.gid_chunks.append(g)
            self.value_chunks.append(x)
            self._picked = None

    def merge(self, other: Percentile, mapping: Int64Array) -> None:
        for g, x in zip(other.gid_chunks, other.value_chunks, strict=True):
            self.gid_chunks.append(mapping[g])
            self.value_chunks.append(x)
        self._picked = None

    def _rows(self) -> tuple[Int64Array, Float64Array]:
        if not self.gid_chunks:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        if len(self.gid_chunks) > 1:
            # Kept as one chunk: later calls (and merges of this state) need no concatenation.
            self.gid_chunks = [np.concatenate(self.gid_chunks)]
            self.value_chunks = [np.concatenate(self.value_chunks)]
        return self.gid_chunks[0], self.value_chunks[0]

    def _prepare(self) -> tuple[Float64Array, Int64Array]:
        """Every group's percentile (0 where it has no number) and count of numbers."""
        if self._picked is None:
            g, x = self._rows()
            # Bucketed by group, then each bucket ordered only as far as its rank (native):
            # linear in the numbers, where a sort of all of them is not.
            self._picked = _native.group_percentiles(g, x, self.size, float(self.p))
        return self._picked

    def _picks(self, gs: Int64Array) -> tuple[Float64Array, BoolArray]:
        values, counts = self._prepare()
        return values[gs], counts[gs] > 0

    def result(self, g: int) -> Any:
        values, present = self._picks(np.array([g], dtype=np.int64))
        return _number(float(values[0])) if present[0] else UNDEFINED

    def results_json(self, gs: Int64Array) -> list[Any]:
        return _json_numbers(*self._picks(gs))

    def results_numbers(self, gs: Int64Array) -> tuple[Float64Array, BoolArray]:
        values, present = self._picks(gs)
        return values, _shown(values, present)


class Extremal(Aggregate):
    """`first(x)` / `last(x)`: the value at the earliest / latest (ts, seq) where defined."""

    uses_time = True

    def __init__(self, last: bool) -> None:
        self.last = last
        fill = _I64_MIN if last else _I64_MAX
        self.fill = fill
        self.ts: Int64Array = np.zeros(0, dtype=np.int64)
        self.seq: Int64Array = np.zeros(0, dtype=np.int64)
        self.values: list[Any] = []

    def fresh(self) -> Extremal:
        return Extremal(self.last)

    def grow(self, size: int) -> None:
        self.ts = _grow(self.ts, size, self.fill)
        self.seq = _grow(self.seq, size, self.fill)
        self.values.extend([UNDEFINED] * (size - len(self.values)))
        self.size = max(self.size, size)

    def _better(self, g: int, ts: int, seq: int) -> bool:
        mine = (int(self.ts[g]), int(self.seq[g]))
        return (ts, seq) > mine if self.last else (ts, seq) < mine

    def update(
        self, gids: Int64Array, values: Values | None, ts: Int64Array, seq: Int64Array
    ) -> None:
        assert values is not None
        rows = np.flatnonzero(values.kind != K_UNDEFINED)
        if not rows.size:
            return
        g = gids[rows]
        order = np.lexsort((seq[rows], ts[rows], g))
        g_sorted = g[order]
        # The first (earliest) or last (latest) row of each group in the sorted run.
        if self.last:
            edge = np.flatnonzero(np.r_[g_sorted[1:] != g_sorted[:-1], True])
        else:
            edge = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
        chosen = rows[order[edge]]
        candidates_g = g_sorted[edge]
        c_ts, c_seq = ts[chosen], seq[chosen]
        mine_ts, mine_seq = self.ts[candidates_g], self.seq[candidates_g]
        if self.last:
            wins = (c_ts > mine_ts) | ((c_ts == mine_ts) & (c_seq > mine_seq))
        else:
            wins = (c_ts < mine_ts) | ((c_ts == mine_ts) & (c_seq < mine_seq))
        if not wins.any():
            return
        winners = np.flatnonzero(wins)
        picked = values.to_python(chosen[winners])
        for j, value in zip(winners.tolist(), picked, strict=True):
            group = int(candidates_g[j])
            self.ts[group] = c_ts[j]
            self.seq[group] = c_seq[j]
            self.values[group] = value

    def merge(self, other: Extremal, mapping: Int64Array) -> None:
        for g_other, g in enumerate(mapping.tolist()):
            if other.values[g_other] is UNDEFINED and other.ts[g_other] == other.fill:
                continue
            t, s = int(other.ts[g_other]), int(other.seq[g_other])
            if self._better(g, t, s):
                self.ts[g], self.seq[g] = t, s
                self.values[g] = other.values[g_other]

    def result(self, g: int) -> Any:
        return self.values[g]


class Truth(Aggregate):
    """`any(b)` / `all(b)` over whether `b` is exactly true."""

    def __init__(self, every: bool) -> None:
        self.every = every
        self.flags: BoolArray = np.zeros(0, dtype=np.bool_)

    def fresh(self) -> Truth:
        return Truth(self.every)

    def grow(self, size: int) -> None:
        self.flags = _grow(self.flags, size, self.every)
        self.size = max(self.size, size)

    def update(
        self, gids: Int64Array, values: Values | None, ts: Int64Array, seq: Int64Array
    ) -> None:
        assert values is not None
        true = values.true_mask()
        if self.every:
            self.flags[np.unique(gids[~true])] = False
        else:
            self.flags[np.unique(gids[true])] = True

    def merge(self, other: Truth, mapping: Int64Array) -> None:
        flags = other.flags[: mapping.size]
        if self.every:
            self.flags[mapping[~flags]] = False
        else:
            self.flags[mapping[flags]] = True

    def result(self, g: int) -> Any:
        return bool(self.flags[g])


class Distinct(Aggregate):
    """`distinct(x)` and `count(distinct(x))`: the set of distinct values per group."""

    def __init__(self, ci: bool, counting: bool) -> None:
        self.ci = ci
        self.counting = counting
        self.sets: list[dict[Any, Any]] = []

    def fresh(self) -> Distinct:
        return Distinct(self.ci, self.counting)

    def grow(self, size: int) -> None:
        self.sets.extend({} for _ in range(size - len(self.sets)))
        self.size = max(self.size, size)

    def update(
        self, gids: Int64Array, values: Values | None, ts: Int64Array, seq: Int64Array
    ) -> None:
        assert values is not None
        rows = np.flatnonzero((values.kind != K_UNDEFINED) & (values.kind != K_NULL))
        if not rows.size:
            return
        sub = values.take(rows)
        # Exact values first: `_add` then meets every spelling of a `ci` value.
        codes, keys = sub.group_codes()
        pairs = gids[rows] * (len(keys) + 1) + codes
        _, first = np.unique(pairs, return_index=True)
        for row in first.tolist():
            value = keys[int(codes[row])]
            self._add(self.sets[int(gids[rows[row]])], value)

    def merge(self, other: Distinct, mapping: Int64Array) -> None:
        for g_other, g in enumerate(mapping.tolist()):
            mine = self.sets[g]
            for value in other.sets[g_other].values():
                self._add(mine, value)

    def _add(self, values: dict[Any, Any], value: Any) -> None:
        # With `ci`, spellings of one value meet: the least is kept, whatever the order.
        key = hashable(value, self.ci)
        known = values.get(key, UNDEFINED)
        if known is UNDEFINED or (self.ci and order_key(value) < order_key(known)):
            values[key] = value

    def result(self, g: int) -> Any:
        if self.counting:
            return Decimal(len(self.sets[g]))
        return _sorted_values(list(self.sets[g].values()))

    def rows(self, g: int) -> list[Any]:
        return _sorted_values(list(self.sets[g].values()))


def order_key(value: Any) -> tuple[Any, ...]:
    """A total order over reference-shaped values: undefined, null, false, true, numbers,
    strings, then arrays and objects (by their text)."""
    if type(value) is str:
        return (4, value)
    if value is UNDEFINED:
        return (0,)
    if value is None:
        return (1,)
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, Decimal | int | float):
        return (3, Decimal(value))
    if isinstance(value, str):
        return (4, value)
    return (5, repr(value))


def _sorted_values(values: list[Any]) -> list[Any]:
    return sorted(values, key=order_key)


class Ranked(Aggregate):
    """`top(x, n)` / `bottom(x, n)`: the n largest / smallest numbers or strings."""

    def __init__(self, n: int, top: bool) -> None:
        if n < 1:
            raise QueryError(f"top and bottom need a positive count, not {n}")
        self.n = n
        self.top = top
        self.kept: list[list[Any]] = []

    def fresh(self) -> Ranked:
        return Ranked(self.n, self.top)

    def grow(self, size: int) -> None:
        self.kept.extend([] for _ in range(size - len(self.kept)))
        self.size = max(self.size, size)

    def _keep(self, g: int, candidates: list[Any]) -> None:
        merged = sorted(self.kept[g] + candidates, key=order_key, reverse=self.top)
        self.kept[g] = merged[: self.n]

    def update(
        self, gids: Int64Array, values: Values | None, ts: Int64Array, seq: Int64Array
    ) -> None:
        assert values is not None
        rows = np.flatnonzero((values.kind == K_NUMBER) | (values.kind == K_STRING))
        if not rows.size:
            return
        by_group: dict[int, list[Any]] = {}
        for g, value in zip(gids[rows].tolist(), values.to_python(rows), strict=True):
            by_group.setdefault(g, []).append(value)
        for g, candidates in by_group.items():
            self._keep(g, candidates)

    def merge(self, other: Ranked, mapping: Int64Array) -> None:
        for g_other, g in enumerate(mapping.tolist()):
            if other.kept[g_other]:
                self._keep(g, other.kept[g_other])

    def result(self, g: int) -> Any:
        return list(self.kept[g])

    def rows(self, g: int) -> list[Any]:
        return list(self.kept[g])
