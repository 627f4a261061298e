"""Real clusters for fault tests: N `seqfast serve` processes on loopback sharing one PostgreSQL.

Two layers:

**Leadership intervals (pure).**  Every node logs each start and stop of its leader duties as a
CLEF self-log event with `NodeId`, `Epoch`, `Transition` ("activated" | "deactivated") and
`Monotonic` (`time.monotonic()`, one clock for every process of the machine).
`parse_transition` reads one such line; `leader_intervals` turns one process life's transitions
into the intervals during which it acted as leader; `overlaps` / `assert_no_overlap` check
that no two intervals share an instant.  An interval ends at the logged deactivation, or at the
process's death if it died first (SIGKILL, its monitor), or is still open (end = +inf).  A
process frozen (SIGSTOP) while leading does nothing while frozen; if the freeze lasted at least
the step-down deadline D, its own deadline passed during the freeze (it is counted from a
renewal sent before the freeze), so its leadership ended no later than freeze + D whatever it
logs after it resumes (its duties' cancel scope carries that deadline, `may_acknowledge()` is
false past it, and a database write is fenced).  Whether it then acknowledged anything under
the old epoch is a separate question the tests ask directly (ingest answers, the fence).

**Processes.**  `Cluster` starts nodes as `python3 -m seqfast serve` with distinct ports and data
directories, a unique cluster name, the test timing profile, and each node's database URL
through its own `TcpProxy` (optional) so a test can cut one node's database link.  Each node's
stderr is captured line by line (and copied to `<base>/<node>.log`) and its transitions parsed
as they arrive.  The harness records, with `time.monotonic()`, when it SIGKILLs a node (the
end of the node's last interval), when it freezes and thaws it, and when it sees a process exit.

Nodes run in process groups of their own: `freeze()`/`thaw()` stop and continue the node *and*
its monitor process together, as a paused virtual machine would (stopping the node alone just
lets its monitor kill it, which `stop()` does for tests of that).
"""

from __future__ import annotations

import contextlib
import http.client
import math
import os
import random
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import orjson
import psycopg

from seqfast.cluster.timing import DEFAULT, TEST, Timing
from seqfast.testing.serve_process import REPO, seqfast_command, server_env
from seqfast.testing.tcp_proxy import TcpProxy

__all__ = [
    "POSTGRES_DSN",
    "POSTGRES_URL",
    "Cluster",
    "Freeze",
    "HttpResult",
    "Interval",
    "Life",
    "Node",
    "Transition",
    "assert_no_overlap",
    "http_request",
    "leader_intervals",
    "overlaps",
    "parse_transition",
]

POSTGRES_HOST: Final = "127.0.0.1"
POSTGRES_PORT: Final = 5432
POSTGRES_DSN: Final = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user=postgres dbname=test"
POSTGRES_URL: Final = f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"

START_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 30.0
HTTP_TIMEOUT: Final = 10.0
# Ports are picked below the kernel's ephemeral range (32768-60999 on Linux), so that no
# outgoing connection and no `port 0` listener of another test can take one between the pick
# and the node's bind.
_PORT_RANGE: Final = (20000, 32000)
CLEF_CONTENT_TYPE: Final = "application/vnd.serilog.clef"


# ---------------------------------------------------------------------------------------------
# Leadership intervals: pure functions over parsed log lines.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """One logged start or stop of a node's leader duties."""

    node_id: str
    epoch: int
    activated: bool
    monotonic: float
    template: str = ""


@dataclass(frozen=True)
class Freeze:
    """A window during which a process was stopped (SIGSTOP → SIGCONT; end = +inf if still)."""

    start: float
    end: float = math.inf


@dataclass(frozen=True)
class Interval:
    """A span during which `node_id` acted as leader under `epoch` ([start, end))."""

    node_id: str
    epoch: int
    start: float
    end: float
    ended_by: Literal["deactivated", "died", "froze", "open"]
    life: int = 0

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


def parse_transition(line: str) -> Transition | None:
    """The transition a self-log line records, or None if it records none (another event, or
    not CLEF at all: a traceback, a partial line).  Raises ValueError for a transition event
    that lacks a property or has one of the wrong type: the contract says what it carries."""
    if '"Transition"' not in line:
        return None
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("Transition") not in ("activated", "deactivated"):
        return None
    node_id, epoch, monotonic = event.get("NodeId"), event.get("Epoch"), event.get("Monotonic")
    if not isinstance(node_id, str) or not node_id:
        raise ValueError(f"a transition event without a NodeId: {line!r}")
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise ValueError(f"a transition event without an integer Epoch: {line!r}")
    if isinstance(monotonic, bool) or not isinstance(monotonic, int | float):
        raise ValueError(f"a transition event without a numeric Monotonic: {line!r}")
    return Transition(
        node_id=node_id,
        epoch=epoch,
        activated=event["Transition"] == "activated",
        monotonic=float(monotonic),
        template=str(event.get("@mt", "")),
    )


