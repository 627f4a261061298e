"""API keys and the metadata database: one conformance suite, run against SQLite and PostgreSQL.

PostgreSQL is the real server on 127.0.0.1:5432 (ci/test.sh starts it).  Each test gets its own
schema, dropped afterwards.  If the server does not answer, the PostgreSQL cases fail (they are
never skipped): a suite that silently skips its cluster database proves nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, Table, event, select, update

from seqfast.meta.apikeys import (
    API_KEY_METRICS,
    API_KEYS,
    MIGRATION,
    ApiKey,
    ApiKeys,
    InvalidApiKey,
)
from seqfast.meta.db import (
    SCHEMA_VERSION,
    MetadataError,
    Migration,
    ensure_schema,
    normalise_url,
    open_metadata,
)

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]{32}")


@dataclass
class Database:
    """One empty metadata database; `open()` gives a new engine, as another process would."""

    url: str
    schema: str | None
    engines: list[Engine] = field(default_factory=list)

    def open(self) -> Engine:
        engine = open_metadata(self.url, schema=self.schema)
        self.engines.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()


def require_postgres() -> None:
    try:
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL does not answer on 127.0.0.1:5432 ({exc}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`",
            pytrace=False,
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'data' / 'metadata.sqlite'}", None)
        yield db
        db.close()
        return
    require_postgres()
    db = Database(POSTGRES_URL, f"seqfast_test_{uuid.uuid4().hex[:12]}")
    try:
        yield db
    finally:
        db.close()
        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True
        ) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE')


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def count_statements(engine: Engine) -> Callable[[], int]:
    """A counter of the SQL statements `engine` sends from now on (but SQLite's BEGINs)."""
    sent = [0]

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith("BEGIN"):
            sent[0] += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    return lambda: sent[0]


def stored_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(select(API_KEYS))]


# -- create, list, get, remove -----------------------------------------------------------------


def test_create_list_get_remove(database: Database) -> None:
    keys = ApiKeys(database.open())
    assert keys.list() == []
    first, _ = keys.create("Orders", ["ingest"])
    second, _ = keys.create("Dashboards", ["read", "write"], "wrn", {"Env": "prod", "N": 3})
    assert re.fullmatch(r"apikey-[0-9a-f]{10}", first.id)
    assert first.id != second.id
    assert keys.list() == [first, second]
    assert keys.get(second.id) == second
    assert keys.get("apikey-0000000000") is None

    assert second.title == "Dashboards"
    assert second.permissions == ("read", "write")
    assert second.minimum_level == "Warning"
    assert second.applied_properties == (("Env", "prod"), ("N", 3))
    assert second.created.tzinfo is not None

    # Another engine (another process) reads the same keys.
    assert ApiKeys(database.open()).list() == [first, second]

    assert keys.remove(first.id) is True
    assert keys.remove(first.id) is False
    assert keys.list() == [second]


def test_permissions_are_normalised(database: Database) -> None:
    engine = database.open()
    keys = ApiKeys(engine)
    key, _ = keys.create("All", ["System", " ingest ", "READ", "ingest", "Project", "write"])
    assert key.permissions == ("ingest", "read", "write", "project", "system")
    assert key.allows("Ingest") and key.allows("system")
    assert stored_rows(engine)[0]["permissions"] == "ingest,read,write,project,system"
    assert keys.create("Text", "read, Ingest")[0].permissions == ("ingest", "read")
    assert keys.create("Default")[0].permissions == ("ingest",)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"permissions": ["ingest", "admin"]}, "unknown permission 'admin'; the permissions are"),
        ({"permissions": []}, "an API key needs at least one permission"),
        ({"minimum_level": "loud"}, "unknown level 'loud'; the levels are Verbose, Debug"),
        ({"title": "  "}, "an API key needs a title"),
        ({"title": "a\nb"}, "must not contain control characters"),
        ({"title": "x" * 201}, "at most 200 characters"),
        ({"properties": {"@t": 1}}, "applied property name '@t' must not start with @"),
        ({"properties": {"": 1}}, "an applied property needs a name"),
        ({"properties": {"S": {1, 2}}}, "applied property 'S' must be a JSON value"),
        ({"properties": {"N": float("nan")}}, "applied property 'N' must be a JSON value"),
    ],
)
def test_invalid_keys_are_refused_and_nothing_is_stored(
    database: Database, arguments: dict[str, Any], message: str
) -> None:
    keys = ApiKeys(database.open())
    with pytest.raises(InvalidApiKey, match=re.escape(message)):
        keys.create(**{"title": "T", **arguments})
    assert keys.list() == []


