"""The node runtime under a mock clock, on a real lease in SQLite.

Every case runs under `trio.testing.MockClock(autojump_threshold=0)`: virtual time jumps to the
next deadline whenever every task waits, so minutes of cluster life take milliseconds, and each
assertion about *when* something happened is exact.  The lease is the real `Lease` on a SQLite
file.  Two things stand between it and the runtime (`FaultyLease`):

- Calls run inline on the event loop instead of in worker threads, so that virtual time cannot
  jump while SQLite works.  (Worker threads and their abandonment are exercised in real time by
  `test_runtime_realtime.py`.)
- The database's clock follows the virtual one (`DatabaseTime`): SQLite judges expiry by the
  wall clock, so before every call the stored instants are moved back by however far virtual
  time has run ahead of it.

Faults are injected by `FaultyLease` in windows of virtual time: a call that hangs (the runtime
abandons it after the call timeout, as it abandons a thread) or fails.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from seqfast.cluster import clock
from seqfast.cluster.lease import LeaderRow, Lease, LeaseTimeout, NodeInfo
from seqfast.cluster.runtime import (
    LeaderContext,
    LeaderDutyFailed,
    NodeRuntime,
    NodeTerminated,
)
from seqfast.cluster.timing import TEST, Timing

T = TEST  # L 4, R 0.5, D 2.5, Tq 0.5, K 3
ALL_CALLS = frozenset({"acquire", "renew", "release", "current", "heartbeat"})


# ---------------------------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------------------------


class DatabaseTime:
    """Keeps the database's clock in step with trio's mock clock (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._start: tuple[float, float] | None = None
        self._shifted = 0.0

    def sync(self) -> None:
        mock, real = trio.current_time(), time.time()
        if self._start is None:
            self._start = (mock, real)
            return
        ahead = (mock - self._start[0]) - (real - self._start[1])
        delta = ahead - self._shifted
        if delta <= 0:
            # The wall clock ran ahead while mock time stood still (the milliseconds SQLite
            # takes).  Moving instants forward would undo a release just made; the next jump of
            # mock time makes up for it.
            return
        self._shifted = ahead
        with self._engine.begin() as conn:
            conn.execute(text("UPDATE leader SET expires_at = expires_at - :d"), {"d": delta})
            conn.execute(text("UPDATE nodes SET heartbeat_at = heartbeat_at - :d"), {"d": delta})


@dataclass
class Fault:
    kind: str  # "hang" or "fail"
    start: float
    end: float
    calls: frozenset[str]


class FaultyLease:
    """A real `Lease`, called inline, with faults in windows of mock time."""

    def __init__(self, lease: Lease, db_time: DatabaseTime) -> None:
        self.lease = lease
        self.db_time = db_time
        self.faults: list[Fault] = []
        self.renewed: list[float] = []  # mock instants of successful renewals (sent = answered)
        self.released: list[int] = []

    def hang(self, start: float, end: float = math.inf, calls: frozenset[str] = ALL_CALLS) -> None:
        self.faults.append(Fault("hang", start, end, calls))

    def fail(self, start: float, end: float = math.inf, calls: frozenset[str] = ALL_CALLS) -> None:
        self.faults.append(Fault("fail", start, end, calls))

    async def _call(self, name: str, fn: Callable[[], Any]) -> Any:
        now = trio.current_time()
        for fault in self.faults:
            if name in fault.calls and fault.start <= now < fault.end:
                if fault.kind == "hang":
                    await trio.sleep_forever()  # a thread that never returns; abandoned
                await trio.lowlevel.checkpoint()
                raise LeaseTimeout(f"injected failure of {name}")
        await trio.lowlevel.checkpoint()
        self.db_time.sync()
        return fn()

    async def acquire(self, node_id: str, lease_seconds: float) -> int | None:
        result: int | None = await self._call(
            "acquire", lambda: self.lease.acquire(node_id, lease_seconds)
        )
        return result

    async def renew(self, node_id: str, epoch: int, lease_seconds: float) -> bool:
        ok: bool = await self._call(
            "renew", lambda: self.lease.renew(node_id, epoch, lease_seconds)
        )
        if ok:
            self.renewed.append(trio.current_time())
        return ok

    async def release(self, node_id: str, epoch: int) -> bool:
        ok: bool = await self._call("release", lambda: self.lease.release(node_id, epoch))
        if ok:
            self.released.append(epoch)
        return ok

    async def current(self) -> LeaderRow | None:
        row: LeaderRow | None = await self._call("current", self.lease.current)
        return row

    async def heartbeat(self, node: NodeInfo) -> None:
        await self._call("heartbeat", lambda: self.lease.heartbeat(node))


@dataclass
class Event:
    at: float  # mock time
    level: str
    template: str
    properties: dict[str, Any]


class SelfLog:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, level: str, template: str, **properties: Any) -> None:
        self.events.append(Event(trio.current_time(), level, template, properties))

    def transitions(self) -> list[Event]:
        return [e for e in self.events if "Transition" in e.properties]

    def with_template(self, template: str) -> list[Event]:
        return [e for e in self.events if e.template == template]