def leader_intervals(
    transitions: Iterable[Transition],
    *,
    death: float | None = None,
    freezes: Sequence[Freeze] = (),
    step_down_after: float | None = None,
    life: int = 0,
) -> list[Interval]:
    """The leadership intervals of one process life, from its transitions in log order.

    An activation opens an interval; a deactivation of that epoch closes it, and a later one of
    the same epoch before any other activation moves its end: "Stepped down" is logged when the
    step-down is ordered, "Leader duties stopped" when the last duty has returned, and the
    duties act until then.  An interval
    still open ends at `death` (the process died) or stays open.  With `step_down_after` (D),
    an interval open across a freeze of at least D ends at freeze start + D (see the module
    docstring).  Raises ValueError for what no correct node logs: an activation while another
    epoch is still active, an epoch activated twice, epochs that go down, time that goes back,
    and anything logged after `death`.
    """
    intervals: list[Interval] = []
    active: Transition | None = None
    seen_epochs: set[int] = set()
    last_time = -math.inf
    for t in transitions:
        if t.monotonic < last_time:
            raise ValueError(
                f"node {t.node_id}: transition at {t.monotonic} logged after one at {last_time}"
            )
        last_time = t.monotonic
        if death is not None and t.monotonic > death:
            raise ValueError(
                f"node {t.node_id}: transition at {t.monotonic} after the process died at {death}"
            )
        if t.activated:
            if active is not None:
                raise ValueError(
                    f"node {t.node_id}: epoch {t.epoch} activated at {t.monotonic} while epoch "
                    f"{active.epoch} (activated at {active.monotonic}) is still active"
                )
            if t.epoch in seen_epochs or (seen_epochs and t.epoch < max(seen_epochs)):
                raise ValueError(
                    f"node {t.node_id}: epoch {t.epoch} activated after epochs "
                    f"{sorted(seen_epochs)}"
                )
            seen_epochs.add(t.epoch)
            active = t
        elif active is not None and t.epoch == active.epoch:
            intervals.append(
                Interval(t.node_id, t.epoch, active.monotonic, t.monotonic, "deactivated", life)
            )
            active = None
        elif intervals and intervals[-1].epoch == t.epoch:
            last = intervals[-1]
            intervals[-1] = Interval(
                last.node_id, last.epoch, last.start, t.monotonic, "deactivated", life
            )
    if active is not None:
        if death is not None:
            intervals.append(
                Interval(active.node_id, active.epoch, active.monotonic, death, "died", life)
            )
        else:
            intervals.append(
                Interval(active.node_id, active.epoch, active.monotonic, math.inf, "open", life)
            )
    if step_down_after is not None:
        intervals = [_clip_at_freezes(i, freezes, step_down_after) for i in intervals]
    return intervals


def _clip_at_freezes(interval: Interval, freezes: Sequence[Freeze], d: float) -> Interval:
    for freeze in sorted(freezes, key=lambda f: f.start):
        frozen_long = freeze.end - freeze.start >= d
        if frozen_long and interval.start <= freeze.start < interval.end:
            end = min(interval.end, freeze.start + d)
            if end < interval.end:
                return Interval(
                    interval.node_id, interval.epoch, interval.start, end, "froze", interval.life
                )
    return interval


def overlaps(intervals: Iterable[Interval]) -> list[tuple[Interval, Interval]]:
    """Every pair of intervals, of different nodes or lives, that share an instant."""
    ordered = sorted(intervals, key=lambda i: (i.start, i.end))
    found: list[tuple[Interval, Interval]] = []
    for index, first in enumerate(ordered):
        for second in ordered[index + 1 :]:
            if second.start >= first.end:
                break
            found.append((first, second))
    return found


