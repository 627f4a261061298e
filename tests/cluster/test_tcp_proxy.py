"""The fault proxy between a node and its database, on real loopback sockets: bytes pass both
ways unchanged, a reset cut kills every flow and refuses new ones, a blackhole stalls flows
without ending them, and restore brings everything back (the held bytes included).  Last, the
same against the real PostgreSQL, as the nodes use it."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqfast.testing.cluster_harness import POSTGRES_HOST, POSTGRES_PORT
from seqfast.testing.tcp_proxy import TcpProxy

# How long "nothing arrives" is watched for; a bound on a negative observation, not a timing.
QUIET = 0.4
WAIT = 10.0


class EchoServer:
    """Answers every byte it receives with the same byte; records connections it saw end."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.ended: list[str] = []  # "eof" or "reset", one per finished connection
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        outcome = "eof"
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except ConnectionResetError:
                outcome = "reset"
            except OSError:
                outcome = "error"
        with self.lock:
            self.ended.append(outcome)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[TcpProxy]:
    with TcpProxy(("127.0.0.1", echo.port)) as p:
        yield p


def connect(proxy: TcpProxy) -> socket.socket:
    sock = socket.create_connection(proxy.address, timeout=WAIT)
    return sock


def assert_refused(proxy: TcpProxy) -> None:
    """The connection is reset, at connect or at the first read, before any byte comes."""
    # (A write after the reset has arrived fails with EPIPE instead.)
    with pytest.raises((ConnectionResetError, BrokenPipeError)), connect(proxy) as sock:
        sock.sendall(b"x")
        assert sock.recv(10) == b"", "no byte may come back"
        raise AssertionError("the connection ended without a reset")


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def round_trip(sock: socket.socket, payload: bytes) -> bytes:
    """Send `payload` while reading the echo (a large payload would fill both directions'
    buffers if sent first)."""
    received = bytearray()

    def reader() -> None:
        received.extend(recv_exactly(sock, len(payload)))

    thread = threading.Thread(target=reader)
    thread.start()
    sock.sendall(payload)
    thread.join(WAIT)
    return bytes(received)


def wait_until(predicate: object, what: str) -> None:
    import time

    deadline = time.monotonic() + WAIT
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payloads=st.lists(st.binary(min_size=1, max_size=300_000), min_size=1, max_size=4))
def test_bytes_pass_both_ways_unchanged(proxy: TcpProxy, payloads: list[bytes]) -> None:
    with connect(proxy) as sock:
        for payload in payloads:
            assert round_trip(sock, payload) == payload


def test_many_connections_at_once_stay_separate(proxy: TcpProxy) -> None:
    socks = [connect(proxy) for _ in range(20)]
    try:
        for i, sock in enumerate(socks):
            sock.sendall(f"connection {i};".encode())
        for i, sock in enumerate(socks):
            expected = f"connection {i};".encode()
            assert recv_exactly(sock, len(expected)) == expected
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: proxy.stats().open == 0, "closed connections are let go")


def test_end_of_stream_passes_through(proxy: TcpProxy, echo: EchoServer) -> None:
    with connect(proxy) as sock:
        assert round_trip(sock, b"hello") == b"hello"
        sock.shutdown(socket.SHUT_WR)
        # The echo server sees the end, finishes, and its own end comes back.
        assert sock.recv(10) == b""
    wait_until(lambda: echo.ended == ["eof"], "the server saw an orderly end")


def test_reset_cut_kills_open_flows_on_both_sides(proxy: TcpProxy, echo: EchoServer) -> None:
    socks = [connect(proxy) for _ in range(3)]
    for sock in socks:
        assert round_trip(sock, b"ping") == b"ping"
    proxy.cut("reset")
    for sock in socks:
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.sendall(b"after the cut")
            sock.recv(10)
        sock.close()
    wait_until(lambda: echo.ended == ["reset"] * 3, "the server saw every flow reset")
    assert proxy.stats().open == 0


def test_reset_cut_refuses_new_connections_until_restored(
    proxy: TcpProxy, echo: EchoServer
) -> None:
    proxy.cut("reset")
    for _ in range(3):
        assert_refused(proxy)
    assert echo.ended == []  # nothing reached the server
    proxy.restore()
    with connect(proxy) as sock:
        assert round_trip(sock, b"back") == b"back"


