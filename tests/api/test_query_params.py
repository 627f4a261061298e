"""The read API's parameter checks and answer shapes, as pure functions (no server): every
input either passes or is a BadParameter with a sentence, never another exception."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqfast.api.query_routes import (
    BadParameter,
    caret,
    data_params,
    result_csv,
    search_params,
    syntax_error_body,
)
from seqfast.query.errors import QuerySyntaxError
from seqfast.query.parse import parse_filter

NAMES = [
    "filter",
    "count",
    "afterId",
    "startAtId",
    "fromDateUtc",
    "toDateUtc",
    "render",
    "signal",
    "q",
    "rangeStartUtc",
    "rangeEndUtc",
    "timeoutMS",
    "format",
]


@given(st.dictionaries(st.sampled_from(NAMES), st.text(max_size=40)))
def test_parameters_pass_or_say_what_is_wrong(params: dict[str, str]) -> None:
    for check in (search_params, data_params):
        try:
            check(params)
        except BadParameter as exc:
            assert str(exc)


def test_defaults() -> None:
    p = search_params({})
    assert (p.filter, p.count, p.render, p.after_id, p.start, p.end) == (
        None,
        30,
        False,
        None,
        None,
        None,
    )
    assert search_params({"count": "10000", "render": "TRUE"}).count == 10000
    d = data_params({"q": "select 1", "format": "text/csv", "timeoutMS": "2500"})
    assert (d.csv, d.timeout) == (True, 2.5)


@pytest.mark.parametrize(
    "params",
    [
        {"afterId": "event-" + "0" * 32, "startAtId": "event-" + "0" * 32},
        {"count": "1e3"},
        {"fromDateUtc": "2024-05-01T00:00:00Z", "toDateUtc": "2024-04-01T00:00:00Z"},
    ],
)
def test_rejected(params: dict[str, str]) -> None:
    with pytest.raises(BadParameter):
        search_params(params)


def test_data_needs_q_and_a_known_format() -> None:
    with pytest.raises(BadParameter, match="q is required"):
        data_params({"q": "  "})
    with pytest.raises(BadParameter, match="timeoutMS"):
        data_params({"q": "select 1", "timeoutMS": "0"})


def test_caret_points_at_the_character_on_its_line() -> None:
    assert caret("abc", 1) == "abc\n ^"
    assert caret("first\nsecond line", 9) == "second line\n   ^"
    assert caret("abc", 3) == "abc\n   ^"


def test_syntax_error_body() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_filter("A == 1")
    body = syntax_error_body(caught.value, "A == 1")
    assert body["Position"] == 2
    assert body["Suggestion"] == "A = 1"
    assert body["Reasons"]
    assert body["Caret"] == "A == 1\n  ^"


def test_csv_cells() -> None:
    rows: list[list[Any]] = [["a,b", 1, 2.5, None, True, [1, 2], {"k": "v"}]]
    text = result_csv(["s", "i", "f", "n", "b", "l", "o"], rows)
    assert list(csv.reader(io.StringIO(text))) == [
        ["s", "i", "f", "n", "b", "l", "o"],
        ["a,b", "1", "2.5", "", "true", "[1,2]", '{"k":"v"}'],
    ]
