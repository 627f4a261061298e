"""API keys: who may ingest (and later read, write, administer), and with what input settings.

A key has an id (`apikey-` and 10 random hex digits: random rather than sequential so that
concurrent creators, possibly in different processes, never contend for the next number), a
title, the permissions it grants (Seq's names: Ingest, Read, Write, Project, System), an optional
minimum level (events below it are dropped at ingestion) and applied properties (added to every
event ingested with the key, overriding same-named ones).

**Tokens.**  A token is 24 bytes from `secrets` in URL-safe base64 (32 characters: 192 bits).
It is returned once, by `create`; the database keeps only its SHA-256 and its first 6
characters (for recognising a key in a list: 156 unknown bits remain).  A fast hash is the
right one here: bcrypt, scrypt and Argon2 are slow on purpose, to make guessing *low-entropy*
passwords from a stolen hash expensive, but no amount of guessing finds a 192-bit random token,
so slowness would buy nothing and would cost every ingestion request tens of milliseconds (and
hand attackers a cheap way to burn CPU).  Tokens never appear in logs, errors or `to_json()`.

**Authentication on the hot path.**  `authenticate` looks the token's digest up in an in-memory
snapshot of all keys (metadata tables are small), so ingestion does not touch the database per
request.  The snapshot changes at once when this process creates or removes a key, and is
reloaded when older than `max_age_seconds`, and on an unknown token at most every
`miss_refresh_seconds`: so a key created or removed by another process (`seqfast apikey` while
the server runs, or another node) takes effect within seconds, while a flood of bad tokens costs
at most one query a second.  If the database cannot be reached, the last snapshot stays in use.

**Metrics.**  `record` counts, per key (and for requests without a key), the events and bytes
ingested and the payloads rejected: in memory, under a lock, cheap enough for every request.
`flush_metrics` adds what was counted since the last flush to the totals in the database; call
it periodically and at shutdown.  Several servers sharing a database each add their own counts.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Row,
    String,
    Table,
    delete,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from seqfast.errors import SeqfastError
from seqfast.events import levels
from seqfast.meta.db import METADATA, MetadataError, Migration, database_errors, ensure_schema

log = logging.getLogger(__name__)

TOKEN_BYTES: Final = 24
TOKEN_PREFIX_CHARS: Final = 6
# Longer header values are not our tokens; refusing them early bounds the hashing work.
MAX_TOKEN_CHARS: Final = 256
MAX_TITLE_CHARS: Final = 200
# Seq's permission names, in Seq's order; stored lower case.
PERMISSIONS: Final = ("ingest", "read", "write", "project", "system")
_SEQ_PERMISSION_NAMES: Final = {p: p.capitalize() for p in PERMISSIONS}
# Metrics of requests that carried no (valid) key are kept under this id, which no key can have.
_NO_KEY_ROW: Final = "(none)"
_CREATE_ATTEMPTS: Final = 5

JsonValue = Any  # anything json.dumps accepts

API_KEYS: Final = Table(
    "api_keys",
    METADATA,
    Column("id", String(32), primary_key=True),
    Column("title", String(MAX_TITLE_CHARS), nullable=False),
    Column("token_prefix", String(TOKEN_PREFIX_CHARS), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256, hex
    Column("permissions", String(64), nullable=False),  # "ingest,read", in PERMISSIONS order
    Column("minimum_level", String(16), nullable=True),  # a Seq level name
    Column("applied_properties", JSON, nullable=False),  # {"Name": value, ...}
    Column("created_at", DateTime(timezone=True), nullable=False),
)

API_KEY_METRICS: Final = Table(
    "api_key_metrics",
    METADATA,
    Column("key_id", String(32), primary_key=True),  # an api_keys id, or _NO_KEY_ROW
    Column("events", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("rejections", BigInteger, nullable=False),
)


def _create_v1(conn: Connection) -> None:
    METADATA.create_all(conn, tables=[API_KEYS, API_KEY_METRICS])


MIGRATION: Final = Migration("api_keys", (_create_v1,))


class InvalidApiKey(SeqfastError, ValueError):
    """An API key's title, permissions, minimum level or properties are not acceptable."""


