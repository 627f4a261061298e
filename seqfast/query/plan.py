"""Which blocks can a filter skip without reading them?  Pure: no files, no threads.

`derive(expr)` turns a filter expression into a `Prune` tree: a condition on what a block
holds that every matching event needs.  `may_match(prune, block, probe)` then decides, from the
block's statistics (`ColumnStats`: numeric min/max, whether it holds strings) and its token
bloom filters (`probe(column, text)`, which is `SegmentReader.might_contain_token`), whether the
block can hold a match at all.  A block for which it says False is skipped; True only means
"read it".

Every rule here must be exact in one direction: it may keep a block that holds no match, never
skip one that holds a match.  So:

* A conjunction needs every part: its prunes all apply.  A disjunction can be skipped only when
  every branch can; one branch without a prune keeps every block.  `not` keeps everything
  (`not x` is true when x is undefined, so it needs nothing).
* `Prop op number` (`=`, `<`, `<=`, `>`, `>=`, either side) is true only for a number in range:
  a block whose INT and FLOAT min/max miss the range is skipped.  A block that holds strings in
  that column is kept (a BIGINT value, beyond int64, is stored as text and is a number).
  Non-finite floats are undefined in Seq's language, so they never match.
* `Prop = 'text'` (without `ci`) needs the stored string to be exactly the text, so every
  token of the text is a token of the block's strings: a bloom miss skips the block.  Blooms
  hold lowercased ASCII tokens (a token is a maximal run of ASCII letters, digits and bytes
  >= 0x80), so case-sensitive matching implies a bloom hit; `ci` comparisons fold non-ASCII
  characters onto ASCII ones (`ſ` is `S`), so they are not pruned.
* `like` patterns, `Contains`, `StartsWith` and `EndsWith` (without `ci`) need their literal
  fragments inside the value, but a fragment's edge token may be part of a longer token of the
  value (`%timeout%` matches `CommandTimeout`).  Only the tokens a fragment closes on both
  sides — by a non-token character inside the fragment, or by the start or end of the value
  where the pattern is anchored — are probed.
* Built-in properties map to their CLEF columns where the language reads them straight
  (`@TraceId` is `@tr`, ...).  `@Level` reads spellings (`WRN` is `Warning`, a missing level
  is Information), so only a value that is not a level name is probed; `@MessageTemplate`
  falls back to `@m`, so both are probed; `@Message` is rendered and never pruned.
* `@Timestamp op number` bounds the block's time range.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, TypeAlias

from seqfast.events import levels
from seqfast.query import ast
from seqfast.storage.ids import UNIX_EPOCH_DOTNET_TICKS
from seqfast.storage.segment import ColumnStats

# --- the prune tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberBound:
    """Column `column` holds a number `v` with `v op value`."""

    column: str
    op: str  # one of = < <= > >=
    value: Decimal


@dataclass(frozen=True)
class TimeBound:
    """The event's timestamp `ts op ticks` (ticks since 1970, as `Batch.ts`)."""

    op: str
    ticks: Decimal


@dataclass(frozen=True)
class Tokens:
    """Column `column` holds a string containing every token of `text` (blank: some string)."""

    column: str
    text: str


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Prune, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Prune, ...]


Prune: TypeAlias = NumberBound | TimeBound | Tokens | AllOf | AnyOf

# Probes a block's bloom filter of a column: False when the block certainly lacks a token.
Probe: TypeAlias = Callable[[str, str], bool]

