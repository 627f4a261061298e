"""Saved filters' bitmaps in the planner: a search or query gives the same answer with them as
without, whether they answer the whole filter, part of it or none of it; blocks they rule out
are not read; filters that read the clock never get any.  First over blocks in memory
(`execute` directly, with hypothesis), then over a store whose segments are merged and
rewritten."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqfast
from seqfast.events.clef import encode_events, shred
from seqfast.query import execute, vector
from seqfast.query.execute import BlockSource, Range, SavedFilter, saved_filter
from seqfast.query.parse import parse_filter
from seqfast.storage import batch as batches
from seqfast.storage.batch import Batch
from seqfast.storage.store import Store

LEVELS = ["Error", "Warning", "Information", "Debug"]
CONJUNCTS = [
    "@Level = 'Error'",
    "@Level in ['Error', 'Warning']",
    "N > 50",
    "N % 3 = 0",
    "S like 'a%'",
    "Has(S)",
    "not (N < 10)",
    "S = 'b' or N = 5",
    "@Message like '%7%'",
]


def make_event(i: int, level: int, n: int, s: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "@t": f"2024-01-01T00:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 10}000000Z",
        "@mt": "event {N}",
        "@l": LEVELS[level],
        "N": n,
    }
    if s is not None:
        event["S"] = s
    return event


def as_batch(events: Sequence[dict[str, Any]], first_seq: int) -> Batch:
    batch = batches.sort_by_id(shred(encode_events(events)))
    batch.seq += first_seq
    return batch


def block_of(batch: Batch, saved: Sequence[SavedFilter]) -> BlockSource:
    """A block with the bits of `saved` built as the store builds them."""
    bits = {f.key: np.packbits(vector.filter_mask(f.expr, batch)) for f in saved}
    return BlockSource(
        rows=batch.n,
        min_ts=int(batch.ts.min()),
        max_ts=int(batch.ts.max()),
        min_seq=int(batch.seq.min()),
        max_seq=int(batch.seq.max()),
        read=lambda columns: batch,
        bitmap=bits.get,
    )


def plain_block(batch: Batch) -> BlockSource:
    return block_of(batch, [])


events_strategy = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.integers(-5, 120),
        st.one_of(st.none(), st.sampled_from(["a", "ab", "b", "c", "A"])),
    ),
    min_size=1,
    max_size=160,
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[str], list[str], str]:
    """(the signal's filters, the other filters of the search, how they are nested)"""
    signal = draw(st.lists(st.sampled_from(CONJUNCTS), min_size=1, max_size=3, unique=True))
    others = draw(st.lists(st.sampled_from(CONJUNCTS), max_size=2))
    shape = draw(st.sampled_from(["separate", "one text", "parenthesised", "shuffled"]))
    return signal, others, shape


def filters_of(signal: list[str], others: list[str], shape: str) -> list[str]:
    if shape == "separate":
        return [*others, *signal]
    if shape == "one text":
        return [" and ".join(f"({t})" for t in [*signal, *others])]
    if shape == "parenthesised":
        inner = " and ".join(f"({t})" for t in signal)
        return [f"({inner}) and " + " and ".join(f"({t})" for t in others) if others else inner]
    return [" and ".join(f"({t})" for t in [*reversed(signal), *others])]


def split(batch: Batch, size: int) -> list[Batch]:
    return [
        batches.take(batch, np.arange(i, min(i + size, batch.n), dtype=np.int64))
        for i in range(0, batch.n, size)
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_strategy, cases(), st.integers(1, 64), st.integers(1, 40), st.booleans())
def test_bitmaps_change_no_answer(
    rows: list[tuple[int, int, str | None]],
    case: tuple[list[str], list[str], str],
    block_rows: int,
    limit: int,
    unrelated: bool,
) -> None:
    signal, others, shape = case
    batch = as_batch([make_event(i, *row) for i, row in enumerate(rows)], 0)
    parts = split(batch, block_rows)
    saved = [saved_filter(signal)]
    if unrelated:  # a second saved filter that the search does not use, or does
        saved.append(saved_filter(["N > 100"]))
    kept = [s for s in saved if s is not None]
    with_bits = [block_of(p, kept) for p in parts]
    without = [plain_block(p) for p in parts]
    filters = filters_of(signal, others, shape)

    def search(blocks: list[BlockSource], use: Sequence[SavedFilter]) -> Any:
        result = execute.search(blocks, filters, rng=Range(), limit=limit, saved=use)
        return [e["@id"] for e in result.events], result.next_id

    assert search(with_bits, kept) == search(without, ())
    # The bits are used: every block either dropped or carrying them.
    parsed = execute._and([parse_filter(f) for f in filters]).expr
    planned = execute._with_bitmaps(with_bits, parsed, kept)
    assert all(b.answered is not None for b in planned)
    for text in [
        "select count(*) as c, sum(N) as s from stream group by @Level",
        "select count(*) as c from stream group by time(1m)",
        f"select N, S from stream limit {limit}",
    ]:
        bare = execute.query(without, text, rng=Range(), extra_filters=filters)
        used = execute.query(with_bits, text, rng=Range(), extra_filters=filters, saved=kept)
        assert (used.columns, used.rows, used.slices) == (bare.columns, bare.rows, bare.slices)


def test_a_signal_that_rules_out_every_block_reads_nothing() -> None:
    batch = as_batch([make_event(i, 2, i, "a") for i in range(500)], 0)
    saved = saved_filter(["@Level = 'Error'"])
    assert saved is not None
    read: list[int] = []

    def block(part: Batch) -> BlockSource:
        plain = block_of(part, [saved])

        def counting(columns: Any) -> Batch:
            read.append(part.n)
            return part

        return BlockSource(
            rows=plain.rows,
            min_ts=plain.min_ts,
            max_ts=plain.max_ts,
            min_seq=plain.min_seq,
            max_seq=plain.max_seq,
            read=counting,
            bitmap=plain.bitmap,
        )

    blocks = [block(p) for p in split(batch, 100)]
    result = execute.search(blocks, ["@Level = 'Error'", "N > 3"], rng=Range(), limit=10)
    assert result.events == [] and read  # without the bitmap, blocks are read
    read.clear()
    result = execute.search(
        blocks, ["@Level = 'Error'", "N > 3"], rng=Range(), limit=10, saved=[saved]
    )
    assert result.events == [] and result.scanned == 0 and read == []
    counted = execute.query(
        blocks,
        "select count(*) from stream where N > 3 and @Level = 'Error'",
        rng=Range(),
        saved=[saved],
    )
    assert counted.rows == [[0]] and read == []


def test_filters_reading_the_clock_get_no_bitmaps() -> None:
    assert saved_filter(["@Timestamp > Now() - 1h"]) is None
    assert saved_filter(["@Level = 'Error'", "@Timestamp < Now()"]) is None
    assert saved_filter([]) is None and saved_filter(["  "]) is None
    found = saved_filter(["@Level = 'Error'"])
    assert found is not None and len(found.key) == 32


def test_a_key_names_the_filter_not_its_spelling() -> None:
    a = saved_filter(["@Level = 'Error'", "N > 5"])
    b = saved_filter(["@Level   =   'Error' and N>5"])
    c = saved_filter(["@Level = 'Error'", "N > 6"])
    assert a is not None and b is not None and c is not None
    assert a.key == b.key != c.key


# --- over a store ---------------------------------------------------------------------------


QUERIES = [
    "select count(*) as c from stream group by @Level",
    "select count(*) as c from stream group by time(1m)",
    "select N from stream limit 7",
]
SIGNAL = {"signal-1": ["@Level = 'Error'", "N % 2 = 0"]}


def answers(store: Store, extra: Sequence[str]) -> list[Any]:
    out: list[Any] = []
    for text in ["", "N > 30", "S = 'a'"]:
        found = store.search(text or None, extra_filters=extra, limit=25)
        out.append(([e["@id"] for e in found.events], found.next_id))
    for text in QUERIES:
        result = store.query(text, extra_filters=extra)
        out.append((result.columns, result.rows, result.slices))
    return out


def ingest_some(store: Store, start: int, count: int) -> None:
    rng = np.random.default_rng(start)
    events = [
        make_event(
            start + i,
            int(rng.integers(0, 4)),
            int(rng.integers(0, 100)),
            None if rng.random() < 0.2 else str(rng.choice(["a", "b"])),
        )
        for i in range(count)
    ]
    store.ingest(events)


def sidecars(path: Path) -> list[str]:
    return sorted(p.name for p in (path / "segments").glob("*.sig"))


def plain_answers(store: Store, extra: Sequence[str]) -> list[Any]:
    """`answers` with the store's bitmaps out of the planner's sight."""
    signals: Any = store._signals
    signals.saved = lambda: ()
    try:
        return answers(store, extra)
    finally:
        del signals.saved


def test_store_answers_alike_with_bitmaps_through_merges_and_rewrites(tmp_path: Path) -> None:
    extra = SIGNAL["signal-1"]
    with seqfast.open(tmp_path, flush_rows=300, block_rows=64) as store:
        for start in range(0, 1500, 300):
            ingest_some(store, start, 300)
            store.flush()
        store.wait_idle()
        ingest_some(store, 5000, 50)  # in the head: no bitmaps there
        expected = answers(store, extra)
        store.set_saved_filters(SIGNAL)
        assert store.wait_signal_bitmaps(30)
        assert store._signals.built == store.stats()["segments"]
        assert answers(store, extra) == expected
        assert len(sidecars(tmp_path)) == store.stats()["segments"]

        # A merge replaces segments: their sidecars go, the new one gets its own.
        before = set(sidecars(tmp_path))
        for start in range(10_000, 10_040, 10):
            ingest_some(store, start, 10)
            store.flush()
        store.wait_idle()
        assert store.wait_signal_bitmaps(30)
        assert answers(store, extra) == plain_answers(store, extra)
        assert len(sidecars(tmp_path)) == store.stats()["segments"]
        assert not before <= set(sidecars(tmp_path))

        # A deletion rewrites segments: the new generation gets its own bits.
        built = store._signals.built
        assert store.delete_events("N > 90") > 0
        assert store.wait_signal_bitmaps(30)
        assert store._signals.built > built
        after = answers(store, extra)
        assert after == plain_answers(store, extra)
        assert len(sidecars(tmp_path)) == store.stats()["segments"]
    with seqfast.open(tmp_path) as store:
        assert answers(store, extra) == after  # no bitmaps: the plain evaluation agrees
        store.set_saved_filters(SIGNAL)
        assert store.wait_signal_bitmaps(30)
        assert store._signals.built == 0  # the sidecars were loaded, not built again
        assert answers(store, extra) == after


def test_an_edited_signal_gets_new_bitmaps_and_the_old_ones_go(tmp_path: Path) -> None:
    with seqfast.open(tmp_path, flush_rows=200, block_rows=64) as store:
        ingest_some(store, 0, 400)
        store.flush()
        store.wait_idle()
        store.set_saved_filters(SIGNAL)
        assert store.wait_signal_bitmaps(30)
        old = sidecars(tmp_path)
        store.set_saved_filters({"signal-1": ["@Level = 'Warning'"]})
        assert store.wait_signal_bitmaps(30)
        new = sidecars(tmp_path)
        assert new and not set(old) & set(new)
        assert answers(store, ["@Level = 'Warning'"]) == plain_answers(
            store, ["@Level = 'Warning'"]
        )
        store.set_saved_filters({})
        assert store.wait_signal_bitmaps(30)
        deadline = 200
        while sidecars(tmp_path) and deadline:
            time.sleep(0.05)
            deadline -= 1
        assert sidecars(tmp_path) == []
