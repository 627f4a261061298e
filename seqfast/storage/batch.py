"""`Batch`: events as columns, the one in-memory shape shared by the shredder, the head,
the segment writer and the segment reader.

A batch holds `n` events.  `ts` and `seq` are dense; every other CLEF key (`@mt`, `@l`, `@x`,
`RequestPath`, `@@escaped`, ...) is a `Column` named by the key exactly as it appeared in CLEF
(so `@@x` stays `@@x`; `@t` is never a column).  A column is sparse in its values:

* `tags[i]` (uint8, one per row) says what row i holds: one of the TAG_* values below.
* `nums` (int64) holds one entry per row tagged INT or FLOAT, in row order; FLOAT entries are
  the IEEE-754 bits of the double (`nums.view(float64)` reads them).
* `str_offsets` (int64, m + 1 entries, starting at 0) and `str_data` (UTF-8 bytes) hold one
  string per row tagged STRING, JSON or BIGINT, in row order: string j is
  `str_data[str_offsets[j]:str_offsets[j + 1]]`.
"""

from __future__ import annotations

import decimal
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from seqfast import _native
from seqfast.storage import ids

# Value tags: the same numbers as native/consts.pxi and native/FORMAT.md.  Append-only.
TAG_ABSENT = 0
TAG_NULL = 1
TAG_FALSE = 2
TAG_TRUE = 3
TAG_INT = 4
TAG_FLOAT = 5
TAG_STRING = 6
TAG_JSON = 7
TAG_BIGINT = 8

Int64Array = npt.NDArray[np.int64]
UInt8Array = npt.NDArray[np.uint8]


@dataclass
class Column:
    tags: UInt8Array
    nums: Int64Array
    str_offsets: Int64Array
    str_data: bytes
    # The strings' dictionary when the column was read from a dictionary-encoded block
    # (`DictionaryColumn`): codes, one int64 per string, into the distinct strings (offsets,
    # data).  Derived data, never written; the query engine works on it instead of the rows.
    dictionary: tuple[Int64Array, Int64Array, bytes] | None = field(
        default=None, compare=False, repr=False
    )


@dataclass
class Batch:
    n: int
    ts: Int64Array  # 100-ns ticks since 1970-01-01T00:00:00Z
    seq: Int64Array  # arrival numbers: unique, increasing in commit order
    columns: dict[str, Column] = field(default_factory=dict)


class LazyBatch(Batch):
    """A batch whose `ts` and `seq` (`load`) and columns (`load_columns`) are decoded only
    when first asked for: a query that needs no ts, such as a count by level over whole
    blocks, never pays for it, and `take` of a few rows (`take_rows`) need not decode every
    column whole."""

    def __init__(
        self,
        n: int,
        load: Callable[[], tuple[Int64Array, Int64Array]],
        load_columns: Callable[[], dict[str, Column]],
        take_rows: Callable[[Int64Array], Batch] | None = None,
    ) -> None:  # the dataclass fields are set here; ts, seq and columns are properties
        self.n = n
        self._load = load
        self._load_columns = load_columns
        self._ts_seq: tuple[Int64Array, Int64Array] | None = None
        self._columns: dict[str, Column] | None = None
        self.take_rows = take_rows

    @property
    def columns(self) -> dict[str, Column]:
        found = self._columns
        if found is None:
            found = self._columns = self._load_columns()
        return found

    @columns.setter
    def columns(self, value: dict[str, Column]) -> None:
        self._columns = value

    def _pair(self) -> tuple[Int64Array, Int64Array]:
        pair = self._ts_seq
        if pair is None:
            pair = self._ts_seq = self._load()  # racing threads load the same arrays
        return pair

    @property
    def ts(self) -> Int64Array:
        return self._pair()[0]

    @ts.setter
    def ts(self, value: Int64Array) -> None:
        self._ts_seq = (value, self._pair()[1])

    @property
    def seq(self) -> Int64Array:
        return self._pair()[1]

    @seq.setter
    def seq(self, value: Int64Array) -> None:
        self._ts_seq = (self._pair()[0], value)


