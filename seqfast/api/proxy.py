"""Forwarding a follower's API and ingestion requests to the leader, streamed both ways.

Only the leader writes, so a follower serves nothing of `/api/*` and `/ingest/*` itself: it
sends each such request on to the leader and relays the answer, so that clients may talk to any
node.  Bodies are streamed in both directions (a 10 MiB batch is never held whole here), the
status and end-to-end headers come back unchanged, hop-by-hop headers (RFC 9110 §7.6.1) are
dropped, and `Via` plus `X-Seqfast-Proxied-By` say which node forwarded it.

When the leader cannot be reached — no leader known, connection refused, no answer in time —
nothing has been relayed yet, so the client gets a plain 503 with `Retry-After` and may retry
(against this node or another).  A failure after the response has begun can only cut the
response short, which the client sees as a truncated reply.

A request to switch protocols (the live tail's WebSocket) is forwarded with its `Upgrade`; when
the leader answers 101, the connection becomes a byte tunnel between client and leader until
either side closes.

A forwarded request carries `X-Seqfast-Proxied-By`; a node that receives one while it is not
the leader answers 503 instead of forwarding again, so two nodes with stale views of the leader
cannot bounce a request between them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlsplit

import h11
import trio

from seqfast.api.http import (
    RECEIVE_BYTES,
    HttpServer,
    Request,
    Response,
    error_response,
)
from seqfast.api.ingest import INGEST_PATHS

PROXIED_BY: Final = "x-seqfast-proxied-by"
# Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the framing
# headers h11 sets itself and `expect`, which this node answers on its own side.
HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
    }
)
NO_LEADER_RETRY_AFTER: Final = 1
FAILURE_LOG_INTERVAL: Final = 5.0  # seconds between reports of failed forwards


def forwarded_path(path: str) -> bool:
    """Whether a follower forwards requests for `path`: the API and ingestion, never health."""
    return (
        path == "/api"
        or path.startswith("/api/")
        or path.startswith("/ingest/")
        or path in INGEST_PATHS
    )


def is_upgrade(request: Request) -> bool:
    """Whether `request` asks to switch protocols (`Connection: upgrade` and `Upgrade`)."""
    connection = request.header("connection") or ""
    return request.header("upgrade") is not None and "upgrade" in {
        token.strip().lower() for token in connection.split(",")
    }


def end_to_end_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` without the hop-by-hop ones, including any that `Connection` names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    return [
        (name, value)
        for name, value in headers
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    ]


@dataclass(frozen=True)
class Upstream:
    """The node requests go to: its id and the base URL it advertises (http://host:port)."""

    node_id: str
    url: str

    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"cannot forward to {self.url!r}: only http:// URLs are supported")
        return parts.hostname, parts.port or 80

    @property
    def authority(self) -> str:
        return urlsplit(self.url).netloc


@dataclass(frozen=True)
class ProxyTimeouts:
    connect: float = 5.0
    """To open the connection to the upstream node."""
    response: float = 120.0
    """For the response head, once the whole request is sent (a large batch takes a while to
    commit on the leader)."""
    idle: float = 30.0
    """Without progress while sending the body to the upstream or relaying its response."""


class _UpstreamFailed(Exception):
    """The upstream node could not be reached or did not answer; nothing was relayed."""


class _UpstreamClosed(Exception):
    """The upstream closed its side while the request was being sent."""


