"""Segment files: round trips, statistics, bloom filters, the golden file and corruption."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import orjson
import pytest
import xxhash
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast.errors import CorruptSegment
from seqfast.storage import batch as batches
from seqfast.storage.batch import (
    TAG_ABSENT,
    TAG_FLOAT,
    TAG_INT,
    TAG_STRING,
    Batch,
)
from seqfast.storage.segment import (
    FORMAT_VERSION,
    MAGIC,
    TRAILER,
    SegmentReader,
    bloom_shape,
    write_segment,
)
from seqfast.testing import (
    assert_batch_equal,
    batch_from_cells,
    column_cells,
)
from seqfast.testing import (
    batches as batch_strategy,
)
from seqfast.testing import reference as ref

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def load_make_golden() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_golden = load_make_golden()


def read_footer(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    stored_length = TRAILER.unpack(data[-TRAILER.size :])[0]
    stored = data[-TRAILER.size - stored_length : -TRAILER.size]
    footer: dict[str, Any] = orjson.loads(zstandard.ZstdDecompressor().decompress(stored))
    return footer


def data_end(path: Path) -> int:
    """Where the footer starts: the end of the streams."""
    data = path.read_bytes()
    stored_length: int = TRAILER.unpack(data[-TRAILER.size :])[0]
    return len(data) - TRAILER.size - stored_length


def rewrite_footer(
    path: Path, change: Callable[[dict[str, Any]], None], append: bytes = b""
) -> None:
    """Applies `change` to the footer and writes it back with valid checksums (after `append`,
    extra stream bytes), to test the checks that stand behind the checksums."""
    body = path.read_bytes()[: data_end(path)] + append
    footer = read_footer(path)
    change(footer)
    raw = orjson.dumps(footer)
    stored = zstandard.ZstdCompressor().compress(raw)
    digest = xxhash.xxh3_64_intdigest(stored)
    trailer = TRAILER.pack(len(stored), len(raw), digest, FORMAT_VERSION, MAGIC)
    path.write_bytes(body + stored + trailer)


def every_read(reader: SegmentReader) -> list[Any]:
    """The result of every kind of read, for comparison between a file and a damaged copy."""
    results: list[Any] = [reader.rows, reader.column_names, reader.blocks]
    whole = reader.read_all()
    results.append(whole)
    for i, block in enumerate(reader.blocks):
        results.append(reader.read_ts_seq(i))
        results.append(reader.read_block(i, ["@mt", "Mixed", "nope"]))
        results.extend(
            reader.might_contain_token(i, name, token)
            for name in ("@mt", "@sp", "RequestPath", "@x")
            for token in ("request", "Items", "component3", "zzz")
        )
        assert block.index == i
    return results


def assert_same_reads(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if isinstance(w, Batch):
            assert_batch_equal(g, w)
        elif isinstance(w, tuple):
            np.testing.assert_array_equal(g[0], w[0])
            np.testing.assert_array_equal(g[1], w[1])
        else:
            assert g == w


@pytest.fixture
def segment(tmp_path: Path) -> Path:
    path = tmp_path / "golden.seg"
    write_segment(path, make_golden.golden_batch(), block_rows=make_golden.BLOCK_ROWS)
    return path


# --- round trips ------------------------------------------------------------------------------


def expected_stats(cells: list[tuple[int, Any]]) -> dict[str, Any]:
    ints = [v for t, v in cells if t == TAG_INT]
    floats = [v for t, v in cells if t == TAG_FLOAT and not math.isnan(v)]
    return {
        "int_min": min(ints, default=None),
        "int_max": max(ints, default=None),
        "float_min": min(floats, default=None),
        "float_max": max(floats, default=None),
        "float_nan": any(t == TAG_FLOAT and math.isnan(v) for t, v in cells),
    }


@settings(max_examples=150, deadline=None)
@given(batch_strategy(max_rows=60, max_columns=5), st.sampled_from([1, 3, 8, 64]), st.data())
def test_round_trip(batch: Batch, block_rows: int, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.seg"
        meta = write_segment(path, batch, block_rows=block_rows)
        assert not (Path(tmp) / "s.seg.tmp").exists()
        with SegmentReader(path) as reader:
            assert_batch_equal(reader.read_all(), batch)
            assert reader.rows == meta.rows == batch.n
            assert reader.size_bytes == meta.size_bytes == path.stat().st_size
            assert reader.meta == meta
            assert reader.column_names == sorted(batch.columns)
            if batch.n:
                assert (reader.min_ts, reader.max_ts) == (batch.ts[0], batch.ts[-1])
                assert (reader.min_seq, reader.max_seq) == (batch.seq.min(), batch.seq.max())
            assert len(reader.blocks) == -(-batch.n // block_rows)
            wanted = data.draw(st.sets(st.sampled_from([*batch.columns, "missing"])))
            for block in reader.blocks:
                rows = np.arange(block.row_start, block.row_start + block.rows)
                part = batches.take(batch, rows)
                assert block.rows == min(block_rows, batch.n - block.row_start)
                assert (block.min_ts, block.max_ts) == (part.ts.min(), part.ts.max())
                assert (block.min_seq, block.max_seq) == (part.seq.min(), part.seq.max())
                subset = reader.read_block(block.index, wanted)
                part.columns = {k: v for k, v in part.columns.items() if k in wanted}
                assert_batch_equal(subset, part)
                ts, seq = reader.read_ts_seq(block.index)
                assert ts.tolist() == part.ts.tolist() and seq.tolist() == part.seq.tolist()
                check_block_stats_and_blooms(reader, block.index, batches.take(batch, rows))


def check_block_stats_and_blooms(reader: SegmentReader, index: int, part: Batch) -> None:
    block = reader.blocks[index]
    for name, col in part.columns.items():
        cells = column_cells(col)
        stats = block.columns[name]
        want = expected_stats(cells)
        got = {k: getattr(stats, k) for k in want}
        assert got == want, name  # with ==, -0.0 and 0.0 are equally right minima
        tags = {t for t, _ in cells}
        assert stats.const_tag == (tags.pop() if len(tags) == 1 else None)
        for tag, value in cells:
            if tag >= TAG_STRING:
                for token in ref.tokenize(value.encode()):
                    # Tokens keep UTF-8 sequences whole; only ASCII letters change case.
                    text = token.upper().decode()
                    assert reader.might_contain_token(index, name, text), (name, text)
                assert reader.might_contain_token(index, name, value) or not ref.tokenize(
                    value.encode()
                )


def test_round_trip_of_an_empty_batch(tmp_path: Path) -> None:
    empty = batch_from_cells([], [], {"a": [], "b": []})
    meta = write_segment(tmp_path / "e.seg", empty)
    assert (meta.rows, meta.min_ts, meta.max_seq) == (0, 0, 0)
    with SegmentReader(tmp_path / "e.seg") as reader:
        assert reader.blocks == []
        assert_batch_equal(reader.read_all(), empty)
        assert list(reader.read_all(["a"]).columns) == ["a"]


def test_writer_rejects_unsorted_batches_and_leaves_nothing(tmp_path: Path) -> None:
    batch = batch_from_cells([2, 1], [0, 1], {})
    with pytest.raises(ValueError, match="not sorted"):
        write_segment(tmp_path / "x.seg", batch)
    tied = batch_from_cells([1, 1], [5, 4], {})
    with pytest.raises(ValueError, match="not sorted"):
        write_segment(tmp_path / "x.seg", tied)
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_malformed_columns(tmp_path: Path) -> None:
    batch = batch_from_cells([1, 2], [1, 2], {"x": [(TAG_INT, 1), (TAG_INT, 2)]})
    batch.columns["x"].nums = batch.columns["x"].nums[:1]
    with pytest.raises(ValueError, match="nums"):
        write_segment(tmp_path / "x.seg", batch)
    assert list(tmp_path.iterdir()) == []


def encodings(path: Path, block: int = 0) -> dict[str, tuple[str | None, str | None]]:
    footer = read_footer(path)
    out = {}
    for name, col in zip(footer["columns"], footer["blocks"][block]["columns"], strict=True):
        strings = col.get("strings", {}).get("encoding")
        if strings == "dict":
            strings += "/" + col["strings"]["values"]["encoding"]
        out[name] = (col.get("nums", {}).get("encoding"), strings)
    return out


def test_encodings_chosen(tmp_path: Path) -> None:
    n = 64
    rng = random.Random(7)
    batch = batch_from_cells(
        list(range(n)),
        list(range(n)),
        {
            "level": [(TAG_STRING, ["Debug", "Error"][i % 2]) for i in range(n)],
            "trace": [(TAG_STRING, f"{rng.getrandbits(128) | 1 << 127:032x}") for _ in range(n)],
            "shared_trace": [(TAG_STRING, f"{i // 4:032x}") for i in range(n)],
            "upper_hex": [(TAG_STRING, f"{rng.getrandbits(64) | 1 << 63:016X}") for _ in range(n)],
            "path": [(TAG_STRING, f"/orders/{i}") for i in range(n)],
            "elapsed": [(TAG_FLOAT, round(rng.uniform(0, 500), 4)) for _ in range(n)],
            "ratio": [(TAG_FLOAT, rng.random()) for _ in range(n)],
            "neg_zero": [(TAG_FLOAT, -0.0 if i == 3 else 1.5) for i in range(n)],
            "status": [(TAG_INT, 200 + i % 3) for i in range(n)],
            "mixed": [(TAG_INT, 1) if i % 2 else (TAG_FLOAT, 0.5) for i in range(n)],
        },
    )
    path = tmp_path / "e.seg"
    write_segment(path, batch)
    assert encodings(path) == {
        "level": (None, "dict/plain"),
        "trace": (None, "hex"),
        "shared_trace": (None, "dict/hex"),
        "upper_hex": (None, "plain"),
        "path": (None, "plain"),
        "elapsed": ("decimal", None),
        "ratio": ("raw", None),
        "neg_zero": ("raw", None),
        "status": ("for", None),
        "mixed": ("raw", None),
    }
    with SegmentReader(path) as reader:
        assert_batch_equal(reader.read_all(), batch)
        assert reader.blocks[0].columns["trace"].strings == "hex"


def test_bloom_shape() -> None:
    assert bloom_shape(0) == (64, 1)
    assert bloom_shape(1) == (64, 12)
    assert bloom_shape(1000) == (10048, 7)
    bits, k = bloom_shape(10_000_000)
    assert bits == 1 << 23 and 1 <= k <= 12


def test_tokens_absent_from_a_block_are_mostly_ruled_out(tmp_path: Path) -> None:
    n = 2000
    batch = batch_from_cells(
        list(range(n)), list(range(n)), {"msg": [(TAG_STRING, f"w{i} X{i}") for i in range(n)]}
    )
    write_segment(tmp_path / "b.seg", batch, block_rows=1000)
    with SegmentReader(tmp_path / "b.seg") as reader:
        assert all(reader.might_contain_token(0, "msg", f"W{i}") for i in range(1000))
        assert all(reader.might_contain_token(1, "msg", f"x{i}") for i in range(1000, 2000))
        false = sum(reader.might_contain_token(0, "msg", f"w{i}") for i in range(1000, 2000))
        assert false < 50
        assert not reader.might_contain_token(0, "no such column", "w1")
        assert reader.might_contain_token(0, "msg", "w1 x1")  # every token present
        assert not reader.might_contain_token(0, "msg", "w1 x1500")
        assert reader.might_contain_token(0, "msg", "--")  # no token: cannot rule out


def test_block_without_strings_rules_every_token_out(tmp_path: Path) -> None:
    batch = batch_from_cells([1, 2], [1, 2], {"v": [(TAG_INT, 1), (TAG_ABSENT, None)]})
    write_segment(tmp_path / "n.seg", batch)
    with SegmentReader(tmp_path / "n.seg") as reader:
        assert not reader.might_contain_token(0, "v", "1")
        assert not reader.might_contain_token(0, "v", "")


def test_reader_is_usable_after_close_only_as_an_error(segment: Path) -> None:
    reader = SegmentReader(segment)
    reader.close()
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read_block(0)


# --- the golden file --------------------------------------------------------------------------


def test_golden_file_decodes_to_the_golden_batch() -> None:
    with SegmentReader(make_golden.V1_SEGMENT) as reader:
        assert_batch_equal(reader.read_all(), make_golden.golden_batch())
        assert len(reader.blocks) == 3


def test_writing_the_golden_batch_reproduces_the_golden_file(tmp_path: Path) -> None:
    path = tmp_path / "again.seg"
    write_segment(
        path, make_golden.golden_batch(), block_rows=make_golden.BLOCK_ROWS, level=make_golden.LEVEL
    )
    info = json.loads(make_golden.V1_INFO.read_text())
    if tuple(info["zstd"]) == zstandard.ZSTD_VERSION:
        assert path.read_bytes() == make_golden.V1_SEGMENT.read_bytes()
    else:
        # Another zstd may compress differently; everything else must still be identical.
        assert canonical(path) == canonical(make_golden.V1_SEGMENT)


def canonical(path: Path) -> Any:
    """The footer with each stream replaced by its uncompressed content."""
    data = path.read_bytes()

    def walk(node: Any) -> Any:
        if isinstance(node, dict) and "xxh3" in node:
            stored = data[node["offset"] : node["offset"] + node["length"]]
            if node["codec"] == "zstd":
                stored = zstandard.ZstdDecompressor().decompress(stored)
            return stored
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(read_footer(path))


# --- corruption -------------------------------------------------------------------------------


def mutations(size: int, seed: int) -> Iterator[tuple[str, Callable[[bytearray], bytearray]]]:
    rng = random.Random(seed)

    def flip(offset: int, bit: int) -> Callable[[bytearray], bytearray]:
        def apply(data: bytearray) -> bytearray:
            data[offset] ^= 1 << bit
            return data

        return apply

    def truncate(length: int) -> Callable[[bytearray], bytearray]:
        return lambda data: data[:length]

    def zero(start: int, length: int) -> Callable[[bytearray], bytearray]:
        def apply(data: bytearray) -> bytearray:
            data[start : start + length] = bytes(len(data[start : start + length]))
            return data

        return apply

    for _ in range(250):
        offset, bit = rng.randrange(size), rng.randrange(8)
        yield f"flip byte {offset} bit {bit}", flip(offset, bit)
    for offset in range(size - 40, size):  # every byte of the trailer and the footer's end
        yield f"flip byte {offset} bit 0", flip(offset, 0)
    for offset in range(0, 16):  # every byte of the header
        yield f"flip byte {offset} bit 7", flip(offset, 7)
    for _ in range(100):
        length = rng.randrange(size)
        yield f"truncate to {length}", truncate(length)
    for start in range(0, size, 4096):
        yield f"zero page at {start}", zero(start, 4096)
    for _ in range(100):
        start, length = rng.randrange(size), rng.choice([1, 8, 64, 512])
        yield f"zero {length} bytes at {start}", zero(start, length)


def test_damaged_files_read_correctly_or_raise_corrupt_segment(
    segment: Path, tmp_path: Path
) -> None:
    with SegmentReader(segment) as reader:
        want = every_read(reader)
    original = segment.read_bytes()
    damaged = tmp_path / "damaged.seg"
    raised = 0
    for name, mutate in mutations(len(original), seed=1):
        damaged.write_bytes(bytes(mutate(bytearray(original))))
        try:
            with SegmentReader(damaged) as reader:
                got = every_read(reader)
        except CorruptSegment as exc:
            assert exc.path == str(damaged) and exc.detail, name
            raised += 1
            continue
        try:
            assert_same_reads(got, want)
        except AssertionError as exc:
            raise AssertionError(f"{name}: the damaged file read differently") from exc
    assert raised > 400


def corrupt_with(
    path: Path, change: Callable[[dict[str, Any]], None], append: bytes = b""
) -> CorruptSegment:
    rewrite_footer(path, change, append)
    with pytest.raises(CorruptSegment) as info, SegmentReader(path) as reader:
        every_read(reader)
    return info.value


def first_column(footer: dict[str, Any], name: str, block: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = footer["blocks"][block]["columns"][footer["columns"].index(name)]
    return column


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda f: f.update(rows=41), "the blocks hold 40 rows"),
        (lambda f: f.update(format_version=2), "format version 2"),
        (lambda f: f["blocks"][1].update(row_start=15), "block 1: starts at row 15"),
        (lambda f: f["blocks"][0].update(rows=17), "'rows' is 17"),
        (lambda f: f["columns"].append("extra"), "does not hold one entry"),
        (lambda f: f.update(columns=["@l"] * 14), "names a column twice"),
        (lambda f: f["blocks"][0]["ts"].update(width=3), "width 3"),
        (lambda f: f["blocks"][0]["ts"]["stream"].update(offset=10**9), "'offset' is"),
        (lambda f: f["blocks"][0]["ts"]["stream"].update(length=10**6), "'length' is"),
        (lambda f: first_column(f, "@x")["strings"]["data"].update(raw_length=1), "raw length 1"),
        (
            lambda f: first_column(f, "@sp")["strings"]["data"].update(raw_length=1),
            "raw_length 1 !=",
        ),
        (lambda f: f["blocks"][0]["ts"]["stream"].update(xxh3=1), "checksum mismatch"),
        (lambda f: f["blocks"][0]["ts"]["stream"].update(codec="lz4"), "'codec' is 'lz4'"),
        (lambda f: f["blocks"][0]["ts"].update(base=2**63), "'base' is"),
        (lambda f: first_column(f, "Flag").update(tags=9), "'tags' is 9"),
        (lambda f: first_column(f, "Flag").update(tags=4), "16 numeric rows but no stream"),
        (lambda f: first_column(f, "Flag").update(tags=True), "'tags' is True"),
        (lambda f: first_column(f, "StatusCode").update(tags=6), "0 numeric rows but a stream"),
        (lambda f: first_column(f, "StatusCode")["nums"].update(width=8), "expected 128"),
        (lambda f: first_column(f, "StatusCode")["nums"].update(encoding="x"), "'encoding'"),
        (lambda f: first_column(f, "Elapsed")["nums"].update(scale=9), "'scale' is 9"),
        (lambda f: first_column(f, "@mt")["strings"].update(width=3), "code width 3"),
        (lambda f: first_column(f, "@mt").pop("bloom"), "a bloom filter goes with"),
        (lambda f: first_column(f, "@mt")["bloom"].update(bits=100), "not a multiple of 64"),
        (lambda f: first_column(f, "@sp")["strings"].update(hex_length=3), "odd hex length"),
        (lambda f: first_column(f, "@sp")["strings"].update(hex_length=8), "raw length"),
        (lambda f: first_column(f, "Mixed").update(stats={"int_min": 1.5}), "'int_min'"),
        (lambda f: first_column(f, "Mixed").update(stats={"float_nan": 1}), "'float_nan'"),
        (lambda f: f["blocks"][0].update(columns=7), "does not hold one entry"),
        (lambda f: f.update(blocks={}), "'blocks' is not a list"),
        (lambda f: f.pop("min_ts"), "missing 'min_ts'"),
    ],
)
def test_footer_checks(
    segment: Path, change: Callable[[dict[str, Any]], None], detail: str
) -> None:
    error = corrupt_with(segment, change)
    assert detail in error.detail


def test_codes_beyond_the_dictionary_are_corruption(segment: Path) -> None:
    codes = bytes([0, 1, 2, 200] * 4)  # @mt's first block has a dictionary of 3 templates
    ref_stream = {
        "offset": data_end(segment),
        "length": len(codes),
        "raw_length": len(codes),
        "xxh3": xxhash.xxh3_64_intdigest(codes),
        "codec": "none",
    }

    def change(footer: dict[str, Any]) -> None:
        first_column(footer, "@mt")["strings"]["codes"] = ref_stream

    error = corrupt_with(segment, change, append=codes)
    assert error.detail == "block 0, column '@mt': string index 200 at position 3 is outside [0, 3)"


def test_unreadable_things_are_named_precisely(segment: Path, tmp_path: Path) -> None:
    data = bytearray(segment.read_bytes())
    stream = first_column(read_footer(segment), "@x", block=2)["strings"]["data"]
    data[stream["offset"]] ^= 1
    segment.write_bytes(bytes(data))
    with SegmentReader(segment) as reader:
        reader.read_block(2, ["@mt"])  # other columns stay readable
        with pytest.raises(CorruptSegment) as info:
            reader.read_block(2, ["@x"])
    assert info.value.detail == "block 2, column '@x', strings, data stream: checksum mismatch"
    reader = SegmentReader(segment)
    with pytest.raises(CorruptSegment):
        reader.read_all()
    assert reader.might_contain_token(2, "@mt", "cache")


def test_a_short_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "short.seg"
    path.write_bytes(MAGIC)
    with pytest.raises(CorruptSegment, match="too short"):
        SegmentReader(path)
