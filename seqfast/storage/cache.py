"""A bytes-bounded LRU of decoded block columns, so that hot queries do not decompress again.

Segments are immutable, so a decoded column of one block of one segment file never goes stale:
entries are keyed by the file's identity (path, device, inode — see
`SegmentReader.identity`), the block number and the column name, and only ever evicted for
space.  The time and arrival columns of a block are cached under the reserved name `TS_SEQ`,
a column's tags read alone (to take a few rows, see `read_block`) under `_TAGS` + its name.

Cached arrays are marked read-only: every query shares them, so a query that tried to write
into one would corrupt the others' results; numpy refuses the write instead.

Thread-safe: lookups and insertions take a short lock; decoding happens outside it, so two
threads that miss on the same entry may both decode it (the second insert wins, harmlessly).

Memory: decoding a block writes a few fresh arrays of 0.5 MB (a code or a number per row).
By default glibc gives each such array new pages from the kernel and returns them when it is
freed, so every cold read pays a page fault per 4 KB, which costs more than the decoding
itself.  The first cache made in a process therefore asks glibc (`mallopt`) to keep freed
memory and serve arrays up to 32 MB from it: memory freed by evictions and cleared caches is
reused instead of faulted in again, at the price of a resident size that stays near its peak.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any, Final

import numpy as np

from seqfast.storage.batch import (
    Batch,
    Column,
    DictionaryColumn,
    Int64Array,
    LazyBatch,
    UInt8Array,
    numeric_rows,
    string_rows,
    take_column,
)
from seqfast.storage.segment import SegmentReader

# The cache key of a block's (ts, seq) pair, and the prefix of derived values' keys: no CLEF
# column can have such a name.
TS_SEQ: Final = "\x00ts_seq"
_MEMO: Final = "\x00memo:"
_TAGS: Final = "\x00tags:"
_NO_NUMS: Final = np.zeros(0, dtype=np.int64)
# What one entry costs besides its arrays (key tuple, dict slot, small objects), so that a
# cache full of tiny columns is still bounded.
_ENTRY_OVERHEAD: Final = 256

_Key = tuple[tuple[str, int, int], int, str]
_Value = Any  # a Column, a (ts, seq) pair, None (no such column) or a derived value


_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_allocator_tuned = False


def _keep_freed_memory() -> None:
    """See the module documentation; glibc only, once per process, best effort."""
    global _allocator_tuned
    if _allocator_tuned or not sys.platform.startswith("linux"):
        return
    _allocator_tuned = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)


def _freeze(array: np.ndarray) -> None:
    array.flags.writeable = False


def _column_bytes(column: Column) -> int:
    size = column.tags.nbytes + column.nums.nbytes
    if column.dictionary is not None:
        codes, offsets, data = column.dictionary
        # A dictionary column's per-row strings are built only on demand (rarely: queries
        # work on the dictionary and full events are taken from it), so they count only if
        # already built.
        size += codes.nbytes + offsets.nbytes + len(data)
        if not isinstance(column, DictionaryColumn) or column.expanded:
            size += column.str_offsets.nbytes + len(column.str_data)
        return size
    return size + column.str_offsets.nbytes + len(column.str_data)


class ColumnCache:
    """Decoded columns of segment blocks, least recently used evicted first past
    `max_bytes`.  `max_bytes == 0` turns caching off (every read decodes)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"a cache size cannot be negative ({max_bytes})")
        if max_bytes:
            _keep_freed_memory()
        self.max_bytes = max_bytes
        self._entries: OrderedDict[_Key, tuple[_Value, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def size_bytes(self) -> int:
        """Bytes held now (arrays plus a fixed overhead per entry); never above max_bytes."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _get(self, key: _Key) -> tuple[bool, _Value]:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return False, None
            self._entries.move_to_end(key)
            self.hits += 1
            return True, found[0]

    def _put(self, key: _Key, value: _Value, size: int) -> None:
        size += _ENTRY_OVERHEAD
        if size > self.max_bytes:
            return  # larger than the whole cache: never kept
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted

    def ts_seq(self, reader: SegmentReader, block: int) -> tuple[Int64Array, Int64Array]:
        """The (ts, seq) arrays of a block, decoded once."""
        key = (reader.identity, block, TS_SEQ)
        hit, value = self._get(key)
        if hit:
            assert isinstance(value, tuple)
            return value
        ts, seq = reader.read_ts_seq(block)
        _freeze(ts)
        _freeze(seq)
        self._put(key, (ts, seq), ts.nbytes + seq.nbytes)
        return ts, seq

    def column(self, reader: SegmentReader, block: int, name: str) -> Column | None:
        """One column of a block (None when the segment has no such column), decoded once."""
        key = (reader.identity, block, name)
        hit, value = self._get(key)
        if hit:
            assert value is None or isinstance(value, Column)
            return value
        column = reader.read_column(block, name)
        if column is None:
            self._put(key, None, 0)
            return None
        arrays: list[np.ndarray] = [column.tags, column.nums]
        if column.dictionary is not None:
            arrays += [column.dictionary[0], column.dictionary[1]]
        if not isinstance(column, DictionaryColumn):
            arrays.append(column.str_offsets)
        for array in arrays:
            _freeze(array)
        self._put(key, column, _column_bytes(column))
        return column

    def memo(
        self,
        reader: SegmentReader,
        block: int,
        key: tuple[Any, ...],
        compute: Callable[[], Any],
        size: Callable[[Any], int],
    ) -> Any:
        """A value derived from a whole block (a column as query values, its group codes),
        computed by `compute` once and kept like a column, `size(value)` bytes."""
        cache_key = (reader.identity, block, _MEMO + repr(key))
        hit, value = self._get(cache_key)
        if hit:
            return value
        value = compute()
        self._put(cache_key, value, size(value))
        return value

    def read_block(
        self, reader: SegmentReader, block: int, columns: Collection[str] | None = None
    ) -> Batch:
        """Like `SegmentReader.read_block`, through the cache: ts, seq and the named columns
        (every column of the segment when `columns` is None; unknown names are skipped)."""
        names = reader.column_names
        if columns is not None:
            wanted = set(columns)
            names = [name for name in names if name in wanted]  # the segment's order
        # Decoded only when asked for: ts and seq if the query looks at them, the columns
        # unless only a few rows are taken (`batch.take`).
        return LazyBatch(
            reader.blocks[block].rows,
            functools.partial(self.ts_seq, reader, block),
            functools.partial(self._columns, reader, block, names),
            functools.partial(self._take_rows, reader, block, names),
        )

    def _columns(self, reader: SegmentReader, block: int, names: list[str]) -> dict[str, Column]:
        decoded: dict[str, Column] = {}
        for name in names:
            column = self.column(reader, block, name)
            if column is not None:
                decoded[name] = column
        return decoded

    def _take_rows(
        self, reader: SegmentReader, block: int, names: list[str], rows: Int64Array
    ) -> Batch:
        """A few rows of a block, as `batch.take` of `read_block` would give them: columns
        cached already are taken from; for the others the tags are read (and cached) first,
        and the values decoded (and cached) only if one of the rows holds one."""
        ts, seq = self.ts_seq(reader, block)
        taken: dict[str, Column] = {}
        for name in names:
            hit, value = self._get((reader.identity, block, name))
            if hit:
                if value is not None:
                    taken[name] = take_column(value, rows)
                continue
            tags = self._tags(reader, block, name)
            if tags is None:
                continue
            chosen = tags[rows]
            if bool(numeric_rows(chosen).any()) or bool(string_rows(chosen).any()):
                whole = self.column(reader, block, name)
                if whole is not None:
                    taken[name] = take_column(whole, rows)
                continue
            taken[name] = Column(
                tags=chosen, nums=_NO_NUMS, str_offsets=np.zeros(1, dtype=np.int64), str_data=b""
            )
        return Batch(n=int(rows.size), ts=ts[rows], seq=seq[rows], columns=taken)

    def _tags(self, reader: SegmentReader, block: int, name: str) -> UInt8Array | None:
        key = (reader.identity, block, _TAGS + name)
        hit, value = self._get(key)
        if hit:
            assert value is None or isinstance(value, np.ndarray)
            return value
        tags = reader.read_tags(block, name)
        if tags is not None:
            _freeze(tags)
        self._put(key, tags, 0 if tags is None else tags.nbytes)
        return tags