@dataclass(frozen=True)
class ApiKey:
    """One API key, as stored (without its token)."""

    id: str
    title: str
    token_prefix: str
    permissions: tuple[str, ...]
    minimum_level: str | None
    applied_properties: tuple[tuple[str, JsonValue], ...]
    created: datetime

    def allows(self, permission: str) -> bool:
        return permission.lower() in self.permissions

    def to_json(self, metrics: Mapping[str, int] | None = None) -> dict[str, Any]:
        """Seq's `ApiKeyEntity` shape (without `Token`, which is never readable) plus
        `Metrics`: totals of ingested events and bytes and of rejected payloads."""
        counted = dict(metrics) if metrics is not None else _Counters().to_json()
        return {
            "Id": self.id,
            "Title": self.title,
            "TokenPrefix": self.token_prefix,
            "AssignedPermissions": [_SEQ_PERMISSION_NAMES[p] for p in self.permissions],
            "InputSettings": {
                "AppliedProperties": [
                    {"Name": name, "Value": value} for name, value in self.applied_properties
                ],
                "Filter": None,
                "MinimumLevel": self.minimum_level,
                "UseServerTimestamps": False,
            },
            "IsDefault": False,
            "OwnerId": None,
            "Metrics": counted,
        }


@dataclass
class _Counters:
    events: int = 0
    bytes: int = 0
    rejections: int = 0

    def add(self, other: _Counters) -> None:
        self.events += other.events
        self.bytes += other.bytes
        self.rejections += other.rejections

    def to_json(self) -> dict[str, int]:
        return {"Events": self.events, "Bytes": self.bytes, "Rejections": self.rejections}


@dataclass(frozen=True)
class _Snapshot:
    """Every key by its token's digest (the digest is kept in the value too, for the final
    constant-time comparison), and when it was loaded (by the clock of `ApiKeys`)."""

    by_digest: dict[str, tuple[str, ApiKey]] = field(default_factory=dict)
    loaded_at: float = -math.inf


# ----------------------------------------------------------------------------------------------
# Validation: every input is checked, and normalised, before anything is written.


def normalise_permissions(permissions: str | Iterable[str]) -> tuple[str, ...]:
    """Permission names (any case; a string may list several, comma-separated) in the stored
    form: lower case, each once, in Seq's order."""
    names = permissions.split(",") if isinstance(permissions, str) else list(permissions)
    wanted = {name.strip().lower() for name in names if name.strip()}
    unknown = sorted(wanted - set(PERMISSIONS))
    if unknown:
        raise InvalidApiKey(
            f"unknown permission {unknown[0]!r}; the permissions are {', '.join(PERMISSIONS)}"
        )
    if not wanted:
        raise InvalidApiKey("an API key needs at least one permission")
    return tuple(p for p in PERMISSIONS if p in wanted)


def normalise_level(level: str | None) -> str | None:
    """The Seq name of a minimum level (None: no minimum)."""
    if level is None:
        return None
    name = levels.canonical(level)
    if name is None:
        raise InvalidApiKey(f"unknown level {level!r}; the levels are {', '.join(levels.LEVELS)}")
    return name


def normalise_title(title: str) -> str:
    title = title.strip()
    if not title:
        raise InvalidApiKey("an API key needs a title")
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidApiKey(f"an API key's title must be at most {MAX_TITLE_CHARS} characters")
    if any(unicodedata.category(c) == "Cc" for c in title):
        # Titles are printed in tables and logs: no line breaks or terminal escapes.
        raise InvalidApiKey("an API key's title must not contain control characters")
    return title


def normalise_properties(
    properties: Mapping[str, JsonValue] | None,
) -> tuple[tuple[str, JsonValue], ...]:
    """Applied properties as (name, value) pairs, checked to be storable as JSON."""
    pairs = tuple((properties or {}).items())
    for name, value in pairs:
        if not isinstance(name, str) or not name.strip():
            raise InvalidApiKey("an applied property needs a name")
        if name.startswith("@"):
            # Names starting with @ are CLEF's reified fields (@t, @l, …), not properties.
            raise InvalidApiKey(f"applied property name {name!r} must not start with @")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidApiKey(f"applied property {name!r} must be a JSON value") from None
    return pairs


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _clean_token(token: str | None) -> str | None:
    """The token to look up, or None for "no key": absent, empty, or the text "null" (which
    some clients send when their key setting is unset); and None for text that cannot be one of
    our tokens (too long, or not ASCII, which might not even encode as UTF-8)."""
    if token is None:
        return None
    token = token.strip()
    if not token or token == "null" or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        return None
    return token


# ----------------------------------------------------------------------------------------------


