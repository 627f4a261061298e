"""The scalar functions of Seq's language over `Values` (`Contains`, `Substring`, ...).

Each function takes its evaluated arguments and the call's `ci` flag.  An undefined argument
gives undefined (except in `Has`, `Coalesce` and `TypeOf`), and a function applied to the
wrong types is undefined, as in `seqfast.testing.reference_eval`.  The common string
predicates with a constant argument run in native kernels (`vector_strings`); functions of
one varying string argument run once per distinct value when the values carry a
dictionary; the rest run per row.  Date and time functions are in `vector_dates`;
`REGEX_FUNCTIONS` and `regex_equals` take a regular-expression literal (`/re/`) in place of a
string pattern (see `seqfast.query.regex`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Final

import numpy as np

from seqfast.query import vector_dates, vector_strings
from seqfast.query.regex import compile_regex, expand_replacement
from seqfast.query.values import (
    K_ARRAY,
    K_FALSE,
    K_NULL,
    K_NUMBER,
    K_OBJECT,
    K_STRING,
    K_UNDEFINED,
    UNDEFINED,
    QueryError,
    Values,
    fold,
)

Function = Callable[[list[Values], bool], Values]

_CONTEXT: Final = Context(prec=28, rounding=ROUND_HALF_EVEN, Emax=28)


def _utf16(text: str) -> str:
    """`text` with each astral character as two surrogates: one char per UTF-16 unit."""
    if all(ord(ch) < 0x10000 for ch in text):
        return text
    units = text.encode("utf-16-le", "surrogatepass")
    return "".join(chr(int.from_bytes(units[i : i + 2], "little")) for i in range(0, len(units), 2))


def _from_utf16(units: str) -> str:
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _integral(value: Any) -> int | None:
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return None


def _per_row(args: Sequence[Values], fn: Callable[..., Any], *, strict: bool = True) -> Values:
    """Apply `fn` to each row's reference-shaped arguments; with `strict`, a row with an
    undefined argument is undefined without calling `fn`.  One argument with a dictionary
    and constant others: `fn` runs once per distinct string."""
    n = args[0].n if args else 0
    varying = [i for i, a in enumerate(args) if not a.is_constant]
    if len(varying) == 1 and args[varying[0]].has_dictionary():
        return _per_distinct(args, varying[0], fn, strict)
    columns = [a.to_python() for a in args]
    out: list[Any] = []
    for i in range(n):
        row = [c[i] for c in columns]
        if strict and any(v is UNDEFINED for v in row):
            out.append(UNDEFINED)
        else:
            out.append(fn(*row))
    return Values.from_python(out)


def _per_distinct(
    args: Sequence[Values], which: int, fn: Callable[..., Any], strict: bool
) -> Values:
    source = args[which]
    found = source.string_dictionary()
    assert found is not None
    codes, distinct = found
    constants = [a.scalar for a in args]
    is_string = source.kind == K_STRING
    # Only the distinct strings that string rows use (a column's dictionary also holds the
    # text of its JSON and big-integer cells).
    used = np.zeros(len(distinct), dtype=np.bool_)
    used[codes[is_string]] = True
    results: list[Any] = [UNDEFINED] * len(distinct)
    for j in np.flatnonzero(used).tolist():
        row = list(constants)
        row[which] = distinct[j]
        if not (strict and any(v is UNDEFINED for v in row)):
            results[j] = fn(*row)
    per_string = Values.from_python(results)
    mapped = per_string.take(np.where(is_string, codes, 0)) if distinct else None
    # Rows that are not strings: the function of their own value, computed per row.
    others = np.flatnonzero(~is_string)
    other_values: list[Any] = []
    if others.size:
        columns = [a.to_python(others) for a in args]
        for i in range(int(others.size)):
            row = [c[i] for c in columns]
            if strict and any(v is UNDEFINED for v in row):
                other_values.append(UNDEFINED)
            else:
                other_values.append(fn(*row))
    if mapped is None:
        return Values.from_python(other_values)
    if not others.size:
        return mapped
    # Merge: strings from the dictionary, the rest from the per-row results.
    out = mapped.to_python()
    for pos, value in zip(others.tolist(), other_values, strict=True):
        out[pos] = value
    return Values.from_python(out)


# --- functions --------------------------------------------------------------------------------


def _has(args: list[Values], ci: bool) -> Values:
    from seqfast.query.vector import booleans

    return booleans(args[0].defined_mask())


def _coalesce(args: list[Values], ci: bool) -> Values:
    from seqfast.query.vector import select

    result = args[-1]
    for value in reversed(args[:-1]):
        chosen = (value.kind != K_NULL) & (value.kind != K_UNDEFINED)
        result = select(chosen, value, result)
    return result


_TYPE_NAMES: Final = [
    "undefined",
    "null",
    "boolean",
    "boolean",
    "number",
    "string",
    "array",
    "object",
]


def _type_of(args: list[Values], ci: bool) -> Values:
    kind = args[0].kind
    return Values(
        np.full(kind.shape[0], K_STRING, dtype=np.uint8),
        dictionary=(kind.astype(np.int64), list(_TYPE_NAMES)),
    )


def _string_test(mode: int) -> Function:
    def function(args: list[Values], ci: bool) -> Values:
        from seqfast.query.vector import booleans

        text, needle = args
        both = (text.kind == K_STRING) & (needle.kind == K_STRING)
        if needle.is_constant and isinstance(needle.scalar, str):
            found = vector_strings.match(text, needle.scalar, mode, ci, both)
        else:
            found = np.zeros(text.n, dtype=np.bool_)
            rows = np.flatnonzero(both)
            for row, t, s in zip(
                rows.tolist(), text.strings_at(rows), needle.strings_at(rows), strict=True
            ):
                if ci:
                    t, s = fold(t), fold(s)
                found[row] = (
                    s in t
                    if mode == vector_strings.MODE_CONTAINS
                    else t.startswith(s)
                    if mode == vector_strings.MODE_STARTS
                    else t.endswith(s)
                )
        return booleans(found, ~both)

    return function


def _strings(values: Sequence[Any], ci: bool) -> list[str] | None:
    if not all(isinstance(v, str) for v in values):
        return None
    return [_utf16(fold(v) if ci else v) for v in values]


def _index_of(last: bool) -> Function:
    def function(args: list[Values], ci: bool) -> Values:
        def one(text: Any, needle: Any) -> Any:
            s = _strings((text, needle), ci)
            if s is None:
                return UNDEFINED
            return Decimal(s[0].rfind(s[1]) if last else s[0].find(s[1]))

        return _per_row(args, one)

    return function


def _length(args: list[Values], ci: bool) -> Values:
    value = args[0]
    kind = value.kind
    is_string = kind == K_STRING
    lengths = np.zeros(value.n, dtype=np.int64)
    if is_string.any():
        lengths = np.where(is_string, vector_strings.utf16_lengths(value), 0)
    arrays = np.flatnonzero(kind == K_ARRAY)
    if arrays.size:
        objects = value.objects()
        for row in arrays.tolist():
            lengths[row] = len(objects[row])
    defined = is_string | (kind == K_ARRAY)
    out_kind = np.where(defined, K_NUMBER, K_UNDEFINED).astype(np.uint8)
    return Values(out_kind, lengths.astype(np.float64), exact=np.where(defined, lengths, 0))


def _case(convert: Callable[[str], str]) -> Function:
    def one(value: Any) -> Any:
        if not isinstance(value, str):
            return UNDEFINED
        if value.isascii():
            return convert(value)
        return "".join(c if len(convert(c)) != 1 else convert(c) for c in value)

    def function(args: list[Values], ci: bool) -> Values:
        return _per_row(args, one)

    return function


_NO_LENGTH: Final = object()


def _substring(args: list[Values], ci: bool) -> Values:
    def one(text: Any, start_value: Any, length_value: Any = _NO_LENGTH) -> Any:
        start = _integral(start_value)
        if not isinstance(text, str) or start is None:
            return UNDEFINED
        units = _utf16(text)
        if not 0 <= start <= len(units):
            return UNDEFINED
        if length_value is _NO_LENGTH:
            return _from_utf16(units[start:])
        length = _integral(length_value)
        if length is None or length < 0:
            return UNDEFINED
        return _from_utf16(units[start : start + length])

    return _per_row(args, one)


def _concat(args: list[Values], ci: bool) -> Values:
    def one(*values: Any) -> Any:
        return "".join(values) if all(isinstance(v, str) for v in values) else UNDEFINED

    return _per_row(args, one)


def _replace(args: list[Values], ci: bool) -> Values:
    def one(text: Any, old: Any, new: Any) -> Any:
        if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)) or not old:
            return UNDEFINED
        if not ci:
            return text.replace(old, new)
        folded, target = fold(text), fold(old)
        out: list[str] = []
        position = 0
        while (found := folded.find(target, position)) >= 0:
            out.append(text[position:found])
            out.append(new)
            position = found + len(old)
        out.append(text[position:])
        return "".join(out)

    return _per_row(args, one)


def _round(args: list[Values], ci: bool) -> Values:
    def one(value: Any, places_value: Any) -> Any:
        places = _integral(places_value)
        if not isinstance(value, Decimal) or places is None or not 0 <= places <= 28:
            return UNDEFINED
        try:
            result = value.quantize(Decimal(1).scaleb(-places), context=_CONTEXT)
        except ArithmeticError:
            return UNDEFINED
        return result if result.is_finite() else UNDEFINED

    return _per_row(args, one)


_PLAIN_NUMBER: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _to_number(args: list[Values], ci: bool) -> Values:
    def one(value: Any) -> Any:
        if isinstance(value, Decimal):
            return value
        if not isinstance(value, str):
            return UNDEFINED
        if _PLAIN_NUMBER.fullmatch(value):
            return Decimal(value)
        if not any(ch.isdigit() for ch in value):
            return UNDEFINED
        raise QueryError(
            f"ToNumber({value!r}): text with signs, blanks, exponents or separators has no "
            "agreed number"
        )

    return _per_row(args, one)


def dumps(value: Any) -> str:
    """Compact JSON text of a value; numbers as their decimal text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    members = (json.dumps(k, ensure_ascii=False) + ":" + dumps(v) for k, v in value.items())
    return "{" + ",".join(members) + "}"


