"""Faults against real clusters: `seqfast serve` processes on loopback sharing the real
PostgreSQL (127.0.0.1:5432, database `test`), each reaching it through a `TcpProxy` of its own,
with the test timing profile (lease L = 4 s, renewals every R = 0.5 s, step-down D = 2.5 s,
monitor kill K = 3 s).

Each test injects one fault into the leader and checks what a user relies on: another node
leads and accepts ingestion; nothing is acknowledged under a deposed leader's epoch; a leader
that loses its database or hangs stops (or is killed) before its lease could pass to another
node; and, always, no two nodes ever act as leader at the same instant (by the leadership
intervals every node logs, see `seqfast.testing.cluster_harness`).  Waits are bounded by the
failover bound of the timing rules (L + R·(1 + jitter) + an activation allowance); they bound
how long a broken cluster takes to fail a test, they are not performance figures (those are in
`bench/failover.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, text

import seqfast
from seqfast.cluster import test_hooks
from seqfast.cluster.lease import Lease
from seqfast.testing.cluster_harness import (
    POSTGRES_DSN,
    POSTGRES_URL,
    Cluster,
    HttpResult,
    Node,
)

pytestmark = pytest.mark.slow


def require_postgres() -> None:
    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL does not answer on 127.0.0.1:5432 ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`",
            pytrace=False,
        )


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    require_postgres()
    made: list[Cluster] = []

    def make(size: int, **kwargs: object) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(made)}", size, **kwargs)  # type: ignore[arg-type]
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


def leading_epoch(node: Node) -> int:
    transition = node.leading()
    assert transition is not None, f"{node.node_id} does not lead"
    return transition.epoch


def ingest_everywhere(cluster: Cluster, timeout: float) -> None:
    """A batch answered 201 through every live node (followers forward to the leader)."""
    for node in cluster.nodes:
        if node.alive:
            cluster.wait_for_ingest(timeout, via=[node], tag=f"via-{node.node_id}")


def healthy_under(node: Node, leader: Node) -> bool:
    """Whether `node` answers /health/cluster with a healthy cluster led by `leader`."""
    try:
        answer = node.cluster_health()
    except OSError:
        return False
    if answer.status != 200:
        return False
    body = answer.json()
    return bool(body.get("Healthy")) and (body.get("Leader") or {}).get("NodeId") == leader.node_id


def fence_admits(cluster: Cluster, node_id: str, epoch: int) -> bool:
    """Whether a fenced commit for `node_id` at `epoch` would be committed now (the check the
    leader's commits make in their own transaction), asked straight of PostgreSQL."""
    with Lease(POSTGRES_URL, cluster=cluster.name, call_timeout=5) as lease:

        def work(conn: Connection) -> None:
            conn.execute(text("SELECT 1"))

        return lease.commit_fenced(node_id, epoch, work)


def no_201_under_old_epoch(answer: HttpResult | BaseException, node: Node) -> None:
    """What a deposed leader may answer: 503, or the new leader's answer forwarded, or nothing
    at all if its monitor killed it; never a 201 of its own."""
    if isinstance(answer, BaseException):
        # The connection ended without an answer: only a node that was killed may do that.
        node.wait_exit(5)
        assert node.life.terminated(), (
            f"the request to the deposed leader failed ({answer!r}) although neither it nor "
            f"its monitor killed it:\n{node.tail()}"
        )
        return
    assert answer.status != 201 or answer.proxied, (
        f"the deposed leader acknowledged a batch itself: {answer.status} {answer.headers} "
        f"{answer.body[:200]!r}"
    )
    assert answer.status in (201, 503), f"unexpected answer {answer.status} {answer.body[:200]!r}"
    if answer.status == 503:
        assert "retry-after" in answer.headers


# -- (1) SIGKILL -------------------------------------------------------------------------------


def test_sigkill_of_the_leader_another_node_leads_and_ingests(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(3).start()
    leader = cluster.wait_for_leader()
    ingest_everywhere(cluster, cluster.failover_bound())

    killed_at = leader.kill()
    bound = cluster.failover_bound()
    successor = cluster.wait_for_leader(bound, other_than=leader)
    activated = successor.leading()
    assert activated is not None and activated.monotonic > killed_at
    assert activated.epoch > leader.life.transitions[-1].epoch
    # Followers learn of the new leader at their next look at the lease: one renewal period more.
    t = cluster.timing
    ingest_everywhere(cluster, bound + t.renew_every * (1 + t.renew_jitter))
    cluster.assert_no_overlap()


# -- (2) SIGSTOP past the lease, then SIGCONT ---------------------------------------------------


def test_a_leader_paused_past_its_lease_acknowledges_nothing_under_its_old_epoch(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(3).start()
    old = cluster.wait_for_leader()
    old_epoch = leading_epoch(old)
    assert fence_admits(cluster, old.node_id, old_epoch)

    # The node and its monitor are paused together, as a whole machine would be.
    old.freeze()
    answers: list[HttpResult | BaseException] = []

    def send() -> None:
        try:
            answers.append(old.ingest(2, tag="to-the-paused-leader", timeout=60))
        except OSError as exc:
            answers.append(exc)

    sender = threading.Thread(target=send)
    sender.start()  # the request waits in the paused node's socket

    successor = cluster.wait_for_leader(cluster.failover_bound(), other_than=old)
    new_epoch = leading_epoch(successor)
    assert new_epoch > old_epoch
    cluster.wait_for_ingest(cluster.failover_bound(), via=[successor])
    # The old epoch is fenced out of the database while its holder still believes it leads.
    assert not fence_admits(cluster, old.node_id, old_epoch)
    assert fence_admits(cluster, successor.node_id, new_epoch)

    old.thaw()
    sender.join(90)
    assert not sender.is_alive(), "the paused leader never answered after it was resumed"
    no_201_under_old_epoch(answers[0], old)

    # After resuming it stops leading old_epoch (or its monitor kills it), and never leads again
    # under it; the fence still refuses that epoch.
    cluster.wait_for(
        "the resumed leader stops leading its old epoch",
        lambda: not old.alive or old.deactivated(old_epoch) is not None,
        cluster.failover_bound(),
    )
    assert not fence_admits(cluster, old.node_id, old_epoch)
    if old.alive:
        no_201_under_old_epoch(old.ingest(1, tag="after-resume"), old)
    cluster.assert_no_overlap()

    # Nothing reached the deposed leader's own log after its pause: a batch it was sent then
    # was refused before the log, or forwarded to its successor, or lost with the process.
    if old.alive:
        old.term()
    old.wait_exit()
    with seqfast.open(old.data) as store:
        kept = [
            e["Id"] for e in store.events() if str(e.get("Id", "")).startswith(("to-", "after-"))
        ]
    assert kept == [], f"the deposed leader stored {kept}"


def test_a_leader_stopped_alone_is_killed_by_its_monitor_before_its_lease_lapses(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(3).start()
    old = cluster.wait_for_leader()
    epoch = leading_epoch(old)
    old.stop()  # the node only: its monitor process keeps watching
    old.wait_exit(cluster.failover_bound())
    row = cluster.lease_row()
    assert row is not None
    holder, row_epoch, expires_at = row
    assert (holder, row_epoch) == (old.node_id, epoch), "the lease moved before the kill was seen"
    assert old.life.killed_by_monitor(), old.tail()
    assert old.life.exited_at is not None and old.life.exited_at < expires_at
    cluster.wait_for_leader(cluster.failover_bound(), other_than=old)
    cluster.assert_no_overlap()


# -- (3) the leader loses its database ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["reset", "blackhole"])
def test_a_leader_cut_from_its_database_steps_down_before_its_lease_could_lapse(
    make_cluster: Callable[..., Cluster], mode: str
) -> None:
    cluster = make_cluster(3).start()
    leader = cluster.wait_for_leader()
    epoch = leading_epoch(leader)
    assert leader.proxy is not None
    leader.proxy.cut(mode)  # type: ignore[arg-type]
    # No renewal can reach the database from now on, so this expiry is final: the database may
    # give the lease to another node from then on.  (expires_at − L is when the last successful
    # renewal ran, a little after it was sent.)
    row = cluster.lease_row()
    assert row is not None
    holder, row_epoch, expires_at = row
    assert (holder, row_epoch) == (leader.node_id, epoch)

    cluster.wait_for(
        "the cut-off leader steps down",
        lambda: leader.deactivated(epoch),
        cluster.timing.lease + cluster.failover_bound(),
    )
    stepped_down = leader.deactivated(epoch)
    assert stepped_down is not None and stepped_down < expires_at, (
        f"the leader stopped leading {stepped_down - expires_at if stepped_down else 0:.3f} s "
        "after its lease could have passed to another node"
    )
    assert leader.alive, f"the leader should step down, not die:\n{leader.tail()}"
    assert any(
        e.get("@mt", "").startswith("Stepped down") and e.get("Epoch") == epoch
        for e in leader.life.events()
    ), "a step-down at the deadline is logged as such"
    # Stepped down and still cut off: it acknowledges nothing itself any more.
    no_201_under_old_epoch(leader.ingest(1, tag="to-the-cut-off-leader"), leader)

    successor = cluster.wait_for_leader(cluster.failover_bound(), other_than=leader)
    activated = successor.leading()
    assert activated is not None and activated.monotonic > expires_at
    leader.proxy.restore()
    t = cluster.timing
    # Healthy again: every node, the old leader included, takes ingestion and reports a
    # healthy cluster under the successor.
    bound = cluster.failover_bound() + t.renew_every * (1 + t.renew_jitter)
    ingest_everywhere(cluster, bound)
    cluster.wait_for(
        "every node reports a healthy cluster",
        lambda: all(healthy_under(node, successor) for node in cluster.nodes),
        bound,
    )
    assert leader.alive
    cluster.assert_no_overlap()


# -- (4) a leader duty that never yields --------------------------------------------------------


@pytest.mark.parametrize("how", ["gil", "block"])
def test_a_leader_duty_that_never_yields_gets_the_process_killed_before_the_lease_lapses(
    make_cluster: Callable[..., Cluster], how: str
) -> None:
    # n1 hangs 2 s into each leadership; n2 and n3 are healthy.  n1 starts alone so that it
    # leads first.
    cluster = make_cluster(3, node_env={"n1": {test_hooks.HANG_LEADER_DUTY: f"2.0:{how}"}})
    hung, *healthy = cluster.nodes
    hung.start()
    cluster.wait_for_leader()
    epoch = leading_epoch(hung)
    for node in healthy:
        node.start()

    hung.wait_exit(cluster.failover_bound())
    row = cluster.lease_row()
    assert row is not None
    holder, row_epoch, expires_at = row
    assert (holder, row_epoch) == (hung.node_id, epoch), "the lease moved before the kill was seen"
    assert hung.life.killed_by_monitor(), hung.tail()
    assert any("hangs" in e.get("@mt", "") for e in hung.life.events()), "the hook did not run"
    assert hung.life.exited_at is not None and hung.life.exited_at < expires_at, (
        f"the hung leader died {hung.life.exited_at - expires_at:.3f} s after its lease lapsed"
    )

    successor = cluster.wait_for_leader(cluster.failover_bound(), other_than=hung)
    assert successor in healthy
    cluster.wait_for_ingest(cluster.failover_bound(), via=healthy)
    cluster.assert_no_overlap()


def test_the_hang_hook_is_off_unless_asked_for_and_checks_its_value() -> None:
    added: list[str] = []

    class Registry:
        def add_leader_duty(self, name: str, duty: object) -> None:
            added.append(name)

    def log(*_: object, **__: object) -> None:
        return None

    test_hooks.install(Registry(), log, {})
    test_hooks.install(Registry(), log, {test_hooks.HANG_LEADER_DUTY: " "})
    assert added == []
    for bad in ("soon", "-1", "nan", "1:spin"):
        with pytest.raises(ValueError, match=test_hooks.HANG_LEADER_DUTY):
            test_hooks.install(Registry(), log, {test_hooks.HANG_LEADER_DUTY: bad})
    test_hooks.install(Registry(), log, {test_hooks.HANG_LEADER_DUTY: "2.5:block"})
    assert added == ["test-hang"]


# -- (5) SIGTERM ---------------------------------------------------------------------------------


def test_sigterm_of_the_leader_releases_the_lease_and_another_leads_at_once(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster(3).start()
    leader = cluster.wait_for_leader()
    epoch = leading_epoch(leader)
    termed_at = leader.term()
    t = cluster.timing
    successor = cluster.wait_for_leader(cluster.failover_bound(), other_than=leader)
    activated = successor.leading()
    assert activated is not None
    # Released, not left to expire: the successor did not wait out the lease.
    assert activated.monotonic - termed_at < t.lease
    assert leader.wait_exit() == 0, leader.tail()
    assert any(
        e.get("@mt", "").startswith("Released the lease") and e.get("Epoch") == epoch
        for e in leader.life.events()
    ), leader.tail()
    cluster.wait_for_ingest(cluster.failover_bound(), via=[successor])
    cluster.assert_no_overlap()
