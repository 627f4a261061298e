"""Regular expressions over HTTP: a pattern that would need backtracking is a 400 naming the
construct, and a pattern that backtracking engines take exponential time on is answered."""

from __future__ import annotations

from typing import Any

import requests

from tests.api.conftest import Server, clef


def get(server: Server, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{server.url}{path}", params=params, timeout=60)


def test_a_back_reference_is_400_naming_it(server: Server) -> None:
    response = get(server, "/api/data", q="select count(*) from stream where @Message = /(a)\\1/")
    assert response.status_code == 400
    error = response.json()["Error"]
    assert "invalid regular expression /(a)\\1/" in error
    assert "back-references are not supported" in error


def test_a_look_ahead_in_a_filter_is_400(server: Server) -> None:
    response = get(server, "/api/events", filter="Contains(@Message, /a(?=b)/)")
    assert response.status_code == 400
    assert "look-ahead is not supported" in response.json()["Error"]


def test_a_pathological_pattern_is_answered(server: Server) -> None:
    # `(a+)+$` against many a's and a final b takes exponential time with backtracking.
    event = {"@t": "2024-05-01T12:00:00Z", "@m": "a" * 5_000 + "b"}
    response = requests.post(f"{server.url}/api/events/raw?clef", data=clef(event), timeout=30)
    assert response.status_code == 201, response.text
    body = get(
        server,
        "/api/data",
        q="select count(*) as n from stream "
        "where @Message = /(a+)+$/ or Contains(@Message, /(a+)+b/)",
        rangeStartUtc="2024-05-01T00:00:00Z",
        rangeEndUtc="2024-05-02T00:00:00Z",
    ).json()
    assert body["Rows"] == [[1]]