def _to_json(args: list[Values], ci: bool) -> Values:
    return _per_row(args, dumps)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _from_json_function(args: list[Values], ci: bool) -> Values:
    from seqfast.query.values import from_json

    def one(value: Any) -> Any:
        if not isinstance(value, str):
            return UNDEFINED
        try:
            parsed = json.loads(
                value, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant
            )
        except (ValueError, RecursionError):
            return UNDEFINED
        return from_json(parsed)

    return _per_row(args, one)


def _keys(args: list[Values], ci: bool) -> Values:
    return _per_row(args, lambda v: list(v) if isinstance(v, dict) else UNDEFINED)


def _values(args: list[Values], ci: bool) -> Values:
    return _per_row(args, lambda v: list(v.values()) if isinstance(v, dict) else UNDEFINED)


def element_at_value(target: Any, key: Any, ci: bool) -> Any:
    if isinstance(target, list):
        index = _integral(key)
        if index is None or not 0 <= index < len(target):
            return UNDEFINED
        return target[index]
    if isinstance(target, dict) and isinstance(key, str):
        if key in target:
            return target[key]
        if ci:
            folded = fold(key)
            for name, value in target.items():
                if fold(name) == folded:
                    return value
    return UNDEFINED


def element_at(target: Values, key: Values, ci: bool) -> Values:
    """`ElementAt(target, key)` and `target[key]`: undefined unless target is a collection."""
    collections = (target.kind >= K_ARRAY) & (key.kind != K_UNDEFINED)
    out: list[Any] = [UNDEFINED] * target.n
    rows = np.flatnonzero(collections)
    if rows.size:
        objects = target.objects()
        keys = key.to_python(rows)
        for row, k in zip(rows.tolist(), keys, strict=True):
            out[row] = element_at_value(objects[row], k, ci)
    return Values.from_python(out)


