"""Store.search and Store.query on real stores, against the reference executor.

Each store holds events in several segments (tiny blocks, so that pruning and early stopping
have blocks to skip) and in the head; every search and query is run by the store and by
`seqfast.testing.reference_query` over the same events, and the answers must agree.
"""

from __future__ import annotations

import random
import tempfile
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import seqfast
from seqfast.query import QuerySyntaxError, vector
from seqfast.query.execute import QueryTimeout
from seqfast.query.values import QueryError
from seqfast.storage.batch import Batch
from seqfast.storage.ids import format_ticks, parse_event_id
from seqfast.storage.store import Store
from seqfast.testing.reference_query import run_query, run_search

BASE = 17_955_108_000_000_000  # 2026-11-24T09:00:00Z in ticks since 1970
TEMPLATES = [
    "HTTP {RequestMethod} {RequestPath} responded {StatusCode}",
    "Cache miss for {CacheKey}",
    "Executed DbCommand CommandTimeout='30'",
    "Operation timed out for {UserId}",
    "User {UserId} logged in",
]
APPS = ["web", "api", "worker", "Web", "auth"]
LEVELS = [None, None, None, "Debug", "Warning", "Error", "WRN", "Fatal"]


def make_event(rng: random.Random, i: int) -> dict[str, Any]:
    ts = BASE + rng.randrange(0, 40 * 60) * 10_000_000 + rng.randrange(10_000_000)
    event: dict[str, Any] = {"@t": format_ticks(ts), "@mt": rng.choice(TEMPLATES)}
    level = rng.choice(LEVELS)
    if level is not None:
        event["@l"] = level
    if rng.random() < 0.9:
        event["Application"] = rng.choice(APPS)
    if rng.random() < 0.6:
        event["StatusCode"] = rng.choice([200, 200, 201, 302, 404, 500, 503])
        event["RequestPath"] = f"/orders/{rng.randrange(6)}"
        event["RequestMethod"] = "GET"
    if rng.random() < 0.5:
        event["Elapsed"] = round(rng.uniform(0, 50), 3) if rng.random() < 0.8 else rng.randrange(9)
    if rng.random() < 0.3:
        event["@tr"] = f"{rng.randrange(1 << 128):032x}"
    if rng.random() < 0.05:
        event["@x"] = "System.TimeoutException: The operation has timed out"
    if rng.random() < 0.1:
        event["Tags"] = rng.choice([["a"], ["a", "b"], [], None, "x"])
    if rng.random() < 0.05:
        event["StatusCode"] = rng.choice(["500", None, True])
    return event


@pytest.fixture(scope="module")
def populated(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Store, list[dict[str, Any]]]]:
    path = tmp_path_factory.mktemp("store")
    store = seqfast.open(path, block_rows=16, flush_rows=1 << 30)
    rng = random.Random(7)
    i = 0
    for part in range(6):
        store.ingest([make_event(rng, i + k) for k in range(rng.randrange(20, 90))])
        i += 100
        if part in (1, 3):
            store.flush()  # two segments, then batches left in the head
    events = list(store.events(limit=1 << 30))
    assert store.stats()["head_events"] > 0 and store.stats()["segments"] == 2
    yield store, events
    store.close()


SEARCHES = [
    None,
    "",
    "@Level = 'Error'",
    "@Level = 'Warning'",
    "Application = 'web'",
    "Application = 'web' ci",
    "Application = 'web' and StatusCode >= 500",
    "StatusCode >= 500 or Elapsed > 45",
    "StatusCode = 404",
    "@MessageTemplate like '%timeout%'",
    "@MessageTemplate like '%Timeout%' ci",
    '"timed out"',
    "Has(@TraceId)",
    "Tags[?] = 'b'",
    "not Has(StatusCode)",
]


@pytest.mark.parametrize("text", SEARCHES)
@pytest.mark.parametrize("limit", [1, 7, 1000])
def test_search_matches_the_reference(
    populated: tuple[Store, list[dict[str, Any]]], text: str | None, limit: int
) -> None:
    store, events = populated
    result = store.search(text, limit=limit)
    expected = run_search([text], events, limit=limit)
    assert result.events == expected
    assert result.next_id == (expected[-1]["@id"] if len(expected) == limit else None)
    assert result.scanned >= len(expected)


def test_search_pages_with_cursors_and_ranges(
    populated: tuple[Store, list[dict[str, Any]]],
) -> None:
    store, events = populated
    start, end = BASE + 5 * 60 * 10_000_000, BASE + 30 * 60 * 10_000_000
    pages: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = store.search("Has(Application)", start=start, end=end, after_id=after, limit=13)
        pages.extend(page.events)
        if page.next_id is None:
            break
        after = page.next_id
    assert pages == run_search(["Has(Application)"], events, start=start, end=end, limit=1 << 30)
    middle = pages[20]["@id"]
    at = store.search("Has(Application)", start_at_id=middle, limit=3)
    assert at.events == run_search(["Has(Application)"], events, start_at_id=middle, limit=3)
    assert at.events[0]["@id"] == middle
    text_start = format_ticks(start)
    assert store.search(None, start=text_start, limit=5).events == run_search(
        [None], events, start=start, limit=5
    )


