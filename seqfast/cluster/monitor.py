"""The monitor: a watchdog process that kills the node when a deadline passes.

Why a separate process
======================

Leader-only work must stop before the database can hand the lease to another node
(`timing.py`, rule 4).  The event loop cannot enforce that on itself: a stuck loop is exactly
what must be caught.  A thread in the node cannot either: a Python thread needs the GIL, and a
native call that never releases it (a Cython loop without `nogil`, a stuck C library call, a
regular expression backtracking in `re`) silences every Python thread of the process.  So the
deadline check runs in a *watchdog process*: a fresh interpreter with its own GIL, started by
`Monitor`, that imports the standard library only (it runs this file as a script, with `-I -S`,
before anything of seqfast is imported) and shares nothing with the node but a pipe.

The node tells the watchdog what it must enforce, one line per message over the pipe:

    deadline <name> <t> <epoch>   command <name> must be done by t (replaces an earlier one)
    clear <name>                  command <name> is done
    alive                         the event loop ran just now
    queue <depth> <capacity>      the command queue's depth; depth >= capacity is fatal
    close                         orderly shutdown: stop watching and exit

`t` is on `CLOCK_BOOTTIME` (`boottime()`), which every process of the machine reads alike and
which, unlike `CLOCK_MONOTONIC` (`time.monotonic()`), keeps counting while the machine is
suspended or the VM is paused: a node resumed after a pause must see its deadlines as passed.

The watchdog SIGKILLs the node when a deadline passes, when no `alive` came for longer than
`alive_within`, when the queue is full, or when a line cannot be parsed (a node that garbles its
own watchdog's orders is broken).  Before killing it writes one CLEF line (`"@l": "Fatal"`) to
its stderr, which is the node's stderr, naming the reason; a supervisor (systemd, the container
runtime) restarts the node.  It exits on its own, without killing, on `close`, and as soon as
the node is gone (end of file on the pipe, or the node's pidfd becomes readable), so it never
outlives the node.  It ignores SIGINT and SIGTERM: they are meant for the node, and a graceful
shutdown that stalls is one of the things the watchdog must still be there to end.

The node kills itself (one CLEF line, then SIGKILL to its own pid) if a message cannot be
written: the watchdog died, or stopped reading until the pipe filled.  A node nobody watches
must not go on leading.  Writes never block, so a wedged watchdog cannot stall the event loop.

Typical use by the runtime: `watch_command("deactivate", d.deadline, d.epoch)` when a
`DeactivateLeader` is dispatched and `command_done("deactivate")` on `DeactivationDone`;
`watch_command("lead", sent_at + K, epoch)` again on each successful renewal, so that a leader
whose loop stops is killed at K even though no command is in flight; `loop_alive()` from a
trio task every fraction of `alive_within`; `queue_depth()` whenever the queue changes.

Limits
======

- A deadline is enforced within about a millisecond plus the scheduler's latency for the
  watchdog; on an overloaded machine that latency is the margin `timing.py` reserves.
- A `clear` that is written before the deadline but read after it still kills: the watchdog
  cannot tell it from a late one, and killing is the safe side.
- The watchdog is only as alive as its process.  If it is killed (OOM killer, an operator) the
  node notices at its next message, so within one `loop_alive` period, not at once.  While
  both processes are stopped (SIGSTOP, a paused VM) nothing is killed; on resume an overdue
  deadline kills at once, because BOOTTIME kept counting.
- Deadlines from `NodeMachine` are on the clock the runtime passes it as `now`; they can be
  handed over unchanged only if that clock is `boottime()`.
- A message from a process that forks without exec (the child inherits the pipe) would reach
  the same watchdog; seqfast starts subprocesses with exec only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import NoReturn

__all__ = ["Monitor", "MonitorClosed", "MonitorError", "boottime"]

# The pipe is read in chunks of this size; a message stays below PIPE_BUF (4096) so that each
# non-blocking write is all or nothing.
_CHUNK = 65536
_MAX_LINE = 1024
# The watchdog re-reads the clock at least this often.  poll() sleeps on CLOCK_MONOTONIC, which
# stops during suspend; waking regularly bounds how late a deadline is noticed after a resume.
_MAX_SLEEP = 0.25


def boottime() -> float:
    """Seconds on `CLOCK_BOOTTIME`: the clock `watch_command` deadlines are on."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _clef(template: str, **properties: object) -> bytes:
    event: dict[str, object] = {
        "@t": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "@mt": template,
        "@l": "Fatal",
        **properties,
    }
    return (json.dumps(event, default=str) + "\n").encode()


