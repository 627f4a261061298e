"""The streaming merge: any split of sorted rows into segments merges back to the same rows."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqfast.storage import batch as batches
from seqfast.storage.batch import Batch
from seqfast.storage.merge import merge_segments, merged_blocks
from seqfast.storage.segment import SegmentReader, write_segment
from seqfast.testing import assert_batch_equal
from seqfast.testing import batches as batch_strategy


def split(batch: Batch, owners: list[int], parts: int) -> list[Batch]:
    """The rows of `batch` dealt to `parts` batches (each stays sorted)."""
    owner = np.array(owners[: batch.n] + [0] * max(0, batch.n - len(owners)), dtype=np.int64)
    return [batches.take(batch, np.flatnonzero(owner == p)) for p in range(parts)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch_strategy(min_rows=1, max_rows=60, max_columns=4),
    st.integers(1, 4),
    st.lists(st.integers(0, 3), max_size=60),
    st.integers(1, 7),
)
def test_merge_of_any_split_gives_back_the_sorted_rows(
    batch: Batch, parts: int, owners: list[int], block_rows: int
) -> None:
    owners = [o % parts for o in owners]
    with tempfile.TemporaryDirectory() as tmp:
        readers = []
        for number, part in enumerate(split(batch, owners, parts)):
            if part.n:
                path = Path(tmp) / f"in-{number}.seg"
                write_segment(path, part, block_rows=block_rows)
                readers.append(SegmentReader(path))
        chunks = list(merged_blocks(readers, block_rows))
        assert all(c.n % block_rows == 0 for c in chunks[:-1])
        out = Path(tmp) / "out.seg"
        meta = merge_segments(readers, out, block_rows=block_rows, level=1)
        for reader in readers:
            reader.close()
        with SegmentReader(out) as merged:
            assert meta.rows == batch.n == merged.rows
            assert all(b.rows == block_rows for b in merged.blocks[:-1])
            assert_batch_equal(merged.read_all(), batch)
