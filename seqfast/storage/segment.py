"""Immutable columnar segment files: the writer, the footer between it and the reader, and the
reader.  native/FORMAT.md ("Segment file") is the byte-level specification this mirrors.

Theory of operation.  A segment holds one Batch sorted by (ts, seq), cut into blocks of
`block_rows` rows.  Every block stores each of its columns as a few independent streams (tags,
numbers, strings, a token bloom filter), each compressed on its own with zstd and checksummed
with xxh3_64, so that a query reads only the columns and blocks it needs.  The footer, at the
end of the file, is the directory of every stream plus the statistics that let a query skip
blocks (time and arrival ranges, numeric min/max, blooms); a fixed trailer after it locates it.

The writer streams blocks into `<path>.tmp`, fsyncs, renames and fsyncs the directory, so a
segment is either complete on disk or absent.  The reader trusts nothing: it checks magic,
version, the footer checksum and every offset at open, each stream's checksum before it is
decompressed, and every length and count before native code sees it; any failure is a
`CorruptSegment` naming the block, column and stream.

The reader uses positioned reads (`os.pread`) rather than mmap: a stream is decompressed into
fresh memory anyway, so mapping saves one memcpy per stream, while a mapped file that shrinks
under us would kill the process with SIGBUS instead of raising CorruptSegment.
"""

from __future__ import annotations

import math
import os
import struct
import sys
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import numpy as np
import numpy.typing as npt
import orjson
import xxhash
import zstandard

from seqfast import _native
from seqfast.errors import CorruptSegment
from seqfast.storage.batch import (
    TAG_BIGINT,
    TAG_FLOAT,
    TAG_INT,
    TAG_STRING,
    Batch,
    Column,
    DictionaryColumn,
    Int64Array,
    UInt8Array,
    absent_column,
    concat,
    empty_batch,
    is_sorted_by_id,
    numeric_rows,
    string_rows,
)
from seqfast.storage.layout import fsync_directory

if sys.byteorder != "little":  # pragma: no cover - the native build refuses such hosts too
    raise ImportError("seqfast segment files assume a little-endian host")

# --- format constants (native/FORMAT.md, "Segment file") -------------------------------------

MAGIC = b"\x89SQFSEG\n"  # high bit and newline catch 7-bit and text-mode transfers
FORMAT_VERSION = 1
# magic, format version, 6 reserved zero bytes: streams start at offset 16.
HEADER = struct.Struct("<8sH6s")
_RESERVED = bytes(6)
# footer stored length, footer raw length, xxh3_64 of the stored footer, format version, magic.
TRAILER = struct.Struct("<IIQH8s")
DEFAULT_BLOCK_ROWS = 65536
# No stream or footer may decompress to more than this: bounds what a damaged or hostile
# file can make the reader allocate, and keeps every length within uint32.
MAX_RAW_LENGTH = (1 << 32) - 1
# Bloom filters: about 10 bits per distinct token (~1 % false positives with 7 probes), at
# most 2**23 bits (1 MiB) per block and column, whatever the number of tokens.
BLOOM_BITS_PER_TOKEN = 10
BLOOM_MIN_BITS = 64
BLOOM_MAX_BITS = 1 << 23
BLOOM_MAX_K = 12
# FLOAT blocks whose values are all k / 10**d for a d <= 6 and |k| <= 2**53 are stored as k.
DECIMAL_MAX_SCALE = 6
DECIMAL_MAX_MAGNITUDE = float(1 << 53)
# Verified bloom filters kept in memory per reader (query planning probes them repeatedly).
BLOOM_CACHE_BYTES = 16 << 20


# --- metadata ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentMeta:
    """What the catalog needs to know about a segment without reading it."""

    path: Path
    rows: int
    min_ts: int  # all four are 0 when rows == 0
    max_ts: int
    min_seq: int
    max_seq: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class ColumnStats:
    """Per block and column: what a query can learn without reading the column."""

    const_tag: int | None  # the tag of every row when the block stores no tags stream
    int_min: int | None  # over INT values; None when the block has none
    int_max: int | None
    float_min: float | None  # over FLOAT values other than NaN; None when there are none
    float_max: float | None
    float_nan: bool  # some FLOAT value is NaN
    strings: str | None  # "plain", "hex" or "dict"; None when the block has no string value


@dataclass(frozen=True, slots=True)
class BlockMeta:
    index: int
    row_start: int  # the block's first row within the segment
    rows: int
    min_ts: int  # rows are sorted, so this is the first row's timestamp...
    max_ts: int  # ...and this the last one's
    min_seq: int
    max_seq: int
    columns: Mapping[str, ColumnStats]


