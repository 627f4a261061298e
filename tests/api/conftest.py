"""A real `seqfast serve` in a subprocess on loopback, and helpers to talk to it and read back
what it stored.

`serve(*flags)` starts a server on a fresh data directory (port 0, so tests never collide) and
returns a `Server` (a `seqfast.testing.serve_process.ServeProcess`): `url`, `data`, `process`,
`stop()` (SIGTERM, and the exit status must be 0), `kill()` (SIGKILL), `start()` (again, on the
same data directory), `events()` (the stored events, read with `seqfast.open` once the server has
stopped: a running server holds the data directory's lock) and `stored()` (stop, read, start
again).  Every server still running when a test ends is stopped, and must exit with status 0.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h11
import orjson
import pytest

import seqfast
from seqfast.testing.serve_process import REPO, ServeProcess, seqfast_command, server_env


def run_seqfast(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs a `seqfast` command to completion (e.g. `apikey create`); it must succeed."""
    done = subprocess.run(
        seqfast_command(*args),
        cwd=REPO,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"seqfast {' '.join(args)} failed:\n{done.stderr}"
    return done


class Server(ServeProcess):
    """One `seqfast serve` process (or none, between `stop()` and `start()`)."""

    start_timeout = 30.0

    def events(self, limit: int = 1_000_000) -> list[dict[str, Any]]:
        """The stored events, newest first; the server must be stopped."""
        assert not self.running, "stop the server first: it holds the data directory's lock"
        with seqfast.open(self.data) as store:
            return list(store.events(limit=limit))

    def stored(self, limit: int = 1_000_000) -> list[dict[str, Any]]:
        """Stops the server, reads what it stored, and starts it again on the same data
        directory (the port changes: use `url` afresh)."""
        self.stop()
        found = self.events(limit)
        self.start()
        return found

    def peak_rss_kib(self) -> int:
        """The process's peak resident set size so far (VmHWM), in KiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None, "no VmHWM in /proc/<pid>/status"
        return int(match[1])


ServerFactory = Callable[..., Server]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServerFactory]:
    """`serve(*flags, data=None)`: a started server on a fresh data directory (or `data`)."""
    started: list[Server] = []
    count = 0

    def start(*flags: str, data: Path | None = None) -> Server:
        nonlocal count
        count += 1
        server = Server(data or tmp_path / f"data{count}", tuple(flags))
        started.append(server)
        return server.start()

    yield start
    problems = []
    for server in started:
        if server.running:
            try:
                server.stop()
            except AssertionError as exc:
                problems.append(str(exc))
    assert not problems, "\n\n".join(problems)


@pytest.fixture
def server(serve: ServerFactory) -> Server:
    """A server with the default settings."""
    return serve()


# -- wire helpers --------------------------------------------------------------------------------


def clef(*events: dict[str, Any]) -> bytes:
    """Newline-delimited CLEF of `events`."""
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def clef_time(value: dt.datetime | int) -> str:
    """How the store writes a timestamp: RFC 3339 UTC with 7 fractional digits.  `value` is an
    aware datetime or nanoseconds since 1970 (kept to 100 ns, truncated)."""
    if isinstance(value, int):
        seconds, nanos = divmod(value, 1_000_000_000)
        whole = dt.datetime.fromtimestamp(seconds, dt.UTC)
        return f"{whole:%Y-%m-%dT%H:%M:%S}.{nanos // 100:07d}Z"
    utc = value.astimezone(dt.UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


def raw_exchange(
    server: Server, data: bytes, *, timeout: float = 10.0, shutdown: bool = False
) -> bytes:
    """Sends `data` on a new connection and returns every byte received until the server
    closes it (or `timeout` passes without any)."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(data)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock, timeout)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    received = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            raise AssertionError(
                f"the server kept the connection open for {timeout} s after sending "
                f"{bytes(received[:300])!r}"
            ) from None
        if not chunk:
            break
        received += chunk
    return bytes(received)


class ParsedResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:200]!r}>"


def parse_responses(data: bytes) -> list[ParsedResponse]:
    """The HTTP/1.1 responses in `data`, in order (parsed by h11, as a client would)."""
    responses: list[ParsedResponse] = []
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(data)
    conn.receive_data(b"")
    while True:
        # h11 reads a response only after a request was sent: pretend one was, each time.
        if conn.our_state is h11.IDLE:
            conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x")]))
            conn.send(h11.EndOfMessage())
        event = conn.next_event()
        if not isinstance(event, h11.Response):
            return responses
        headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        body = bytearray()
        while True:
            part = conn.next_event()
            if isinstance(part, h11.Data):
                body += part.data
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"a response ended early: {part!r}")
        responses.append(ParsedResponse(event.status_code, headers, bytes(body)))
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return responses  # the server closed the connection after this response
        conn.start_next_cycle()
        if not conn.trailing_data[0]:
            return responses  # no more bytes: no more responses