class Proxy:
    """Forwards requests of an `HttpServer` connection to another node."""

    def __init__(
        self,
        node_id: str,
        log: Callable[..., None],
        timeouts: ProxyTimeouts = ProxyTimeouts(),  # frozen: sharing the default is safe
        retry_after_seconds: int = NO_LEADER_RETRY_AFTER,
    ) -> None:
        self.node_id = node_id
        self.log = log
        self.timeouts = timeouts
        self.retry_after_seconds = retry_after_seconds
        self.via = f"1.1 {node_id}".encode()
        # During a failover every forwarded request fails alike: log one in a while, counted.
        self._last_failure_logged = -math.inf
        self._failures_unlogged = 0

    def unavailable(self, reason: str) -> Response:
        return error_response(503, reason, [("Retry-After", str(self.retry_after_seconds))])

    async def forward_to(
        self, upstream: Upstream, request: Request, server: HttpServer
    ) -> Response | None:
        """Relays `request` to `upstream` and its response back; None once the response is
        written, or a 503 to send when the upstream could not be reached."""
        try:
            stream = await self._connect(upstream)
        except _UpstreamFailed as exc:
            return self._failed(upstream, request, str(exc))
        try:
            client = h11.Connection(h11.CLIENT)
            try:
                await self._send_request(stream, client, upstream, request)
                head = await self._receive_head(stream, client)
            except _UpstreamFailed as exc:
                return self._failed(upstream, request, str(exc))
            if isinstance(head, h11.InformationalResponse):
                await self._tunnel(stream, client, head, request, server)
                raise trio.ClosedResourceError("the switched connection is over")
            await self._relay_response(stream, client, head, request, server)
        finally:
            with trio.move_on_after(1) as cleanup:
                cleanup.shield = True
                await stream.aclose()
        if not request.body_done or request._conn.our_state is not h11.DONE:
            # The client's body was not read whole (the upstream answered early) or the
            # response was marked "connection: close": this connection cannot carry another.
            raise trio.ClosedResourceError("the forwarded exchange ends the connection")
        return None

    def _failed(self, upstream: Upstream, request: Request, why: str) -> Response:
        now = trio.current_time()
        if now - self._last_failure_logged >= FAILURE_LOG_INTERVAL:
            self.log(
                "Warning",
                "Cannot forward {Method} {Path} to the leader {LeaderId} at {LeaderUrl}: "
                "{Reason} ({Unlogged} more failures since the last report)",
                Method=request.method,
                Path=request.path,
                LeaderId=upstream.node_id,
                LeaderUrl=upstream.url,
                Reason=why,
                Unlogged=self._failures_unlogged,
            )
            self._last_failure_logged = now
            self._failures_unlogged = 0
        else:
            self._failures_unlogged += 1
        return self.unavailable(
            f"the leader {upstream.node_id} at {upstream.url} cannot be reached ({why}); "
            "retry shortly"
        )

    async def _connect(self, upstream: Upstream) -> trio.SocketStream:
        try:
            host, port = upstream.address()
        except ValueError as exc:
            raise _UpstreamFailed(str(exc)) from None
        with trio.move_on_after(self.timeouts.connect):
            try:
                return await trio.open_tcp_stream(host, port)
            except OSError as exc:
                raise _UpstreamFailed(exc.strerror or str(exc)) from None
        raise _UpstreamFailed(f"no connection within {self.timeouts.connect:g} s")

    def _request_headers(self, upstream: Upstream, request: Request) -> list[tuple[bytes, bytes]]:
        replaced = (b"host", b"content-length", b"x-forwarded-for", b"x-forwarded-host")
        headers = [
            (name, value)
            for name, value in end_to_end_headers(request.headers)
            if name not in replaced
        ]
        length = request.header("content-length")
        if length is not None:
            headers.append((b"content-length", length.encode("latin-1")))
        elif request.header("transfer-encoding") is not None:
            headers.append((b"transfer-encoding", b"chunked"))
        original_host = request.header("host")
        headers.append((b"host", upstream.authority.encode("latin-1")))
        forwarded_host = request.header("x-forwarded-host") or original_host
        if forwarded_host is not None:
            headers.append((b"x-forwarded-host", forwarded_host.encode("latin-1")))
        # The clients the request passed through so far, then this hop's.
        chain = [
            value.decode("latin-1").strip()
            for name, value in request.headers
            if name == b"x-forwarded-for"
        ]
        if request.client is not None:
            chain.append(request.client[0])
        if chain:
            headers.append((b"x-forwarded-for", ", ".join(chain).encode("latin-1")))
        if is_upgrade(request):
            # A WebSocket (the live tail): ask the upstream to switch too, then tunnel.
            headers.append((b"connection", b"upgrade"))
            headers.append((b"upgrade", (request.header("upgrade") or "").encode("latin-1")))
        headers.append((b"via", self.via))
        headers.append((PROXIED_BY.encode(), self.node_id.encode()))
        return headers

    async def _send_request(
        self,
        stream: trio.SocketStream,
        client: h11.Connection,
        upstream: Upstream,
        request: Request,
    ) -> None:
        head = h11.Request(
            method=request.method,
            target=request.target.encode("latin-1"),
            headers=self._request_headers(upstream, request),
        )
        try:
            # Inside the same guard as the body: an upstream that closes as the head goes out
            # (a leader dying) is answered below by `_receive_head` as a clean 503.
            await self._send_upstream(stream, client.send(head))
            async for chunk in request.body_chunks():
                await self._send_upstream(stream, client.send(h11.Data(data=chunk)))
            await self._send_upstream(stream, client.send(h11.EndOfMessage()))
        except _UpstreamClosed:
            # The upstream stopped reading: it may have answered early (413, 401); what it
            # said is read next, and the client's connection is closed afterwards.
            return

    async def _send_upstream(self, stream: trio.SocketStream, data: bytes | None) -> None:
        if not data:
            return
        with trio.move_on_after(self.timeouts.idle) as scope:
            try:
                await stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                raise _UpstreamClosed from None
        if scope.cancelled_caught:
            raise _UpstreamFailed(f"it accepted no request data for {self.timeouts.idle:g} s")

    async def _receive_head(
        self, stream: trio.SocketStream, client: h11.Connection
    ) -> h11.Response | h11.InformationalResponse:
        """The response head; a 101 (Switching Protocols) too, which only an upgrade request
        can get."""
        deadline = trio.current_time() + self.timeouts.response
        while True:
            event = await self._next(
                stream, client, deadline, f"no response within {self.timeouts.response:g} s"
            )
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return event
                continue  # 100 Continue: the body was sent anyway
            raise _UpstreamFailed("it closed the connection without answering")

    async def _next(
        self, stream: trio.SocketStream, client: h11.Connection, deadline: float, late: str
    ) -> object:
        """The next event from the upstream; `late` says what went wrong at the deadline."""
        while True:
            try:
                event = client.next_event()
            except h11.RemoteProtocolError as exc:
                if client.trailing_data[1]:
                    raise _UpstreamFailed("it closed the connection before answering") from None
                raise _UpstreamFailed(f"its answer is not valid HTTP ({exc})") from None
            if event is not h11.NEED_DATA:
                return event
            with trio.move_on_at(deadline):
                try:
                    data = await stream.receive_some(RECEIVE_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    raise _UpstreamFailed(f"the connection failed ({exc})") from None
                client.receive_data(bytes(data))
                continue
            raise _UpstreamFailed(late)

    async def _tunnel(
        self,
        stream: trio.SocketStream,
        client: h11.Connection,
        head: h11.InformationalResponse,
        request: Request,
        server: HttpServer,
    ) -> None:
        """Relays the upstream's 101 and then bytes both ways, as they come, until either side
        closes (the WebSocket's own close handshake has happened by then) or the server drains
        (a shutdown: the client reconnects to another node)."""
        conn, downstream = request._conn, request._stream
        headers = end_to_end_headers(list(head.headers))
        headers += [(b"connection", b"upgrade"), (b"via", self.via)]
        headers.append((PROXIED_BY.encode(), self.node_id.encode()))
        upgrade = dict(head.headers).get(b"upgrade")
        if upgrade is not None:
            headers.append((b"upgrade", upgrade))
        await downstream.send_all(
            conn.send(
                h11.InformationalResponse(status_code=101, headers=headers, reason=head.reason)
            )
        )
        # Bytes that came along with the heads belong to the new protocol already.
        early_up, early_down = conn.trailing_data[0], client.trailing_data[0]

        async def pipe(source: trio.abc.Stream, sink: trio.abc.Stream, early: bytes) -> None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                if early:
                    await sink.send_all(early)
                while data := await source.receive_some(RECEIVE_BYTES):
                    await sink.send_all(data)
            tunnel.cancel_scope.cancel()  # one side is gone: so is the tunnel

        # A drain cancels the tunnel as it cancels an idle connection's wait.
        running = trio.CancelScope()
        server._idle.add(running)
        try:
            if server.draining:
                running.cancel()
            with running:
                async with trio.open_nursery() as tunnel:
                    tunnel.start_soon(pipe, downstream, stream, bytes(early_up))
                    tunnel.start_soon(pipe, stream, downstream, bytes(early_down))
        finally:
            server._idle.discard(running)

    async def _relay_response(
        self,
        stream: trio.SocketStream,
        client: h11.Connection,
        head: h11.Response,
        request: Request,
        server: HttpServer,
    ) -> None:
        conn, downstream = request._conn, request._stream
        headers = end_to_end_headers(list(head.headers))
        headers.append((b"via", self.via))
        headers.append((PROXIED_BY.encode(), self.node_id.encode()))
        if server.draining or not request.body_done:
            headers.append((b"connection", b"close"))
        await downstream.send_all(
            conn.send(
                h11.Response(
                    status_code=head.status_code,
                    headers=headers,
                    reason=head.reason,
                )
            )
        )
        while True:
            try:
                event = await self._next(
                    stream,
                    client,
                    trio.current_time() + self.timeouts.idle,
                    f"no data for {self.timeouts.idle:g} s",
                )
            except _UpstreamFailed as exc:
                # The head is out: the only honest signal left is to cut the response short.
                self.log(
                    "Warning",
                    "The response to {Method} {Path} from the leader broke off: {Reason}",
                    Method=request.method,
                    Path=request.path,
                    Reason=str(exc),
                )
                raise trio.ClosedResourceError("the upstream response broke off") from None
            if isinstance(event, h11.Data):
                data = conn.send(h11.Data(data=bytes(event.data)))
                if data:
                    await downstream.send_all(data)
            elif isinstance(event, h11.EndOfMessage):
                await downstream.send_all(conn.send(h11.EndOfMessage()) or b"")
                return
            else:
                raise trio.ClosedResourceError("the upstream response broke off")


class Leadership(Protocol):
    """What forwarding needs of the node runtime: its role and the leader it knows."""

    @property
    def role(self) -> str: ...

    @property
    def leader(self) -> LeaderAddress | None: ...


class LeaderAddress(Protocol):
    @property
    def node_id(self) -> str: ...

    @property
    def api_url(self) -> str: ...


LEADER_ROLE: Final = "leader"


class LeaderForwarding:
    """The `Forwarding` of a cluster node: serve here when leading, else forward to the leader."""

    def __init__(self, runtime: Leadership, proxy: Proxy) -> None:
        self.runtime = runtime
        self.proxy = proxy

    def wants(self, request: Request) -> bool:
        return self.runtime.role != LEADER_ROLE and forwarded_path(request.path)

    async def forward(self, request: Request, server: HttpServer) -> Response | None:
        leader = self.runtime.leader
        if leader is None:
            return self.proxy.unavailable("no leader is known yet; retry shortly")
        if leader.node_id == self.proxy.node_id:
            # Won the lease but not leading yet (or no longer): nothing serves writes here.
            return self.proxy.unavailable("leadership is changing on this node; retry shortly")
        if request.header(PROXIED_BY) is not None:
            return self.proxy.unavailable(
                "this request was forwarded to a node that is not the leader; retry shortly"
            )
        return await self.proxy.forward_to(
            Upstream(leader.node_id, leader.api_url), request, server
        )


__all__ = [
    "HOP_BY_HOP",
    "PROXIED_BY",
    "LeaderForwarding",
    "Leadership",
    "Proxy",
    "ProxyTimeouts",
    "Upstream",
    "end_to_end_headers",
    "forwarded_path",
]
