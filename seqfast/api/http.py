"""A small HTTP/1.1 server: h11 driven directly on trio.

Measured here, hypercorn + Starlette moves about 125 MB/s of request body on one core and h11
on trio with large reads about 380 MB/s; ingestion needs well over 150 MB/s, so every request
comes through this server.  Ingestion endpoints are answered by a plain async handler with the
body read in large pieces; every other request is handed to an ASGI application (Starlette)
through `asgi_bridge`, so the rest of the API keeps Starlette's routing and responses.  A
request asking for `Upgrade: websocket` leaves HTTP: `websocket_bridge` runs it through the same
ASGI application as a WebSocket, and the connection closes when that ends.

Timeouts are explicit: the request head must arrive within `header_timeout` (a client that
trickles headers is cut off), an idle keep-alive connection is closed after `keepalive_timeout`,
and a body must make progress at least every `body_timeout` and arrive whole within
`body_total_timeout` (so a client dripping a byte at a time cannot hold a connection and a
queue reservation for ever).  Heads are limited to
`max_header_bytes` (431 beyond it).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl

import h11
import orjson
import trio

from seqfast.api import websocket_bridge

RECEIVE_BYTES = 1 << 20


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    body_timeout: float = 30.0
    body_total_timeout: float = 120.0
    max_header_bytes: int = 16 * 1024
    max_connections: int = 1024
    retry_after_seconds: int = 2


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: str
    headers: list[tuple[bytes, bytes]]
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    _conn: h11.Connection = field(repr=False)
    _stream: trio.abc.Stream = field(repr=False)
    _limits: Limits = field(repr=False)
    _body_done: bool = field(default=False, repr=False)

    def header(self, name: str) -> str | None:
        """The first value of a header (names compare case-insensitively, as h11 lowers them)."""
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    def query_params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True))

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        return int(value) if value is not None and value.isdigit() else None

    async def read_body(self, limit: int) -> bytes | None:
        """The whole body, or None when it is longer than `limit` bytes (reading stops there)."""
        if self._conn.they_are_waiting_for_100_continue:
            # `Expect: 100-continue` (curl sends it with bodies over 1 MiB): the client holds
            # the body back until told to go on, or for a second or so.
            go_on = h11.InformationalResponse(status_code=100, headers=[])
            await self._stream.send_all(self._conn.send(go_on))
        parts: list[bytes] = []
        size = 0
        deadline = trio.current_time() + self._limits.body_total_timeout
        while True:
            gap = min(self._limits.body_timeout, deadline - trio.current_time())
            if gap <= 0:
                raise _Timeout("body")
            event = await _next_event(self._conn, self._stream, gap, "body")
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    return None
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
                return b"".join(parts)
            else:  # pragma: no cover - h11 yields only Data/EndOfMessage here
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in a body")

    async def body_chunks(self) -> AsyncIterator[bytes]:
        """The body piece by piece as it arrives (for streaming it on), under the same
        timeouts as `read_body`; ends after the last piece."""
        if self._body_done:
            return
        if self._conn.they_are_waiting_for_100_continue:
            go_on = h11.InformationalResponse(status_code=100, headers=[])
            await self._stream.send_all(self._conn.send(go_on))
        deadline = trio.current_time() + self._limits.body_total_timeout
        while True:
            gap = min(self._limits.body_timeout, deadline - trio.current_time())
            if gap <= 0:
                raise _Timeout("body")
            event = await _next_event(self._conn, self._stream, gap, "body")
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
                return
            else:  # pragma: no cover - h11 yields only Data/EndOfMessage here
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in a body")

    @property
    def body_done(self) -> bool:
        """True once the whole body has been read (always, for a request without one)."""
        return self._body_done or self._conn.their_state is not h11.SEND_BODY


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


def json_response(status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, orjson.dumps(obj), headers=list(headers))


def error_response(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """Seq's error shape: `{"Error": "..."}`."""
    return json_response(status, {"Error": message}, headers)


# A handler answers a request whose body it reads itself; returning None passes the request on.
Handler = Callable[[Request], Awaitable[Response | None]]
AsgiApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


class Forwarding(Protocol):
    """Sends requests this node does not serve itself on to the node that does (a follower's
    API and ingestion go to the leader)."""

    def wants(self, request: Request) -> bool:
        """True when `request` is not to be served here (cheap: asked of every request)."""
        ...

    async def forward(self, request: Request, server: HttpServer) -> Response | None:
        """Answers `request` elsewhere; None once the response is written, or the response
        to send when it cannot be forwarded."""
        ...


class _ConnectionTaken(Exception):
    """The connection left HTTP (it became a WebSocket, now over): close it."""


class _Timeout(Exception):
    def __init__(self, phase: str) -> None:
        super().__init__(phase)
        self.phase = phase


