"""A slow, plain evaluator of filters over one event: the oracle for the query engine.

`evaluate(node, event)` gives the value of an expression for one CLEF-shaped event (as
`seqfast.open(...).events()` returns them); `matches(filter, event)` says whether a filter
selects the event (only when its value is exactly `True`).  Everything here is written for
obviousness, not speed.  Where Seq's behaviour is not known well enough to be sure of the
answer, the evaluator raises `NotImplementedError` (naming the case) instead of guessing, so a
disagreement with it always means something.

Values
------
* numbers are `decimal.Decimal` (Seq's numbers are .NET decimals): literals, event integers and
  floats (a float through its shortest repr, so JSON `0.1` is exactly `0.1`).  Arithmetic runs
  with 28 significant digits, rounding half to even; a result of magnitude 10**29 or more is
  undefined (an approximation of .NET decimal's range).  Non-finite floats are undefined.
* `True`/`False`, `None` (null), `str`, `list`, `dict`; `UNDEFINED` for undefined.
* `@Timestamp` and `@Start` are numbers: 100-ns ticks since 0001-01-01T00:00:00Z, as in Seq;
  durations (`1h30m`) are numbers of ticks, so `@Timestamp - @Start > 5s` works.
* `@Level` is the Seq name of the event's level (`WRN` reads `Warning`) when
  `seqfast.events.levels` knows the spelling, else the text as stored.
* `@Message` is `@m`; without it, `@mt` rendered with the event's properties.  Rendering knows
  `{Name}`, `{@Name}`, `{$Name}`, `{Name:l}` and `{{`/`}}`: strings are quoted (`"x"`) unless
  `:l`, integers, booleans (`True`) and null print as .NET does, and a token naming no property
  stays as written.  Other formats, alignment and other values (floats, arrays, objects) raise
  `NotImplementedError`.
* `@MessageTemplate` is `@mt`; without it, `@m` with its braces doubled.
* `@EventType` is the number given as `@i` (hex text or an integer); without `@i`, the
  Murmur3-32 hash of the message template (`@MessageTemplate`, empty when the event has no
  message), as `seqfast.events.event_type` computes it (agreement with Seq unconfirmed).
* `@Properties` is an object of every property (`@@x` in CLEF is the property `@x`).

Semantics
---------
* A missing property, a member of a non-object, an index out of range, an operation on the
  wrong types (there is no implicit coercion) and an arithmetic error are undefined, and
  undefined propagates through operators and functions unless said otherwise.
* `=` and `<>` compare structurally (arrays by element, objects by members); two defined
  values of different types are not equal (`'1' = 1` is false); `null = null` is true;
  undefined on either side gives undefined.  `ci` folds case (per character, simple
  upper-casing) in string values at any depth (not in member names).
* `<`, `<=`, `>`, `>=` order two numbers or two strings (ordinally, by UTF-16 code unit);
  anything else is undefined.
* `and`/`or` take Kleene's three-valued logic over true/false, any other value counting as
  unknown: `false and x` is false, `true or x` is true, otherwise a non-boolean operand gives
  undefined.  `not` turns true/false around and undefined into true (as Seq documents); of any
  other value it is undefined.  `if c then a else b` takes `a` only when `c` is true.
* `is null` is true for null and for undefined.  `Has(x)` is true when `x` is defined.
* `like`: `%` matches any run of characters, `_` one character, the whole string must match.
  The sources disagree on `?` and on escapes (`%%`), so patterns with `?` or `%%` raise.
* `in`: the right side must be an array; true when an element equals the left side (as `=`).
* `+ - * / % ^` on numbers only (`+` does not join strings: use `Concat`); division by zero
  and the like are undefined.
* Array literals leave out undefined elements, object literals undefined members.
* Wildcards: `[?]` (any) and `[*]` (all) quantify over the elements of an array (the values of
  an object), scoped to the innermost enclosing comparison or `Contains`/`StartsWith`/
  `EndsWith` call; several in one scope nest in source order (an outer path before the ones
  below it).  Any is true when some element makes the scope true; all when every element does
  (so all over an empty collection is true); either is undefined when the target is not a
  collection.  A wildcard outside such a scope raises `NotImplementedError`.
* A text fragment (`"text"`) is true when `@Message` or `@Exception` contains the text, case
  folded; false otherwise.
* Regular expressions (`/re/`, compiled by `seqfast.query.regex`: RE2 reading the .NET
  spellings of named groups and `\\z`): `x = /re/` is true when the whole string matches
  (`<>` the opposite, `ci` ignores case, either side may hold the regex); as the pattern of
  `Contains` (a match anywhere), `StartsWith` (a match at 0), `EndsWith` (a match ending at
  the end), `IndexOf` (where the first match starts, UTF-16 units, -1 when none) and
  `Replace` (every match, the replacement reading .NET's `$1`, `${name}`, `$$`, `$&`).  A
  non-string value gives undefined, as `like` does.  A regex anywhere else, lambdas with
  other than one parameter, and functions other than those in `_FUNCTIONS` raise
  `NotImplementedError`; an invalid regex raises `ValueError`.
* `@Timestamp` and `@Start` read RFC 3339 text with or without a zone (none means UTC); other
  text is undefined.

Functions (an undefined argument gives undefined, except in `Has`, `Coalesce`, `TypeOf`)
----------------------------------------------------------------------------------------
* String functions take strings only (anything else is undefined); positions and lengths
  count UTF-16 code units, as .NET does.  `ci` folds case as `=` does.  `IndexOf` and
  `LastIndexOf` give -1 when not found.  `Replace` with an empty search string is undefined.
* `Length`: of a string or an array.  `ToLower`/`ToUpper`: per character, a character whose
  mapping is not one character stays (`ß`).  `Substring(s, start, len?)`: `start` from 0 to
  the length, `len` at least 0 and cut at the end; other positions are undefined.
* `Concat` joins strings only.  `Coalesce` gives its first argument that is neither null nor
  undefined, else its last argument.  `TypeOf` names `undefined null boolean number string
  array object`.
* `Round(v, places)`: half to even, `places` a whole number 0–28.  `ToNumber`: a number stays;
  text `-?digits[.digits]` is read; text without any digit is undefined; other text (signs,
  blanks, exponents, separators) raises.
* `ToJson`: compact JSON (no blanks), non-ASCII kept, numbers as their decimal text.
  `FromJson`: standard JSON, numbers as decimals; invalid text (and `NaN`) is undefined.
* `Keys`/`Values` of an object, in member order.  `ElementAt(c, k)`: an array element by
  whole-number index, or an object member (with `ci`, the first member whose name matches
  case-insensitively).  `Some`/`Every(c, |x| p)` over an array's elements or an object's
  values, true when `p` is true for some / every one; undefined when `c` is neither.

Dates and times (an instant is a whole number of ticks from 0 to .NET's DateTime.MaxValue,
3155378975999999999; anything else is undefined)
-----------------------------------------------------------------------------------------
* `Now()` is `now_ticks` given to `evaluate` (so answers are reproducible); without it,
  `NotImplementedError`.
* `DateTime(text)`: ISO 8601 / RFC 3339 text, `YYYY-MM-DD` optionally followed by `T` (or
  a blank) and `hh:mm`, `:ss`, a fraction (`.` or `,`; digits past the seventh cut) and a
  zone (`Z` or `+hh:mm`, `+hhmm`, `+hh`; none means UTC), read to ticks; other text and
  other values are undefined.
* An offset argument is a number of hours, a whole number of minutes and at most 14 hours
  either way (as .NET's DateTimeOffset); others give undefined.  The shifted instant must
  stay in range.
* `TimeOfDay(t, offset)`: ticks since midnight at that UTC offset.
* `DatePart(t, part, offset)`: `part` (any case) is `year`, `month`, `day`, `hour`,
  `minute`, `second`, `millisecond` (0-999), `weekday` (0 = Sunday), `dayofyear` (1-366), read
  at the offset; another part is undefined.
* `TotalMilliseconds(d)`: a number of ticks divided by 10,000 (any number, fractions kept).
* `ToIsoString(t, offset?)`: `YYYY-MM-DDThh:mm:ss.fffffffZ` (seven fraction digits); with an
  offset, the local time and `+hh:mm` (`+00:00` for 0).
* `ToEventType(text)`: the Murmur3-32 hash of the UTF-8 text (see `@EventType`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Any, Final

from seqfast.events import levels
from seqfast.events.event_type import template_event_type
from seqfast.query.ast import (
    COMPARISONS,
    Array,
    Binary,
    Boolean,
    BuiltIn,
    Call,
    Conditional,
    Duration,
    Filter,
    Index,
    IsNull,
    Lambda,
    LambdaParameter,
    Logical,
    Member,
    Node,
    Null,
    Number,
    Object,
    Property,
    Regex,
    String,
    TextSearch,
    Unary,
    Wildcard,
    children,
)
from seqfast.query.regex import compile_regex, expand_replacement

__all__ = ["UNDEFINED", "evaluate", "matches"]


class _Undefined:
    """The type of `UNDEFINED`."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        raise TypeError("UNDEFINED has no truth value: compare it with `is`")


