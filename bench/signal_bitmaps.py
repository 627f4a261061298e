"""Saved-signal bitmaps: the same searches and queries with and without them.

    python3 bench/signal_bitmaps.py [--events 1000000] [--runs 9] [--hot] [--json OUT]

Uses the seqfast store that ``bench/query.py`` builds for the corpus (run it first, e.g.
``python3 bench/query.py --quick --prepare-only``), copied twice into a temporary directory:
one copy is told the signals (``Store.set_saved_filters``) and builds their bitmaps before
anything is timed; the other has none, so it evaluates the filters.  Each run times the same
call on both, alternately (so noise falls on both alike), with the column cache cleared before
the call (``--hot``: kept); answers must agree.  Medians in ms.  chDB and DuckDB have no
signals: the baseline here is seqfast evaluating the same filters (the anchors' figures for
these filters are in bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import seqfast
from seqfast.storage.store import Store

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from corpus import corpus_path  # noqa: E402

SIGNALS: dict[str, list[str]] = {
    "web 5xx": ["Application = 'web'", "StatusCode >= 500"],
    "text timeout": ['"timeout"'],
    "fatal": ["@Level = 'Fatal'"],
}
CALLS: dict[str, Callable[[Store, list[str]], Any]] = {
    "count by RequestPath": lambda store, filters: (
        store.query("select count(*) from stream group by RequestPath", extra_filters=filters).rows
    ),
    "latest 50 events": lambda store, filters: [
        e["@id"] for e in store.search(None, extra_filters=filters, limit=50).events
    ],
}


def _timed(
    store: Store, call: Callable[[Store, list[str]], Any], filters: list[str], hot: bool
) -> tuple[float, Any]:
    if not hot:
        store._query_state.cache.clear()
    started = time.perf_counter()
    answer = call(store, filters)
    return (time.perf_counter() - started) * 1000, answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--hot", action="store_true", help="keep the column cache between runs")
    parser.add_argument("--json", type=Path, metavar="OUT")
    args = parser.parse_args()
    source = BENCH / ".data" / "seqfast" / corpus_path(args.events, args.seed).stem / "store"
    if not (source.parent / "manifest.json").exists():
        print(f"no store at {source}: run bench/query.py first", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seqfast-signal-bench-") as tmp:
        for name in ("plain", "signals"):
            shutil.copytree(source, Path(tmp) / name)
        with seqfast.open(Path(tmp) / "plain") as plain, seqfast.open(Path(tmp) / "signals") as sig:
            started = time.perf_counter()
            sig.set_saved_filters(SIGNALS)
            if not sig.wait_signal_bitmaps(600):
                print("the bitmaps were not built within 600 s", file=sys.stderr)
                return 1
            built = time.perf_counter() - started
            print(f"bitmaps of {len(SIGNALS)} signals built in {built:.2f} s")
            print("| signal | call | without bitmaps | with bitmaps | ratio |")
            print("|---|---|---:|---:|---:|")
            for signal, filters in SIGNALS.items():
                for label, call in CALLS.items():
                    without: list[float] = []
                    with_bits: list[float] = []
                    for i in range(args.runs + 1):  # the first round warms up, untimed
                        a, answer_a = _timed(plain, call, filters, args.hot)
                        b, answer_b = _timed(sig, call, filters, args.hot)
                        if answer_a != answer_b:
                            print(f"MISMATCH: {signal} / {label}", file=sys.stderr)
                            return 1
                        if i:
                            without.append(a)
                            with_bits.append(b)
                    off, on = statistics.median(without), statistics.median(with_bits)
                    rows.append({"signal": signal, "call": label, "without_ms": off, "with_ms": on})
                    print(f"| {signal} | {label} | {off:.1f} | {on:.1f} | ×{on / off:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"build_s": round(built, 2), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
