"""The node runtime in real time, with its lease calls in real worker threads.

- Two nodes on the real PostgreSQL (127.0.0.1:5432, database `test`, a schema and cluster of
  this test's own): one leads; when it shuts down, the other leads within a few seconds.
- The leader's link to PostgreSQL goes silent: it steps down on its own deadline, before the
  other node can take over.
- A renewal that hangs for good in its worker thread (a database that accepted the statement
  and never answers): the runtime abandons the thread and the leader steps down at its own
  deadline while the thread is still stuck.

The TEST timing profile (lease 4 s) keeps each case to a few seconds.  The waits below are upper
bounds on how long to wait for an outcome, never assertions about speed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from seqfast.cluster.dispatcher import LeaderContext
from seqfast.cluster.lease import Lease, NodeInfo
from seqfast.cluster.runtime import NodeRuntime
from seqfast.cluster.timing import TEST
from seqfast.testing.tcp_proxy import TcpProxy

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
WAIT = 20.0  # seconds: far above the TEST profile's failover bound of about 5 s


class SelfLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, level: str, template: str, **properties: Any) -> None:
        self.events.append((template, properties))

    def intervals(self) -> list[tuple[float, float, str, int]]:
        """(activated, deactivated, node, epoch) by `Monotonic`, from the transition events."""
        started: dict[int, float] = {}
        out = []
        for template, props in self.events:
            if template == "Leader duties started for epoch {Epoch}":
                started[props["Epoch"]] = props["Monotonic"]
            elif template == "Leader duties stopped for epoch {Epoch}":
                out.append(
                    (
                        started.pop(props["Epoch"]),
                        props["Monotonic"],
                        props["NodeId"],
                        props["Epoch"],
                    )
                )
        return out

    def templates(self) -> list[str]:
        return [template for template, _ in self.events]


def _node(node_id: str) -> NodeInfo:
    return NodeInfo(
        node_id=node_id,
        api_url=f"http://{node_id}.test:5341",
        internal_url=f"http://{node_id}.test:5342",
    )


async def _idle_duty(context: LeaderContext) -> None:
    await trio.sleep_forever()


async def _until(condition: Any, what: str) -> None:
    with trio.move_on_after(WAIT):
        while not condition():
            await trio.sleep(0.02)
        return
    pytest.fail(f"not within {WAIT:g} s: {what}")


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL does not answer on 127.0.0.1:5432 ({exc})", pytrace=False)
    schema = f"seqfast_runtime_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_on_postgresql_the_other_node_leads_soon_after_the_leader_shuts_down(
    postgres_schema: str,
) -> None:
    cluster = f"runtime-{uuid.uuid4().hex[:8]}"
    leases = [
        Lease(POSTGRES_URL, cluster=cluster, schema=postgres_schema, call_timeout=TEST.call_timeout)
        for _ in range(2)
    ]
    logs = [SelfLog(), SelfLog()]
    runtimes = [
        NodeRuntime(lease, _node(name), TEST, monitor=None, log=log)
        for lease, name, log in zip(leases, ("a", "b"), logs, strict=True)
    ]
    for runtime in runtimes:
        runtime.add_leader_duty("idle", _idle_duty)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for runtime in runtimes:
                await nursery.start(runtime.run)
            await _until(
                lambda: sorted(r.role for r in runtimes) == ["follower", "leader"],
                "one node leads and the other follows",
            )
            leader, follower = sorted(runtimes, key=lambda r: r.role != "leader")
            await _until(lambda: follower.leader is not None, "the follower knows the leader")
            assert follower.leader == leader.node
            first_epoch = leader.epoch
            assert first_epoch is not None
            leader.shutdown()
            await _until(lambda: follower.role == "leader", "the follower takes over")
            assert leader.role == "stopped"
            assert follower.epoch is not None and follower.epoch > first_epoch
            assert follower.may_acknowledge() and not leader.may_acknowledge()
            members = {m.node_id: m for m in await trio.to_thread.run_sync(leases[0].members)}
            assert members[leader.node.node_id].state == "stopped"
            follower.shutdown()

    try:
        trio.run(main)
    finally:
        for lease in leases:
            lease.close()
    intervals = sorted(logs[0].intervals() + logs[1].intervals())
    assert len(intervals) == 2
    (_, end_first, first_node, _), (start_second, _, second_node, _) = intervals
    assert first_node != second_node
    assert end_first < start_second  # by time.monotonic(), one clock for both
    assert any(t == "Released the lease of epoch {Epoch}" for log in logs for t in log.templates())


class RenewalHangs(Lease):
    """A lease whose renewals, after the first few, never return (until the test ends)."""

    def __init__(self, *args: Any, hang_after: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hang_after = hang_after
        self.renewals = 0
        self.unblock = threading.Event()
        self.stuck = threading.Event()

    def renew(self, node_id: str, epoch: int, lease_seconds: float) -> bool:
        self.renewals += 1
        if self.renewals > self.hang_after:
            self.stuck.set()
            self.unblock.wait()
            raise psycopg.OperationalError("the server went away")
        return super().renew(node_id, epoch, lease_seconds)


def test_a_renewal_hung_in_its_thread_does_not_keep_the_leader_leading(tmp_path: Path) -> None:
    lease = RenewalHangs(
        f"sqlite:///{tmp_path / 'cluster.sqlite'}",
        cluster="c1",
        call_timeout=TEST.call_timeout,
        hang_after=3,
    )
    log = SelfLog()
    runtime = NodeRuntime(lease, _node("a"), TEST, monitor=None, log=log)
    runtime.add_leader_duty("idle", _idle_duty)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            await _until(lambda: runtime.role == "leader", "the node leads")
            await _until(lambda: runtime.role == "follower", "the node steps down")
            # Stepped down while the renewal's thread is still stuck in the call.
            assert lease.stuck.is_set() and not lease.unblock.is_set()
            assert not runtime.may_acknowledge()
            assert "Stepped down: {Reason}" in log.templates()
            assert "Leader duties stopped for epoch {Epoch}" in log.templates()
            runtime.shutdown()

    try:
        trio.run(main)
    finally:
        lease.unblock.set()
        lease.close()
    assert runtime.role == "stopped"


def test_on_postgresql_a_leader_cut_off_from_the_database_steps_down_before_the_takeover(
    postgres_schema: str,
) -> None:
    """The leader's database link goes silent (a partition): its renewal hangs in its worker
    thread, it steps down on its own deadline, and the other node takes over only after that;
    once the link is back, the old leader follows the new one."""
    cluster = f"runtime-{uuid.uuid4().hex[:8]}"
    with TcpProxy(("127.0.0.1", 5432)) as link:
        host, port = link.address
        via_link = f"postgresql+psycopg://postgres@{host}:{port}/test"
        leases = [
            Lease(url, cluster=cluster, schema=postgres_schema, call_timeout=TEST.call_timeout)
            for url in (via_link, POSTGRES_URL)
        ]
        logs = [SelfLog(), SelfLog()]
        a, b = (
            NodeRuntime(lease, _node(name), TEST, monitor=None, log=log)
            for lease, name, log in zip(leases, ("a", "b"), logs, strict=True)
        )
        for runtime in (a, b):
            runtime.add_leader_duty("idle", _idle_duty)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(a.run)
                await _until(lambda: a.role == "leader", "a leads")
                await nursery.start(b.run)
                await _until(lambda: b.leader == a.node, "b follows a")
                link.cut("blackhole")
                await _until(lambda: b.role == "leader", "b takes over")
                assert a.role != "leader" and not a.may_acknowledge()
                link.restore()
                await _until(lambda: a.leader == b.node, "a follows b")
                a.shutdown()
                b.shutdown()

        try:
            trio.run(main)
        finally:
            for lease in leases:
                lease.close()
    intervals = sorted(logs[0].intervals() + logs[1].intervals())
    assert [node for _, _, node, _ in intervals] == ["a", "b"]
    assert intervals[0][1] < intervals[1][0]  # a had stopped before b started
    assert "Stepped down: {Reason}" in logs[0].templates()
