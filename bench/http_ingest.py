"""End-to-end HTTP ingestion benchmark: `seqfast serve` fed over loopback by a separate load
generator, against the embedded `store.ingest_clef` rate measured in the same run.

    python3 bench/http_ingest.py [--seconds 30] [--connections 4] [--json OUT]
                                 [--events 1000000] [--seed 1] [--batch-bytes 1000000]
                                 [--server-arg=--queue-limit-bytes=10MiB ...]
                                 [--no-honour-retry-after] [--profile OUT.txt]
    python3 bench/http_ingest.py --via-follower [--rounds 2] [--cluster-db URL] [...]

1. Makes (or reuses) the seeded corpus (``bench/corpus.py``) and reads it once so that it is in
   the page cache.
2. Embedded rate: ``bench/ingest.py``'s seqfast run (a fresh subprocess ingests the corpus with
   ``store.ingest_clef`` from ``--threads`` threads in ~1 MB batches; acknowledged events/s),
   ``--embedded-repeat`` times, median.  With ``--sustained`` (the default) also a subprocess
   that loops over the corpus, pre-split in memory, for ``--seconds``: the embedded rate over the
   same duration as the HTTP run, background flushes and merges included.
3. HTTP: starts ``python -m seqfast serve --data <fresh dir> --listen 127.0.0.1:0`` and reads
   the address from its first log line.  A load generator subprocess pre-splits the corpus
   into batches in memory, opens ``--connections`` keep-alive connections (raw sockets, one
   thread each) and, once told to go, posts the batches (looping over the corpus) to
   ``/api/events/raw`` as ``application/vnd.serilog.clef`` for ``--seconds``.  A 503 is
   followed by a pause of its ``Retry-After`` (unless ``--no-honour-retry-after``).  Meanwhile
   the parent samples the server's RSS and per-thread CPU every half second.  After the run the
   server is stopped with SIGTERM (its exit status and shutdown time are reported) and
   ``seqfast stats`` checks that the store holds exactly the acknowledged events.
4. Prints a report and, with ``--json``, writes everything.

With ``--via-follower`` (steps 2 and 3 replaced): starts two nodes of one cluster (``serve
--cluster-db URL --cluster-name bench-<time> --advertise http://127.0.0.1:<port>``, each on a
fresh data directory), waits until both report the same leader on ``/health/cluster`` and a
request through the follower is forwarded, times ``GET /api/`` on each (idle, new connection
each: the fixed cost of the follower's hop), then runs the same generator against the leader,
then against the follower (which streams each request to the leader, ``seqfast/api/proxy.py``),
``--rounds`` times, sampling both nodes' per-thread CPU.  Reports each run, the medians per
target and follower / leader, and checks that the leader stored every acknowledged event.

Reported: acknowledged events/s and MB/s (events and bytes of 201 answers over the wall time of
the run), request latency p50/p99, status counts, the server's peak RSS (VmHWM) and RSS over
time, CPU seconds of the server (per thread group: event loop, trio worker threads, other
threads) and of the generator, and the ratio to the embedded rates.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anchors
import corpus
import ingest

Result = dict[str, Any]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
INGEST_PATH = "/api/events/raw"
CLEF_CONTENT_TYPE = "application/vnd.serilog.clef"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 120.0


# -------------------------------------------------------------------------------------------------
# The corpus, pre-split


def split_batches(data: bytes, batch_bytes: int) -> list[tuple[int, int, int]]:
    """(start, end, events) of ~`batch_bytes` batches cut after a newline, as bench/ingest.py
    cuts them: `batch_bytes`, then up to the end of the line that straddles the cut."""
    out: list[tuple[int, int, int]] = []
    pos, size = 0, len(data)
    while pos < size:
        end = pos + batch_bytes
        if end >= size:
            end = size
        elif data[end - 1] != 0x0A:
            nl = data.find(b"\n", end)
            end = size if nl < 0 else nl + 1
        events = data.count(b"\n", pos, end) + (data[end - 1] != 0x0A)
        out.append((pos, end, events))
        pos = end
    return out


def load_batches(path: Path, batch_bytes: int) -> tuple[list[bytes], list[int]]:
    """The corpus as ~`batch_bytes` batches (bytes objects) and their event counts."""
    data = path.read_bytes()
    cuts = split_batches(data, batch_bytes)
    bodies = [data[a:b] for a, b, _ in cuts]
    return bodies, [n for _, _, n in cuts]


_FIRST_DATE = re.compile(rb'^\{"@t":"(\d{4}-\d{2}-\d{2})T')


class Passes:
    """The batches of pass `p` over the corpus: the first pass as it is, later ones with the
    corpus's date moved `p` days on (same length), so that looping sends new events rather than
    copies of earlier ones, which sorted segments would store side by side and compress (and
    merge) unrealistically well."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies
        match = _FIRST_DATE.match(bodies[0]) if bodies else None
        self._date = dt.date.fromisoformat(match[1].decode()) if match else None
        self._shifted: dict[int, tuple[bytes, bytes]] = {}

    def body(self, k: int) -> bytes:
        """The k-th batch sent (k counts on across passes)."""
        p, i = divmod(k, len(self.bodies))
        if p == 0 or self._date is None:
            return self.bodies[i]
        pair = self._shifted.get(p)
        if pair is None:
            new = (self._date + dt.timedelta(days=p)).isoformat()
            pair = (f'{{"@t":"{self._date.isoformat()}T'.encode(), f'{{"@t":"{new}T'.encode())
            self._shifted[p] = pair
        return self.bodies[i].replace(*pair)


# -------------------------------------------------------------------------------------------------
# Load generator (its own process)


class _Response:
    __slots__ = ("close", "retry_after", "status")

    def __init__(self, status: int, close: bool, retry_after: float | None) -> None:
        self.status = status
        self.close = close
        self.retry_after = retry_after


_STATUS_RE = re.compile(rb"HTTP/1\.[01] (\d{3})")