class ApiKeys:
    """The API keys in a metadata database (see the module docstring).  Thread-safe."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_age_seconds: float = 5.0,
        miss_refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._max_age = max_age_seconds
        self._miss_refresh = miss_refresh_seconds
        self._clock = clock
        ensure_schema(engine, MIGRATION)
        # Loaded now, not on the first request: concurrent first requests would otherwise find
        # the reload taken by one of them and turn valid keys away meanwhile.
        self._snapshot = _Snapshot(self._load_keys(), clock())
        self._last_miss_refresh = -math.inf
        self._refresh_lock = threading.Lock()
        self._metrics_lock = threading.Lock()
        self._totals: dict[str | None, _Counters] = self._load_totals()
        self._pending: dict[str | None, _Counters] = {}

    # -- administration ------------------------------------------------------------------------

    def create(
        self,
        title: str,
        permissions: str | Iterable[str] = ("ingest",),
        minimum_level: str | None = None,
        properties: Mapping[str, JsonValue] | None = None,
    ) -> tuple[ApiKey, str]:
        """Creates a key and returns it with its token: the only time the token is available."""
        title = normalise_title(title)
        granted = normalise_permissions(permissions)
        level = normalise_level(minimum_level)
        applied = normalise_properties(properties)
        for _ in range(_CREATE_ATTEMPTS):
            token = secrets.token_urlsafe(TOKEN_BYTES)
            key = ApiKey(
                id=f"apikey-{secrets.token_hex(5)}",
                title=title,
                token_prefix=token[:TOKEN_PREFIX_CHARS],
                permissions=granted,
                minimum_level=level,
                applied_properties=applied,
                created=datetime.now(UTC),
            )
            if self._insert(key, token_digest(token)):
                self._remember(key, token_digest(token))
                return key, token
        raise MetadataError("could not find an unused API key id; try again")

    def _insert(self, key: ApiKey, digest: str) -> bool:
        """Stores `key`; False if its random id (or digest) is already taken."""
        try:
            with database_errors(self._engine), self._engine.begin() as conn:
                conn.execute(insert(API_KEYS).values(_row_of(key, digest)))
        except MetadataError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise
        return True

    def list(self) -> builtins.list[ApiKey]:
        """Every key, oldest first."""
        query = select(API_KEYS).order_by(API_KEYS.c.created_at, API_KEYS.c.id)
        with database_errors(self._engine), self._engine.begin() as conn:
            return [_key_of(row) for row in conn.execute(query)]

    def get(self, key_id: str) -> ApiKey | None:
        with database_errors(self._engine), self._engine.begin() as conn:
            row = conn.execute(select(API_KEYS).where(API_KEYS.c.id == key_id)).one_or_none()
        return None if row is None else _key_of(row)

    def remove(self, key_id: str) -> bool:
        """Removes a key and its metrics; False if there is no such key.  The key stops
        authenticating in this process at once (in others within `max_age_seconds`)."""
        with database_errors(self._engine), self._engine.begin() as conn:
            conn.execute(delete(API_KEY_METRICS).where(API_KEY_METRICS.c.key_id == key_id))
            removed = conn.execute(delete(API_KEYS).where(API_KEYS.c.id == key_id)).rowcount
        self._forget(key_id)
        return bool(removed == 1)

    # -- authentication ------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> ApiKey | None:
        """The key whose token this is, or None (no token, or not a valid one)."""
        cleaned = _clean_token(token)
        if cleaned is None:
            return None
        digest = token_digest(cleaned)
        now = self._clock()
        snapshot = self._snapshot
        if now - snapshot.loaded_at >= self._max_age:
            snapshot = self._refresh(now)
        found = snapshot.by_digest.get(digest)
        if found is None and now - self._last_miss_refresh >= self._miss_refresh:
            self._last_miss_refresh = now
            found = self._refresh(now).by_digest.get(digest)
        if found is None:
            return None
        # The lookup above is by digest, so its timing can reveal at most something about a
        # SHA-256 output, never about a token; the final check is constant-time all the same,
        # so that no code path compares secret-derived values with ==.
        stored, key = found
        return key if hmac.compare_digest(stored, digest) else None

    def refresh(self) -> None:
        """Reloads the keys from the database now (e.g. from a periodic task)."""
        self._refresh(self._clock(), force=True)

    def _refresh(self, now: float, *, force: bool = False) -> _Snapshot:
        # One thread reloads; the others keep using the current snapshot meanwhile.
        if not self._refresh_lock.acquire(blocking=force):
            return self._snapshot
        try:
            try:
                loaded = self._load_keys()
            except MetadataError as exc:
                if force:
                    raise
                # Keep serving with what we have; the next attempt comes after max_age.
                log.warning("API keys not reloaded, using the ones loaded before: %s", exc)
                loaded = self._snapshot.by_digest
            self._snapshot = _Snapshot(loaded, now)
            return self._snapshot
        finally:
            self._refresh_lock.release()

    def _load_keys(self) -> dict[str, tuple[str, ApiKey]]:
        with database_errors(self._engine), self._engine.begin() as conn:
            rows = conn.execute(select(API_KEYS)).all()
        return {row.token_hash: (row.token_hash, _key_of(row)) for row in rows}

    # _remember and _forget run after the database commit and take the refresh lock, so a
    # reload that started before the commit cannot undo them.

    def _remember(self, key: ApiKey, digest: str) -> None:
        with self._refresh_lock:
            current = self._snapshot
            added = {**current.by_digest, digest: (digest, key)}
            self._snapshot = _Snapshot(added, current.loaded_at)

    def _forget(self, key_id: str) -> None:
        with self._refresh_lock:
            current = self._snapshot
            kept = {d: found for d, found in current.by_digest.items() if found[1].id != key_id}
            self._snapshot = _Snapshot(kept, current.loaded_at)
        with self._metrics_lock:
            self._totals.pop(key_id, None)
            self._pending.pop(key_id, None)

    # -- metrics -------------------------------------------------------------------------------

    def record(self, key_id: str | None, events: int, bytes: int, rejected: bool) -> None:
        """Counts one ingestion request made with `key_id` (None: without a key).  An accepted
        request adds its events and bytes; a rejected one (nothing of it was stored) adds one
        rejection and nothing else."""
        delta = _Counters(rejections=1) if rejected else _Counters(events=events, bytes=bytes)
        with self._metrics_lock:
            self._totals.setdefault(key_id, _Counters()).add(delta)
            self._pending.setdefault(key_id, _Counters()).add(delta)

    def metrics(self, key_id: str | None) -> dict[str, int]:
        """`{"Events", "Bytes", "Rejections"}` totals for a key (None: requests without one)."""
        with self._metrics_lock:
            return self._totals.get(key_id, _Counters()).to_json()

    def to_json(self, key: ApiKey) -> dict[str, Any]:
        """`key.to_json()` with its metrics."""
        return key.to_json(self.metrics(key.id))

    def flush_metrics(self) -> int:
        """Adds the counts recorded since the last flush to the database; returns how many
        keys' rows were written.  Counts of keys removed meanwhile are dropped; if the database
        fails, the counts are kept for the next flush and MetadataError is raised."""
        with self._metrics_lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            return self._write_metrics(pending)
        except MetadataError:
            with self._metrics_lock:
                for key_id, counted in pending.items():
                    self._pending.setdefault(key_id, _Counters()).add(counted)
            raise

    def _write_metrics(self, pending: Mapping[str | None, _Counters]) -> int:
        rows = {_NO_KEY_ROW if k is None else k: c for k, c in pending.items()}
        with database_errors(self._engine), self._engine.begin() as conn:
            existing = set(
                conn.execute(select(API_KEYS.c.id).where(API_KEYS.c.id.in_(rows))).scalars()
            )
            written = 0
            for row_id, counted in rows.items():
                if row_id == _NO_KEY_ROW or row_id in existing:
                    conn.execute(self._add_metrics(row_id, counted))
                    written += 1
        return written

    def _add_metrics(self, row_id: str, counted: _Counters) -> Any:
        """An upsert that adds `counted` to the row's totals in one statement, so that servers
        sharing the database never overwrite each other's counts."""
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(API_KEY_METRICS).values(
            key_id=row_id,
            events=counted.events,
            bytes=counted.bytes,
            rejections=counted.rejections,
        )
        table = API_KEY_METRICS.c
        return statement.on_conflict_do_update(
            index_elements=[table.key_id],
            set_={
                "events": table.events + statement.excluded.events,
                "bytes": table.bytes + statement.excluded.bytes,
                "rejections": table.rejections + statement.excluded.rejections,
            },
        )

    def _load_totals(self) -> dict[str | None, _Counters]:
        with database_errors(self._engine), self._engine.begin() as conn:
            rows = conn.execute(select(API_KEY_METRICS)).all()
        return {
            (None if row.key_id == _NO_KEY_ROW else row.key_id): _Counters(
                row.events, row.bytes, row.rejections
            )
            for row in rows
        }


def _row_of(key: ApiKey, digest: str) -> dict[str, Any]:
    return {
        "id": key.id,
        "title": key.title,
        "token_prefix": key.token_prefix,
        "token_hash": digest,
        "permissions": ",".join(key.permissions),
        "minimum_level": key.minimum_level,
        "applied_properties": dict(key.applied_properties),
        "created_at": key.created,
    }


def _key_of(row: Row[Any]) -> ApiKey:
    created: datetime = row.created_at
    # SQLite keeps no time zone: the value was written in UTC.
    created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    return ApiKey(
        id=row.id,
        title=row.title,
        token_prefix=row.token_prefix,
        permissions=tuple(p for p in row.permissions.split(",") if p),
        minimum_level=row.minimum_level,
        applied_properties=tuple(row.applied_properties.items()),
        created=created,
    )