@dataclass
class Term:
    """One activation as the leader duty saw it, in mock time."""

    node: str
    epoch: int
    start: float
    end: float = math.inf
    work: list[float] = field(default_factory=list)
    deadlines: list[float] = field(default_factory=list)


class Duties:
    """A leader duty that works every 0.05 s and records when, shared by every node."""

    def __init__(self) -> None:
        self.terms: list[Term] = []

    def duty(self, node: str) -> Callable[[LeaderContext], Awaitable[None]]:
        async def work(context: LeaderContext) -> None:
            term = Term(node, context.epoch, trio.current_time())
            self.terms.append(term)
            try:
                while True:
                    term.work.append(trio.current_time())
                    term.deadlines.append(context.deadline())
                    await trio.sleep(0.05)
            finally:
                term.end = trio.current_time()

        return work

    def of(self, node: str) -> list[Term]:
        return [t for t in self.terms if t.node == node]

    def assert_never_two_leaders(self) -> None:
        terms = sorted(self.terms, key=lambda t: t.start)
        for before, after in itertools.pairwise(terms):
            assert before.end < after.start, (before, after)
        for term in terms:
            assert all(w < d for w, d in zip(term.work, term.deadlines, strict=True)), term


class FakeMonitor:
    """Records what the runtime tells the watchdog, with deadlines mapped back to mock time."""

    def __init__(self) -> None:
        self.watching: dict[str, tuple[float, int]] = {}
        self.history: list[tuple[float, str, str, float | None]] = []
        self.depths: list[tuple[int, int]] = []
        self.alive = 0

    def watch_command(self, name: str, deadline: float, epoch: int) -> None:
        mock_deadline = deadline - clock.boottime() + trio.current_time()
        self.watching[name] = (mock_deadline, epoch)
        self.history.append((trio.current_time(), "watch", name, mock_deadline))

    def command_done(self, name: str) -> None:
        self.watching.pop(name, None)
        self.history.append((trio.current_time(), "done", name, None))

    def loop_alive(self) -> None:
        self.alive += 1

    def queue_depth(self, depth: int, capacity: int) -> None:
        self.depths.append((depth, capacity))


@dataclass
class Node:
    runtime: NodeRuntime
    lease: FaultyLease
    log: SelfLog
    terminated: list[tuple[float, str]]