async def _next_event(
    conn: h11.Connection, stream: trio.abc.Stream, timeout: float, phase: str
) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        with trio.move_on_after(timeout) as scope:
            data = await stream.receive_some(RECEIVE_BYTES)
        if scope.cancelled_caught:
            raise _Timeout(phase)
        conn.receive_data(bytes(data))


class HttpServer:
    """Serves connections: `handler` first, then `app` for what the handler passes on."""

    def __init__(
        self,
        handler: Handler,
        app: AsgiApp,
        limits: Limits,
        log: Callable[..., None],
        server_header: str = "seqfast",
        forwarding: Forwarding | None = None,
    ) -> None:
        self.handler = handler
        self.app = app
        self.forwarding = forwarding
        self.limits = limits
        self.log = log
        self.server_header = server_header.encode()
        self.draining = False
        self._idle: set[trio.CancelScope] = set()
        self.open_connections = 0

    def drain(self) -> None:
        """Stop reusing connections: idle ones close now, busy ones after their response."""
        self.draining = True
        for scope in list(self._idle):
            scope.cancel()

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        # Each connection costs a task and buffers: past the cap, refuse at once (a bounded
        # amount of work) rather than let a flood of connections grow memory without bound.
        self.open_connections += 1
        try:
            if self.open_connections > self.limits.max_connections:
                await self._refuse(stream)
                return
            await self._serve_connection(stream)
        finally:
            self.open_connections -= 1

    async def _refuse(self, stream: trio.SocketStream) -> None:
        body = orjson.dumps({"Error": "too many open connections; retry later"})
        head = (
            f"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nretry-after: {self.limits.retry_after_seconds}"
            "\r\nconnection: close\r\n\r\n"
        ).encode()
        with trio.move_on_after(2), contextlib.suppress(trio.BrokenResourceError, OSError):
            await stream.send_all(head + body)
        with trio.move_on_after(1) as cleanup:
            cleanup.shield = True
            await stream.aclose()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        client = _address(stream, "getpeername")
        server = _address(stream, "getsockname")
        first = True
        try:
            while not self.draining:
                request = await self._read_head(conn, stream, client, server, first)
                if request is None:
                    return
                first = False
                response = await self._respond(request)
                if response is None:
                    continue  # the ASGI app wrote its response itself
                if not await self._finish(conn, stream, request, response):
                    return
        except _Timeout as exc:
            # A head that does not arrive in time (a client trickling headers) just loses its
            # connection; a stalled body gets a 408 first.
            if exc.phase == "body":
                await self._send_simple(
                    conn, stream, 408, "the request body was not received in time"
                )
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            reason = "the request head is too large" if status == 431 else f"bad request: {exc}"
            await self._send_simple(conn, stream, status, reason)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            return
        except _ConnectionTaken:
            return  # a WebSocket ran on it and is over
        except Exception as exc:
            # A fault met by one request must not take the whole server down (an exception
            # leaving this handler would end the listener's nursery): log it, answer 500 if
            # nothing of a response went out yet, and drop the connection.
            self.log("Error", "Connection failed: {Error}", Error=repr(exc))
            await self._send_simple(conn, stream, 500, "internal error")
        finally:
            with trio.move_on_after(1) as cleanup:
                cleanup.shield = True
                await stream.aclose()

    async def _read_head(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        first: bool,
    ) -> Request | None:
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        head_deadline = trio.current_time() + self.limits.header_timeout
        if not conn.trailing_data[0]:
            # Nothing of a request yet (a new connection, or an idle keep-alive one): wait for
            # its first bytes where a drain can end the wait, so that a silent connection does
            # not hold up a shutdown.  A new connection's head deadline runs from its start; an
            # idle keep-alive connection waits up to the keep-alive timeout first.
            data: bytes | bytearray = b""
            idle_deadline = (
                head_deadline if first else trio.current_time() + self.limits.keepalive_timeout
            )
            with trio.CancelScope(deadline=idle_deadline) as idle:
                self._idle.add(idle)
                try:
                    data = await stream.receive_some(RECEIVE_BYTES)
                finally:
                    self._idle.discard(idle)
            if not data:
                return None
            conn.receive_data(bytes(data))
            if not first:
                head_deadline = trio.current_time() + self.limits.header_timeout
        with trio.CancelScope(deadline=head_deadline) as deadline:
            event = await _next_event(conn, stream, math.inf, "head")
        if deadline.cancelled_caught:
            raise _Timeout("head")
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):  # pragma: no cover - h11 guarantees a Request
            raise h11.RemoteProtocolError("expected a request")
        # h11 limits only a head that is still incomplete; one that arrived whole in a single
        # read is measured here (as sent, give or take optional whitespace).
        size = len(event.method) + len(event.target) + 13  # "M T HTTP/1.1\r\n"
        size += sum(len(name) + len(value) + 4 for name, value in event.headers) + 2
        if size > self.limits.max_header_bytes:
            raise h11.RemoteProtocolError("the request head is too large", 431)
        names = {name for name, _ in event.headers}
        if b"transfer-encoding" in names and b"content-length" in names:
            # Framed two ways: a request-smuggling attempt through a proxy, or a broken client.
            # RFC 9112 §6.1: reject it, or answer and close; h11 would keep the connection.
            raise h11.RemoteProtocolError("both Transfer-Encoding and Content-Length", 400)
        target = event.target.decode("latin-1")
        path, _, query = target.partition("?")
        return Request(
            method=event.method.decode("ascii"),
            target=target,
            path=path,
            query=query,
            headers=list(event.headers),
            client=client,
            server=server,
            _conn=conn,
            _stream=stream,
            _limits=self.limits,
        )

    async def _respond(self, request: Request) -> Response | None:
        if self.forwarding is not None and self.forwarding.wants(request):
            return await self.forwarding.forward(request, self)
        if websocket_bridge.is_upgrade(request):
            await websocket_bridge.serve(self.app, request, self)
            raise _ConnectionTaken
        response = await self.handler(request)
        if response is not None:
            return response
        await asgi_bridge(self.app, request, self)
        return None

    async def _finish(
        self, conn: h11.Connection, stream: trio.abc.Stream, request: Request, response: Response
    ) -> bool:
        """Sends the response; True when the connection can serve another request."""
        keep = not response.close and not self.draining
        if not request._body_done and conn.their_state is h11.SEND_BODY:
            # An unread body: drain a little of it, else close rather than read it all.
            keep = False
        await self._send(conn, stream, response, keep, head=request.method == "HEAD")
        return keep and conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def _send(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        response: Response,
        keep: bool,
        head: bool = False,
    ) -> None:
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
            (b"server", self.server_header),
        ]
        headers += [(k.encode(), v.encode()) for k, v in response.headers]
        if not keep:
            headers.append((b"connection", b"close"))
        data = conn.send(
            h11.Response(
                status_code=response.status, headers=headers, reason=_reason(response.status)
            )
        )
        # A response to HEAD is headers only: h11 refuses body bytes for it.
        body = conn.send(h11.Data(data=response.body)) if response.body and not head else b""
        end = conn.send(h11.EndOfMessage())
        await stream.send_all(b"".join(x for x in (data, body, end) if x))

    async def _send_simple(
        self, conn: h11.Connection, stream: trio.abc.Stream, status: int, message: str
    ) -> None:
        closed = (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError)
        with trio.move_on_after(2), contextlib.suppress(*closed):
            await self._send(conn, stream, error_response(status, message), keep=False)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _address(stream: trio.SocketStream, which: str) -> tuple[str, int] | None:
    try:
        address = getattr(stream.socket, which)()
    except OSError:
        return None
    return (str(address[0]), int(address[1])) if isinstance(address, tuple) else None


