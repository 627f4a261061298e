"""Crash safety of deletion: a child process is SIGKILLed at every file-system step of a
deletion (each fsync, rename and unlink, just before it and just after it).

The deletion covers part of the first segment (a rewrite), three whole segments (drops) and
part of the events still in the head (flushed, then rewritten as the newest segment).  After
each kill the store is reopened and must hold every event outside the range exactly once, and
from each segment's share of the range either all of its events or none (a segment is replaced
atomically).  Running the deletion again then completes it, and a further restart brings
nothing back.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

import seqfast
from seqfast.storage.ids import format_ticks

SECOND = 10_000_000
BASE = 1_700_000_000 * SECOND
LOW, HIGH = 50, 420  # the deleted range, in event numbers (= seconds)
HEAD = range(400, 430)  # ingested by the child, still in the head when it deletes

CHILD = r"""
import os, signal, sys
import orjson, seqfast
path, kill_at, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
low, high = sys.argv[4], sys.argv[5]
calls = 0
armed = False

def hook(name):
    real = getattr(os, name)
    def hooked(*args, **kwargs):
        global calls
        if armed:
            calls += 1
            if calls == kill_at and mode == "before":
                os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if armed and calls == kill_at and mode == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(os, name, hooked)

for name in ("fsync", "replace", "rename", "unlink"):
    hook(name)
store = seqfast.open(path, flush_rows=1000, block_rows=16)
head = [orjson.loads(line) for line in sys.stdin.buffer.read().splitlines()]
store.ingest(head)
armed = True
store.delete_events(None, low, high)
armed = False
print("complete", calls)
os._exit(0)
"""


def stamp(second: int) -> str:
    return format_ticks(BASE + second * SECOND)


def event(n: int) -> dict[str, object]:
    return {"@t": stamp(n), "@mt": "Event {N}", "N": n, "Pad": "x" * (n % 13)}


def group(n: int) -> int:
    """Which segment event `n` is in: 0-3 are flushed segments of 100, 4 the child's head."""
    return min(n // 100, 4)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("template") / "data"
    with seqfast.open(data, flush_rows=100, block_rows=16) as store:
        for start in range(0, 400, 50):
            store.ingest([event(n) for n in range(start, start + 50)])
            store.wait_idle()
        assert store.stats()["segments"] == 4
    return data


def run_child(data: Path, kill_at: int, mode: str) -> tuple[bool, int]:
    head = b"".join(orjson.dumps(event(n)) + b"\n" for n in HEAD)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(kill_at), mode, stamp(LOW), stamp(HIGH)],
        input=head,
        capture_output=True,
        timeout=120,
    )
    if done.returncode == 0:
        words = done.stdout.decode().split()
        assert words[0] == "complete", done.stdout
        return True, int(words[1])
    assert done.returncode == -9, done.stderr.decode()
    return False, 0


def stored(data: Path) -> Counter[int]:
    with seqfast.open(data) as store:
        return Counter(int(e["N"]) for e in store.events(limit=1_000_000))


def check_after_crash(data: Path, where: str) -> None:
    counts = stored(data)
    assert max(counts.values(), default=1) == 1, f"{where}: an event is present twice"
    everything = set(range(400)) | set(HEAD)
    outside = {n for n in everything if not LOW <= n < HIGH}
    missing = outside - set(counts)
    assert not missing, f"{where}: events outside the range were lost: {sorted(missing)[:10]}"
    assert set(counts) <= everything, f"{where}: events that were never written"
    for g in range(5):
        share = {n for n in everything if LOW <= n < HIGH and group(n) == g}
        present = share & set(counts)
        assert present in (set(), share), (
            f"{where}: segment {g} holds {len(present)} of its {len(share)} deleted events"
        )
    # Finishing the deletion removes the rest, and a restart brings nothing back.
    with seqfast.open(data) as store:
        store.delete_events(None, stamp(LOW), stamp(HIGH))
    assert set(stored(data)) == outside, f"{where}: the deletion did not complete"


def test_a_deletion_killed_at_any_step_leaves_each_segment_whole(
    template: Path, tmp_path: Path
) -> None:
    steps = 0
    for mode in ("before", "after"):
        kill_at = 1
        while True:
            data = tmp_path / f"{mode}-{kill_at}"
            shutil.copytree(template, data)
            completed, calls = run_child(data, kill_at, mode)
            if completed:
                assert calls >= 10, "the deletion made fewer file-system calls than expected"
                check_after_crash(data, f"no kill ({calls} calls)")
                break
            check_after_crash(data, f"killed {mode} call {kill_at}")
            steps += 1
            shutil.rmtree(data)
            kill_at += 1
    assert steps >= 20
