"""Acknowledged means durable, over HTTP: the server is killed (SIGKILL) or stopped (SIGTERM)
while several clients post batches with unique ids.

After a SIGKILL and a restart, every batch that was answered 201 is stored exactly once, and no
batch is stored in part (a batch whose request failed at the connection level may be stored or
not, but whole).  After a SIGTERM the server exits with status 0 having finished the requests in
flight: each of those either got its 201 (and is stored) or failed at the connection level; none
got a 201 and was then lost.
"""

from __future__ import annotations

import random
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

from .conftest import Server, ServerFactory, clef, read_until_closed

EVENTS_PER_BATCH = 40
CLIENTS = 4
KILLS = 8


@dataclass
class Ledger:
    """What each client sent and what it was told, by batch id."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: set[str] = field(default_factory=set)
    connection_failed: set[str] = field(default_factory=set)
    other: dict[str, int] = field(default_factory=dict)
    # (batch, started, finished, status or None) of every request
    timeline: list[tuple[str, float, float, int | None]] = field(default_factory=list)

    def sent(self) -> set[str]:
        return self.acked | self.connection_failed | set(self.other)


def batch_body(batch: str, pad: int) -> bytes:
    return clef(
        *(
            {
                "@t": f"2024-05-01T10:{i % 60:02d}:00.{i:07d}Z",
                "@l": ("Information", "Warning", "Error")[i % 3],
                "@mt": "Batch {B} event {I}",
                "B": batch,
                "I": i,
                "Nested": {"I": i, "Pad": "p" * pad},
            }
            for i in range(EVENTS_PER_BATCH)
        )
    )


def run_clients(
    server: Server, ledger: Ledger, prefix: str, stop: threading.Event, pad: int = 64
) -> list[threading.Thread]:
    url = server.url + "/api/events/raw"

    def client(n: int) -> None:
        seq = 0
        with requests.Session() as session:
            while not stop.is_set():
                batch = f"{prefix}-{n}-{seq}"
                seq += 1
                body = batch_body(batch, pad)
                started = time.monotonic()
                status: int | None
                try:
                    response = session.post(
                        url,
                        data=body,
                        headers={"Content-Type": "application/vnd.serilog.clef"},
                        timeout=30,
                    )
                    status = response.status_code
                except requests.ConnectionError:
                    status = None
                finished = time.monotonic()
                with ledger.lock:
                    ledger.timeline.append((batch, started, finished, status))
                    if status == 201:
                        ledger.acked.add(batch)
                    elif status is None:
                        ledger.connection_failed.add(batch)
                        time.sleep(0.01)  # the server is gone or going: don't spin
                    else:
                        ledger.other[batch] = status

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    return threads


def check_stored(server: Server, ledger: Ledger) -> Counter[str]:
    """Every acknowledged batch once and whole; nothing partial, nothing unsent."""
    counts: Counter[str] = Counter()
    rows: dict[str, Counter[int]] = {}
    for event in server.events():
        counts[event["B"]] += 1
        rows.setdefault(event["B"], Counter())[event["I"]] += 1
    missing = ledger.acked - set(counts)
    assert not missing, f"{len(missing)} acknowledged batches lost, e.g. {sorted(missing)[:5]}"
    unsent = set(counts) - ledger.sent()
    assert not unsent, f"batches stored that were never sent: {sorted(unsent)[:5]}"
    for batch, seen in rows.items():
        assert seen == Counter(range(EVENTS_PER_BATCH)), (
            f"batch {batch} is stored in part or more than once: {sorted(seen.items())[:10]}"
        )
    return counts


def test_sigkill_during_ingestion_loses_no_acknowledged_batch(serve: ServerFactory) -> None:
    rng = random.Random(20261126)
    server = serve()
    ledger = Ledger()
    for kill in range(KILLS):
        stop = threading.Event()
        threads = run_clients(server, ledger, f"k{kill}", stop)
        # Let the clients get going, then kill at a random moment of sustained ingestion.
        deadline = time.monotonic() + 10
        while len(ledger.acked) < 20 * (kill + 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.1, 0.8))
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive()
        server.start()  # recovery replays the commit log
    server.stop()
    assert not ledger.other, f"unexpected answers: {sorted(set(ledger.other.values()))}"
    assert len(ledger.acked) >= 20 * KILLS
    assert ledger.connection_failed, "no request was cut off: the kills missed the ingestion"
    counts = check_stored(server, ledger)
    # Some of the batches cut off at the connection level may have been committed (the kill
    # came between the commit and the response): stored whole, never in part.
    assert set(counts) - ledger.acked <= ledger.connection_failed


def test_sigterm_during_ingestion_finishes_requests_in_flight(serve: ServerFactory) -> None:
    server = serve()
    ledger = Ledger()
    stop = threading.Event()
    # Larger batches (about 500 KB): each request spends a while in flight.
    threads = run_clients(server, ledger, "t", stop, pad=12_000)
    deadline = time.monotonic() + 10
    while len(ledger.acked) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    process = server.process
    assert process is not None
    signalled = time.monotonic()
    process.send_signal(signal.SIGTERM)
    status = process.wait(60)
    exited = time.monotonic()
    stop.set()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    assert status == 0, server.stderr_text()
    assert exited - signalled < 10, f"the shutdown took {exited - signalled:.1f} s"
    server.stop()  # already exited: collects the log and checks the status again

    assert not ledger.other, f"unexpected answers: {ledger.other}"
    in_flight = [
        (batch, result)
        for batch, started, finished, result in ledger.timeline
        if started < signalled < finished
    ]
    assert in_flight, "no request was in flight at the SIGTERM"
    assert {result for _, result in in_flight} <= {201, None}
    counts = check_stored(server, ledger)
    assert set(counts) - ledger.acked <= ledger.connection_failed
    # The server logged the signal and its orderly stop.
    templates = [e.get("@mt", "") for e in server.logs()]
    assert any(t.startswith("Received {Signal}") for t in templates), templates
    assert any(t.startswith("Stopped") for t in templates), templates


def test_signals_during_a_shutdown_do_not_cut_it_short(serve: ServerFactory) -> None:
    """A second SIGTERM (and a SIGINT) while the server is stopping are ignored: it still
    finishes the request in progress, closes the store and exits with status 0."""
    server = serve("--body-timeout-seconds", "1")
    acked = requests.post(server.url + "/ingest/clef", data=batch_body("before", 64), timeout=30)
    assert acked.status_code == 201
    body = batch_body("stalled", 64)
    with socket.create_connection((server.host, server.port), timeout=10) as stalled:
        # A request whose body stalls keeps the shutdown busy for the body timeout (1 s).
        stalled.sendall(
            f"POST /ingest/clef HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:100]
        )
        time.sleep(0.2)
        process = server.process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGINT)
        status = process.wait(30)
        answer = read_until_closed(stalled, 10)
    assert status == 0, f"exit status {status}:\n{server.stderr_text()}"
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    server.stop()
    assert any(e.get("@mt", "").startswith("Stopped") for e in server.logs()), server.stderr_text()
    assert {e["B"] for e in server.events()} == {"before"}
