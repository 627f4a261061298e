"""Crash safety: a child process ingesting in a loop is killed with SIGKILL at random moments.

After every kill the store is reopened: every batch whose `ingest_clef` call returned is present
exactly once, a batch is never present in part, and nothing that was not sent appears.  The
child uses tiny flush and merge thresholds so that kills also land inside segment writes,
commit-log trims and merges.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import seqfast

BATCH = 25
CHILD = r"""
import sys, orjson, seqfast
from seqfast.storage.merge_policy import MergePolicy
path, first = sys.argv[1], int(sys.argv[2])
policy = MergePolicy(fan_in=3, base_rows=50, max_rows=2000)
store = seqfast.open(path, flush_rows=120, merge_policy=policy)
b = first
while True:
    payload = b"".join(
        orjson.dumps({"@t": "2024-01-01T00:00:%02dZ" % (i % 60), "@mt": "Event {B} {I}",
                      "B": b, "I": i, "Pad": "x" * (i * 7)}) + b"\n"
        for i in range(%(batch)d)
    )
    store.ingest_clef(payload)
    sys.stdout.write(f"{b}\n")
    sys.stdout.flush()
    b += 1
""".replace("%(batch)d", str(BATCH))


def test_sigkill_during_ingestion_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    data = tmp_path / "data"
    acked: set[int] = set()
    seen: set[int] = set()
    next_batch = 0
    for _kill in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(data), str(next_batch)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        # Wait for the first acknowledgement, then let it run a random while before the kill.
        first = child.stdout.readline()
        assert first, "the child exited before acknowledging anything"
        acked.add(int(first))
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        acked.update(int(line) for line in out.split())
        sent_upto = max(acked) + 1  # a batch after the last ack may have been in flight

        with seqfast.open(data) as store:
            counts = Counter(e["B"] for e in store.events(limit=10_000_000))
        for b in acked:
            assert counts[b] == BATCH, f"acknowledged batch {b} has {counts[b]} of {BATCH} events"
        for b, count in counts.items():
            assert count == BATCH, f"batch {b} is present in part ({count} events)"
        assert set(counts) <= set(range(sent_upto + 1)), "events that were never sent"
        # What one recovery found stays found in every later one.
        assert seen <= set(counts)
        seen = set(counts)
        next_batch = sent_upto + 1
    assert len(acked) > 40