# Built-ins read straight from one CLEF column (reference_eval's "simple" table).
_DIRECT_COLUMNS: Final[dict[str, str]] = {
    "Exception": "@x",
    "TraceId": "@tr",
    "SpanId": "@sp",
    "ParentId": "@ps",
    "SpanKind": "@sk",
}
_FLIP: Final[dict[str, str]] = {"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_TOKEN: Final = re.compile("[A-Za-z0-9\u0080-\U0010ffff]+")
_LEVEL_NAMES: Final = frozenset(levels.LEVELS)


def property_column(name: str) -> str:
    """The CLEF column of the user property `name` (`@x` as a property is `@@x` in CLEF)."""
    return "@" + name if name.startswith("@") else name


def _string_columns(node: ast.Node, value: str) -> tuple[str, ...] | None:
    """The columns one of which must hold `value` as a string for `node` to read as it."""
    if isinstance(node, ast.Property):
        return (property_column(node.name),)
    if isinstance(node, ast.BuiltIn):
        if node.name in _DIRECT_COLUMNS:
            return (_DIRECT_COLUMNS[node.name],)
        if node.name == "MessageTemplate":
            return ("@mt", "@m")
        if node.name == "Level" and value not in _LEVEL_NAMES:
            return ("@l",)
    return None


def _constant_number(node: ast.Node) -> Decimal | None:
    if isinstance(node, ast.Number):
        return node.value
    if isinstance(node, ast.Duration):
        return node.ticks
    if isinstance(node, ast.Unary) and node.op == "-":
        inner = _constant_number(node.operand)
        return None if inner is None else -inner
    return None


def _closed_tokens(fragment: str, left_anchored: bool, right_anchored: bool) -> list[str]:
    """Tokens of `fragment` that must also be whole tokens of a value containing it, given
    whether its ends are the value's ends."""
    found = []
    for match in _TOKEN.finditer(fragment):
        left_closed = match.start() > 0 or left_anchored
        right_closed = match.end() < len(fragment) or right_anchored
        if left_closed and right_closed:
            found.append(match.group(0))
    return found


def _like_tokens(pattern: str) -> list[str] | None:
    if "?" in pattern or "%%" in pattern:
        return None  # meanings the sources disagree on: evaluated elsewhere or rejected
    pieces = re.split("[%_]", pattern)
    tokens: list[str] = []
    for i, piece in enumerate(pieces):
        tokens.extend(_closed_tokens(piece, i == 0, i == len(pieces) - 1))
    return tokens


def _any(parts: Sequence[Prune | None]) -> Prune | None:
    if not parts or any(p is None for p in parts):
        return None
    kept = tuple(p for p in parts if p is not None)
    return kept[0] if len(kept) == 1 else AnyOf(kept)


def _all(parts: Sequence[Prune | None]) -> Prune | None:
    kept = tuple(p for p in parts if p is not None)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else AllOf(kept)


def _tokens_any(columns: tuple[str, ...] | None, text: str) -> Prune | None:
    if columns is None:
        return None
    return _any([Tokens(column, text) for column in columns])


def derive(expr: ast.Node | None) -> Prune | None:
    """What a block must hold for `expr` to be true for one of its events; None when
    nothing can be said (every block is read)."""
    if expr is None:
        return None
    if isinstance(expr, ast.Filter):
        return derive(expr.expr)
    if isinstance(expr, ast.Logical):
        parts = [derive(operand) for operand in expr.operands]
        return _all(parts) if expr.op == "and" else _any(parts)
    if isinstance(expr, ast.Binary):
        return _binary(expr)
    if isinstance(expr, ast.Call) and not expr.ci and len(expr.args) == 2:
        target, needle = expr.args
        if isinstance(needle, ast.String) and expr.name in ("Contains", "StartsWith", "EndsWith"):
            # A fragment closed at the value's start (StartsWith) or end (EndsWith).
            left = expr.name == "StartsWith"
            right = expr.name == "EndsWith"
            tokens = _closed_tokens(needle.value, left, right)
            return _tokens_any(_string_columns(target, ""), " ".join(tokens))
    return None


def _binary(expr: ast.Binary) -> Prune | None:
    op: str = expr.op
    left, right = expr.left, expr.right
    if op in _FLIP:
        number = _constant_number(right)
        subject = left
        if number is None:
            number = _constant_number(left)
            subject, op = right, _FLIP[op]
        if number is not None:
            if isinstance(subject, ast.Property):
                return NumberBound(property_column(subject.name), op, number)
            if isinstance(subject, ast.BuiltIn) and subject.name == "Timestamp":
                return TimeBound(op, number - UNIX_EPOCH_DOTNET_TICKS)
            return None
    if expr.ci:
        return None
    if op == "=":
        text, subject = (right, left) if isinstance(right, ast.String) else (left, right)
        if isinstance(text, ast.String):
            return _tokens_any(_string_columns(subject, text.value), text.value)
        return None
    if op == "in" and isinstance(right, ast.Array) and right.items:
        return _any([_binary(ast.Binary("=", left, item)) for item in right.items])
    if op == "like" and isinstance(right, ast.String):
        tokens = _like_tokens(right.value)
        if tokens is None:
            return None
        return _tokens_any(_string_columns(left, ""), " ".join(tokens))
    return None


# --- deciding ---------------------------------------------------------------------------------


def _possible(op: str, lo: Decimal, hi: Decimal, value: Decimal) -> bool:
    """Whether some v in [lo, hi] has `v op value`."""
    if op == "=":
        return lo <= value <= hi
    if op == "<":
        return lo < value
    if op == "<=":
        return lo <= value
    if op == ">":
        return hi > value
    return hi >= value  # ">="


def _float_decimal(value: float) -> Decimal:
    # The language reads a float through its shortest repr; repr is monotonic, so the
    # block's float min/max bound the values the language sees.
    return (
        Decimal(repr(value))
        if value == value and abs(value) != float("inf")
        else (Decimal("Infinity") if value > 0 else Decimal("-Infinity"))
    )


def number_possible(stats: ColumnStats | None, op: str, value: Decimal) -> bool:
    """Whether a column with these statistics may hold a number `v` with `v op value`."""
    if stats is None:
        return False  # the block has no such column: the property is undefined
    if stats.strings is not None:
        return True  # may hold a BIGINT
    lo_int, hi_int = stats.int_min, stats.int_max
    ints_match = (
        lo_int is not None
        and hi_int is not None
        and _possible(op, Decimal(lo_int), Decimal(hi_int), value)
    )
    if ints_match:
        return True
    if stats.float_min is not None and stats.float_max is not None:
        lo, hi = _float_decimal(stats.float_min), _float_decimal(stats.float_max)
        if _possible(op, lo, hi, value):
            return True
    return False


def may_match(
    prune: Prune | None,
    columns: Mapping[str, ColumnStats] | None,
    probe: Probe | None,
    min_ts: int,
    max_ts: int,
) -> bool:
    """Whether a block may hold an event for which the pruned filter is true.

    `columns` are the block's column statistics and `probe` its bloom probe; both None for
    data without them (the in-memory head), where only the time bounds apply.  A column
    missing from `columns` is absent from every row of the block.
    """
    if prune is None:
        return True
    if isinstance(prune, AllOf):
        return all(may_match(p, columns, probe, min_ts, max_ts) for p in prune.parts)
    if isinstance(prune, AnyOf):
        return any(may_match(p, columns, probe, min_ts, max_ts) for p in prune.parts)
    if isinstance(prune, TimeBound):
        return _possible(prune.op, Decimal(min_ts), Decimal(max_ts), prune.ticks)
    if columns is None:
        return True
    if isinstance(prune, NumberBound):
        return number_possible(columns.get(prune.column), prune.op, prune.value)
    if probe is None:
        return True
    return probe(prune.column, prune.text)