def _read_response(sock: socket.socket) -> _Response:
    """Reads one response (head and Content-Length body) from a blocking socket."""
    buf = bytearray()
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection before answering")
        buf += chunk
    head = bytes(buf[:end]).split(b"\r\n")
    match = _STATUS_RE.match(head[0])
    if match is None:
        raise ConnectionError(f"not an HTTP response: {head[0][:80]!r}")
    length = 0
    close = head[0].startswith(b"HTTP/1.0")
    retry_after: float | None = None
    for line in head[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
        elif name == b"retry-after":
            with contextlib.suppress(ValueError):
                retry_after = float(value)
    remaining = length - (len(buf) - end - 4)
    while remaining > 0:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            raise ConnectionError("the server closed the connection inside a response body")
        remaining -= len(chunk)
    return _Response(int(match[1]), close, retry_after)


def _send_all(sock: socket.socket, head: bytes, body: bytes) -> None:
    """Head and body in one gathered write (no copy of the body), resuming partial sends."""
    parts = [memoryview(head), memoryview(body)]
    while parts:
        sent = sock.sendmsg(parts)
        while parts and sent >= len(parts[0]):
            sent -= len(parts[0])
            parts.pop(0)
        if parts and sent:
            parts[0] = parts[0][sent:]


class _Worker:
    """One keep-alive connection, posting batches until the deadline."""

    def __init__(self, host: str, port: int, honour_retry_after: bool) -> None:
        self.host = host
        self.port = port
        self.honour_retry_after = honour_retry_after
        self.latencies: list[float] = []  # seconds, 201 answers
        self.all_latencies: list[float] = []  # seconds, every answer
        self.acked: list[tuple[float, int, int]] = []  # (completion time, events, bytes)
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.connects = 0
        self.retry_after_seen: set[float] = set()
        self.retry_after_missing = 0

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=120)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connects += 1
        return sock

    def run(
        self,
        heads: list[bytes],
        passes: Passes,
        events: list[int],
        order: itertools.count[int],
        deadline: float,
    ) -> None:
        sock: socket.socket | None = None
        n = len(heads)
        while time.monotonic() < deadline:
            k = next(order)
            i = k % n
            body = passes.body(k)
            t0 = time.monotonic()
            response: _Response | None = None
            try:
                if sock is None:
                    sock = self._connect()
                try:
                    _send_all(sock, heads[i], body)
                except OSError:
                    # The server may answer (503, 413) and close before reading the whole body:
                    # look for that answer before counting an error; the connection is done.
                    sock.settimeout(1.0)
                    response = _read_response(sock)
                    response.close = True
                else:
                    response = _read_response(sock)
            except (OSError, ValueError) as exc:
                self.errors[type(exc).__name__] += 1
                if sock is not None:
                    sock.close()
                    sock = None
                time.sleep(0.01)
                continue
            t1 = time.monotonic()
            self.statuses[response.status] += 1
            self.all_latencies.append(t1 - t0)
            if response.status == 201:
                self.latencies.append(t1 - t0)
                self.acked.append((t1, events[i], len(body)))
            if response.close:
                sock.close()
                sock = None
            if response.status == 503:
                if response.retry_after is None:
                    self.retry_after_missing += 1
                else:
                    self.retry_after_seen.add(response.retry_after)
                    if self.honour_retry_after:
                        time.sleep(max(0.0, min(response.retry_after, deadline - t1)))
        if sock is not None:
            sock.close()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _generator_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="http_ingest.py _generator")
    parser.add_argument("file", type=Path)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--batch-bytes", type=int, required=True)
    parser.add_argument("--honour-retry-after", action="store_true")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)

    bodies, events = load_batches(args.file, args.batch_bytes)
    host_header = f"{args.host}:{args.port}"
    heads = [
        (
            f"POST {INGEST_PATH} HTTP/1.1\r\nHost: {host_header}\r\n"
            f"Content-Type: {CLEF_CONTENT_TYPE}\r\nContent-Length: {len(b)}\r\n\r\n"
        ).encode("ascii")
        for b in bodies
    ]
    workers = [
        _Worker(args.host, args.port, args.honour_retry_after) for _ in range(args.connections)
    ]
    print(f"ready {len(bodies)} {sum(len(b) for b in bodies)}", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 2
    passes = Passes(bodies)
    order = itertools.count()
    cpu0 = os.times()
    t0 = time.monotonic()
    deadline = t0 + args.seconds
    threads = [
        threading.Thread(target=w.run, args=(heads, passes, events, order, deadline), daemon=True)
        for w in workers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t1 = time.monotonic()
    cpu1 = os.times()

    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    all_latencies: list[float] = []
    acked: list[tuple[float, int, int]] = []
    retry_after_seen: set[float] = set()
    for w in workers:
        statuses.update(w.statuses)
        errors.update(w.errors)
        latencies += w.latencies
        all_latencies += w.all_latencies
        acked += w.acked
        retry_after_seen |= w.retry_after_seen
    seconds = t1 - t0
    acked_events = sum(e for _, e, _ in acked)
    acked_bytes = sum(b for _, _, b in acked)
    per_second = [0] * (int(seconds) + 1)
    for when, n, _ in acked:
        per_second[min(len(per_second) - 1, int(when - t0))] += n
    full_seconds = per_second[: int(seconds)]
    result: Result = {
        "connections": args.connections,
        "batches": len(bodies),
        "corpus_bytes": sum(len(b) for b in bodies),
        "corpus_events": sum(events),
        "start_monotonic": t0,
        "seconds": seconds,
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "connection_errors": dict(errors),
        "connects": sum(w.connects for w in workers),
        "retry_after_values": sorted(retry_after_seen),
        "retry_after_missing": sum(w.retry_after_missing for w in workers),
        "honour_retry_after": args.honour_retry_after,
        "acked_events": acked_events,
        "acked_bytes": acked_bytes,
        "events_per_second": acked_events / seconds,
        "mb_per_second": acked_bytes / 1e6 / seconds,
        "events_per_second_by_second": per_second,
        "events_per_second_median_of_seconds": (
            statistics.median(full_seconds) if full_seconds else None
        ),
        "latency_201_ms": {
            "p50": _ms(_percentile(latencies, 0.50)),
            "p90": _ms(_percentile(latencies, 0.90)),
            "p99": _ms(_percentile(latencies, 0.99)),
            "max": _ms(max(latencies) if latencies else None),
        },
        "latency_all_ms": {
            "p50": _ms(_percentile(all_latencies, 0.50)),
            "p99": _ms(_percentile(all_latencies, 0.99)),
        },
        "generator_cpu_seconds": {
            "user": cpu1.user - cpu0.user,
            "system": cpu1.system - cpu0.system,
        },
    }
    args.result.write_text(json.dumps(result))
    return 0


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


# -------------------------------------------------------------------------------------------------
# Sustained embedded ingestion (its own process)


def _sustained_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="http_ingest.py _sustained")
    parser.add_argument("file", type=Path)
    parser.add_argument("store", type=Path)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--batch-bytes", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    seqfast = ingest._import_seqfast()
    bodies, _ = load_batches(args.file, args.batch_bytes)
    passes = Passes(bodies)
    order = itertools.count()
    counts = [0] * args.threads
    nbytes = [0] * args.threads
    errors: list[BaseException] = []

    with seqfast.open(str(args.store)) as store:
        rss_open = anchors.peak_rss_mb()

        def feed(i: int, deadline: float) -> None:
            try:
                while time.monotonic() < deadline:
                    body = passes.body(next(order))
                    counts[i] += store.ingest_clef(body)
                    nbytes[i] += len(body)
            except BaseException as exc:
                errors.append(exc)

        cpu0 = anchors.cpu_seconds()
        t0 = time.monotonic()
        workers = [
            threading.Thread(target=feed, args=(i, t0 + args.seconds)) for i in range(args.threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        seconds = time.monotonic() - t0
        cpu = anchors.cpu_seconds() - cpu0
        if errors:
            raise errors[0]
        t_close = time.monotonic()
    close_seconds = time.monotonic() - t_close
    result: Result = {
        "threads": args.threads,
        "seconds": seconds,
        "events": sum(counts),
        "bytes": sum(nbytes),
        "events_per_second": sum(counts) / seconds,
        "mb_per_second": sum(nbytes) / 1e6 / seconds,
        "cpu_seconds": cpu,
        "close_seconds": close_seconds,
        "peak_rss_mb": anchors.peak_rss_mb(),
        "rss_after_loading_corpus_mb": rss_open,
    }
    args.result.write_text(json.dumps(result))
    return 0


def run_sustained(
    path: Path, workdir: Path, seconds: float, batch_bytes: int, threads: int
) -> Result:
    workdir.mkdir(parents=True, exist_ok=True)
    store_dir = Path(tempfile.mkdtemp(prefix="seqfast-sustained-", dir=workdir))
    try:
        result_file = store_dir.with_suffix(".json")
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "_sustained",
            str(path),
            str(store_dir),
            "--seconds",
            str(seconds),
            "--batch-bytes",
            str(batch_bytes),
            "--threads",
            str(threads),
            "--result",
            str(result_file),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not result_file.exists():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-20:])
            return {"error": f"sustained embedded run failed (exit {proc.returncode}):\n{tail}"}
        result: Result = json.loads(result_file.read_text())
        result_file.unlink()
        return result
    finally:
        shutil.rmtree(store_dir, ignore_errors=True)


# -------------------------------------------------------------------------------------------------
# The server under test


def _proc_cpu_seconds(stat_path: str) -> float | None:
    """utime + stime of a process or thread from its /proc .../stat."""
    try:
        with open(stat_path, encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (KiB) and Threads from /proc/<pid>/status."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def _thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (thread name, CPU seconds) for every thread of `pid`."""
    out: dict[int, tuple[str, float]] = {}
    with contextlib.suppress(OSError):
        for tid_text in os.listdir(f"/proc/{pid}/task"):
            tid = int(tid_text)
            cpu = _proc_cpu_seconds(f"/proc/{pid}/task/{tid}/stat")
            if cpu is None:
                continue
            try:
                with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8") as f:
                    name = f.read().strip()
            except OSError:
                name = "?"
            out[tid] = (name, cpu)
    return out


def _thread_group(pid: int, tid: int, name: str) -> str:
    if tid == pid:
        return "main thread (trio event loop)"
    if name.startswith("Trio thread") or name.startswith("Trio"):
        return "trio worker threads (decode + commit)"
    return "other threads (the store's background flush/merge thread)"


class Server:
    """`python -m seqfast serve` on a fresh data directory, its log in a file."""

    def __init__(self, data: Path, extra_args: list[str], listen: str = "127.0.0.1:0") -> None:
        self.data = data
        self.log_path = data.with_suffix(".log")
        cmd = [
            sys.executable,
            "-m",
            "seqfast",
            "serve",
            "--data",
            str(data),
            "--listen",
            listen,
            *extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEQFAST_")}
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        self.host, self.port = self._wait_for_address()

    def _wait_for_address(self) -> tuple[str, int]:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"seqfast serve exited ({self.proc.returncode}):\n{self.log()}")
            match = re.search(r'"Address":"http://([^":/]+):(\d+)"', self.log())
            if match:
                return match[1], int(match[2])
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"seqfast serve did not log its address in time:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> Result:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return {"exit_code": code, "shutdown_seconds": time.monotonic() - t0}


class Sampler:
    """Samples the server's RSS and per-thread CPU in a thread, every `period` seconds."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        self.pid = pid
        self.period = period
        self.rss_mb: list[tuple[float, float]] = []  # (seconds since start, VmRSS MB)
        self.threads_seen = 0
        self._first: dict[int, tuple[str, float]] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._first = _thread_cpu(self.pid)
        self._last = dict(self._first)
        self.t0 = time.monotonic()
        self.cpu0 = _proc_cpu_seconds(f"/proc/{self.pid}/stat") or 0.0
        self._thread.start()

    def _sample(self) -> None:
        status = _proc_status(self.pid)
        if "VmRSS" in status:
            self.rss_mb.append((time.monotonic() - self.t0, status["VmRSS"] / 1024))
        self.threads_seen = max(self.threads_seen, status.get("Threads", 0))
        self._last.update(_thread_cpu(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def stop(self) -> Result:
        self._stop.set()
        self._thread.join()
        self._sample()
        cpu = (_proc_cpu_seconds(f"/proc/{self.pid}/stat") or 0.0) - self.cpu0
        groups: dict[str, float] = {}
        for tid, (name, seconds) in self._last.items():
            before = self._first.get(tid, (name, 0.0))[1]
            group = _thread_group(self.pid, tid, name)
            groups[group] = groups.get(group, 0.0) + seconds - before
        status = _proc_status(self.pid)
        rss = [mb for _, mb in self.rss_mb]
        half = len(rss) // 2
        return {
            "server_cpu_seconds": cpu,
            "server_cpu_by_thread_group": dict(sorted(groups.items(), key=lambda g: -g[1])),
            "server_threads_max": self.threads_seen,
            "server_peak_rss_mb": status.get("VmHWM", 0) / 1024 or None,
            "server_rss_mb_max": max(rss) if rss else None,
            "server_rss_mb_first_half_max": max(rss[:half]) if half else None,
            "server_rss_mb_second_half_max": max(rss[half:]) if half else None,
            "server_rss_mb_series": [(round(t, 1), round(mb, 1)) for t, mb in self.rss_mb],
        }


def _start_generator(
    path: Path,
    host: str,
    port: int,
    connections: int,
    seconds: float,
    batch_bytes: int,
    honour_retry_after: bool,
    result_file: Path,
) -> subprocess.Popen[str]:
    """The load generator subprocess, once it has loaded its batches and waits for "go"."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "_generator",
        str(path),
        "--host",
        host,
        "--port",
        str(port),
        "--connections",
        str(connections),
        "--seconds",
        str(seconds),
        "--batch-bytes",
        str(batch_bytes),
        "--result",
        str(result_file),
    ]
    if honour_retry_after:
        cmd.append("--honour-retry-after")
    generator = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert generator.stdout is not None
    ready = generator.stdout.readline().split()
    if not ready or ready[0] != "ready":
        if generator.poll() is None:
            generator.kill()
        raise RuntimeError(f"the load generator did not start (exit {generator.wait()})")
    return generator


def _run_generator(generator: subprocess.Popen[str]) -> float:
    """Tells the generator to go and waits for it; its CPU seconds from /proc meanwhile."""
    assert generator.stdin is not None
    gen_cpu0 = _proc_cpu_seconds(f"/proc/{generator.pid}/stat") or 0.0
    generator.stdin.write("go\n")
    generator.stdin.flush()
    gen_cpu1 = gen_cpu0
    while generator.poll() is None:
        gen_cpu1 = _proc_cpu_seconds(f"/proc/{generator.pid}/stat") or gen_cpu1
        time.sleep(0.1)
    return gen_cpu1 - gen_cpu0


def _generator_result(
    generator: subprocess.Popen[str], result_file: Path, gen_cpu: float
) -> Result:
    """The generator's result file, with its CPU share."""
    if generator.returncode != 0 or not result_file.exists():
        raise RuntimeError(f"the load generator failed (exit {generator.returncode})")
    result: Result = json.loads(result_file.read_text())
    result["generator_process_cpu_seconds"] = gen_cpu
    cpu_gen = result["generator_cpu_seconds"]
    result["generator_cpu_share"] = (cpu_gen["user"] + cpu_gen["system"]) / result["seconds"]
    return result


def run_http(
    path: Path,
    workdir: Path,
    seconds: float,
    connections: int,
    batch_bytes: int,
    honour_retry_after: bool,
    server_args: list[str],
    profile: Path | None,
    keep: bool,
) -> Result:
    workdir.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="seqfast-serve-", dir=workdir))
    result_file = data.with_suffix(".gen.json")
    try:
        server = Server(data, server_args)
    except BaseException:
        if not keep:
            shutil.rmtree(data, ignore_errors=True)
            data.with_suffix(".log").unlink(missing_ok=True)
        raise
    generator: subprocess.Popen[str] | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        generator = _start_generator(
            path,
            server.host,
            server.port,
            connections,
            seconds,
            batch_bytes,
            honour_retry_after,
            result_file,
        )
        rss_idle = _proc_status(server.proc.pid).get("VmRSS", 0) / 1024
        sampler = Sampler(server.proc.pid)
        sampler.start()
        if profile is not None:
            spy = _start_py_spy(server.proc.pid, profile, seconds)
        gen_cpu = _run_generator(generator)
        samples = sampler.stop()
        result = _generator_result(generator, result_file, gen_cpu)
        if spy is not None:
            spy.wait(timeout=60)
            spy = None
        result.update(samples)
        result["server_rss_idle_mb"] = rss_idle
        result["server_cpu_share"] = result["server_cpu_seconds"] / result["seconds"]
        result["server_args"] = server_args
        result.update(server.stop())
        result["stored_events"] = _stored_events(data)
        result["store_bytes_on_disk"] = anchors.dir_bytes(data)
        log = server.log()
        result["server_log_warnings"] = [
            line for line in log.splitlines() if '"@l":"Warning"' in line or '"@l":"Error"' in line
        ][:20]
        return result
    finally:
        for proc in (spy, generator):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        if server.proc.poll() is None:
            server.stop()
        result_file.unlink(missing_ok=True)
        if not keep:
            shutil.rmtree(data, ignore_errors=True)
            server.log_path.unlink(missing_ok=True)