def _write_stderr(data: bytes) -> None:
    # Straight to fd 2: sys.stderr may be replaced, buffered or locked by a stuck thread.
    with contextlib.suppress(OSError):
        os.write(2, data)


# ---------------------------------------------------------------------------------------------
# The watchdog process.  Standard library only: it runs before anything else is imported.
# ---------------------------------------------------------------------------------------------


class _Watchdog:
    def __init__(self, node: int, alive_within: float) -> None:
        self.node = node
        self.alive_within = alive_within
        self.deadlines: dict[str, tuple[float, int]] = {}
        self.last_alive = boottime()
        self.pending = b""
        self.pidfd: int | None = None

    def run(self) -> int:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            # A pidfd names the node itself, not its pid number: no kill can hit a process that
            # reused the pid, and it becomes readable when the node exits.
            self.pidfd = os.pidfd_open(self.node)
        except (AttributeError, OSError):
            self.pidfd = None
        if os.getppid() != self.node:
            return 0  # the node is gone already (or this was not started by it)
        poller = select.poll()
        poller.register(0, select.POLLIN)
        if self.pidfd is not None:
            poller.register(self.pidfd, select.POLLIN)
        os.write(1, b"ready\n")
        os.close(1)
        self.last_alive = boottime()
        timeout = 0.0
        while True:
            for fd, _ in poller.poll(math.ceil(timeout * 1000)):
                if fd == self.pidfd:
                    return 0  # the node exited
                data = os.read(0, _CHUNK)
                if not data:
                    return 0  # the node closed the pipe or exited
                if self._feed(data):
                    return 0  # orderly close
            now = boottime()
            due = self._due(now)
            if due <= now:
                self._kill(self._reason(now))
            timeout = min(due - now, _MAX_SLEEP)

    def _feed(self, data: bytes) -> bool:
        """Apply every complete line; True on `close`."""
        lines = (self.pending + data).split(b"\n")
        self.pending = lines.pop()
        if len(self.pending) > _MAX_LINE:
            self._kill(f"the node sent an overlong message ({len(self.pending)} bytes)")
        # In order, and nothing after a `close`.
        return any(self._apply(line.decode("utf-8", "replace").split(" ")) for line in lines)

    def _apply(self, words: list[str]) -> bool:
        try:
            match words:
                case ["alive"]:
                    self.last_alive = boottime()
                case ["deadline", name, at, epoch]:
                    deadline = float(at)
                    if not math.isfinite(deadline):
                        raise ValueError(at)
                    self.deadlines[name] = (deadline, int(epoch))
                case ["clear", name]:
                    self.deadlines.pop(name, None)
                case ["queue", depth, capacity]:
                    if int(depth) >= int(capacity):
                        self._kill(f"the command queue is full ({depth} of {capacity})")
                case ["close"]:
                    return True
                case _:
                    raise ValueError(words)
        except ValueError:
            self._kill(f"the node sent a message the monitor cannot parse: {' '.join(words)!r}")
        return False

    def _due(self, now: float) -> float:
        times = [deadline for deadline, _ in self.deadlines.values()]
        return min([self.last_alive + self.alive_within, *times])

    def _reason(self, now: float) -> str:
        for name, (deadline, epoch) in sorted(self.deadlines.items(), key=lambda i: i[1][0]):
            if deadline <= now:
                return (
                    f"command {name} of epoch {epoch} is not done {now - deadline:.3f} s"
                    f" after its deadline"
                )
        return (
            f"the event loop has not reported alive for {now - self.last_alive:.3f} s"
            f" (bound {self.alive_within:g} s)"
        )

    def _kill(self, reason: str) -> NoReturn:
        _write_stderr(
            _clef("Monitor kills node {NodePid}: {Reason}", NodePid=self.node, Reason=reason)
        )
        if self.pidfd is not None:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        elif os.getppid() == self.node:
            # Without a pidfd: while the node is this process's parent, its pid cannot have been
            # reused (a dead parent's children are re-parented at once).
            os.kill(self.node, signal.SIGKILL)
        os._exit(3)