def test_extra_filters_are_anded(populated: tuple[Store, list[dict[str, Any]]]) -> None:
    store, events = populated
    result = store.search("StatusCode >= 500", extra_filters=["Application = 'web'"], limit=100)
    assert result.events == run_search(
        ["StatusCode >= 500", "Application = 'web'"], events, limit=100
    )


def test_latest_matches_read_few_blocks(populated: tuple[Store, list[dict[str, Any]]]) -> None:
    store, events = populated
    result = store.search(None, limit=3)
    assert result.scanned < len(events) // 2


QUERIES = [
    "select count(*) from stream",
    "select count(*) from stream where StatusCode >= 500",
    "select count(*) from stream group by @Level",
    "select count(*) as n from stream group by Application ci order by n desc",
    "select count(StatusCode), count(Tags) from stream group by Application",
    "select sum(Elapsed), mean(Elapsed), min(Elapsed), max(Elapsed) from stream",
    "select percentile(Elapsed, 95), percentile(Elapsed, 50) from stream group by RequestPath",
    "select first(Application), last(StatusCode) from stream group by @Level",
    "select any(StatusCode >= 500), all(Has(Application)) from stream group by RequestPath",
    "select count(distinct(Application)) from stream",
    "select count(distinct(Application) ci) from stream group by @Level",
    "select distinct(Application) from stream",
    "select distinct(Application) ci from stream",
    "select distinct(RequestPath) from stream group by Application",
    "select top(Elapsed, 3) from stream",
    "select bottom(StatusCode, 2) from stream group by Application",
    "select count(*) as n from stream group by RequestPath having n > 10 order by n desc limit 3",
    "select count(*) * 2 + 1 as x, max(StatusCode) - min(StatusCode) from stream"
    " group by Application",
    "select count(*) from stream group by time(5m)",
    "select count(*), max(Elapsed) from stream where Has(@TraceId) group by time(7m), Application",
    "select count(*) from stream group by time(10m) order by time desc",
    "select Application, StatusCode from stream where StatusCode >= 500 limit 10",
    "select count(*) from stream where @MessageTemplate like '%timeout%' ci",
    "select count(*) from stream group by Application, @Level limit 4",
    "select mean(Elapsed) from stream group by @Level having mean(Elapsed) > 20",
    "select count(*) as n from stream group by RequestPath order by n desc limit 3",
    "select percentile(Elapsed, 50) as p, count(*) from stream group by Application"
    " order by p limit 2",
    "select max(StatusCode) as m from stream group by RequestPath as path"
    " order by m desc, path desc",
    "select count(*) from stream group by RequestPath limit 2",
]


def close_enough(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            return False
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close_enough(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


@pytest.mark.parametrize("text", QUERIES)
def test_query_matches_the_reference(
    populated: tuple[Store, list[dict[str, Any]]], text: str
) -> None:
    store, events = populated
    start = BASE + 60 * 10_000_000 + 12345
    ranges: list[dict[str, int]] = [{}, {"start": start, "end": BASE + 30 * 60 * 10_000_000}]
    for kwargs in ranges:
        result = store.query(text, **kwargs)
        columns, rows, slices = run_query(text, events, **kwargs)
        assert result.columns == columns
        assert close_enough(result.rows, rows), (result.rows, rows)
        if slices is None:
            assert result.slices is None
        else:
            assert result.slices is not None
            assert [s["Time"] for s in result.slices] == [s["Time"] for s in slices]
            assert close_enough([s["Rows"] for s in result.slices], [s["Rows"] for s in slices])


def test_results_are_json_ready(populated: tuple[Store, list[dict[str, Any]]]) -> None:
    store, _ = populated
    result = store.query("select count(*) as n, mean(Elapsed) from stream group by @Level")
    for row in result.rows:
        assert isinstance(row[1], int) and not isinstance(row[1], bool)
        assert row[2] is None or isinstance(row[2], float | int)
        assert not any(isinstance(v, Decimal) for v in row)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("select count(*) from stream where", QuerySyntaxError),
        ("select 1 + 1", QueryError),
        ("select count(*), distinct(A) from stream", QuerySyntaxError),
        ("select percentile(Elapsed, 101) from stream", QueryError),
        ("select Application, count(*) from stream", QueryError),
        ("select count(*) from stream order by nothing", QueryError),
    ],
)
def test_bad_queries_raise_clear_errors(
    populated: tuple[Store, list[dict[str, Any]]], text: str, error: type[Exception]
) -> None:
    store, _ = populated
    with pytest.raises(error):
        store.query(text)


def test_timeouts(populated: tuple[Store, list[dict[str, Any]]]) -> None:
    store, _ = populated
    with pytest.raises(QueryTimeout):
        store.query("select count(*) from stream group by Application", timeout=-1)
    with pytest.raises(QueryTimeout):
        store.search("Application = 'web'", timeout=-1)


