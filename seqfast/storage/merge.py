"""Merging segments block by block: a k-way merge that holds one block of each input.

Every input is sorted by (ts, seq), so rows can be emitted as soon as no input can still
produce a smaller key: each round takes, from every loaded block, the rows up to the smallest
"last key" among the loaded blocks (which empties at least one of them), sorts them together
with the rows carried over, and passes on whole output blocks.  Memory is one decoded block per
input plus less than two output blocks, whatever the size of the inputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from seqfast.storage import batch as batches
from seqfast.storage.batch import Batch
from seqfast.storage.segment import SegmentMeta, SegmentReader, write_segment_stream


def merge_segments(
    readers: Sequence[SegmentReader], path: Path, *, block_rows: int, level: int
) -> SegmentMeta:
    """Writes the rows of `readers` as one sorted segment at `path` (atomically)."""
    names = sorted(set().union(*(r.column_names for r in readers)))
    return write_segment_stream(
        path, names, merged_blocks(readers, block_rows), block_rows=block_rows, level=level
    )


def merged_blocks(readers: Sequence[SegmentReader], block_rows: int) -> Iterator[Batch]:
    """The rows of all readers in (ts, seq) order, in batches of whole output blocks (the last
    one may be shorter)."""
    pending = [iter(range(len(r.blocks))) for r in readers]
    loaded: list[Batch | None] = [None] * len(readers)
    carry = batches.empty_batch()
    while True:
        for i, reader in enumerate(readers):
            current = loaded[i]
            if current is None or current.n == 0:
                number = next(pending[i], None)
                loaded[i] = reader.read_block(number) if number is not None else None
        live = [b for b in loaded if b is not None and b.n]
        if not live:
            break
        # Rows with a key up to the smallest last key can be emitted: no input still holds a
        # smaller one.  The block that owns that key is emptied, so every round progresses.
        bound = min((int(b.ts[-1]), int(b.seq[-1])) for b in live)
        pieces = [carry]
        for i, block in enumerate(loaded):
            if block is None or block.n == 0:
                continue
            cut = _rows_up_to(block, bound)
            if cut:
                pieces.append(batches.take(block, np.arange(cut)))
                loaded[i] = batches.take(block, np.arange(cut, block.n))
        ready = batches.sort_by_id(batches.concat(pieces))
        whole = ready.n - ready.n % block_rows
        if whole:
            yield batches.take(ready, np.arange(whole))
        carry = batches.take(ready, np.arange(whole, ready.n))
    if carry.n:
        yield carry


def _rows_up_to(block: Batch, bound: tuple[int, int]) -> int:
    """How many leading rows of the sorted `block` have (ts, seq) <= bound."""
    ts, seq = bound
    below = int(np.searchsorted(block.ts, ts, side="left"))
    equal = int(np.searchsorted(block.ts, ts, side="right"))
    return below + int(np.searchsorted(block.seq[below:equal], seq, side="right"))