async def asgi_bridge(app: AsgiApp, request: Request, server: HttpServer) -> None:
    """Runs one request through an ASGI app: the body is read whole (API bodies are small)."""
    conn, stream = request._conn, request._stream
    body = await request.read_body(server.limits.max_header_bytes * 64)
    if body is None:
        await server._send(
            conn, stream, error_response(413, "the request body is too large"), keep=False
        )
        return
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode("latin-1"),
        "query_string": request.query.encode("latin-1"),
        "root_path": "",
        "headers": request.headers,
        "client": request.client,
        "server": request.server,
    }
    sent_body = False
    disconnected = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await trio.sleep_forever()
        return {"type": "http.disconnect"}  # pragma: no cover

    started: dict[str, Any] = {}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal disconnected
        if message["type"] == "http.response.start":
            started.update(message)
            headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            headers.append((b"server", server.server_header))
            if server.draining:
                headers.append((b"connection", b"close"))
            await stream.send_all(
                conn.send(
                    h11.Response(
                        status_code=message["status"],
                        headers=headers,
                        reason=_reason(message["status"]),
                    )
                )
            )
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if chunk and request.method != "HEAD":  # headers only for HEAD
                await stream.send_all(conn.send(h11.Data(data=chunk)))
            if not message.get("more_body", False):
                await stream.send_all(conn.send(h11.EndOfMessage()))

    try:
        await app(scope, receive, send)
    except Exception as exc:
        server.log(
            "Error",
            "Request {Method} {Path} failed: {Error}",
            Method=request.method,
            Path=request.path,
            Error=repr(exc),
        )
        if not started:
            await server._send(
                conn,
                stream,
                error_response(500, "internal error"),
                keep=False,
                head=request.method == "HEAD",
            )
        raise h11.RemoteProtocolError("closing after an application error") from None
    if conn.our_state is not h11.DONE:
        raise trio.ClosedResourceError("the application did not finish its response")
