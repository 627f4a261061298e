"""Which segments to merge next: a pure function of the segments' sizes.

Segments are named by the contiguous commit-log range they hold, so only neighbours may merge
(the result must hold a contiguous range too).  The policy is size-tiered: a segment's tier is
how many times `fan_in` its row count is above `base_rows`; the first run of `fan_in`
neighbours in the same tier, whose total stays within `max_rows`, is merged.  Each event is
therefore rewritten about log_fan_in(max_rows / base_rows) times over its life.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentSize:
    lo_lsn: int
    hi_lsn: int
    rows: int


@dataclass(frozen=True)
class MergePolicy:
    fan_in: int = 8
    base_rows: int = 32_768
    # Merges stream block by block (seqfast.storage.merge): their memory is one decoded block
    # per input, not their size.  Even so, merging flushed segments (262k rows) eight at a time
    # raised a sustained ingest's peak RSS from about 0.9 to 1.8 GB and costs a rewrite of every
    # event, so for now only segments smaller than a flush are merged (from `close`, or a flush
    # of a quiet head); see bench/RESULTS.md, "HTTP ingestion".
    max_rows: int = 262_144

    def tier(self, rows: int) -> int:
        if rows <= self.base_rows:
            return 0
        return int(math.log(rows / self.base_rows, self.fan_in))

    def choose(self, segments: Sequence[SegmentSize]) -> list[int]:
        """Indexes (into `segments`, sorted by lsn) of the next neighbours to merge, or []."""
        run: list[int] = []
        for i, seg in enumerate(segments):
            if run and self.tier(segments[run[0]].rows) != self.tier(seg.rows):
                run = []
            if seg.rows >= self.max_rows:
                run = []
                continue
            run.append(i)
            if len(run) == self.fan_in:
                if sum(segments[j].rows for j in run) <= self.max_rows:
                    return run
                run.pop(0)
        return []