def bloom_shape(distinct_tokens: int) -> tuple[int, int]:
    """(bits, probes) of the bloom filter for this many distinct tokens."""
    want = BLOOM_BITS_PER_TOKEN * distinct_tokens
    nbits = min(max(BLOOM_MIN_BITS, -(-want // 64) * 64), BLOOM_MAX_BITS)
    if distinct_tokens == 0:
        return nbits, 1
    k = round(nbits / distinct_tokens * math.log(2))
    return nbits, min(max(k, 1), BLOOM_MAX_K)


# --- writing ----------------------------------------------------------------------------------


def write_segment(
    path: Path, batch: Batch, *, block_rows: int = DEFAULT_BLOCK_ROWS, level: int = 3
) -> SegmentMeta:
    """Writes `batch`, which must be sorted by (ts, seq), as the segment file `path`.

    The file appears atomically: it is written as `<path>.tmp`, fsynced, renamed over `path`,
    and the directory is fsynced.

    Args:
        path: where the segment goes; its directory must exist.
        batch: the rows, sorted by (ts, seq) (see `batch.sort_by_id`).
        block_rows: rows per block (the last block may be shorter).
        level: zstd compression level of every stream.

    Raises:
        ValueError: the batch is not sorted or its arrays do not have the documented shapes.
    """
    _check_batch(batch)
    return write_segment_stream(path, batch.columns, [batch], block_rows=block_rows, level=level)


def write_segment_stream(
    path: Path,
    names: Iterable[str],
    chunks: Iterable[Batch],
    *,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    level: int = 3,
) -> SegmentMeta:
    """Writes the rows of `chunks`, one after the other, as the segment file `path`, holding
    only one chunk at a time: each chunk is sorted, follows the previous one in (ts, seq)
    order, and all but the last are whole numbers of blocks.  `names` are all the columns
    that any chunk may have.  Atomic and durable like `write_segment`."""
    path = Path(path)
    if block_rows < 1:
        raise ValueError(f"block_rows must be positive, not {block_rows}")
    tmp = path.with_name(path.name + ".tmp")
    last: tuple[int, int] | None = None
    try:
        with open(tmp, "wb") as f:
            writer = _SegmentWriter(f, names, block_rows, level)
            for chunk in chunks:
                if chunk.n == 0:
                    continue
                _check_batch(chunk)
                first = (int(chunk.ts[0]), int(chunk.seq[0]))
                if last is not None and first <= last:
                    raise ValueError("the chunks are not in (ts, seq) order")
                last = (int(chunk.ts[-1]), int(chunk.seq[-1]))
                writer.add(chunk)
            writer.finish()
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    with SegmentReader(path) as reader:
        return reader.meta


def _segment_meta(path: Path, batch: Batch, size: int) -> SegmentMeta:
    if batch.n == 0:
        return SegmentMeta(path, 0, 0, 0, 0, 0, size)
    return SegmentMeta(
        path=path,
        rows=batch.n,
        min_ts=int(batch.ts[0]),
        max_ts=int(batch.ts[-1]),
        min_seq=int(batch.seq.min()),
        max_seq=int(batch.seq.max()),
        size_bytes=size,
    )


def _check_batch(batch: Batch) -> None:
    # Cheap shape checks, so that a malformed batch fails here rather than as a confusing
    # error deep inside the writer.
    n = batch.n
    for name, arr in (("ts", batch.ts), ("seq", batch.seq)):
        if arr.dtype != np.int64 or arr.shape != (n,):
            raise ValueError(f"batch.{name} must be int64 of length {n}")
    if not is_sorted_by_id(batch):
        raise ValueError("the batch is not sorted by (ts, seq); use batch.sort_by_id first")
    for name, col in batch.columns.items():
        if col.tags.dtype != np.uint8 or col.tags.shape != (n,):
            raise ValueError(f"column {name!r}: tags must be uint8 of length {n}")
        counts = np.bincount(col.tags, minlength=TAG_BIGINT + 1)
        if counts.size > TAG_BIGINT + 1:
            raise ValueError(f"column {name!r}: unknown tag {counts.size - 1}")
        num_count = int(counts[TAG_INT] + counts[TAG_FLOAT])
        str_count = int(counts[TAG_STRING : TAG_BIGINT + 1].sum())
        if col.nums.dtype != np.int64 or col.nums.shape != (num_count,):
            raise ValueError(f"column {name!r}: nums must be int64 of length {num_count}")
        if col.str_offsets.dtype != np.int64 or col.str_offsets.shape != (str_count + 1,):
            raise ValueError(
                f"column {name!r}: str_offsets must be int64 of length {str_count + 1}"
            )
        if col.str_offsets[0] != 0 or col.str_offsets[-1] > len(col.str_data):
            raise ValueError(f"column {name!r}: str_offsets must start at 0 and stay in str_data")


class _StreamSink:
    """Appends streams to the file and describes each one for the footer."""

    def __init__(self, f: BinaryIO, level: int) -> None:
        self._f = f
        self._offset = HEADER.size
        self._zstd = zstandard.ZstdCompressor(level=level)

    def put(self, raw: Any, *, compress: bool = True) -> dict[str, Any]:
        view = memoryview(raw).cast("B")
        if len(view) > MAX_RAW_LENGTH:
            raise ValueError(f"a stream of {len(view)} bytes exceeds the {MAX_RAW_LENGTH} limit")
        stored: Any = view
        codec = "none"
        if compress and len(view):
            packed = self._zstd.compress(view)
            if len(packed) < len(view):  # incompressible data (random ids) is kept as it is
                stored, codec = packed, "zstd"
        self._f.write(stored)
        ref = {
            "offset": self._offset,
            "length": len(stored),
            "raw_length": len(view),
            "xxh3": xxhash.xxh3_64_intdigest(stored),
            "codec": codec,
        }
        self._offset += len(stored)
        return ref

    def finish(self, footer: dict[str, Any]) -> None:
        raw = orjson.dumps(footer)
        stored = self._zstd.compress(raw)
        if len(raw) > MAX_RAW_LENGTH or len(stored) > MAX_RAW_LENGTH:
            raise ValueError("the segment footer exceeds 4 GiB")
        self._f.write(stored)
        digest = xxhash.xxh3_64_intdigest(stored)
        self._f.write(TRAILER.pack(len(stored), len(raw), digest, FORMAT_VERSION, MAGIC))


class _SegmentWriter:
    """Writes a segment block by block: `add` sorted batches (every one but the last a whole
    number of blocks, so that only the last block is short), then `finish`.  Memory is what one
    `add` holds: a merge can stream its output through here."""

    def __init__(self, f: BinaryIO, names: Iterable[str], block_rows: int, level: int) -> None:
        self._f = f
        self._block_rows = block_rows
        self._sink = _StreamSink(f, level)
        self._names = sorted(names)
        self._blocks: list[dict[str, Any]] = []
        self._rows = 0
        self._f.write(HEADER.pack(MAGIC, FORMAT_VERSION, _RESERVED))

    def add(self, batch: Batch) -> None:
        if self._blocks and self._blocks[-1]["rows"] < self._block_rows:
            raise ValueError("only the last batch added may end in a short block")
        unknown = set(batch.columns).difference(self._names)
        if unknown:
            raise ValueError(f"columns {sorted(unknown)} are not among the segment's columns")
        columns = {name: batch.columns.get(name) or absent_column(batch.n) for name in self._names}
        # Where each block's values start in each column's nums and strings.
        starts = [_value_starts(columns[name], self._block_rows) for name in self._names]
        for number, start in enumerate(range(0, batch.n, self._block_rows)):
            stop = min(start + self._block_rows, batch.n)
            block = self._block(batch, columns, starts, number, start, stop)
            block["row_start"] = self._rows + start
            self._blocks.append(block)
        self._rows += batch.n

    def finish(self) -> None:
        blocks = self._blocks
        self._sink.finish(
            {
                "format_version": FORMAT_VERSION,
                "block_rows": self._block_rows,
                "rows": self._rows,
                "min_ts": blocks[0]["min_ts"] if blocks else 0,
                "max_ts": blocks[-1]["max_ts"] if blocks else 0,
                "min_seq": min((b["min_seq"] for b in blocks), default=0),
                "max_seq": max((b["max_seq"] for b in blocks), default=0),
                "columns": self._names,
                "blocks": blocks,
            }
        )

    def _block(
        self,
        batch: Batch,
        columns: Mapping[str, Column],
        starts: list[list[tuple[int, int]]],
        number: int,
        start: int,
        stop: int,
    ) -> dict[str, Any]:
        ts = np.ascontiguousarray(batch.ts[start:stop])
        seq = np.ascontiguousarray(batch.seq[start:stop])
        sink = self._sink
        ts_base, ts_deltas = _native.delta_encode(ts)
        seq_base, seq_deltas = _native.zigzag_delta_encode(seq)
        ts_packed = _native.narrow(ts_deltas)
        seq_packed = _native.narrow(seq_deltas)
        block: dict[str, Any] = {
            "row_start": start,
            "rows": stop - start,
            "min_ts": int(ts[0]),
            "max_ts": int(ts[-1]),
            "min_seq": int(seq.min()),
            "max_seq": int(seq.max()),
            "ts": {"base": ts_base, "width": ts_packed.itemsize, "stream": sink.put(ts_packed)},
            "seq": {
                "base": seq_base,
                "width": seq_packed.itemsize,
                "stream": sink.put(seq_packed),
            },
        }
        blooms: list[tuple[dict[str, Any], bytes]] = []
        encoded = []
        for name, col_starts in zip(self._names, starts, strict=True):
            entry, bloom = _encode_column(
                sink, columns[name], start, stop, col_starts[number], col_starts[number + 1]
            )
            encoded.append(entry)
            if bloom is not None:
                blooms.append((entry, bloom))
        # Blooms go after the block's data, so reading columns reads one contiguous run.
        for entry, bits in blooms:
            entry["bloom"]["stream"] = sink.put(bits, compress=False)
        block["columns"] = encoded
        return block


def _value_starts(col: Column, block_rows: int) -> list[tuple[int, int]]:
    # (first nums index, first string index) of each block, plus the totals at the end.
    n = col.tags.shape[0]
    bounds = np.arange(0, n, block_rows)
    starts: list[list[int]] = []
    for mask in (numeric_rows(col.tags), string_rows(col.tags)):
        per_block = np.add.reduceat(mask, bounds, dtype=np.int64) if n else np.zeros(0, np.int64)
        starts.append([0, *np.cumsum(per_block).tolist()])
    num_starts, str_starts = starts
    return list(zip(num_starts, str_starts, strict=True))


def _encode_column(
    sink: _StreamSink,
    col: Column,
    start: int,
    stop: int,
    first: tuple[int, int],
    end: tuple[int, int],
) -> tuple[dict[str, Any], bytes | None]:
    tags = np.ascontiguousarray(col.tags[start:stop])
    entry: dict[str, Any] = {}
    if int(tags.min()) == int(tags.max()):
        entry["tags"] = int(tags[0])
    else:
        entry["tags"] = sink.put(tags)
    stats: dict[str, Any] = {}
    if end[0] > first[0]:
        entry["nums"] = _encode_nums(sink, tags, col.nums[first[0] : end[0]], stats)
    bloom = None
    if end[1] > first[1]:
        offsets = np.ascontiguousarray(col.str_offsets[first[1] : end[1] + 1])
        entry["strings"], bloom_source = _encode_strings(sink, offsets, col.str_data)
        hashes = _native.token_hashes(*bloom_source)
        nbits, k = bloom_shape(len(hashes))
        bloom = _native.bloom_build(hashes, nbits, k)
        entry["bloom"] = {"bits": nbits, "k": k, "stream": None}
    if stats:
        entry["stats"] = stats
    return entry, bloom


def _encode_nums(
    sink: _StreamSink, tags: npt.NDArray[np.uint8], nums: Int64Array, stats: dict[str, Any]
) -> dict[str, Any]:
    is_int = tags[numeric_rows(tags)] == TAG_INT
    if is_int.any():
        ints = nums[is_int]
        stats["int_min"], stats["int_max"] = int(ints.min()), int(ints.max())
    if not is_int.all():
        floats = nums[~is_int].view(np.float64)
        nan = np.isnan(floats)
        if not nan.all():
            real = floats[~nan]
            stats["float_min"] = _float_json(float(real.min()))
            stats["float_max"] = _float_json(float(real.max()))
        if nan.any():
            stats["float_nan"] = True
        decimal = _decimal_scale(floats) if not is_int.any() else None
        if decimal is None:
            return {"encoding": "raw", "stream": sink.put(np.ascontiguousarray(nums))}
        scale, scaled = decimal
        return {"encoding": "decimal", "scale": scale, **_for_entry(sink, scaled)}
    return {"encoding": "for", **_for_entry(sink, np.ascontiguousarray(nums))}


def _for_entry(sink: _StreamSink, values: Int64Array) -> dict[str, Any]:
    base, offsets = _native.for_encode(values)
    packed = _native.narrow(offsets)
    return {"base": base, "width": packed.itemsize, "stream": sink.put(packed)}


def _decimal_scale(floats: npt.NDArray[np.float64]) -> tuple[int, Int64Array] | None:
    """(d, integers) such that integers / 10**d gives back every float bit for bit, with the
    smallest d <= DECIMAL_MAX_SCALE; None when there is none.

    Floats that came from decimal text with few digits (durations like 12.3456 ms) become
    small integers this way, which narrow and compress far better than IEEE bits.  The check
    runs the reader's exact computation, so the round trip is exact by construction (-0.0,
    NaN and infinities never pass it).
    """
    if not np.isfinite(floats).all():
        return None
    for scale in range(DECIMAL_MAX_SCALE + 1):
        power = 10.0**scale
        scaled = np.rint(floats * power)
        if np.abs(scaled).max() > DECIMAL_MAX_MAGNITUDE:
            return None  # larger scales only make it larger
        ints = scaled.astype(np.int64)
        if np.array_equal(_undecimal(ints, scale).view(np.int64), floats.view(np.int64)):
            return scale, ints
    return None


def _undecimal(ints: Int64Array, scale: int) -> npt.NDArray[np.float64]:
    # int64 -> float64 is exact below 2**53; the division is correctly rounded IEEE.
    result: npt.NDArray[np.float64] = ints.astype(np.float64) / 10.0**scale
    return result


def _float_json(value: float) -> float | str:
    # JSON has no infinities: they are written as strings.
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _encode_strings(
    sink: _StreamSink, offsets: Int64Array, data: bytes
) -> tuple[dict[str, Any], tuple[Int64Array, Any]]:
    # Returns the footer entry and the (offsets, data) whose tokens the bloom must hold: the
    # dictionary when there is one, which is the same token set for much less work.
    m = offsets.size - 1
    coded = _native.dict_encode(offsets, data, m // 2) if m >= 2 else None
    if coded is None:
        return _encode_string_list(sink, offsets, data), (offsets, data)
    codes, firsts = coded
    values = _native.gather_strings(offsets, data, firsts)
    codes_packed = _native.narrow(codes)
    entry = {
        "encoding": "dict",
        "width": codes_packed.itemsize,
        "codes": sink.put(codes_packed),
        "values": _encode_string_list(sink, *values),
    }
    return entry, values


def _encode_string_list(sink: _StreamSink, offsets: Int64Array, data: Any) -> dict[str, Any]:
    text = memoryview(data)[int(offsets[0]) : int(offsets[-1])]
    hex_length = _native.hex_length(offsets, data)
    if hex_length > 0:
        return {
            "encoding": "hex",
            "hex_length": hex_length,
            "data": sink.put(_native.hex_pack(text)),
        }
    lengths = _native.narrow(np.diff(offsets).view(np.uint64))
    return {
        "encoding": "plain",
        "width": lengths.itemsize,
        "lengths": sink.put(lengths),
        "data": sink.put(text),
    }


# --- the footer, checked ----------------------------------------------------------------------
#
# The footer's JSON is turned into the typed records below by `_FooterParser`, which checks
# every field's type and range and every stream's position before the reader uses any of it.


@dataclass(frozen=True, slots=True)
class _Stream:
    offset: int
    length: int
    raw_length: int
    xxh3: int
    zstd: bool


@dataclass(frozen=True, slots=True)
class _Ints:
    """A narrowed integer stream: ts and seq deltas, frame-of-reference nums."""

    base: int
    width: int
    stream: _Stream


@dataclass(frozen=True, slots=True)
class _Nums:
    encoding: str  # "for" (INT values), "decimal" (FLOAT values) or "raw" (8-byte values)
    ints: _Ints | None  # for "for" and "decimal"
    scale: int  # "decimal": the values are ints / 10**scale
    raw: _Stream | None  # for "raw"


@dataclass(frozen=True, slots=True)
class _StringList:
    encoding: str  # "plain" or "hex"
    width: int  # plain: width of the lengths; hex: the hex text length of every string
    lengths: _Stream | None  # plain only
    data: _Stream


@dataclass(frozen=True, slots=True)
class _Strings:
    list: _StringList  # the strings themselves, or the dictionary's values
    codes: _Ints | None  # dictionary codes (base 0), when dictionary-encoded


@dataclass(frozen=True, slots=True)
class _Bloom:
    nbits: int
    k: int
    stream: _Stream


@dataclass(frozen=True, slots=True)
class _ColumnSpec:
    tags: _Stream | int
    nums: _Nums | None
    strings: _Strings | None
    bloom: _Bloom | None


@dataclass(frozen=True, slots=True)
class _BlockSpec:
    meta: BlockMeta
    ts: _Ints
    seq: _Ints
    columns: list[_ColumnSpec]


_INT64 = (-(1 << 63), (1 << 63) - 1)


class _FooterParser:
    def __init__(self, path: str, data_end: int) -> None:
        self._path = path
        self._data_end = data_end  # streams must lie within [HEADER.size, data_end)

    def fail(self, where: str, detail: str) -> NoReturn:
        raise CorruptSegment(self._path, f"footer, {where}: {detail}")

    def get(self, obj: Any, key: str, where: str) -> Any:
        if not isinstance(obj, dict):
            self.fail(where, "expected a JSON object")
        if key not in obj:
            self.fail(where, f"missing {key!r}")
        return obj[key]

    def integer(self, obj: Any, key: str, where: str, lo: int, hi: int) -> int:
        value = self.get(obj, key, where)
        if type(value) is not int or not lo <= value <= hi:
            self.fail(where, f"{key!r} is {value!r}, expected an integer in [{lo}, {hi}]")
        return value

    def choice(self, obj: Any, key: str, where: str, options: tuple[str, ...]) -> str:
        value = self.get(obj, key, where)
        if value not in options:
            self.fail(where, f"{key!r} is {value!r}, expected one of {options}")
        return str(value)

    def stream(self, obj: Any, key: str, where: str) -> _Stream:
        s = self.get(obj, key, where)
        where = where if key == "stream" else f"{where}, {key} stream"
        offset = self.integer(s, "offset", where, HEADER.size, self._data_end)
        length = self.integer(s, "length", where, 0, self._data_end - offset)
        raw = self.integer(s, "raw_length", where, 0, MAX_RAW_LENGTH)
        xxh3 = self.integer(s, "xxh3", where, 0, (1 << 64) - 1)
        zstd = self.choice(s, "codec", where, ("zstd", "none")) == "zstd"
        if not zstd and raw != length:
            self.fail(where, f"uncompressed but raw_length {raw} != length {length}")
        return _Stream(offset, length, raw, xxh3, zstd)

    def ints(self, obj: Any, key: str, where: str, widths: tuple[int, ...]) -> _Ints:
        spec = self.get(obj, key, where)
        width = self.integer(spec, "width", f"{where}, {key}", 1, 8)
        if width not in widths:
            self.fail(f"{where}, {key}", f"width {width} is not one of {widths}")
        base = self.integer(spec, "base", f"{where}, {key}", *_INT64)
        return _Ints(base, width, self.stream(spec, "stream", f"{where}, {key}"))

    def segment(self, footer: Any) -> tuple[list[str], list[_BlockSpec], int]:
        where = "top level"
        version = self.integer(footer, "format_version", where, 0, 65535)
        if version != FORMAT_VERSION:
            self.fail(
                where, f"format version {version} in the footer, {FORMAT_VERSION} in the trailer"
            )
        block_rows = self.integer(footer, "block_rows", where, 1, 1 << 40)
        rows = self.integer(footer, "rows", where, 0, 1 << 62)
        names = self.get(footer, "columns", where)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.fail(where, "'columns' is not a list of strings")
        if len(set(names)) != len(names):
            self.fail(where, "'columns' names a column twice")
        raw_blocks = self.get(footer, "blocks", where)
        if not isinstance(raw_blocks, list):
            self.fail(where, "'blocks' is not a list")
        blocks = [self.block(i, b, names, block_rows) for i, b in enumerate(raw_blocks)]
        row = 0
        for b in blocks:
            if b.meta.row_start != row:
                self.fail(f"block {b.meta.index}", f"starts at row {b.meta.row_start}, not {row}")
            row += b.meta.rows
        if row != rows:
            self.fail(where, f"the blocks hold {row} rows, the footer says {rows}")
        return names, blocks, rows

    def block(self, index: int, obj: Any, names: list[str], block_rows: int) -> _BlockSpec:
        where = f"block {index}"
        rows = self.integer(obj, "rows", where, 1, block_rows)
        raw_columns = self.get(obj, "columns", where)
        if not isinstance(raw_columns, list) or len(raw_columns) != len(names):
            self.fail(where, f"'columns' does not hold one entry for each of {len(names)} columns")
        specs: list[_ColumnSpec] = []
        stats: dict[str, ColumnStats] = {}
        for name, entry in zip(names, raw_columns, strict=True):
            spec, column_stats = self.column(entry, f"{where}, column {name!r}")
            specs.append(spec)
            stats[name] = column_stats
        meta = BlockMeta(
            index=index,
            row_start=self.integer(obj, "row_start", where, 0, 1 << 62),
            rows=rows,
            min_ts=self.integer(obj, "min_ts", where, *_INT64),
            max_ts=self.integer(obj, "max_ts", where, *_INT64),
            min_seq=self.integer(obj, "min_seq", where, *_INT64),
            max_seq=self.integer(obj, "max_seq", where, *_INT64),
            columns=stats,
        )
        return _BlockSpec(
            meta=meta,
            ts=self.ints(obj, "ts", where, (1, 2, 4, 8)),
            seq=self.ints(obj, "seq", where, (1, 2, 4, 8)),
            columns=specs,
        )

    def column(self, obj: Any, where: str) -> tuple[_ColumnSpec, ColumnStats]:
        if not isinstance(obj, dict):
            self.fail(where, "expected a JSON object")
        tags_entry = self.get(obj, "tags", where)
        tags: _Stream | int
        if isinstance(tags_entry, dict):
            tags = self.stream(obj, "tags", where)
        else:
            tags = self.integer(obj, "tags", where, 0, TAG_BIGINT)
        nums = self.nums(obj["nums"], f"{where}, nums") if "nums" in obj else None
        strings = self.strings(obj["strings"], f"{where}, strings") if "strings" in obj else None
        bloom = None
        if "bloom" in obj:
            b = obj["bloom"]
            nbits = self.integer(b, "bits", f"{where}, bloom", 64, BLOOM_MAX_BITS)
            if nbits % 64:
                self.fail(f"{where}, bloom", f"{nbits} bits is not a multiple of 64")
            k = self.integer(b, "k", f"{where}, bloom", 1, 32)
            bloom = _Bloom(nbits, k, self.stream(b, "stream", f"{where}, bloom"))
        if (strings is None) != (bloom is None):
            self.fail(where, "a bloom filter goes with string values, and only with them")
        return _ColumnSpec(tags, nums, strings, bloom), self.stats(obj, tags, strings, where)

    def nums(self, obj: Any, where: str) -> _Nums:
        encoding = self.choice(obj, "encoding", where, ("for", "decimal", "raw"))
        if encoding == "raw":
            return _Nums(encoding, None, 0, self.stream(obj, "stream", where))
        scale = 0
        if encoding == "decimal":
            scale = self.integer(obj, "scale", where, 0, DECIMAL_MAX_SCALE)
        return _Nums(encoding, self.ints({"nums": obj}, "nums", where, (1, 2, 4, 8)), scale, None)

    def strings(self, obj: Any, where: str) -> _Strings:
        encoding = self.choice(obj, "encoding", where, ("plain", "hex", "dict"))
        if encoding != "dict":
            return _Strings(self.string_list(obj, where), None)
        width = self.integer(obj, "width", where, 1, 4)
        if width == 3:
            self.fail(where, "dictionary code width 3")
        codes = _Ints(0, width, self.stream(obj, "codes", where))
        values = self.get(obj, "values", where)
        return _Strings(self.string_list(values, f"{where}, dictionary values"), codes)

    def string_list(self, obj: Any, where: str) -> _StringList:
        encoding = self.choice(obj, "encoding", where, ("plain", "hex"))
        if encoding == "hex":
            hex_length = self.integer(obj, "hex_length", where, 2, MAX_RAW_LENGTH)
            if hex_length % 2:
                self.fail(where, f"odd hex length {hex_length}")
            return _StringList("hex", hex_length, None, self.stream(obj, "data", where))
        width = self.integer(obj, "width", where, 1, 8)
        if width not in (1, 2, 4, 8):
            self.fail(where, f"length width {width}")
        return _StringList(
            "plain", width, self.stream(obj, "lengths", where), self.stream(obj, "data", where)
        )

    def stats(
        self, obj: dict[str, Any], tags: _Stream | int, strings: _Strings | None, where: str
    ) -> ColumnStats:
        raw = obj.get("stats", {})
        where = f"{where}, stats"
        if not isinstance(raw, dict):
            self.fail(where, "expected a JSON object")
        ints = [
            self.integer(raw, k, where, *_INT64) if k in raw else None
            for k in ("int_min", "int_max")
        ]
        floats = [
            self.number(raw, k, where) if k in raw else None for k in ("float_min", "float_max")
        ]
        nan = raw.get("float_nan", False)
        if nan is not True and nan is not False:
            self.fail(where, f"'float_nan' is {nan!r}")
        encoding = None
        if strings is not None:
            encoding = "dict" if strings.codes is not None else strings.list.encoding
        return ColumnStats(
            const_tag=tags if isinstance(tags, int) else None,
            int_min=ints[0],
            int_max=ints[1],
            float_min=floats[0],
            float_max=floats[1],
            float_nan=nan,
            strings=encoding,
        )

    def number(self, obj: dict[str, Any], key: str, where: str) -> float:
        value = obj[key]
        if value == "Infinity":
            return math.inf
        if value == "-Infinity":
            return -math.inf
        if type(value) not in (int, float) or not math.isfinite(value):
            self.fail(where, f"{key!r} is {value!r}, expected a number")
        return float(value)


# --- reading ----------------------------------------------------------------------------------

# What a failing check inside decoding can raise; the reader turns each into CorruptSegment.
_DECODE_ERRORS = (ValueError, IndexError, OverflowError, TypeError, KeyError, zstandard.ZstdError)


class SegmentReader:
    """Reads one segment file; safe to share between threads.

    Raises CorruptSegment (at open or from any read) when the file fails a check; OSError
    when it cannot be opened at all.
    """

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._where = str(path)
        self._fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._bloom_cache: dict[tuple[int, int], bytes] = {}
        self._bloom_cache_bytes = 0
        self._lock = threading.Lock()
        try:
            self._size = os.fstat(self._fd).st_size
            self._open()
        except BaseException:
            os.close(self._fd)
            self._fd = -1  # so that __del__ does not close the number again (it may be reused)
            raise

    def _corrupt(self, detail: str) -> NoReturn:
        raise CorruptSegment(self._where, detail)

    def _pread(self, offset: int, length: int, what: str) -> bytes:
        fd = self._fd
        if fd < 0:
            raise ValueError("the segment reader is closed")
        data = os.pread(fd, length, offset)
        if len(data) != length:
            self._corrupt(f"{what}: the file ends before byte {offset + length}")
        return data

    def _open(self) -> None:
        size = self._size
        if size < HEADER.size + TRAILER.size:
            self._corrupt(f"{size} bytes is too short for a segment file")
        magic, version, reserved = HEADER.unpack(self._pread(0, HEADER.size, "header"))
        if magic != MAGIC:
            self._corrupt(f"header magic is {magic!r}, expected {MAGIC!r}")
        if version != FORMAT_VERSION:
            self._corrupt(f"unsupported format version {version} in the header")
        if reserved != _RESERVED:
            self._corrupt("reserved header bytes are not zero")
        trailer = self._pread(size - TRAILER.size, TRAILER.size, "trailer")
        stored_length, raw_length, digest, version, magic = TRAILER.unpack(trailer)
        if magic != MAGIC:
            self._corrupt(f"trailer magic is {magic!r}, expected {MAGIC!r}")
        if version != FORMAT_VERSION:
            self._corrupt(f"unsupported format version {version} in the trailer")
        footer_start = size - TRAILER.size - stored_length
        if footer_start < HEADER.size:
            self._corrupt(f"footer length {stored_length} runs past the start of the file")
        stored = self._pread(footer_start, stored_length, "footer")
        if xxhash.xxh3_64_intdigest(stored) != digest:
            self._corrupt("footer checksum mismatch")
        try:
            raw = _decompress(stored, raw_length)
            footer = orjson.loads(raw)
        except (*_DECODE_ERRORS, orjson.JSONDecodeError) as exc:
            self._corrupt(f"footer does not decode: {exc}")
        parser = _FooterParser(self._where, footer_start)
        self._names, self._blocks, self._rows = parser.segment(footer)
        self._column_index = {name: i for i, name in enumerate(self._names)}
        top = footer  # checked by parser.segment to be a dict
        self._min_ts = parser.integer(top, "min_ts", "top level", *_INT64)
        self._max_ts = parser.integer(top, "max_ts", "top level", *_INT64)
        self._min_seq = parser.integer(top, "min_seq", "top level", *_INT64)
        self._max_seq = parser.integer(top, "max_seq", "top level", *_INT64)
        self.blocks: list[BlockMeta] = [b.meta for b in self._blocks]

    # -- properties ----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def min_ts(self) -> int:
        return self._min_ts

    @property
    def max_ts(self) -> int:
        return self._max_ts

    @property
    def min_seq(self) -> int:
        return self._min_seq

    @property
    def max_seq(self) -> int:
        return self._max_seq

    @property
    def size_bytes(self) -> int:
        return self._size

    @property
    def column_names(self) -> list[str]:
        return list(self._names)

    @property
    def meta(self) -> SegmentMeta:
        return SegmentMeta(
            self._path,
            self._rows,
            self._min_ts,
            self._max_ts,
            self._min_seq,
            self._max_seq,
            self._size,
        )

    # -- reading -------------------------------------------------------------------------------

    def read_ts_seq(self, block: int) -> tuple[Int64Array, Int64Array]:
        """The (ts, seq) arrays of block number `block`."""
        self._check_open()
        return self._ts_seq(self._blocks[block], f"block {block}")

    def read_block(self, block: int, columns: Collection[str] | None = None) -> Batch:
        """Block number `block` as a Batch: ts, seq and the columns named in `columns` (all
        by default; names the segment does not have are skipped)."""
        self._check_open()
        spec = self._blocks[block]
        where = f"block {block}"
        if columns is None:
            chosen = list(enumerate(self._names))
        else:
            wanted = set(columns)
            chosen = [(i, name) for i, name in enumerate(self._names) if name in wanted]
        ts, seq = self._ts_seq(spec, where)
        decoded = {
            name: self._column(spec, spec.columns[i], f"{where}, column {name!r}")
            for i, name in chosen
        }
        return Batch(n=spec.meta.rows, ts=ts, seq=seq, columns=decoded)

    def read_column(self, block: int, name: str) -> Column | None:
        """Column `name` of block number `block` alone (None when the segment has no such
        column): what a column cache fills itself with."""
        self._check_open()
        index = self._column_index.get(name)
        if index is None:
            return None
        spec = self._blocks[block]
        return self._column(spec, spec.columns[index], f"block {block}, column {name!r}")

    def read_tags(self, block: int, name: str) -> UInt8Array | None:
        """The tags of column `name` of block `block` alone (None when the segment has no
        such column): enough to tell which rows hold a value, without reading the values
        (a search showing a few events skips the values of columns they have none in)."""
        self._check_open()
        index = self._column_index.get(name)
        if index is None:
            return None
        spec = self._blocks[block]
        tags_spec = spec.columns[index].tags
        if isinstance(tags_spec, int):
            return np.full(spec.meta.rows, tags_spec, dtype=np.uint8)
        where = f"block {block}, column {name!r}, tags"
        raw = self._load(tags_spec, where, spec.meta.rows)
        tags = np.frombuffer(raw, dtype=np.uint8)
        if int(tags.max()) > TAG_BIGINT:
            self._corrupt(f"{where}: unknown tag {int(tags.max())}")
        return tags

    @property
    def identity(self) -> tuple[str, int, int]:
        """(path, device, inode) of the open file: names this file's contents for as long as
        any reader has it open, even if another file later takes its path."""
        known: tuple[str, int, int] | None = getattr(self, "_identity", None)
        if known is None:
            self._check_open()
            st = os.fstat(self._fd)
            known = (str(self._path), st.st_dev, st.st_ino)
            self._identity = known
        return known

    def read_all(self, columns: Collection[str] | None = None) -> Batch:
        """Every row, in (ts, seq) order, with the columns named in `columns` (all by
        default)."""
        if not self._blocks:
            batch = empty_batch()
            wanted = self._names if columns is None else [n for n in self._names if n in columns]
            batch.columns = {name: _empty_column() for name in wanted}
            return batch
        parts = [self.read_block(i, columns) for i in range(len(self._blocks))]
        return concat(parts)

    def might_contain_token(self, block: int, column: str, token: str) -> bool:
        """False when no string value of `column` in block `block` has `token` as a token
        (a maximal run of ASCII letters and digits, bytes >= 0x80 included; compared without
        ASCII case).  True means it may.  Text holding several tokens asks for all of them;
        text holding none cannot be ruled out (True) unless the block has no strings at all."""
        self._check_open()
        spec = self._blocks[block]
        index = self._column_index.get(column)
        if index is None:
            return False
        bloom = spec.columns[index].bloom
        if bloom is None:
            return False
        text = token.encode("utf-8", "surrogatepass")
        hashes = _native.token_hashes(np.array([0, len(text)], dtype=np.int64), text)
        if not hashes.size:
            return True
        bits = self._bloom_bits(block, index, bloom)
        try:
            return _native.bloom_contains_all(bits, bloom.k, hashes)
        except ValueError as exc:
            self._corrupt(f"block {block}, column {column!r}, bloom: {exc}")

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __del__(self) -> None:
        # A store hands readers to concurrent snapshots and lets the last one close the file.
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            os.close(fd)
            self._fd = -1

    def __enter__(self) -> SegmentReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SegmentReader({self._where!r}, rows={self._rows}, blocks={len(self._blocks)})"

    # -- decoding ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._fd < 0:
            raise ValueError("the segment reader is closed")

    def _load(self, s: _Stream, where: str, expect: int | None = None) -> bytes:
        """The raw bytes of the stream `where`, after checking its raw length against what
        the rows need, its checksum, and its length once decompressed."""
        where = f"{where} stream"
        if expect is not None and s.raw_length != expect:
            self._corrupt(f"{where}: raw length {s.raw_length}, expected {expect}")
        stored = self._pread(s.offset, s.length, where)
        if xxhash.xxh3_64_intdigest(stored) != s.xxh3:
            self._corrupt(f"{where}: checksum mismatch")
        if not s.zstd:
            return stored
        try:
            return _decompress(stored, s.raw_length)
        except _DECODE_ERRORS as exc:
            self._corrupt(f"{where}: {exc}")

    def _ints(self, spec: _Ints, count: int, where: str) -> npt.NDArray[np.uint64]:
        raw = self._load(spec.stream, where, count * spec.width)
        return _native.widen(raw, spec.width, count)

    def _ts_seq(self, spec: _BlockSpec, where: str) -> tuple[Int64Array, Int64Array]:
        try:
            return self._decode_ts_seq(spec, where)
        except _DECODE_ERRORS as exc:
            self._corrupt(f"{where}: {exc}")

    def _decode_ts_seq(self, spec: _BlockSpec, where: str) -> tuple[Int64Array, Int64Array]:
        rows = spec.meta.rows
        ts = _native.delta_decode(spec.ts.base, self._ints(spec.ts, rows - 1, f"{where}, ts"))
        seq = _native.zigzag_delta_decode(
            spec.seq.base, self._ints(spec.seq, rows - 1, f"{where}, seq")
        )
        return ts, seq

    def _column(self, block: _BlockSpec, spec: _ColumnSpec, where: str) -> Column:
        try:
            return self._decode_column(block, spec, where)
        except _DECODE_ERRORS as exc:
            self._corrupt(f"{where}: {exc}")

    def _decode_column(self, block: _BlockSpec, spec: _ColumnSpec, where: str) -> Column:
        rows = block.meta.rows
        if isinstance(spec.tags, int):
            tags = np.full(rows, spec.tags, dtype=np.uint8)
        else:
            raw = self._load(spec.tags, f"{where}, tags", rows)
            tags = np.frombuffer(raw, dtype=np.uint8).copy()
        # One native pass counts every tag (np.bincount would widen each byte first).
        counts = _native.byte_counts(tags)
        unknown = np.flatnonzero(counts[TAG_BIGINT + 1 :])
        if unknown.size:
            self._corrupt(f"{where}, tags: unknown tag {int(unknown[-1]) + TAG_BIGINT + 1}")
        num_count = int(counts[TAG_INT] + counts[TAG_FLOAT])
        str_count = int(counts[TAG_STRING : TAG_BIGINT + 1].sum())
        nums = self._nums(spec.nums, num_count, f"{where}, nums")
        if spec.strings is not None and spec.strings.codes is not None:
            return DictionaryColumn(
                tags, nums, self._dictionary(spec.strings, str_count, f"{where}, strings")
            )
        offsets, data = self._strings(spec.strings, str_count, f"{where}, strings")
        return Column(tags=tags, nums=nums, str_offsets=offsets, str_data=data)

    def _nums(self, spec: _Nums | None, count: int, where: str) -> Int64Array:
        if (spec is None) != (count == 0):
            self._corrupt(
                f"{where}: {count} numeric rows but {'no' if spec is None else 'a'} stream"
            )
        if spec is None:
            return np.zeros(0, dtype=np.int64)
        if spec.raw is not None:
            raw = self._load(spec.raw, where, 8 * count)
            return np.frombuffer(raw, dtype="<i8").astype(np.int64)
        assert spec.ints is not None
        ints = _native.for_decode(spec.ints.base, self._ints(spec.ints, count, where))
        if spec.encoding == "decimal":
            return _undecimal(ints, spec.scale).view(np.int64)
        return ints

    def _strings(self, spec: _Strings | None, count: int, where: str) -> tuple[Int64Array, bytes]:
        if (spec is None) != (count == 0):
            self._corrupt(
                f"{where}: {count} string rows but {'no' if spec is None else 'a'} stream"
            )
        if spec is None:
            return np.zeros(1, dtype=np.int64), b""
        if spec.codes is None:
            return self._string_list(spec.list, count, where)
        codes, offsets, data = self._dictionary(spec, count, where)
        return _native.gather_strings(offsets, data, codes)

    def _dictionary(
        self, spec: _Strings, count: int, where: str
    ) -> tuple[Int64Array, Int64Array, bytes]:
        """A dictionary-encoded block's (codes, distinct offsets, distinct data), checked."""
        if count == 0:
            self._corrupt(f"{where}: 0 string rows but a stream")
        assert spec.codes is not None
        wide = self._ints(spec.codes, count, f"{where}, codes")
        codes = wide.view(np.int64)
        offsets, data = self._string_list(spec.list, None, f"{where}, dictionary values")
        distinct = offsets.size - 1
        if not 1 <= distinct <= count:
            self._corrupt(f"{where}: a dictionary of {distinct} values for {count} strings")
        # Checked now (the strings are only built later, if at all): one reduction over the
        # unsigned codes, the position looked for only when one is out of range.
        if int(wide.max()) >= distinct:
            bad = np.flatnonzero((codes < 0) | (codes >= distinct))
            position = int(bad[0])
            raise ValueError(
                f"string index {int(codes[position])} at position {position} "
                f"is outside [0, {distinct})"
            )
        return codes, offsets, bytes(data)

    def _string_list(
        self, spec: _StringList, count: int | None, where: str
    ) -> tuple[Int64Array, bytes]:
        if spec.encoding == "hex":
            size = spec.width // 2
            if count is None:  # a dictionary's values: as many as the data holds
                if spec.data.raw_length % size:
                    self._corrupt(f"{where}: {spec.data.raw_length} bytes of {size}-byte ids")
                count = spec.data.raw_length // size
            text = _native.hex_unpack(self._load(spec.data, f"{where}, data", count * size))
            return np.arange(count + 1, dtype=np.int64) * spec.width, text
        assert spec.lengths is not None
        if count is None:
            if spec.lengths.raw_length % spec.width:
                self._corrupt(
                    f"{where}: {spec.lengths.raw_length} bytes of {spec.width}-byte lengths"
                )
            count = spec.lengths.raw_length // spec.width
        lengths = self._ints(_Ints(0, spec.width, spec.lengths), count, f"{where}, lengths")
        # A float sum cannot overflow; anything near the limit is corrupt anyway.
        if float(lengths.sum(dtype=np.float64)) > MAX_RAW_LENGTH:
            self._corrupt(
                f"{where}, lengths: the strings add up to more than {MAX_RAW_LENGTH} bytes"
            )
        offsets = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(lengths.view(np.int64), out=offsets[1:])
        data = self._load(spec.data, f"{where}, data", int(offsets[-1]))
        return offsets, data

    def _bloom_bits(self, block: int, index: int, bloom: _Bloom) -> bytes:
        key = (block, index)
        bits = self._bloom_cache.get(key)
        if bits is None:
            where = f"block {block}, column {self._names[index]!r}, bloom"
            bits = self._load(bloom.stream, where, bloom.nbits // 8)
            with self._lock:
                if self._bloom_cache_bytes + len(bits) > BLOOM_CACHE_BYTES:
                    self._bloom_cache.clear()
                    self._bloom_cache_bytes = 0
                self._bloom_cache[key] = bits
                self._bloom_cache_bytes += len(bits)
        return bits


def _empty_column() -> Column:
    return Column(
        tags=np.zeros(0, dtype=np.uint8),
        nums=np.zeros(0, dtype=np.int64),
        str_offsets=np.zeros(1, dtype=np.int64),
        str_data=b"",
    )


# One decompressor per thread, reused: making one costs several times what decompressing a
# small stream does, and a decompressor must not be used by two threads at once.
_decompressors = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    found: zstandard.ZstdDecompressor | None = getattr(_decompressors, "zstd", None)
    if found is None:
        found = _decompressors.zstd = zstandard.ZstdDecompressor()
    return found


def _decompress(stored: bytes, raw_length: int) -> bytes:
    # The frame must declare exactly the size the footer promised, so a damaged size field
    # can neither make us allocate more nor hand back a short buffer.
    declared = zstandard.frame_content_size(stored)
    if declared != raw_length:
        raise ValueError(f"zstd frame declares {declared} bytes, expected {raw_length}")
    raw: bytes = _decompressor().decompress(stored, max_output_size=raw_length)
    if len(raw) != raw_length:
        raise ValueError(f"decompressed to {len(raw)} bytes, expected {raw_length}")
    return raw


def read_strings(reader: SegmentReader, block: int, name: str) -> tuple[Int64Array, bytes] | None:
    """The strings (offsets, data) of column `name` of block `block`, read without its tags,
    numbers or dictionary codes: a dictionary-encoded column's distinct values, any other
    column's string cells in row order (a search that finds its text in none of them need
    not read the rest).  None when the block has no strings in the column."""
    reader._check_open()
    index = reader._column_index.get(name)
    if index is None:
        return None
    strings = reader._blocks[block].columns[index].strings
    if strings is None:
        return None
    where = f"block {block}, column {name!r}, strings"
    try:
        offsets, data = reader._string_list(strings.list, None, where)
    except _DECODE_ERRORS as exc:
        reader._corrupt(f"{where}: {exc}")
    return offsets, bytes(data)
