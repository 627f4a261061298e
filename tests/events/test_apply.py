"""API-key settings applied to batches, and carried through the commit log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import seqfast
from seqfast.events.apply import KeySettings, apply
from seqfast.events.clef import shred
from seqfast.storage.batch import to_events

LINES = (
    b"".join(
        orjson.dumps({"@t": "2024-01-01T00:00:00Z", "@l": level, "Own": i, "App": "mine"}) + b"\n"
        for i, level in enumerate(["Debug", "Information", "Warning", "error", "Fatal", "Weird"])
    )
    + b'{"@t":"2024-01-01T00:00:00Z","Own":6}\n'
)


def test_minimum_level_drops_lower_events_and_keeps_unknown_levels() -> None:
    events = to_events(apply(shred(LINES), KeySettings(minimum_level="Warning")))
    assert [e["Own"] for e in events] == [2, 3, 4, 5]


def test_applied_properties_override_the_events_own() -> None:
    settings = KeySettings(
        properties={"App": "key", "Big": 2**70, "@x": [1, {"a": None}], "F": 1.5}
    )
    events = to_events(apply(shred(LINES), settings))
    assert all(e["App"] == "key" and e["Big"] == 2**70 for e in events)
    assert all(e["@@x"] == [1, {"a": None}] and e["F"] == 1.5 for e in events)
    assert [e["Own"] for e in events] == list(range(7))


def test_unknown_minimum_level_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a known level"):
        apply(shred(LINES), KeySettings(minimum_level="Loud"))


def test_settings_survive_a_crash_through_the_commit_log(tmp_path: Path) -> None:
    code = (
        "import os, sys, seqfast\n"
        "from seqfast.events.apply import KeySettings\n"
        f"store = seqfast.open({str(tmp_path)!r})\n"
        f"n = store.ingest_clef({LINES!r}, KeySettings('Error', {{'App': 'key', 'B': 2**70}}))\n"
        "assert n == 3, n\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with seqfast.open(tmp_path) as store:
        events = list(store.events())
    assert sorted(e["Own"] for e in events) == [3, 4, 5]
    assert {e["App"] for e in events} == {"key"}
    assert {e["B"] for e in events} == {2**70}
