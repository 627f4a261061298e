"""The metadata database: a SQLite file in the data directory, or PostgreSQL for a cluster.

`open_metadata(url)` returns a SQLAlchemy `Engine` configured for safe concurrent use:

* SQLite: WAL journal (readers never block the writer), `synchronous=FULL` (a committed
  transaction survives power loss: metadata is small and rarely written, so the fsync is cheap),
  a busy timeout, and every transaction started with `BEGIN IMMEDIATE` so that two writers
  queue on the busy timeout instead of failing when a read lock cannot be upgraded.  Several
  processes (the server and `seqfast apikey`) may use the file at once.
* PostgreSQL (`postgresql+psycopg://…`; `postgresql://` and `postgres://` mean the same):
  a connect timeout and a statement timeout, so a database that stops answering turns into an
  error rather than a hang; pre-ping so that connections dropped by the server are replaced.

Tables are SQLAlchemy Core tables on the shared `METADATA` (with a naming convention, so that
constraint names are stable across databases and future migrations can name them).  Each part
of seqfast that owns tables describes them as a `Migration` (its component name and the ordered
steps that build its schema) and calls `ensure_schema` when it opens.  The `schema_version`
table holds one row per component.  A step runs in the same transaction as a compare-and-set
of that component's version, under a lock (an advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on
SQLite), so concurrent starts apply every step exactly once and a database written by a newer
seqfast is refused rather than misread.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateSchema

from seqfast.errors import SeqfastError

# Both ends of a stuck connection give up after these; metadata statements are tiny, so any
# statement that takes longer than this is a database in trouble.
CONNECT_TIMEOUT_SECONDS: Final = 5
STATEMENT_TIMEOUT_MS: Final = 10_000
SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
# pg_advisory_xact_lock key that serialises schema changes ("seqfast" in ASCII).
_SCHEMA_LOCK_KEY: Final = 0x73_65_71_66_61_73_74

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
METADATA: Final = MetaData(naming_convention=NAMING_CONVENTION)

SCHEMA_VERSION: Final = Table(
    "schema_version",
    METADATA,
    Column("component", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
)


class MetadataError(SeqfastError):
    """The metadata database cannot be reached, used, or understood."""


@dataclass(frozen=True)
class Migration:
    """How one component's tables come to be: `steps[n]` takes the schema from version n to
    n + 1.  A step, once released, never changes; a later change is a new step."""

    component: str
    steps: tuple[Callable[[Connection], None], ...]

    @property
    def version(self) -> int:
        return len(self.steps)


def normalise_url(url: str) -> URL:
    """The SQLAlchemy URL to connect to; PostgreSQL always through psycopg 3.

    Raises MetadataError for text that is not a SQLite or PostgreSQL URL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise MetadataError("not a SQLAlchemy URL such as sqlite:///path") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed
    if backend == "sqlite":
        return parsed
    raise MetadataError(f"the metadata database must be SQLite or PostgreSQL, not {backend}")


def redact_url(url: str) -> str | None:
    """`url` with any password replaced by ***, for messages and logs; None if `url` cannot be
    parsed (and so cannot be printed safely)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return None


def open_metadata(url: str, *, schema: str | None = None, create: bool = True) -> Engine:
    """An engine for the metadata database at `url`, with the `schema_version` table in place.

    `schema` (PostgreSQL only) puts every table in that schema, created if missing.  With
    `create=False` a SQLite file that does not exist yet is an error instead of being created
    (for commands that only read).  Raises MetadataError when the database does not answer.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        if schema is not None:
            raise MetadataError("schemas are a PostgreSQL feature; SQLite has one per file")
        engine = _sqlite_engine(parsed, create=create)
    else:
        engine = _postgresql_engine(parsed)
        if schema is not None:
            # Every Core statement, DDL included, names the schema through this map.
            engine = engine.execution_options(schema_translate_map={None: schema})
    with database_errors(engine), _schema_lock(engine) as conn:
        if schema is not None:
            conn.execute(CreateSchema(schema, if_not_exists=True))
        SCHEMA_VERSION.create(conn, checkfirst=True)
    return engine


def _sqlite_engine(url: URL, *, create: bool) -> Engine:
    if url.database in (None, "", ":memory:"):
        # One shared connection: each new connection to :memory: would be a new, empty database.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        path = Path(url.database)
        if not path.exists() and not create:
            raise MetadataError(f"there is no metadata database at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Leave transaction control to the "begin" hook below instead of pysqlite's implicit,
        # deferred BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _enter_wal(cursor)
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _enter_wal(cursor: Any) -> None:
    """Switches the database to WAL, retrying while another connection holds the lock.

    Switching the journal mode of a new database takes an exclusive lock, and SQLite answers
    "database is locked" at once instead of going through the busy handler, so several
    processes or threads opening a new database at the same moment would fail without this;
    once the database is in WAL mode (it stays so), the statement needs no such lock.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _postgresql_engine(url: URL) -> Engine:
    connect_args: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "application_name": "seqfast",
    }
    if "options" not in url.query:  # the URL's own server options win
        connect_args["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


@contextlib.contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the schema lock: PostgreSQL's advisory lock, or SQLite's write
    lock (every SQLite transaction here begins IMMEDIATE)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
        yield conn


def ensure_schema(engine: Engine, migration: Migration) -> int:
    """Brings `migration.component`'s tables up to `migration.version`, one step per
    transaction, and returns that version.  Idempotent and safe to run concurrently."""
    with database_errors(engine):
        while True:
            with _schema_lock(engine) as conn:
                current = _current_version(conn, migration.component)
                if current > migration.version:
                    raise MetadataError(
                        f"the metadata database holds version {current} of the "
                        f"{migration.component} tables, newer than this seqfast understands "
                        f"({migration.version}); upgrade seqfast"
                    )
                if current == migration.version:
                    return current
                migration.steps[current](conn)
                _advance(conn, migration.component, current)


def _current_version(conn: Connection, component: str) -> int:
    found = conn.execute(
        select(SCHEMA_VERSION.c.version).where(SCHEMA_VERSION.c.component == component)
    ).scalar_one_or_none()
    if found is None:
        conn.execute(SCHEMA_VERSION.insert().values(component=component, version=0))
        return 0
    return int(found)


def _advance(conn: Connection, component: str, current: int) -> None:
    # Compare-and-set: the lock already excludes concurrent migrations; this catches anything
    # that changed the version behind its back (and then rolls the step back with it).
    moved = conn.execute(
        update(SCHEMA_VERSION)
        .where(SCHEMA_VERSION.c.component == component, SCHEMA_VERSION.c.version == current)
        .values(version=current + 1)
    ).rowcount
    if moved != 1:
        raise MetadataError(f"the {component} schema version changed during a migration")


@contextlib.contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turns SQLAlchemy's exceptions into a one-sentence MetadataError naming the database.

    The driver's own message is kept (it says what went wrong); SQLAlchemy's statement and
    parameter dump is dropped: it is noise to a user and may hold values we don't print.
    """
    try:
        yield
    except SQLAlchemyError as exc:
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        where = engine.url.render_as_string(hide_password=True)
        raise MetadataError(f"metadata database {where}: {reason}") from exc
