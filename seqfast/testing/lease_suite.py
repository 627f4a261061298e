"""The conformance suite of `seqfast.cluster.lease`: the same checks against every database.

Each check is a plain function that takes a `LeaseDatabase` (a database URL and, on PostgreSQL,
the schema to work in), opens the `Lease` objects it needs through it (one per node, as separate
processes would) and raises AssertionError when the lease breaks one of its rules.  Every check
works on a cluster of its own, so checks may share one database and run in any order; call
`LeaseDatabase.close()` after each.  `CHECKS` hold on every database; `POSTGRESQL_CHECKS` need
the PostgreSQL server's own features (`pg_sleep`, ending a session left idle in a transaction).

Leases here last a few tenths of a second, so that expiry is observed by sleeping; a whole run
takes some tens of seconds.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
    update,
)

from seqfast.cluster.lease import LEADER, Lease, LeaseTimeout, NodeInfo
from seqfast.meta.db import MetadataError, normalise_url, open_metadata

SHORT_LEASE: Final = 0.3  # seconds
# How long past a lease's expiry to wait before counting on it being expired: sleeps overshoot
# and the database's clock is read a little after the node's.
EXPIRY_MARGIN: Final = 0.15
# How much later than its call timeout a timed-out call may return.
TIMEOUT_GRACE: Final = 1.5
SHORT_CALL_TIMEOUT: Final = 0.5

# What fenced commits write in these checks (the lease's own tables are never written to).
FENCED_WRITES: Final = Table(
    "lease_suite_writes",
    MetaData(),
    Column("cluster", String(128), nullable=False),
    Column("n", Integer, nullable=False),
)


@dataclass
class LeaseDatabase:
    """A database to run the checks against, and everything they opened in it."""

    url: str
    schema: str | None = None
    _opened: list[Lease | Engine] = field(default_factory=list, repr=False)

    @property
    def is_postgresql(self) -> bool:
        return normalise_url(self.url).get_backend_name() == "postgresql"

    def lease(self, cluster: str, *, call_timeout: float = 2.0) -> Lease:
        """A node's view of `cluster`'s lease, with connections of its own."""
        lease = Lease(self.url, cluster=cluster, schema=self.schema, call_timeout=call_timeout)
        self._opened.append(lease)
        return lease

    def engine(self) -> Engine:
        """A plain metadata engine (the metadata database's default timeouts), for looking at
        the tables and for holding locks, as some other process would."""
        engine = open_metadata(self.url, schema=self.schema)
        self._opened.append(engine)
        return engine

    def close(self) -> None:
        while self._opened:
            opened = self._opened.pop()
            if isinstance(opened, Lease):
                opened.close()
            else:
                opened.dispose()


# -- acquire, renew, release ---------------------------------------------------------------


def first_acquire_gets_an_epoch(db: LeaseDatabase) -> None:
    lease = db.lease(_new_cluster())
    assert lease.current() is None, "a new cluster has no leader"
    epoch = lease.acquire("node-a", 10)
    assert epoch is not None and epoch >= 1, f"the first acquire got epoch {epoch}"
    row = lease.current()
    assert row is not None and (row.node_id, row.epoch) == ("node-a", epoch), row
    assert 9 < row.expires_in <= 10.001 and not row.expired, row


def a_live_lease_cannot_be_acquired(db: LeaseDatabase) -> None:
    cluster = _new_cluster()
    a, b = db.lease(cluster), db.lease(cluster)
    epoch = a.acquire("node-a", 10)
    assert epoch is not None
    assert b.acquire("node-b", 10) is None, "a second node acquired a live lease"
    assert a.acquire("node-a", 10) is None, "the holder acquired its own live lease again"
    row = b.current()
    assert row is not None and (row.node_id, row.epoch) == ("node-a", epoch), row


def an_expired_lease_is_taken_over_with_a_higher_epoch(db: LeaseDatabase) -> None:
    cluster = _new_cluster()
    a, b = db.lease(cluster), db.lease(cluster)
    first = a.acquire("node-a", SHORT_LEASE)
    assert first is not None
    assert b.acquire("node-b", 10) is None
    _sleep_past(SHORT_LEASE)
    second = b.acquire("node-b", 10)
    assert second is not None and second > first, f"takeover got epoch {second} after {first}"
    row = a.current()
    assert row is not None and (row.node_id, row.epoch) == ("node-b", second), row
    assert not a.renew("node-a", first, 10), "the deposed holder renewed"


def the_holder_renews_and_extends(db: LeaseDatabase) -> None:
    cluster = _new_cluster()
    a, b = db.lease(cluster), db.lease(cluster)
    epoch = a.acquire("node-a", SHORT_LEASE)
    assert epoch is not None
    for _ in range(3):
        assert a.renew("node-a", epoch, 10), "the holder could not renew"
    row = a.current()
    assert row is not None and row.epoch == epoch and 9 < row.expires_in <= 10.001, row
    _sleep_past(SHORT_LEASE)  # past the first lease length: the renewal must have extended it
    assert b.acquire("node-b", 10) is None, "a renewed lease was taken over"
    row = b.current()
    assert row is not None and (row.node_id, row.epoch) == ("node-a", epoch), row


def stale_renewals_fail_and_change_nothing(db: LeaseDatabase) -> None:
    cluster = _new_cluster()
    a, b = db.lease(cluster), db.lease(cluster)
    epoch = a.acquire("node-a", 10)
    assert epoch is not None
    look = db.engine()
    before = _leader_row(look, cluster)
    assert not a.renew("node-a", epoch + 1, 60), "renewed with a wrong epoch"
    assert not a.renew("node-a", epoch - 1, 60), "renewed with an old epoch"
    assert not b.renew("node-b", epoch, 60), "another node renewed the holder's lease"
    assert not b.release("node-b", epoch), "another node released the holder's lease"
    assert not a.release("node-a", epoch - 1), "released with an old epoch"
    assert _leader_row(look, cluster) == before, "a failed renewal or release changed the row"


def an_expired_lease_is_never_renewed(db: LeaseDatabase) -> None:
    lease = db.lease(_new_cluster())
    epoch = lease.acquire("node-a", SHORT_LEASE)
    assert epoch is not None
    _sleep_past(SHORT_LEASE)
    # Nobody has taken it over, and still it stays expired: no resurrection.
    assert not lease.renew("node-a", epoch, 10), "an expired lease was renewed"
    row = lease.current()
    assert row is not None and row.epoch == epoch and row.expired, row
    assert not lease.release("node-a", epoch), "an expired lease was released"
    again = lease.acquire("node-a", 10)
    assert again is not None and again > epoch, "leading again must start a new epoch"


def release_frees_the_lease_at_once(db: LeaseDatabase) -> None:
    cluster = _new_cluster()
    a, b = db.lease(cluster), db.lease(cluster)
    first = a.acquire("node-a", 60)
    assert first is not None
    assert a.release("node-a", first), "the holder could not release"
    second = b.acquire("node-b", 60)
    assert second is not None and second > first, "a released lease was not free at once"
    assert not a.release("node-a", first), "a lease was released twice"
    assert not a.renew("node-a", first, 60), "a released lease was renewed"


def epochs_are_never_reused(db: LeaseDatabase) -> None:
    cluster = _new_cluster()
    a, b = db.lease(cluster), db.lease(cluster)
    seen = []
    for lease, node in ((a, "node-a"), (b, "node-b"), (a, "node-a")):
        epoch = lease.acquire(node, 60)
        assert epoch is not None
        seen.append(epoch)
        assert lease.release(node, epoch)
    with db.engine().begin() as conn:
        conn.execute(delete(LEADER).where(LEADER.c.cluster == cluster))
    assert a.current() is None
    after_delete = b.acquire("node-b", 60)
    assert after_delete is not None and after_delete > max(seen), (
        f"epoch {after_delete} handed out after the row holding {max(seen)} was deleted"
    )
    elsewhere = db.lease(_new_cluster()).acquire("node-z", 60)
    assert elsewhere is not None and elsewhere > after_delete, "epochs are shared by clusters"
    assert seen == sorted(set(seen)), f"epochs not strictly increasing: {seen}"


def concurrent_candidates_have_one_winner_per_epoch(db: LeaseDatabase) -> None:
    cluster = _new_cluster()
    candidates = 8
    leases = [db.lease(cluster) for _ in range(candidates)]

    # Rounds: every candidate tries at once; exactly one wins each round.
    barrier = threading.Barrier(candidates)

    def at_once(i: int) -> int | None:
        barrier.wait()
        return leases[i].acquire(f"node-{i}", SHORT_LEASE)

    winning_epochs = []
    for _ in range(3):
        results = _in_threads(at_once, candidates)
        winners = [epoch for epoch in results if epoch is not None]
        assert len(winners) == 1, f"{len(winners)} winners in one round: {results}"
        winning_epochs.append(winners[0])
        _sleep_past(SHORT_LEASE)
    assert winning_epochs == sorted(set(winning_epochs)), winning_epochs

    # Free for all: candidates keep trying with very short leases; each epoch is won once.
    wins: list[tuple[int, str]] = []
    record = threading.Lock()
    until = time.monotonic() + 1.5

    def keep_trying(i: int) -> None:
        rng = random.Random(i)
        while time.monotonic() < until:
            epoch = leases[i].acquire(f"node-{i}", 0.05)
            if epoch is not None:
                with record:
                    wins.append((epoch, f"node-{i}"))
            time.sleep(rng.uniform(0, 0.02))

    _in_threads(keep_trying, candidates)
    epochs = [epoch for epoch, _ in wins]
    assert len(set(epochs)) == len(epochs), f"an epoch was won twice: {sorted(wins)}"
    assert len(wins) >= 3, f"only {len(wins)} leaderships in the free-for-all"
    assert min(epochs) > max(winning_epochs)
    row = leases[0].current()
    assert row is not None and (row.epoch, row.node_id) == max(wins), (row, max(wins))


# -- fencing ---------------------------------------------------------------------------------


def fenced_commits_apply_only_for_the_live_holder(db: LeaseDatabase) -> None:
    cluster = _new_cluster()
    a, b = db.lease(cluster), db.lease(cluster)
    look = db.engine()
    _create_writes_table(look)
    called = []

    def write(n: int) -> Callable[[Connection], None]:
        def work(conn: Connection) -> None:
            called.append(n)
            conn.execute(FENCED_WRITES.insert().values(cluster=cluster, n=n))

        return work

    first = a.acquire("node-a", SHORT_LEASE)
    assert first is not None
    assert a.commit_fenced("node-a", first, write(1)), "the holder's commit was refused"
    assert not a.commit_fenced("node-a", first + 1, write(2)), "committed with a wrong epoch"
    assert not b.commit_fenced("node-b", first, write(3)), "another node committed"
    _sleep_past(SHORT_LEASE)
    assert not a.commit_fenced("node-a", first, write(4)), "committed on an expired lease"
    second = b.acquire("node-b", 10)
    assert second is not None
    assert not a.commit_fenced("node-a", first, write(5)), "the deposed leader committed"
    assert b.commit_fenced("node-b", second, write(6)), "the new holder's commit was refused"
    assert called == [1, 6], f"work ran although the fence did not hold: {called}"

    # A failure inside the work rolls all of it back.
    def fails(conn: Connection) -> None:
        write(7)(conn)
        raise _WorkFailed

    try:
        b.commit_fenced("node-b", second, fails)
    except _WorkFailed:
        pass
    else:
        raise AssertionError("the work's exception did not propagate")

    # The same fence inside a transaction of one's own.
    with b.engine.begin() as conn:
        assert b.fence(conn, "node-b", second)
        write(8)(conn)
    with look.connect() as conn:
        try:
            b.fence(conn, "node-b", second)
        except RuntimeError:
            pass
        else:
            raise AssertionError("a fence outside any transaction was accepted")
    assert _written(look, cluster) == [1, 6, 8]


def a_takeover_waits_for_a_fenced_commit(db: LeaseDatabase) -> None:
    """A takeover tried while the holder's fenced commit is open waits for it to finish, then
    decides on the row as it is then; of two such candidates only one wins."""
    cluster = _new_cluster()
    a, b, c = db.lease(cluster), db.lease(cluster), db.lease(cluster)
    look = db.engine()
    _create_writes_table(look)
    epoch = a.acquire("node-a", SHORT_LEASE)
    assert epoch is not None
    expires = time.monotonic() + SHORT_LEASE
    inside = threading.Event()
    marks: dict[str, float] = {}

    def slow_work(conn: Connection) -> None:
        conn.execute(FENCED_WRITES.insert().values(cluster=cluster, n=1))
        inside.set()
        # Keep the transaction open until well after the lease has expired.
        time.sleep(max(0.0, expires + 0.6 - time.monotonic()))
        marks["work done"] = time.monotonic()

    with ThreadPoolExecutor(3) as pool:
        committed = pool.submit(a.commit_fenced, "node-a", epoch, slow_work)
        assert inside.wait(5), "the fenced work did not start"
        time.sleep(max(0.0, expires + EXPIRY_MARGIN - time.monotonic()))

        def take_over(lease: Lease, node: str) -> tuple[int | None, float, float]:
            started = time.monotonic()
            return lease.acquire(node, 10), started, time.monotonic()

        tries = [pool.submit(take_over, b, "node-b"), pool.submit(take_over, c, "node-c")]
        assert committed.result(), "the holder's fenced commit was refused"
        outcomes = [attempt.result() for attempt in tries]
    winners = [(epoch_won, ended) for epoch_won, _, ended in outcomes if epoch_won is not None]
    assert len(winners) == 1, f"{len(winners)} candidates took over: {outcomes}"
    won, ended = winners[0]
    assert won > epoch
    assert all(started < marks["work done"] - 0.2 for _, started, _ in outcomes), (
        "the candidates did not try while the fenced commit was open"
    )
    assert ended >= marks["work done"], "a takeover finished while a fenced commit was open"
    assert _written(look, cluster) == [1], "the fenced commit was lost"
    assert not a.commit_fenced("node-a", epoch, lambda conn: None), "the deposed leader committed"


def a_frozen_fenced_commit_cannot_block_a_takeover(db: LeaseDatabase) -> None:
    """PostgreSQL ends the session of a leader frozen inside its fenced commit (idle in a
    transaction past the call timeout), so the row lock goes, a takeover proceeds, and the
    frozen leader's work is never committed."""
    cluster = _new_cluster()
    a = db.lease(cluster, call_timeout=SHORT_CALL_TIMEOUT)
    b = db.lease(cluster)
    look = db.engine()
    _create_writes_table(look)
    epoch = a.acquire("node-a", SHORT_LEASE)
    assert epoch is not None
    expires = time.monotonic() + SHORT_LEASE
    inside = threading.Event()
    frozen_for = SHORT_CALL_TIMEOUT * 4

    def frozen(conn: Connection) -> None:
        conn.execute(FENCED_WRITES.insert().values(cluster=cluster, n=1))
        inside.set()
        time.sleep(frozen_for)

    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(a.commit_fenced, "node-a", epoch, frozen)
        assert inside.wait(5), "the fenced work did not start"
        thawed = time.monotonic() + frozen_for
        time.sleep(max(0.0, expires + EXPIRY_MARGIN - time.monotonic()))
        taken = b.acquire("node-b", 10)
        taken_at = time.monotonic()
        try:
            outcome.result()
        except MetadataError:
            pass
        else:
            raise AssertionError("the frozen leader's commit succeeded")
    assert taken is not None and taken > epoch, "no takeover while the leader was frozen"
    assert taken_at < thawed - 0.2, "the takeover waited for the frozen leader"
    assert _written(look, cluster) == [], "the frozen leader's work was committed"


# -- timeouts --------------------------------------------------------------------------------


def the_call_timeout_bounds_a_blocked_call(db: LeaseDatabase) -> None:
    """Calls held up by another transaction's lock on the leader row (PostgreSQL) or on the
    database (SQLite) raise LeaseTimeout after about the call timeout, and leave no trace."""
    cluster = _new_cluster()
    lease = db.lease(cluster, call_timeout=SHORT_CALL_TIMEOUT)
    epoch = lease.acquire("node-a", 60)
    assert epoch is not None
    look = db.engine()
    _create_writes_table(look)

    def write(conn: Connection) -> None:
        conn.execute(FENCED_WRITES.insert().values(cluster=cluster, n=1))

    with db.engine().begin() as blocker:
        blocker.execute(
            update(LEADER).where(LEADER.c.cluster == cluster).values(expires_at=LEADER.c.expires_at)
        )
        _expect_timeout(lambda: lease.renew("node-a", epoch, 60), SHORT_CALL_TIMEOUT)
        _expect_timeout(lambda: lease.acquire("node-b", 60), SHORT_CALL_TIMEOUT)
        _expect_timeout(lambda: lease.commit_fenced("node-a", epoch, write), SHORT_CALL_TIMEOUT)
    assert lease.renew("node-a", epoch, 60), "the lease did not recover after the timeouts"
    assert _written(look, cluster) == []


def the_call_timeout_bounds_a_slow_statement(db: LeaseDatabase) -> None:
    """A statement that runs longer than the call timeout is cancelled by the server."""
    cluster = _new_cluster()
    lease = db.lease(cluster, call_timeout=SHORT_CALL_TIMEOUT)
    epoch = lease.acquire("node-a", 60)
    assert epoch is not None
    look = db.engine()
    _create_writes_table(look)

    def slow(conn: Connection) -> None:
        conn.execute(FENCED_WRITES.insert().values(cluster=cluster, n=1))
        conn.execute(select(func.pg_sleep(SHORT_CALL_TIMEOUT * 10)))

    _expect_timeout(lambda: lease.commit_fenced("node-a", epoch, slow), SHORT_CALL_TIMEOUT)
    assert _written(look, cluster) == []
    assert lease.renew("node-a", epoch, 60)


# -- membership ------------------------------------------------------------------------------


def members_are_listed_with_their_heartbeats(db: LeaseDatabase) -> None:
    cluster = _new_cluster()
    lease = db.lease(cluster)
    assert lease.members() == []
    a = NodeInfo(node_id="node-a", api_url="http://a:5341", internal_url="http://a:5342")
    b = NodeInfo(
        node_id="node-b",
        api_url="http://b:5341",
        internal_url="http://b:5342",
        replicated_lsn=5,
        version="0.1.0",
        state="follower",
    )
    lease.heartbeat(b)
    lease.heartbeat(a)
    db.lease(_new_cluster()).heartbeat(NodeInfo(node_id="node-z", api_url="", internal_url=""))
    time.sleep(0.3)
    a_now = NodeInfo(
        node_id="node-a",
        api_url="http://a:5341",
        internal_url="http://a:5342",
        replicated_lsn=42,
        version="0.1.0",
        state="leader",
    )
    lease.heartbeat(a_now)
    members = lease.members()
    assert [m.node_id for m in members] == ["node-a", "node-b"], members
    a_row, b_row = members
    for member, sent in ((a_row, a_now), (b_row, b)):
        assert (
            member.api_url,
            member.internal_url,
            member.replicated_lsn,
            member.version,
            member.state,
        ) == (sent.api_url, sent.internal_url, sent.replicated_lsn, sent.version, sent.state)
    assert -0.01 <= a_row.heartbeat_age < b_row.heartbeat_age, members
    assert 0.25 <= b_row.heartbeat_age < 10, members

    epoch = lease.acquire("node-a", 10)
    row = lease.current()
    assert row is not None and row.epoch == epoch, row
    assert (row.api_url, row.internal_url) == (a.api_url, a.internal_url), row


def only_a_node_that_is_not_running_is_forgotten(db: LeaseDatabase) -> None:
    cluster = _new_cluster()
    lease = db.lease(cluster)
    other = db.lease(_new_cluster())

    def node(node_id: str, state: str) -> NodeInfo:
        return NodeInfo(node_id=node_id, api_url="", internal_url="", state=state)

    lease.heartbeat(node("node-a", "leader"))
    lease.heartbeat(node("node-b", "follower"))
    lease.heartbeat(node("node-c", "stopped"))
    other.heartbeat(node("node-c", "follower"))
    epoch = lease.acquire("node-a", 10)
    assert epoch is not None

    leads = lease.forget("node-a", quiet_for=0.2)
    assert leads is not None and "leads" in leads, leads
    running = lease.forget("node-b", quiet_for=60)
    assert running is not None and "running" in running, running
    assert "no node 'node-x'" in (lease.forget("node-x", quiet_for=60) or "")
    assert lease.forget("node-c", quiet_for=60) is None  # it said it stopped
    assert [m.node_id for m in lease.members()] == ["node-a", "node-b"]
    assert [m.node_id for m in other.members()] == ["node-c"]  # another cluster's is kept

    time.sleep(0.3)  # node-b falls silent; node-a too, but its lease is live
    assert lease.forget("node-b", quiet_for=0.2) is None
    assert lease.forget("node-a", quiet_for=0.2) is not None
    assert lease.release("node-a", epoch)
    assert lease.forget("node-a", quiet_for=0.2) is None
    assert lease.members() == []


def bad_arguments_are_refused(db: LeaseDatabase) -> None:
    lease = db.lease(_new_cluster())
    refused: list[Callable[[], object]] = [
        lambda: lease.acquire("", 10),
        lambda: lease.acquire("x" * 129, 10),
        lambda: lease.acquire("node-a", 0),
        lambda: lease.acquire("node-a", -1),
        lambda: lease.acquire("node-a", float("nan")),
        lambda: lease.renew("node-a", 1, float("inf")),
        lambda: lease.heartbeat(NodeInfo(node_id="", api_url="", internal_url="")),
        lambda: lease.heartbeat(
            NodeInfo(node_id="node-a", api_url="", internal_url="", state="s" * 33)
        ),
        lambda: lease.forget("", 10),
        lambda: lease.forget("node-a", -1),
        lambda: db.lease(""),
        lambda: db.lease(_new_cluster(), call_timeout=0),
    ]
    for call in refused:
        try:
            call()
        except ValueError:
            continue
        raise AssertionError("a bad argument was accepted")
    assert lease.current() is None and lease.members() == []


CHECKS: Final[tuple[Callable[[LeaseDatabase], None], ...]] = (
    first_acquire_gets_an_epoch,
    a_live_lease_cannot_be_acquired,
    an_expired_lease_is_taken_over_with_a_higher_epoch,
    the_holder_renews_and_extends,
    stale_renewals_fail_and_change_nothing,
    an_expired_lease_is_never_renewed,
    release_frees_the_lease_at_once,
    epochs_are_never_reused,
    concurrent_candidates_have_one_winner_per_epoch,
    fenced_commits_apply_only_for_the_live_holder,
    a_takeover_waits_for_a_fenced_commit,
    the_call_timeout_bounds_a_blocked_call,
    members_are_listed_with_their_heartbeats,
    only_a_node_that_is_not_running_is_forgotten,
    bad_arguments_are_refused,
)

POSTGRESQL_CHECKS: Final[tuple[Callable[[LeaseDatabase], None], ...]] = (
    a_frozen_fenced_commit_cannot_block_a_takeover,
    the_call_timeout_bounds_a_slow_statement,
)


# -- helpers ---------------------------------------------------------------------------------


class _WorkFailed(Exception):
    pass


def _new_cluster() -> str:
    return f"suite-{uuid.uuid4().hex[:12]}"


def _sleep_past(lease_seconds: float) -> None:
    time.sleep(lease_seconds + EXPIRY_MARGIN)


def _in_threads(call: Callable[[int], Any], count: int) -> list[Any]:
    """`call(i)` for i in range(count), each in its own thread; their results, in order.
    An exception in any of them is raised here."""
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(call, i) for i in range(count)]
        return [future.result() for future in futures]


def _expect_timeout(call: Callable[[], object], call_timeout: float) -> None:
    started = time.monotonic()
    try:
        call()
    except LeaseTimeout as exc:
        elapsed = time.monotonic() - started
        assert "call timeout" in str(exc), str(exc)
        assert call_timeout * 0.8 <= elapsed <= call_timeout + TIMEOUT_GRACE, (
            f"timed out after {elapsed:.2f} s with a call timeout of {call_timeout} s"
        )
    else:
        raise AssertionError("a blocked call returned instead of timing out")


def _leader_row(engine: Engine, cluster: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(LEADER).where(LEADER.c.cluster == cluster)).one_or_none()
    return None if row is None else dict(row._mapping)


def _create_writes_table(engine: Engine) -> None:
    with engine.begin() as conn:
        FENCED_WRITES.create(conn, checkfirst=True)


def _written(engine: Engine, cluster: str) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(FENCED_WRITES.c.n)
                .where(FENCED_WRITES.c.cluster == cluster)
                .order_by(FENCED_WRITES.c.n)
            ).scalars()
        )
