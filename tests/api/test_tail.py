"""Live tail: `/api/events/stream` over a real WebSocket (wsproto on a plain socket) against a
real `seqfast serve`, with events ingested over HTTP while the client listens."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import requests
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from tests.api.conftest import Server, ServerFactory, clef, parse_responses, raw_exchange

READ_TIMEOUT = 30.0


class WsClient:
    """A blocking WebSocket client: enough to read a tail."""

    def __init__(self, server: Server, target: str, *, receive_buffer: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(READ_TIMEOUT)
        self.sock.connect((server.host, server.port))
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=f"{server.host}:{server.port}", target=target)))
        self.pending: list[Event] = []
        self.closed: CloseConnection | None = None
        self.eof = False

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            self.ws.receive_data(None)
        else:
            self.ws.receive_data(data)
        self.pending.extend(self.ws.events())

    def next_event(self) -> Event | None:
        """The next event, or None once the connection has ended."""
        while not self.pending:
            if self.eof:
                return None
            self._more()
        return self.pending.pop(0)

    def messages(self, count: int) -> list[str]:
        out: list[str] = []
        text = ""
        while len(out) < count:
            event = self.next_event()
            assert event is not None, f"the stream ended after {len(out)} messages"
            if isinstance(event, Ping):
                self.sock.sendall(self.ws.send(event.response()))
            elif isinstance(event, TextMessage):
                text += event.data
                if event.message_finished:
                    out.append(text)
                    text = ""
            else:
                raise AssertionError(f"unexpected {event!r} after {len(out)} messages")
        return out

    def drain(self) -> Iterator[str]:
        """Every message until the server closes (the close is kept in `closed`)."""
        text = ""
        while True:
            event = self.next_event()
            if event is None:
                return
            if isinstance(event, CloseConnection):
                self.closed = event
                return
            if isinstance(event, TextMessage):
                text += event.data
                if event.message_finished:
                    yield text
                    text = ""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
        self.sock.close()


def refused(server: Server, target: str) -> tuple[int, Any]:
    client = WsClient(server, target)
    try:
        first = client.next_event()
        assert isinstance(first, RejectConnection), first
        body = b""
        while True:
            event = client.next_event()
            if event is None:
                break
            if isinstance(event, RejectData):
                body += event.data
                if event.body_finished:
                    break
        return first.status_code, orjson.loads(body) if body else None
    finally:
        client.sock.close()


def connect(server: Server, target: str, **options: Any) -> WsClient:
    client = WsClient(server, target, **options)
    event = client.next_event()
    assert isinstance(event, AcceptConnection), event
    return client


def ingest(server: Server, *events: dict[str, Any]) -> None:
    response = requests.post(f"{server.url}/api/events/raw?clef", data=clef(*events), timeout=30)
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that need no particular settings (each test's tail sees only
    what is committed while it is connected, so they do not disturb one another)."""
    server = Server(tmp_path_factory.mktemp("tail"), ()).start()
    try:
        yield server
    finally:
        server.stop()


def test_committed_events_arrive_as_seq_json(shared: Server) -> None:
    client = connect(shared, "/api/events/stream?render=true")
    try:
        ingest(
            shared,
            {"@t": "2024-05-01T12:00:00Z", "@mt": "Hello {Name}", "Name": "ann"},
            {"@t": "2024-05-01T12:00:01Z", "@mt": "Bye {Name}", "Name": "bob", "@l": "Warning"},
        )
        first, second = (orjson.loads(m) for m in client.messages(2))
        assert first["RenderedMessage"] == 'Hello "ann"'
        assert first["Properties"] == [{"Name": "Name", "Value": "ann"}]
        assert first["Id"].startswith("event-")
        assert second["Level"] == "Warning"
        assert second["MessageTemplateTokens"][0] == {"Text": "Bye "}
        # The ids are the stored events' ids.
        fetched = requests.get(f"{shared.url}/api/events/{second['Id']}", timeout=30)
        assert fetched.status_code == 200
        assert fetched.json()["Properties"] == [{"Name": "Name", "Value": "bob"}]
        # Later batches keep coming on the same connection.
        ingest(shared, {"@t": "2024-05-01T12:00:02Z", "@m": "third"})
        (third,) = (orjson.loads(m) for m in client.messages(1))
        assert third["MessageTemplateTokens"] == [{"Text": "third"}]
    finally:
        client.close()


def test_clef_true_sends_clef_documents(shared: Server) -> None:
    client = connect(shared, "/api/events/stream?clef=true")
    try:
        ingest(shared, {"@t": "2024-05-01T12:00:00Z", "@mt": "Disk {Free}", "Free": 12})
        (line,) = client.messages(1)
        assert orjson.loads(line) == {
            "@t": "2024-05-01T12:00:00.0000000Z",
            "@mt": "Disk {Free}",
            "Free": 12,
            "@l": "Information",
        }
    finally:
        client.close()


