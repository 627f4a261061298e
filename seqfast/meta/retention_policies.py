"""Retention policies, in the metadata database.

A policy (`retentionpolicy-N`) removes events older than its `RetentionTime` ("d.hh:mm:ss", as
.NET writes a TimeSpan), only those in its `RemovedSignalExpression` signal when it names one
(else every event that old), and/or keeps the store under `MaxTotalBytes` (seqfast's own
field: the oldest segments are dropped until the store is no larger).  A policy's signal
cannot be removed while the policy exists (a foreign key says so).

`RetentionPolicies.rules(signals)` gives the policies in storage terms
(`seqfast.storage.retention.RetentionRule`), signals resolved to their filter texts, for
`Store.apply_retention`.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    Row,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from seqfast.errors import SeqfastError
from seqfast.meta import signals as signal_store
from seqfast.meta.db import METADATA, MetadataError, Migration, database_errors, ensure_schema

if TYPE_CHECKING:
    from seqfast.storage.retention import RetentionRule

ID_PREFIX: Final = "retentionpolicy-"
TICKS_PER_SECOND: Final = 10_000_000
# Longer than any data could have been kept; beyond it a TimeSpan would overflow too.
MAX_RETENTION: Final = timedelta(days=3_650_000)

RETENTION_POLICIES: Final = Table(
    "retention_policies",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("retention_ticks", BigInteger, nullable=True),  # 100 ns units, as a TimeSpan
    Column("removed_signal_id", Integer, ForeignKey(signal_store.SIGNALS.c.id), nullable=True),
    Column("max_total_bytes", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,
)


def _create_v1(conn: Connection) -> None:
    METADATA.create_all(conn, tables=[RETENTION_POLICIES])


MIGRATION: Final = Migration("retention_policies", (_create_v1,))


class InvalidRetentionPolicy(SeqfastError, ValueError):
    """A retention policy is not acceptable (the message says why)."""


@dataclass(frozen=True)
class RetentionPolicy:
    id: str
    retention: timedelta | None
    removed_signal_id: str | None
    max_total_bytes: int | None
    created: datetime

    def to_json(self) -> dict[str, Any]:
        """Seq's `RetentionPolicyEntity` shape, plus `MaxTotalBytes`."""
        return {
            "Id": self.id,
            "RetentionTime": None if self.retention is None else format_timespan(self.retention),
            "RemovedSignalExpression": (
                None
                if self.removed_signal_id is None
                else {"Kind": "Signal", "SignalId": self.removed_signal_id}
            ),
            "MaxTotalBytes": self.max_total_bytes,
            "DataSource": "Stream",
            "Links": {"Self": f"api/retentionpolicies/{self.id}"},
        }


# ----------------------------------------------------------------------------------------------
# Durations

