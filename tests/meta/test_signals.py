"""Signals and retention policies in the metadata database (SQLite and a real PostgreSQL), the
signal-expression resolver, durations, and the `seqfast signal` / `seqfast retention` commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

import seqfast
from seqfast.meta.db import open_metadata
from seqfast.meta.retention_policies import (
    InvalidRetentionPolicy,
    RetentionPolicies,
    format_timespan,
    parse_timespan,
)
from seqfast.meta.signals import (
    Combined,
    Expression,
    InvalidSignal,
    Ref,
    Signals,
    UnknownSignal,
    normalise_filter,
    parse_expression,
)
from seqfast.query import parse_filter
from seqfast.storage.retention import RetentionRule

POSTGRES = "host=127.0.0.1 port=5432 user=postgres dbname=test"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        opened = open_metadata(f"sqlite:///{tmp_path / 'metadata.sqlite'}")
        yield opened
        opened.dispose()
        return
    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL does not answer on 127.0.0.1:5432 ({exc})", pytrace=False)
    schema = f"seqfast_test_{uuid.uuid4().hex[:12]}"
    opened = open_metadata(POSTGRES_URL, schema=schema)
    try:
        yield opened
    finally:
        opened.dispose()
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- signals -----------------------------------------------------------------------------------


def test_a_signal_is_stored_and_read_back_in_seqs_shape(engine: Engine) -> None:
    signals = Signals(engine)
    created = signals.create(
        "Errors",
        [normalise_filter("@Level = 'Error'", description="errors only")],
        "what went wrong",
    )
    assert created.id == "signal-1"
    again = Signals(engine).get("signal-1")  # as another process would see it
    assert again is not None
    shape = again.to_json()
    assert shape["Id"] == "signal-1"
    assert shape["Title"] == "Errors"
    assert shape["Description"] == "what went wrong"
    assert shape["Filters"][0]["Filter"] == "@Level = 'Error'"
    assert shape["Filters"][0]["Description"] == "errors only"
    assert [s.id for s in signals.list()] == ["signal-1"]


def test_ids_are_never_reused(engine: Engine) -> None:
    signals = Signals(engine)
    first = signals.create("A")
    second = signals.create("B")
    assert signals.remove(second.id)
    third = signals.create("C")
    assert (first.id, second.id, third.id) == ("signal-1", "signal-2", "signal-3")
    assert signals.get("signal-2") is None
    assert not signals.remove("signal-2")


def test_a_signal_is_updated_in_place(engine: Engine) -> None:
    signals = Signals(engine)
    created = signals.create("A", [normalise_filter("X = 1")])
    updated = signals.update(created.id, "B", [normalise_filter(None, "timeout")], "d")
    assert updated.id == created.id
    assert (updated.title, updated.description) == ("B", "d")
    assert updated.filters[0].filter == '"timeout"'
    assert updated.filters[0].filter_non_strict == "timeout"
    with pytest.raises(UnknownSignal):
        signals.update("signal-99", "C")


@pytest.mark.parametrize(
    ("strict", "typed", "stored"),
    [
        (None, "timeout", '"timeout"'),  # free text, as the search box reads it
        (None, "Status >= 500", "Status >= 500"),
        ("Enabled", None, "(Enabled)"),  # a lone name stays a property test, not text
        ("A = 1 and B = 2", "typed text", "A = 1 and B = 2"),
    ],
)
def test_filters_are_stored_as_expressions_that_read_back_the_same(
    strict: str | None, typed: str | None, stored: str
) -> None:
    found = normalise_filter(strict, typed)
    assert found.filter == stored
    tree = parse_filter(strict if strict else typed or "", strict=bool(strict))
    assert parse_filter(found.filter) == tree


@pytest.mark.parametrize(
    ("strict", "typed"),
    [("A == 1", None), ("Status >=", None), (None, None), ("", "  "), (None, 'A = "x" and')],
)
def test_a_filter_that_does_not_parse_is_refused_when_saved(
    strict: str | None, typed: str | None
) -> None:
    with pytest.raises(InvalidSignal):
        normalise_filter(strict, typed)


@pytest.mark.parametrize("title", ["", "   ", "x" * 201, "line\nbreak"])
def test_a_bad_title_is_refused(engine: Engine, title: str) -> None:
    with pytest.raises(InvalidSignal):
        Signals(engine).create(title)


# -- resolving signal expressions --------------------------------------------------------------


def test_resolve_intersects_with_commas_and_unions_with_tildes(engine: Engine) -> None:
    signals = Signals(engine)
    errors = signals.create("Errors", [normalise_filter("@Level = 'Error'")])
    web = signals.create("Web", [normalise_filter("App = 'web'"), normalise_filter("Port = 80")])
    everything = signals.create("Everything")
    assert signals.resolve(errors.id) == ["@Level = 'Error'"]
    assert signals.resolve(f"{errors.id},{web.id}") == [
        "@Level = 'Error'",
        "App = 'web'",
        "Port = 80",
    ]
    (union,) = signals.resolve(f"{errors.id}~{web.id}")
    assert union == "(@Level = 'Error') or (App = 'web') and (Port = 80)"
    # A union with a signal that has no filters matches everything: no filter at all.
    assert signals.resolve(f"{errors.id}~{everything.id}") == []
    # Grouping: (a~b),c is the union's text and c's filters.
    grouped = signals.resolve(f"({errors.id} ~ {web.id}) , {errors.id}")
    assert grouped == [union, "@Level = 'Error'"]
    for text in grouped:
        parse_filter(text, strict=True)


def test_resolve_names_the_unknown_signal(engine: Engine) -> None:
    signals = Signals(engine)
    signals.create("A")
    with pytest.raises(UnknownSignal, match="signal-7"):
        signals.resolve("signal-1,signal-7")
    with pytest.raises(UnknownSignal, match="signal-nope"):
        signals.resolve("signal-nope")


@pytest.mark.parametrize(
    "text", ["", " ", "signal-1,", "~signal-1", "(signal-1", "signal-1)", "a b", "signal-1;"]
)
def test_a_malformed_expression_says_where(text: str) -> None:
    with pytest.raises(InvalidSignal, match="signal expression"):
        parse_expression(text)


def expressions() -> st.SearchStrategy[Expression]:
    refs = st.integers(1, 50).map(lambda n: Ref(f"signal-{n}"))
    return st.recursive(
        refs,
        lambda inner: st.builds(Combined, st.sampled_from([",", "~"]), inner, inner),
        max_leaves=8,
    )


def show(tree: Expression) -> str:
    if isinstance(tree, Ref):
        return tree.signal_id
    return f"({show(tree.left)}{tree.op}{show(tree.right)})"


@given(expressions())
def test_parenthesised_expressions_parse_back(tree: Expression) -> None:
    assert parse_expression(show(tree)) == tree


def test_comma_binds_tighter_than_tilde() -> None:
    a, b, c = Ref("signal-1"), Ref("signal-2"), Ref("signal-3")
    assert parse_expression("signal-1~signal-2,signal-3") == Combined("~", a, Combined(",", b, c))
    assert parse_expression("signal-1,signal-2~signal-3") == Combined("~", Combined(",", a, b), c)


# -- retention policies ------------------------------------------------------------------------


def test_retention_policies_round_trip_and_resolve_their_signal(engine: Engine) -> None:
    signals = Signals(engine)
    policies = RetentionPolicies(engine)
    debug = signals.create("Debug", [normalise_filter("@Level = 'Debug'")])
    by_age = policies.create(timedelta(days=30))
    by_signal = policies.create(timedelta(days=1, hours=2), debug.id)
    by_size = policies.create(None, max_total_bytes=10 << 30)
    assert [p.id for p in policies.list()] == [
        "retentionpolicy-1",
        "retentionpolicy-2",
        "retentionpolicy-3",
    ]
    assert by_age.to_json()["RetentionTime"] == "30.00:00:00"
    assert by_signal.to_json()["RemovedSignalExpression"] == {
        "Kind": "Signal",
        "SignalId": debug.id,
    }
    assert by_size.to_json()["MaxTotalBytes"] == 10 << 30
    hour = 3600 * 10_000_000
    assert policies.rules(signals) == [
        RetentionRule(max_age_ticks=30 * 24 * hour),
        RetentionRule(max_age_ticks=26 * hour, filters=("@Level = 'Debug'",)),
        RetentionRule(max_total_bytes=10 << 30),
    ]
    updated = policies.update(by_age.id, timedelta(days=7))
    assert updated is not None and updated.to_json()["RetentionTime"] == "7.00:00:00"
    assert policies.update("retentionpolicy-99", timedelta(days=7)) is None
    assert policies.remove(by_size.id)
    assert not policies.remove(by_size.id)


def test_a_signal_in_use_by_a_policy_cannot_be_removed(engine: Engine) -> None:
    signals = Signals(engine)
    policies = RetentionPolicies(engine)
    debug = signals.create("Debug", [normalise_filter("@Level = 'Debug'")])
    policy = policies.create(timedelta(days=1), debug.id)
    with pytest.raises(InvalidSignal, match="retention policy"):
        signals.remove(debug.id)
    assert signals.get(debug.id) is not None
    policies.remove(policy.id)
    assert signals.remove(debug.id)


@pytest.mark.parametrize(
    ("retention", "signal", "size", "message"),
    [
        (None, None, None, "RetentionTime or MaxTotalBytes"),
        (timedelta(days=1), "signal-42", None, "no signal"),
        (timedelta(days=1), "nonsense", None, "no signal"),
        (None, "signal-1", 100, "needs a RetentionTime"),
        (None, None, -1, "non-negative"),
        (timedelta(days=-1), None, None, "positive"),
    ],
)
def test_a_policy_that_means_nothing_is_refused(
    engine: Engine,
    retention: timedelta | None,
    signal: str | None,
    size: int | None,
    message: str,
) -> None:
    Signals(engine).create("A")
    with pytest.raises(InvalidRetentionPolicy, match=message):
        RetentionPolicies(engine).create(retention, signal, size)


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30.00:00:00", timedelta(days=30)),
        ("12:00:00", timedelta(hours=12)),
        ("1.02:03:04.5000000", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
        ("30d", timedelta(days=30)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations(text: str, span: timedelta) -> None:
    assert parse_timespan(text) == span


@pytest.mark.parametrize("text", ["", "soon", "1.25:00:00", "00:61:00", "-1d", "d", 30])
def test_bad_durations(text: object) -> None:
    with pytest.raises(InvalidRetentionPolicy):
        parse_timespan(text)


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=100_000)))
def test_timespans_format_and_parse_back(span: timedelta) -> None:
    assert parse_timespan(format_timespan(span)) == span


# -- the commands ------------------------------------------------------------------------------


def seqfast_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQFAST_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "seqfast", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_commands_manage_signals_and_policies_and_apply_them(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with seqfast.open(data) as store:
        store.ingest(
            [
                {"@t": "2020-01-01T00:00:00Z", "@mt": "old debug", "@l": "Debug"},
                {"@t": "2020-01-01T00:00:01Z", "@mt": "old error", "@l": "Error"},
                {"@t": "2999-01-01T00:00:00Z", "@mt": "future debug", "@l": "Debug"},
            ]
        )
    made = seqfast_cli(
        "signal", "create", "--data", data, "--title", "Debug", "--filter", "@Level = 'Debug'"
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "signal-1"
    listed = seqfast_cli("signal", "list", "--data", data, "--json")
    assert json.loads(listed.stdout)[0]["Filters"][0]["Filter"] == "@Level = 'Debug'"
    policy = seqfast_cli(
        "retention", "create", "--data", data, "--after", "30d", "--delete", "signal-1"
    )
    assert policy.returncode == 0, policy.stderr
    assert policy.stdout.strip() == "retentionpolicy-1"
    table = seqfast_cli("retention", "list", "--data", data)
    assert "retentionpolicy-1" in table.stdout and "30.00:00:00" in table.stdout
    applied = seqfast_cli("retention", "apply", "--data", data)
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["EventsRemoved"] == 1
    with seqfast.open(data) as store:
        assert sorted(e["@mt"] for e in store.events()) == ["future debug", "old error"]
    # The signal is in use; then the policy goes, and the signal can go too.
    refused = seqfast_cli("signal", "remove", "--data", data, "signal-1")
    assert refused.returncode == 2 and "retention policy" in refused.stderr
    assert seqfast_cli("retention", "remove", "--data", data, "retentionpolicy-1").returncode == 0
    assert seqfast_cli("signal", "remove", "--data", data, "signal-1").returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ("signal", "create", "--title", "Bad", "--filter", "A == 1"),
        ("signal", "create", "--title", " ", "--filter", "A = 1"),
        ("signal", "remove", "signal-5"),
        ("retention", "create", "--after", "soon"),
        ("retention", "create"),
        ("retention", "create", "--after", "1d", "--delete", "signal-9"),
        ("retention", "remove", "retentionpolicy-3"),
        ("retention", "create", "--max-total-bytes", "lots"),
    ],
)
def test_bad_input_to_the_commands_is_one_sentence_and_status_2(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    data = tmp_path / "data"
    engine = open_metadata(f"sqlite:///{data / 'metadata.sqlite'}")
    Signals(engine).create("A")  # the database exists, with signal-1
    engine.dispose()
    done = seqfast_cli(*args, "--data", str(data))
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    # One sentence (argparse's own errors follow its usage text).
    assert done.stderr.strip().splitlines()[-1].startswith("seqfast"), done.stderr
