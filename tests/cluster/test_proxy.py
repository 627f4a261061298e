"""Forwarding to the leader, with real HTTP on loopback: an upstream server (the standard
library's, in threads) stands for the leader and records what reached it; a seqfast
`HttpServer` (on trio, in a thread of its own) is the follower that forwards to it; clients
speak HTTP/1.1 over sockets.  What the follower believes about leadership is set directly."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.pool import ThreadPool
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from seqfast.api.http import HttpServer, Limits, Request, Response
from seqfast.api.proxy import (
    HOP_BY_HOP,
    LeaderForwarding,
    Proxy,
    ProxyTimeouts,
    end_to_end_headers,
)

WAIT = 30.0  # bound on every wait for the other side, so that a broken proxy fails, not hangs


@dataclass
class Seen:
    """One request as the upstream received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    length: int
    sha256: str

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class Upstream:
    """Knobs and records shared with the upstream's handler threads."""

    seen: list[Seen] = field(default_factory=list)
    # /echo sets `half_received` once it has read half the declared body.
    half_received: threading.Event = field(default_factory=threading.Event)
    # /big waits on `go_on` after sending the first half of its body.
    go_on: threading.Event = field(default_factory=threading.Event)
    # /hang waits on this before answering, /stall before the second half of its body.
    release: threading.Event = field(default_factory=threading.Event)
    # When set, the next request is read and its connection closed without an answer (as by
    # a leader that closed a kept connection just as the request arrived); then it clears.
    drop_next: threading.Event = field(default_factory=threading.Event)
    # Connections accepted and closed (after their last request) so far, and the open ones.
    accepted: int = 0
    closed: int = 0
    connections: list[socket.socket] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def _handler(state: Upstream) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _body(self) -> tuple[int, str]:
            digest = hashlib.sha256()
            size = 0
            length = self.headers.get("Content-Length")
            if length is not None:
                declared = int(length)
                while size < declared:
                    chunk = self.rfile.read(min(1 << 16, declared - size))
                    if not chunk:
                        break
                    digest.update(chunk)
                    size += len(chunk)
                    if size * 2 >= declared:
                        state.half_received.set()
            elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    chunk_size = int(self.rfile.readline().split(b";")[0], 16)
                    if chunk_size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    chunk = self.rfile.read(chunk_size)
                    self.rfile.readline()
                    digest.update(chunk)
                    size += len(chunk)
            return size, digest.hexdigest()

        def _record(self) -> Seen:
            size, sha = self._body()
            seen = Seen(self.command, self.path, list(self.headers.items()), size, sha)
            state.seen.append(seen)
            return seen

        def _json(self, status: int, obj: Any, extra: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _any(self) -> None:
            if state.drop_next.is_set():
                state.drop_next.clear()
                self._record()
                self.close_connection = True
                return
            seen = self._record()
            path = urlsplit(self.path).path
            query = parse_qs(urlsplit(self.path).query)
            if path == "/api/status":
                status = int(query["code"][0])
                self._json(
                    status,
                    {"Status": status},
                    [
                        ("X-Custom", "kept"),
                        ("Set-Cookie", "a=1"),
                        ("Set-Cookie", "b=2"),
                        ("Connection", "X-Upstream-Hop"),
                        ("X-Upstream-Hop", "dropped"),
                        ("Keep-Alive", "timeout=5"),
                    ],
                )
            elif path == "/api/big":
                self._big(int(query["bytes"][0]))
            elif path == "/api/echo-upgrade" and self.headers.get("Upgrade"):
                self._echo_after_upgrade()
            elif path == "/api/hang":
                state.release.wait(WAIT)
                self._json(200, {"Late": True})
            elif path == "/api/close":
                self._json(200, {"Closing": True}, [("Connection", "close")])
            elif path == "/api/stall":
                self.send_response(200)
                self.send_header("Content-Length", "10")
                self.end_headers()
                self.wfile.write(b"12345")
                self.wfile.flush()
                state.release.wait(WAIT)
                self.wfile.write(b"67890")
            else:
                self._json(200, {"Length": seen.length, "Sha256": seen.sha256})

        def _echo_after_upgrade(self) -> None:
            """Switches protocols, then answers each line with "echo: " and the line, until
            a line "bye" (after which it closes)."""
            self.send_response(101)
            self.send_header("Upgrade", self.headers["Upgrade"])
            self.send_header("Connection", "Upgrade")
            self.send_header("X-Accept", "yes")
            self.end_headers()
            self.wfile.write(b"hello from the leader\n")
            self.wfile.flush()
            while line := self.rfile.readline():
                self.wfile.write(b"echo: " + line)
                self.wfile.flush()
                if line == b"bye\n":
                    break
            self.close_connection = True

        def _big(self, size: int) -> None:
            """`size` bytes (a repeating pattern), chunked, pausing halfway until `go_on`."""
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            sent = 0
            paused = False
            while sent < size:
                piece = pattern(sent, min(1 << 16, size - sent))
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sent += len(piece)
                if not paused and sent * 2 >= size:
                    self.wfile.flush()
                    state.go_on.wait(WAIT)
                    paused = True
            self.wfile.write(b"0\r\n\r\n")

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

    return Handler


def pattern(offset: int, size: int) -> bytes:
    """Bytes `offset` to `offset + size` of an endless, position-dependent pattern."""
    block = bytes(range(251))  # a prime length: misplaced chunks do not line up by chance
    start = offset % len(block)
    repeated = block * ((start + size) // len(block) + 1)
    return repeated[start : start + size]


class _CountingServer(http.server.ThreadingHTTPServer):
    """Counts the connections it accepts and closes in its `state`."""

    state: Upstream

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.state.lock:
            self.state.accepted += 1
            self.state.connections.append(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self.state.lock:
            self.state.closed += 1


def start_upstream(state: Upstream) -> Callable[[], None]:
    server = _CountingServer(("127.0.0.1", 0), _handler(state))
    server.state = state
    server.daemon_threads = True
    state.server = server
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def stop() -> None:
        state.release.set()
        state.go_on.set()
        server.shutdown()
        server.server_close()
        thread.join(WAIT)

    return stop


@dataclass
class FakeLeader:
    node_id: str
    api_url: str


@dataclass
class Roles:
    """What the forwarding reads of the node runtime, set directly by the test."""

    role: str = "follower"
    leader: FakeLeader | None = None


async def _local(request: Request) -> Response | None:
    return None  # everything not forwarded goes to the ASGI app below


async def _local_app(scope: Any, receive: Any, send: Any) -> None:
    body = json.dumps({"ServedBy": "front", "Path": scope["path"]}).encode()
    await receive()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Front:
    """A seqfast `HttpServer` that forwards per `roles`, on trio in its own thread."""

    def __init__(
        self, roles: Roles, node_id: str = "front-node", timeouts: ProxyTimeouts | None = None
    ) -> None:
        self.roles = roles
        self.proxy = Proxy(node_id, lambda *a, **k: None, timeouts or ProxyTimeouts())
        self.port = 0
        self._started = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self.failure: BaseException | None = None

    async def _main(self) -> None:
        server = HttpServer(
            _local,
            _local_app,
            Limits(body_timeout=WAIT, body_total_timeout=WAIT * 4),
            lambda *a, **k: None,
            forwarding=LeaderForwarding(self.roles, self.proxy),
        )
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            self._started.set()
            await trio.serve_listeners(server.serve_connection, listeners)

    def start(self) -> Front:
        self._thread.start()
        assert self._started.wait(WAIT), "the front server did not start"
        return self

    def stop(self) -> None:
        assert self._token is not None and self._scope is not None
        trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(WAIT)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)


# -- the tests -----------------------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    state = Upstream()
    stop = start_upstream(state)
    yield state
    stop()


@pytest.fixture
def roles(upstream: Upstream) -> Roles:
    return Roles(role="follower", leader=FakeLeader("leader-node", upstream.url))


@pytest.fixture
def front(roles: Roles) -> Iterator[Front]:
    # Idle connections to the leader outlive every wait of a test: one that closes during a
    # test was closed on purpose, not because it aged out.
    server = Front(roles, timeouts=ProxyTimeouts(pooled=3 * WAIT)).start()
    yield server
    server.stop()


def request(
    front: Front,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=WAIT)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def test_a_follower_forwards_api_and_ingestion_and_the_leader_answers(
    front: Front, upstream: Upstream
) -> None:
    body = b'{"@mt":"hello"}\n'
    for target in ("/api/events/raw?clef", "/ingest/clef", "/api", "/v1/logs"):
        status, _, answer = request(front, "POST", target, body)
        assert status == 200, answer
        assert json.loads(answer) == {
            "Length": len(body),
            "Sha256": hashlib.sha256(body).hexdigest(),
        }
        assert upstream.seen[-1].target == target
        assert upstream.seen[-1].method == "POST"


def test_health_is_never_forwarded(front: Front, upstream: Upstream) -> None:
    status, _, answer = request(front, "GET", "/health")
    assert status == 200
    assert json.loads(answer)["ServedBy"] == "front"
    assert upstream.seen == []


def test_the_leader_serves_everything_itself(
    front: Front, roles: Roles, upstream: Upstream
) -> None:
    roles.role = "leader"
    status, _, answer = request(front, "POST", "/api/events/raw", b"{}")
    assert status == 200
    assert json.loads(answer) == {"ServedBy": "front", "Path": "/api/events/raw"}
    assert upstream.seen == []


def test_status_and_end_to_end_headers_come_back_and_hop_by_hop_ones_do_not(
    front: Front, upstream: Upstream
) -> None:
    for code in (200, 201, 400, 404, 418, 503):
        status, headers, answer = request(front, "GET", f"/api/status?code={code}")
        assert status == code
        assert json.loads(answer) == {"Status": code}
        assert headers["X-Custom"] == "kept"
        assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
        assert "X-Upstream-Hop" not in headers
        assert "Keep-Alive" not in headers
        assert "front-node" in headers["Via"]
        assert headers["X-Seqfast-Proxied-By"] == "front-node"


def test_the_leader_sees_the_request_as_sent_plus_via_minus_hop_by_hop(
    front: Front, upstream: Upstream
) -> None:
    status, _, _ = request(
        front,
        "PUT",
        "/api/things/7?x=1&y=%20z",
        b"payload",
        {
            "X-Seq-ApiKey": "secret-token",
            "Content-Type": "application/vnd.serilog.clef",
            "Connection": "X-Client-Hop",
            "X-Client-Hop": "dropped",
            "Proxy-Authorization": "Basic dropped",
            "X-Forwarded-For": "203.0.113.9",
        },
    )
    assert status == 200
    seen = upstream.seen[-1]
    assert (seen.method, seen.target, seen.length) == ("PUT", "/api/things/7?x=1&y=%20z", 7)
    assert seen.header("X-Seq-ApiKey") == ["secret-token"]
    assert seen.header("Content-Type") == ["application/vnd.serilog.clef"]
    assert seen.header("X-Client-Hop") == []
    assert seen.header("Proxy-Authorization") == []
    assert seen.header("Via") == ["1.1 front-node"]
    assert seen.header("X-Seqfast-Proxied-By") == ["front-node"]
    assert seen.header("X-Forwarded-For") == ["203.0.113.9, 127.0.0.1"]
    assert seen.header("X-Forwarded-Host") == [f"127.0.0.1:{front.port}"]
    assert seen.header("Host") == [upstream.url.removeprefix("http://")]


def test_a_large_request_body_streams_through_without_being_buffered_whole(
    front: Front, upstream: Upstream
) -> None:
    size = 24 << 20
    first, rest = pattern(0, size // 2), pattern(size // 2, size - size // 2)
    with front.connect() as sock:
        sock.sendall(
            b"POST /api/events/raw HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
        )
        sock.sendall(first)
        # The leader has half the body while the client has not sent the rest: the front did
        # not wait for the whole body before forwarding.
        assert upstream.half_received.wait(WAIT), "the first half never reached the leader"
        sock.sendall(rest)
        responses = read_responses(sock, 1)
    assert responses[0].status == 200
    expected = hashlib.sha256(first + rest).hexdigest()
    assert json.loads(responses[0].body) == {"Length": size, "Sha256": expected}


def test_a_large_response_streams_back_as_the_leader_sends_it(
    front: Front, upstream: Upstream
) -> None:
    size = 24 << 20
    with front.connect() as sock:
        sock.sendall(b"GET /api/big?bytes=%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        received = bytearray()
        released = False
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(1 << 20))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                received += event.data
                # The leader pauses after half its body: that half got here before the rest
                # was even produced.
                if not released and len(received) * 2 >= size:
                    upstream.go_on.set()
                    released = True
            elif isinstance(event, h11.EndOfMessage):
                break
    assert status == 200
    assert released
    assert len(received) == size
    assert bytes(received) == pattern(0, size)


def test_a_chunked_request_body_is_forwarded_chunked(front: Front, upstream: Upstream) -> None:
    parts = [pattern(0, 1000), pattern(1000, 70000), pattern(71000, 5)]
    with front.connect() as sock:
        sock.sendall(
            b"POST /ingest/clef HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
            + b"0\r\n\r\n"
        )
        (response,) = read_responses(sock, 1)
    assert response.status == 200
    whole = b"".join(parts)
    assert json.loads(response.body) == {
        "Length": len(whole),
        "Sha256": hashlib.sha256(whole).hexdigest(),
    }
    assert upstream.seen[-1].header("Transfer-Encoding") == ["chunked"]


def test_one_client_connection_carries_several_forwarded_requests(
    front: Front, upstream: Upstream
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=WAIT)
    try:
        for i in range(5):
            conn.request("POST", "/api/events/raw", body=b"x" * i)
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["Length"] == i
    finally:
        conn.close()
    assert len(upstream.seen) == 5


def test_head_requests_get_headers_only(front: Front, upstream: Upstream) -> None:
    status, headers, body = request(front, "HEAD", "/api/status?code=200")
    assert status == 200
    assert body == b""
    assert headers["X-Custom"] == "kept"


def _assert_unavailable(status: int, headers: http.client.HTTPMessage, body: bytes) -> str:
    assert status == 503, body
    assert headers["Retry-After"] == "1"
    error = json.loads(body)["Error"]
    assert isinstance(error, str) and error
    return error


def test_a_leader_that_is_down_gets_503_and_retry_after(front: Front, roles: Roles) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        closed_port = placeholder.getsockname()[1]
    roles.leader = FakeLeader("gone-node", f"http://127.0.0.1:{closed_port}")
    error = _assert_unavailable(*request(front, "POST", "/api/events/raw", b"{}"))
    assert "gone-node" in error


def test_a_leader_that_does_not_answer_in_time_gets_503(upstream: Upstream, roles: Roles) -> None:
    front = Front(roles, timeouts=ProxyTimeouts(response=0.5)).start()
    try:
        error = _assert_unavailable(*request(front, "GET", "/api/hang"))
        assert "no response" in error
    finally:
        front.stop()


def test_no_known_leader_gets_503_and_retry_after(front: Front, roles: Roles) -> None:
    roles.leader = None
    _assert_unavailable(*request(front, "POST", "/ingest/clef", b"{}"))
    _assert_unavailable(*request(front, "GET", "/api/apikeys"))
    status, _, _ = request(front, "GET", "/health")
    assert status == 200


def test_a_node_that_won_the_lease_but_does_not_lead_yet_answers_503(
    front: Front, roles: Roles
) -> None:
    roles.role = "activating"
    roles.leader = FakeLeader("front-node", f"http://127.0.0.1:{front.port}")
    _assert_unavailable(*request(front, "POST", "/ingest/clef", b"{}"))


def test_a_forwarded_request_is_never_forwarded_again(front: Front, upstream: Upstream) -> None:
    error = _assert_unavailable(
        *request(front, "POST", "/ingest/clef", b"{}", {"X-Seqfast-Proxied-By": "other-node"})
    )
    assert "not the leader" in error
    assert upstream.seen == []


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [b"connection", b"keep-alive", b"te", b"upgrade", b"x-a", b"x-b", b"via", b"host"]
            ),
            st.sampled_from([b"x-a", b"x-b, keep-alive", b"close", b"1"]),
        )
    )
)
def test_end_to_end_headers_drop_exactly_the_hop_by_hop_ones(
    headers: list[tuple[bytes, bytes]],
) -> None:
    named = {t.strip() for k, v in headers if k == b"connection" for t in v.split(b",")}
    kept = end_to_end_headers(headers)
    assert kept == [(k, v) for k, v in headers if k not in HOP_BY_HOP and k not in named]