class Cluster:
    """Nodes on one SQLite lease database, under one mock clock."""

    def __init__(self, path: Path, timing: Timing = T) -> None:
        self.url = f"sqlite:///{path / 'cluster.sqlite'}"
        self.timing = timing
        self.duties = Duties()
        self.leases: list[Lease] = []
        self.db_time: DatabaseTime | None = None
        self.nodes: dict[str, Node] = {}

    def node(
        self,
        node_id: str,
        *,
        monitor: FakeMonitor | None = None,
        duty: bool = True,
        terminate: Callable[[str], None] | None = None,
        queue_capacity: int = 64,
    ) -> Node:
        lease = Lease(self.url, cluster="c1", call_timeout=self.timing.call_timeout)
        self.leases.append(lease)
        if self.db_time is None:
            self.db_time = DatabaseTime(lease.engine)
        faulty = FaultyLease(lease, self.db_time)
        log = SelfLog()
        terminated: list[tuple[float, str]] = []

        def record_termination(reason: str) -> None:
            terminated.append((trio.current_time(), reason))
            if terminate is not None:
                terminate(reason)

        runtime = NodeRuntime(
            lease,
            NodeInfo(
                node_id=node_id,
                api_url=f"http://{node_id}.test:5341",
                internal_url=f"http://{node_id}.test:5342",
            ),
            self.timing,
            monitor=monitor,
            log=log,
            calls=faulty,
            terminate=record_termination,
            queue_capacity=queue_capacity,
        )
        if duty:
            runtime.add_leader_duty("work", self.duties.duty(node_id))
        node = Node(runtime, faulty, log, terminated)
        self.nodes[node_id] = node
        return node

    def close(self) -> None:
        for lease in self.leases:
            lease.close()


