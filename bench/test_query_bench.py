"""Micro-benchmarks of seqfast's query paths (pytest-benchmark): the eight queries of
``bench/query.py`` on a small store (50,000 generated events, every one in a segment).

    ci/bench.sh micro -k query          # or: python3 -m pytest bench/test_query_bench.py

These time seqfast alone, for tracking changes between commits; the comparison with chDB and
DuckDB on 1M/10M events is ``bench/query.py``.  Each benchmark also checks that its answer is
plausible, so a fast wrong answer does not pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import corpus
import pytest
import query

EVENTS = 50_000


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    seqfast = query._import_seqfast()
    base: Path = tmp_path_factory.mktemp("query-bench")
    path = corpus.corpus_path(EVENTS, 1, base)
    facts = query.corpus_facts(path, base)
    params = query.Params(trace_id=facts["trace_id"], start=facts["start"], end=facts["end"])
    specs = {s.key: s for s in query.build_queries(params)}
    with seqfast.open(str(base / "store")) as store:
        store.ingest_clef(path.read_bytes())
    engine = query.SeqfastEngine(str(base / "store"), params)
    try:
        yield engine, {"specs": specs, "facts": facts}
    finally:
        engine.close()


def _answer(setup: tuple[Any, dict[str, Any]], key: str, benchmark: Any) -> Any:
    engine, info = setup
    spec = info["specs"][key]
    raw = benchmark(engine.run, spec, 0)
    return engine.normalise(spec, raw)


def test_q1_count_by_level(setup: tuple[Any, dict[str, Any]], benchmark: Any) -> None:
    answer = _answer(setup, "Q1", benchmark)
    assert sum(answer.values()) == EVENTS
    assert "Information" in answer


def test_q2_filtered_count(setup: tuple[Any, dict[str, Any]], benchmark: Any) -> None:
    assert 0 < _answer(setup, "Q2", benchmark) < EVENTS


def test_q3_template_like(setup: tuple[Any, dict[str, Any]], benchmark: Any) -> None:
    assert 0 < _answer(setup, "Q3", benchmark) < EVENTS


def test_q4_text_search(setup: tuple[Any, dict[str, Any]], benchmark: Any) -> None:
    assert _answer(setup, "Q4", benchmark) == setup[1]["facts"]["q4_text_timeout"]


def test_q5_count_per_minute(setup: tuple[Any, dict[str, Any]], benchmark: Any) -> None:
    assert sum(_answer(setup, "Q5", benchmark).values()) == EVENTS


def test_q6_percentile_by_path(setup: tuple[Any, dict[str, Any]], benchmark: Any) -> None:
    assert len(_answer(setup, "Q6", benchmark)) > 100


def test_q7_trace_needle(setup: tuple[Any, dict[str, Any]], benchmark: Any) -> None:
    assert len(_answer(setup, "Q7", benchmark)) >= 1


def test_q8_latest_errors(setup: tuple[Any, dict[str, Any]], benchmark: Any) -> None:
    assert len(_answer(setup, "Q8", benchmark)) == 50
