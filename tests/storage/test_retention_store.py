"""Deleting events and applying retention on a real store: what stays, what goes, and that
nothing comes back after a restart (the head and the commit log included)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import seqfast
from seqfast.storage.ids import format_ticks
from seqfast.storage.merge_policy import MergePolicy
from seqfast.storage.retention import RetentionRule
from seqfast.storage.store import Store

SECOND = 10_000_000
BASE = 1_700_000_000 * SECOND  # 2023-11-14T22:13:20Z, in ticks since 1970


def stamp(second: int) -> str:
    return format_ticks(BASE + second * SECOND)


def events(seconds: range, **extra: object) -> list[dict[str, object]]:
    return [
        {"@t": stamp(s), "@mt": "Event {N}", "N": s, "Kind": "even" if s % 2 == 0 else "odd"}
        | extra
        for s in seconds
    ]


def numbers(store: Store) -> list[int]:
    return sorted(int(e["N"]) for e in store.events(limit=1_000_000))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = seqfast.open(tmp_path / "data", flush_rows=100, block_rows=32)
    yield opened
    opened.close()


def fill(store: Store, seconds: range, per_batch: int = 50) -> None:
    """Ingests one event per second of `seconds`, in batches, and waits for the flushes."""
    for start in range(seconds.start, seconds.stop, per_batch):
        store.ingest(events(range(start, min(start + per_batch, seconds.stop))))
        store.wait_idle()  # so that segments hold exactly flush_rows events


def test_deleting_a_time_range_removes_exactly_it_from_segments_and_head(
    store: Store, tmp_path: Path
) -> None:
    fill(store, range(0, 450))  # four segments of 100 and 50 events in the head
    assert store.stats()["head_events"] == 50
    removed = store.delete_events(None, stamp(150), stamp(420))
    assert removed == 270
    expected = [n for n in range(450) if not 150 <= n < 420]
    assert numbers(store) == expected
    store.close()
    with seqfast.open(tmp_path / "data") as again:
        assert numbers(again) == expected


def test_a_deletion_of_head_events_survives_a_restart_without_close(tmp_path: Path) -> None:
    # The process ends without closing the store: recovery replays the commit log, which
    # must not bring the deleted events back.
    import subprocess
    import sys

    data = tmp_path / "data"
    script = f"""
import os, seqfast, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_retention_store import events, stamp
store = seqfast.open({str(data)!r}, flush_rows=1000)
store.ingest(events(range(0, 40)))
print(store.delete_events(None, stamp(10), stamp(30)))
store.ingest(events(range(40, 50)))
sys.stdout.flush()
os._exit(0)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "20"
    with seqfast.open(data) as store:
        assert numbers(store) == [*range(0, 10), *range(30, 50)]


def test_dropping_the_newest_segment_keeps_its_place_in_the_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with seqfast.open(data, flush_rows=1000) as store:
        store.ingest(events(range(0, 30)))
        assert store.delete_events() == 30
        assert numbers(store) == []
        store.ingest(events(range(30, 35)))
    with seqfast.open(data) as store:
        assert numbers(store) == list(range(30, 35))
        store.ingest(events(range(35, 40)))
        ids = {e["@id"] for e in store.events(limit=100)}
        assert len(ids) == 10
    with seqfast.open(data) as store:
        assert numbers(store) == list(range(30, 40))


def test_retention_by_age_drops_whole_segments_and_rewrites_the_one_across_the_cut(
    store: Store,
) -> None:
    fill(store, range(0, 400))
    before = store.stats()["segments"]
    report = store.apply_retention(
        [RetentionRule(max_age_ticks=100 * SECOND)], now=stamp_ticks(350)
    )
    assert numbers(store) == list(range(250, 400))
    assert report.events_removed == 250
    assert report.segments_dropped == 2  # seconds 0-99 and 100-199
    assert report.segments_rewritten == 1  # 200-299 loses 200-249
    assert report.bytes_after < report.bytes_before
    assert store.stats()["segments"] == before - 2
    # A second pass at the same time finds nothing more to do.
    again = store.apply_retention([RetentionRule(max_age_ticks=100 * SECOND)], now=stamp_ticks(350))
    assert (again.events_removed, again.segments_dropped, again.segments_rewritten) == (0, 0, 0)


def stamp_ticks(second: int) -> int:
    return BASE + second * SECOND


def test_retention_by_size_drops_the_oldest_segments_until_the_store_fits(store: Store) -> None:
    fill(store, range(0, 500))
    store.flush()
    sizes = store.stats()
    limit = sizes["bytes_on_disk"] // 2
    report = store.apply_retention([RetentionRule(max_total_bytes=limit)], now=stamp_ticks(0))
    after = store.stats()
    assert after["bytes_on_disk"] <= limit
    assert report.bytes_after == after["bytes_on_disk"]
    left = numbers(store)
    # The oldest events went; what is left is a contiguous run of the newest.
    assert left == list(range(500 - len(left), 500))
    assert 0 < len(left) < 500


def test_retention_with_a_filter_removes_only_old_matching_events(store: Store) -> None:
    fill(store, range(0, 300))
    rule = RetentionRule(max_age_ticks=100 * SECOND, filters=("Kind = 'even'",))
    report = store.apply_retention([rule], now=stamp_ticks(300))
    expected = [n for n in range(300) if n >= 200 or n % 2 == 1]
    assert numbers(store) == expected
    assert report.events_removed == 100


def test_deleting_with_a_filter_and_extra_filters(store: Store) -> None:
    fill(store, range(0, 250))
    removed = store.delete_events("N >= 100", extra_filters=["Kind = 'odd'", "N < 200"])
    assert removed == 50
    assert numbers(store) == [n for n in range(250) if not (100 <= n < 200 and n % 2 == 1)]


def test_a_filter_that_does_not_parse_removes_nothing(store: Store) -> None:
    fill(store, range(0, 120))
    with pytest.raises(ValueError):
        store.delete_events("N >= ")
    with pytest.raises(ValueError):
        store.delete_events(None, "not a time")
    assert numbers(store) == list(range(120))


def test_deleting_while_ingesting_and_merging_loses_nothing_else(tmp_path: Path) -> None:
    policy = MergePolicy(fan_in=3, base_rows=40, max_rows=2000)
    with seqfast.open(tmp_path / "data", flush_rows=60, block_rows=16, merge_policy=policy) as s:
        fill(s, range(0, 300), per_batch=20)
        done = threading.Event()

        def ingest_more() -> None:
            for start in range(1000, 1600, 20):
                s.ingest(events(range(start, start + 20)))
            done.set()

        writer = threading.Thread(target=ingest_more)
        writer.start()
        removed = 0
        for low in range(0, 300, 50):
            removed += s.delete_events(None, stamp(low), stamp(low + 25))
        writer.join()
        s.wait_idle()
        assert removed == 150
        expected = [n for n in range(300) if n % 50 >= 25] + list(range(1000, 1600))
        assert numbers(s) == expected
    with seqfast.open(tmp_path / "data") as again:
        assert numbers(again) == expected