UNDEFINED: Final = _Undefined()

_CONTEXT: Final = Context(
    prec=28, rounding=ROUND_HALF_EVEN, Emax=28, traps=[InvalidOperation, DivisionByZero, Overflow]
)
_TICKS_PER_SECOND: Final = 10_000_000
_SCOPE_FUNCTIONS: Final = frozenset(("Contains", "StartsWith", "EndsWith"))


def matches(filter: Filter, event: Mapping[str, Any], *, now_ticks: int | None = None) -> bool:
    """Whether `filter` selects `event`: an empty filter selects everything."""
    if filter.expr is None:
        return True
    return evaluate(filter.expr, event, now_ticks=now_ticks) is True


def evaluate(node: Node, event: Mapping[str, Any], *, now_ticks: int | None = None) -> Any:
    """The value of expression `node` for `event` (see the module documentation).

    A `Filter` evaluates as its expression; an empty one is `True`.  `now_ticks` is what
    `Now()` gives: ticks since 0001-01-01.
    """
    if isinstance(node, Filter):
        return True if node.expr is None else evaluate(node.expr, event, now_ticks=now_ticks)
    return _Evaluator(event, now_ticks).eval(node, _Env())


# --- values -----------------------------------------------------------------------------------


def _from_json(value: Any) -> Any:
    """An event's JSON value in this module's representation."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        d = Decimal(repr(value))
        return d if d.is_finite() else UNDEFINED
    if isinstance(value, Decimal):
        return value if value.is_finite() else UNDEFINED
    if isinstance(value, list | tuple):
        items = [_from_json(v) for v in value]
        return [v for v in items if v is not UNDEFINED]
    if isinstance(value, Mapping):
        members = {str(k): _from_json(v) for k, v in value.items()}
        return {k: v for k, v in members.items() if v is not UNDEFINED}
    raise TypeError(f"not a JSON value: {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, Decimal)


def _fold_char(ch: str) -> str:
    upper = ch.upper()
    return upper if len(upper) == 1 else ch


def _fold(text: str) -> str:
    """Case folding that keeps every character in place (so indices still line up)."""
    return "".join(_fold_char(ch) for ch in text)


def _fold_deep(value: Any) -> Any:
    if isinstance(value, str):
        return _fold(value)
    if isinstance(value, list):
        return [_fold_deep(v) for v in value]
    if isinstance(value, dict):
        return {k: _fold_deep(v) for k, v in value.items()}
    return value


def _utf16(text: str) -> str:
    """`text` with every astral character as its two surrogates: one char per UTF-16 unit."""
    if all(ord(ch) < 0x10000 for ch in text):
        return text
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if code < 0x10000:
            out.append(ch)
        else:
            code -= 0x10000
            out.append(chr(0xD800 + (code >> 10)))
            out.append(chr(0xDC00 + (code & 0x3FF)))
    return "".join(out)


def _from_utf16(units: str) -> str:
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _equal(a: Any, b: Any) -> bool:
    """Structural equality of two defined values; different types are never equal."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return False