# --- operations on batches --------------------------------------------------------------------
#
# Rows are selected and reordered without a per-row Python loop: a row's position in `nums`
# (or in the strings) is the number of numeric (string) rows before it, a cumulative sum of a
# tag mask, so selecting rows selects positions with numpy and strings with one native gather.

_EMPTY_I64: Int64Array = np.zeros(0, dtype=np.int64)

# The level Seq assumes when an event has none (CLEF omits `@l` for Information).
DEFAULT_LEVEL = "Information"


def numeric_rows(tags: UInt8Array) -> npt.NDArray[np.bool_]:
    """Which rows have a value in `nums` (tagged INT or FLOAT)."""
    # One wrapping subtraction and one comparison: several times faster than a table lookup.
    result: npt.NDArray[np.bool_] = np.subtract(tags, TAG_INT, dtype=np.uint8) < 2
    return result


def string_rows(tags: UInt8Array) -> npt.NDArray[np.bool_]:
    """Which rows have a value in the strings (tagged STRING, JSON or BIGINT)."""
    result: npt.NDArray[np.bool_] = np.subtract(tags, TAG_STRING, dtype=np.uint8) < 3
    return result


class DictionaryColumn(Column):
    """A column read from a dictionary-encoded segment block.  Its per-row strings
    (`str_offsets`, `str_data`) are built from the dictionary only when something asks for
    them: a query that works on the dictionary (level counts, template `like`, group by
    application) never pays for, nor caches, one string per row."""

    def __init__(
        self, tags: UInt8Array, nums: Int64Array, dictionary: tuple[Int64Array, Int64Array, bytes]
    ) -> None:  # the dataclass fields are set here; the strings are properties below
        self.tags = tags
        self.nums = nums
        self.dictionary = dictionary
        self._strings: tuple[Int64Array, bytes] | None = None

    @property
    def coded(self) -> tuple[Int64Array, Int64Array, bytes]:
        """`dictionary`, which a DictionaryColumn always has."""
        assert self.dictionary is not None
        return self.dictionary

    def _expanded(self) -> tuple[Int64Array, bytes]:
        strings = self._strings
        if strings is None:
            codes, offsets, data = self.coded
            strings = _native.gather_strings(offsets, data, codes)
            self._strings = strings  # racing threads build the same value: either one wins
        return strings

    @property
    def str_offsets(self) -> Int64Array:
        return self._expanded()[0]

    @str_offsets.setter
    def str_offsets(self, value: Int64Array) -> None:
        self._strings = (value, self._expanded()[1])

    @property
    def str_data(self) -> bytes:
        return self._expanded()[1]

    @str_data.setter
    def str_data(self, value: bytes) -> None:
        self._strings = (self._expanded()[0], value)

    @property
    def expanded(self) -> bool:
        """Whether the per-row strings have been built (and take memory)."""
        return self._strings is not None

    @property
    def string_count(self) -> int:
        return int(self.coded[0].shape[0])


def string_count(col: Column) -> int:
    """How many rows of `col` hold a string (STRING, JSON or BIGINT), without building the
    strings of a `DictionaryColumn`."""
    if isinstance(col, DictionaryColumn):
        return col.string_count
    return int(col.str_offsets.shape[0]) - 1


def absent_column(n: int) -> Column:
    """A column of n rows that are all ABSENT: what a batch without that key holds."""
    return Column(
        tags=np.zeros(n, dtype=np.uint8),
        nums=_EMPTY_I64.copy(),
        str_offsets=np.zeros(1, dtype=np.int64),
        str_data=b"",
    )


def empty_batch() -> Batch:
    return Batch(n=0, ts=_EMPTY_I64.copy(), seq=_EMPTY_I64.copy())


def concat(batches: Sequence[Batch]) -> Batch:
    """The rows of `batches` one after the other.  Columns are the union of all names (in
    order of first appearance); a column missing from a batch is all-ABSENT in its rows.
    A single batch is returned as it is."""
    if not batches:
        return empty_batch()
    if len(batches) == 1:
        return batches[0]
    names = list(dict.fromkeys(name for b in batches for name in b.columns))
    return Batch(
        n=sum(b.n for b in batches),
        ts=np.concatenate([b.ts for b in batches]).astype(np.int64, copy=False),
        seq=np.concatenate([b.seq for b in batches]).astype(np.int64, copy=False),
        columns={
            name: _concat_column([(b.n, b.columns.get(name)) for b in batches]) for name in names
        },
    )


