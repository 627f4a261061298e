"""Searching and querying over HTTP, as a Seq client does: a real `seqfast serve` on loopback,
events ingested with real HTTP requests, then `GET /api/events`, `GET /api/events/{id}` and
`/api/data`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.api.conftest import Server, ServerFactory, clef

EVENTS: list[dict[str, Any]] = [
    {"@t": "2024-05-01T12:00:00Z", "@mt": "GET {Path} answered {Status}", "Path": "/a",
     "Status": 200, "@l": "Information"},
    {"@t": "2024-05-01T12:00:10Z", "@mt": "GET {Path} answered {Status}", "Path": "/b",
     "Status": 500, "@l": "Error", "@x": "System.Exception: boom"},
    {"@t": "2024-05-01T12:01:00Z", "@mt": "GET {Path} answered {Status}", "Path": "/a",
     "Status": 404, "@l": "Warning"},
    {"@t": "2024-05-01T12:02:00Z", "@mt": "User {User} signed in", "User": "ann"},
    {"@t": "2024-05-01T12:03:00Z", "@m": "Cache warmed", "@l": "Debug"},
]  # fmt: skip


def ingest(server: Server, events: list[dict[str, Any]]) -> None:
    response = requests.post(f"{server.url}/api/events/raw?clef", data=clef(*events), timeout=30)
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that only read (starting one takes seconds)."""
    server = Server(tmp_path_factory.mktemp("query-api"), ()).start()
    try:
        ingest(server, EVENTS)
        yield server
    finally:
        server.stop()


def get(server: Server, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{server.url}{path}", params=params, timeout=60)


def messages(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for event in events:
        tokens = event["MessageTemplateTokens"]
        out.append("".join(t.get("Text", t.get("RawText", "")) for t in tokens))
    return out


# --- /api/events --------------------------------------------------------------------------------


def test_events_newest_first_in_seq_shape(loaded: Server) -> None:
    response = get(loaded, "/api/events", render="true")
    assert response.status_code == 200
    events = response.json()
    assert [e["Timestamp"][:19] for e in events] == [
        "2024-05-01T12:03:00",
        "2024-05-01T12:02:00",
        "2024-05-01T12:01:00",
        "2024-05-01T12:00:10",
        "2024-05-01T12:00:00",
    ]
    assert [e["RenderedMessage"] for e in events] == [
        "Cache warmed",
        'User "ann" signed in',
        'GET "/a" answered 404',
        'GET "/b" answered 500',
        'GET "/a" answered 200',
    ]
    error = events[3]
    assert error["Level"] == "Error"
    assert error["Exception"] == "System.Exception: boom"
    assert error["Properties"] == [
        {"Name": "Path", "Value": "/b"},
        {"Name": "Status", "Value": 500},
    ]
    assert error["EventType"].startswith("$") and len(error["EventType"]) == 9
    assert error["Links"]["Self"] == f"api/events/{error['Id']}"
    # Without render=true there is no RenderedMessage (as in Seq).
    assert "RenderedMessage" not in get(loaded, "/api/events").json()[0]


def test_filter_selects_events(loaded: Server) -> None:
    found = get(loaded, "/api/events", filter="Status >= 400").json()
    assert [e["Properties"][1]["Value"] for e in found] == [404, 500]
    found = get(loaded, "/api/events", filter="@Level = 'Error' or User = 'ann'").json()
    assert len(found) == 2
    # Free text: a case-insensitive search of the messages.
    found = get(loaded, "/api/events", filter="cache WARMED").json()
    assert messages(found) == ["Cache warmed"]


def test_count_and_paging(loaded: Server) -> None:
    first = get(loaded, "/api/events", count=2).json()
    assert len(first) == 2
    after = get(loaded, "/api/events", count=2, afterId=first[-1]["Id"]).json()
    assert [e["Timestamp"][:19] for e in after] == ["2024-05-01T12:01:00", "2024-05-01T12:00:10"]
    at = get(loaded, "/api/events", count=2, startAtId=first[-1]["Id"]).json()
    assert at[0]["Id"] == first[-1]["Id"]
    assert get(loaded, "/api/events", count=0).json() == []


def test_date_range(loaded: Server) -> None:
    found = get(
        loaded,
        "/api/events",
        fromDateUtc="2024-05-01T12:00:10Z",
        toDateUtc="2024-05-01T12:02:00Z",
    ).json()
    # fromDateUtc inclusive, toDateUtc exclusive.
    assert [e["Timestamp"][:19] for e in found] == ["2024-05-01T12:01:00", "2024-05-01T12:00:10"]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"count": "many"}, ["count", "'many'"]),
        ({"count": "10001"}, ["count", "10000"]),
        ({"count": "-1"}, ["count"]),
        ({"fromDateUtc": "yesterday"}, ["fromDateUtc", "'yesterday'", "ISO-8601"]),
        ({"toDateUtc": "2024-13-45"}, ["toDateUtc"]),
        (
            {"fromDateUtc": "2024-05-02T00:00:00Z", "toDateUtc": "2024-05-01T00:00:00Z"},
            ["later"],
        ),
        ({"afterId": "event-xyz"}, ["afterId", "event id"]),
        ({"startAtId": "42"}, ["startAtId"]),
        ({"render": "maybe"}, ["render", "true or false"]),
        ({"signal": "signal-404"}, ["signal-404"]),
    ],
)
def test_bad_parameters_are_400_with_a_precise_message(
    loaded: Server, params: dict[str, str], words: list[str]
) -> None:
    response = get(loaded, "/api/events", **params)
    assert response.status_code == 400
    message = response.json()["Error"]
    for word in words:
        assert word in message


