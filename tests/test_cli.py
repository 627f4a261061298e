"""The command line as a user runs it: real processes, exit statuses and one-sentence errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

import seqfast


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "seqfast", *args], input=stdin, capture_output=True, timeout=60
    )


def test_ingest_events_and_stats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    source = tmp_path / "events.clef"
    source.write_bytes(
        b"".join(
            orjson.dumps({"@t": f"2024-01-01T00:00:{i:02d}Z", "@mt": "Tick {I}", "I": i}) + b"\n"
            for i in range(30)
        )
    )
    done = run("ingest", "--data", str(data), str(source))
    assert done.returncode == 0, done.stderr
    assert b"ingested 30 events" in done.stderr
    assert (
        run("ingest", "--data", str(data), "-", stdin=b'{"@t":"2024-01-02T00:00:00Z"}').returncode
        == 0
    )

    listed = run("events", "--data", str(data), "--limit", "3")
    events = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert [e.get("I") for e in events] == [None, 29, 28]

    stats = orjson.loads(run("stats", "--data", str(data)).stdout)
    assert stats["events"] == 31


def test_invalid_events_exit_1_with_a_sentence(tmp_path: Path) -> None:
    source = tmp_path / "bad.clef"
    source.write_bytes(b'{"@t":"2024-01-01T00:00:00Z"}\n{"@t": nope}\n')
    done = run("ingest", "--data", str(tmp_path / "data"), str(source))
    assert done.returncode == 1
    assert done.stderr.decode().startswith("seqfast: line 2: invalid JSON")
    assert b"Traceback" not in done.stderr


def test_missing_file_and_locked_directory_exit_1(tmp_path: Path) -> None:
    done = run("ingest", "--data", str(tmp_path / "data"), str(tmp_path / "absent.clef"))
    assert done.returncode == 1 and b"No such file" in done.stderr
    with seqfast.open(tmp_path / "data"):
        done = run("stats", "--data", str(tmp_path / "data"))
    assert done.returncode == 1
    assert b"in use by another process" in done.stderr and b"Traceback" not in done.stderr
