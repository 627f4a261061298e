"""Removing events from segments, safely across crashes (native/FORMAT.md, "Removing events").

A segment is never edited: it is replaced whole, by a file with a new name.

* **Rewrite**: the rows that stay are streamed block by block into the segment's next
  *generation*, `<lo>-<hi>.r<N>.seg` (written as `.tmp`, fsynced, renamed, directory fsynced),
  and only then is the old file unlinked (directory fsynced again).  A crash in between
  leaves both; `resolve_rewrites`, at open, keeps the highest generation of each lsn range
  and deletes the others, so the old rows are never visible next to the new ones, and the
  new ones are complete before the old go.  It then renames the survivor back to the plain
  `<lo>-<hi>.seg` (the other generations first deleted), so a data directory at rest has
  plain names only.
* **Drop**: the file is unlinked and the directory fsynced, except the segment that covers the
  newest commit-log records: it is rewritten as an *empty* segment instead (`keep_place`).  The
  store replays every log record above the highest lsn its segment names cover; the log may
  still hold records of the newest segment (its trim can be interrupted), so that name must
  stay, or the deleted events would come back from the log.

A new name per rewrite also keeps a path from ever naming two different contents within one
process, which caches keyed by (path, inode) rely on: an inode number can be reused.

`RowMatcher` evaluates filter texts (a deletion's filter, a retention policy's signal) on
blocks with the vectorised engine.  It parses them strictly (free text must be quoted:
`"timeout"`) and checks them when it is built, so that a typo fails, before anything is
removed, instead of becoming a text search.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from seqfast.storage import batch as batches
from seqfast.storage.batch import Batch
from seqfast.storage.layout import SEGMENT_SUFFIX, TEMP_SUFFIX, fsync_directory
from seqfast.storage.retention import Cut, removal_mask
from seqfast.storage.segment import SegmentReader, write_segment_stream

BoolArray = npt.NDArray[np.bool_]

# `<lo>-<hi>.seg` is generation 0; a rewrite of generation N is `<lo>-<hi>.r<N+1>.seg`.
_NAME = re.compile(r"^([0-9a-f]{16}-[0-9a-f]{16})(?:\.r([1-9][0-9]{0,17}))?\.seg$")


def generation(path: Path) -> tuple[str, int] | None:
    """(the `<lo>-<hi>` stem, the generation) of a segment file name, or None."""
    match = _NAME.match(path.name)
    if match is None:
        return None
    return match[1], int(match[2] or 0)


def next_generation(path: Path) -> Path:
    """Where the rewrite of the segment at `path` goes."""
    found = generation(path)
    if found is None:
        raise ValueError(f"{path.name} is not a segment file name")
    stem, number = found
    return path.with_name(f"{stem}.r{number + 1}{SEGMENT_SUFFIX}")


def resolve_rewrites(directory: Path) -> None:
    """Finishes what rewrites interrupted by a crash left in `directory` (called at open):
    of each lsn range, keeps only the highest generation, under the plain name."""
    versions: dict[str, list[tuple[int, Path]]] = {}
    for entry in directory.iterdir():
        if entry.name.endswith(TEMP_SUFFIX):
            continue
        found = generation(entry)
        if found is not None:
            versions.setdefault(found[0], []).append((found[1], entry))
    for stem, kept in versions.items():
        kept.sort()
        newest_generation, newest = kept[-1]
        if newest_generation == 0:
            continue
        # The older versions go first: were the newest renamed to the plain name while an
        # older generation remained, that one would win at the next open.
        for _, older in kept[:-1]:
            older.unlink()
        fsync_directory(directory)
        os.replace(newest, directory / f"{stem}{SEGMENT_SUFFIX}")
        fsync_directory(directory)


class RowMatcher:
    """The filters of some cuts, parsed once; `mask(filters, batch)` evaluates them."""

    def __init__(self, cuts: Sequence[Cut]) -> None:
        self._parsed: dict[str, Any] = {}
        needed: set[str] | None = set()
        texts = dict.fromkeys(text for cut in cuts for text in cut.filters)
        if texts:
            # The query engine is loaded only when there is a filter to evaluate.
            from seqfast.query.parse import parse_filter
            from seqfast.query.vector import check, columns_needed

            for text in texts:
                # Strict: a typo must not turn into a text search that removes other events.
                tree = parse_filter(text, strict=True)
                if tree.expr is not None:
                    check(tree.expr)
                    wanted = columns_needed(tree.expr)
                    needed = None if wanted is None or needed is None else needed | wanted
                self._parsed[text] = tree
        # The columns a block must be read with to evaluate every filter (None: all of them).
        self.columns: set[str] | None = needed

    def mask(self, filters: tuple[str, ...], batch: Batch) -> BoolArray:
        """Rows of `batch` matching every text of `filters`."""
        from seqfast.query.vector import filter_mask

        matched = np.ones(batch.n, dtype=bool)
        for text in filters:
            matched &= filter_mask(self._parsed[text], batch)
        return matched

    def removed(self, batch: Batch, cuts: Sequence[Cut]) -> BoolArray:
        """Rows of `batch` that some cut removes."""
        return removal_mask(batch.ts, cuts, lambda filters: self.mask(filters, batch))


def block_removals(
    reader: SegmentReader, cuts: Sequence[Cut], matcher: RowMatcher
) -> list[BoolArray | None]:
    """For each block of `reader`, the rows the cuts remove (None: none), reading only the
    blocks whose time range a cut reaches, and only the columns the filters need."""
    found: list[BoolArray | None] = []
    for index, block in enumerate(reader.blocks):
        relevant = [c for c in cuts if c.might_remove(block.min_ts, block.max_ts)]
        if not relevant:
            found.append(None)
        elif any(c.removes_all(block.min_ts, block.max_ts) for c in relevant):
            found.append(np.ones(block.rows, dtype=bool))
        else:
            if any(c.filters for c in relevant):
                data = reader.read_block(index, matcher.columns)
            else:
                ts, seq = reader.read_ts_seq(index)
                data = Batch(n=block.rows, ts=ts, seq=seq, columns={})
            mask = matcher.removed(data, relevant)
            found.append(mask if mask.any() else None)
    return found


def rewrite_segment(
    reader: SegmentReader,
    removed: Sequence[BoolArray | None],
    *,
    block_rows: int,
    level: int,
) -> Path:
    """Replaces the segment `reader` reads by one holding only the rows that `removed` (one
    mask per block) does not mark, as its next generation; returns the new file's path.  The
    old file is unlinked once the new one is durable (`reader` can still read it until it is
    closed).  Holds about two blocks at a time."""
    path = next_generation(reader.path)
    write_segment_stream(
        path,
        reader.column_names,
        _kept_blocks(reader, removed, block_rows),
        block_rows=block_rows,
        level=level,
    )
    _retire(reader.path)
    return path


def _kept_blocks(
    reader: SegmentReader, removed: Sequence[BoolArray | None], block_rows: int
) -> Iterator[Batch]:
    # The writer wants whole blocks until the last chunk: carry the remainder over.
    carry = batches.empty_batch()
    for index, mask in enumerate(removed):
        block = reader.read_block(index)
        if mask is not None:
            block = batches.take(block, np.flatnonzero(~mask))
        if block.n == 0:
            continue
        ready = batches.concat([carry, block]) if carry.n else block
        whole = ready.n - ready.n % block_rows
        if whole:
            yield batches.take(ready, np.arange(whole))
        carry = batches.take(ready, np.arange(whole, ready.n))
    if carry.n:
        yield carry


def drop_segment(path: Path, *, keep_place: bool, block_rows: int, level: int) -> Path | None:
    """Removes every row of the segment `path`: unlinks it, or with `keep_place` replaces it
    by an empty segment, its next generation, and returns that one's path."""
    if not keep_place:
        _retire(path)
        return None
    empty = next_generation(path)
    write_segment_stream(empty, [], [], block_rows=block_rows, level=level)
    _retire(path)
    return empty


def _retire(path: Path) -> None:
    path.unlink()
    fsync_directory(path.parent)
