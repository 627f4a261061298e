"""Signals: saved, named sets of filters, in the metadata database.

A signal has an id (`signal-N`, N from the database's own sequence: ids are never reused), a
title, a description and a list of filters that all must match (Seq's `DescriptiveFilterPart`:
`Filter`, the expression; `FilterNonStrict`, the text as typed, which may be free text;
`Description`).  Filters are checked when a signal is saved: a filter that does not parse is
refused then, not when a search uses it.

**Signal expressions.**  `/api/events?signal=…` and `/api/data?signal=…` name signals the way
Seq does: `signal-1,signal-2` is their intersection, `signal-1~signal-2` their union, and
parentheses group (`,` binds tighter than `~`, as `and` binds tighter than `or`).
`Signals.resolve` turns an expression into filter texts that all must match: an intersection
is the filters of both sides; a union becomes one `(a) or (b)` text.
"""

from __future__ import annotations

import builtins
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    Row,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from seqfast.errors import SeqfastError
from seqfast.meta.db import METADATA, MetadataError, Migration, database_errors, ensure_schema

MAX_TITLE_CHARS: Final = 200
MAX_DESCRIPTION_CHARS: Final = 4000
MAX_FILTERS: Final = 64
MAX_FILTER_CHARS: Final = 16_384
MAX_EXPRESSION_CHARS: Final = 4096
ID_PREFIX: Final = "signal-"

SIGNALS: Final = Table(
    "signals",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("title", String(MAX_TITLE_CHARS), nullable=False),
    Column("description", Text, nullable=False),
    # [{"Filter": text, "FilterNonStrict": text | null, "Description": text | null}, ...]
    Column("filters", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # SQLite would otherwise reuse the id of the newest signal once it is removed.
    sqlite_autoincrement=True,
)


def _create_v1(conn: Connection) -> None:
    METADATA.create_all(conn, tables=[SIGNALS])


MIGRATION: Final = Migration("signals", (_create_v1,))


class InvalidSignal(SeqfastError, ValueError):
    """A signal, or a signal expression, is not acceptable (the message says why)."""


class UnknownSignal(InvalidSignal, LookupError):
    """A signal id that names no signal."""


@dataclass(frozen=True)
class SignalFilter:
    """One filter of a signal: `filter` is the expression (always parses, strict)."""

    filter: str
    filter_non_strict: str | None = None
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "Filter": self.filter,
            "FilterNonStrict": self.filter_non_strict,
            "Description": self.description,
            "DescriptionIsExcluded": False,
        }


@dataclass(frozen=True)
class Signal:
    id: str
    title: str
    description: str
    filters: tuple[SignalFilter, ...]
    created: datetime

    def to_json(self) -> dict[str, Any]:
        """Seq's `SignalEntity` shape."""
        return {
            "Id": self.id,
            "Title": self.title,
            "Description": self.description,
            "Filters": [f.to_json() for f in self.filters],
            "Columns": [],
            "IsProtected": False,
            "IsIndexSuppressed": False,
            "Grouping": "Inferred",
            "ExplicitGroupName": None,
            "OwnerId": None,
            "Links": {"Self": f"api/signals/{self.id}"},
        }


# ----------------------------------------------------------------------------------------------
# Validation


def normalise_title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise InvalidSignal("a signal needs a title")
    title = title.strip()
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidSignal(f"a signal's title must be at most {MAX_TITLE_CHARS} characters")
    if any(unicodedata.category(c) == "Cc" for c in title):
        raise InvalidSignal("a signal's title must not contain control characters")
    return title


