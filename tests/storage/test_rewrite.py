"""Segment rewrites and drops (seqfast/storage/rewrite.py): exactly the kept rows, in order, in
full blocks; and the empty segment that keeps a dropped newest segment's place in the log."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqfast
from seqfast.events.clef import encode_events, shred
from seqfast.storage import batch as batches
from seqfast.storage.rewrite import (
    drop_segment,
    generation,
    next_generation,
    resolve_rewrites,
    rewrite_segment,
)
from seqfast.storage.segment import SegmentReader, write_segment


def make_batch(n: int) -> batches.Batch:
    events = [
        {"@t": f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z", "@mt": "E {N}", "N": i}
        | ({"Odd": "yes"} if i % 2 else {})
        for i in range(n)
    ]
    return batches.sort_by_id(shred(encode_events(events)))  # seq 0..n-1, from the shredder


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), n=st.integers(1, 200), block_rows=st.integers(1, 40))
def test_a_rewrite_keeps_exactly_the_unmarked_rows(
    tmp_path: Path, data: st.DataObject, n: int, block_rows: int
) -> None:
    path = tmp_path / f"{n:016x}-{block_rows:016x}.seg"
    original = make_batch(n)
    write_segment(path, original, block_rows=block_rows)
    with SegmentReader(path) as reader:
        masks: list[np.ndarray | None] = []
        for block in reader.blocks:
            flags = data.draw(st.lists(st.booleans(), min_size=block.rows, max_size=block.rows))
            masks.append(np.array(flags, dtype=bool) if any(flags) else None)
        removed = np.concatenate(
            [
                np.zeros(block.rows, dtype=bool) if mask is None else mask
                for mask, block in zip(masks, reader.blocks, strict=True)
            ]
        )
        expected_rows = np.flatnonzero(~removed)
        new_path = rewrite_segment(reader, masks, block_rows=block_rows, level=1)
        # The reader opened before keeps reading the old file, now unlinked.
        assert reader.read_all().n == n
    assert new_path == next_generation(path) and not path.exists()
    expected = batches.take(original, expected_rows)
    with SegmentReader(new_path) as rewritten:
        assert rewritten.rows == len(expected_rows)
        assert all(b.rows == block_rows for b in rewritten.blocks[:-1])
        assert batches.to_events(rewritten.read_all()) == batches.to_events(expected)
    assert not new_path.with_name(new_path.name + ".tmp").exists()


def test_dropping_with_keep_place_leaves_an_empty_segment(tmp_path: Path) -> None:
    path = tmp_path / "0000000000000001-0000000000000004.seg"
    write_segment(path, make_batch(10))
    empty = drop_segment(path, keep_place=True, block_rows=16, level=1)
    assert empty == tmp_path / "0000000000000001-0000000000000004.r1.seg"
    assert not path.exists()
    with SegmentReader(empty) as reader:
        assert reader.rows == 0 and reader.blocks == []
    assert drop_segment(empty, keep_place=False, block_rows=16, level=1) is None
    assert list(tmp_path.iterdir()) == []


def write_rows(path: Path, rows: int) -> None:
    write_segment(path, make_batch(rows))


def test_open_keeps_the_newest_generation_under_the_plain_name(tmp_path: Path) -> None:
    stem = "0000000000000001-0000000000000004"
    other = "0000000000000005-0000000000000009"
    # A crash after a rewrite was published, before the old file was unlinked (stem), and
    # after the older versions were unlinked, before the rename back (other).
    write_rows(tmp_path / f"{stem}.seg", 10)
    write_rows(tmp_path / f"{stem}.r1.seg", 7)
    write_rows(tmp_path / f"{stem}.r2.seg", 3)
    write_rows(tmp_path / f"{other}.r4.seg", 5)
    (tmp_path / f"{stem}.r3.seg.tmp").write_bytes(b"torn")  # the store deletes these itself
    resolve_rewrites(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{stem}.r3.seg.tmp",
        f"{stem}.seg",
        f"{other}.seg",
    ]
    with SegmentReader(tmp_path / f"{stem}.seg") as reader:
        assert reader.rows == 3
    with SegmentReader(tmp_path / f"{other}.seg") as reader:
        assert reader.rows == 5
    resolve_rewrites(tmp_path)  # nothing left to do
    assert len(list(tmp_path.iterdir())) == 3


def test_generation_names() -> None:
    plain = Path("0000000000000001-0000000000000004.seg")
    assert generation(plain) == ("0000000000000001-0000000000000004", 0)
    assert next_generation(plain).name == "0000000000000001-0000000000000004.r1.seg"
    assert generation(next_generation(next_generation(plain))) == (
        "0000000000000001-0000000000000004",
        2,
    )
    for name in ("x.seg", "0000000000000001-0000000000000004.r0.seg", "a.seg.tmp"):
        assert generation(Path(name)) is None


def test_the_empty_newest_segment_stops_the_log_replaying_removed_events(tmp_path: Path) -> None:
    # A crash between publishing a segment and trimming the log leaves the log holding the
    # segment's records.  Simulated: the log as it was before the flush is put back after the
    # deletion.  The empty segment's name still covers those records, so they stay removed.
    data = tmp_path / "data"
    saved = tmp_path / "wal-before-flush"
    with seqfast.open(data, flush_rows=1000) as store:
        store.ingest([{"@t": "2024-01-01T00:00:00Z", "@mt": "E {N}", "N": n} for n in range(30)])
        shutil.copytree(data / "wal", saved)
        assert store.delete_events() == 30
    shutil.rmtree(data / "wal")
    shutil.copytree(saved, data / "wal")
    with seqfast.open(data) as store:
        assert list(store.events()) == []
    # Without the empty segment the log would bring them back: the test means something.
    for segment in (data / "segments").iterdir():
        segment.unlink()
    shutil.rmtree(data / "wal")
    shutil.copytree(saved, data / "wal")
    with seqfast.open(data) as store:
        assert len(list(store.events())) == 30
