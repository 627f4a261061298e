"""The leader lease: which node leads a cluster, under which epoch, and until when.

**Tables** (SQLAlchemy Core on the metadata database of `seqfast.meta.db`, created and migrated
by its `ensure_schema`):

* `leader`: one row per cluster: the holder's node id, the epoch of its leadership and the
  instant the lease expires.
* `nodes`: membership: each node's advertised API URL, internal URL, last heartbeat, replicated
  log position, version and state.
* epochs: a PostgreSQL SEQUENCE `leader_epoch`; on SQLite the table `leader_epochs`, to which a
  trigger adds every epoch that enters `leader` and from which nothing is ever deleted, so that
  `max(epoch) + 1` never goes back.  Either way an epoch is never handed out twice, even after
  the `leader` row is deleted; gaps are fine.

**Time.**  Whether a lease has expired is judged by the *database's* clock only, never a
node's: `clock_timestamp()` on PostgreSQL (not `now()`, which is frozen at the start of the
transaction) and `julianday('now')` on SQLite (one machine, one clock).  A lease is live while
`expires_at > db_now` and expired from `expires_at <= db_now` on, so releasing (setting
`expires_at = db_now`) frees it at once.

**Fencing.**  Every new leadership gets a higher epoch.  Whatever the leader writes to the
database it writes through `commit_fenced` (or `fence` inside its own transaction): the work is
committed only if, in the same transaction, the leader row still names this node and epoch and
has not expired.  On PostgreSQL the check holds the row `FOR SHARE` until commit, so a takeover
(whose upsert must lock the row) waits for the commit and then re-evaluates its condition on
the row as it is then; on SQLite every transaction here begins `IMMEDIATE`, holding the single
write lock, which serialises the same way.  So commits of two epochs never interleave.

**Connections and timeouts.**  Lease calls (`acquire`, `renew`, `release`, `current`) go through
their own engine, one call at a time (so it holds a single connection), which is never busy with
other work: other database load cannot starve renewals.  Fenced commits and membership use a
second engine.  Every connection of both is bounded by the call timeout (a constructor argument,
seconds):

* PostgreSQL: `connect_timeout` (libpq counts whole seconds, at least 2), the server-side
  `statement_timeout` and `idle_in_transaction_session_timeout` (so a leader frozen inside a
  fenced commit cannot hold the row lock and block a takeover: the server ends its session),
  `tcp_user_timeout` (libpq 12 and later) and TCP keepalives, so a dead network path becomes an
  error rather than a hang;
* SQLite: the busy timeout, which bounds the only wait there is (for the write lock).

A statement cut short by these raises `LeaseTimeout`; any failure of a call means its outcome is
unknown (a renewal may or may not have been applied), and the caller must treat it as a failed
renewal.

**Threads.**  The API is synchronous; the trio runtime calls it from worker threads, and a thread
cannot be cancelled: a call abandoned by its caller runs on until the database or the timeouts
above end it (and a frozen server that keeps its TCP connections alive ends it never).  Safety
therefore never rests on cancelling a call.  It rests on the node's own deadline (it stops acting
as leader at a time counted on its own clock from when the last successful renewal was *sent*,
well before the database would let the lease expire) and on the epoch fence (a late write of a
deposed leader is rejected).  While an abandoned lease call still holds the lease connection,
later lease calls fail with `LeaseTimeout` after the call timeout instead of queueing behind it.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Final

import psycopg
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Insert,
    Integer,
    Interval,
    Sequence,
    String,
    Table,
    Text,
    and_,
    cast,
    delete,
    event,
    exists,
    extract,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from seqfast.meta.db import (
    METADATA,
    MetadataError,
    Migration,
    database_errors,
    ensure_schema,
    normalise_url,
    open_metadata,
)

MAX_NAME_CHARS: Final = 128  # cluster names and node ids
MAX_VERSION_CHARS: Final = 64
MAX_STATE_CHARS: Final = 32
DEFAULT_CALL_TIMEOUT_SECONDS: Final = 2.0

# PostgreSQL error codes that mean "cut short by a timeout": query_canceled (statement_timeout),
# lock_not_available (lock_timeout), idle_in_transaction_session_timeout.
_TIMEOUT_SQLSTATES: Final = frozenset({"57014", "55P03", "25P03"})
# SQLite primary result codes for "another connection holds the lock" (after the busy timeout).
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
# tcp_user_timeout is a libpq 12 connection parameter; older libpq rejects unknown parameters.
_LIBPQ_TCP_USER_TIMEOUT: Final = 120000

# Instants by the database's clock: timestamptz on PostgreSQL; Unix seconds on SQLite, which has
# no time type.
_DB_TIME: Final = DateTime(timezone=True).with_variant(Float(), "sqlite")

LEADER: Final = Table(
    "leader",
    METADATA,
    Column("cluster", String(MAX_NAME_CHARS), primary_key=True),
    Column("node_id", String(MAX_NAME_CHARS), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("expires_at", _DB_TIME, nullable=False),
)

NODES: Final = Table(
    "nodes",
    METADATA,
    Column("cluster", String(MAX_NAME_CHARS), primary_key=True),
    Column("node_id", String(MAX_NAME_CHARS), primary_key=True),
    Column("api_url", Text, nullable=False),
    Column("internal_url", Text, nullable=False),
    Column("heartbeat_at", _DB_TIME, nullable=False),
    Column("replicated_lsn", BigInteger, nullable=False),
    Column("version", String(MAX_VERSION_CHARS), nullable=False),
    Column("state", String(MAX_STATE_CHARS), nullable=False),
)

# SQLite only: every epoch ever used.  The primary key also refuses an epoch used before.
LEADER_EPOCHS: Final = Table(
    "leader_epochs",
    METADATA,
    Column("epoch", Integer, primary_key=True, autoincrement=False),
)

# PostgreSQL only.  Not attached to METADATA: create_all() would then create it along with any
# other component's tables.
EPOCH_SEQUENCE: Final = Sequence("leader_epoch", start=1)

_SQLITE_EPOCH_TRIGGERS: Final = (
    """
    CREATE TRIGGER leader_epoch_on_insert AFTER INSERT ON leader
    BEGIN
        INSERT INTO leader_epochs (epoch) VALUES (NEW.epoch);
    END
    """,
    """
    CREATE TRIGGER leader_epoch_on_update AFTER UPDATE OF epoch ON leader
    WHEN NEW.epoch IS NOT OLD.epoch
    BEGIN
        INSERT INTO leader_epochs (epoch) VALUES (NEW.epoch);
    END
    """,
)

# Unix seconds now, by SQLite's clock (millisecond resolution, the same for the whole statement).
_SQLITE_NOW: Final = literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float())


def _create_v1(conn: Connection) -> None:
    METADATA.create_all(conn, tables=[LEADER, NODES])
    if conn.dialect.name == "postgresql":
        EPOCH_SEQUENCE.create(conn)
    else:
        METADATA.create_all(conn, tables=[LEADER_EPOCHS])
        for trigger in _SQLITE_EPOCH_TRIGGERS:
            conn.exec_driver_sql(trigger)


MIGRATION: Final = Migration("cluster_lease", (_create_v1,))


class LeaseTimeout(MetadataError):
    """A lease call was cut short by the call timeout; whether it took effect is unknown."""


@dataclass(frozen=True)
class LeaderRow:
    """The `leader` row of a cluster, as `Lease.current` reads it."""

    node_id: str
    epoch: int
    # Seconds until the lease expires, by the database's clock; zero or less once it has.
    expires_in: float
    # The holder's advertised addresses (None if it has never sent a heartbeat).
    api_url: str | None
    internal_url: str | None

    @property
    def expired(self) -> bool:
        return self.expires_in <= 0


@dataclass(frozen=True, kw_only=True)
class NodeInfo:
    """What a node advertises about itself in its heartbeats."""

    node_id: str
    api_url: str
    internal_url: str
    replicated_lsn: int = 0
    version: str = ""
    state: str = "starting"


@dataclass(frozen=True, kw_only=True)
class NodeRow(NodeInfo):
    """A member as `Lease.members` lists it."""

    # Seconds since its last heartbeat, by the database's clock.
    heartbeat_age: float


class Lease:
    """The lease of one cluster in the metadata database at `url` (SQLite or PostgreSQL).

    Opening creates or migrates the tables.  `schema` (PostgreSQL only) puts them in that
    schema.  `call_timeout` (seconds) bounds each connection, wait and statement (see the
    module's docstring).  Safe to share between threads.  Raises MetadataError when the
    database cannot be used, and ValueError for a bad name or number of seconds (here and in
    every method).
    """

    def __init__(
        self,
        url: str,
        *,
        cluster: str = "default",
        schema: str | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT_SECONDS,
    ) -> None:
        _check_name("cluster", cluster)
        _check_seconds("call_timeout", call_timeout)
        parsed = normalise_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
            # Each engine below would get its own, separate in-memory database.
            raise MetadataError("the leader lease needs a SQLite database file or PostgreSQL")
        self.cluster: Final = cluster
        self.call_timeout: Final = call_timeout
        self._lock = threading.Lock()  # one lease call at a time on the lease connection
        # Migrations may wait for another node's, so they run before the short call timeout
        # applies (under the metadata database's own, longer timeouts).
        self._engine = open_metadata(url, schema=schema)
        try:
            ensure_schema(self._engine, MIGRATION)
            _bound_connections(self._engine, call_timeout, "seqfast")
            self._lease_engine = open_metadata(url, schema=schema)
        except BaseException:
            self._engine.dispose()
            raise
        _bound_connections(self._lease_engine, call_timeout, "seqfast-lease")
        self._postgresql = self._engine.dialect.name == "postgresql"

    @property
    def engine(self) -> Engine:
        """The engine of fenced commits and membership (not the lease connection's), for
        transactions of one's own that call `fence`."""
        return self._engine

    def close(self) -> None:
        self._lease_engine.dispose()
        self._engine.dispose()

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the lease -------------------------------------------------------------------------

    def acquire(self, node_id: str, lease_seconds: float) -> int | None:
        """Takes the lease for `node_id` for `lease_seconds` if nobody holds it or its lease has
        expired, in one statement, and returns the new epoch; None if another lease is live.

        A holder that calls this again gets None: it keeps its lease with `renew`.
        """
        _check_name("node_id", node_id)
        _check_seconds("lease_seconds", lease_seconds)
        # Insert the row, or take it over only if it has expired.  On PostgreSQL the conflict
        # path locks the row and evaluates the WHERE on its latest version, after waiting for
        # any fenced commit that holds it: two candidates can never both win.  (nextval() is
        # spent even when the WHERE fails: gaps are fine, reuse is not.)  The new expiry is
        # computed before any such wait, which can only shorten the new lease.
        statement = self._upsert(
            LEADER,
            {
                "cluster": self.cluster,
                "node_id": node_id,
                "epoch": self._next_epoch(),
                "expires_at": self._db_now_plus(lease_seconds),
            },
            where=LEADER.c.expires_at <= self._db_now(),
        )
        with self._lease_call() as conn:
            epoch = conn.execute(statement.returning(LEADER.c.epoch)).scalar_one_or_none()
        return None if epoch is None else int(epoch)

    def renew(self, node_id: str, epoch: int, lease_seconds: float) -> bool:
        """Extends the lease of `node_id` at `epoch` to `lease_seconds` from now (by the
        database's clock).  False if it is not that node's lease at that epoch, or if the lease
        has expired: an expired lease is never renewed, even if nobody has taken it over."""
        _check_name("node_id", node_id)
        _check_seconds("lease_seconds", lease_seconds)
        statement = (
            update(LEADER)
            .where(self._held_by(node_id, epoch))
            .values(expires_at=self._db_now_plus(lease_seconds))
        )
        # Compare-and-set: anything but exactly one row means the lease is lost.  (On PostgreSQL
        # the expiry check is made when the row is read; should the UPDATE then wait for a
        # fenced commit's lock on an unchanged row, the extension lands that much later.  No
        # candidate can take the lease in between, as it must lock the row too, and the node
        # counts its own deadline from when it sent the renewal.)
        with self._lease_call() as conn:
            return conn.execute(statement).rowcount == 1

    def release(self, node_id: str, epoch: int) -> bool:
        """Ends the lease of `node_id` at `epoch` now, so another node may acquire it at once.
        True if this ended a live lease; False if it was not held by that node at that epoch,
        or had already expired."""
        _check_name("node_id", node_id)
        statement = (
            update(LEADER).where(self._held_by(node_id, epoch)).values(expires_at=self._db_now())
        )
        with self._lease_call() as conn:
            return conn.execute(statement).rowcount == 1

    def current(self) -> LeaderRow | None:
        """The cluster's leader row, expired or not, with the holder's advertised addresses;
        None if there has never been a leader (or the row was deleted)."""
        holder = and_(NODES.c.cluster == LEADER.c.cluster, NODES.c.node_id == LEADER.c.node_id)
        statement = (
            select(
                LEADER.c.node_id,
                LEADER.c.epoch,
                self._seconds_from_now_until(LEADER.c.expires_at).label("expires_in"),
                NODES.c.api_url,
                NODES.c.internal_url,
            )
            .select_from(LEADER.outerjoin(NODES, holder))
            .where(LEADER.c.cluster == self.cluster)
        )
        with self._lease_call() as conn:
            row = conn.execute(statement).one_or_none()
        if row is None:
            return None
        return LeaderRow(
            node_id=row.node_id,
            epoch=int(row.epoch),
            expires_in=float(row.expires_in),
            api_url=row.api_url,
            internal_url=row.internal_url,
        )

    # -- fencing ---------------------------------------------------------------------------

    def fence(self, conn: Connection, node_id: str, epoch: int) -> bool:
        """True if `node_id` holds the live lease at `epoch`, checked inside the transaction of
        `conn`, which must be the transaction that commits the fenced work and must be open
        already.  On PostgreSQL the leader row stays locked `FOR SHARE` until that transaction
        ends, so no takeover can commit in between; on SQLite the transaction must have begun
        `IMMEDIATE` (every transaction on `Lease.engine` and on `open_metadata` engines does).
        Connections of `Lease.engine` carry the call timeout, so the lock is held for a bounded
        time.  When this returns False, roll the transaction back."""
        _check_name("node_id", node_id)
        if not conn.in_transaction():
            raise RuntimeError("fence() must run inside the transaction that commits the work")
        statement = (
            select(literal(1))
            .select_from(LEADER)
            .where(self._held_by(node_id, epoch))
            .with_for_update(read=True)  # FOR SHARE; SQLite has no row locks and renders none
        )
        with self._errors(conn.engine):
            return conn.execute(statement).first() is not None

    def commit_fenced(self, node_id: str, epoch: int, work: Callable[[Connection], None]) -> bool:
        """Runs `work` and commits it in one transaction only if `fence` holds at its start;
        returns False, without calling `work`, if it does not.

        An exception from `work` rolls everything back and propagates (database errors as
        MetadataError or LeaseTimeout).  If COMMIT itself fails, the outcome is unknown: make
        the work idempotent (a unique batch id) so that a retry cannot apply it twice.
        """
        with (
            self._errors(self._engine),
            self._engine.connect() as conn,
            conn.begin() as transaction,  # commits on leaving, rolls back on an exception
        ):
            if not self.fence(conn, node_id, epoch):
                transaction.rollback()
                return False
            work(conn)
        return True

    # -- membership ------------------------------------------------------------------------

    def heartbeat(self, node: NodeInfo) -> None:
        """Records that `node` is alive now (by the database's clock), with what it advertises."""
        _check_name("node_id", node.node_id)
        if len(node.version) > MAX_VERSION_CHARS or len(node.state) > MAX_STATE_CHARS:
            raise ValueError(
                f"a node's version takes at most {MAX_VERSION_CHARS} characters and its state "
                f"at most {MAX_STATE_CHARS}"
            )
        values = {
            "cluster": self.cluster,
            "node_id": node.node_id,
            "api_url": node.api_url,
            "internal_url": node.internal_url,
            "heartbeat_at": self._db_now(),
            "replicated_lsn": node.replicated_lsn,
            "version": node.version,
            "state": node.state,
        }
        statement = self._upsert(NODES, values)
        with self._errors(self._engine), self._engine.begin() as conn:
            conn.execute(statement)

    def members(self) -> list[NodeRow]:
        """Every node that has sent a heartbeat to this cluster, by node id."""
        statement = (
            select(
                NODES.c.node_id,
                NODES.c.api_url,
                NODES.c.internal_url,
                NODES.c.replicated_lsn,
                NODES.c.version,
                NODES.c.state,
                (-self._seconds_from_now_until(NODES.c.heartbeat_at)).label("heartbeat_age"),
            )
            .where(NODES.c.cluster == self.cluster)
            .order_by(NODES.c.node_id)
        )
        with self._errors(self._engine), self._engine.begin() as conn:
            rows = conn.execute(statement).all()
        return [
            NodeRow(
                node_id=row.node_id,
                api_url=row.api_url,
                internal_url=row.internal_url,
                replicated_lsn=int(row.replicated_lsn),
                version=row.version,
                state=row.state,
                heartbeat_age=float(row.heartbeat_age),
            )
            for row in rows
        ]

    def forget(self, node_id: str, quiet_for: float) -> str | None:
        """Removes a decommissioned node from the membership; returns None once it is gone, or
        why it was not removed.

        Only a node that is not running is removed: its last heartbeat said it stopped, or it
        has sent none for `quiet_for` seconds (by the database's clock), and it does not hold a
        live lease.  The check and the delete are one statement, so a node that comes back at
        that moment is either kept or adds itself again with its next heartbeat."""
        _check_name("node_id", node_id)
        _check_seconds("quiet_for", quiet_for)
        member = and_(NODES.c.cluster == self.cluster, NODES.c.node_id == node_id)
        leads = exists().where(
            LEADER.c.cluster == self.cluster,
            LEADER.c.node_id == node_id,
            LEADER.c.expires_at > self._db_now(),
        )
        quiet = or_(
            NODES.c.state == "stopped",
            self._seconds_from_now_until(NODES.c.heartbeat_at) < -quiet_for,
        )
        statement = delete(NODES).where(member, quiet, ~leads)
        with self._errors(self._engine), self._engine.begin() as conn:
            if conn.execute(statement).rowcount == 1:
                return None
        row = next((m for m in self.members() if m.node_id == node_id), None)
        if row is None:
            return f"no node {node_id!r} has joined the cluster {self.cluster!r}"
        leader = self.current()
        if leader is not None and leader.node_id == node_id and not leader.expired:
            return (
                f"node {node_id!r} leads the cluster {self.cluster!r} (epoch {leader.epoch}); "
                "stop it first"
            )
        return (
            f"node {node_id!r} is running (state {row.state}, last heartbeat "
            f"{row.heartbeat_age:.1f} s ago); stop it first, or wait until it has been silent "
            f"for {quiet_for:g} s"
        )

    # -- helpers ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lease_call(self) -> Iterator[Connection]:
        """A transaction on the lease connection, waiting at most the call timeout for a
        previous lease call (perhaps one its caller abandoned) to let go of it."""
        if not self._lock.acquire(timeout=self.call_timeout):
            raise LeaseTimeout(
                f"{self._where(self._lease_engine)}: the previous lease call has not returned "
                f"within the call timeout of {self.call_timeout:g} s"
            )
        try:
            with self._errors(self._lease_engine), self._lease_engine.begin() as conn:
                yield conn
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def _errors(self, engine: Engine) -> Iterator[None]:
        """Database errors as MetadataError, and those caused by a timeout as LeaseTimeout."""
        with database_errors(engine):
            try:
                yield
            except DBAPIError as exc:
                if not _timed_out(exc.orig):
                    raise
                reason = (str(exc.orig).strip().splitlines() or ["timeout"])[0]
                raise LeaseTimeout(
                    f"{self._where(engine)}: no answer within the call timeout of "
                    f"{self.call_timeout:g} s ({reason}); the call's outcome is unknown"
                ) from exc

    @staticmethod
    def _where(engine: Engine) -> str:
        return f"lease database {engine.url.render_as_string(hide_password=True)}"

    def _upsert(
        self, table: Table, values: dict[str, Any], where: ColumnElement[bool] | None = None
    ) -> Insert:
        """INSERT `values`, or on a conflict of primary keys set the other columns to them
        (only where `where` holds)."""
        key = [column.name for column in table.primary_key]
        if self._postgresql:
            pg_insert = postgresql.insert(table).values(values)
            return pg_insert.on_conflict_do_update(
                index_elements=key,
                set_={name: pg_insert.excluded[name] for name in values if name not in key},
                where=where,
            )
        lite_insert = sqlite.insert(table).values(values)
        return lite_insert.on_conflict_do_update(
            index_elements=key,
            set_={name: lite_insert.excluded[name] for name in values if name not in key},
            where=where,
        )

    def _held_by(self, node_id: str, epoch: int) -> ColumnElement[bool]:
        """The leader row of this cluster, held by `node_id` at `epoch`, and still live."""
        return and_(
            LEADER.c.cluster == self.cluster,
            LEADER.c.node_id == node_id,
            LEADER.c.epoch == epoch,
            LEADER.c.expires_at > self._db_now(),
        )

    def _next_epoch(self) -> ColumnElement[Any]:
        if self._postgresql:
            return EPOCH_SEQUENCE.next_value()
        # Serialised by the write lock every SQLite transaction here takes at BEGIN IMMEDIATE.
        return select(func.coalesce(func.max(LEADER_EPOCHS.c.epoch), 0) + 1).scalar_subquery()

    def _db_now(self) -> ColumnElement[Any]:
        if self._postgresql:
            return func.clock_timestamp()
        return _SQLITE_NOW

    def _db_now_plus(self, seconds: float) -> ColumnElement[Any]:
        if self._postgresql:
            return func.clock_timestamp() + literal(timedelta(seconds=seconds), Interval())
        return _SQLITE_NOW + literal(seconds, Float())

    def _seconds_from_now_until(self, instant: ColumnElement[Any]) -> ColumnElement[float]:
        if self._postgresql:
            return cast(extract("epoch", instant - func.clock_timestamp()), Float())
        return cast(instant - _SQLITE_NOW, Float())


def _bound_connections(engine: Engine, timeout: float, application_name: str) -> None:
    """Makes every new connection of `engine` give up after about `timeout` seconds, and drops
    the connections it has already made (under other settings)."""
    ms = max(1, round(timeout * 1000))
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "do_connect")
        def _bounded(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
            cparams["application_name"] = application_name
            # Whole seconds, and libpq (like psycopg) waits at least 2 s whatever it is told.
            cparams["connect_timeout"] = max(2, math.ceil(timeout))
            # Appended after any options of the URL's or the metadata engine's own: for a
            # repeated setting, the last -c wins.
            cparams["options"] = " ".join(
                part
                for part in (
                    cparams.get("options"),
                    f"-c statement_timeout={ms}",
                    f"-c idle_in_transaction_session_timeout={ms}",
                )
                if part
            )
            # Probes on a quiet connection (one waiting for an answer included) find a peer
            # that is gone; tcp_user_timeout bounds how long sent data may stay unacknowledged.
            cparams["keepalives"] = 1
            cparams["keepalives_idle"] = math.ceil(timeout)
            cparams["keepalives_interval"] = 1
            cparams["keepalives_count"] = 3
            if psycopg.pq.version() >= _LIBPQ_TCP_USER_TIMEOUT:
                cparams["tcp_user_timeout"] = ms

    else:

        @event.listens_for(engine, "connect")
        def _busy_timeout(dbapi_connection: Any, _record: Any) -> None:
            # Runs after the metadata engine's own "connect" hook, so this value wins.
            dbapi_connection.execute(f"PRAGMA busy_timeout = {ms}")

    engine.dispose()


def _timed_out(error: BaseException | None) -> bool:
    if getattr(error, "sqlstate", None) in _TIMEOUT_SQLSTATES:
        return True
    if isinstance(error, psycopg.errors.ConnectionTimeout):
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


def _check_name(what: str, value: str) -> None:
    if not 0 < len(value) <= MAX_NAME_CHARS:
        raise ValueError(f"a {what} takes 1 to {MAX_NAME_CHARS} characters, not {len(value)}")


def _check_seconds(what: str, seconds: float) -> None:
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"{what} must be a positive number of seconds, not {seconds!r}")