class Parsed:
    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


def read_responses(sock: socket.socket, count: int) -> list[Parsed]:
    conn = h11.Connection(h11.CLIENT)
    found: list[Parsed] = []
    while len(found) < count:
        conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        status, headers, body = 0, [], bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(1 << 20))
            elif isinstance(event, h11.Response):
                status, headers = event.status_code, list(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError("the connection closed before a whole response")
        found.append(Parsed(status, headers, bytes(body)))
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
    return found


def _open_tunnel(sock: socket.socket) -> bytes:
    """Asks for an upgrade and reads until the leader's echo of the first line of the new
    protocol, which travels with the request head; returns what was received."""
    sock.sendall(
        b"GET /api/echo-upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\n\r\nfirst\n"
    )
    received = b""
    while b"echo: first\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed early after {received!r}"
        received += chunk
    return received


def test_an_upgrade_is_tunnelled_both_ways(front: Front, upstream: Upstream) -> None:
    with front.connect() as sock:
        received = _open_tunnel(sock)
        head, _, rest = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        lowered = head.lower()
        assert b"\r\nupgrade: websocket" in lowered
        assert b"\r\nconnection: upgrade" in lowered
        assert b"\r\nx-accept: yes" in lowered
        assert b"\r\nx-seqfast-proxied-by: front-node" in lowered
        assert rest.startswith(b"hello from the leader\necho: first\n")
        sock.sendall(b"second\nbye\n")
        tail = rest
        while not tail.endswith(b"echo: bye\n"):
            chunk = sock.recv(65536)
            assert chunk, f"closed early after {tail!r}"
            tail += chunk
        assert tail.endswith(b"echo: second\necho: bye\n")
        # The leader closed its side: the tunnel closes the client's.
        assert sock.recv(65536) == b""
    seen = upstream.seen[-1]
    assert seen.header("Upgrade") == ["websocket"]
    assert seen.header("Connection") == ["upgrade"]


# -- kept connections to the leader --------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _echo_ok(front: Front, body: bytes = b"abc", target: str = "/api/events/raw") -> None:
    status, _, answer = request(front, "POST", target, body)
    assert status == 200, answer
    assert json.loads(answer) == {"Length": len(body), "Sha256": hashlib.sha256(body).hexdigest()}


def test_forwarded_requests_reuse_one_connection_to_the_leader(
    front: Front, upstream: Upstream
) -> None:
    # Each request comes on a client connection of its own; the leader still sees one.
    for i in range(6):
        _echo_ok(front, b"x" * i)
    status, headers, _ = request(front, "GET", "/api/status?code=200")
    assert status == 200 and headers["X-Custom"] == "kept"
    assert len(upstream.seen) == 7
    assert upstream.accepted == 1
    assert upstream.closed == 0


def test_a_response_with_connection_close_is_not_reused(front: Front, upstream: Upstream) -> None:
    for _ in range(2):
        status, _, answer = request(front, "GET", "/api/close")
        assert status == 200
        assert json.loads(answer) == {"Closing": True}
    assert upstream.accepted == 2
    # The follower closed its side of each as well: nothing is left half-open on the leader.
    assert wait_until(lambda: upstream.closed == 2)
    _echo_ok(front)
    assert upstream.accepted == 3


def test_a_kept_connection_the_leader_closed_while_idle_is_not_used(
    front: Front, upstream: Upstream
) -> None:
    _echo_ok(front)
    # The leader closes the idle connection (its keep-alive timeout, a restart, a drain).
    for conn in upstream.connections:
        conn.shutdown(socket.SHUT_RDWR)
    assert wait_until(lambda: upstream.closed == 1)
    _echo_ok(front, b"after the close")
    assert upstream.accepted == 2


def test_a_request_without_body_is_retried_when_a_kept_connection_fails_unanswered(
    front: Front, upstream: Upstream
) -> None:
    _echo_ok(front)
    # The leader closes the kept connection just as the request arrives, before answering.
    upstream.drop_next.set()
    status, _, answer = request(front, "GET", "/api/things")
    assert status == 200, answer
    assert [s.target for s in upstream.seen[1:]] == ["/api/things", "/api/things"]
    assert upstream.accepted == 2


def test_a_request_whose_body_went_out_is_not_retried_but_answered_503(
    front: Front, upstream: Upstream
) -> None:
    _echo_ok(front)
    upstream.drop_next.set()
    error = _assert_unavailable(*request(front, "POST", "/ingest/clef", b'{"@mt":"once"}'))
    assert "leader-node" in error and "cannot be reached" in error
    # The body was consumed on the way to the failed connection: not sent a second time.
    assert [s.target for s in upstream.seen[1:]] == ["/ingest/clef"]
    # And the next request goes through as usual.
    _echo_ok(front)


def test_an_upgrade_tunnel_is_never_reused(front: Front, upstream: Upstream) -> None:
    with front.connect() as sock:
        _open_tunnel(sock)
    # The client left the tunnel without the leader closing it: the follower closes the
    # leader's side rather than keep it for HTTP requests.
    assert wait_until(lambda: upstream.closed == 1)
    _echo_ok(front)
    assert upstream.accepted == 2


def test_a_declined_upgrade_is_not_reused(front: Front, upstream: Upstream) -> None:
    # The leader answers an upgrade request with a plain response (no protocol switch).
    status, _, _ = request(
        front, "GET", "/api/status?code=200", headers={"Connection": "Upgrade", "Upgrade": "x"}
    )
    assert status == 200
    assert upstream.seen[-1].header("Upgrade") == ["x"]
    assert wait_until(lambda: upstream.closed == 1)
    _echo_ok(front)
    assert upstream.accepted == 2


def test_a_response_broken_off_midway_is_not_reused(upstream: Upstream, roles: Roles) -> None:
    front = Front(roles, timeouts=ProxyTimeouts(idle=0.5)).start()
    try:
        with front.connect() as sock:
            sock.sendall(b"GET /api/stall HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        # Half a body, then the follower cut the response short.
        assert received.startswith(b"HTTP/1.1 200 ")
        assert received.endswith(b"\r\n\r\n12345")
        # The leader is still in the middle of that response: the next request must not be
        # sent after it on the same connection.
        _echo_ok(front)
        assert upstream.accepted == 2
    finally:
        front.stop()


def test_after_a_leader_change_requests_go_to_the_new_leader_and_old_connections_close(
    upstream: Upstream, roles: Roles
) -> None:
    front = Front(roles, timeouts=ProxyTimeouts(pooled=0.5)).start()
    other = Upstream()
    stop_other = start_upstream(other)
    try:
        _echo_ok(front)
        roles.leader = FakeLeader("new-leader", other.url)
        _echo_ok(front)
        _echo_ok(front)
        assert (upstream.accepted, len(upstream.seen)) == (1, 1)
        assert (other.accepted, len(other.seen)) == (1, 2)
        # Without any further request, the former leader's idle connection is closed.
        assert wait_until(lambda: upstream.closed == 1, 5.0)
    finally:
        front.stop()
        stop_other()


def test_idle_connections_are_closed_when_the_server_stops(
    upstream: Upstream, roles: Roles
) -> None:
    front = Front(roles, timeouts=ProxyTimeouts(pooled=60)).start()
    try:
        _echo_ok(front)
        assert upstream.closed == 0
    finally:
        front.stop()
    assert wait_until(lambda: upstream.closed == 1, 5.0)


def test_at_most_a_few_idle_connections_are_kept_per_leader(
    front: Front, upstream: Upstream
) -> None:
    # Ten requests at once need ten connections; afterwards only eight stay open.
    with ThreadPool(10) as pool:
        answers = pool.map_async(lambda _: request(front, "GET", "/api/hang"), range(10))
        assert wait_until(lambda: upstream.accepted == 10)
        upstream.release.set()
        assert all(status == 200 for status, _, _ in answers.get(WAIT))
    assert wait_until(lambda: upstream.closed == 2)
    for _ in range(8):
        _echo_ok(front)
    assert upstream.accepted == 10