def _number(operation: Callable[[], Decimal]) -> Any:
    try:
        result = operation()
    except (ArithmeticError, ValueError):
        return UNDEFINED
    return result if result.is_finite() else UNDEFINED


def _integral(value: Any) -> int | None:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return None


def _ticks(text: Any) -> Any:
    """100-ns ticks since 0001-01-01 of RFC 3339 text, or undefined."""
    if not isinstance(text, str):
        return UNDEFINED
    found = _RFC3339.fullmatch(text)
    if found is None:
        return UNDEFINED
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    try:
        moment = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return UNDEFINED
    offset = 0
    if zone is not None and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        minutes = zone[3:].lstrip(":")
        offset = sign * (int(zone[1:3]) * 3600 + int(minutes or "0") * 60)
    seconds = (moment - dt.datetime(1, 1, 1)) // dt.timedelta(seconds=1) - offset
    frac = int((fraction or "").ljust(7, "0")[:7])
    return Decimal(seconds * _TICKS_PER_SECOND + frac)


_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)


def _type_name(value: Any) -> str:
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _dumps(value: Any) -> str:
    """Compact JSON text of a value; numbers are written as their decimal text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    members = (json.dumps(k, ensure_ascii=False) + ":" + _dumps(v) for k, v in value.items())
    return "{" + ",".join(members) + "}"


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


# --- message rendering ------------------------------------------------------------------------

_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([@$]?)([A-Za-z0-9_]+)(,[^{}:]*)?(:[^{}]*)?\}")


def _render_value(value: Any, literal: bool, token: str) -> str:
    if isinstance(value, str):
        return value if literal else '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    raise NotImplementedError(f"rendering {token} holding {type(value).__name__}")


def _render(template: str, event: Mapping[str, Any]) -> str:
    def token(found: re.Match[str]) -> str:
        text = found.group(0)
        if text == "{{":
            return "{"
        if text == "}}":
            return "}"
        prefix, name, alignment, fmt = found.groups()
        del prefix
        if name not in event or name.startswith("@"):
            return text
        if alignment is not None or fmt not in (None, ":l"):
            raise NotImplementedError(f"rendering {text} (alignment or format)")
        return _render_value(event[name], fmt == ":l", text)

    return _TOKEN.sub(token, template)


# --- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Env:
    params: Mapping[str, Any] = field(default_factory=dict)
    bound: Mapping[int, Any] = field(default_factory=dict)  # id(Wildcard) -> element

    def with_param(self, name: str, value: Any) -> _Env:
        return _Env({**self.params, name: value}, self.bound)

    def with_wildcard(self, node: Wildcard, value: Any) -> _Env:
        return _Env(self.params, {**self.bound, id(node): value})


def _is_scope(node: Node) -> bool:
    return (isinstance(node, Binary) and node.op in COMPARISONS) or (
        isinstance(node, Call) and node.name in _SCOPE_FUNCTIONS
    )


def _free_wildcards(scope: Node) -> list[Wildcard]:
    """The wildcards a scope quantifies, each after those in its own target."""
    found: list[Wildcard] = []

    def walk(node: Node) -> None:
        if isinstance(node, Lambda) or (node is not scope and _is_scope(node)):
            return
        if isinstance(node, Wildcard):
            walk(node.target)
            found.append(node)
            return
        for child in children(node):
            walk(child)

    walk(scope)
    return found


def _elements(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return None


class _Evaluator:
    def __init__(self, event: Mapping[str, Any], now_ticks: int | None = None) -> None:
        self.event = event
        self.now_ticks = now_ticks

    def eval(self, node: Node, env: _Env) -> Any:
        if _is_scope(node):
            return self.quantified(node, _free_wildcards(node), env)
        return self.plain(node, env)

    def quantified(self, node: Node, wildcards: Sequence[Wildcard], env: _Env) -> Any:
        if not wildcards:
            return self.plain(node, env)
        first, rest = wildcards[0], wildcards[1:]
        items = _elements(self.eval(first.target, env))
        if items is None:
            return UNDEFINED
        results = (self.quantified(node, rest, env.with_wildcard(first, v)) for v in items)
        if first.quantifier == "any":
            return any(r is True for r in results)
        return all(r is True for r in results)

    def plain(self, node: Node, env: _Env) -> Any:
        if isinstance(node, Number):
            return node.value
        if isinstance(node, String):
            return node.value
        if isinstance(node, Boolean):
            return node.value
        if isinstance(node, Null):
            return None
        if isinstance(node, Duration):
            return node.ticks
        if isinstance(node, Array):
            items = [self.eval(item, env) for item in node.items]
            return [v for v in items if v is not UNDEFINED]
        if isinstance(node, Object):
            members = {name: self.eval(value, env) for name, value in node.members}
            return {k: v for k, v in members.items() if v is not UNDEFINED}
        if isinstance(node, Property):
            key = "@" + node.name if node.name.startswith("@") else node.name
            return _from_json(self.event[key]) if key in self.event else UNDEFINED
        if isinstance(node, BuiltIn):
            return self.built_in(node.name)
        if isinstance(node, LambdaParameter):
            if node.name not in env.params:
                raise NotImplementedError(f"lambda parameter {node.name} outside its lambda")
            return env.params[node.name]
        if isinstance(node, Member):
            target = self.eval(node.target, env)
            return target.get(node.name, UNDEFINED) if isinstance(target, dict) else UNDEFINED
        if isinstance(node, Index):
            return self.element_at(self.eval(node.target, env), self.eval(node.index, env), False)
        if isinstance(node, Wildcard):
            if id(node) not in env.bound:
                raise NotImplementedError("a wildcard outside a comparison")
            return env.bound[id(node)]
        if isinstance(node, TextSearch):
            return self.text_search(node.text)
        if isinstance(node, Unary):
            return self.unary(node, env)
        if isinstance(node, Binary):
            return self.binary(node, env)
        if isinstance(node, Logical):
            return self.logical(node, env)
        if isinstance(node, IsNull):
            value = self.eval(node.operand, env)
            return (value is None or value is UNDEFINED) != node.negated
        if isinstance(node, Conditional):
            chosen = node.consequent if self.eval(node.condition, env) is True else node.alternative
            return self.eval(chosen, env)
        if isinstance(node, Call):
            return self.call(node, env)
        if isinstance(node, Regex):
            raise NotImplementedError("a regular expression outside = / <> and string functions")
        raise NotImplementedError(f"evaluating {type(node).__name__}")

    # -- built-ins -----------------------------------------------------------------------------

    def raw(self, key: str) -> Any:
        return self.event.get(key, UNDEFINED)

    def text(self, key: str) -> Any:
        value = self.raw(key)
        return value if isinstance(value, str) else UNDEFINED

    def built_in(self, name: str) -> Any:
        if name == "Timestamp":
            return _ticks(self.raw("@t"))
        if name == "Start":
            return _ticks(self.raw("@st"))
        if name == "Elapsed":
            end, start = _ticks(self.raw("@t")), _ticks(self.raw("@st"))
            return UNDEFINED if UNDEFINED in (end, start) else end - start
        if name == "Level":
            level = self.raw("@l")
            if level is UNDEFINED:
                return levels.DEFAULT_LEVEL
            if isinstance(level, str):
                return levels.canonical(level) or level
            return _from_json(level)
        if name == "Message":
            return self.message()
        if name == "MessageTemplate":
            template = self.text("@mt")
            if template is not UNDEFINED:
                return template
            message = self.text("@m")
            if message is UNDEFINED:
                return UNDEFINED
            return message.replace("{", "{{").replace("}", "}}")
        if name == "EventType":
            return self.event_type()
        if name == "Properties":
            return {
                (k[1:] if k.startswith("@@") else k): _from_json(v)
                for k, v in self.event.items()
                if not k.startswith("@") or k.startswith("@@")
            }
        simple = {
            "Exception": "@x",
            "Id": "@id",
            "TraceId": "@tr",
            "SpanId": "@sp",
            "ParentId": "@ps",
            "SpanKind": "@sk",
            "Resource": "@ra",
            "Scope": "@sa",
        }
        if name in simple:
            value = self.raw(simple[name])
            return UNDEFINED if value is UNDEFINED else _from_json(value)
        raise NotImplementedError(f"@{name}")

    def message(self) -> Any:
        message = self.text("@m")
        if message is not UNDEFINED:
            return message
        template = self.text("@mt")
        return UNDEFINED if template is UNDEFINED else _render(template, self.event)

    def event_type(self) -> Any:
        value = self.raw("@i")
        if value is UNDEFINED:
            template = self.built_in("MessageTemplate")
            return Decimal(template_event_type("" if template is UNDEFINED else template))
        if isinstance(value, int) and not isinstance(value, bool):
            return Decimal(value)
        if isinstance(value, str) and re.fullmatch(r"[0-9A-Fa-f]{1,8}", value):
            return Decimal(int(value, 16))
        raise NotImplementedError(f"@EventType of an event with @i = {value!r}")

    def text_search(self, text: str) -> bool:
        needle = _fold(text)
        for haystack in (self.message(), self.text("@x")):
            if isinstance(haystack, str) and needle in _fold(haystack):
                return True
        return False

    # -- operators -----------------------------------------------------------------------------

    def unary(self, node: Unary, env: _Env) -> Any:
        value = self.eval(node.operand, env)
        if node.op == "not":
            if value is UNDEFINED:
                return True
            return (not value) if isinstance(value, bool) else UNDEFINED
        if _is_number(value):
            return _number(lambda: _CONTEXT.minus(value))
        return UNDEFINED

    def logical(self, node: Logical, env: _Env) -> Any:
        values = [self.eval(operand, env) for operand in node.operands]
        decisive = node.op == "or"  # `true` decides `or`, `false` decides `and`
        if any(v is decisive for v in values):
            return decisive
        if all(v is (not decisive) for v in values):
            return not decisive
        return UNDEFINED

    def binary(self, node: Binary, env: _Env) -> Any:
        if node.op in ("=", "<>") and isinstance(node.right, Regex):
            return self.regex_equals(node, node.left, node.right, env)
        if node.op in ("=", "<>") and isinstance(node.left, Regex):
            return self.regex_equals(node, node.right, node.left, env)
        left = self.eval(node.left, env)
        right = self.eval(node.right, env)
        if left is UNDEFINED or right is UNDEFINED:
            return UNDEFINED
        op = node.op
        if op in ("=", "<>"):
            if node.ci:
                left, right = _fold_deep(left), _fold_deep(right)
            return _equal(left, right) == (op == "=")
        if op in ("in", "not in"):
            if not isinstance(right, list):
                return UNDEFINED
            if node.ci:
                left, right = _fold_deep(left), _fold_deep(right)
            return any(_equal(left, item) for item in right) == (op == "in")
        if op in ("like", "not like"):
            if not isinstance(left, str) or not isinstance(right, str):
                return UNDEFINED
            if node.ci:
                left, right = _fold(left), _fold(right)
            return _like(left, right) == (op == "like")
        if op in ("<", "<=", ">", ">="):
            return _order(op, left, right)
        return _arithmetic(op, left, right)

    def regex_equals(self, node: Binary, operand: Node, regex: Regex, env: _Env) -> Any:
        value = self.eval(operand, env)
        if not isinstance(value, str):
            return UNDEFINED
        matched = compile_regex(regex.pattern, node.ci).fullmatch(value) is not None
        return matched == (node.op == "=")

    # -- functions -----------------------------------------------------------------------------

    def call(self, node: Call, env: _Env) -> Any:
        name = node.name
        if name in ("Some", "Every"):
            return self.quantifier(node, env)
        if name == "Now":
            if self.now_ticks is None:
                raise NotImplementedError("Now() without now_ticks")
            return Decimal(self.now_ticks)
        if name in _REGEX_FUNCTIONS and len(node.args) >= 2 and isinstance(node.args[1], Regex):
            return self.regex_call(node, env)
        implementation = _FUNCTIONS.get(name)
        if implementation is None:
            raise NotImplementedError(name)
        args = [self.eval(arg, env) for arg in node.args]
        if name == "Has":
            return args[0] is not UNDEFINED
        if name == "Coalesce":
            for value in args[:-1]:
                if value is not None and value is not UNDEFINED:
                    return value
            return args[-1]
        if name == "TypeOf":
            return _type_name(args[0])
        if any(arg is UNDEFINED for arg in args):
            return UNDEFINED
        if name == "ElementAt":
            return self.element_at(args[0], args[1], node.ci)
        return implementation(args, node.ci)

    def regex_call(self, node: Call, env: _Env) -> Any:
        regex = node.args[1]
        assert isinstance(regex, Regex)
        others = [self.eval(arg, env) for arg in node.args if arg is not regex]
        if not all(isinstance(v, str) for v in others):
            return UNDEFINED
        text = others[0]
        pattern = compile_regex(regex.pattern, node.ci)
        if node.name == "Contains":
            return pattern.search(text) is not None
        if node.name == "StartsWith":
            return pattern.match(text) is not None
        if node.name == "EndsWith":
            return compile_regex(f"(?:{regex.pattern})\\z", node.ci).search(text) is not None
        if node.name == "IndexOf":
            found = pattern.search(text)
            return Decimal(-1 if found is None else len(_utf16(text[: found.start()])))
        replacement = others[1]
        return pattern.sub(lambda m: expand_replacement(m, replacement), text)

    def quantifier(self, node: Call, env: _Env) -> Any:
        predicate = node.args[1]
        if not isinstance(predicate, Lambda) or len(predicate.params) != 1:
            raise NotImplementedError(f"{node.name} without a one-parameter lambda")
        items = _elements(self.eval(node.args[0], env))
        if items is None:
            return UNDEFINED
        (param,) = predicate.params
        results = (self.eval(predicate.body, env.with_param(param, item)) for item in items)
        if node.name == "Some":
            return any(r is True for r in results)
        return all(r is True for r in results)

    @staticmethod
    def element_at(target: Any, key: Any, ci: bool) -> Any:
        if isinstance(target, list):
            index = _integral(key)
            if index is None or not 0 <= index < len(target):
                return UNDEFINED
            return target[index]
        if isinstance(target, dict) and isinstance(key, str):
            if key in target:
                return target[key]
            if ci:
                folded = _fold(key)
                for name, value in target.items():
                    if _fold(name) == folded:
                        return value
        return UNDEFINED


def _like(text: str, pattern: str) -> bool:
    if "?" in pattern or "%%" in pattern:
        raise NotImplementedError(f"like pattern {pattern!r} ('?' and '%%' are ambiguous)")
    parts = ("." if ch == "_" else ".*" if ch == "%" else re.escape(ch) for ch in pattern)
    return re.fullmatch("".join(parts), text, re.DOTALL) is not None


def _order(op: str, left: Any, right: Any) -> Any:
    if _is_number(left) and _is_number(right):
        a, b = left, right
    elif isinstance(left, str) and isinstance(right, str):
        a, b = _utf16(left), _utf16(right)
    else:
        return UNDEFINED
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _arithmetic(op: str, left: Any, right: Any) -> Any:
    if not (_is_number(left) and _is_number(right)):
        return UNDEFINED
    a: Decimal = left
    b: Decimal = right
    operations: dict[str, Callable[[], Decimal]] = {
        "+": lambda: _CONTEXT.add(a, b),
        "-": lambda: _CONTEXT.subtract(a, b),
        "*": lambda: _CONTEXT.multiply(a, b),
        "/": lambda: _CONTEXT.divide(a, b),
        "%": lambda: _CONTEXT.remainder(a, b),
        "^": lambda: _CONTEXT.power(a, b),
    }
    return _number(operations[op])


# Function implementations: the arguments are all defined (undefined gives undefined first).


def _strings(args: Sequence[Any], ci: bool) -> list[str] | None:
    if not all(isinstance(a, str) for a in args):
        return None
    return [_utf16(_fold(a) if ci else a) for a in args]


def _contains(args: Sequence[Any], ci: bool) -> Any:
    s = _strings(args, ci)
    return UNDEFINED if s is None else s[1] in s[0]


def _starts_with(args: Sequence[Any], ci: bool) -> Any:
    s = _strings(args, ci)
    return UNDEFINED if s is None else s[0].startswith(s[1])


def _ends_with(args: Sequence[Any], ci: bool) -> Any:
    s = _strings(args, ci)
    return UNDEFINED if s is None else s[0].endswith(s[1])


def _index_of(args: Sequence[Any], ci: bool) -> Any:
    s = _strings(args, ci)
    return UNDEFINED if s is None else Decimal(s[0].find(s[1]))


def _last_index_of(args: Sequence[Any], ci: bool) -> Any:
    s = _strings(args, ci)
    return UNDEFINED if s is None else Decimal(s[0].rfind(s[1]))


def _length(args: Sequence[Any], ci: bool) -> Any:
    (value,) = args
    if isinstance(value, str):
        return Decimal(len(_utf16(value)))
    if isinstance(value, list):
        return Decimal(len(value))
    return UNDEFINED


def _case(convert: Callable[[str], str]) -> Callable[[Sequence[Any], bool], Any]:
    def function(args: Sequence[Any], ci: bool) -> Any:
        (value,) = args
        if not isinstance(value, str):
            return UNDEFINED
        return "".join(c if len(convert(c)) != 1 else convert(c) for c in value)

    return function


def _substring(args: Sequence[Any], ci: bool) -> Any:
    text = args[0]
    start = _integral(args[1])
    if not isinstance(text, str) or start is None:
        return UNDEFINED
    units = _utf16(text)
    if not 0 <= start <= len(units):
        return UNDEFINED
    if len(args) == 2:
        return _from_utf16(units[start:])
    length = _integral(args[2])
    if length is None or length < 0:
        return UNDEFINED
    return _from_utf16(units[start : start + length])


def _concat(args: Sequence[Any], ci: bool) -> Any:
    return "".join(args) if all(isinstance(a, str) for a in args) else UNDEFINED


def _replace(args: Sequence[Any], ci: bool) -> Any:
    text, old, new = args
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)) or not old:
        return UNDEFINED
    if not ci:
        return text.replace(old, new)
    folded, target = _fold(text), _fold(old)
    out: list[str] = []
    position = 0
    while (found := folded.find(target, position)) >= 0:
        out.append(text[position:found])
        out.append(new)
        position = found + len(old)
    out.append(text[position:])
    return "".join(out)


def _round(args: Sequence[Any], ci: bool) -> Any:
    value, places = args[0], _integral(args[1])
    if not _is_number(value) or places is None or not 0 <= places <= 28:
        return UNDEFINED
    number: Decimal = value
    return _number(lambda: number.quantize(Decimal(1).scaleb(-places), context=_CONTEXT))


_PLAIN_NUMBER: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _to_number(args: Sequence[Any], ci: bool) -> Any:
    (value,) = args
    if _is_number(value):
        return value
    if not isinstance(value, str):
        return UNDEFINED
    if _PLAIN_NUMBER.fullmatch(value):
        return Decimal(value)
    if not any(ch.isdigit() for ch in value):
        return UNDEFINED
    raise NotImplementedError(f"ToNumber({value!r})")


def _to_json_function(args: Sequence[Any], ci: bool) -> Any:
    return _dumps(args[0])


def _from_json_function(args: Sequence[Any], ci: bool) -> Any:
    (value,) = args
    if not isinstance(value, str):
        return UNDEFINED
    try:
        parsed = json.loads(
            value, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant
        )
    except ValueError:
        return UNDEFINED
    return _from_json(parsed)


def _keys(args: Sequence[Any], ci: bool) -> Any:
    (value,) = args
    return list(value) if isinstance(value, dict) else UNDEFINED


def _values(args: Sequence[Any], ci: bool) -> Any:
    (value,) = args
    return list(value.values()) if isinstance(value, dict) else UNDEFINED


# --- dates and times --------------------------------------------------------------------------

_MAX_TICKS: Final = 3_155_378_975_999_999_999  # .NET DateTime.MaxValue
_TICKS_PER_HOUR: Final = 3600 * _TICKS_PER_SECOND
_TICKS_PER_DAY: Final = 24 * _TICKS_PER_HOUR
_ISO_DATE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?)?"
)


def _instant(value: Any) -> int | None:
    ticks = _integral(value)
    return ticks if ticks is not None and 0 <= ticks <= _MAX_TICKS else None


def _offset(value: Any) -> int | None:
    """Ticks of an offset in hours: whole minutes, at most 14 hours either way."""
    if not _is_number(value) or abs(value) > 14:
        return None
    minutes = value * 60
    if minutes != minutes.to_integral_value():
        return None
    return int(minutes) * 60 * _TICKS_PER_SECOND


def _local(args: Sequence[Any], offset_at: int) -> tuple[dt.datetime, int, int] | None:
    """(local time to the microsecond, its ticks, the offset's ticks) of an instant argument
    at the offset argument (UTC when there is none: `ToIsoString(t)`)."""
    instant = _instant(args[0])
    offset = _offset(args[offset_at]) if len(args) > offset_at else 0
    if instant is None or offset is None or not 0 <= instant + offset <= _MAX_TICKS:
        return None
    local = instant + offset
    return dt.datetime(1, 1, 1) + dt.timedelta(microseconds=local // 10), local, offset


def _date_time(args: Sequence[Any], ci: bool) -> Any:
    (text,) = args
    found = _ISO_DATE.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        return UNDEFINED
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    try:
        moment = dt.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return UNDEFINED
    offset = 0
    if zone is not None and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 60 + int(zone[3:].lstrip(":") or "0")) * 60
    seconds = (moment - dt.datetime(1, 1, 1)) // dt.timedelta(seconds=1) - offset
    ticks = seconds * _TICKS_PER_SECOND + int((fraction or "").ljust(7, "0")[:7])
    return Decimal(ticks) if 0 <= ticks <= _MAX_TICKS else UNDEFINED


def _time_of_day(args: Sequence[Any], ci: bool) -> Any:
    local = _local(args, 1)
    return UNDEFINED if local is None else Decimal(local[1] % _TICKS_PER_DAY)


def _date_part(args: Sequence[Any], ci: bool) -> Any:
    local = _local(args, 2)
    part = args[1]
    if local is None or not isinstance(part, str):
        return UNDEFINED
    moment, ticks, _ = local
    parts = {
        "year": moment.year,
        "month": moment.month,
        "day": moment.day,
        "hour": moment.hour,
        "minute": moment.minute,
        "second": moment.second,
        "millisecond": ticks % _TICKS_PER_SECOND // 10_000,
        "weekday": moment.isoweekday() % 7,
        "dayofyear": moment.timetuple().tm_yday,
    }
    found = parts.get(part.lower())
    return UNDEFINED if found is None else Decimal(found)


def _total_milliseconds(args: Sequence[Any], ci: bool) -> Any:
    (value,) = args
    if not _is_number(value):
        return UNDEFINED
    number: Decimal = value
    return _number(lambda: _CONTEXT.divide(number, Decimal(10_000)))


def _to_iso_string(args: Sequence[Any], ci: bool) -> Any:
    local = _local(args, 1)
    if local is None:
        return UNDEFINED
    moment, ticks, offset = local
    text = moment.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0")
    text += f".{ticks % _TICKS_PER_SECOND:07d}"
    if len(args) == 1:
        return text + "Z"
    minutes = abs(offset) // (60 * _TICKS_PER_SECOND)
    return text + f"{'-' if offset < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"


def _to_event_type(args: Sequence[Any], ci: bool) -> Any:
    (text,) = args
    return Decimal(template_event_type(text)) if isinstance(text, str) else UNDEFINED


def _handled_in_call(args: Sequence[Any], ci: bool) -> Any:
    raise AssertionError("handled in _Evaluator.call")


_FUNCTIONS: Final[dict[str, Callable[[Sequence[Any], bool], Any]]] = {
    "Has": _handled_in_call,
    "Coalesce": _handled_in_call,
    "TypeOf": _handled_in_call,
    "ElementAt": _handled_in_call,
    "Contains": _contains,
    "StartsWith": _starts_with,
    "EndsWith": _ends_with,
    "IndexOf": _index_of,
    "LastIndexOf": _last_index_of,
    "Length": _length,
    "ToLower": _case(str.lower),
    "ToUpper": _case(str.upper),
    "Substring": _substring,
    "Concat": _concat,
    "Replace": _replace,
    "Round": _round,
    "ToNumber": _to_number,
    "ToJson": _to_json_function,
    "FromJson": _from_json_function,
    "Keys": _keys,
    "Values": _values,
    "Now": _handled_in_call,
    "DateTime": _date_time,
    "TimeOfDay": _time_of_day,
    "DatePart": _date_part,
    "TotalMilliseconds": _total_milliseconds,
    "ToIsoString": _to_iso_string,
    "ToEventType": _to_event_type,
}
_REGEX_FUNCTIONS: Final = frozenset(("Contains", "StartsWith", "EndsWith", "IndexOf", "Replace"))
