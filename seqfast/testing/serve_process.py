"""A real `seqfast serve` in a subprocess on loopback, for tests that need the whole server.

`ServeProcess(data, flags)` runs `python -m seqfast serve --data DATA --listen 127.0.0.1:0
FLAGS...` from this checkout.  Port 0 lets the kernel pick a free port, so runs never collide (a
`--listen` in `flags` comes later on the command line and wins).  The port is learnt from the
server's own `listening on {Address}` CLEF event: a thread reads stderr line by line, keeps every
line (`log_lines`, `logs()`, `stderr_text()`) and sets `host` and `port` when that event
arrives.  Waiting for the event rather than polling the port means the server is ready for
requests the moment `start()` returns.

`stop()` is SIGTERM and the exit status must be 0 (a graceful stop is part of what the tests
check); `kill()` is SIGKILL, a crash.  Every wait is bounded, and a server that fails to start or
stop fails with its stderr rather than hanging.  `start()` again runs a new process on the same
data directory (the port changes).

The server runs with this checkout first on `PYTHONPATH` and without any `SEQFAST_*` variable of
the calling shell, so only the flags a test passes choose its settings (`server_env()`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Self

import orjson

__all__ = ["REPO", "ServeProcess", "seqfast_command", "server_env"]

REPO: Final = Path(__file__).resolve().parents[2]
_ADDRESS: Final = re.compile(r"^http://([^:/]+):(\d+)$")


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a `seqfast` subprocess: this checkout first on the path, no SEQFAST_*
    settings of the calling shell, unbuffered output, then `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQFAST_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def seqfast_command(*args: str) -> list[str]:
    """`seqfast ARGS...` as run by this interpreter (so in this checkout's environment)."""
    return [sys.executable, "-m", "seqfast", *args]


class ServeProcess:
    """One `seqfast serve` process (or none, before `start()` and between `stop()` and
    `start()`)."""

    start_timeout: float = 60.0
    stop_timeout: float = 60.0
    stderr_tail = 200  # lines of stderr quoted when something fails

    def __init__(self, data: Path, flags: Sequence[str] = ()) -> None:
        self.data = data
        self.flags = tuple(flags)
        self.process: subprocess.Popen[bytes] | None = None
        self.host = ""
        self.port = 0
        self.log_lines: list[str] = []
        self._reader: threading.Thread | None = None
        self._listening = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        self.launch()
        return self.wait_listening()

    def launch(self) -> None:
        """Starts the process without waiting for it to listen (see `wait_listening`), so that
        several can start at once."""
        assert not self.running, "the server is already running"
        self.log_lines = []
        self.port = 0
        process = subprocess.Popen(
            seqfast_command(
                "serve", "--data", str(self.data), "--listen", "127.0.0.1:0", *self.flags
            ),
            cwd=REPO,
            env=server_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.process = process
        listening = self._listening = threading.Event()

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

    def wait_listening(self) -> Self:
        """Waits for the `listening on {Address}` event of the process `launch()` started."""
        self._listening.wait(self.start_timeout)
        if not self.port:
            self._abandon()
            raise AssertionError(
                "seqfast serve did not log its listening address within "
                f"{self.start_timeout:.0f} s; its stderr:\n{self.stderr_text()}"
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
        assert self.process is not None, "the server was never started"
        return self.process.pid

    @property
    def url(self) -> str:
        assert self.port, "the server is not running"
        return f"http://{self.host}:{self.port}"

    def stop(self) -> float:
        """SIGTERM, then waits; the exit status must be 0.  Returns the seconds it took."""
        assert self.process is not None, "the server was never started"
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            self._abandon()
            raise AssertionError(
                f"seqfast serve did not stop within {self.stop_timeout:.0f} s of SIGTERM; its "
                f"stderr:\n{self.stderr_text()}"
            ) from None
        self._join()
        self.port = 0
        assert status == 0, (
            f"seqfast serve exited with status {status}; its stderr:\n{self.stderr_text()}"
        )
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as in a crash or a power cut (for the process)."""
        assert self.process is not None, "the server was never started"
        self.process.kill()
        self.process.wait(self.stop_timeout)
        self._join()
        self.port = 0

    def _abandon(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(self.stop_timeout)
        self._join()
        self.port = 0

    def _join(self) -> None:
        # Bounded: a grandchild that inherited stderr could keep the pipe open.
        if self._reader is not None:
            self._reader.join(10)

    # -- its own log -----------------------------------------------------------------------

    def stderr_text(self) -> str:
        return "\n".join(self.log_lines[-self.stderr_tail :])

    def logs(self) -> list[dict[str, Any]]:
        """The server's own log events (CLEF on stderr), so far."""
        found = []
        for line in list(self.log_lines):  # a copy: the reader thread may be appending
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                found.append(event)
        return found
