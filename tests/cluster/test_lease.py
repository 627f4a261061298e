"""The leader lease: its conformance suite against SQLite and the real PostgreSQL, and what only a
test harness can arrange (a database that stops answering mid-call).

PostgreSQL is the server on 127.0.0.1:5432 (ci/test.sh starts it); this session works in a
schema of its own, dropped at the end.  If the server does not answer, the PostgreSQL cases fail
(they are never skipped): a lease suite that silently skips its cluster database proves nothing.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

pytest.register_assert_rewrite("seqfast.testing.lease_suite")

from sqlalchemy import Engine, select, text  # noqa: E402

from seqfast.cluster.lease import MIGRATION, Lease, LeaseTimeout  # noqa: E402
from seqfast.meta.db import SCHEMA_VERSION, MetadataError  # noqa: E402
from seqfast.testing.lease_suite import CHECKS, POSTGRESQL_CHECKS, LeaseDatabase  # noqa: E402

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POSTGRES_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def require_postgres() -> None:
    try:
        psycopg.connect(POSTGRES_DSN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL does not answer on 127.0.0.1:5432 ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    require_postgres()
    schema = f"seqfast_lease_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('lease') / 'metadata.sqlite'}"


@pytest.fixture
def postgres_database(postgres_schema: str) -> Iterator[LeaseDatabase]:
    database = LeaseDatabase(POSTGRES_URL, postgres_schema)
    yield database
    database.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[LeaseDatabase]:
    if request.param == "sqlite":
        database = LeaseDatabase(request.getfixturevalue("sqlite_url"))
    else:
        database = LeaseDatabase(POSTGRES_URL, request.getfixturevalue("postgres_schema"))
    yield database
    database.close()


def _name(check: Callable[[LeaseDatabase], None]) -> str:
    return check.__name__


@pytest.mark.parametrize("check", CHECKS, ids=_name)
def test_conformance(database: LeaseDatabase, check: Callable[[LeaseDatabase], None]) -> None:
    check(database)


@pytest.mark.parametrize("check", POSTGRESQL_CHECKS, ids=_name)
def test_postgresql_conformance(
    postgres_database: LeaseDatabase, check: Callable[[LeaseDatabase], None]
) -> None:
    check(postgres_database)


# -- schema and connection settings ----------------------------------------------------------


def test_the_schema_is_versioned_and_opening_again_changes_nothing(
    database: LeaseDatabase,
) -> None:
    database.lease("one")
    database.lease("two")
    with database.engine().connect() as conn:
        version = conn.execute(
            select(SCHEMA_VERSION.c.version).where(
                SCHEMA_VERSION.c.component == MIGRATION.component
            )
        ).scalar_one()
    assert version == MIGRATION.version == 1


def test_postgresql_tables_live_in_the_given_schema(postgres_database: LeaseDatabase) -> None:
    postgres_database.lease("one")
    with psycopg.connect(POSTGRES_DSN) as conn:
        found = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
            " UNION ALL SELECT sequence_name FROM information_schema.sequences"
            " WHERE sequence_schema = %s",
            (postgres_database.schema, postgres_database.schema),
        ).fetchall()
    assert {"leader", "nodes", "leader_epoch"} <= {name for (name,) in found}


def test_every_connection_carries_the_call_timeout(database: LeaseDatabase) -> None:
    lease = database.lease("settings", call_timeout=0.75)
    # Both engines: the lease connection's and the one of fenced commits and membership.
    engines: list[Engine] = [lease.engine, lease._lease_engine]
    for engine in engines:
        with engine.connect() as conn:
            if database.is_postgresql:
                settings = [
                    conn.execute(text(f"SHOW {name}")).scalar_one()
                    for name in ("statement_timeout", "idle_in_transaction_session_timeout")
                ]
                assert settings == ["750ms", "750ms"]
            else:
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 750


def test_an_in_memory_sqlite_database_is_refused() -> None:
    with pytest.raises(MetadataError, match="database file"):
        Lease("sqlite://")


def test_a_database_that_refuses_connections_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(MetadataError, match=f"127.0.0.1:{port}"):
        Lease(f"postgresql+psycopg://postgres@127.0.0.1:{port}/test")


# -- a database that stops answering ---------------------------------------------------------


class FreezableRelay:
    """A TCP relay to PostgreSQL that can stop relaying, as a frozen server would: connections
    stay up and every byte is acknowledged, but nothing is answered, so no TCP or server-side
    timeout can end a call that waits on it."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432)) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self.thaw()
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()  # while frozen, what arrives is held here
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()


def test_a_hung_lease_call_does_not_hold_up_the_next(postgres_schema: str) -> None:
    """A call to a frozen server hangs (nothing can cancel the thread), but the lease calls
    after it fail with LeaseTimeout within the call timeout instead of queueing behind it; once
    the server answers again, the hung call completes and the lease works."""
    call_timeout = 0.5
    relay = FreezableRelay()
    lease = Lease(
        f"postgresql+psycopg://postgres@127.0.0.1:{relay.port}/test",
        cluster=f"hung-{uuid.uuid4().hex[:8]}",
        schema=postgres_schema,
        call_timeout=call_timeout,
    )
    try:
        epoch = lease.acquire("node-a", 60)
        assert epoch is not None
        relay.freeze()
        with ThreadPoolExecutor(1) as pool:
            hung = pool.submit(lease.renew, "node-a", epoch, 60)
            time.sleep(call_timeout * 4)
            assert not hung.done(), "a call to a frozen server returned"
            started = time.monotonic()
            with pytest.raises(LeaseTimeout, match="previous lease call"):
                lease.current()
            assert time.monotonic() - started < call_timeout + 1.0
            relay.thaw()
            assert hung.result(timeout=10) is True
        row = lease.current()
        assert row is not None and row.epoch == epoch
    finally:
        lease.close()
        relay.close()