def _element_at(args: list[Values], ci: bool) -> Values:
    return element_at(args[0], args[1], ci)


def member(target: Values, name: str) -> Values:
    """`target.name`: the member of an object, undefined for anything else."""
    rows = np.flatnonzero(target.kind == K_OBJECT)
    out: list[Any] = [UNDEFINED] * target.n
    if rows.size:
        objects = target.objects()
        for row in rows.tolist():
            out[row] = objects[row].get(name, UNDEFINED)
    return Values.from_python(out)


def _now(args: list[Values], ci: bool) -> Values:
    raise AssertionError("Now() is evaluated with the query's clock by the evaluator")


def _date_time(args: list[Values], ci: bool) -> Values:
    return _per_row(args, vector_dates.parse_date_time)


def _time_of_day(args: list[Values], ci: bool) -> Values:
    return _per_row(args, vector_dates.time_of_day)


def _date_part(args: list[Values], ci: bool) -> Values:
    return _per_row(args, vector_dates.date_part)


def _to_iso_string(args: list[Values], ci: bool) -> Values:
    return _per_row(args, vector_dates.to_iso_string)


def _total_milliseconds(args: list[Values], ci: bool) -> Values:
    fast = vector_dates.total_milliseconds(args[0])
    return fast if fast is not None else _per_row(args, vector_dates.total_milliseconds_one)


def _to_event_type(args: list[Values], ci: bool) -> Values:
    return _per_row(args, vector_dates.to_event_type)


# --- regular expressions ----------------------------------------------------------------------

RegexFunction = Callable[[list[Values], str, bool], Values]