_TIMESPAN: Final = re.compile(r"(?:(\d{1,7})\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?")
_SHORT: Final = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_timespan(text: object) -> timedelta:
    """A duration written as .NET writes a TimeSpan (`30.00:00:00`, `12:00:00`,
    `1.02:03:04.5`) or shortly (`30d`, `12h`, `90m`, `1d12h`, `45s`)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRetentionPolicy("RetentionTime must be a duration such as 30.00:00:00 or 30d")
    value = text.strip()
    match = _TIMESPAN.fullmatch(value)
    if match is not None:
        days, hours, minutes, seconds, fraction = match.groups()
        if int(hours) > 23 or int(minutes) > 59 or int(seconds) > 59:
            raise InvalidRetentionPolicy(
                f"RetentionTime {value!r}: hours must be under 24, minutes and seconds under 60"
            )
        span = timedelta(
            days=int(days or 0),
            hours=int(hours),
            minutes=int(minutes),
            seconds=int(seconds),
            microseconds=int((fraction or "0").ljust(7, "0")) // 10,
        )
    else:
        short = _SHORT.fullmatch(value.lower())
        if short is None or not any(short.groups()):
            raise InvalidRetentionPolicy(
                f"RetentionTime {value!r} is not a duration such as 30.00:00:00, 30d or 12h"
            )
        d, h, m, s = (int(g or 0) for g in short.groups())
        if max(d, h, m, s) > MAX_RETENTION.days * 86400:
            raise InvalidRetentionPolicy(f"RetentionTime {value!r} is too long")
        span = timedelta(days=d, hours=h, minutes=m, seconds=s)
    if span > MAX_RETENTION:
        raise InvalidRetentionPolicy(f"RetentionTime {value!r} is too long")
    return span


def format_timespan(span: timedelta) -> str:
    """`span` as .NET writes a TimeSpan: `[d.]hh:mm:ss[.fffffff]`."""
    days = span.days
    seconds = span.seconds
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if days:
        text = f"{days}.{text}"
    if span.microseconds:
        text += f".{span.microseconds * 10:07d}"
    return text


# ----------------------------------------------------------------------------------------------


class RetentionPolicies:
    """The retention policies in a metadata database.  Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # The policies' table refers to the signals' table: that one first.
        ensure_schema(engine, signal_store.MIGRATION)
        ensure_schema(engine, MIGRATION)

    def create(
        self,
        retention: timedelta | None,
        removed_signal_id: str | None = None,
        max_total_bytes: int | None = None,
    ) -> RetentionPolicy:
        """Stores a policy; InvalidRetentionPolicy if it removes nothing, names a signal that
        does not exist, or names one without a RetentionTime."""
        row = _row_of(retention, removed_signal_id, max_total_bytes)
        created = self._write(insert(RETENTION_POLICIES).values(row), removed_signal_id)
        assert created is not None  # an insert returns its row
        return created

    def update(
        self,
        policy_id: str,
        retention: timedelta | None,
        removed_signal_id: str | None = None,
        max_total_bytes: int | None = None,
    ) -> RetentionPolicy | None:
        """Replaces a policy's settings (checked as by `create`); None if there is no such
        policy."""
        number = parse_id(policy_id)
        row = _row_of(retention, removed_signal_id, max_total_bytes)
        if number is None:
            return None
        del row["created_at"]
        statement = update(RETENTION_POLICIES).where(RETENTION_POLICIES.c.id == number).values(row)
        return self._write(statement, removed_signal_id)

    def _write(self, statement: Any, removed_signal_id: str | None) -> RetentionPolicy | None:
        try:
            with database_errors(self._engine), self._engine.begin() as conn:
                found = conn.execute(statement.returning(*RETENTION_POLICIES.c)).one_or_none()
        except MetadataError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise InvalidRetentionPolicy(f"there is no signal {removed_signal_id!r}") from None
            raise
        return None if found is None else _policy_of(found)

    def list(self) -> builtins.list[RetentionPolicy]:
        with database_errors(self._engine), self._engine.begin() as conn:
            rows = conn.execute(select(RETENTION_POLICIES).order_by(RETENTION_POLICIES.c.id))
            return [_policy_of(row) for row in rows]

    def get(self, policy_id: str) -> RetentionPolicy | None:
        number = parse_id(policy_id)
        if number is None:
            return None
        with database_errors(self._engine), self._engine.begin() as conn:
            row = conn.execute(
                select(RETENTION_POLICIES).where(RETENTION_POLICIES.c.id == number)
            ).one_or_none()
        return None if row is None else _policy_of(row)

    def remove(self, policy_id: str) -> bool:
        number = parse_id(policy_id)
        if number is None:
            return False
        with database_errors(self._engine), self._engine.begin() as conn:
            removed = conn.execute(
                delete(RETENTION_POLICIES).where(RETENTION_POLICIES.c.id == number)
            ).rowcount
        return bool(removed == 1)

    def rules(self, signals: signal_store.Signals) -> builtins.list[RetentionRule]:
        """Every policy as a storage rule, its signal resolved to filter texts."""
        from seqfast.storage.retention import RetentionRule

        found = []
        for policy in self.list():
            filters: tuple[str, ...] = ()
            if policy.removed_signal_id is not None:
                filters = tuple(signals.resolve(policy.removed_signal_id))
            found.append(
                RetentionRule(
                    max_age_ticks=(
                        None if policy.retention is None else _ticks_of(policy.retention)
                    ),
                    filters=filters,
                    max_total_bytes=policy.max_total_bytes,
                )
            )
        return found


def _row_of(
    retention: timedelta | None, removed_signal_id: str | None, max_total_bytes: int | None
) -> dict[str, Any]:
    """A policy's row, checked (see `RetentionPolicies.create`)."""
    if retention is None and max_total_bytes is None:
        raise InvalidRetentionPolicy("a retention policy needs RetentionTime or MaxTotalBytes")
    if retention is not None and (retention < timedelta(0) or retention > MAX_RETENTION):
        raise InvalidRetentionPolicy("RetentionTime must be a positive duration")
    if max_total_bytes is not None and (
        isinstance(max_total_bytes, bool)
        or not isinstance(max_total_bytes, int)
        or max_total_bytes < 0
        or max_total_bytes >= 1 << 63
    ):
        raise InvalidRetentionPolicy("MaxTotalBytes must be a non-negative integer")
    signal_number: int | None = None
    if removed_signal_id is not None:
        if retention is None:
            raise InvalidRetentionPolicy(
                "RemovedSignalExpression needs a RetentionTime: the size limit drops whole "
                "segments, whatever their events"
            )
        signal_number = signal_store.parse_id(removed_signal_id)
        if signal_number is None:
            raise InvalidRetentionPolicy(f"there is no signal {removed_signal_id!r}")
    row = {
        "retention_ticks": None if retention is None else _ticks_of(retention),
        "removed_signal_id": signal_number,
        "max_total_bytes": max_total_bytes,
        "created_at": datetime.now(UTC),
    }
    return row


def parse_id(policy_id: str) -> int | None:
    match = re.fullmatch(r"retentionpolicy-([1-9][0-9]{0,17})", policy_id.strip())
    return int(match[1]) if match else None


def _ticks_of(span: timedelta) -> int:
    return (span.days * 86400 + span.seconds) * TICKS_PER_SECOND + span.microseconds * 10


def _policy_of(row: Row[Any]) -> RetentionPolicy:
    created: datetime = row.created_at
    created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    return RetentionPolicy(
        id=f"{ID_PREFIX}{row.id}",
        retention=(
            None
            if row.retention_ticks is None
            else timedelta(microseconds=row.retention_ticks // 10)
        ),
        removed_signal_id=(
            None
            if row.removed_signal_id is None
            else f"{signal_store.ID_PREFIX}{row.removed_signal_id}"
        ),
        max_total_bytes=row.max_total_bytes,
        created=created,
    )
