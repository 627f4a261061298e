"""Signal bitmap sidecars (native/FORMAT.md, "Signal bitmaps"): the golden file, a sidecar that
is damaged or built from another segment or filter is never trusted (it is built again), and
sidecars of segments or filters that are gone are swept."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import seqfast
from seqfast.storage.signal_index import (
    BadSidecar,
    SegmentIdentity,
    decode,
    encode,
    parse_sidecar_name,
    sidecar_name,
)
from seqfast.storage.store import Store

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v1" / "signal-index-v1.sig"
KEY = "0123456789abcdef0123456789abcdef"
IDENTITY = SegmentIdentity(1, 0xA7, 123_456, 0x0123456789ABCDEF, (10, 3, 16))


def golden_bits() -> list[np.ndarray]:
    rows = [
        [True, False, True, True, False, False, False, False, True, True],
        [False, False, True],
        [i % 3 == 0 for i in range(16)],
    ]
    return [np.packbits(np.array(r, dtype=bool)) for r in rows]


def test_golden_file() -> None:
    """The committed v1 file decodes to the fixed bits, and encoding them today gives it back
    byte for byte (a change here is a format change: a new version)."""
    data = GOLDEN.read_bytes()
    assert encode(IDENTITY, KEY, golden_bits()) == data
    assert [b.tolist() for b in decode(data, IDENTITY, KEY)] == [b.tolist() for b in golden_bits()]


@pytest.mark.parametrize(
    "identity, key",
    [
        (SegmentIdentity(2, 0xA7, 123_456, 0x0123456789ABCDEF, (10, 3, 16)), KEY),
        (SegmentIdentity(1, 0xA7, 123_457, 0x0123456789ABCDEF, (10, 3, 16)), KEY),
        (SegmentIdentity(1, 0xA7, 123_456, 0x0123456789ABCDEE, (10, 3, 16)), KEY),
        (SegmentIdentity(1, 0xA7, 123_456, 0x0123456789ABCDEF, (11, 2, 16)), KEY),
        (IDENTITY, "f" * 32),
    ],
)
def test_a_sidecar_of_another_segment_or_filter_is_refused(
    identity: SegmentIdentity, key: str
) -> None:
    with pytest.raises(BadSidecar):
        decode(GOLDEN.read_bytes(), identity, key)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_damage_is_refused(data: st.DataObject) -> None:
    good = bytearray(GOLDEN.read_bytes())
    how = data.draw(st.sampled_from(["flip", "truncate", "extend"]))
    if how == "flip":
        at = data.draw(st.integers(0, len(good) - 1))
        good[at] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "truncate":
        good = good[: data.draw(st.integers(0, len(good) - 1))]
    else:
        good += bytes(data.draw(st.integers(1, 9)))
    with pytest.raises(BadSidecar):
        decode(bytes(good), IDENTITY, KEY)


def test_names() -> None:
    name = sidecar_name(1, 0xA7, KEY)
    assert name == f"0000000000000001-00000000000000a7.{KEY}.sig"
    assert parse_sidecar_name(name) == ("0000000000000001-00000000000000a7", KEY)
    assert parse_sidecar_name("0000000000000001-00000000000000a7.seg") is None


# --- in a store -----------------------------------------------------------------------------

SIGNAL = {"signal-1": ["@Level = 'Error'"]}


def fill(path: Path) -> None:
    with seqfast.open(path, flush_rows=200, block_rows=50) as store:
        for part in range(3):
            store.ingest(
                {
                    "@t": f"2024-01-01T00:00:{i % 60:02d}Z",
                    "@mt": "m {N}",
                    "@l": "Error" if i % 5 == 0 else "Information",
                    "N": i + 1000 * part,
                }
                for i in range(200)
            )
            store.flush()


def sidecars(path: Path) -> list[Path]:
    return sorted((path / "segments").glob("*.sig"))


def errors(store: Store) -> list[str]:
    return [
        e["@id"] for e in store.search(None, extra_filters=SIGNAL["signal-1"], limit=1000).events
    ]


def test_a_damaged_or_swapped_sidecar_is_built_again(tmp_path: Path) -> None:
    fill(tmp_path)
    with seqfast.open(tmp_path) as store:
        expected = errors(store)
        store.set_saved_filters(SIGNAL)
        assert store.wait_signal_bitmaps(30)
        assert store._signals.built == 3
    first, second, third = sidecars(tmp_path)
    # Damaged: one byte flipped.  Swapped: another segment's (valid) sidecar under its name.
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.write_bytes(bytes(data))
    second.write_bytes(third.read_bytes())
    with seqfast.open(tmp_path) as store:
        store.set_saved_filters(SIGNAL)
        assert store.wait_signal_bitmaps(30)
        assert store._signals.built == 2  # the two bad ones, never the good one
        assert errors(store) == expected
    with seqfast.open(tmp_path) as store:
        store.set_saved_filters(SIGNAL)
        assert store.wait_signal_bitmaps(30)
        assert store._signals.built == 0  # rewritten correctly last time


def test_sidecars_of_gone_segments_and_filters_are_swept(tmp_path: Path) -> None:
    fill(tmp_path)
    segments = tmp_path / "segments"
    orphan = segments / sidecar_name(0xFFFF, 0xFFFFF, KEY)
    orphan.write_bytes(b"left behind")
    unsaved = segments / f"0000000000000001-0000000000000001.{KEY}.sig"
    unsaved.write_bytes(b"a filter no longer saved")
    with seqfast.open(tmp_path) as store:
        assert not orphan.exists()  # swept at open: no such segment
        assert unsaved.exists()  # kept until the store knows the saved filters
        store.set_saved_filters(SIGNAL)
        assert store.wait_signal_bitmaps(30)
        for _ in range(200):
            if not unsaved.exists():
                break
            time.sleep(0.05)
        assert not unsaved.exists()
        assert len(sidecars(tmp_path)) == 3
        # Dropping a segment's events removes its sidecar with it.
        store.delete_events("N < 1000")
        assert store.wait_signal_bitmaps(30)
        assert len(sidecars(tmp_path)) == 2