@contextlib.contextmanager
def fast_directory(fallback: Path) -> Iterator[Path]:
    """Memory-backed when the machine has it: a cluster's life in mock time is thousands of
    small transactions, and their fsyncs would otherwise be much of the wall time."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm, prefix="seqfast-runtime-") as directory:
            yield Path(directory)
    else:
        yield fallback


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with fast_directory(tmp_path) as directory:
        c = Cluster(directory)
        yield c
        c.close()


def run(test: Callable[[], Awaitable[None]]) -> None:
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))


async def until(condition: Callable[[], bool], limit: float = 60.0) -> None:
    """Wait (in mock time) until `condition()`; fail after `limit` virtual seconds."""
    with trio.fail_after(limit):
        while not condition():
            await trio.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# One node
# ---------------------------------------------------------------------------------------------


def test_the_node_that_acquires_runs_its_leader_duties(cluster: Cluster) -> None:
    a = cluster.node("a")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            await until(lambda: a.runtime.role == "leader")
            await trio.sleep(1)
            assert a.runtime.epoch == 1
            assert a.runtime.leader == a.runtime.node
            assert a.runtime.leader_epoch == 1
            assert a.runtime.may_acknowledge()
            # From a worker thread too (the ingestion committer asks from one).
            assert await trio.to_thread.run_sync(a.runtime.may_acknowledge)
            assert [t.epoch for t in cluster.duties.of("a")] == [1]
            row = a.lease.lease.current()
            assert row is not None and (row.node_id, row.epoch) == ("a", 1)
            assert row.api_url == "http://a.test:5341"
            a.runtime.shutdown()

    run(main)
    started = a.log.with_template("Leader duties started for epoch {Epoch}")
    assert len(started) == 1
    props = started[0].properties
    assert props["NodeId"] == "a" and props["Epoch"] == 1
    assert props["Transition"] == "activated"
    assert isinstance(props["Monotonic"], float)
    # The duty started no earlier than the activation was logged.
    assert started[0].at <= cluster.duties.of("a")[0].start


def test_the_membership_shows_a_new_role_at_once(cluster: Cluster) -> None:
    a, b = cluster.node("a"), cluster.node("b")

    def recorded(node: Node) -> str | None:
        rows = {m.node_id: m.state for m in node.lease.lease.members()}
        return rows.get(node.runtime.node.node_id)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            await until(lambda: a.runtime.role == "leader")
            # Well within one renewal period of the change, not at the next periodic heartbeat.
            await until(lambda: recorded(a) == "leader", limit=T.renew_every / 4)
            await nursery.start(b.runtime.run)
            await until(lambda: b.runtime.role == "follower")
            await until(lambda: recorded(b) == "follower", limit=T.renew_every / 4)
            b.runtime.shutdown()
            a.runtime.shutdown()

    run(main)
    assert recorded(a) == recorded(b) == "stopped"


def test_renewals_keep_the_leader_leading(cluster: Cluster) -> None:
    a = cluster.node("a")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            await trio.sleep(30)  # 7.5 lease lengths
            assert a.runtime.role == "leader" and a.runtime.epoch == 1
            a.runtime.shutdown()

    run(main)
    (term,) = cluster.duties.of("a")
    assert term.epoch == 1
    # Renewals about every R·(1 + jitter), never a gap that would have deposed the leader.
    gaps = [b - a for a, b in zip(a.lease.renewed, a.lease.renewed[1:], strict=False)]
    assert len(a.lease.renewed) > 30 / (T.renew_every * (1 + T.renew_jitter)) - 2
    assert max(gaps) <= T.renew_every * (1 + T.renew_jitter) + 1e-9
    assert not a.log.with_template("Stepped down: {Reason}")


@pytest.mark.parametrize("fault", ["fail", "hang"])
def test_a_leader_whose_renewals_fail_steps_down_at_its_deadline(
    cluster: Cluster, fault: str
) -> None:
    monitor = FakeMonitor()
    a = cluster.node("a", monitor=monitor)
    break_at = 10.0

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            if fault == "fail":
                a.lease.fail(break_at, calls=frozenset({"renew"}))
            else:
                a.lease.hang(break_at, calls=frozenset({"renew"}))
            await until(lambda: a.runtime.role == "follower")
            assert not a.runtime.may_acknowledge()
            assert a.runtime.epoch is None and a.runtime.leader is None
            a.runtime.shutdown()

    run(main)
    last_success = max(t for t in a.lease.renewed if t < break_at)
    deadline = last_success + T.step_down_after
    (term,) = cluster.duties.of("a")
    # The duty ran until exactly the deadline and not a moment past it.
    assert term.end == deadline
    assert max(term.work) < deadline
    (stepped,) = a.log.with_template("Stepped down: {Reason}")
    assert stepped.at == deadline
    assert stepped.properties["Epoch"] == 1
    assert stepped.properties["Transition"] == "deactivated"
    (stopped,) = a.log.with_template("Leader duties stopped for epoch {Epoch}")
    assert stopped.at == deadline
    # The monitor was told the kill deadline K after the last successful send...
    lead_watches = [h for h in monitor.history if h[1] == "watch" and h[2] == "lead"]
    assert lead_watches[-1][3] == pytest.approx(last_success + T.monitor_kill_after, abs=0.05)
    # ... and released from it, and from the deactivation's, once the duties had stopped.
    assert "lead" not in monitor.watching and "deactivate" not in monitor.watching
    assert monitor.alive > 0
    assert monitor.depths and all(depth < capacity for depth, capacity in monitor.depths)


def test_a_leader_that_lost_its_lease_regains_it_with_a_higher_epoch(cluster: Cluster) -> None:
    a = cluster.node("a")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            await until(lambda: a.runtime.role == "leader")
            a.lease.hang(5.0, 12.0)  # every call, longer than the lease
            await until(lambda: a.runtime.epoch == 2 and a.runtime.role == "leader")
            await trio.sleep(5)
            a.runtime.shutdown()

    run(main)
    first, second = cluster.duties.of("a")
    assert (first.epoch, second.epoch) == (1, 2)
    assert first.end < 12.0 <= second.start
    cluster.duties.assert_never_two_leaders()
    lifecycle = [
        (e.properties["Transition"], e.properties["Epoch"])
        for e in a.log.transitions()
        if e.template != "Stepped down: {Reason}"
    ]
    assert lifecycle == [("activated", 1), ("deactivated", 1), ("activated", 2), ("deactivated", 2)]
    (stepped,) = a.log.with_template("Stepped down: {Reason}")
    assert stepped.properties["Epoch"] == 1 and stepped.at == first.end
    assert a.lease.released == [2]


def test_a_renewal_the_database_refuses_ends_leadership_at_once(cluster: Cluster) -> None:
    a = cluster.node("a")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            await until(lambda: a.runtime.role == "leader")
            await trio.sleep(3)
            # Another process (an operator, a restored backup) takes the row away.
            with a.lease.lease.engine.begin() as conn:
                conn.execute(text("UPDATE leader SET node_id = 'x', epoch = 99"))
            taken = trio.current_time()
            await until(lambda: a.runtime.role != "leader")
            lost = trio.current_time()
            assert lost - taken <= T.renew_every * (1 + T.renew_jitter)
            await until(lambda: a.runtime.role == "follower")
            a.runtime.shutdown()

    run(main)
    assert not a.log.with_template("Stepped down: {Reason}")  # the database said so
    assert len(a.log.with_template("Leader duties stopped for epoch {Epoch}")) == 1


def test_shutdown_deactivates_then_releases_the_lease(cluster: Cluster) -> None:
    a = cluster.node("a")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            await until(lambda: a.runtime.role == "leader")
            await trio.sleep(2)
            a.runtime.shutdown()
        assert a.runtime.role == "stopped"
        cluster.db_time.sync()  # type: ignore[union-attr]
        row = a.lease.lease.current()
        assert row is not None and row.epoch == 1 and row.expired
        (member,) = a.lease.lease.members()
        assert member.state == "stopped"

    run(main)
    assert a.lease.released == [1]
    (stopped,) = a.log.with_template("Leader duties stopped for epoch {Epoch}")
    (released,) = a.log.with_template("Released the lease of epoch {Epoch}")
    assert stopped.at <= released.at
    assert cluster.duties.of("a")[0].end == stopped.at


def test_a_follower_shuts_down_at_once_and_releases_nothing(cluster: Cluster) -> None:
    a, b = cluster.node("a"), cluster.node("b")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            await until(lambda: a.runtime.role == "leader")
            await nursery.start(b.runtime.run)
            await until(lambda: b.runtime.role == "follower")
            b.runtime.shutdown()
            await until(lambda: b.runtime.role == "stopped")
            a.runtime.shutdown()

    run(main)
    assert b.lease.released == []
    assert not cluster.duties.of("b")


def test_shutdown_before_run_stops_without_leading(cluster: Cluster) -> None:
    a = cluster.node("a")
    a.runtime.shutdown()
    run(a.runtime.run)
    assert a.runtime.role == "stopped" and not cluster.duties.terms


def test_shutdown_from_another_thread(cluster: Cluster) -> None:
    a = cluster.node("a")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            await until(lambda: a.runtime.role == "leader")
            await trio.to_thread.run_sync(a.runtime.shutdown)
        assert a.runtime.role == "stopped"

    run(main)
    assert a.lease.released == [1]


# ---------------------------------------------------------------------------------------------
# Two nodes
# ---------------------------------------------------------------------------------------------


def test_two_nodes_exactly_one_leads_and_the_other_takes_over_from_a_paused_leader(
    cluster: Cluster,
) -> None:
    a, b = cluster.node("a"), cluster.node("b")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            await nursery.start(b.runtime.run)
            await until(lambda: {a.runtime.role, b.runtime.role} == {"leader", "follower"})
            leader, follower = (a, b) if a.runtime.role == "leader" else (b, a)
            await until(lambda: follower.runtime.leader is not None)
            assert follower.runtime.leader == leader.runtime.node
            assert follower.runtime.leader_epoch == 1
            assert not follower.runtime.may_acknowledge()
            await trio.sleep(10)
            # The leader stops reaching the database (a paused process, a cut link).
            pause = trio.current_time()
            leader.lease.hang(pause, pause + 20)
            await until(lambda: follower.runtime.role == "leader")
            assert follower.runtime.epoch == 2
            # After the pause, the old leader follows the new one.
            await until(lambda: leader.runtime.leader == follower.runtime.node, limit=60)
            assert leader.runtime.role == "follower" and leader.runtime.leader_epoch == 2
            a.runtime.shutdown()
            b.runtime.shutdown()

    run(main)
    assert len(cluster.duties.terms) == 2
    cluster.duties.assert_never_two_leaders()
    # The self-log says the same, interval by interval, in mock time.
    intervals = _intervals(a.log) + _intervals(b.log)
    intervals.sort()
    for (_, end, _), (start, _, _) in itertools.pairwise(intervals):
        assert end < start


def test_two_nodes_started_together_never_lead_at_once_across_many_pauses(
    cluster: Cluster,
) -> None:
    a, b = cluster.node("a"), cluster.node("b")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            await nursery.start(b.runtime.run)
            # Pause each node's database link in turn, for spans around the lease timings.
            for i, span in enumerate([1.0, 2.4, 2.6, 3.0, 4.5, 9.0, 0.7, 5.5]):
                node = (a, b)[i % 2]
                now = trio.current_time()
                node.lease.hang(now, now + span)
                await trio.sleep(span + 3)
            a.runtime.shutdown()
            b.runtime.shutdown()

    run(main)
    assert len(cluster.duties.terms) >= 2
    cluster.duties.assert_never_two_leaders()
    epochs = [t.epoch for t in sorted(cluster.duties.terms, key=lambda t: t.start)]
    assert epochs == sorted(set(epochs))  # each epoch led once, in increasing order


def test_graceful_handover_is_faster_than_the_lease(cluster: Cluster) -> None:
    a, b = cluster.node("a"), cluster.node("b")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(a.runtime.run)
            await until(lambda: a.runtime.role == "leader")
            await nursery.start(b.runtime.run)
            await until(lambda: b.runtime.role == "follower")
            a.runtime.shutdown()
            await until(lambda: a.runtime.role == "stopped")
            released = trio.current_time()
            await until(lambda: b.runtime.role == "leader")
            # Without the release, b would have waited for the lease to expire (L = 4 s).
            assert trio.current_time() - released <= T.renew_every * (1 + T.renew_jitter)
            b.runtime.shutdown()

    run(main)
    cluster.duties.assert_never_two_leaders()


def _intervals(log: SelfLog) -> list[tuple[float, float, int]]:
    """(activated, deactivated, epoch) per activation, from the self-log."""
    out = []
    started: dict[int, float] = {}
    for e in log.events:
        if e.template == "Leader duties started for epoch {Epoch}":
            started[e.properties["Epoch"]] = e.at
        elif e.template == "Leader duties stopped for epoch {Epoch}":
            epoch = e.properties["Epoch"]
            out.append((started.pop(epoch), e.at, epoch))
    assert not started
    return out


# ---------------------------------------------------------------------------------------------
# Duties that misbehave
# ---------------------------------------------------------------------------------------------


def test_a_duty_that_ignores_cancellation_gets_the_node_terminated(cluster: Cluster) -> None:
    monitor = FakeMonitor()
    release_thread = threading.Event()
    a = cluster.node("a", monitor=monitor, terminate=lambda _reason: release_thread.set())

    async def stubborn(context: LeaderContext) -> None:
        # A worker thread cannot be cancelled, and this one is not abandoned: the nursery
        # cannot finish until it returns.
        await trio.to_thread.run_sync(release_thread.wait)

    a.runtime.add_leader_duty("stubborn", stubborn)

    async def drive() -> None:
        await until(lambda: a.runtime.role == "leader")
        await trio.sleep(2)
        a.runtime.shutdown()
        ordered = trio.current_time()
        deadline = monitor.watching["deactivate"][0]
        assert deadline == pytest.approx(ordered + T.deactivation_grace, abs=0.05)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drive)
            with pytest.raises(NodeTerminated) as caught:
                await a.runtime.run()
        assert "epoch 1" in caught.value.reason

    run(main)
    ((at, reason),) = a.terminated
    assert "did not finish by its deadline" in reason
    (stopping,) = [h for h in monitor.history if h[1] == "watch" and h[2] == "deactivate"]
    assert at == pytest.approx(stopping[3], abs=0.05)
    # The monitor was never told the deactivation finished: it would have killed the node too.
    assert "deactivate" in monitor.watching
    assert a.lease.released == []  # a node that could not stop must not hand the lease over
    fatal = [e for e in a.log.events if e.level == "Fatal"]
    assert fatal and "Terminating" in fatal[0].template
    assert not a.runtime.may_acknowledge()


def test_a_full_command_queue_terminates_the_node(cluster: Cluster) -> None:
    monitor = FakeMonitor()
    a = cluster.node("a", monitor=monitor, queue_capacity=1)  # the first command fills it

    with pytest.raises(NodeTerminated, match="command queue is full"):
        run(a.runtime.run)
    ((_, reason),) = a.terminated
    assert "1 of 1" in reason
    assert (1, 1) in monitor.depths  # the watchdog was told, and would have killed the node


def test_a_failing_duty_makes_the_node_step_down_and_release(cluster: Cluster) -> None:
    a, b = cluster.node("a"), cluster.node("b", duty=False)

    async def broken(context: LeaderContext) -> None:
        await trio.sleep(1)
        raise ValueError("the committer broke")

    a.runtime.add_leader_duty("committer", broken)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(b.runtime.run)
            await until(lambda: b.runtime.role == "leader")
            b.runtime.shutdown()
        with pytest.raises(LeaderDutyFailed, match="committer"):
            await a.runtime.run()
        assert a.runtime.role == "stopped"

    run(main)
    assert a.lease.released == [2]
    (failed,) = a.log.with_template("Leader duty {Duty} failed in epoch {Epoch}: {Error}")
    assert "the committer broke" in failed.properties["Error"]


# ---------------------------------------------------------------------------------------------
# Random fault schedules
# ---------------------------------------------------------------------------------------------

_windows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(["hang", "fail"]),
        st.sampled_from([ALL_CALLS, frozenset({"renew"}), frozenset({"acquire", "current"})]),
        st.floats(0, 20),  # start
        st.floats(0.1, 9),  # length
    ),
    max_size=6,
)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(windows=_windows)
def test_no_fault_schedule_makes_two_leaders_or_a_late_duty(
    tmp_path: Path, windows: list[tuple[str, str, frozenset[str], float, float]]
) -> None:
    with fast_directory(tmp_path) as directory:
        cluster = Cluster(directory)
        try:
            a, b = cluster.node("a"), cluster.node("b")
            for name, kind, calls, start, length in windows:
                faulty = cluster.nodes[name].lease
                (faulty.hang if kind == "hang" else faulty.fail)(start, start + length, calls)

            async def main() -> None:
                async with trio.open_nursery() as nursery:
                    await nursery.start(a.runtime.run)
                    await nursery.start(b.runtime.run)
                    await trio.sleep(30)  # every window is over by 29 s
                    await until(lambda: "leader" in (a.runtime.role, b.runtime.role))
                    a.runtime.shutdown()
                    b.runtime.shutdown()

            run(main)
        finally:
            cluster.close()
    cluster.duties.assert_never_two_leaders()
    epochs = [t.epoch for t in sorted(cluster.duties.terms, key=lambda t: t.start)]
    assert epochs == sorted(set(epochs))
    assert not a.terminated and not b.terminated
