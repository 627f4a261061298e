"""Which events retention removes: a pure function of the segments' metadata and the policies.

A policy removes events by age (`max_age_ticks`, optionally only those matching every one of
`filters`: a signal's filters) and/or keeps the total size of the store under
`max_total_bytes` by dropping the oldest segments whole.  `plan` turns the policies into work
without reading any segment:

* a segment whose every row is past an unfiltered age limit is **dropped** whole;
* a segment with some rows that some policy may remove gets **cuts**: row-level criteria
  (`Cut`: a timestamp range and filters) that the store evaluates block by block, dropping the
  segment if every row goes and rewriting it otherwise;
* then, while the segments left (plus `fixed_bytes`, what retention cannot remove: the commit
  log) exceed the smallest `max_total_bytes`, the oldest segment left (by its newest event) is
  dropped.

`Cut` is shared with deletion (`Store.delete_events`), which removes one range and filter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

TICKS_PER_SECOND = 10_000_000


@dataclass(frozen=True)
class SegmentInfo:
    """What the policy knows about a segment: `key` identifies it to the caller."""

    key: int
    rows: int
    min_ts: int  # ticks since 1970; both 0 when rows == 0
    max_ts: int
    size_bytes: int


@dataclass(frozen=True)
class RetentionRule:
    """One policy, in storage terms (signals already resolved to their filter texts).

    `max_age_ticks`: events older than this (relative to `now`) are removed, only those
    matching every text of `filters` when there are any.  `max_total_bytes`: the oldest
    segments are dropped until the store is no larger.  Either may be None (not both).
    """

    max_age_ticks: int | None = None
    filters: tuple[str, ...] = ()
    max_total_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.max_age_ticks is None and self.max_total_bytes is None:
            raise ValueError("a retention rule needs a maximum age or a maximum size")
        if self.max_age_ticks is not None and self.max_age_ticks < 0:
            raise ValueError("a retention rule's maximum age must not be negative")
        if self.max_total_bytes is not None and self.max_total_bytes < 0:
            raise ValueError("a retention rule's maximum size must not be negative")
        if self.filters and self.max_age_ticks is None:
            raise ValueError("filters apply to age-based removal only")


@dataclass(frozen=True)
class Cut:
    """Rows with `lo_ts <= ts < hi_ts` (None: unbounded) matching every filter are removed."""

    lo_ts: int | None = None
    hi_ts: int | None = None
    filters: tuple[str, ...] = ()

    def might_remove(self, min_ts: int, max_ts: int) -> bool:
        """Whether rows with timestamps in [min_ts, max_ts] may be removed."""
        if self.lo_ts is not None and max_ts < self.lo_ts:
            return False
        return not (self.hi_ts is not None and min_ts >= self.hi_ts)

    def removes_all(self, min_ts: int, max_ts: int) -> bool:
        """Whether every row with a timestamp in [min_ts, max_ts] is removed, unread."""
        if self.filters:
            return False
        if self.lo_ts is not None and min_ts < self.lo_ts:
            return False
        return not (self.hi_ts is not None and max_ts >= self.hi_ts)

    def in_range(self, ts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        mask = np.ones(len(ts), dtype=bool)
        if self.lo_ts is not None:
            mask &= ts >= self.lo_ts
        if self.hi_ts is not None:
            mask &= ts < self.hi_ts
        return mask


@dataclass(frozen=True)
class RetentionPlan:
    drop: tuple[int, ...] = ()  # keys of segments to drop whole
    cuts: dict[int, tuple[Cut, ...]] = field(default_factory=dict)  # key -> row criteria
    dropped_for_size: tuple[int, ...] = ()  # the part of `drop` chosen by the size limit


@dataclass(frozen=True)
class RetentionReport:
    """What one retention pass (or one deletion) did."""

    segments_dropped: int = 0
    segments_rewritten: int = 0
    events_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "SegmentsDropped": self.segments_dropped,
            "SegmentsRewritten": self.segments_rewritten,
            "EventsRemoved": self.events_removed,
            "BytesBefore": self.bytes_before,
            "BytesAfter": self.bytes_after,
        }


def age_cuts(rules: Sequence[RetentionRule], now: int) -> tuple[Cut, ...]:
    """The row criteria of the age limits of `rules` at `now` (ticks since 1970)."""
    return tuple(
        Cut(None, now - rule.max_age_ticks, rule.filters)
        for rule in rules
        if rule.max_age_ticks is not None
    )


def plan_cuts(segments: Sequence[SegmentInfo], cuts: Sequence[Cut]) -> RetentionPlan:
    """The segments `cuts` drop whole (known from their time range alone) and those to
    examine row by row, with the cuts that may remove some of their rows."""
    drop: list[int] = []
    examine: dict[int, tuple[Cut, ...]] = {}
    for seg in segments:
        if seg.rows == 0:
            continue
        if any(c.removes_all(seg.min_ts, seg.max_ts) for c in cuts):
            drop.append(seg.key)
            continue
        relevant = tuple(c for c in cuts if c.might_remove(seg.min_ts, seg.max_ts))
        if relevant:
            examine[seg.key] = relevant
    return RetentionPlan(tuple(drop), examine)


def plan(
    segments: Sequence[SegmentInfo],
    rules: Sequence[RetentionRule],
    now: int,
    *,
    fixed_bytes: int = 0,
) -> RetentionPlan:
    """What to drop and what to examine row by row (see the module docstring)."""
    by_age = plan_cuts(segments, age_cuts(rules, now))
    limits = [r.max_total_bytes for r in rules if r.max_total_bytes is not None]
    if not limits:
        return by_age
    limit = min(limits)
    examine = dict(by_age.cuts)
    dropped = set(by_age.drop)
    left = [s for s in segments if s.key not in dropped]
    total = fixed_bytes + sum(s.size_bytes for s in left)
    by_size: list[int] = []
    # Oldest first: by newest event, so a segment still holding recent events goes last.
    for seg in sorted(left, key=lambda s: (s.max_ts, s.key)):
        if total <= limit:
            break
        if seg.rows == 0:
            continue  # an empty segment keeps the store's place in the log (rewrite.py)
        by_size.append(seg.key)
        examine.pop(seg.key, None)
        total -= seg.size_bytes
    return RetentionPlan((*by_age.drop, *by_size), examine, tuple(by_size))


def removal_mask(
    ts: npt.NDArray[np.int64],
    cuts: Sequence[Cut],
    matches: Callable[[tuple[str, ...]], npt.NDArray[np.bool_]],
) -> npt.NDArray[np.bool_]:
    """Which rows (timestamps `ts`) some cut removes; `matches(filters)` says which rows match
    every filter (called only for cuts that have filters and rows in range)."""
    removed = np.zeros(len(ts), dtype=bool)
    for cut in cuts:
        in_range = cut.in_range(ts) & ~removed
        if cut.filters and in_range.any():
            in_range &= matches(cut.filters)
        removed |= in_range
    return removed
