"""Reading a batch's columns and built-in properties as `Values`.

A column's strings are dictionary-encoded once (when they repeat enough to be worth it) and
the dictionary is kept on the `Column` object, so that every predicate, function and
grouping over the same column reuses it: string work then runs once per distinct value.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Final

import numpy as np
import orjson

from seqfast import _native
from seqfast.events import levels
from seqfast.query.values import (
    K_ARRAY,
    K_NUMBER,
    K_OBJECT,
    K_STRING,
    K_UNDEFINED,
    UNDEFINED,
    Int64Array,
    QueryError,
    Values,
    decode_list,
)
from seqfast.storage import batch as B
from seqfast.storage.batch import Batch, Column
from seqfast.storage.ids import UNIX_EPOCH_DOTNET_TICKS

# Value tag -> kind; JSON rows are refined to array or object by their first byte.
_TAG_KIND: Final = np.zeros(256, dtype=np.uint8)
_TAG_KIND[B.TAG_NULL] = 1
_TAG_KIND[B.TAG_FALSE] = 2
_TAG_KIND[B.TAG_TRUE] = 3
_TAG_KIND[B.TAG_INT] = K_NUMBER
_TAG_KIND[B.TAG_FLOAT] = K_NUMBER
_TAG_KIND[B.TAG_STRING] = K_STRING
_TAG_KIND[B.TAG_JSON] = K_OBJECT
_TAG_KIND[B.TAG_BIGINT] = K_NUMBER

_DICTIONARY_ATTR: Final = "_query_dictionary"
_VALUES_ATTR: Final = "_query_values"
_NUMBER_LIMIT: Final = 1e29


class _Dictionary:
    """A column's distinct strings: codes (one per string of the column), the distinct texts
    and their (offsets, data)."""

    __slots__ = ("codes", "distinct", "strings")

    def __init__(self, codes: Int64Array, distinct: list[str], strings: tuple[Int64Array, bytes]):
        self.codes = codes
        self.distinct = distinct
        self.strings = strings


def column_dictionary(col: Column) -> _Dictionary | None:
    """The column's string dictionary, built on first use and kept on the column; None when
    its strings are mostly distinct (ids), where per-row work is as cheap."""
    cached = getattr(col, _DICTIONARY_ATTR, False)
    if cached is not False:
        assert cached is None or isinstance(cached, _Dictionary)
        return cached
    result: _Dictionary | None = None
    if col.dictionary is not None:
        # Read from a dictionary-encoded block: the segment's own dictionary, as it is.
        block_codes, offsets, data = col.dictionary
        distinct = decode_list(offsets, data, np.arange(offsets.shape[0] - 1))
        result = _Dictionary(block_codes, distinct, (offsets, data))
    elif (m := B.string_count(col)) > 0:
        limit = max(64, m // 4)
        encoded = _native.dict_encode(col.str_offsets, col.str_data, limit)
        if encoded is not None:
            codes, firsts = encoded
            strings = _native.gather_strings(col.str_offsets, col.str_data, firsts)
            distinct = decode_list(strings[0], strings[1], np.arange(firsts.size))
            result = _Dictionary(codes.astype(np.int64), distinct, strings)
    setattr(col, _DICTIONARY_ATTR, result)
    return result


def column_values(col: Column | None, n: int) -> Values:
    """The values of a column (None: a column the batch does not have, all undefined)."""
    if col is None:
        return Values.undefined(n)
    cached = getattr(col, _VALUES_ATTR, None)
    if isinstance(cached, Values) and cached.n == n:
        # Values are never changed in place, so one column's values serve every predicate
        # and query that reads it while the column (cached by the store) lives.
        return cached
    found = _column_values(col, n)
    setattr(col, _VALUES_ATTR, found)
    return found


def _column_values(col: Column, n: int) -> Values:
    tags = col.tags
    # One native pass: each row's kind, and the numeric rows' values placed at their rows
    # (`exact` too when every number is an integer).
    kind, numbers, exact = _native.column_numbers(tags, col.nums, _TAG_KIND, _NUMBER_LIMIT)
    strings = None
    dictionary = None
    dictionary_strings = None
    if isinstance(col, B.DictionaryColumn) and not bool((tags >= B.TAG_JSON).any()):
        # Text only, read with its dictionary: the values are the codes and the distinct
        # strings; per-row strings are built from them only if some function needs them.
        found = column_dictionary(col)
        assert found is not None
        codes = _native.scatter_codes(tags, found.codes, B.TAG_STRING, B.TAG_BIGINT)
        dictionary = (codes, found.distinct)
        dictionary_strings = found.strings
    elif B.string_count(col) > 0:
        is_str = B.string_rows(tags)
        ranks = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(is_str, out=ranks[1:])
        dense = col.str_offsets[ranks]
        strings = (dense, col.str_data)
        json_rows = np.flatnonzero(tags == B.TAG_JSON)
        if json_rows.size:
            first = np.frombuffer(col.str_data, dtype=np.uint8)[dense[json_rows]]
            kind[json_rows] = np.where(first == ord("["), K_ARRAY, K_OBJECT).astype(np.uint8)
        big_rows = np.flatnonzero(tags == B.TAG_BIGINT)
        if big_rows.size:
            if numbers is None:
                numbers = np.zeros(n) if exact is None else exact.astype(np.float64)
            exact = None
            for row, text in zip(
                big_rows.tolist(), decode_list(dense, col.str_data, big_rows), strict=True
            ):
                number = float(int(text))
                if abs(number) < float("inf"):
                    numbers[row] = number
                else:
                    kind[row] = K_UNDEFINED
        found = column_dictionary(col)
        if found is not None:
            codes = _native.scatter_codes(tags, found.codes, B.TAG_STRING, B.TAG_BIGINT)
            dictionary = (codes, found.distinct)
            dictionary_strings = found.strings
    return Values(
        kind,
        numbers,
        exact=exact,
        strings=strings,
        dictionary=dictionary,
        dictionary_strings=dictionary_strings,
        json_text=True,
        # A block's dictionary and `dict_encode`'s both hold each string once.
        dictionary_unique=dictionary is not None,
    )


class _Absent:
    """The marker `raw_cells` gives for a row without a value."""


ABSENT: Final = _Absent()
_LONG_DIGITS: Final = re.compile(r"[0-9]{19}")


def _json_value(text: str) -> Any:
    # orjson cannot keep integers beyond 64 bits exact; only such integers have 19 or more
    # digits in a row, so text without such a run takes the fast path.
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def raw_cells(col: Column, rows: np.ndarray) -> list[Any]:
    """The values of `rows` as a CLEF event holds them (int, float, str, bool, None, list,
    dict; ABSENT for no value): what message templates are rendered with."""
    idx = np.asarray(rows, dtype=np.int64)
    tags = col.tags[idx]
    out: list[Any] = [ABSENT] * int(idx.size)
    for tag, constant in ((B.TAG_NULL, None), (B.TAG_FALSE, False), (B.TAG_TRUE, True)):
        for pos in np.flatnonzero(tags == tag).tolist():
            out[pos] = constant
    is_num = B.numeric_rows(tags)
    if is_num.any():
        positions = np.flatnonzero(is_num)
        nums = col.nums[B.positions_of(col.tags, B.TAG_INT, B.TAG_FLOAT, idx[positions])]
        floats = nums.view(np.float64).tolist()
        for j, (pos, integer) in enumerate(zip(positions.tolist(), nums.tolist(), strict=True)):
            out[pos] = floats[j] if tags[pos] == B.TAG_FLOAT else integer
    is_str = B.string_rows(tags)
    if is_str.any():
        positions = np.flatnonzero(is_str)
        which = B.positions_of(col.tags, B.TAG_STRING, B.TAG_BIGINT, idx[positions])
        texts = decode_list(col.str_offsets, col.str_data, which)
        for pos, text in zip(positions.tolist(), texts, strict=True):
            tag = tags[pos]
            if tag == B.TAG_STRING:
                out[pos] = text
            elif tag == B.TAG_BIGINT:
                out[pos] = int(text)
            else:
                out[pos] = _json_value(text)
    return out


def property_column(batch: Batch, name: str) -> Column | None:
    """The column of user property `name` (`@x` is stored as `@@x`)."""
    return batch.columns.get("@" + name if name.startswith("@") else name)


# --- built-in properties ----------------------------------------------------------------------

SIMPLE_BUILT_INS: Final[dict[str, str]] = {
    "Exception": "@x",
    "TraceId": "@tr",
    "SpanId": "@sp",
    "ParentId": "@ps",
    "SpanKind": "@sk",
    "Resource": "@ra",
    "Scope": "@sa",
}


def timestamp_values(batch: Batch) -> Values:
    ticks = batch.ts.astype(np.int64) + UNIX_EPOCH_DOTNET_TICKS
    return Values(np.full(batch.n, K_NUMBER, dtype=np.uint8), ticks.astype(np.float64), exact=ticks)


def level_values(batch: Batch) -> Values:
    """`@Level`: the Seq name of the stored level's spelling (else the text as stored);
    Information when the event has none."""
    raw = column_values(batch.columns.get("@l"), batch.n)
    dictionary = raw.string_dictionary(limit=None)
    assert dictionary is not None
    codes, distinct = dictionary
    names = [levels.canonical(text) or text for text in distinct]
    # Rows without a level become strings with the default level's code, in two native
    # passes (kinds through a table, codes through `apply_codes`).
    code_of_kind = np.full(256, -1, dtype=np.int64)
    code_of_kind[K_UNDEFINED] = len(names)
    strings = np.arange(len(names), dtype=np.int64)
    codes = _native.apply_codes(raw.kind, codes, K_STRING, strings, code_of_kind)
    names.append(levels.DEFAULT_LEVEL)
    kind = _UNDEFINED_AS_STRING[raw.kind]
    objects = raw.objects() if bool((kind >= K_ARRAY).any()) else None
    return Values(
        kind,
        raw.numbers,
        exact=raw.exact,
        dictionary=(codes, names),
        objects=objects,
        dictionary_unique=len(set(names)) == len(names),
    )


_UNDEFINED_AS_STRING: Final = np.arange(256, dtype=np.uint8)
_UNDEFINED_AS_STRING[K_UNDEFINED] = K_STRING


def id_values(batch: Batch) -> Values:
    """`@Id`: `event-` and 32 hex digits (ticks since 0001, arrival number), built with
    array arithmetic rather than per-row formatting."""
    n = batch.n
    ticks = (batch.ts.astype(np.int64) + UNIX_EPOCH_DOTNET_TICKS).astype(np.uint64)
    seq = batch.seq.astype(np.uint64)
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    chars = np.empty((n, 38), dtype=np.uint8)
    chars[:, :6] = np.frombuffer(b"event-", dtype=np.uint8)
    chars[:, 6:22] = digits[((ticks[:, None] >> shifts) & np.uint64(15)).astype(np.int64)]
    chars[:, 22:38] = digits[((seq[:, None] >> shifts) & np.uint64(15)).astype(np.int64)]
    offsets = np.arange(0, 38 * (n + 1), 38, dtype=np.int64)
    return Values(np.full(n, K_STRING, dtype=np.uint8), strings=(offsets, chars.tobytes()))


_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)
_TICKS_PER_SECOND: Final = 10_000_000


def parse_ticks(text: str) -> int | None:
    """100-ns ticks since 0001-01-01 of RFC 3339 text (no zone means UTC), else None."""
    found = _RFC3339.fullmatch(text)
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    try:
        moment = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    offset = 0
    if zone is not None and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        minutes = zone[3:].lstrip(":")
        offset = sign * (int(zone[1:3]) * 3600 + int(minutes or "0") * 60)
    seconds = (moment - dt.datetime(1, 1, 1)) // dt.timedelta(seconds=1) - offset
    frac = int((fraction or "").ljust(7, "0")[:7])
    return seconds * _TICKS_PER_SECOND + frac


def start_values(batch: Batch) -> Values:
    """`@Start`: `@st` read as RFC 3339 text, in ticks since 0001; other values undefined."""
    raw = column_values(batch.columns.get("@st"), batch.n)
    kind = np.zeros(batch.n, dtype=np.uint8)
    exact = np.zeros(batch.n, dtype=np.int64)
    rows = np.flatnonzero(raw.kind == K_STRING)
    for row, text in zip(rows.tolist(), raw.strings_at(rows), strict=True):
        ticks = parse_ticks(text)
        if ticks is not None and -(2**63) <= ticks < 2**63:
            kind[row] = K_NUMBER
            exact[row] = ticks
    return Values(kind, exact.astype(np.float64), exact=exact)


def elapsed_values(batch: Batch) -> Values:
    start = start_values(batch)
    end = timestamp_values(batch)
    assert start.exact is not None and end.exact is not None
    exact = end.exact - start.exact
    kind = start.kind.copy()
    return Values(kind, exact.astype(np.float64), exact=np.where(kind == K_NUMBER, exact, 0))


_HEX_TYPE: Final = re.compile(r"[0-9A-Fa-f]{1,8}")


def event_type_values(batch: Batch) -> Values:
    """`@EventType`: the number given as `@i` (an integer, or hex text)."""
    raw = column_values(batch.columns.get("@i"), batch.n)
    kind = raw.kind.copy()
    exact = np.zeros(batch.n, dtype=np.int64)
    numeric = kind == K_NUMBER
    if numeric.any():
        if raw.exact is None:
            raise QueryError("@EventType of an event whose @i is not a whole number")
        exact[numeric] = raw.exact[numeric]
    rows = np.flatnonzero(kind == K_STRING)
    for row, text in zip(rows.tolist(), raw.strings_at(rows), strict=True):
        if _HEX_TYPE.fullmatch(text) is None:
            raise QueryError(f"@EventType of an event with @i = {text!r} is not supported")
        exact[row] = int(text, 16)
        kind[row] = K_NUMBER
    if bool((kind != K_NUMBER).any()):
        raise QueryError(
            "@EventType is only supported for events that carry @i (an integer or hex text)"
        )
    return Values(kind, exact.astype(np.float64), exact=exact)


def message_template_values(batch: Batch) -> Values:
    """`@MessageTemplate`: `@mt`, else `@m` with its braces doubled."""
    template = column_values(batch.columns.get("@mt"), batch.n)
    is_template = template.kind == K_STRING
    if bool(is_template.all()):
        return template
    message = column_values(batch.columns.get("@m"), batch.n)
    texts: list[Any] = []
    template_list = template.string_list()
    message_list = message.string_list()
    for t, m in zip(template_list, message_list, strict=True):
        if t is not None:
            texts.append(t)
        elif m is not None:
            texts.append(m.replace("{", "{{").replace("}", "}}"))
        else:
            texts.append(UNDEFINED)
    return Values.from_python(texts)


def properties_values(batch: Batch) -> Values:
    """`@Properties`: an object of every property of the event (`@@x` is `@x`)."""
    names = [name for name in batch.columns if not name.startswith("@") or name.startswith("@@")]
    columns = [column_values(batch.columns[name], batch.n).to_python() for name in names]
    objects: list[Any] = []
    for i in range(batch.n):
        members: dict[str, Any] = {}
        for name, values in zip(names, columns, strict=True):
            value = values[i]
            if value is not UNDEFINED:
                members[name[1:] if name.startswith("@@") else name] = value
        objects.append(members)
    return Values.from_python(objects)