def regex_equals(value: Values, pattern: str, ci: bool, negated: bool) -> Values:
    """`value = /re/` (`<>` when `negated`): whether a whole string matches; undefined for
    anything but a string."""
    compiled = compile_regex(pattern, ci)

    def one(text: Any) -> Any:
        if not isinstance(text, str):
            return UNDEFINED
        return (compiled.fullmatch(text) is not None) != negated

    def each(texts: list[str]) -> list[bool]:
        # A whole-text match is a match somewhere: one pass over the block rules most out.
        anywhere = compiled.search_each(texts)
        return [
            (hit and compiled.fullmatch(text) is not None) != negated
            for hit, text in zip(anywhere, texts, strict=True)
        ]

    if value.is_constant:
        return _per_row([value], one)
    return _each_string(value, each)


def _regex_test(kind: str) -> RegexFunction:
    def function(args: list[Values], pattern: str, ci: bool) -> Values:
        compiled = compile_regex(pattern, ci)
        at_end = compile_regex(f"(?:{pattern})\\z", ci) if kind == "ends" else compiled

        def one(text: Any) -> Any:
            if not isinstance(text, str):
                return UNDEFINED
            if kind == "contains":
                return compiled.search(text) is not None
            if kind == "starts":
                return compiled.match(text) is not None
            return at_end.search(text) is not None

        def each(texts: list[str]) -> list[bool]:
            # One pass over the block finds the texts with a match anywhere; a match at the
            # start or the end is also a match somewhere, so only those are asked again.
            anywhere = compiled.search_each(texts)
            if kind == "contains":
                return anywhere
            return [hit and one(text) for hit, text in zip(anywhere, texts, strict=True)]

        (values,) = args
        if values.is_constant:
            return _per_row(args, one)
        return _each_string(values, each)

    return function


def _each_string(values: Values, each: Callable[[list[str]], list[bool]]) -> Values:
    """true/false for the string rows of `values` by `each` (called once, on the distinct
    strings when there is a dictionary), undefined for every other row."""
    is_string = values.kind == K_STRING
    result = np.zeros(values.n, dtype=np.bool_)
    found = values.string_dictionary() if values.has_dictionary() else None
    if found is not None:
        codes, distinct = found
        used = np.zeros(len(distinct), dtype=np.bool_)
        used[codes[is_string]] = True
        which = np.flatnonzero(used)
        table = np.zeros(len(distinct), dtype=np.bool_)
        table[which] = each([distinct[j] for j in which.tolist()])
        result[is_string] = table[codes[is_string]]
    else:
        rows = np.flatnonzero(is_string)
        result[rows] = each(values.strings_at(rows))
    kind = result.astype(np.uint8) + K_FALSE  # K_TRUE is K_FALSE + 1
    kind[~is_string] = K_UNDEFINED
    return Values(kind)


def _regex_index_of(args: list[Values], pattern: str, ci: bool) -> Values:
    compiled = compile_regex(pattern, ci)

    def one(text: Any) -> Any:
        if not isinstance(text, str):
            return UNDEFINED
        found = compiled.search(text)
        return Decimal(-1 if found is None else len(_utf16(text[: found.start()])))

    return _per_row(args, one)


def _regex_replace(args: list[Values], pattern: str, ci: bool) -> Values:
    compiled = compile_regex(pattern, ci)

    def one(text: Any, new: Any) -> Any:
        if not (isinstance(text, str) and isinstance(new, str)):
            return UNDEFINED
        return compiled.sub(lambda found: expand_replacement(found, new), text)

    return _per_row(args, one)


# Functions whose second argument may be a regex: they get the other arguments' values.
REGEX_FUNCTIONS: Final[dict[str, RegexFunction]] = {
    "Contains": _regex_test("contains"),
    "StartsWith": _regex_test("starts"),
    "EndsWith": _regex_test("ends"),
    "IndexOf": _regex_index_of,
    "Replace": _regex_replace,
}


FUNCTIONS: Final[dict[str, Function]] = {
    "Has": _has,
    "Coalesce": _coalesce,
    "TypeOf": _type_of,
    "ElementAt": _element_at,
    "Contains": _string_test(vector_strings.MODE_CONTAINS),
    "StartsWith": _string_test(vector_strings.MODE_STARTS),
    "EndsWith": _string_test(vector_strings.MODE_ENDS),
    "IndexOf": _index_of(last=False),
    "LastIndexOf": _index_of(last=True),
    "Length": _length,
    "ToLower": _case(str.lower),
    "ToUpper": _case(str.upper),
    "Substring": _substring,
    "Concat": _concat,
    "Replace": _replace,
    "Round": _round,
    "ToNumber": _to_number,
    "ToJson": _to_json,
    "FromJson": _from_json_function,
    "Keys": _keys,
    "Values": _values,
    "Now": _now,
    "DateTime": _date_time,
    "TimeOfDay": _time_of_day,
    "DatePart": _date_part,
    "TotalMilliseconds": _total_milliseconds,
    "ToIsoString": _to_iso_string,
    "ToEventType": _to_event_type,
}