def _start_py_spy(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    """py-spy record (collapsed stacks, per thread, with native frames) over the middle of the
    run, or None when py-spy is not installed."""
    exe = shutil.which("py-spy")
    if exe is None:
        print("py-spy is not installed (pip install py-spy): no profile", file=sys.stderr)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    duration = max(1, int(seconds) - 4)
    cmd = [
        exe, "record", "--pid", str(pid), "--duration", str(duration), "--rate", "100",
        "--format", "raw", "--threads", "--native", "--output", str(out),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stored_events(data: Path) -> int | None:
    """Events in the store after the server stopped, by `seqfast stats`."""
    proc = subprocess.run(
        [sys.executable, "-m", "seqfast", "stats", "--data", str(data)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        return None
    try:
        return int(json.loads(proc.stdout)["events"])
    except (ValueError, KeyError, TypeError):
        return None


# -------------------------------------------------------------------------------------------------
# Report


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_report(report: Result) -> str:
    c = report["corpus"]
    s = report["settings"]
    lines = [
        f"# seqfast HTTP ingestion benchmark — {report['date']}",
        "",
        f"machine: {ingest.machine_line(report['machine'])}",
        f"load average before/after: {report['loadavg_before']} / {report['loadavg_after']}",
        f"corpus: {c['file']} — {c['events']:,} events, {c['bytes'] / 1e6:,.1f} MB "
        f"({c['bytes'] / c['events']:.1f} B/event)",
        f"HTTP: {s['connections']} keep-alive connections, ~{s['batch_bytes']:,} B batches to "
        f"{INGEST_PATH} for {s['seconds']:.0f} s; Retry-After "
        f"{'honoured' if s['honour_retry_after'] else 'ignored'}; server args "
        f"{s['server_args'] or '(defaults)'}",
        "",
    ]
    h = report.get("http")
    emb = report.get("embedded")
    sus = report.get("sustained")
    lines += [
        "| run | events/s | MB/s | CPU s / s | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    if emb and "error" not in emb:
        lines.append(
            f"| embedded ingest_clef, {emb['threads']} threads, 1 pass over the corpus "
            f"(median of {emb.get('runs', 1)}) | {emb['events_per_second']:,.0f} | "
            f"{emb['mb_per_second']:.1f} | {emb['cpu_seconds'] / emb['load_seconds']:.2f} | "
            f"{emb['peak_rss_mb']:,.0f} |"
        )
    elif emb:
        lines.append(f"| embedded | {emb['error'].splitlines()[0]} | | | |")
    if sus and "error" not in sus:
        lines.append(
            f"| embedded ingest_clef, {sus['threads']} threads, looping for "
            f"{sus['seconds']:.0f} s | {sus['events_per_second']:,.0f} | "
            f"{sus['mb_per_second']:.1f} | {sus['cpu_seconds'] / sus['seconds']:.2f} | "
            f"{sus['peak_rss_mb']:,.0f} (incl. the corpus in memory) |"
        )
    elif sus:
        lines.append(f"| sustained | {sus['error'].splitlines()[0]} | | | |")
    if h and "error" not in h:
        lines.append(
            f"| HTTP, {h['connections']} connections, {h['seconds']:.1f} s | "
            f"**{h['events_per_second']:,.0f}** | {h['mb_per_second']:.1f} | "
            f"{h['server_cpu_share']:.2f} server + {h['generator_cpu_share']:.2f} generator | "
            f"{_fmt(h['server_peak_rss_mb'], ',.0f')} |"
        )
    lines.append("")
    if h and "error" in h:
        lines.append(f"HTTP run failed: {h['error']}")
        return "\n".join(lines)
    if h:
        lat = h["latency_201_ms"]
        cpu = h["server_cpu_by_thread_group"]
        lines += [
            f"requests: {h['requests']:,}; statuses {h['statuses']}; connection errors "
            f"{h['connection_errors'] or 'none'}; connections opened {h['connects']}",
            f"Retry-After values seen: {h['retry_after_values'] or '-'}"
            f" (503 without Retry-After: {h['retry_after_missing']})",
            f"latency of 201 answers: p50 {_fmt(lat['p50'], '.1f')} ms, p90 "
            f"{_fmt(lat['p90'], '.1f')} ms, p99 {_fmt(lat['p99'], '.1f')} ms, max "
            f"{_fmt(lat['max'], '.1f')} ms",
            f"acknowledged: {h['acked_events']:,} events, {h['acked_bytes'] / 1e6:,.1f} MB; "
            f"median of per-second rates {_fmt(h['events_per_second_median_of_seconds'], ',.0f')}"
            " events/s",
            f"stored after shutdown (seqfast stats): {_fmt(h['stored_events'], ',')} events; "
            f"{h['store_bytes_on_disk'] / 1e6:,.1f} MB on disk",
            f"server: CPU {h['server_cpu_seconds']:.1f} s over {h['seconds']:.1f} s "
            f"({h['server_cpu_share']:.2f} cores): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in cpu.items()),
            f"server RSS: idle {h['server_rss_idle_mb']:,.0f} MB, peak (VmHWM) "
            f"{_fmt(h['server_peak_rss_mb'], ',.0f')} MB, max sampled in the first / second half "
            f"{_fmt(h['server_rss_mb_first_half_max'], ',.0f')} / "
            f"{_fmt(h['server_rss_mb_second_half_max'], ',.0f')} MB; threads "
            f"{h['server_threads_max']}",
            f"generator: CPU {h['generator_cpu_seconds']['user']:.1f} s user + "
            f"{h['generator_cpu_seconds']['system']:.1f} s system "
            f"({h['generator_cpu_share']:.2f} cores)",
            f"shutdown: exit {h['exit_code']} after {h['shutdown_seconds']:.1f} s",
        ]
        if h["server_log_warnings"]:
            lines.append("server warnings/errors:")
            lines += [f"  {w}" for w in h["server_log_warnings"]]
        rat = report.get("ratios", {})
        lines.append(
            f"ratio HTTP / embedded (1 pass): ×{_fmt(rat.get('http_vs_embedded'), '.2f')}; "
            f"HTTP / embedded (looping, same duration): "
            f"×{_fmt(rat.get('http_vs_sustained'), '.2f')}"
        )
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------
# Through a follower: a 2-node cluster, the same load on the leader and on the follower


CLUSTER_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CLUSTER_READY_TIMEOUT = 90.0


def _free_ports(n: int) -> list[int]:
    """`n` distinct ports free on 127.0.0.1 just now (a node must know its port before it
    starts, to advertise it)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of GET http://127.0.0.1:<port><path>; (0, b"") when unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def _cluster_leader(port: int) -> str | None:
    """The leader's URL by `GET /health/cluster` on the node at `port`, once healthy."""
    status, body = _http_get(port, "/health/cluster")
    if status != 200:
        return None
    try:
        leader = json.loads(body).get("Leader")
    except ValueError:
        return None
    return leader.get("Url") if isinstance(leader, dict) else None


def _wait_for_cluster(nodes: list[Server]) -> tuple[Server, Server, float]:
    """(leader, follower, seconds waited): both nodes report the same leader, and a request
    through the follower is forwarded (not a 503 for want of a known leader)."""
    t0 = time.monotonic()
    deadline = t0 + CLUSTER_READY_TIMEOUT
    while time.monotonic() < deadline:
        for node in nodes:
            if node.proc.poll() is not None:
                raise RuntimeError(f"a node exited ({node.proc.returncode}):\n{node.log()}")
        urls = {_cluster_leader(node.port) for node in nodes}
        if len(urls) == 1 and None not in urls:
            (url,) = urls
            leaders = [n for n in nodes if url == f"http://{n.host}:{n.port}"]
            if len(leaders) == 1:
                leader = leaders[0]
                follower = next(n for n in nodes if n is not leader)
                if _http_get(follower.port, "/api/")[0] == 200:
                    return leader, follower, time.monotonic() - t0
        time.sleep(0.2)
    raise RuntimeError(
        f"no leader within {CLUSTER_READY_TIMEOUT:.0f} s:\n"
        + "\n".join(n.log()[-2000:] for n in nodes)
    )


def _idle_get_ms(port: int, n: int = 200) -> float:
    """Median ms of `GET /api/` on a new connection each time, the cluster otherwise idle: the
    fixed cost a follower adds to a request (its own connection to the leader included)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, _ = _http_get(port, "/api/")
        times.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET /api/ on :{port} answered {status}")
    return statistics.median(times) * 1000.0


def run_via_follower(
    path: Path,
    workdir: Path,
    seconds: float,
    connections: int,
    batch_bytes: int,
    honour_retry_after: bool,
    server_args: list[str],
    rounds: int,
    cluster_db: str,
    profile: Path | None,
    keep: bool,
) -> Result:
    """Starts two cluster nodes and runs the generator against the leader and against the
    follower in turn, `rounds` times each (leader first); both nodes sampled in every run."""
    workdir.mkdir(parents=True, exist_ok=True)
    name = f"bench-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}"
    nodes: list[Server] = []
    datas: list[Path] = []
    generator: subprocess.Popen[str] | None = None
    spy: subprocess.Popen[bytes] | None = None
    try:
        for i, port in enumerate(_free_ports(2)):
            data = Path(tempfile.mkdtemp(prefix=f"seqfast-node{i + 1}-", dir=workdir))
            datas.append(data)
            args = [
                "--cluster-db", cluster_db, "--cluster-name", name, "--node-id",
                f"{name}-n{i + 1}", "--advertise", f"http://127.0.0.1:{port}", *server_args,
            ]  # fmt: skip
            nodes.append(Server(data, args, listen=f"127.0.0.1:{port}"))
        leader, follower, waited = _wait_for_cluster(nodes)
        print(
            f"cluster {name}: leader :{leader.port}, follower :{follower.port} "
            f"(ready after {waited:.1f} s)",
            file=sys.stderr,
        )
        roles = {"leader": leader, "follower": follower}
        idle_get_ms = {role: _idle_get_ms(n.port) for role, n in roles.items()}
        runs: list[Result] = []
        for r in range(rounds):
            for target in ("leader", "follower"):
                node = roles[target]
                result_file = datas[0].with_suffix(f".gen-{r}-{target}.json")
                generator = _start_generator(
                    path,
                    node.host,
                    node.port,
                    connections,
                    seconds,
                    batch_bytes,
                    honour_retry_after,
                    result_file,
                )
                samplers = {role: Sampler(n.proc.pid) for role, n in roles.items()}
                for sampler in samplers.values():
                    sampler.start()
                if profile is not None and target == "follower" and r == 0:
                    spy = _start_py_spy(follower.proc.pid, profile, seconds)
                gen_cpu = _run_generator(generator)
                samples = {role: s.stop() for role, s in samplers.items()}
                try:
                    result = _generator_result(generator, result_file, gen_cpu)
                finally:
                    result_file.unlink(missing_ok=True)
                generator = None
                if spy is not None:
                    spy.wait(timeout=60)
                    spy = None
                result["target"] = target
                result["round"] = r + 1
                for sample in samples.values():
                    del sample["server_rss_mb_series"]
                    sample["cpu_share"] = sample["server_cpu_seconds"] / result["seconds"]
                result["nodes"] = samples
                result["leader_after"] = _cluster_leader(leader.port)
                runs.append(result)
                print(
                    f"round {r + 1} {target}: {result['events_per_second']:,.0f} events/s, "
                    f"p50 {_fmt(result['latency_201_ms']['p50'], '.1f')} ms, statuses "
                    f"{result['statuses']}",
                    file=sys.stderr,
                )
        out: Result = {
            "cluster_name": name,
            "cluster_db": cluster_db,
            "leader_url": f"http://{leader.host}:{leader.port}",
            "follower_url": f"http://{follower.host}:{follower.port}",
            "ready_seconds": waited,
            "idle_get_api_ms": idle_get_ms,
            "server_args": server_args,
            "rounds": rounds,
            "runs": runs,
        }
        stopped = {role: n.stop() for role, n in roles.items()}
        out["shutdown"] = stopped
        out["stored_events"] = {role: _stored_events(n.data) for role, n in roles.items()}
        out["acked_events"] = sum(run["acked_events"] for run in runs)
        out["server_log_warnings"] = {
            role: [
                line
                for line in n.log().splitlines()
                if '"@l":"Warning"' in line or '"@l":"Error"' in line
            ][:20]
            for role, n in roles.items()
        }
        out["summary"] = _summarize_via_follower(runs)
        return out
    finally:
        for proc in (spy, generator):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        for node in nodes:
            if node.proc.poll() is None:
                node.stop()
        if not keep:
            for data in datas:
                shutil.rmtree(data, ignore_errors=True)
                data.with_suffix(".log").unlink(missing_ok=True)


def _summarize_via_follower(runs: list[Result]) -> Result:
    """Medians per target, and follower / leader: of the medians and of each round's pair."""

    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    out: Result = {}
    for target in ("leader", "follower"):
        mine = [run for run in runs if run["target"] == target]
        out[target] = {
            "events_per_second": median([run["events_per_second"] for run in mine]),
            "mb_per_second": median([run["mb_per_second"] for run in mine]),
            "p50_ms": median([run["latency_201_ms"]["p50"] for run in mine]),
            "p99_ms": median([run["latency_201_ms"]["p99"] for run in mine]),
            "leader_cpu_share": median([run["nodes"]["leader"]["cpu_share"] for run in mine]),
            "follower_cpu_share": median([run["nodes"]["follower"]["cpu_share"] for run in mine]),
        }
    lead, foll = out["leader"]["events_per_second"], out["follower"]["events_per_second"]
    out["ratio_of_medians"] = foll / lead if lead and foll is not None else None
    by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["target"]] = run["events_per_second"]
    out["ratio_by_round"] = [
        pair["follower"] / pair["leader"]
        for _, pair in sorted(by_round.items())
        if pair.get("leader") and "follower" in pair
    ]
    return out


def format_via_follower(report: Result) -> str:
    c = report["corpus"]
    s = report["settings"]
    lines = [
        f"# seqfast HTTP ingestion through a follower — {report['date']}",
        "",
        f"machine: {ingest.machine_line(report['machine'])}",
        f"load average before/after: {report['loadavg_before']} / {report['loadavg_after']}",
        f"corpus: {c['file']} — {c['events']:,} events, {c['bytes'] / 1e6:,.1f} MB "
        f"({c['bytes'] / c['events']:.1f} B/event)",
        f"HTTP: {s['connections']} keep-alive connections, ~{s['batch_bytes']:,} B batches to "
        f"{INGEST_PATH} for {s['seconds']:.0f} s per run; Retry-After "
        f"{'honoured' if s['honour_retry_after'] else 'ignored'}",
    ]
    v = report.get("via_follower")
    if v is None or "error" in v:
        lines.append(f"run failed: {v['error'] if v else 'not run'}")
        return "\n".join(lines)
    lines += [
        f"cluster {v['cluster_name']} on {v['cluster_db']}: leader {v['leader_url']}, follower "
        f"{v['follower_url']} (leading {v['ready_seconds']:.1f} s after both listened); node args "
        f"{v['server_args'] or '(defaults)'}",
        "",
        "| round | posted to | events/s | MB/s | 201 p50 / p99 ms | statuses | "
        "CPU cores: leader + follower + generator | follower event loop cores |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for run in v["runs"]:
        lat = run["latency_201_ms"]
        nodes = run["nodes"]
        loop = nodes["follower"]["server_cpu_by_thread_group"].get(
            "main thread (trio event loop)", 0.0
        )
        lines.append(
            f"| {run['round']} | {run['target']} | {run['events_per_second']:,.0f} | "
            f"{run['mb_per_second']:.1f} | {_fmt(lat['p50'], '.1f')} / "
            f"{_fmt(lat['p99'], '.1f')} | "
            + ", ".join(f"{n:,} × {k}" for k, n in run["statuses"].items())
            + (f"; errors {run['connection_errors']}" if run["connection_errors"] else "")
            + f" | {nodes['leader']['cpu_share']:.2f} + {nodes['follower']['cpu_share']:.2f} + "
            f"{run['generator_cpu_share']:.2f} | {loop / run['seconds']:.2f} |"
        )
    sm = v["summary"]
    for target in ("leader", "follower"):
        t = sm[target]
        lines.append(
            f"| median | {target} | **{_fmt(t['events_per_second'], ',.0f')}** | "
            f"{_fmt(t['mb_per_second'], '.1f')} | {_fmt(t['p50_ms'], '.1f')} / "
            f"{_fmt(t['p99_ms'], '.1f')} | | {_fmt(t['leader_cpu_share'], '.2f')} + "
            f"{_fmt(t['follower_cpu_share'], '.2f')} | |"
        )
    lines += [
        "",
        f"follower / leader: ×{_fmt(sm['ratio_of_medians'], '.2f')} (medians); by round "
        + ", ".join(f"×{x:.2f}" for x in sm["ratio_by_round"]),
        f"GET /api/ on a new connection, idle cluster (median of 200): leader "
        f"{v['idle_get_api_ms']['leader']:.2f} ms, through the follower "
        f"{v['idle_get_api_ms']['follower']:.2f} ms",
        f"acknowledged {v['acked_events']:,} events in all; stored after shutdown "
        f"(seqfast stats): leader {_fmt(v['stored_events']['leader'], ',')}, follower "
        f"{_fmt(v['stored_events']['follower'], ',')}",
        "leader after each run: " + ", ".join(str(run["leader_after"]) for run in v["runs"]),
        "shutdown: "
        + ", ".join(
            f"{role} exit {x['exit_code']} after {x['shutdown_seconds']:.1f} s"
            for role, x in v["shutdown"].items()
        ),
    ]
    for run in v["runs"]:
        if run["target"] == "follower":
            groups = run["nodes"]["follower"]["server_cpu_by_thread_group"]
            lines.append(
                f"round {run['round']}, follower CPU by thread over {run['seconds']:.1f} s: "
                + ", ".join(f"{k} {x:.1f} s" for k, x in groups.items())
            )
    for role, warnings in v["server_log_warnings"].items():
        if warnings:
            lines.append(f"{role} warnings/errors:")
            lines += [f"  {w}" for w in warnings]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------
# Main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_generator":
        return _generator_main(argv[1:])
    if argv and argv[0] == "_sustained":
        return _sustained_main(argv[1:])
    parser = argparse.ArgumentParser(
        description="End-to-end HTTP ingestion benchmark: a load generator process posts ~1 MB "
        "CLEF batches over keep-alive connections to a `seqfast serve` subprocess; reports "
        "acknowledged events/s, latency, statuses, the server's RSS and CPU, and the embedded "
        "ingest_clef rate of the same run for the ratio.",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the HTTP run (30)")
    parser.add_argument("--connections", type=int, default=4, help="keep-alive connections (4)")
    parser.add_argument("--events", type=int, default=1_000_000, help="corpus size (1000000)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (1)")
    parser.add_argument("--corpus", type=Path, help="use this CLEF file instead")
    parser.add_argument(
        "--batch-bytes", type=int, default=1_000_000, help="request body size (1000000)"
    )
    parser.add_argument("--threads", type=int, default=2, help="embedded feeding threads (2)")
    parser.add_argument(
        "--embedded-repeat", type=int, default=3, help="embedded 1-pass runs, median (3; 0: none)"
    )
    parser.add_argument(
        "--sustained",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the embedded store looping for --seconds (default: yes)",
    )
    parser.add_argument(
        "--honour-retry-after",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after a 503, wait its Retry-After before the connection's next request (yes)",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `seqfast serve`, e.g. --server-arg=--queue-limit-bytes=10MiB",
    )
    parser.add_argument(
        "--profile", type=Path, metavar="OUT", help="py-spy record the server into OUT (raw)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=BENCH_DIR / ".data", help="corpus and stores (bench/.data)"
    )
    parser.add_argument(
        "--via-follower",
        action="store_true",
        help="instead: start a 2-node cluster (--cluster-db) and post to the leader, then to the "
        "follower (which forwards to the leader), --rounds times; no embedded runs",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="with --via-follower: leader/follower pairs (2)"
    )
    parser.add_argument(
        "--cluster-db",
        default=CLUSTER_DB,
        metavar="URL",
        help=f"with --via-follower: the cluster database ({CLUSTER_DB})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the server's data directory")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the full report as JSON")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.connections < 1 or args.batch_bytes < 1 or args.threads < 1:
        parser.error("--seconds, --connections, --batch-bytes and --threads must be positive")
    if args.rounds < 1:
        parser.error("--rounds must be positive")

    path = (
        args.corpus.resolve()
        if args.corpus
        else corpus.corpus_path(args.events, args.seed, args.workdir)
    )
    anchors.warm_page_cache(path)
    events = anchors.count_lines(path)
    report: Result = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": ingest.machine_info(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "corpus": {"file": str(path), "events": events, "bytes": path.stat().st_size},
        "settings": {
            "seconds": args.seconds,
            "connections": args.connections,
            "batch_bytes": args.batch_bytes,
            "threads": args.threads,
            "honour_retry_after": args.honour_retry_after,
            "server_args": args.server_arg,
            "embedded_repeat": args.embedded_repeat,
        },
    }
    print(f"corpus {path} ({events:,} events)", file=sys.stderr)
    if args.via_follower:
        return _main_via_follower(args, path, report)

    runs: list[Result] = []
    for i in range(args.embedded_repeat):
        r = ingest.run_seqfast(path, args.workdir / "ingest", args.batch_bytes, args.threads)
        if "error" in r:
            report["embedded"] = r
            break
        runs.append(r)
        print(
            f"embedded run {i + 1}/{args.embedded_repeat}: {r['events_per_second']:,.0f} events/s",
            file=sys.stderr,
        )
    if runs:
        report["embedded"] = anchors.summarize(runs)
        report["embedded_runs"] = runs
    if args.sustained:
        report["sustained"] = run_sustained(
            path, args.workdir / "ingest", args.seconds, args.batch_bytes, args.threads
        )
        if "error" not in report["sustained"]:
            rate = report["sustained"]["events_per_second"]
            print(f"embedded, looping: {rate:,.0f} events/s", file=sys.stderr)
    ok = _record(
        report,
        "http",
        lambda: run_http(
            path,
            args.workdir / "http",
            args.seconds,
            args.connections,
            args.batch_bytes,
            args.honour_retry_after,
            args.server_arg,
            args.profile,
            args.keep,
        ),
    )
    h, emb, sus = report["http"], report.get("embedded"), report.get("sustained")
    ratios: Result = {"http_vs_embedded": None, "http_vs_sustained": None}
    if ok:
        for key, base in (("http_vs_embedded", emb), ("http_vs_sustained", sus)):
            if base and "error" not in base:
                ratios[key] = h["events_per_second"] / base["events_per_second"]
    report["ratios"] = ratios
    print(format_report(report))
    _write_json(args.json, report)
    return 0 if ok else 1


def _record(report: Result, key: str, run: Callable[[], Result]) -> bool:
    """Runs one HTTP measurement into `report[key]` (its error instead, if the servers could
    not be run) and notes the load after it; whether it succeeded."""
    try:
        report[key] = run()
    except RuntimeError as exc:
        report[key] = {"error": str(exc)}
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return "error" not in report[key]


def _write_json(out: Path | None, report: Result) -> None:
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1, default=str))


def _main_via_follower(args: argparse.Namespace, path: Path, report: Result) -> int:
    report["settings"]["rounds"] = args.rounds
    report["settings"]["embedded_repeat"] = 0
    ok = _record(
        report,
        "via_follower",
        lambda: run_via_follower(
            path,
            args.workdir / "http",
            args.seconds,
            args.connections,
            args.batch_bytes,
            args.honour_retry_after,
            args.server_arg,
            args.rounds,
            args.cluster_db,
            args.profile,
            args.keep,
        ),
    )
    print(format_via_follower(report))
    _write_json(args.json, report)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
