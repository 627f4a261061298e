"""The pure retention policy: properties against a row-level oracle, with hypothesis.

Each generated segment holds explicit rows (timestamps, and whether each matches "the
signal").  Applying the plan the way the store does (drop whole; evaluate cuts row by row on
the rest) must leave exactly the rows a brute-force reading of the rules keeps, and the size
limit must drop the oldest segments, no more than needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast.storage.retention import (
    Cut,
    RetentionRule,
    SegmentInfo,
    plan,
    plan_cuts,
    removal_mask,
)

SIGNAL = "Signal"


@dataclass(frozen=True)
class FakeSegment:
    key: int
    ts: tuple[int, ...]  # sorted
    in_signal: tuple[bool, ...]
    size: int

    @property
    def info(self) -> SegmentInfo:
        if not self.ts:
            return SegmentInfo(self.key, 0, 0, 0, self.size)
        return SegmentInfo(self.key, len(self.ts), self.ts[0], self.ts[-1], self.size)


@st.composite
def segments(draw: st.DrawFn) -> list[FakeSegment]:
    count = draw(st.integers(0, 8))
    found = []
    for key in range(count):
        n = draw(st.integers(0, 12))
        ts = sorted(draw(st.lists(st.integers(0, 100), min_size=n, max_size=n)))
        flags = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        found.append(FakeSegment(key * 10 + 1, tuple(ts), tuple(flags), draw(st.integers(1, 50))))
    return found


rules_strategy = st.lists(
    st.one_of(
        st.builds(
            RetentionRule,
            max_age_ticks=st.integers(0, 120),
            filters=st.sampled_from([(), (SIGNAL,)]),
        ),
        st.builds(RetentionRule, max_total_bytes=st.integers(0, 300)),
    ),
    max_size=3,
)


def constant(mask: np.ndarray) -> Callable[[tuple[str, ...]], np.ndarray]:
    """A filter evaluator that says `mask` whatever the filters (there is only one)."""
    return lambda filters: mask.copy()


def apply(segs: list[FakeSegment], rules: list[RetentionRule], now: int) -> dict[int, set[int]]:
    """Which rows (by position) of each segment survive, applying the plan as the store does."""
    chosen = plan([s.info for s in segs], rules, now)
    left: dict[int, set[int]] = {}
    for seg in segs:
        if seg.key in chosen.drop:
            continue
        rows = set(range(len(seg.ts)))
        cuts = chosen.cuts.get(seg.key, ())
        if cuts:
            ts = np.array(seg.ts, dtype=np.int64)
            signal = np.array(seg.in_signal, dtype=bool)
            removed = removal_mask(ts, cuts, constant(signal))
            rows = {i for i in rows if not removed[i]}
        left[seg.key] = rows
    return left


def oracle_age(seg: FakeSegment, rules: list[RetentionRule], now: int) -> set[int]:
    """Rows of `seg` that no age rule removes."""
    kept = set()
    for i, (ts, flag) in enumerate(zip(seg.ts, seg.in_signal, strict=True)):
        gone = any(
            r.max_age_ticks is not None
            and ts < now - r.max_age_ticks
            and (flag or SIGNAL not in r.filters)
            for r in rules
        )
        if not gone:
            kept.add(i)
    return kept


@settings(max_examples=400, deadline=None)
@given(segs=segments(), rules=rules_strategy, now=st.integers(0, 200))
def test_the_plan_keeps_exactly_what_the_rules_keep(
    segs: list[FakeSegment], rules: list[RetentionRule], now: int
) -> None:
    left = apply(segs, rules, now)
    chosen = plan([s.info for s in segs], rules, now)
    size_dropped = set(chosen.dropped_for_size)
    for seg in segs:
        if seg.key in size_dropped:
            continue
        # Not dropped for size: exactly the rows the age rules keep are left.
        expected = oracle_age(seg, rules, now)
        assert left.get(seg.key, set()) == expected, (seg, rules, now)


@settings(max_examples=400, deadline=None)
@given(segs=segments(), rules=rules_strategy, now=st.integers(0, 200), fixed=st.integers(0, 40))
def test_the_size_limit_drops_the_oldest_segments_and_no_more(
    segs: list[FakeSegment], rules: list[RetentionRule], now: int, fixed: int
) -> None:
    chosen = plan([s.info for s in segs], rules, now, fixed_bytes=fixed)
    limits = [r.max_total_bytes for r in rules if r.max_total_bytes is not None]
    if not limits:
        assert chosen.dropped_for_size == ()
        return
    limit = min(limits)
    dropped = set(chosen.drop)
    kept = [s for s in segs if s.key not in dropped]
    total = fixed + sum(s.size for s in kept)
    nonempty_kept = [s for s in kept if s.ts]
    # Under the limit, or nothing droppable is left.
    assert total <= limit or not nonempty_kept
    by_size = [s for s in segs if s.key in set(chosen.dropped_for_size)]
    # Oldest first: every segment kept is newer than every one dropped for size.
    for gone in by_size:
        for stay in nonempty_kept:
            assert (gone.info.max_ts, gone.key) < (stay.info.max_ts, stay.key)
    # No more than needed: without the newest one dropped for size, the store was too big.
    if by_size:
        newest = max(by_size, key=lambda s: (s.info.max_ts, s.key))
        assert total + newest.size > limit
    # A segment dropped whole is never also rewritten.
    assert not dropped & set(chosen.cuts)


@settings(max_examples=300, deadline=None)
@given(
    segs=segments(),
    lo=st.one_of(st.none(), st.integers(0, 100)),
    hi=st.one_of(st.none(), st.integers(0, 110)),
    filtered=st.booleans(),
)
def test_a_deletion_cut_removes_exactly_its_range(
    segs: list[FakeSegment], lo: int | None, hi: int | None, filtered: bool
) -> None:
    cut = Cut(lo, hi, (SIGNAL,) if filtered else ())
    chosen = plan_cuts([s.info for s in segs], [cut])
    for seg in segs:
        expected = {
            i
            for i, (ts, flag) in enumerate(zip(seg.ts, seg.in_signal, strict=True))
            if not ((lo is None or ts >= lo) and (hi is None or ts < hi) and (flag or not filtered))
        }
        if seg.key in chosen.drop:
            assert expected == set(), "a segment was dropped whole that had rows to keep"
            continue
        cuts = chosen.cuts.get(seg.key, ())
        ts = np.array(seg.ts, dtype=np.int64)
        signal = np.array(seg.in_signal, dtype=bool)
        removed = removal_mask(ts, cuts, constant(signal))
        assert {i for i in range(len(seg.ts)) if not removed[i]} == expected


def test_a_segment_past_an_unfiltered_age_is_dropped_unread() -> None:
    segs = [SegmentInfo(1, 10, 0, 50, 100), SegmentInfo(2, 10, 40, 90, 100)]
    chosen = plan(segs, [RetentionRule(max_age_ticks=40)], now=100)
    assert chosen.drop == (1,)
    assert chosen.cuts == {2: (Cut(None, 60, ()),)}


def test_an_empty_segment_is_never_dropped_for_size() -> None:
    # It keeps the store's place in the commit log (seqfast/storage/rewrite.py).
    segs = [SegmentInfo(1, 0, 0, 0, 80), SegmentInfo(2, 5, 10, 20, 100)]
    chosen = plan(segs, [RetentionRule(max_total_bytes=10)], now=100)
    assert chosen.drop == (2,)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"max_age_ticks": -1}, {"max_total_bytes": -1}, {"max_total_bytes": 5, "filters": ("x",)}],
)
def test_a_rule_that_means_nothing_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetentionRule(**kwargs)  # type: ignore[arg-type]
