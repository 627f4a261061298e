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

Connections to the leader are kept alive and reused (a small pool of idle ones per leader
address): a new TCP connection per forwarded request cost the leader about a third more CPU
per ingested event.  Only a connection whose exchange ended cleanly goes back to the pool, and
only for a few seconds; one that fails on reuse before any answer arrived, while the request
body was not yet consumed, is replaced by a fresh connection once.

A forwarded request carries `X-Seqfast-Proxied-By`; a node that receives one while it is not
the leader answers 503 instead of forwarding again, so two nodes with stale views of the leader
cannot bounce a request between them.
"""

from __future__ import annotations

import contextlib
import math
import select
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
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
# Idle connections kept per upstream address: enough for the few clients that usually feed a
# follower at once (a burst beyond it opens extra connections, closed after their exchange).
POOL_IDLE_PER_UPSTREAM: Final = 8
# How often the idle connections are looked over (expired ones closed), at most.
POOL_SWEEP_INTERVAL: Final = 1.0


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
    pooled: float = 4.0
    """How long an idle connection to the upstream is kept for reuse.  Far below the
    leader's keep-alive timeout (`Limits.keepalive_timeout`, 75 s by default), so that the
    leader hardly ever closes one just as it is reused."""


class _UpstreamFailed(Exception):
    """The upstream node could not be reached or did not answer; nothing was relayed."""


class _UpstreamGone(_UpstreamFailed):
    """The connection failed or was closed by the upstream (not a timeout, not bad HTTP)."""


class _UpstreamClosed(Exception):
    """The upstream closed its side while the request was being sent."""


@dataclass(eq=False)
class _Link:
    """One connection to an upstream node with its HTTP/1.1 client state, and what of the
    current exchange has happened on it (which decides whether a failure may be retried)."""

    stream: trio.SocketStream
    client: h11.Connection
    reused: bool = False
    body_taken: bool = False
    """Part of the client's request body was read to be sent: it cannot be sent again."""
    answered: bool = False
    """Bytes of a response arrived."""
    idle_since: float = 0.0

    def close(self) -> None:
        # Synchronous (the socket's own close): callable from anywhere, cannot be cancelled.
        self.stream.socket.close()


def _looks_idle(stream: trio.SocketStream) -> bool:
    """Whether an idle connection shows nothing to read: a leader that closed it (EOF, reset)
    or sent something unasked makes it readable, and it must not carry a request."""
    try:
        fileno = stream.socket.fileno()
        if not hasattr(select, "poll"):  # Windows, where `select` limits the count, not fd numbers
            return not select.select([fileno], [], [], 0)[0]
        poller = select.poll()
        poller.register(fileno, select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError):  # closed already (fileno -1)
        return False