def test_minimum_level_is_stored_as_the_seq_name(database: Database) -> None:
    keys = ApiKeys(database.open())
    assert keys.create("A", minimum_level="ERR")[0].minimum_level == "Error"
    assert keys.create("B", minimum_level="debug")[0].minimum_level == "Debug"
    assert keys.create("C", minimum_level=None)[0].minimum_level is None


# -- tokens ------------------------------------------------------------------------------------


def test_token_is_returned_once_and_only_its_hash_is_stored(database: Database) -> None:
    engine = database.open()
    keys = ApiKeys(engine)
    key, token = keys.create("Orders", properties={"App": "orders"})
    assert TOKEN_CHARS.fullmatch(token)
    assert key.token_prefix == token[:6]

    (row,) = stored_rows(engine)
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["token_prefix"] == token[:6]
    for column, value in row.items():
        if column != "token_prefix":
            assert token[:6] not in json.dumps(value, default=str), column

    # Nothing readable afterwards carries the token.
    for shown in (repr(keys.list()), repr(keys.get(key.id)), json.dumps(keys.to_json(key))):
        assert token not in shown
    assert "Token" not in keys.to_json(key)


def test_tokens_are_random(database: Database) -> None:
    keys = ApiKeys(database.open())
    tokens = {keys.create(f"k{i}")[1] for i in range(20)}
    assert len(tokens) == 20


def test_authenticate(database: Database) -> None:
    keys = ApiKeys(database.open())
    key, token = keys.create("Orders")
    other, other_token = keys.create("Other")
    assert keys.authenticate(token) == key
    assert keys.authenticate(f"  {token} ") == key  # header values may carry spaces
    assert keys.authenticate(other_token) == other
    for not_a_key in (
        None,
        "",
        "null",
        "   ",
        token[:-1],
        token + "x",
        token.upper(),
        "x" * 10_000,
        "tökén",
        "\udc80",  # a lone surrogate: not even encodable as UTF-8
    ):
        assert keys.authenticate(not_a_key) is None, not_a_key


