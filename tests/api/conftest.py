"""A real `seqfast serve` in a subprocess on loopback, and helpers to talk to it and read back
what it stored.

`serve(*flags)` starts a server on a fresh data directory (port 0, so tests never collide) and
returns a `Server`: `url`, `data`, `process`, `stop()` (SIGTERM, and the exit status must be 0),
`kill()` (SIGKILL), `start()` (again, on the same data directory), `events()` (the stored events,
read with `seqfast.open` once the server has stopped: a running server holds the data
directory's lock) and `stored()` (stop, read, start again).  Every server still running when a
test ends is stopped, and must exit with status 0.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h11
import orjson
import pytest

import seqfast

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0
_ADDRESS = re.compile(r"^http://([^:/]+):(\d+)$")


def _server_env() -> dict[str, str]:
    """The environment for the server: this checkout first on the path, and no SEQFAST_*
    settings from the calling shell (the tests choose every setting with flags)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQFAST_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def seqfast_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "seqfast", *args]


def run_seqfast(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs a `seqfast` command to completion (e.g. `apikey create`); it must succeed."""
    done = subprocess.run(
        seqfast_command(*args),
        cwd=REPO,
        env=_server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"seqfast {' '.join(args)} failed:\n{done.stderr}"
    return done


class Server:
    """One `seqfast serve` process (or none, between `stop()` and `start()`)."""

    def __init__(self, data: Path, flags: tuple[str, ...]) -> None:
        self.data = data
        self.flags = flags
        self.process: subprocess.Popen[bytes] | None = None
        self.host = ""
        self.port = 0
        self.log_lines: list[str] = []
        self._reader: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Server:
        assert not self.running, "the server is already running"
        self.log_lines = []
        process = subprocess.Popen(
            seqfast_command(
                "serve", "--data", str(self.data), "--listen", "127.0.0.1:0", *self.flags
            ),
            cwd=REPO,
            env=_server_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.process = process
        listening = threading.Event()

        def read_stderr() -> None:
            assert process.stderr is not None
            for raw in process.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.log_lines.append(line)
                if not listening.is_set() and self._take_address(line):
                    listening.set()
            listening.set()  # the process ended (it failed to start, or stopped)

        self._reader = threading.Thread(target=read_stderr, daemon=True)
        self._reader.start()
        listening.wait(START_TIMEOUT)
        if not self.port:
            self._abandon()
            raise AssertionError(
                "seqfast serve did not log its listening address within "
                f"{START_TIMEOUT:.0f} s; its stderr:\n{self.stderr_text()}"
            )
        return self

    def _take_address(self, line: str) -> bool:
        """True (and host and port set) if `line` is the `listening on {Address}` event."""
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(event, dict) or "listening on {Address}" not in event.get("@mt", ""):
            return False
        match = _ADDRESS.match(str(event.get("Address", "")))
        assert match is not None, f"unexpected listening address in {line!r}"
        self.host, self.port = match[1], int(match[2])
        return True

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def url(self) -> str:
        assert self.port, "the server has not started"
        return f"http://{self.host}:{self.port}"

    def stop(self) -> float:
        """SIGTERM, then waits; the exit status must be 0.  Returns the seconds it took."""
        assert self.process is not None, "the server was never started"
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._abandon()
            raise AssertionError(
                f"seqfast serve did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM; its "
                f"stderr:\n{self.stderr_text()}"
            ) from None
        self._join_reader()
        assert status == 0, (
            f"seqfast serve exited with status {status}; its stderr:\n{self.stderr_text()}"
        )
        self.port = 0
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as in a crash or a power cut (for the process)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(STOP_TIMEOUT)
        self._join_reader()
        self.port = 0

    def _abandon(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        self._join_reader()
        self.port = 0

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(10)

    # -- what it stored --------------------------------------------------------------------

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

    # -- its own log -----------------------------------------------------------------------

    def stderr_text(self) -> str:
        return "\n".join(self.log_lines[-200:])

    def logs(self) -> list[dict[str, Any]]:
        """The server's own log events (CLEF on stderr)."""
        found = []
        for line in self.log_lines:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                found.append(event)
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
