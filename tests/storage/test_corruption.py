"""Damaged files give the documented errors: never a crash, never wrong events."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import seqfast
from seqfast.errors import CorruptLog, CorruptSegment


def batch(b: int, n: int = 50) -> bytes:
    return b"".join(
        orjson.dumps({"@t": f"2024-01-0{b + 1}T00:00:{i % 60:02d}Z", "B": b, "I": i, "S": "s" * i})
        + b"\n"
        for i in range(n)
    )


def ingest_then_die(path: Path, batches: int) -> None:
    """Ingests in a child process that exits without closing: the log is not yet trimmed."""
    code = (
        "import os, sys, seqfast\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_corruption import batch\n"
        f"store = seqfast.open({str(path)!r})\n"
        f"for b in range({batches}):\n"
        "    store.ingest_clef(batch(b))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_torn_log_tail_is_truncated(tmp_path: Path) -> None:
    ingest_then_die(tmp_path, 3)
    (log_file,) = (tmp_path / "wal").glob("*.log")
    data = log_file.read_bytes()
    log_file.write_bytes(data[:-10])  # the last record was being written when the power went
    with seqfast.open(tmp_path) as store:
        assert sorted({e["B"] for e in store.events(limit=1000)}) == [0, 1]
        store.ingest_clef(batch(5))
    with seqfast.open(tmp_path) as store:
        assert sorted({e["B"] for e in store.events(limit=1000)}) == [0, 1, 5]


def test_bad_checksum_inside_the_log_refuses_to_open(tmp_path: Path) -> None:
    ingest_then_die(tmp_path, 3)
    (log_file,) = (tmp_path / "wal").glob("*.log")
    data = bytearray(log_file.read_bytes())
    data[len(data) // 2] ^= 0x40
    log_file.write_bytes(bytes(data))
    with pytest.raises(CorruptLog) as info:
        seqfast.open(tmp_path)
    assert info.value.path == str(log_file)
    assert 0 < info.value.offset < len(data)
    assert str(log_file) in str(info.value)


def test_a_corrupt_segment_is_named_and_the_others_stay_readable(tmp_path: Path) -> None:
    ids = []
    with seqfast.open(tmp_path) as store:
        for b in range(3):
            store.ingest_clef(batch(b))
            store.flush()
            ids.append(next(iter(store.events(limit=1)))["@id"])
    segments = sorted((tmp_path / "segments").glob("*.seg"))
    assert len(segments) == 3
    victim = segments[1]
    data = bytearray(victim.read_bytes())
    data[18] ^= 0xFF  # inside the first stream: the timestamps of block 0 (native/FORMAT.md)
    victim.write_bytes(bytes(data))
    with seqfast.open(tmp_path) as store:
        with pytest.raises(CorruptSegment) as info:
            list(store.events(limit=1000))
        assert info.value.path == str(victim)
        assert store.get(ids[0])["B"] == 0
        assert store.get(ids[2])["B"] == 2
        with pytest.raises(CorruptSegment):
            store.get(ids[1])


@pytest.mark.parametrize("seed", range(40))
def test_random_damage_to_a_segment_never_returns_wrong_events(tmp_path: Path, seed: int) -> None:
    with seqfast.open(tmp_path) as store:
        store.ingest_clef(batch(0, 400))
        store.flush()
        good = list(store.events(limit=1000))
    (victim,) = (tmp_path / "segments").glob("*.seg")
    rng = random.Random(seed)
    data = bytearray(victim.read_bytes())
    if seed % 3 == 0:
        data = data[: rng.randrange(len(data))]
    else:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    victim.write_bytes(bytes(data))
    with seqfast.open(tmp_path) as store:
        try:
            got = list(store.events(limit=1000))
        except CorruptSegment as exc:
            assert exc.path == str(victim)
        else:
            assert got == good