def _concat_column(parts: Sequence[tuple[int, Column | None]]) -> Column:
    tags = [c.tags if c is not None else np.zeros(n, dtype=np.uint8) for n, c in parts]
    present = [c for _, c in parts if c is not None]
    offsets: list[Int64Array] = [np.zeros(1, dtype=np.int64)]
    shift = 0
    for c in present:
        start, stop = int(c.str_offsets[0]), int(c.str_offsets[-1])
        offsets.append(c.str_offsets[1:] - start + shift)
        shift += stop - start
    return Column(
        tags=np.concatenate(tags).astype(np.uint8, copy=False),
        nums=np.concatenate([c.nums for c in present]).astype(np.int64, copy=False),
        str_offsets=np.concatenate(offsets),
        str_data=b"".join(
            memoryview(c.str_data)[int(c.str_offsets[0]) : int(c.str_offsets[-1])] for c in present
        ),
    )


def take(batch: Batch, indices: npt.ArrayLike) -> Batch:
    """The rows `indices` of `batch`, in that order (repeats allowed).

    Raises IndexError when an index is outside [0, batch.n).
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= batch.n):
        raise IndexError(f"row indices must lie in [0, {batch.n})")
    if isinstance(batch, LazyBatch) and batch.take_rows is not None and idx.size * 16 <= batch.n:
        return batch.take_rows(idx)
    return Batch(
        n=int(idx.size),
        ts=batch.ts[idx],
        seq=batch.seq[idx],
        columns={name: take_column(col, idx) for name, col in batch.columns.items()},
    )


def positions_of(tags: UInt8Array, lo: int, hi: int, rows: Int64Array) -> Int64Array:
    """For each of `rows` (any order, repeats allowed), how many rows before it are tagged
    lo..hi: where its value sits in `nums` (INT..FLOAT) or in the strings (STRING..BIGINT).
    One native scan up to the last row asked for, with no per-row array of ranks."""
    if rows.size == 0:
        return _EMPTY_I64
    if rows.size == 1 or bool((rows[1:] >= rows[:-1]).all()):
        found: Int64Array = _native.rank_rows(tags, lo, hi, rows)
        return found
    order = np.argsort(rows, kind="stable")
    out = np.empty(rows.size, dtype=np.int64)
    out[order] = _native.rank_rows(tags, lo, hi, np.ascontiguousarray(rows[order]))
    return out


def take_column(col: Column, idx: Int64Array) -> Column:
    """The rows `idx` of one column (valid indices, any order, repeats allowed)."""
    tags = col.tags[idx]
    nums = _EMPTY_I64
    if col.nums.size:
        chosen = idx[numeric_rows(tags)]
        nums = col.nums[positions_of(col.tags, TAG_INT, TAG_FLOAT, chosen)]
    offsets, data = np.zeros(1, dtype=np.int64), b""
    if isinstance(col, DictionaryColumn) and not col.expanded:
        # A few rows of a dictionary column: straight from the dictionary.
        codes, dict_offsets, dict_data = col.coded
        chosen = idx[string_rows(tags)]
        offsets, data = _native.gather_strings(
            dict_offsets, dict_data, codes[positions_of(col.tags, TAG_STRING, TAG_BIGINT, chosen)]
        )
    elif col.str_offsets.size > 1:
        chosen = idx[string_rows(tags)]
        offsets, data = _native.gather_strings(
            col.str_offsets,
            col.str_data,
            positions_of(col.tags, TAG_STRING, TAG_BIGINT, chosen),
        )
    return Column(tags=tags, nums=nums, str_offsets=offsets, str_data=data)


def is_sorted_by_id(batch: Batch) -> bool:
    """Whether the rows are in (ts, seq) order."""
    if batch.n < 2:
        return True
    dts = np.diff(batch.ts)
    return not bool(np.any((dts < 0) | ((dts == 0) & (np.diff(batch.seq) < 0))))


def sort_by_id(batch: Batch) -> Batch:
    """The rows in (ts, seq) order, ties kept in their order; an already sorted batch is
    returned as it is."""
    if is_sorted_by_id(batch):
        return batch
    return take(batch, np.lexsort((batch.seq, batch.ts)))


def to_events(batch: Batch, rows: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """CLEF-shaped dicts of the rows `rows` (all rows by default), in that order.

    Each has `@t` (timestamp text) and `@id` (event id) first, then every column that is not
    ABSENT in that row under its key, and `@l` = "Information" when the event has no level.
    Columns named `@t` or `@id`, should a batch have them, do not override the computed ones.
    """
    if rows is None:
        idx = np.arange(batch.n, dtype=np.int64)
    else:
        idx = (
            np.asarray(rows, dtype=np.int64).reshape(-1)
            if isinstance(rows, np.ndarray)
            else np.fromiter(rows, dtype=np.int64)
        )
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= batch.n):
            raise IndexError(f"row indices must lie in [0, {batch.n})")
    events: list[dict[str, Any]] = [
        {"@t": ids.format_ticks(t), "@id": ids.event_id(t, s)}
        for t, s in zip(batch.ts[idx].tolist(), batch.seq[idx].tolist(), strict=True)
    ]
    for name, col in batch.columns.items():
        if name not in ("@t", "@id"):
            _fill_events(events, name, col, idx)
    for event in events:
        if "@l" not in event:
            event["@l"] = DEFAULT_LEVEL
    return events


_CONSTANTS: dict[int, Any] = {TAG_NULL: None, TAG_FALSE: False, TAG_TRUE: True}


def _fill_events(events: list[dict[str, Any]], name: str, col: Column, idx: Int64Array) -> None:
    # One pass per kind of value: positions with numpy, values converted in bulk.
    tags = col.tags[idx]
    for tag, value in _CONSTANTS.items():
        for pos in np.flatnonzero(tags == tag).tolist():
            events[pos][name] = value
    is_num = numeric_rows(tags)
    if is_num.any():
        positions = np.flatnonzero(is_num)
        nums = col.nums[positions_of(col.tags, TAG_INT, TAG_FLOAT, idx[positions])]
        floats = tags[positions] == TAG_FLOAT
        values: list[Any] = nums.tolist()
        if floats.any():
            as_floats = nums.view(np.float64).tolist()
            for j in np.flatnonzero(floats).tolist():
                values[j] = as_floats[j]
        for pos, value in zip(positions.tolist(), values, strict=True):
            events[pos][name] = value
    is_str = string_rows(tags)
    if is_str.any():
        positions = np.flatnonzero(is_str)
        which = positions_of(col.tags, TAG_STRING, TAG_BIGINT, idx[positions])
        texts = _texts(col, which)
        for pos, tag, text in zip(positions.tolist(), tags[positions].tolist(), texts, strict=True):
            events[pos][name] = _string_value(tag, text)


def _texts(col: Column, which: Int64Array) -> list[str]:
    starts = col.str_offsets[which].tolist()
    stops = col.str_offsets[which + 1].tolist()
    data = col.str_data
    if data.isascii():
        # Byte offsets are character offsets: decode once, then slice the str.
        text = data.decode("ascii")
        return [text[a:b] for a, b in zip(starts, stops, strict=True)]
    return [data[a:b].decode("utf-8") for a, b in zip(starts, stops, strict=True)]


def _string_value(tag: int, text: str) -> Any:
    if tag == TAG_STRING:
        return text
    if tag == TAG_BIGINT:
        return _big_int(text)
    # orjson turns integers beyond 64 bits into floats (or refuses them); the standard library
    # keeps them exact.  Only such integers have 19 or more digits in a row, so text without
    # such a run (almost all of it) takes the fast path.
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text, parse_int=_big_int)


_LONG_DIGITS = re.compile(r"[0-9]{19}")


def _big_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        # Beyond CPython's 4300-digit limit on int(str); Decimal has no such limit.
        return int(decimal.Decimal(text))
