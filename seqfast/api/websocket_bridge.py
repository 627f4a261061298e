"""WebSockets on the h11 server: the upgrade handshake, then wsproto frames, run through an
ASGI application (Starlette's `WebSocketRoute`).

`seqfast.api.http` parses the request head with h11 as for any request; when it asks for
`Upgrade: websocket`, the connection is handed here and never returns to HTTP.  The ASGI
application decides: `websocket.accept` answers 101 and switches to frames,
`websocket.close` before that answers 403, and the denial-response extension
(`websocket.http.response.*`) lets it answer with an ordinary HTTP response instead (a 400
for a bad filter, a 401 without an API key).

Writes go through one lock, each frame in one `send_all`.  A write that is cancelled half way
(the client stopped reading and the server gave up on it) leaves the byte stream unusable, so
after it nothing more is written and the connection is simply closed.  A server drain (a
shutdown) closes every open WebSocket with 1001.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import struct
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Final

import h11
import orjson
import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

if TYPE_CHECKING:
    from seqfast.api.http import AsgiApp, HttpServer, Request

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RECEIVE_BYTES: Final = 64 * 1024
# Largest message accepted from a client (the tail's clients send nothing much).
MAX_MESSAGE_BYTES: Final = 1 << 20
GOING_AWAY: Final = 1001
INTERNAL_ERROR: Final = 1011
TOO_BIG: Final = 1009
ABNORMAL: Final = 1006
SEND_BUFFER_BYTES: Final = 256 * 1024


# An extension offered to the application in `scope["extensions"]`: `{"send": fn}`, where
# `await fn(data)` writes bytes made by `text_frames` (whole frames, built off the event loop)
# in one go.  A live tail sends thousands of messages a second; one write per batch instead of
# one per message keeps the event loop and the GIL free for ingestion.
FRAMES_EXTENSION: Final = "seqfast.websocket.frames"


def text_frames(messages: Iterable[str], chunk_bytes: int = 256 * 1024) -> list[bytes]:
    """Unmasked, final text frames (RFC 6455 §5.2) of `messages`, joined into chunks of about
    `chunk_bytes` that each hold whole frames."""
    chunks: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    for message in messages:
        payload = message.encode("utf-8")
        n = len(payload)
        if n < 126:
            header = bytes((0x81, n))
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x81, 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 127, n)
        parts += (header, payload)
        size += len(header) + n
        if size >= chunk_bytes:
            chunks.append(b"".join(parts))
            parts, size = [], 0
    if parts:
        chunks.append(b"".join(parts))
    return chunks


def is_upgrade(request: Request) -> bool:
    """True for a request asking to become a WebSocket."""
    return request.method == "GET" and (request.header("upgrade") or "").lower() == "websocket"


def accept_key(key: str) -> str:
    """`Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode()


class _Session:
    def __init__(self, request: Request, server: HttpServer) -> None:
        self.request = request
        self.server = server
        self.conn: h11.Connection = request._conn
        self.stream: trio.abc.Stream = request._stream
        self.ws: Connection | None = None
        self.write_lock = trio.Lock()
        self.broken = False  # a write was cut short: the byte stream is unusable
        self.answered = False  # an HTTP answer (101 or a denial) went out
        self.closed_sent = False
        self.connect_delivered = False
        self.incoming_send, self.incoming = trio.open_memory_channel[dict[str, Any]](16)
        self.disconnect_code: int | None = None
        self.accepted = trio.Event()
        self.denial_status = 500
        self.denial_headers: list[tuple[bytes, bytes]] = []
        self.denial_body = b""

    # -- writing --------------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        if self.broken or not data:
            return
        async with self.write_lock:
            if self.broken:
                return
            self.broken = True
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                # The client went away: the reader sees the end and reports the disconnect.
                return
            self.broken = False

    async def http_answer(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        self.answered = True
        headers = [*headers, (b"connection", b"close"), (b"server", self.server.server_header)]
        if not any(k.lower() == b"content-length" for k, _ in headers):
            headers.append((b"content-length", str(len(body)).encode()))
        data = self.conn.send(h11.Response(status_code=status, headers=headers))
        data += self.conn.send(h11.Data(data=body)) if body else b""
        data += self.conn.send(h11.EndOfMessage())
        await self.write(data)

    # -- ASGI -----------------------------------------------------------------------------------

    async def receive(self) -> MutableMapping[str, Any]:
        if not self.connect_delivered:
            self.connect_delivered = True
            return {"type": "websocket.connect"}
        try:
            return await self.incoming.receive()
        except trio.EndOfChannel:
            return {"type": "websocket.disconnect", "code": self.disconnect_code or ABNORMAL}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            await self.accept(message)
        elif kind == "websocket.send":
            if self.ws is None:
                raise RuntimeError("websocket.send before websocket.accept")
            if self.ws.state is not ConnectionState.OPEN:
                return  # closing or closed: the application learns it from receive()
            text = message.get("text")
            frame: Message[Any] = (
                TextMessage(data=str(text))
                if text is not None
                else BytesMessage(data=bytes(message.get("bytes") or b""))
            )
            await self.write(self.ws.send(frame))
        elif kind == "websocket.close":
            if self.ws is None:
                if not self.answered:
                    body = orjson.dumps({"Error": "the WebSocket was refused"})
                    await self.http_answer(403, [(b"content-type", b"application/json")], body)
                return
            await self.close(int(message.get("code") or 1000), str(message.get("reason") or ""))
        elif kind == "websocket.http.response.start":
            self.denial_status = int(message["status"])
            self.denial_headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
            self.denial_body = b""
        elif kind == "websocket.http.response.body":
            self.denial_body += bytes(message.get("body", b""))
            if not message.get("more_body", False):
                await self.http_answer(self.denial_status, self.denial_headers, self.denial_body)

    async def send_frames(self, data: bytes) -> None:
        """Writes frames made by `text_frames` (the FRAMES_EXTENSION)."""
        if self.ws is None:
            raise RuntimeError("frames sent before websocket.accept")
        if self.ws.state is ConnectionState.OPEN:
            await self.write(data)

    async def accept(self, message: MutableMapping[str, Any]) -> None:
        if self.answered:
            raise RuntimeError("the WebSocket was already answered")
        key = self.request.header("sec-websocket-key") or ""
        headers = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", accept_key(key).encode()),
            (b"server", self.server.server_header),
        ]
        if message.get("subprotocol"):
            headers.append((b"sec-websocket-protocol", str(message["subprotocol"]).encode()))
        headers += [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        data = self.conn.send(h11.InformationalResponse(status_code=101, headers=headers))
        self.answered = True
        self.ws = Connection(ConnectionType.SERVER, trailing_data=self.conn.trailing_data[0])
        # A fixed, modest kernel send buffer: a client that stops reading is noticed after
        # this much rather than after the several MiB autotuning may grow to.
        sock = getattr(self.stream, "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        await self.write(data)
        self.accepted.set()

    async def close(self, code: int, reason: str) -> None:
        if self.ws is None or self.closed_sent:
            return
        self.closed_sent = True
        with contextlib.suppress(LocalProtocolError):
            if self.ws.state is ConnectionState.OPEN:
                await self.write(self.ws.send(CloseConnection(code=code, reason=reason)))

    # -- reading --------------------------------------------------------------------------------

    async def read_frames(self) -> None:
        """Feeds received bytes to wsproto until the client closes or goes away."""
        assert self.ws is not None
        ws = self.ws
        parts: list[str | bytes] = []
        size = 0
        try:
            # Bytes that arrived with the upgrade request were handed to wsproto on accept.
            pending = list(ws.events())
            while True:
                for event in pending:
                    if isinstance(event, Ping):
                        await self.write(ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        self.disconnect_code = event.code
                        if ws.state is ConnectionState.REMOTE_CLOSING:
                            self.closed_sent = True
                            await self.write(ws.send(event.response()))
                        return
                    elif isinstance(event, TextMessage | BytesMessage):
                        parts.append(
                            event.data if isinstance(event.data, str) else bytes(event.data)
                        )
                        size += len(event.data)
                        if size > MAX_MESSAGE_BYTES:
                            await self.close(TOO_BIG, "message too large")
                            self.disconnect_code = TOO_BIG
                            return
                        if event.message_finished:
                            message: dict[str, Any]
                            if isinstance(event, TextMessage):
                                message = {
                                    "type": "websocket.receive",
                                    "text": "".join(p for p in parts if isinstance(p, str)),
                                }
                            else:
                                message = {
                                    "type": "websocket.receive",
                                    "bytes": b"".join(p for p in parts if isinstance(p, bytes)),
                                }
                            parts, size = [], 0
                            await self.incoming_send.send(message)
                data = await self.stream.receive_some(RECEIVE_BYTES)
                if not data:
                    self.disconnect_code = self.disconnect_code or ABNORMAL
                    return
                ws.receive_data(bytes(data))
                pending = list(ws.events())
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.disconnect_code = self.disconnect_code or ABNORMAL
        except LocalProtocolError:
            self.disconnect_code = self.disconnect_code or 1002
        finally:
            self.incoming_send.close()


async def serve(app: AsgiApp, request: Request, server: HttpServer) -> None:
    """Runs one WebSocket connection through `app`; returns when it is over (the caller
    closes the connection)."""
    session = _Session(request, server)
    conn = session.conn
    # The upgrade request has no body: take h11's end of message, leaving any bytes after it
    # (early frames) as trailing data.
    event = conn.next_event()
    version = request.header("sec-websocket-version")
    key = request.header("sec-websocket-key")
    connection = {t.strip().lower() for t in (request.header("connection") or "").split(",")}
    valid = isinstance(event, h11.EndOfMessage) and "upgrade" in connection
    if not valid or version != "13" or not key or server.draining:
        status = 503 if server.draining else 400
        reason = (
            "the server is shutting down"
            if server.draining
            else "a WebSocket upgrade needs Connection: Upgrade, Sec-WebSocket-Key, "
            "Sec-WebSocket-Version 13 and no body"
        )
        with contextlib.suppress(h11.LocalProtocolError):
            await session.http_answer(
                status,
                [(b"content-type", b"application/json")],
                orjson.dumps({"Error": reason}),
            )
        return
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": request.path,
        "raw_path": request.path.encode("latin-1"),
        "query_string": request.query.encode("latin-1"),
        "root_path": "",
        "headers": request.headers,
        "client": request.client,
        "server": request.server,
        "subprotocols": [
            p.strip() for p in (request.header("sec-websocket-protocol") or "").split(",") if p
        ],
        "extensions": {
            "websocket.http.response": {},
            FRAMES_EXTENSION: {"send": session.send_frames},
        },
    }

    async def start_reader() -> None:
        await session.accepted.wait()
        await session.read_frames()

    failed = False
    # A drain (a shutdown) cancels this scope as it cancels an idle connection's wait.
    with trio.CancelScope() as running:
        server._idle.add(running)
        try:
            async with trio.open_nursery() as inner:
                inner.start_soon(start_reader)
                try:
                    await app(scope, session.receive, session.send)
                except Exception as exc:
                    failed = True
                    server.log(
                        "Error",
                        "WebSocket {Path} failed: {Error}",
                        Path=request.path,
                        Error=repr(exc),
                    )
                finally:
                    inner.cancel_scope.cancel()
        finally:
            server._idle.discard(running)
    with trio.move_on_after(1) as cleanup:
        cleanup.shield = True
        if session.ws is not None and not session.closed_sent:
            code, reason = 1000, ""
            if failed:
                code, reason = INTERNAL_ERROR, "internal error"
            elif running.cancelled_caught:
                code, reason = GOING_AWAY, "the server is shutting down"
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await session.close(code, reason)
        elif session.ws is None and not session.answered:
            with contextlib.suppress(h11.LocalProtocolError, trio.BrokenResourceError, OSError):
                await session.http_answer(
                    500,
                    [(b"content-type", b"application/json")],
                    orjson.dumps({"Error": "the WebSocket endpoint ended without answering"}),
                )