def _watchdog_main(argv: list[str]) -> int:
    node, alive_within = int(argv[0]), float(argv[1])
    return _Watchdog(node, alive_within).run()


if __name__ == "__main__":
    sys.exit(_watchdog_main(sys.argv[1:]))


# ---------------------------------------------------------------------------------------------
# The node's side.  The watchdog, run as a script, stops above: seqfast is not importable there.
# ---------------------------------------------------------------------------------------------

from seqfast.errors import SeqfastError  # noqa: E402


class MonitorError(SeqfastError):
    """The watchdog process could not be started; the node must not lead without it."""


class MonitorClosed(SeqfastError):
    """The monitor was closed; it watches nothing any more."""


class Monitor:
    """The node's handle on its watchdog process (see the module docstring).

    Every method is safe to call from any thread and returns in microseconds: a message is one
    non-blocking write of a few bytes.
    """

    def __init__(self, *, alive_within: float, start_timeout: float = 10.0) -> None:
        """Start the watchdog and wait until it watches.

        `alive_within`: seconds the event loop may go without `loop_alive()`; the bound runs
        from the moment this returns.  Raises `MonitorError` if the watchdog is not ready within
        `start_timeout` seconds.
        """
        if not (math.isfinite(alive_within) and alive_within > 0):
            raise ValueError(
                f"alive_within must be a positive number of seconds, not {alive_within!r}"
            )
        self._lock = threading.Lock()
        self._closed = False
        read_end, self._fd = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__, str(os.getpid()), repr(alive_within)],
                stdin=read_end,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
        except OSError as exc:
            os.close(self._fd)
            raise MonitorError(f"the monitor process could not be started: {exc}.") from exc
        finally:
            os.close(read_end)
        assert self._process.stdout is not None
        with self._process.stdout as ready:
            answered, _, _ = select.select([ready], [], [], start_timeout)
            line = ready.readline() if answered else b""
        if line != b"ready\n":
            self._process.kill()
            self._process.wait()
            os.close(self._fd)
            self._closed = True
            raise MonitorError(
                f"the monitor process did not report ready within {start_timeout:g} s"
                f" (exit status {self._process.returncode})."
            )
        # Never block the event loop on the watchdog: a full pipe means it stopped reading.
        os.set_blocking(self._fd, False)

    @property
    def pid(self) -> int:
        """The watchdog's process id."""
        return self._process.pid

    def watch_command(self, name: str, deadline: float, epoch: int) -> None:
        """Kill the node unless `command_done(name)` comes before `deadline` (`boottime()`).

        A second call with the same name replaces the deadline.
        """
        if not name or len(name.split()) != 1 or name != name.strip():
            raise ValueError(f"a command name is one word, not {name!r}")
        if not math.isfinite(deadline):
            raise ValueError(f"the deadline must be a finite time, not {deadline!r}")
        self._send(f"deadline {name[:200]} {deadline!r} {int(epoch)}\n")

    def command_done(self, name: str) -> None:
        """Command `name` finished: stop watching its deadline.  Unknown names are ignored."""
        self._send(f"clear {name[:200]}\n")

    def loop_alive(self) -> None:
        """The event loop is running; call it from a trio task more often than `alive_within`."""
        self._send("alive\n")

    def queue_depth(self, depth: int, capacity: int) -> None:
        """Report the command queue's depth; a full queue (`depth >= capacity`) kills the node."""
        self._send(f"queue {int(depth)} {int(capacity)}\n")

    def close(self, timeout: float = 5.0) -> None:
        """Stop watching and wait for the watchdog to exit.  Calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # If the watchdog is gone already, there is nothing left to stop.
            with contextlib.suppress(OSError):
                os.write(self._fd, b"close\n")
            os.close(self._fd)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, message: str) -> None:
        with self._lock:
            if self._closed:
                raise MonitorClosed("the monitor is closed; it watches nothing any more.")
            try:
                os.write(self._fd, message.encode())
            except OSError as exc:
                _unwatched(f"the monitor process is gone or not reading ({exc})")


def _unwatched(reason: str) -> NoReturn:
    """Kill this node: nothing would kill it if one of its deadlines passed."""
    _write_stderr(
        _clef("Node {NodePid} kills itself: {Reason}", NodePid=os.getpid(), Reason=reason)
    )
    os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)  # not reached: SIGKILL cannot be caught
