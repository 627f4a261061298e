"""A TCP proxy for fault tests: a node's link to its database, which a test can cut and restore.

`TcpProxy(upstream)` listens on a free loopback port and forwards every connection to
`upstream` (host, port), both ways, until the test changes its mode:

* `cut("reset")`: every open connection is aborted with a TCP reset on both sides (the client
  and the server each see "connection reset by peer"), and every new connection is accepted and
  reset at once, before a byte reaches the server.  The database looks down.
* `cut("blackhole")`: nothing is forwarded any more in either direction, including the end of
  a stream, while every connection stays open and new ones are accepted (with no connection to
  the server behind them).  Bytes sent meanwhile are held.  The database looks silent, as it
  does behind a network partition.  Note that the kernel still acknowledges the bytes, as it
  does on loopback, so the client's `tcp_user_timeout` and keepalives do not fire: a client
  notices only through its own timeouts.
* `restore()`: forwarding resumes.  After a blackhole, the held bytes are delivered in order
  (and held ends of streams passed on), as TCP retransmission delivers them when a partition
  heals: a statement sent during the cut reaches the server late, which is exactly the case
  that fencing is for.  Connections accepted during the blackhole are connected to the server
  then.

`cut` and `restore` take effect before they return: the forwarding thread has applied them, so
a test can take the time of the fault right after the call.

One thread, a selector and non-blocking sockets do all the forwarding; the public methods are
safe to call from any thread.
"""

from __future__ import annotations

import contextlib
import errno
import queue
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Literal

__all__ = ["CutMode", "ProxyStats", "TcpProxy"]

CutMode = Literal["reset", "blackhole"]

_CHUNK: Final = 65536
# A direction holding more than this stops reading from its source (back-pressure), so a held
# stream cannot grow without bound during a long blackhole.
_MAX_PENDING: Final = 4 << 20
_CONNECT_TIMEOUT: Final = 2.0
_COMMAND_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class ProxyStats:
    """Counters since the proxy started."""

    accepted: int
    """Connections accepted from clients."""
    open: int
    """Connections open now."""
    reset: int
    """Connections aborted with a reset (by `cut("reset")`, or because the other side failed)."""
    bytes_to_upstream: int
    bytes_to_client: int


@dataclass(eq=False)
class _Direction:
    """One direction of a connection: bytes read from `source`, waiting to go to `sink`."""

    pending: bytearray = field(default_factory=bytearray)
    eof: bool = False  # the source ended its stream
    shut: bool = False  # ... and that end was passed on to the sink


@dataclass(eq=False)
class _Link:
    client: socket.socket
    upstream: socket.socket | None
    to_upstream: _Direction = field(default_factory=_Direction)
    to_client: _Direction = field(default_factory=_Direction)
    closed: bool = False


