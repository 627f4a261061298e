"""Micro benchmarks of the expression engine on one 1,000,000-row batch of the bench corpus's
shape (pytest-benchmark; not part of the test suite):

    python3 -m pytest bench/test_kernels_bench.py --benchmark-only -p no:cacheprovider

The batch is the seeded corpus (`bench/corpus.py`, 1M events, seed 1) shredded into one
`Batch`; the first run makes it (about a minute) and keeps it in `bench/.data/`.  Execution
proper works on 65,536-row blocks; a single batch measures the engine's own cost per row.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seqfast import _native
from seqfast.events.clef import shred
from seqfast.query import ast as A
from seqfast.query import vector
from seqfast.query.parse import parse_filter
from seqfast.storage.batch import Batch, concat

pytest.importorskip("pytest_benchmark")

_EVENTS = 1_000_000
_CACHE = Path(__file__).resolve().parent / ".data" / "kernels-batch-1m.pickle"


def _load() -> Batch:
    if _CACHE.exists():
        batch: Batch = pickle.loads(_CACHE.read_bytes())
        return batch
    from corpus import corpus_path  # bench/corpus.py, on sys.path when run from bench/

    data = Path(corpus_path(_EVENTS, 1)).read_bytes()
    parts: list[Batch] = []
    start = 0
    step = max(1, len(data) // 32)
    while start < len(data):
        end = data.find(b"\n", min(start + step, len(data) - 1))
        end = len(data) if end < 0 else end + 1
        parts.append(shred(data[start:end]))
        start = end
    batch = concat(parts)
    _CACHE.parent.mkdir(parents=True, exist_ok=True)
    _CACHE.write_bytes(pickle.dumps(batch, protocol=5))
    return batch


@pytest.fixture(scope="module")
def batch() -> Batch:
    return _load()


def _run(benchmark: Any, fn: Callable[[], Any]) -> Any:
    return benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)


def test_level_group_codes(benchmark: Any, batch: Batch) -> None:
    node = A.BuiltIn("Level")
    codes, keys = _run(benchmark, lambda: vector.evaluate(node, batch).group_codes())
    assert "Information" in keys and codes.shape == (batch.n,)


def test_status_code_at_least_500(benchmark: Any, batch: Batch) -> None:
    tree = parse_filter("StatusCode >= 500")
    assert _run(benchmark, lambda: int(vector.filter_mask(tree, batch).sum())) > 0


def test_status_code_group_codes(benchmark: Any, batch: Batch) -> None:
    node = A.Property("StatusCode")
    _run(benchmark, lambda: vector.evaluate(node, batch).group_codes())


def test_level_equals(benchmark: Any, batch: Batch) -> None:
    tree = parse_filter("@Level = 'Error'")
    assert _run(benchmark, lambda: int(vector.filter_mask(tree, batch).sum())) > 0


def test_template_like_ci(benchmark: Any, batch: Batch) -> None:
    tree = parse_filter("@MessageTemplate like '%timeout%' ci")
    assert _run(benchmark, lambda: int(vector.filter_mask(tree, batch).sum())) > 0


def test_text_search_timeout(benchmark: Any, batch: Batch) -> None:
    tree = parse_filter('"timeout"')
    assert _run(benchmark, lambda: int(vector.filter_mask(tree, batch).sum())) > 0


def test_kernel_ci_contains_every_row(benchmark: Any, batch: Batch) -> None:
    # The per-row kernel alone: every event's template text (80 MB), no dictionary.
    col = batch.columns["@mt"]
    offsets, data = _native.gather_strings(
        col.str_offsets, col.str_data, np.arange(col.str_offsets.size - 1, dtype=np.int64)
    )
    out = _run(benchmark, lambda: _native.match_strings(offsets, data, b"", b"TIMEOUT", 1, True))
    assert int((out == 1).sum()) > 0