def assert_no_overlap(intervals: Iterable[Interval]) -> None:
    """Fails, naming the first overlapping pairs, if two intervals share an instant."""
    listed = list(intervals)
    found = overlaps(listed)
    if found:
        shown = "\n".join(
            f"  {a.node_id}#{a.life} epoch {a.epoch} [{a.start:.3f}, {a.end:.3f}) ({a.ended_by})"
            f" overlaps {b.node_id}#{b.life} epoch {b.epoch} [{b.start:.3f}, {b.end:.3f})"
            f" ({b.ended_by}) by {min(a.end, b.end) - b.start:.3f} s"
            for a, b in found[:5]
        )
        raise AssertionError(f"two nodes acted as leader at once:\n{shown}")


# ---------------------------------------------------------------------------------------------
# HTTP on loopback.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def proxied(self) -> bool:
        """True if a follower forwarded the request to the leader."""
        return "x-seqfast-proxied-by" in self.headers or "via" in self.headers

    def json(self) -> Any:
        return orjson.loads(self.body)


def http_request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT,
) -> HttpResult:
    """One request on a connection of its own.  Raises OSError (connection refused or reset,
    timeout) when no answer comes."""
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        return HttpResult(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    except http.client.HTTPException as exc:
        raise ConnectionError(f"{method} {url}{path}: {exc!r}") from exc
    finally:
        conn.close()


def clef_batch(count: int, *, tag: str) -> bytes:
    """`count` CLEF events, each with a unique `Id` property (`tag` and its index)."""
    now = time.time()
    lines = [
        orjson.dumps(
            {
                "@t": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
                + f".{int(now % 1 * 1e6):06d}Z",
                "@mt": "Fault test event {Id}",
                "Id": f"{tag}-{i}",
            }
        )
        for i in range(count)
    ]
    return b"\n".join(lines) + b"\n"


# ---------------------------------------------------------------------------------------------
# Processes.
# ---------------------------------------------------------------------------------------------


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(taken: set[int]) -> int:
    """A free loopback port below the ephemeral range, not in `taken`."""
    for _ in range(1000):
        port = random.randint(*_PORT_RANGE)
        if port not in taken and _port_is_free(port):
            taken.add(port)
            return port
    raise RuntimeError("no free loopback port found")


@dataclass
class Life:
    """One run of a node's process, from start to exit."""

    index: int
    process: subprocess.Popen[bytes]
    started: float
    lines: list[tuple[float, str]] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    freezes: list[Freeze] = field(default_factory=list)
    killed_at: float | None = None  # when the harness sent SIGKILL
    exited_at: float | None = None  # when the harness saw the process end
    reader: threading.Thread | None = None
    waiter: threading.Thread | None = None
    bad_lines: list[str] = field(default_factory=list)
    stop_asked: bool = False  # the harness sent its final SIGTERM

    @property
    def death(self) -> float | None:
        """When the process stopped acting: the harness's SIGKILL, or its exit as seen."""
        if self.killed_at is not None:
            return self.killed_at
        return self.exited_at

    @property
    def exit_code(self) -> int | None:
        return self.process.returncode if self.exited_at is not None else None

    @property
    def frozen(self) -> bool:
        return bool(self.freezes) and self.freezes[-1].end == math.inf

    def events(self) -> list[dict[str, Any]]:
        found = []
        for _, line in self.lines:
            with contextlib.suppress(orjson.JSONDecodeError):
                event = orjson.loads(line)
                if isinstance(event, dict):
                    found.append(event)
        return found

    def killed_by_monitor(self) -> bool:
        """Whether its watchdog process killed it."""
        return any(str(e.get("@mt", "")).startswith("Monitor kills node") for e in self.events())

    def terminated(self) -> bool:
        """Whether it was killed on purpose: by its watchdog, or by itself (the runtime's
        `Terminate`, or a node that lost its watchdog)."""
        return any(
            str(e.get("@mt", "")).startswith(
                ("Monitor kills node", "Node {NodePid} kills itself", "Terminating:")
            )
            for e in self.events()
        )


class Node:
    """One node of a `Cluster`: its settings, its proxy, and the lives of its process.

    Not a `serve_process.ServeProcess`: its port is chosen before it starts (it is also the
    advertised URL), it runs in a process group of its own (for `freeze()`), and each life keeps
    timestamped lines, transitions and the instants of its death for the interval checks."""

    def __init__(
        self,
        cluster: Cluster,
        node_id: str,
        port: int,
        data: Path,
        proxy: TcpProxy | None,
        env: Mapping[str, str],
    ) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.port = port
        self.data = data
        self.proxy = proxy
        self.env = dict(env)
        self.lives: list[Life] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_url(self) -> str:
        port = self.proxy.port if self.proxy is not None else POSTGRES_PORT
        return self.cluster.db_url_for_port(port)

    @property
    def life(self) -> Life:
        assert self.lives, f"node {self.node_id} was never started"
        return self.lives[-1]

    @property
    def alive(self) -> bool:
        """Started and not seen to end.  (Not `Popen.poll()`: while the waiter thread is in
        `wait()`, `poll()` cannot take the lock and answers None even for a dead process.)"""
        return bool(self.lives) and self.life.death is None

    @property
    def pid(self) -> int:
        return self.life.process.pid

    def command(self) -> list[str]:
        return seqfast_command(
            "serve",
            "--data",
            str(self.data),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--cluster-db",
            self.db_url,
            "--cluster-name",
            self.cluster.name,
            "--node-id",
            self.node_id,
            "--advertise",
            self.url,
            "--timing-profile",
            self.cluster.timing_profile,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, *, wait: bool = True) -> Node:
        assert not self.alive, f"node {self.node_id} is running already"
        self.data.mkdir(parents=True, exist_ok=True)
        log_path = self.cluster.base / f"{self.node_id}.log"
        process = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env=server_env(self.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: the node and its monitor
        )
        life = Life(index=len(self.lives), process=process, started=time.monotonic())
        self.lives.append(life)

        def read() -> None:
            assert process.stderr is not None
            with log_path.open("a", encoding="utf-8") as copy:
                copy.write(f"--- life {life.index} (pid {process.pid})\n")
                for raw in process.stderr:
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    copy.write(line + "\n")
                    copy.flush()
                    with self._lock:
                        life.lines.append((time.monotonic(), line))
                        try:
                            transition = parse_transition(line)
                        except ValueError as exc:
                            life.bad_lines.append(str(exc))
                            transition = None
                        if transition is not None:
                            life.transitions.append(transition)

        def wait_exit() -> None:
            process.wait()
            life.exited_at = time.monotonic()

        life.reader = threading.Thread(target=read, daemon=True)
        life.waiter = threading.Thread(target=wait_exit, daemon=True)
        life.reader.start()
        life.waiter.start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until /health answers (200 or 503: the node serves HTTP)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(
                    f"node {self.node_id} exited with status {self.life.exit_code} while "
                    f"starting:\n{self.tail()}"
                )
            with contextlib.suppress(OSError):
                http_request(self.url, "GET", "/health", timeout=2)
                return
            time.sleep(0.05)
        raise AssertionError(
            f"node {self.node_id} did not serve within {timeout:g} s:\n{self.tail()}"
        )

    def kill(self) -> float:
        """SIGKILL the node (not its monitor, which notices and exits); returns the instant."""
        life = self.life
        if life.frozen:
            self._thaw_record(life)
        os.kill(life.process.pid, signal.SIGKILL)
        life.killed_at = time.monotonic()
        life.process.wait(STOP_TIMEOUT)
        return life.killed_at

    def term(self) -> float:
        """SIGTERM (a graceful stop); returns the instant it was sent."""
        os.kill(self.pid, signal.SIGTERM)
        return time.monotonic()

    def stop(self) -> float:
        """SIGSTOP the node's process alone (its monitor keeps running)."""
        os.kill(self.pid, signal.SIGSTOP)
        at = time.monotonic()
        self.life.freezes.append(Freeze(at))
        return at

    def cont(self) -> float:
        """SIGCONT the node's process (alone)."""
        os.kill(self.pid, signal.SIGCONT)
        return self._thaw_record(self.life)

    def freeze(self) -> float:
        """SIGSTOP the node and its monitor together, as a paused VM; returns the instant."""
        os.killpg(self.pid, signal.SIGSTOP)
        at = time.monotonic()
        self.life.freezes.append(Freeze(at))
        return at

    def thaw(self) -> float:
        """SIGCONT the node and its monitor together; returns the instant."""
        os.killpg(self.pid, signal.SIGCONT)
        return self._thaw_record(self.life)

    @staticmethod
    def _thaw_record(life: Life) -> float:
        at = time.monotonic()
        if life.frozen:
            life.freezes[-1] = Freeze(life.freezes[-1].start, at)
        return at

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            code = self.life.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"node {self.node_id} did not exit within {timeout:g} s:\n{self.tail()}"
            ) from None
        if self.life.waiter is not None:
            self.life.waiter.join(5)
        if self.life.reader is not None:
            self.life.reader.join(5)
        return code

    def ask_to_stop(self) -> None:
        """Thaw the node if frozen and send SIGTERM, without waiting (see `cleanup`)."""
        if not self.lives or self.life.stop_asked:
            return
        self.life.stop_asked = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.life.process.pid, signal.SIGCONT)
        if self.life.exited_at is None:
            with contextlib.suppress(ProcessLookupError):
                self.life.process.send_signal(signal.SIGTERM)

    def cleanup(self) -> None:
        """Make sure nothing of this node runs any more (its whole process group): SIGTERM,
        then SIGKILL if it does not stop in time."""
        if not self.lives:
            return
        process = self.life.process
        self.ask_to_stop()
        if self.life.exited_at is None:
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        for thread in (self.life.reader, self.life.waiter):
            if thread is not None:
                thread.join(5)

    # -- what it logged --------------------------------------------------------------------

    def transitions(self) -> list[Transition]:
        with self._lock:
            return [t for life in self.lives for t in life.transitions]

    def intervals(self, step_down_after: float | None = None) -> list[Interval]:
        found: list[Interval] = []
        with self._lock:
            for life in self.lives:
                found += leader_intervals(
                    list(life.transitions),
                    death=life.death,
                    freezes=list(life.freezes),
                    step_down_after=step_down_after,
                    life=life.index,
                )
        return found

    def deactivated(self, epoch: int) -> float | None:
        """When this node's current life last logged that it stopped leading `epoch`, if it
        did."""
        with self._lock:
            found = [
                t.monotonic for t in self.life.transitions if not t.activated and t.epoch == epoch
            ]
        return found[-1] if found else None

    def leading(self) -> Transition | None:
        """The activation this node's current life logged last, if no deactivation followed
        it and the process is alive and not frozen."""
        if not self.alive or self.life.frozen:
            return None
        with self._lock:
            transitions = list(self.life.transitions)
        if transitions and transitions[-1].activated:
            return transitions[-1]
        return None

    def tail(self, lines: int = 40) -> str:
        if not self.lives:
            return "(never started)"
        with self._lock:
            shown = [line for _, line in self.life.lines[-lines:]]
        return "\n".join(shown) or "(nothing on stderr)"

    # -- HTTP ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = HTTP_TIMEOUT,
    ) -> HttpResult:
        return http_request(self.url, method, path, body, headers, timeout)

    def ingest(
        self, count: int = 3, *, tag: str | None = None, timeout: float = HTTP_TIMEOUT
    ) -> HttpResult:
        """POST a CLEF batch of `count` uniquely identified events to /ingest/clef."""
        body = clef_batch(count, tag=tag or uuid.uuid4().hex[:8])
        return self.request(
            "POST", "/ingest/clef", body, {"Content-Type": CLEF_CONTENT_TYPE}, timeout
        )

    def cluster_health(self) -> HttpResult:
        return self.request("GET", "/health/cluster")