def normalise_description(description: object) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise InvalidSignal("a signal's description must be text")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidSignal(
            f"a signal's description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )
    return description


def normalise_filter(
    filter: str | None, filter_non_strict: str | None = None, description: str | None = None
) -> SignalFilter:
    """A filter as stored: `filter` must be an expression (strict); without it,
    `filter_non_strict` is read as the search box reads it (free text where no expression is
    meant) and `filter` becomes that reading's expression text."""
    from seqfast.query import QuerySyntaxError, parse_filter, to_source

    for name, value in (
        ("Filter", filter),
        ("FilterNonStrict", filter_non_strict),
        ("Description", description),
    ):
        if value is not None and not isinstance(value, str):
            raise InvalidSignal(f"a signal filter's {name} must be text")
        if value is not None and len(value) > MAX_FILTER_CHARS:
            raise InvalidSignal(f"a signal filter's {name} is longer than {MAX_FILTER_CHARS}")
    strict = filter is not None and bool(filter.strip())
    text = filter if strict else filter_non_strict
    if text is None or not text.strip():
        raise InvalidSignal("a signal filter needs a Filter or FilterNonStrict expression")
    try:
        tree = parse_filter(text, strict=strict)
    except QuerySyntaxError as exc:
        raise InvalidSignal(f"the signal filter {text!r} is not valid: {exc}") from None
    stored = to_source(tree)
    # Searches read filter texts as the search box does, where a lone name is free text:
    # parentheses keep such an expression an expression.
    if parse_filter(stored) != tree:
        stored = f"({stored})"
    return SignalFilter(stored, filter_non_strict, description)


def filters_from_json(items: object) -> tuple[SignalFilter, ...]:
    """Seq's `Filters` array (`[{Filter, FilterNonStrict, Description}]`), checked."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise InvalidSignal("Filters must be a list of {Filter, FilterNonStrict, Description}")
    if len(items) > MAX_FILTERS:
        raise InvalidSignal(f"a signal may have at most {MAX_FILTERS} filters")
    found = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidSignal("each of Filters must be an object {Filter, FilterNonStrict}")
        found.append(
            normalise_filter(
                item.get("Filter"), item.get("FilterNonStrict"), item.get("Description")
            )
        )
    return tuple(found)


def parse_id(signal_id: str) -> int | None:
    """The number of a `signal-N` id, or None if `signal_id` is not one of ours."""
    match = re.fullmatch(r"signal-([1-9][0-9]{0,17})", signal_id.strip())
    return int(match[1]) if match else None


# ----------------------------------------------------------------------------------------------
# Signal expressions: "signal-1,signal-2~(signal-3,signal-4)"


@dataclass(frozen=True)
class Ref:
    signal_id: str


@dataclass(frozen=True)
class Combined:
    op: str  # "," (intersection) or "~" (union)
    left: Expression
    right: Expression


Expression = Ref | Combined
_TOKEN: Final = re.compile(r"\s*(?:([,~()])|([A-Za-z0-9_-]+))")


def parse_expression(text: str) -> Expression:
    """Parses a signal expression; InvalidSignal says where it goes wrong."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise InvalidSignal(f"a signal expression must be at most {MAX_EXPRESSION_CHARS} chars")
    tokens: list[tuple[int, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise InvalidSignal(
                f"the signal expression {text!r} has {text[pos:].strip()[0]!r} at "
                f"{pos + 1}; expected a signal id such as signal-1, ',', '~' or parentheses"
            )
        tokens.append((match.start(match.lastindex or 0), match[1] or match[2]))
        pos = match.end()
    if not tokens:
        raise InvalidSignal("the signal expression is empty; name a signal such as signal-1")
    parser = _ExpressionParser(text, tokens)
    tree = parser.union()
    if parser.index < len(tokens):
        parser.fail("',', '~' or the end")
    return tree


class _ExpressionParser:
    def __init__(self, text: str, tokens: list[tuple[int, str]]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def fail(self, expected: str) -> None:
        if self.index < len(self.tokens):
            at, token = self.tokens[self.index]
            found = f"{token!r} at {at + 1}"
        else:
            found = "the end"
        raise InvalidSignal(f"the signal expression {self.text!r} has {found}; expected {expected}")

    def peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def union(self) -> Expression:
        left = self.intersection()
        while self.peek() == "~":
            self.index += 1
            left = Combined("~", left, self.intersection())
        return left

    def intersection(self) -> Expression:
        left = self.primary()
        while self.peek() == ",":
            self.index += 1
            left = Combined(",", left, self.primary())
        return left

    def primary(self) -> Expression:
        token = self.peek()
        if token == "(":
            self.index += 1
            self.depth += 1
            if self.depth > 32:
                raise InvalidSignal("the signal expression is nested too deeply")
            inner = self.union()
            if self.peek() != ")":
                self.fail("')'")
            self.index += 1
            self.depth -= 1
            return inner
        if token is None or token in ",~()":
            self.fail("a signal id such as signal-1")
        self.index += 1
        assert token is not None
        return Ref(token)


def _signal_ids(tree: Expression) -> list[str]:
    if isinstance(tree, Ref):
        return [tree.signal_id]
    return [*_signal_ids(tree.left), *_signal_ids(tree.right)]


def _conjunction(texts: Sequence[str]) -> str:
    return " and ".join(f"({t})" for t in texts)


# ----------------------------------------------------------------------------------------------


class Signals:
    """The signals in a metadata database.  Thread-safe (every call is one transaction)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        ensure_schema(engine, MIGRATION)

    def create(
        self,
        title: str,
        filters: Iterable[SignalFilter] = (),
        description: str | None = None,
    ) -> Signal:
        """Stores a new signal (filters already checked by `normalise_filter`)."""
        row = {
            "title": normalise_title(title),
            "description": normalise_description(description),
            "filters": _filters_json(tuple(filters)),
            "created_at": datetime.now(UTC),
        }
        with database_errors(self._engine), self._engine.begin() as conn:
            found = conn.execute(insert(SIGNALS).values(row).returning(*SIGNALS.c)).one()
        return _signal_of(found)

    def update(
        self,
        signal_id: str,
        title: str,
        filters: Iterable[SignalFilter] = (),
        description: str | None = None,
    ) -> Signal:
        """Replaces a signal's title, description and filters; UnknownSignal if none."""
        number = self._number(signal_id)
        values = {
            "title": normalise_title(title),
            "description": normalise_description(description),
            "filters": _filters_json(tuple(filters)),
        }
        with database_errors(self._engine), self._engine.begin() as conn:
            changed = conn.execute(
                update(SIGNALS).where(SIGNALS.c.id == number).values(values)
            ).rowcount
            if changed != 1:
                raise UnknownSignal(f"there is no signal {signal_id!r}")
            found = conn.execute(select(SIGNALS).where(SIGNALS.c.id == number)).one()
        return _signal_of(found)

    def list(self) -> builtins.list[Signal]:
        """Every signal, in order of creation."""
        with database_errors(self._engine), self._engine.begin() as conn:
            return [_signal_of(r) for r in conn.execute(select(SIGNALS).order_by(SIGNALS.c.id))]

    def get(self, signal_id: str) -> Signal | None:
        number = parse_id(signal_id)
        if number is None:
            return None
        with database_errors(self._engine), self._engine.begin() as conn:
            row = conn.execute(select(SIGNALS).where(SIGNALS.c.id == number)).one_or_none()
        return None if row is None else _signal_of(row)

    def remove(self, signal_id: str) -> bool:
        """Removes a signal; False if there is none.  InvalidSignal if a retention policy
        uses it (remove the policy first)."""
        number = parse_id(signal_id)
        if number is None:
            return False
        try:
            with database_errors(self._engine), self._engine.begin() as conn:
                removed = conn.execute(delete(SIGNALS).where(SIGNALS.c.id == number)).rowcount
        except MetadataError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise InvalidSignal(
                    f"{signal_id} is used by a retention policy; remove the policy first"
                ) from None
            raise
        return bool(removed == 1)

    def resolve(self, param: str) -> builtins.list[str]:
        """The filter texts (all must match) of the signal expression `param`, such as
        `signal-1,signal-2` (both) or `signal-1~signal-2` (either).  InvalidSignal for a
        malformed expression, UnknownSignal naming the first id that is no signal."""
        tree = parse_expression(param)
        ids = list(dict.fromkeys(_signal_ids(tree)))
        numbers = {}
        for signal_id in ids:
            number = parse_id(signal_id)
            if number is None:
                raise UnknownSignal(f"there is no signal {signal_id!r}")
            numbers[signal_id] = number
        with database_errors(self._engine), self._engine.begin() as conn:
            rows = conn.execute(
                select(SIGNALS).where(SIGNALS.c.id.in_(list(numbers.values())))
            ).all()
        found = {f"{ID_PREFIX}{row.id}": _signal_of(row) for row in rows}
        for signal_id in ids:
            if f"{ID_PREFIX}{numbers[signal_id]}" not in found:
                raise UnknownSignal(f"there is no signal {signal_id!r}")
        return self._texts(tree, {sid: found[f"{ID_PREFIX}{n}"] for sid, n in numbers.items()})

    def _texts(self, tree: Expression, signals: Mapping[str, Signal]) -> builtins.list[str]:
        if isinstance(tree, Ref):
            return [f.filter for f in signals[tree.signal_id].filters if f.filter.strip()]
        left = self._texts(tree.left, signals)
        right = self._texts(tree.right, signals)
        if tree.op == ",":
            return [*left, *right]
        if not left or not right:
            return []  # one side matches every event, and so does the union
        return [f"{_conjunction(left)} or {_conjunction(right)}"]

    def _number(self, signal_id: str) -> int:
        number = parse_id(signal_id)
        if number is None:
            raise UnknownSignal(f"there is no signal {signal_id!r}")
        return number


def _filters_json(filters: tuple[SignalFilter, ...]) -> builtins.list[dict[str, Any]]:
    if len(filters) > MAX_FILTERS:
        raise InvalidSignal(f"a signal may have at most {MAX_FILTERS} filters")
    return [
        {"Filter": f.filter, "FilterNonStrict": f.filter_non_strict, "Description": f.description}
        for f in filters
    ]


def _signal_of(row: Row[Any]) -> Signal:
    created: datetime = row.created_at
    created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    return Signal(
        id=f"{ID_PREFIX}{row.id}",
        title=row.title,
        description=row.description,
        filters=tuple(
            SignalFilter(f["Filter"], f.get("FilterNonStrict"), f.get("Description"))
            for f in row.filters
        ),
        created=created,
    )
