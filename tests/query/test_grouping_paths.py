"""Grouped queries over stored blocks give the reference's answers on the paths the read
path takes: keys numbered by their bytes next to missing and numeric keys, blocks read with
and without their timestamps, percentiles picked per group, and a few rows of a block taken
without decoding the columns they have no value in."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import seqfast
from seqfast.storage.ids import format_ticks
from seqfast.testing.reference_query import run_query, run_search

BASE = 639_000_000_000_000_000  # 100-ns ticks since 1970, a date in 2020

QUERIES = [
    "select count(*) from stream group by Path",
    "select count(*) from stream where Status >= 400 group by Path",
    "select percentile(Elapsed, 95) as p, count(*) from stream group by Path",
    "select percentile(Elapsed, 50) from stream group by Path, Level",
    "select count(*) from stream group by @Level",
    "select first(Path), last(Path) from stream group by @Level",
    "select count(*) from stream group by time(1m), Path",
]


def event(rng: random.Random, i: int) -> dict[str, Any]:
    e: dict[str, Any] = {
        "@t": format_ticks(BASE + i * 7_000_000),
        "@mt": "Request {Path}",
    }
    path = rng.choice(["/a", "/b", "/c/é", "/d", None, 7, 7.5, "", "/a"])
    if path is not None:
        e["Path"] = path
    if rng.random() < 0.8:
        e["Elapsed"] = rng.choice([rng.randint(0, 50), round(rng.random() * 100, 3)])
    if rng.random() < 0.7:
        e["Status"] = rng.choice([200, 404, 500])
    if rng.random() < 0.6:
        e["@l"] = rng.choice(["Error", "Warning", "Information", "error"])
    if rng.random() < 0.1:
        e["Rare"] = {"x": i}
    return e


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= 1e-9
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


def sort_rows(rows: list[list[Any]]) -> list[list[Any]]:
    return sorted(rows, key=repr)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), sizes=st.lists(st.integers(1, 60), min_size=1, max_size=4))
def test_grouped_queries_over_segments_agree_with_the_reference(
    tmp_path_factory: Any, seed: int, sizes: list[int]
) -> None:
    rng = random.Random(seed)
    directory: Path = tmp_path_factory.mktemp("store")
    with seqfast.open(directory, block_rows=16, flush_rows=1 << 30) as store:
        i = 0
        for size in sizes:
            store.ingest([event(rng, i + j) for j in range(size)])
            i += size
            store.flush()
        events = list(store.events(limit=1 << 30))
        for text in QUERIES:
            for _ in range(2):  # the second time through the key table and the block memos
                result = store.query(text)
                columns, rows, _ = run_query(text, events)
                assert result.columns == columns
                assert close(sort_rows(result.rows), sort_rows(rows)), (text, result.rows, rows)
            store._query_state.cache.clear()
        for search in ("Path = '/a'", "Rare is not null", None):
            for limit in (1, 3, 1000):
                assert store.search(search, limit=limit).events == run_search(
                    [search], events, limit=limit
                )