def test_only_events_matching_the_filter_are_sent(shared: Server) -> None:
    target = "/api/events/stream?clef=true&filter=" + quote("@Level = 'Error' and Code > 400")
    client = connect(shared, target)
    try:
        ingest(
            shared,
            {"@t": "2024-05-01T12:00:00Z", "@m": "a", "@l": "Error", "Code": 500},
            {"@t": "2024-05-01T12:00:01Z", "@m": "b", "@l": "Error", "Code": 200},
            {"@t": "2024-05-01T12:00:02Z", "@m": "c", "Code": 503},
        )
        ingest(shared, {"@t": "2024-05-01T12:00:03Z", "@m": "d", "@l": "Error", "Code": 404})
        messages = [orjson.loads(m)["@m"] for m in client.messages(2)]
        assert messages == ["a", "d"]
    finally:
        client.close()


def test_a_bad_filter_is_refused_before_the_upgrade(shared: Server) -> None:
    status, body = refused(shared, "/api/events/stream?filter=" + quote("Code == 5"))
    assert status == 400
    assert "==" in body["Error"]
    assert body["Position"] == 5


def test_bad_parameters_and_unknown_signals_are_refused(shared: Server) -> None:
    status, body = refused(shared, "/api/events/stream?clef=maybe")
    assert status == 400
    assert "clef" in body["Error"]
    status, body = refused(shared, "/api/events/stream?signal=signal-999")
    assert status == 400


def test_a_plain_get_of_the_stream_says_it_needs_a_websocket(shared: Server) -> None:
    response = requests.get(f"{shared.url}/api/events/stream", timeout=10)
    assert response.status_code == 400
    assert "WebSocket" in response.json()["Error"]


def test_a_client_that_falls_behind_is_disconnected_and_ingestion_goes_on(
    serve: ServerFactory,
) -> None:
    server = serve("--tail-buffer-events", "50")
    # A small receive buffer, and no reading while events pour in: the server's writes stall,
    # committed batches pile up beyond 50 events, and the server gives up on this client.
    client = connect(server, "/api/events/stream?clef=true", receive_buffer=4096)
    padding = "x" * 2000
    for batch in range(40):
        ingest(
            server,
            *(
                {"@t": "2024-05-01T12:00:00Z", "@m": f"{batch}-{i}", "Pad": padding}
                for i in range(25)
            ),
        )
    # Reading again lets the stalled write finish; then the close follows, saying why.
    received = list(client.drain())
    client.sock.close()
    assert len(received) < 40 * 25
    assert client.closed is not None
    assert client.closed.code == 1008
    assert "did not keep up" in client.closed.reason
    # Every batch was accepted meanwhile, and the server still serves new tails and searches.
    other = connect(server, "/api/events/stream?clef=true")
    try:
        ingest(server, {"@t": "2024-05-01T12:00:05Z", "@m": "after"})
        assert orjson.loads(other.messages(1)[0])["@m"] == "after"
    finally:
        other.close()
    assert requests.get(f"{server.url}/health", timeout=10).status_code == 200


def test_the_stream_needs_the_read_permission_when_keys_are_required(
    serve: ServerFactory,
) -> None:
    server = serve("--require-api-key")
    status, body = refused(server, "/api/events/stream")
    assert status == 401
    assert "API key" in body["Error"]


def test_shutdown_closes_open_tails(serve: ServerFactory) -> None:
    server = serve()
    client = connect(server, "/api/events/stream")
    server.stop()
    list(client.drain())
    client.sock.close()
    assert client.closed is not None
    assert client.closed.code == 1001


@pytest.mark.parametrize(
    "path", ["/api/events/nope", "/api/events/stream?filter=" + quote("Nope(1)")]
)
def test_refusals_are_http_answers(shared: Server, path: str) -> None:
    status, _ = refused(shared, path)
    assert status in (400, 403, 404)


def test_a_malformed_upgrade_is_a_400(shared: Server) -> None:
    request = (
        b"GET /api/events/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\n\r\n"
    )
    (response,) = parse_responses(raw_exchange(shared, request))
    assert response.status == 400
    assert "Sec-WebSocket-Key" in response.json()["Error"]


def test_a_client_that_vanishes_is_forgotten_quietly(shared: Server) -> None:
    client = connect(shared, "/api/events/stream?clef=true")
    ingest(shared, {"@t": "2024-05-01T12:00:00Z", "@m": "one"})
    assert client.messages(1)
    client.sock.close()  # no close frame: the process died, say
    for i in range(5):
        ingest(shared, {"@t": "2024-05-01T12:00:01Z", "@m": f"more {i}"})
    # A new tail still works, and the server logged no failure for the one that vanished.
    other = connect(shared, "/api/events/stream?clef=true")
    try:
        ingest(shared, {"@t": "2024-05-01T12:00:02Z", "@m": "later"})
        assert orjson.loads(other.messages(1)[0])["@m"] == "later"
    finally:
        other.close()
    failures = [e for e in shared.logs() if e.get("@l") == "Error"]
    assert failures == []