def test_authenticate_compares_in_constant_time(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ApiKeys(database.open())
    _, token = keys.create("Orders")
    compared: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert keys.authenticate(token) is not None
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert compared == [(digest, digest)]


def test_authenticate_does_not_query_per_request(database: Database) -> None:
    engine = database.open()
    keys = ApiKeys(engine, clock=FakeClock())
    _, token = keys.create("Orders")
    keys.authenticate(token)
    sent = count_statements(engine)
    for _ in range(200):
        assert keys.authenticate(token) is not None
    assert sent() == 0


def test_keys_are_loaded_before_the_first_request(database: Database) -> None:
    admin = ApiKeys(database.open())
    key, token = admin.create("Existing")
    engine = database.open()
    server = ApiKeys(engine, clock=FakeClock())
    sent = count_statements(engine)
    assert server.authenticate(token) == key
    assert sent() == 0


def test_unknown_tokens_cost_at_most_one_query_per_interval(database: Database) -> None:
    engine = database.open()
    clock = FakeClock()
    keys = ApiKeys(engine, miss_refresh_seconds=1.0, max_age_seconds=60.0, clock=clock)
    keys.authenticate("warm-up")
    sent = count_statements(engine)
    for i in range(100):
        assert keys.authenticate(f"guess-{i}") is None
    assert sent() == 0  # the warm-up's miss refresh was just now
    clock.now += 1.0
    for i in range(100):
        keys.authenticate(f"guess-{i}")
    assert sent() == 1


def test_cache_follows_this_processes_creates_and_removes(database: Database) -> None:
    engine = database.open()
    keys = ApiKeys(engine, max_age_seconds=3600, miss_refresh_seconds=3600, clock=FakeClock())
    keys.authenticate("load the snapshot now")
    sent = count_statements(engine)
    key, token = keys.create("New")
    assert keys.authenticate(token) == key
    assert keys.remove(key.id)
    assert keys.authenticate(token) is None
    # Only the insert and the deletes: no reloads needed.
    assert sent() == 3


def test_cache_sees_other_processes_within_the_intervals(database: Database) -> None:
    clock = FakeClock()
    server = ApiKeys(database.open(), max_age_seconds=5, miss_refresh_seconds=1, clock=clock)
    admin = ApiKeys(database.open())  # e.g. `seqfast apikey` while the server runs
    server.authenticate("load the snapshot now")

    key, token = admin.create("From the CLI")
    assert server.authenticate(token) is None  # a miss refresh just happened
    clock.now += 1
    assert server.authenticate(token) == key  # an unknown token triggers a reload

    assert admin.remove(key.id)
    clock.now += 4.9
    assert server.authenticate(token) == key  # still within max_age
    clock.now += 0.1
    assert server.authenticate(token) is None


def test_explicit_refresh(database: Database) -> None:
    clock = FakeClock()
    server = ApiKeys(database.open(), max_age_seconds=3600, miss_refresh_seconds=3600, clock=clock)
    admin = ApiKeys(database.open())
    server.authenticate("load the snapshot now")
    key, token = admin.create("Late")
    assert server.authenticate(token) is None
    server.refresh()
    assert server.authenticate(token) == key


def test_a_failing_reload_keeps_the_last_snapshot(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    keys = ApiKeys(database.open(), max_age_seconds=5, clock=clock)
    key, token = keys.create("Orders")
    assert keys.authenticate(token) == key

    def broken() -> Any:
        raise MetadataError("metadata database x: connection refused")

    monkeypatch.setattr(keys, "_load_keys", broken)
    clock.now += 10
    assert keys.authenticate(token) == key
    with pytest.raises(MetadataError):
        keys.refresh()


# -- metrics -----------------------------------------------------------------------------------


def test_counters_in_memory_and_in_json(database: Database) -> None:
    keys = ApiKeys(database.open())
    key, _ = keys.create("Orders", ["ingest", "read"], "Warning", {"App": "orders"})
    keys.record(key.id, events=10, bytes=1000, rejected=False)
    keys.record(key.id, events=5, bytes=500, rejected=False)
    keys.record(key.id, events=3, bytes=300, rejected=True)
    keys.record(None, events=1, bytes=10, rejected=False)
    assert keys.metrics(key.id) == {"Events": 15, "Bytes": 1500, "Rejections": 1}
    assert keys.metrics(None) == {"Events": 1, "Bytes": 10, "Rejections": 0}
    assert keys.metrics("apikey-unknown") == {"Events": 0, "Bytes": 0, "Rejections": 0}
    assert keys.to_json(key) == {
        "Id": key.id,
        "Title": "Orders",
        "TokenPrefix": key.token_prefix,
        "AssignedPermissions": ["Ingest", "Read"],
        "InputSettings": {
            "AppliedProperties": [{"Name": "App", "Value": "orders"}],
            "Filter": None,
            "MinimumLevel": "Warning",
            "UseServerTimestamps": False,
        },
        "IsDefault": False,
        "OwnerId": None,
        "Metrics": {"Events": 15, "Bytes": 1500, "Rejections": 1},
    }


def test_flush_persists_only_what_is_new(database: Database) -> None:
    engine = database.open()
    keys = ApiKeys(engine)
    key, _ = keys.create("Orders")
    keys.record(key.id, 10, 1000, False)
    keys.record(None, 0, 0, True)
    assert keys.flush_metrics() == 2
    assert keys.flush_metrics() == 0  # nothing new
    keys.record(key.id, 1, 1, False)
    assert keys.flush_metrics() == 1

    reopened = ApiKeys(database.open())
    assert reopened.metrics(key.id) == {"Events": 11, "Bytes": 1001, "Rejections": 0}
    assert reopened.metrics(None) == {"Events": 0, "Bytes": 0, "Rejections": 1}


def test_servers_sharing_a_database_add_up(database: Database) -> None:
    one = ApiKeys(database.open())
    key, _ = one.create("Orders")
    two = ApiKeys(database.open())
    one.record(key.id, 3, 30, False)
    two.record(key.id, 4, 40, True)
    two.record(key.id, 4, 40, False)
    one.flush_metrics()
    two.flush_metrics()
    assert ApiKeys(database.open()).metrics(key.id) == {"Events": 7, "Bytes": 70, "Rejections": 1}


def test_removing_a_key_removes_its_metrics(database: Database) -> None:
    engine = database.open()
    keys = ApiKeys(engine)
    key, _ = keys.create("Orders")
    keys.record(key.id, 1, 1, False)
    keys.flush_metrics()
    keys.record(key.id, 1, 1, False)
    keys.remove(key.id)
    keys.record(key.id, 1, 1, False)  # a request that was in flight
    assert keys.flush_metrics() == 0
    with engine.connect() as conn:
        assert conn.execute(select(API_KEY_METRICS)).all() == []


def test_a_failed_flush_keeps_the_counts(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ApiKeys(database.open())
    key, _ = keys.create("Orders")
    keys.record(key.id, 2, 20, False)

    def broken(_: Any) -> int:
        raise MetadataError("metadata database x: connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(keys, "_write_metrics", broken)
        with pytest.raises(MetadataError):
            keys.flush_metrics()
    keys.record(key.id, 1, 10, False)
    assert keys.flush_metrics() == 1
    assert ApiKeys(database.open()).metrics(key.id)["Events"] == 3


def test_counting_is_thread_safe(database: Database) -> None:
    keys = ApiKeys(database.open())
    key, _ = keys.create("Orders")

    def work() -> None:
        for _ in range(5000):
            keys.record(key.id, 2, 100, False)
            keys.record(None, 0, 0, True)

    threads = [threading.Thread(target=work) for _ in range(8)]
    flusher_done = threading.Event()

    def flusher() -> None:
        while not flusher_done.is_set():
            keys.flush_metrics()

    flushing = threading.Thread(target=flusher)
    flushing.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flusher_done.set()
    flushing.join()
    keys.flush_metrics()
    expected = {"Events": 80_000, "Bytes": 4_000_000, "Rejections": 0}
    assert keys.metrics(key.id) == expected
    assert ApiKeys(database.open()).metrics(key.id) == expected
    assert ApiKeys(database.open()).metrics(None)["Rejections"] == 40_000


# -- concurrency and schema --------------------------------------------------------------------


def run_threads(count: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            start.wait()
            target(i)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_concurrent_creates(database: Database) -> None:
    shared = ApiKeys(database.open())
    created: list[tuple[ApiKey, str]] = []
    lock = threading.Lock()

    def create(i: int) -> None:
        # Half the threads share one ApiKeys; the others each act as a separate process.
        keys = shared if i % 2 else ApiKeys(database.open())
        for j in range(5):
            made = keys.create(f"key {i}.{j}")
            with lock:
                created.append(made)

    run_threads(8, create)
    assert len(created) == 40
    listed = ApiKeys(database.open()).list()
    assert sorted(k.id for k in listed) == sorted(k.id for k, _ in created)
    for key, token in created:
        assert shared.authenticate(token) == key


def test_concurrent_first_opens_create_the_schema_once(database: Database) -> None:
    def open_and_use(i: int) -> None:
        ApiKeys(database.open()).create(f"opener {i}")

    run_threads(6, open_and_use)
    engine = database.open()
    with engine.connect() as conn:
        versions = conn.execute(select(SCHEMA_VERSION)).all()
    assert [(row.component, row.version) for row in versions] == [("api_keys", MIGRATION.version)]
    assert len(ApiKeys(engine).list()) == 6


def test_many_openers_of_a_new_sqlite_database_at_the_same_moment_all_succeed(
    tmp_path: Path,
) -> None:
    # Switching a new database to WAL takes an exclusive lock that SQLite refuses at once
    # ("database is locked") rather than waiting for: the first opens must wait their turn.
    # Repeated, because each round loses that race only now and then.
    for round_ in range(40):
        url = f"sqlite:///{tmp_path / f'round{round_}' / 'metadata.sqlite'}"
        engines: list[Engine] = []

        def open_and_use(i: int, url: str = url, engines: list[Engine] = engines) -> None:
            engine = open_metadata(url)
            engines.append(engine)
            ApiKeys(engine).create(f"opener {i}")

        try:
            run_threads(6, open_and_use)
        finally:
            for engine in engines:
                engine.dispose()


def test_migration_steps_run_once_in_order_and_roll_back_on_failure(database: Database) -> None:
    engine = database.open()
    ran: list[int] = []
    extra = Table("test_extra", MetaData(), Column("n", Integer, primary_key=True))

    def step(n: int) -> Callable[[Connection], None]:
        def apply(conn: Connection) -> None:
            ran.append(n)
            if n == 1:
                extra.create(conn)

        return apply

    def failing(conn: Connection) -> None:
        conn.execute(extra.insert().values(n=1))
        raise RuntimeError("step 3 is broken")

    two_steps = Migration("test_component", (step(0), step(1)))
    assert ensure_schema(engine, two_steps) == 2
    assert ensure_schema(database.open(), two_steps) == 2
    assert ran == [0, 1]

    with pytest.raises(RuntimeError, match="step 3 is broken"):
        ensure_schema(engine, Migration("test_component", (step(0), step(1), failing)))
    with engine.connect() as conn:
        assert conn.execute(select(extra)).all() == []  # the step's write was rolled back
        version = conn.execute(
            select(SCHEMA_VERSION.c.version).where(SCHEMA_VERSION.c.component == "test_component")
        ).scalar_one()
    assert version == 2


def test_a_newer_schema_is_refused(database: Database) -> None:
    engine = database.open()
    ApiKeys(engine)
    with engine.begin() as conn:
        conn.execute(
            update(SCHEMA_VERSION)
            .where(SCHEMA_VERSION.c.component == "api_keys")
            .values(version=99)
        )
    with pytest.raises(MetadataError, match="holds version 99 of the api_keys tables, newer"):
        ApiKeys(engine)


def test_create_retries_when_a_random_id_is_taken(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = ApiKeys(database.open())
    ids = iter(["aaaaaaaaaa", "aaaaaaaaaa", "bbbbbbbbbb"])
    monkeypatch.setattr(secrets, "token_hex", lambda _: next(ids))
    assert keys.create("first")[0].id == "apikey-aaaaaaaaaa"
    assert keys.create("second")[0].id == "apikey-bbbbbbbbbb"


# -- the databases themselves ------------------------------------------------------------------


def test_sqlite_is_configured_for_durability_and_concurrency(tmp_path: Path) -> None:
    engine = open_metadata(f"sqlite:///{tmp_path / 'new' / 'metadata.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    assert (tmp_path / "new" / "metadata.sqlite").exists()
    engine.dispose()


def test_sqlite_in_memory(tmp_path: Path) -> None:
    keys = ApiKeys(open_metadata("sqlite://"))
    key, token = keys.create("Memory")
    assert keys.authenticate(token) == key


def test_reading_commands_do_not_create_a_database(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="there is no metadata database at"):
        open_metadata(f"sqlite:///{tmp_path / 'absent' / 'metadata.sqlite'}", create=False)
    assert not (tmp_path / "absent").exists()


def test_unreachable_postgresql_is_one_sentence_without_the_password() -> None:
    with pytest.raises(MetadataError) as caught:
        open_metadata("postgresql://seq:hunter2@127.0.0.1:1/seq")
    message = str(caught.value)
    assert message.startswith("metadata database postgresql+psycopg://seq:***@127.0.0.1:1/seq: ")
    assert "hunter2" not in message and "\n" not in message


def test_url_normalisation() -> None:
    assert normalise_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u@h/d").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.sqlite").drivername == "sqlite"
    with pytest.raises(MetadataError, match="must be SQLite or PostgreSQL, not mysql"):
        normalise_url("mysql://u@h/d")
    with pytest.raises(MetadataError, match="not a SQLAlchemy URL"):
        normalise_url("not a url")
    with pytest.raises(MetadataError, match="schemas are a PostgreSQL feature"):
        open_metadata("sqlite://", schema="x")