def test_listeners_see_committed_batches(tmp_path: Path) -> None:
    with seqfast.open(tmp_path) as store:
        seen: list[Batch] = []
        threads: list[str] = []

        def listener(batch: Batch) -> None:
            seen.append(batch)
            threads.append(threading.current_thread().name)

        def broken(batch: Batch) -> None:
            raise RuntimeError("listener bug")

        remove = store.add_listener(listener)
        store.add_listener(broken)  # must not break ingestion
        store.ingest([{"@t": "2026-01-01T00:00:00Z", "@mt": "a"}])
        store.ingest([{"@t": "2026-01-01T00:00:01Z", "@mt": "b"}] * 2)
        remove()
        store.ingest([{"@t": "2026-01-01T00:00:02Z", "@mt": "c"}])
        assert [b.n for b in seen] == [1, 2]
        assert threads == [threading.current_thread().name] * 2
        # The batch carries its final arrival numbers: ids match what searches return.
        newest = store.search(None, limit=3).events
        ids = {parse_event_id(e["@id"])[1] for e in newest}
        assert set(seen[1].seq.tolist()) <= ids


def test_bloom_and_min_max_pruning_skip_blocks(
    populated: tuple[Store, list[dict[str, Any]]],
) -> None:
    store, events = populated
    trace = next(e["@tr"] for e in events if "@tr" in e)
    found = store.search(f"@TraceId = '{trace}'", limit=1000)
    assert found.events == run_search([f"@TraceId = '{trace}'"], events, limit=1000)
    head = store.stats()["head_events"]
    # Only the head (no blooms) and the block holding the trace are read.
    assert found.scanned <= head + 16 * len(found.events)
    none = store.search("StatusCode > 100000", limit=1000)
    # Blocks holding text in StatusCode are read (text may be an integer beyond 64 bits).
    assert none.events == [] and none.scanned < len(events)


def test_repeated_queries_give_the_same_answers(
    populated: tuple[Store, list[dict[str, Any]]],
) -> None:
    store, _ = populated
    for text in QUERIES:
        first = store.query(text)
        again = store.query(text)
        assert (first.columns, first.rows, first.slices) == (
            again.columns,
            again.rows,
            again.slices,
        )


def test_a_store_without_cache_answers_the_same(tmp_path: Path) -> None:
    rng = random.Random(3)
    events_in = [make_event(rng, i) for i in range(150)]
    with seqfast.open(tmp_path, block_rows=16, query_cache_bytes=0, query_threads=1) as store:
        store.ingest(events_in[:100])
        store.flush()
        store.ingest(events_in[100:])
        events = list(store.events(limit=1 << 30))
        for text in QUERIES[:8]:
            result = store.query(text)
            columns, rows, _ = run_query(text, events)
            assert result.columns == columns and close_enough(result.rows, rows)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    flushes=st.sets(st.integers(0, 3)),
    text=st.sampled_from(QUERIES),
    search=st.sampled_from(SEARCHES),
    limit=st.integers(1, 60),
)
def test_random_stores_agree_with_the_reference(
    seed: int, sizes: list[int], flushes: set[int], text: str, search: str | None, limit: int
) -> None:
    rng = random.Random(seed)
    with (
        tempfile.TemporaryDirectory() as directory,
        seqfast.open(directory, block_rows=8, flush_rows=1 << 30) as store,
    ):
        for part, size in enumerate(sizes):
            store.ingest([make_event(rng, i) for i in range(size)])
            if part in flushes:
                store.flush()
        events = list(store.events(limit=1 << 30))
        assert store.search(search, limit=limit).events == run_search([search], events, limit=limit)
        result = store.query(text)
        columns, rows, _ = run_query(text, events)
        assert result.columns == columns and close_enough(result.rows, rows)


def test_queries_are_checked_before_reading(tmp_path: Path) -> None:
    with seqfast.open(tmp_path) as store:  # no events: the errors cannot come from data
        with pytest.raises(QueryError, match="neither an aggregate nor a group key"):
            store.query("select Application, count(*) from stream")
        with pytest.raises(QueryError):
            store.query("select count(*) from stream group by A having B > 1")
        assert store.query("select count(*) as n from stream having n >= 0").rows == [[0]]
        assert store.query("select count(*) from stream group by A").rows == []


def test_now_is_one_instant_for_the_whole_query(
    populated: tuple[Store, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A clock that moves on every reading: a query reading it once per block (across both
    # worker threads) would see many instants.
    ticks = iter(range(638_000_000_000_000_000, 10**19, 10_000_000))
    monkeypatch.setattr(vector, "clock_ticks", lambda: next(ticks))
    store, events = populated
    result = store.query("select count(distinct(ToIsoString(Now()))) as n from stream")
    assert result.rows == [[1]]
    found = store.search("Substring(ToIsoString(Now()), 0, 4) = '2022'", limit=len(events))
    assert len(found.events) in (0, len(events))
