"""The planner: which prunes a filter yields, and that a pruned block never holds a match.

The exactness test writes real segments (tiny blocks) and checks, for many filters, that every
block holding an event the reference evaluator selects is one the planner keeps.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqfast.events.clef import encode_events, shred
from seqfast.query import parse_filter
from seqfast.query.plan import (
    AllOf,
    AnyOf,
    NumberBound,
    TimeBound,
    Tokens,
    derive,
    may_match,
)
from seqfast.storage import batch as batches
from seqfast.storage.ids import UNIX_EPOCH_DOTNET_TICKS
from seqfast.storage.segment import ColumnStats, SegmentReader, write_segment
from seqfast.testing.reference_eval import matches


def prune_of(text: str) -> Any:
    return derive(parse_filter(text))


def test_numeric_comparisons_become_bounds_either_side() -> None:
    assert prune_of("StatusCode >= 500") == NumberBound("StatusCode", ">=", Decimal(500))
    assert prune_of("500 <= StatusCode") == NumberBound("StatusCode", ">=", Decimal(500))
    assert prune_of("Elapsed < -1.5") == NumberBound("Elapsed", "<", Decimal("-1.5"))
    assert prune_of("@Properties['@x'] = 3") == NumberBound("@@x", "=", Decimal(3))


def test_conjunctions_combine_and_disjunctions_need_every_branch() -> None:
    assert prune_of("Application = 'web' and StatusCode >= 500") == AllOf(
        (Tokens("Application", "web"), NumberBound("StatusCode", ">=", Decimal(500)))
    )
    assert prune_of("A = 'x' or B > 2") == AnyOf(
        (Tokens("A", "x"), NumberBound("B", ">", Decimal(2)))
    )
    assert prune_of("A = 'x' or B <> 'y'") is None  # the second branch says nothing
    assert prune_of("A = 'x' and not B = 'y'") == Tokens("A", "x")
    assert prune_of("not A = 'x'") is None


def test_string_equality_probes_the_right_columns() -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    assert prune_of(f"@TraceId = '{trace}'") == Tokens("@tr", trace)
    assert prune_of("@MessageTemplate = 'Hi {Name}'") == AnyOf(
        (Tokens("@mt", "Hi {Name}"), Tokens("@m", "Hi {Name}"))
    )
    # Level names have many spellings (and a missing level is Information): not probed.
    assert prune_of("@Level = 'Error'") is None
    assert prune_of("@Level = 'Custom'") == Tokens("@l", "Custom")
    assert prune_of("@Message = 'x'") is None  # rendered from the template
    assert prune_of("A = 'x' ci") is None
    assert prune_of("A in ['x', 'y']") == AnyOf((Tokens("A", "x"), Tokens("A", "y")))


def test_fragments_probe_only_tokens_they_close() -> None:
    assert prune_of("A like '%timeout%'") == Tokens("A", "")
    assert prune_of("A like 'timeout%'") == Tokens("A", "")
    assert prune_of("A like 'timed out%'") == Tokens("A", "timed")
    assert prune_of("A like '%a timed out'") == Tokens("A", "timed out")
    assert prune_of("A like 'x_y z'") == Tokens("A", "z")
    assert prune_of("Contains(A, 'a b c')") == Tokens("A", "b")
    assert prune_of("StartsWith(A, 'a b')") == Tokens("A", "a")
    assert prune_of("EndsWith(A, 'a b')") == Tokens("A", "b")
    assert prune_of("Contains(A, 'a b') ci") is None
    assert prune_of('"timeout"') is None


def test_timestamp_comparisons_bound_time() -> None:
    prune = prune_of("@Timestamp >= 638000000000000000")
    assert prune == TimeBound(">=", Decimal(638000000000000000 - UNIX_EPOCH_DOTNET_TICKS))
    assert may_match(prune, None, None, 0, 638000000000000000 - UNIX_EPOCH_DOTNET_TICKS)
    assert not may_match(prune, None, None, 0, 637000000000000000 - UNIX_EPOCH_DOTNET_TICKS)


def stats(**kw: Any) -> ColumnStats:
    base: dict[str, Any] = {
        "const_tag": None,
        "int_min": None,
        "int_max": None,
        "float_min": None,
        "float_max": None,
        "float_nan": False,
        "strings": None,
    }
    base.update(kw)
    return ColumnStats(**base)


def test_min_max_skips_blocks_out_of_range() -> None:
    prune = prune_of("StatusCode >= 500")
    low = {"StatusCode": stats(int_min=200, int_max=404)}
    high = {"StatusCode": stats(int_min=200, int_max=503)}
    assert not may_match(prune, low, None, 0, 0)
    assert may_match(prune, high, None, 0, 0)
    assert not may_match(prune, {}, None, 0, 0)  # no such column: undefined, never true
    with_text = {"StatusCode": stats(int_min=200, int_max=404, strings="plain")}
    assert may_match(prune, with_text, None, 0, 0)  # a BIGINT is stored as text
    floats = {"StatusCode": stats(float_min=0.5, float_max=500.0)}
    assert may_match(prune, floats, None, 0, 0)
    assert not may_match(prune_of("StatusCode > 500"), floats, None, 0, 0)
    assert may_match(prune, None, None, 0, 0)  # the head has no statistics


def test_probes_decide_token_prunes() -> None:
    seen: list[tuple[str, str]] = []

    def probe(column: str, text: str) -> bool:
        seen.append((column, text))
        return column == "B"

    assert not may_match(prune_of("A = 'x'"), {}, probe, 0, 0)
    assert may_match(prune_of("A = 'x' or B = 'y'"), {}, probe, 0, 0)
    assert seen[0] == ("A", "x")


# --- exactness over real segments -------------------------------------------------------------

WORDS = ["web", "api", "Web", "timeout", "CommandTimeout", "time out", "a-b", "", "x y z", "é"]
FILTERS = [
    "StatusCode >= 500",
    "StatusCode = 404",
    "StatusCode < 0",
    "500 > StatusCode",
    "Elapsed > 2.5",
    "Elapsed <= -0.1",
    "Application = 'web'",
    "Application = 'Web'",
    "Application = ''",
    "Application = 'time out'",
    "Application in ['api', 'x y z']",
    "Application like '%timeout%'",
    "Application like 'time%'",
    "Application like '%out'",
    "Application like 'a_b'",
    "Contains(Application, 'ime o')",
    "StartsWith(Application, 'Command')",
    "EndsWith(Application, 'Timeout')",
    "@MessageTemplate = 'timeout'",
    "@Level = 'web'",
    "@TraceId = 'a-b'",
    "Application = 'web' and StatusCode >= 500",
    "Application = 'api' or Elapsed > 1",
    "Application = 'é' or StatusCode = 200",
]

cells = st.one_of(
    st.none(),
    st.integers(-1000, 1000),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from(WORDS),
)


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 24))):
        event: dict[str, Any] = {
            "@t": f"2026-01-01T00:00:{i:02d}Z",
            "@mt": draw(st.sampled_from(WORDS)),
        }
        for key in ("StatusCode", "Elapsed", "Application", "@l", "@tr"):
            if draw(st.booleans()):
                value = draw(cells)
                if key in ("@l", "@tr") and not isinstance(value, str):
                    continue
                event[key] = value
        out.append(event)
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=events())
def test_no_block_holding_a_match_is_skipped(tmp_path: Path, data: list[dict[str, Any]]) -> None:
    path = tmp_path / "s.seg"
    batch = batches.sort_by_id(shred(encode_events(data)))
    batch.seq[:] = range(batch.n)
    write_segment(path, batch, block_rows=3)
    with SegmentReader(path) as reader:
        for text in FILTERS:
            filt = parse_filter(text)
            prune = derive(filt)
            for meta in reader.blocks:
                block = reader.read_block(meta.index)
                found = any(matches(filt, e) for e in batches.to_events(block))
                if not found:
                    continue

                def probe(column: str, token: str, index: int = meta.index) -> bool:
                    return reader.might_contain_token(index, column, token)

                kept = may_match(prune, meta.columns, probe, meta.min_ts, meta.max_ts)
                assert kept, (text, batches.to_events(block))


@pytest.mark.parametrize("text", ["StatusCode >= 500", "@TraceId = 'abc'"])
def test_pruning_actually_skips(tmp_path: Path, text: str) -> None:
    data = [
        {"@t": f"2026-01-01T00:00:{i:02d}Z", "@mt": "m", "StatusCode": 200 + i, "@tr": f"t{i}"}
        for i in range(12)
    ]
    path = tmp_path / "s.seg"
    write_segment(path, batches.sort_by_id(shred(encode_events(data))), block_rows=4)
    prune = prune_of(text)
    with SegmentReader(path) as reader:
        kept = []
        for m in reader.blocks:

            def probe(column: str, token: str, index: int = m.index) -> bool:
                return reader.might_contain_token(index, column, token)

            if may_match(prune, m.columns, probe, m.min_ts, m.max_ts):
                kept.append(m.index)
    assert kept == []
