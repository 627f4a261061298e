"""`/api/data?signal=…`: a query narrowed by saved signals, as `/api/events?signal=…` narrows a
search (`,` intersects, `~` unions), with GET and POST, over a real `seqfast serve`; the answers
stay the same once the events are in segments with bitmaps built (after a restart)."""

from __future__ import annotations

import time
from typing import Any

import requests

from tests.api.conftest import Server, clef

EVENTS: list[dict[str, Any]] = [
    {"@t": f"2024-05-01T12:{i // 60:02d}:{i % 60:02d}Z", "@mt": "GET {Path} answered {Status}",
     "Path": "/a" if i % 3 else "/b", "Status": 500 if i % 4 == 0 else 200,
     "@l": "Error" if i % 4 == 0 else "Information"}
    for i in range(240)
]  # fmt: skip
COUNT_BY_PATH = "select count(*) as n from stream group by Path"


def ingest(server: Server) -> None:
    response = requests.post(f"{server.url}/api/events/raw?clef", data=clef(*EVENTS), timeout=30)
    assert response.status_code == 201, response.text


def make_signal(server: Server, title: str, *filters: str) -> str:
    created = requests.post(
        f"{server.url}/api/signals",
        json={"Title": title, "Filters": [{"Filter": f} for f in filters]},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    signal_id: str = created.json()["Id"]
    return signal_id


def data(server: Server, **params: Any) -> requests.Response:
    return requests.get(f"{server.url}/api/data", params=params, timeout=60)


def expected_counts(keep: Any) -> list[list[Any]]:
    counts: dict[str, int] = {}
    for event in EVENTS:
        if keep(event):
            counts[event["Path"]] = counts.get(event["Path"], 0) + 1
    return [[path, n] for path, n in sorted(counts.items())]


def failing(event: dict[str, Any]) -> bool:
    return bool(event["Status"] == 500)


def on_b(event: dict[str, Any]) -> bool:
    return bool(event["Path"] == "/b")


def answers(server: Server, failures: str, b: str) -> list[Any]:
    out: list[Any] = []
    for signal in (failures, f"{failures},{b}", f"{failures}~{b}"):
        response = data(server, q=COUNT_BY_PATH, signal=signal)
        assert response.status_code == 200, response.text
        out.append(response.json()["Rows"])
    sliced = data(server, q="select count(*) as n from stream group by time(1m)", signal=failures)
    out.append(sliced.json()["Slices"])
    projected = data(server, q="select Status from stream limit 3", signal=f"{failures},{b}")
    out.append(projected.json()["Rows"])
    return out


def test_signals_narrow_a_query(server: Server) -> None:
    ingest(server)
    failures = make_signal(server, "Failures", "Status >= 500")
    b = make_signal(server, "On /b", "Path = '/b'")
    found = answers(server, failures, b)
    assert found[0] == expected_counts(failing)
    assert found[1] == expected_counts(lambda e: failing(e) and on_b(e))
    assert found[2] == expected_counts(lambda e: failing(e) or on_b(e))
    assert [s["Rows"] for s in found[3]] == [[[15]]] * 4
    assert found[4] == [[500]] * 3
    # The signal and the query's own `where` both apply.
    narrowed = data(server, q=COUNT_BY_PATH + " ", signal=failures)
    assert narrowed.json()["Rows"] == found[0]
    both = data(
        server, q="select count(*) as n from stream where Path = '/a'", signal=failures
    ).json()
    assert both["Rows"] == [[sum(1 for e in EVENTS if failing(e) and not on_b(e))]]
    # Events in segments, bitmaps built from the saved signals at start: the same answers.
    server.stop()
    server.start()
    segments = server.data / "segments"
    for _ in range(400):  # one sidecar per signal for the one segment
        if len(list(segments.glob("*.sig"))) == 2:
            break
        time.sleep(0.05)
    assert len(list(segments.glob("*.sig"))) == 2
    assert answers(server, failures, b) == found


def test_a_query_with_a_signal_by_post(server: Server) -> None:
    ingest(server)
    failures = make_signal(server, "Failures", "Status >= 500")
    as_json = requests.post(
        f"{server.url}/api/data", json={"q": COUNT_BY_PATH, "signal": failures}, timeout=60
    )
    as_form = requests.post(
        f"{server.url}/api/data", data={"q": COUNT_BY_PATH, "signal": failures}, timeout=60
    )
    in_query_string = requests.post(
        f"{server.url}/api/data", params={"q": COUNT_BY_PATH, "signal": failures}, timeout=60
    )
    for response in (as_json, as_form, in_query_string):
        assert response.status_code == 200, response.text
        assert response.json()["Rows"] == expected_counts(failing)


def test_an_unknown_or_malformed_signal_is_a_400(server: Server) -> None:
    ingest(server)
    unknown = data(server, q=COUNT_BY_PATH, signal="signal-404")
    assert unknown.status_code == 400 and "signal-404" in unknown.json()["Error"]
    malformed = data(server, q=COUNT_BY_PATH, signal="signal-1,,")
    assert malformed.status_code == 400 and malformed.json()["Error"]
    posted = requests.post(
        f"{server.url}/api/data", json={"q": COUNT_BY_PATH, "signal": "signal-9"}, timeout=60
    )
    assert posted.status_code == 400 and "signal-9" in posted.json()["Error"]