def test_a_bad_filter_is_400_with_position_and_suggestion(loaded: Server) -> None:
    response = get(loaded, "/api/events", filter="Status == 500")
    assert response.status_code == 400
    body = response.json()
    assert "==" in body["Error"]
    assert body["Position"] == 7
    assert body["Suggestion"] == "Status = 500"
    assert body["Caret"] == "Status == 500\n       ^"


def test_signals_narrow_a_search(loaded: Server) -> None:
    created = requests.post(
        f"{loaded.url}/api/signals",
        json={"Title": "Failures", "Filters": [{"Filter": "Status >= 500"}]},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    signal_id = created.json()["Id"]
    found = get(loaded, "/api/events", signal=signal_id).json()
    assert [e["Properties"][1]["Value"] for e in found] == [500]
    # The signal and the filter both apply.
    assert get(loaded, "/api/events", signal=signal_id, filter="Path = '/a'").json() == []


def test_one_event_by_id(loaded: Server) -> None:
    newest = get(loaded, "/api/events", count=1).json()[0]
    response = get(loaded, f"/api/events/{newest['Id']}", render="true")
    assert response.status_code == 200
    assert response.json()["Id"] == newest["Id"]
    assert response.json()["RenderedMessage"] == "Cache warmed"
    missing = "event-" + "0" * 32
    response = get(loaded, f"/api/events/{missing}")
    assert response.status_code == 404
    assert missing in response.json()["Error"]
    response = get(loaded, "/api/events/not-an-id")
    assert response.status_code == 400
    assert "not-an-id" in response.json()["Error"]


# --- /api/data ----------------------------------------------------------------------------------


def test_a_query_returns_columns_and_rows(loaded: Server) -> None:
    response = get(
        loaded,
        "/api/data",
        q="select count(*) as n from stream where Has(Path) group by Path order by Path",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["Columns"] == ["Path", "n"]
    assert body["Rows"] == [["/a", 2], ["/b", 1]]
    assert "ElapsedMilliseconds" in body["Statistics"]


def test_a_query_within_a_range(loaded: Server) -> None:
    body = get(
        loaded,
        "/api/data",
        q="select count(*) as n from stream",
        rangeStartUtc="2024-05-01T12:00:10Z",
        rangeEndUtc="2024-05-01T12:02:00Z",
    ).json()
    assert body["Rows"] == [[2]]


def test_time_grouped_queries_return_slices(loaded: Server) -> None:
    body = get(
        loaded,
        "/api/data",
        q="select count(*) as n from stream group by time(1m)",
        rangeStartUtc="2024-05-01T12:00:00Z",
        rangeEndUtc="2024-05-01T12:05:00Z",
    ).json()
    assert "Slices" in body
    counts = {s["Time"][:16]: s["Rows"][0][-1] for s in body["Slices"] if s["Rows"]}
    assert counts == {
        "2024-05-01T12:00": 2,
        "2024-05-01T12:01": 1,
        "2024-05-01T12:02": 1,
        "2024-05-01T12:03": 1,
    }


def test_csv(loaded: Server) -> None:
    response = get(
        loaded,
        "/api/data",
        q="select count(*) as n from stream where Status >= 400 group by Path order by Path",
        format="text/csv",
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(response.text))) == [["Path", "n"], ["/a", "1"], ["/b", "1"]]


def test_post_with_json_or_form_bodies(loaded: Server) -> None:
    q = "select count(*) as n from stream"
    as_json = requests.post(f"{loaded.url}/api/data", json={"q": q}, timeout=30)
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["Rows"] == [[5]]
    as_form = requests.post(f"{loaded.url}/api/data", data={"q": q}, timeout=30)
    assert as_form.json()["Rows"] == [[5]]
    # The query string wins over the body, as the parameters of Seq's client are sent there.
    both = requests.post(f"{loaded.url}/api/data", params={"q": q}, json={"q": "nope"}, timeout=30)
    assert both.json()["Rows"] == [[5]]
    bad = requests.post(
        f"{loaded.url}/api/data",
        data=b"[1, 2",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert bad.status_code == 400


def test_query_errors_are_400_with_seq_fields(loaded: Server) -> None:
    response = get(loaded, "/api/data", q="select count(*) from stream where A == 1")
    assert response.status_code == 400
    body = response.json()
    assert "==" in body["Error"]
    assert body["Position"] == 36
    assert body["Suggestion"] == "select count(*) from stream where A = 1"
    missing = get(loaded, "/api/data")
    assert missing.status_code == 400
    assert "q is required" in missing.json()["Error"]
    bad_range = get(loaded, "/api/data", q="select 1", rangeStartUtc="soon")
    assert bad_range.status_code == 400
    assert "rangeStartUtc" in bad_range.json()["Error"]
    bad_format = get(loaded, "/api/data", q="select 1", format="xml")
    assert bad_format.status_code == 400


def test_a_query_past_its_time_limit_is_503(serve: ServerFactory) -> None:
    server = serve()
    # Enough events that no query over them finishes within a millisecond.
    for part in range(10):
        ingest(
            server,
            [
                {"@t": f"2024-05-01T12:{part:02d}:{i % 60:02d}Z", "@m": f"m{i}", "K": i % 97}
                for i in range(5000)
            ],
        )
    response = get(
        server,
        "/api/data",
        q="select count(*), percentile(K, 90) from stream group by K, ToLower(@Message)",
        timeoutMS="1",
    )
    assert response.status_code == 503
    assert "time limit" in response.json()["Error"]


def test_reading_needs_the_read_permission_when_keys_are_required(serve: ServerFactory) -> None:
    server = serve("--require-api-key")
    response = get(server, "/api/events")
    assert response.status_code == 401
    response = get(server, "/api/data", q="select 1")
    assert response.status_code == 401
