"""A model-based test of removals: random interleavings of ingestion, deletions (by time range
and by filter), retention passes (by age and by size), flushes, merges and reopenings, checked
after every step against a plain dictionary of the events that should be there."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import seqfast
from seqfast.storage.ids import format_ticks
from seqfast.storage.merge_policy import MergePolicy
from seqfast.storage.retention import RetentionRule
from seqfast.storage.store import Store

SECOND = 10_000_000
BASE = 1_700_000_000 * SECOND
OPTIONS = {
    "flush_rows": 12,
    "block_rows": 4,
    "merge_policy": MergePolicy(fan_in=2, base_rows=8, max_rows=64),
}


class Removals(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="seqfast-retention-model-"))
        self.store: Store = seqfast.open(self.root / "data", **OPTIONS)
        self.model: dict[int, int] = {}  # event number -> its second
        self.next_number = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.root)

    @rule(seconds=st.lists(st.integers(0, 99), min_size=1, max_size=10))
    def ingest(self, seconds: list[int]) -> None:
        events = []
        for second in seconds:
            events.append(
                {"@t": format_ticks(BASE + second * SECOND), "@mt": "E {N}", "N": self.next_number}
            )
            self.model[self.next_number] = second
            self.next_number += 1
        self.store.ingest(events)

    @rule(low=st.integers(0, 100), width=st.integers(0, 60))
    def delete_range(self, low: int, width: int) -> None:
        removed = self.store.delete_events(
            None, format_ticks(BASE + low * SECOND), format_ticks(BASE + (low + width) * SECOND)
        )
        doomed = [n for n, s in self.model.items() if low <= s < low + width]
        assert removed == len(doomed)
        for n in doomed:
            del self.model[n]

    @rule(modulus=st.integers(2, 4), rest=st.integers(0, 3))
    def delete_by_filter(self, modulus: int, rest: int) -> None:
        removed = self.store.delete_events(f"N % {modulus} = {rest}")
        doomed = [n for n in self.model if n % modulus == rest]
        assert removed == len(doomed)
        for n in doomed:
            del self.model[n]

    @rule(age=st.integers(0, 100), now=st.integers(50, 150), odd_only=st.booleans())
    def retention_by_age(self, age: int, now: int, odd_only: bool) -> None:
        rule_ = RetentionRule(
            max_age_ticks=age * SECOND, filters=("N % 2 = 1",) if odd_only else ()
        )
        report = self.store.apply_retention([rule_], now=BASE + now * SECOND)
        doomed = [
            n for n, s in self.model.items() if s < now - age and (not odd_only or n % 2 == 1)
        ]
        assert report.events_removed == len(doomed)
        for n in doomed:
            del self.model[n]

    @rule(fraction=st.floats(0.0, 1.0))
    def retention_by_size(self, fraction: float) -> None:
        self.store.wait_idle()  # no background flush may move head events into segments below
        limit = int(self.store.stats()["bytes_on_disk"] * fraction)
        report = self.store.apply_retention([RetentionRule(max_total_bytes=limit)], now=BASE)
        after = self.store.stats()
        # Under the limit, unless only what retention cannot drop is left (the head, the log,
        # an empty segment).
        assert after["bytes_on_disk"] <= limit or after["events"] == after["head_events"]
        left = {int(e["N"]) for e in self.store.events(limit=100_000)}
        assert left <= set(self.model)
        assert report.events_removed == len(self.model) - len(left)
        self.model = {n: s for n, s in self.model.items() if n in left}

    @rule()
    def flush(self) -> None:
        self.store.flush()

    @rule()
    def settle(self) -> None:
        self.store.wait_idle()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = seqfast.open(self.root / "data", **OPTIONS)

    @invariant()
    def the_store_holds_the_model(self) -> None:
        stored = [int(e["N"]) for e in self.store.events(limit=100_000)]
        assert len(stored) == len(set(stored)), "an event is present twice"
        assert set(stored) == set(self.model)


Removals.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
test_removals_match_the_model = Removals.TestCase
