"""The embedded API as a user relies on it: ingest, read back, page, reopen, lock, stats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import seqfast
from seqfast.errors import CommitRefused, InvalidEvents, StoreLocked


def clef(*events: dict[str, object]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def test_round_trip_through_head_segment_and_reopen(tmp_path: Path) -> None:
    sent = [
        {"@t": "2024-05-01T10:00:00Z", "@mt": "Hello {Name}", "Name": "world"},
        {"@t": "2024-05-01T10:00:01.5+02:00", "@l": "Warning", "N": 1, "F": 2.5, "B": True},
        {"@t": "2024-05-01 10:00:02", "Obj": {"a": [1, None, {"b": "c"}]}, "@@t": "escaped"},
    ]
    expected_t = [
        "2024-05-01T10:00:00.0000000Z",
        "2024-05-01T08:00:01.5000000Z",
        "2024-05-01T10:00:02.0000000Z",
    ]
    with seqfast.open(tmp_path / "data") as store:
        assert store.ingest_clef(clef(*sent)) == 3
        in_head = list(store.events(limit=10))
        store.flush()
        in_segment = list(store.events(limit=10))
    with seqfast.open(tmp_path / "data") as store:
        reopened = list(store.events(limit=10))
    for got in (in_head, in_segment, reopened):
        # newest first
        assert [e["@t"] for e in got] == [expected_t[2], expected_t[0], expected_t[1]]
        by_t = {e["@t"]: e for e in got}
        for event, t in zip(sent, expected_t, strict=True):
            want = {**event, "@t": t, "@l": event.get("@l", "Information")}
            have = dict(by_t[t])
            assert have.pop("@id").startswith("event-")
            assert have == want


def test_paging_with_after_id_visits_every_event_once(tmp_path: Path) -> None:
    with seqfast.open(tmp_path, flush_rows=50) as store:
        for b in range(10):
            store.ingest_clef(
                clef(
                    *(
                        {"@t": f"2024-01-01T00:00:{(b * 7 + i) % 60:02d}Z", "B": b, "I": i}
                        for i in range(20)
                    )
                )
            )
        store.flush()
        store.ingest_clef(clef({"@t": "2024-01-01T00:00:30Z", "B": 99, "I": 0}))
        seen: list[str] = []
        after = None
        while True:
            page = list(store.events(after_id=after, limit=17))
            if not page:
                break
            seen.extend(e["@id"] for e in page)
            after = page[-1]["@id"]
        assert len(seen) == len(set(seen)) == 201
        assert seen == sorted(seen, reverse=True)
        assert all(store.get(i)["@id"] == i for i in seen[::13])


def test_equal_timestamps_keep_batch_order(tmp_path: Path) -> None:
    with seqfast.open(tmp_path) as store:
        store.ingest_clef(clef(*({"@t": "2024-01-01T00:00:00Z", "I": i} for i in range(5))))
        assert [e["I"] for e in store.events()] == [4, 3, 2, 1, 0]
        store.flush()
        assert [e["I"] for e in store.events()] == [4, 3, 2, 1, 0]


def test_time_range_is_start_inclusive_end_exclusive(tmp_path: Path) -> None:
    with seqfast.open(tmp_path) as store:
        store.ingest_clef(clef(*({"@t": f"2024-01-01T00:00:0{i}Z", "I": i} for i in range(6))))
        got = store.events(start="2024-01-01T00:00:02Z", end="2024-01-01T00:00:04Z")
        assert [e["I"] for e in got] == [3, 2]


def test_ingest_dicts_and_get(tmp_path: Path) -> None:
    with seqfast.open(tmp_path) as store:
        assert store.ingest([{"@t": "2024-01-01T00:00:00Z", "Big": 2**80}]) == 1
        (event,) = store.events()
        assert event["Big"] == 2**80
        assert store.get(event["@id"]) == event
        assert store.get("event-" + "0" * 32) is None
        with pytest.raises(ValueError, match="not a seqfast event id"):
            store.get("nope")


def test_a_rejected_batch_stores_nothing(tmp_path: Path) -> None:
    with seqfast.open(tmp_path) as store:
        good = {"@t": "2024-01-01T00:00:00Z", "Ok": 1}
        with pytest.raises(InvalidEvents) as info:
            store.ingest_clef(clef(good, good) + b'{"@t": "2024-01-01T00:00:00Z", "x": }\n')
        assert info.value.line == 3
        assert list(store.events()) == []
        assert store.stats()["events"] == 0
    with seqfast.open(tmp_path) as store:
        assert list(store.events()) == []


def test_a_commit_its_guard_refuses_stores_nothing_and_leaves_no_gap(tmp_path: Path) -> None:
    # A cluster node's guard is "do I still lead?": once it says no, nothing enters the log,
    # and what is committed afterwards continues it without a hole (so the log stays
    # contiguous for recovery and, later, for replicas).
    asked: list[int] = []

    def refuse() -> bool:
        asked.append(1)
        return False

    with seqfast.open(tmp_path) as store:
        store.ingest_clef(clef({"@t": "2024-01-01T00:00:00Z", "N": 1}))
        with pytest.raises(CommitRefused, match="refused"):
            store.ingest_clef(clef({"@t": "2024-01-01T00:00:01Z", "N": 2}), may_commit=refuse)
        assert asked == [1]
        # An invalid batch is refused by the shredder before the guard is asked.
        with pytest.raises(InvalidEvents):
            store.ingest_clef(b"{\n", may_commit=refuse)
        assert asked == [1]
        assert (
            store.ingest_clef(clef({"@t": "2024-01-01T00:00:02Z", "N": 3}), may_commit=lambda: True)
            == 1
        )
        assert sorted(e["N"] for e in store.events()) == [1, 3]
    with seqfast.open(tmp_path) as store:  # replayed from the log: lsns 1 and 2, no gap
        assert sorted(e["N"] for e in store.events()) == [1, 3]


def test_second_process_gets_a_clear_error(tmp_path: Path) -> None:
    with seqfast.open(tmp_path):
        code = f"import seqfast; seqfast.open({str(tmp_path)!r})"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode != 0
        assert "StoreLocked" in proc.stderr and "in use by another process" in proc.stderr
        with pytest.raises(StoreLocked):
            seqfast.open(tmp_path)


def test_stats_count_events_segments_and_bytes(tmp_path: Path) -> None:
    with seqfast.open(tmp_path, flush_rows=100) as store:
        for _ in range(3):
            store.ingest_clef(clef(*({"@t": "2024-01-01T00:00:00Z", "I": i} for i in range(100))))
        store.flush()
        stats = store.stats()
    assert stats["events"] == 300
    assert stats["segments"] >= 1
    assert stats["bytes_on_disk"] > 0
    assert stats["bytes_per_event"] == pytest.approx(stats["bytes_on_disk"] / 300)


def test_small_segments_are_merged(tmp_path: Path) -> None:
    policy = seqfast.storage.merge_policy.MergePolicy(fan_in=3, base_rows=10, max_rows=10_000)
    with seqfast.open(tmp_path, merge_policy=policy) as store:
        for b in range(6):
            store.ingest_clef(clef(*({"@t": "2024-01-01T00:00:00Z", "B": b} for _ in range(5))))
            store.flush()
        store.wait_idle()
        assert store.stats()["segments"] <= 2
        assert sorted(e["B"] for e in store.events(limit=100)) == sorted(list(range(6)) * 5)