@dataclass(eq=False)
class _Pool:
    """Idle keep-alive connections per upstream address, newest last."""

    size: int
    max_idle: float
    idle: dict[tuple[str, int], deque[_Link]] = field(default_factory=dict)
    sweeping: bool = False

    def take(self, address: tuple[str, int]) -> _Link | None:
        links = self.idle.get(address)
        now = trio.current_time()
        while links:
            link = links.pop()  # the newest: the least likely to have been closed meanwhile
            if now - link.idle_since < self.max_idle and _looks_idle(link.stream):
                link.reused, link.body_taken, link.answered = True, False, False
                return link
            link.close()
        return None

    def put(self, address: tuple[str, int], link: _Link) -> None:
        link.idle_since = trio.current_time()
        links = self.idle.setdefault(address, deque())
        links.append(link)
        while len(links) > self.size:
            links.popleft().close()
        if not self.sweeping:
            # Every idle connection is closed within `max_idle` even when no request comes
            # (say the leader moved elsewhere), and all of them when the event loop ends (a
            # shutdown): a system task outlives the request that started it.
            self.sweeping = True
            trio.lowlevel.spawn_system_task(self._sweep, name="seqfast proxy pool sweeper")

    async def _sweep(self) -> None:
        try:
            while self.idle:
                await trio.sleep(min(POOL_SWEEP_INTERVAL, self.max_idle))
                self.close_expired()
        finally:
            self.sweeping = False
            if self.idle:  # cancelled: the event loop is ending
                self.close_all()

    def close_expired(self) -> None:
        oldest = trio.current_time() - self.max_idle
        for address, links in list(self.idle.items()):
            while links and links[0].idle_since <= oldest:
                links.popleft().close()
            if not links:
                del self.idle[address]

    def close_all(self) -> None:
        for links in self.idle.values():
            for link in links:
                link.close()
        self.idle.clear()


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
        self._pool = _Pool(POOL_IDLE_PER_UPSTREAM, timeouts.pooled)

    def unavailable(self, reason: str) -> Response:
        return error_response(503, reason, [("Retry-After", str(self.retry_after_seconds))])

    async def forward_to(
        self, upstream: Upstream, request: Request, server: HttpServer
    ) -> Response | None:
        """Relays `request` to `upstream` and its response back; None once the response is
        written, or a 503 to send when the upstream could not be reached."""
        try:
            address = upstream.address()
        except ValueError as exc:
            return self._failed(upstream, request, str(exc))
        link = self._pool.take(address)
        while True:
            if link is None:
                try:
                    link = _Link(await self._connect(address), h11.Connection(h11.CLIENT))
                except _UpstreamFailed as exc:
                    return self._failed(upstream, request, str(exc))
            try:
                await self._send_request(link, upstream, request)
                head = await self._receive_head(link)
                break
            except _UpstreamGone as exc:
                link.close()
                # A kept connection the leader closed just before (or as) it was reused: the
                # request did not get an answer and, with nothing of its body consumed, can go
                # out again as it came, once, on a new connection.  (Had the leader acted on
                # it and died before answering, the 503 below would have the client retry it
                # anyway.)
                if link.reused and not link.answered and not link.body_taken:
                    link = None
                    continue
                return self._failed(upstream, request, str(exc))
            except _UpstreamFailed as exc:
                link.close()
                return self._failed(upstream, request, str(exc))
            except BaseException:
                link.close()
                raise
        reusable = False
        try:
            if isinstance(head, h11.InformationalResponse):
                await self._tunnel(link, head, request, server)
                raise trio.ClosedResourceError("the switched connection is over")
            await self._relay_response(link, head, request, server)
            reusable = self._reusable(link, request, server)
        finally:
            if reusable:
                link.client.start_next_cycle()
                self._pool.put(address, link)
            else:
                with trio.move_on_after(1) as cleanup:
                    cleanup.shield = True
                    await link.stream.aclose()
        if not request.body_done or request._conn.our_state is not h11.DONE:
            # The client's body was not read whole (the upstream answered early) or the
            # response was marked "connection: close": this connection cannot carry another.
            raise trio.ClosedResourceError("the forwarded exchange ends the connection")
        return None

    @staticmethod
    def _reusable(link: _Link, request: Request, server: HttpServer) -> bool:
        """Whether the upstream connection can carry another request, its exchange over: both
        sides done by h11 (neither said `Connection: close`, the whole body went out), nothing
        unasked behind the response, no protocol switch asked for, and no shutdown under way."""
        client = link.client
        return (
            client.our_state is h11.DONE
            and client.their_state is h11.DONE
            and not client.trailing_data[0]
            and not is_upgrade(request)
            and not server.draining
        )

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

    async def _connect(self, address: tuple[str, int]) -> trio.SocketStream:
        host, port = address
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

    async def _send_request(self, link: _Link, upstream: Upstream, request: Request) -> None:
        head = h11.Request(
            method=request.method,
            target=request.target.encode("latin-1"),
            headers=self._request_headers(upstream, request),
        )
        try:
            # Inside the same guard as the body: an upstream that closes as the head goes out
            # (a leader dying) is answered below by `_receive_head` as a clean 503.
            stream, client = link.stream, link.client
            await self._send_upstream(stream, client.send(head))
            async for chunk in request.body_chunks():
                link.body_taken = True
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

    async def _receive_head(self, link: _Link) -> h11.Response | h11.InformationalResponse:
        """The response head; a 101 (Switching Protocols) too, which only an upgrade request
        can get."""
        deadline = trio.current_time() + self.timeouts.response
        while True:
            event = await self._next(
                link, deadline, f"no response within {self.timeouts.response:g} s"
            )
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return event
                continue  # 100 Continue: the body was sent anyway
            raise _UpstreamGone("it closed the connection without answering")

    async def _next(self, link: _Link, deadline: float, late: str) -> object:
        """The next event from the upstream; `late` says what went wrong at the deadline."""
        stream, client = link.stream, link.client
        while True:
            try:
                event = client.next_event()
            except h11.RemoteProtocolError as exc:
                if client.trailing_data[1]:
                    raise _UpstreamGone("it closed the connection before answering") from None
                raise _UpstreamFailed(f"its answer is not valid HTTP ({exc})") from None
            if event is not h11.NEED_DATA:
                return event
            with trio.move_on_at(deadline):
                try:
                    data = await stream.receive_some(RECEIVE_BYTES)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    raise _UpstreamGone(f"the connection failed ({exc})") from None
                link.answered = link.answered or bool(data)
                client.receive_data(bytes(data))
                continue
            raise _UpstreamFailed(late)

    async def _tunnel(
        self,
        link: _Link,
        head: h11.InformationalResponse,
        request: Request,
        server: HttpServer,
    ) -> None:
        """Relays the upstream's 101 and then bytes both ways, as they come, until either side
        closes (the WebSocket's own close handshake has happened by then) or the server drains
        (a shutdown: the client reconnects to another node)."""
        conn, downstream = request._conn, request._stream
        stream, client = link.stream, link.client
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
        link: _Link,
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
                    link,
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