def test_blackhole_stalls_flows_and_restore_delivers_what_was_held(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        assert round_trip(sock, b"before") == b"before"
        proxy.cut("blackhole")
        sock.sendall(b"held")
        sock.settimeout(QUIET)
        with pytest.raises(TimeoutError):
            sock.recv(10)  # silence, but no reset and no end of stream
        sock.settimeout(WAIT)
        proxy.restore()
        assert recv_exactly(sock, 4) == b"held"
        assert round_trip(sock, b"after") == b"after"


def test_blackhole_holds_new_connections_and_connects_them_on_restore(
    proxy: TcpProxy, echo: EchoServer
) -> None:
    proxy.cut("blackhole")
    with connect(proxy) as sock:
        sock.sendall(b"early")
        sock.settimeout(QUIET)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        sock.settimeout(WAIT)
        proxy.restore()
        assert recv_exactly(sock, 5) == b"early"


def test_blackhole_holds_the_end_of_a_stream_too(proxy: TcpProxy, echo: EchoServer) -> None:
    with connect(proxy) as sock:
        assert round_trip(sock, b"x") == b"x"
        proxy.cut("blackhole")
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(QUIET)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        assert echo.ended == []
        sock.settimeout(WAIT)
        proxy.restore()
        assert sock.recv(10) == b""
    wait_until(lambda: echo.ended == ["eof"], "the held end reached the server")


def test_reset_after_blackhole_drops_the_held_flows(proxy: TcpProxy, echo: EchoServer) -> None:
    with connect(proxy) as sock:
        assert round_trip(sock, b"x") == b"x"
        proxy.cut("blackhole")
        sock.sendall(b"never delivered")
        proxy.cut("reset")
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
    wait_until(lambda: echo.ended == ["reset"], "the server's flow was reset")


def test_an_unreachable_upstream_looks_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    # Nothing listens on `port` now.
    with TcpProxy(("127.0.0.1", port)) as proxy:
        assert_refused(proxy)


def test_closed_proxy_refuses_connections(echo: EchoServer) -> None:
    proxy = TcpProxy(("127.0.0.1", echo.port))
    address = proxy.address
    proxy.close()
    proxy.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=WAIT).close()
    with pytest.raises(RuntimeError):
        proxy.cut("reset")


def test_cut_mode_is_checked(proxy: TcpProxy) -> None:
    with pytest.raises(ValueError, match="reset"):
        proxy.cut("drop")  # type: ignore[arg-type]


# -- PostgreSQL through the proxy, as a node reaches it ------------------------------------------


def pg(proxy: TcpProxy, **kwargs: object) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=proxy.host,
        port=proxy.port,
        user="postgres",
        dbname="test",
        autocommit=True,
        **kwargs,  # type: ignore[arg-type]
    )


def test_postgresql_through_the_proxy_cut_and_restored() -> None:
    with TcpProxy((POSTGRES_HOST, POSTGRES_PORT)) as proxy:
        with pg(proxy) as conn:
            assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
            proxy.cut("reset")
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError):
            pg(proxy, connect_timeout=2).close()
        proxy.restore()
        with pg(proxy) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgresql_blackholed_statement_lands_after_restore() -> None:
    """A statement sent into the blackhole is not lost: it runs when the link heals, as a late
    write of a deposed leader would (which is why writes are fenced)."""
    with TcpProxy((POSTGRES_HOST, POSTGRES_PORT)) as proxy, pg(proxy) as conn:
        conn.execute("SELECT 1")
        proxy.cut("blackhole")
        answer: list[object] = []
        worker = threading.Thread(
            target=lambda: answer.append(conn.execute("SELECT 'late'").fetchone())
        )
        worker.start()
        worker.join(QUIET)
        assert worker.is_alive(), "the statement must stall while the link is blackholed"
        proxy.restore()
        worker.join(WAIT)
        assert answer == [("late",)]
        with contextlib.suppress(Exception):
            conn.close()
