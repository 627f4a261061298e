"""Signals, retention policies and deleting events over HTTP, against a real `seqfast serve`
on loopback: Seq's shapes, clear 400/404/409 answers, and deletions that survive restarts."""

from __future__ import annotations

import time
from typing import Any

import requests

from .conftest import Server, ServerFactory, clef, run_seqfast

TIMEOUT = 30


def call(server: Server, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, server.url + path, timeout=TIMEOUT, **kwargs)


def ingest(server: Server, *events: dict[str, Any]) -> None:
    response = call(
        server,
        "POST",
        "/api/events/raw?clef",
        data=clef(*events),
        headers={"Content-Type": "application/vnd.serilog.clef"},
    )
    assert response.status_code == 201, response.text


def test_signal_and_retention_policy_crud(server: Server) -> None:
    created = call(
        server,
        "POST",
        "/api/signals",
        json={
            "Title": "Errors",
            "Description": "what went wrong",
            "Filters": [{"Filter": "@Level = 'Error'", "Description": None}],
        },
    )
    assert created.status_code == 201, created.text
    signal = created.json()
    assert signal["Id"] == "signal-1"
    assert signal["Filters"][0]["Filter"] == "@Level = 'Error'"
    assert call(server, "GET", "/api/signals/signal-1").json() == signal
    assert [s["Id"] for s in call(server, "GET", "/api/signals").json()] == ["signal-1"]
    assert call(server, "GET", "/api/signals/template").json()["Filters"] == []

    updated = call(
        server,
        "PUT",
        "/api/signals/signal-1",
        json={"Title": "Timeouts", "Filters": [{"FilterNonStrict": "timeout"}]},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["Filters"][0]["Filter"] == '"timeout"'

    for method, path, body, status in [
        ("POST", "/api/signals", {"Title": "Bad", "Filters": [{"Filter": "A == 1"}]}, 400),
        ("POST", "/api/signals", {"Filters": []}, 400),
        ("POST", "/api/signals", [1, 2], 400),
        ("PUT", "/api/signals/signal-9", {"Title": "x"}, 404),
        ("GET", "/api/signals/signal-9", None, 404),
        ("DELETE", "/api/signals/nonsense", None, 404),
        ("POST", "/api/retentionpolicies", {"RetentionTime": "soon"}, 400),
        ("POST", "/api/retentionpolicies", {}, 400),
        (
            "POST",
            "/api/retentionpolicies",
            {"RetentionTime": "1.00:00:00", "RemovedSignalExpression": {"SignalId": "signal-8"}},
            400,
        ),
        ("GET", "/api/retentionpolicies/retentionpolicy-5", None, 404),
    ]:
        response = call(server, method, path, json=body)
        assert response.status_code == status, (method, path, response.text)
        assert response.json()["Error"], response.text

    policy = call(
        server,
        "POST",
        "/api/retentionpolicies",
        json={"RetentionTime": "7.00:00:00", "RemovedSignalExpression": {"SignalId": "signal-1"}},
    )
    assert policy.status_code == 201, policy.text
    assert policy.json()["Id"] == "retentionpolicy-1"
    assert policy.json()["RetentionTime"] == "7.00:00:00"
    assert policy.json()["RemovedSignalExpression"]["SignalId"] == "signal-1"
    # The signal is in use.
    in_use = call(server, "DELETE", "/api/signals/signal-1")
    assert in_use.status_code == 409 and "retention policy" in in_use.json()["Error"]
    changed = call(
        server,
        "PUT",
        "/api/retentionpolicies/retentionpolicy-1",
        json={"RetentionTime": "12:00:00", "MaxTotalBytes": 1 << 30},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["RemovedSignalExpression"] is None
    assert changed.json()["MaxTotalBytes"] == 1 << 30
    listed = call(server, "GET", "/api/retentionpolicies").json()
    assert [p["RetentionTime"] for p in listed] == ["12:00:00"]
    assert call(server, "DELETE", "/api/retentionpolicies/retentionpolicy-1").status_code == 204
    assert call(server, "DELETE", "/api/signals/signal-1").status_code == 204
    assert call(server, "GET", "/api/signals").json() == []


def test_deleting_events_and_applying_retention_last_across_restarts(server: Server) -> None:
    ingest(
        server,
        *(
            {"@t": f"2020-01-01T00:00:{i:02d}Z", "@mt": "old {N}", "N": i, "@l": level}
            for i, level in enumerate(["Debug", "Error"] * 10)
        ),
        *(
            {"@t": f"2999-01-01T00:00:{i:02d}Z", "@mt": "future {N}", "N": 100 + i}
            for i in range(5)
        ),
    )
    made = call(
        server,
        "POST",
        "/api/signals",
        json={"Title": "Debug", "Filters": [{"Filter": "@Level = 'Debug'"}]},
    )
    assert made.status_code == 201, made.text

    # The signal is usable in searches at once.
    found = call(server, "GET", "/api/events?signal=signal-1&count=100")
    assert found.status_code == 200, found.text
    assert len(found.json()) == 10
    unknown = call(server, "GET", "/api/events?signal=signal-404")
    assert unknown.status_code == 400 and "signal-404" in unknown.json()["Error"]

    # Delete the old errors with N < 10 (a filter and a time range): 5 events.
    deleted = call(
        server,
        "DELETE",
        "/api/events/signal",
        params={"filter": "@Level = 'Error' and N < 10", "toDateUtc": "2021-01-01T00:00:00Z"},
    )
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"DeletedEventCount": 5}
    bad = call(server, "DELETE", "/api/events/signal", params={"filter": "N >="})
    assert bad.status_code == 400 and bad.json()["Error"]
    bad_date = call(server, "DELETE", "/api/events/signal", params={"fromDateUtc": "yesterday"})
    assert bad_date.status_code == 400
    no_signal = call(server, "DELETE", "/api/events/signal", params={"signal": "signal-77"})
    assert no_signal.status_code == 400 and "signal-77" in no_signal.json()["Error"]

    # Retention: old debug events go (the signal), the rest stays.
    policy = call(
        server,
        "POST",
        "/api/retentionpolicies",
        json={"RetentionTime": "30.00:00:00", "RemovedSignalExpression": {"SignalId": "signal-1"}},
    )
    assert policy.status_code == 201, policy.text
    report = call(server, "POST", "/api/retentionpolicies/apply")
    assert report.status_code == 200, report.text
    assert report.json()["EventsRemoved"] == 10

    left = sorted(int(e["N"]) for e in server.stored())
    assert left == [11, 13, 15, 17, 19, 100, 101, 102, 103, 104]
    # Deleting through a signal expression, after the restart.
    made = call(
        server,
        "POST",
        "/api/signals",
        json={"Title": "Future", "Filters": [{"Filter": "N >= 100"}]},
    )
    deleted = call(
        server, "DELETE", "/api/events/signal", params={"signal": f"{made.json()['Id']}"}
    )
    assert deleted.json() == {"DeletedEventCount": 5}
    server.stop()
    assert sorted(int(e["N"]) for e in server.events()) == [11, 13, 15, 17, 19]


def test_permissions(serve: ServerFactory) -> None:
    server = serve("--require-api-key")
    data = str(server.data)
    reader = run_seqfast(
        "apikey", "create", "--data", data, "--title", "r", "--permissions", "read,write"
    )
    token = next(
        line.split()[-1] for line in reader.stdout.splitlines() if line.startswith("token:")
    )
    assert call(server, "GET", "/api/signals").status_code == 401
    headers = {"X-Seq-ApiKey": token}
    assert call(server, "GET", "/api/signals", headers=headers).status_code == 200
    made = call(server, "POST", "/api/signals", headers=headers, json={"Title": "A"})
    assert made.status_code == 201
    for method, path in [
        ("GET", "/api/retentionpolicies"),
        ("POST", "/api/retentionpolicies/apply"),
        ("DELETE", "/api/events/signal"),
    ]:
        denied = call(server, method, path, headers=headers)
        assert denied.status_code == 403, (method, path, denied.text)
        assert "Project" in denied.json()["Error"]


def test_the_leader_applies_retention_policies_periodically(serve: ServerFactory) -> None:
    server = serve("--retention-interval-seconds", "0.2")
    ingest(
        server,
        {"@t": "2001-01-01T00:00:00Z", "@mt": "Ancient {N}", "N": 1},
        {"@t": "2001-01-02T00:00:00Z", "@mt": "Ancient {N}", "N": 2},
        {"@t": "2999-01-01T00:00:00Z", "@mt": "Future {N}", "N": 3},
    )
    created = call(server, "POST", "/api/retentionpolicies", json={"RetentionTime": "1.00:00:00"})
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 30
    while True:
        events = call(server, "GET", "/api/events", params={"count": 10}).json()
        if [e["Properties"] for e in events] == [[{"Name": "N", "Value": 3}]]:
            break  # only the event younger than a day is left
        assert time.monotonic() < deadline, events
        time.sleep(0.2)