class Cluster:
    """`size` nodes (n1, n2, ...) of a fresh cluster in PostgreSQL's `test` database.

    Nothing starts until `start()` (all, in order) or `node.start()`.  With `proxied`, each node
    reaches PostgreSQL through a `TcpProxy` of its own (`node.proxy`).  `env` adds environment
    variables to every node, `node_env` to one.  Use as a context manager: on leaving, every
    process is stopped and every proxy closed.
    """

    def __init__(
        self,
        base: Path,
        size: int,
        *,
        proxied: bool = True,
        timing_profile: Literal["test", "default"] = "test",
        env: Mapping[str, str] | None = None,
        node_env: Mapping[str, Mapping[str, str]] | None = None,
        name: str | None = None,
    ) -> None:
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.name = name or f"fault-{uuid.uuid4().hex[:12]}"
        self.timing_profile = timing_profile
        self.timing: Timing = TEST if timing_profile == "test" else DEFAULT
        taken: set[int] = set()
        self.nodes: list[Node] = []
        for index in range(1, size + 1):
            node_id = f"n{index}"
            proxy = TcpProxy((POSTGRES_HOST, POSTGRES_PORT)) if proxied else None
            extra = dict(env or {})
            extra.update((node_env or {}).get(node_id, {}))
            self.nodes.append(Node(self, node_id, pick_port(taken), base / node_id, proxy, extra))

    def db_url_for_port(self, port: int) -> str:
        return f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{port}/test"

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for node in self.nodes:
            node.ask_to_stop()  # all at once: each takes a moment to hand over and stop
        for node in self.nodes:
            node.cleanup()
        for node in self.nodes:
            if node.proxy is not None:
                node.proxy.close()
        # The cluster's rows are of no use to anyone now (its name is never used again).
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=5) as conn,
        ):
            conn.execute("DELETE FROM nodes WHERE cluster = %s", (self.name,))
            conn.execute("DELETE FROM leader WHERE cluster = %s", (self.name,))

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)

    def start(self) -> Cluster:
        """Start every node (the first one first, so that it is the likely first leader)."""
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.wait_ready()
        return self

    # -- leadership ------------------------------------------------------------------------

    def leaders(self) -> list[Node]:
        return [node for node in self.nodes if node.leading() is not None]

    def wait_for(
        self, what: str, check: Callable[[], Any], timeout: float, poll: float = 0.02
    ) -> Any:
        """Polls `check` until it returns something true; fails with every node's log tail."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise AssertionError(f"{what}: not within {timeout:g} s\n{self.report()}")
            time.sleep(poll)

    def wait_for_leader(
        self, timeout: float | None = None, *, other_than: Node | None = None
    ) -> Node:
        """The node that leads (by its log), waiting for one (not `other_than`) if needed."""

        def one() -> Node | None:
            found = [n for n in self.leaders() if n is not other_than]
            return found[0] if len(found) == 1 else None

        bound = timeout if timeout is not None else self.failover_bound() + START_TIMEOUT
        result: Node = self.wait_for("a single leader", one, bound)
        return result

    def wait_for_ingest(
        self, timeout: float, *, via: Sequence[Node] | None = None, tag: str = "probe"
    ) -> tuple[Node, HttpResult, float]:
        """POSTs a batch through each node of `via` (default: every live one) in turn until one
        answers 201; returns that node, its answer and the instant it came."""
        last: list[str] = []

        def attempt() -> tuple[Node, HttpResult, float] | None:
            for node in via or [n for n in self.nodes if n.alive]:
                if not node.alive or (node.lives and node.life.frozen):
                    continue
                try:
                    answer = node.ingest(1, tag=tag, timeout=5)
                except OSError as exc:
                    last.append(f"{node.node_id}: {exc!r}")
                    continue
                if answer.status == 201:
                    return node, answer, time.monotonic()
                last.append(f"{node.node_id}: {answer.status} {answer.body[:200]!r}")
            return None

        try:
            result: tuple[Node, HttpResult, float] = self.wait_for(
                "ingestion answered 201", attempt, timeout, poll=0.05
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast answers: {last[-6:]}") from None
        return result

    def failover_bound(self) -> float:
        """L + R·(1 + J) + an activation allowance: how long a crash may leave the cluster
        without a leader (reliability note §1.5, rule 4)."""
        t = self.timing
        return t.lease + t.renew_every * (1 + t.renew_jitter) + ACTIVATION_ALLOWANCE

    def intervals(self) -> list[Interval]:
        return [i for node in self.nodes for i in node.intervals(self.timing.step_down_after)]

    def assert_no_overlap(self) -> None:
        try:
            assert_no_overlap(self.intervals())
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.report()}") from None
        bad = [line for node in self.nodes for life in node.lives for line in life.bad_lines]
        assert not bad, f"transition events that break the contract: {bad[:5]}"

    def report(self) -> str:
        parts = []
        for node in self.nodes:
            state = "alive" if node.alive else "down"
            spans = [
                (i.epoch, round(i.start, 3), round(i.end, 3), i.ended_by) for i in node.intervals()
            ]
            parts.append(f"--- {node.node_id} ({state}; intervals {spans})\n{node.tail(25)}")
        return "\n".join(parts)

    # -- the database, directly (not through any proxy) -------------------------------------

    def lease_row(self) -> tuple[str, int, float] | None:
        """(holder, epoch, expiry as a `time.monotonic()` instant) of this cluster's leader row,
        read straight from PostgreSQL; None if there is none.  The expiry is converted from the
        database's clock by reading both clocks together (same machine: same time base up to
        the few microseconds of the query)."""
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            before = time.monotonic()
            row = conn.execute(
                "SELECT node_id, epoch, extract(epoch FROM expires_at - clock_timestamp())"
                " FROM leader WHERE cluster = %s",
                (self.name,),
            ).fetchone()
            after = time.monotonic()
        if row is None:
            return None
        return str(row[0]), int(row[1]), (before + after) / 2 + float(row[2])


# Time allowed from winning the lease to logging "Leader duties started": one acquisition round
# trip and the activation itself, on a loaded 2-core machine.
ACTIVATION_ALLOWANCE: Final = 3.0