def _abort(sock: socket.socket | None) -> None:
    """Close `sock` with a reset rather than an orderly end of stream."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """A TCP proxy from a free loopback port to `upstream` (see the module docstring)."""

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1") -> None:
        self.upstream: Final = upstream
        self._listener = socket.create_server((host, 0))
        self._listener.setblocking(False)
        self.host: Final = host
        self.port: Final[int] = self._listener.getsockname()[1]
        self._mode: Literal["open", "reset", "blackhole"] = "open"
        self._links: set[_Link] = set()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._commands: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = (
            queue.SimpleQueue()
        )
        self._accepted = 0
        self._reset = 0
        self._up_bytes = 0
        self._down_bytes = 0
        self._stopping = False
        self._failure: BaseException | None = None
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(
            target=self._run, name=f"tcp-proxy-{self.port}", daemon=True
        )
        self._thread.start()

    # -- the test's side -------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def mode(self) -> Literal["open", "reset", "blackhole"]:
        return self._mode

    def cut(self, mode: CutMode = "reset") -> None:
        """Cut the link (see the module docstring); in effect when this returns."""
        if mode not in ("reset", "blackhole"):
            raise ValueError(f"a cut is 'reset' or 'blackhole', not {mode!r}")
        self._call(lambda: self._set_mode(mode))

    def restore(self) -> None:
        """Forward again (see the module docstring); in effect when this returns."""
        self._call(lambda: self._set_mode("open"))

    def stats(self) -> ProxyStats:
        result: list[ProxyStats] = []
        self._call(
            lambda: result.append(
                ProxyStats(
                    accepted=self._accepted,
                    open=len(self._links),
                    reset=self._reset,
                    bytes_to_upstream=self._up_bytes,
                    bytes_to_client=self._down_bytes,
                )
            )
        )
        return result[0]

    def close(self) -> None:
        """Stop: every connection is aborted and the port is closed.  Idempotent."""
        if not self._thread.is_alive():
            return
        self._stopping = True
        self._wake()
        self._thread.join(_COMMAND_TIMEOUT)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, command: Callable[[], None]) -> None:
        if self._failure is not None:
            raise RuntimeError("the proxy's forwarding thread failed") from self._failure
        if not self._thread.is_alive():
            raise RuntimeError("the proxy is closed")
        done = threading.Event()
        self._commands.put((command, done))
        self._wake()
        if not done.wait(_COMMAND_TIMEOUT):
            raise RuntimeError("the proxy's forwarding thread did not answer")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # -- the forwarding thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, mask in self._selector.select():
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._drain_commands()
                    else:
                        link, is_client = key.data
                        if not link.closed:
                            self._serve(link, is_client, mask)
        except BaseException as exc:  # reported to the next caller; the test must see it
            self._failure = exc
            raise
        finally:
            for link in list(self._links):
                self._close_link(link, abort=True)
            self._selector.close()
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.close()
            # Release callers waiting on a command that will never run.
            while not self._commands.empty():
                self._commands.get_nowait()[1].set()

    def _drain_commands(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass
        while not self._commands.empty():
            command, done = self._commands.get_nowait()
            try:
                command()
            finally:
                done.set()

    def _set_mode(self, mode: Literal["open", "reset", "blackhole"]) -> None:
        self._mode = mode
        if mode == "reset":
            for link in list(self._links):
                self._close_link(link, abort=True)
            return
        if mode == "open":
            for link in list(self._links):
                if link.upstream is None and not self._connect_upstream(link):
                    continue
                self._flush(link)
        for link in list(self._links):
            if not link.closed:
                self._update_interest(link)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ECONNABORTED):
                    return
                raise
            self._accepted += 1
            if self._mode == "reset":
                self._reset += 1
                _abort(client)
                continue
            client.setblocking(False)
            link = _Link(client=client, upstream=None)
            self._links.add(link)
            self._selector.register(client, selectors.EVENT_READ, (link, True))
            if self._mode == "open":
                self._connect_upstream(link)

    def _connect_upstream(self, link: _Link) -> bool:
        """Connect `link` to the server; on failure reset the client (as a refused connection
        would look to it) and return False."""
        try:
            upstream = socket.create_connection(self.upstream, timeout=_CONNECT_TIMEOUT)
        except OSError:
            self._close_link(link, abort=True)
            return False
        upstream.setblocking(False)
        link.upstream = upstream
        self._selector.register(upstream, selectors.EVENT_READ, (link, False))
        self._update_interest(link)
        return True

    def _serve(self, link: _Link, is_client: bool, mask: int) -> None:
        source = link.client if is_client else link.upstream
        assert source is not None
        inbound = link.to_upstream if is_client else link.to_client
        if mask & selectors.EVENT_READ and not inbound.eof:
            try:
                data = source.recv(_CHUNK)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._close_link(link, abort=True)
                return
            if data is not None:
                if data:
                    inbound.pending += data
                else:
                    inbound.eof = True
        if mask & selectors.EVENT_WRITE:
            pass  # handled by the flush below, for both directions
        if self._mode == "open":
            self._flush(link)
        if not link.closed:
            self._update_interest(link)

    def _flush(self, link: _Link) -> None:
        """Send what is pending in both directions, as far as the sockets take it."""
        if link.upstream is None:
            return
        for direction, sink, to_upstream in (
            (link.to_upstream, link.upstream, True),
            (link.to_client, link.client, False),
        ):
            if link.closed:
                return
            while direction.pending:
                try:
                    sent = sink.send(direction.pending)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self._close_link(link, abort=True)
                    return
                del direction.pending[:sent]
                if to_upstream:
                    self._up_bytes += sent
                else:
                    self._down_bytes += sent
            if direction.eof and not direction.pending and not direction.shut:
                direction.shut = True
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
        if link.to_upstream.shut and link.to_client.shut:
            self._close_link(link, abort=False)

    def _update_interest(self, link: _Link) -> None:
        forwarding = self._mode == "open" and link.upstream is not None
        for sock, inbound, outbound in (
            (link.client, link.to_upstream, link.to_client),
            (link.upstream, link.to_client, link.to_upstream),
        ):
            if sock is None:
                continue
            events = 0
            if not inbound.eof and len(inbound.pending) < _MAX_PENDING:
                events |= selectors.EVENT_READ
            if forwarding and outbound.pending:
                events |= selectors.EVENT_WRITE
            key = self._selector.get_map().get(sock)
            if events == 0:
                if key is not None:
                    self._selector.unregister(sock)
            elif key is None:
                self._selector.register(sock, events, (link, sock is link.client))
            elif key.events != events:
                self._selector.modify(sock, events, (link, sock is link.client))

    def _close_link(self, link: _Link, *, abort: bool) -> None:
        if link.closed:
            return
        link.closed = True
        self._links.discard(link)
        if abort:
            self._reset += 1
        for sock in (link.client, link.upstream):
            if sock is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            if abort:
                _abort(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()
