"""The column cache: same data as the reader, bounded in bytes, least recently used out first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqfast.events.clef import encode_events, shred
from seqfast.storage import batch as batches
from seqfast.storage.cache import ColumnCache
from seqfast.storage.segment import SegmentReader, write_segment


@pytest.fixture
def reader(tmp_path: Path) -> SegmentReader:
    events = [
        {
            "@t": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
            "@mt": f"m{i % 3}",
            "N": i,
            "S": "x" * (i % 7),
        }
        for i in range(400)
    ]
    path = tmp_path / "s.seg"
    write_segment(path, batches.sort_by_id(shred(encode_events(events))), block_rows=50)
    return SegmentReader(path)


def test_reads_through_the_cache_equal_direct_reads(reader: SegmentReader) -> None:
    cache = ColumnCache(1 << 20)
    for _ in range(2):
        for block in range(len(reader.blocks)):
            cached = cache.read_block(reader, block, ["N", "@mt", "missing"])
            direct = reader.read_block(block, ["N", "@mt"])
            assert batches.to_events(cached) == batches.to_events(direct)
            assert list(cached.columns) == list(direct.columns)
    assert cache.hits == cache.misses == 8 * 3  # ts/seq and two columns per block


def test_cached_arrays_are_read_only(reader: SegmentReader) -> None:
    cache = ColumnCache(1 << 20)
    batch = cache.read_block(reader, 0, ["N"])
    with pytest.raises(ValueError):
        batch.ts[0] = 1
    with pytest.raises(ValueError):
        batch.columns["N"].nums[0] = 1


def test_size_stays_within_the_bound_and_evicts_least_recent(reader: SegmentReader) -> None:
    one = ColumnCache(1 << 20)
    one.column(reader, 0, "N")
    entry = one.size_bytes
    cache = ColumnCache(3 * entry)
    for block in range(len(reader.blocks)):
        cache.column(reader, block, "N")
        assert cache.size_bytes <= cache.max_bytes
    assert len(cache) == 3
    cache.column(reader, 5, "N")  # the oldest kept is block 5: touching it keeps it
    cache.column(reader, 0, "N")
    misses = cache.misses
    cache.column(reader, 5, "N")
    assert cache.misses == misses
    cache.column(reader, 6, "N")
    assert cache.misses == misses + 1  # block 6 had been evicted, not 5


def test_a_zero_size_cache_keeps_nothing(reader: SegmentReader) -> None:
    cache = ColumnCache(0)
    batch = cache.read_block(reader, 1)
    assert batch.n == 50 and len(cache) == 0 and cache.size_bytes == 0
    with pytest.raises(ValueError):
        ColumnCache(-1)


def test_entries_are_per_file(reader: SegmentReader, tmp_path: Path) -> None:
    cache = ColumnCache(1 << 20)
    first = cache.column(reader, 0, "N")
    other_path = tmp_path / "t.seg"
    events = [{"@t": "2026-01-01T00:00:00Z", "N": 99}]
    write_segment(other_path, shred(encode_events(events)))
    with SegmentReader(other_path) as other:
        second = cache.column(other, 0, "N")
    assert first is not None and second is not None
    assert not np.array_equal(first.nums[:1], second.nums[:1])
