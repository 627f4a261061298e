"""`@Message` and free-text search (`"timeout"`) over a batch.

An event's message is `@m`, or its template `@mt` rendered with its properties
(`seqfast.events.templates.render`).  Rendering every event is the slow way to search: a
search instead works per distinct template.

* When the folded text occurs in one of the template's literal pieces, every event of that
  template matches: rendering only replaces tokens, so the piece is in every message.
* Otherwise a match must overlap some token's rendered value.  For each token, the rows
  whose value cannot take part in a match are ruled out without rendering: a string
  renders as `"value"` (quotes and `\\"` escapes), so for text without `"` or `\\` a match
  overlapping it lies inside the value, which a kernel checks on the column; a number
  renders with digits, sign, `.`, `,`, `E` and `+` only (by its format), `null`, `True` and
  `False` as themselves; so when the text shares no character with those, they cannot
  take part.  Only the remaining rows are rendered and searched.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, Final

import numpy as np

from seqfast import _native
from seqfast.events import templates
from seqfast.query import vector_strings
from seqfast.query.values import (
    K_STRING,
    UNDEFINED,
    BoolArray,
    Values,
    decode_list,
    fold,
)
from seqfast.query.vector_columns import ABSENT, column_dictionary, column_values, raw_cells
from seqfast.storage import batch as B
from seqfast.storage.batch import Batch, Column

_CUSTOM_NUMBER_FORMAT: Final = re.compile(r"[0#.,]+")


def template_columns(texts: Iterable[str]) -> set[str]:
    """The property columns the templates `texts` name (what rendering them reads)."""
    names: set[str] = set()
    for text in texts:
        names.update(
            t.name for t in templates.parse(text) if isinstance(t, templates.PropertyToken)
        )
    return names


def _render_rows(batch: Batch, template: str, rows: np.ndarray) -> list[str]:
    """`template` rendered for each of `rows`, with the event's properties and `@r`."""
    names = {t.name for t in templates.parse(template) if isinstance(t, templates.PropertyToken)}
    names.add("@r")
    events: list[dict[str, Any]] = [{} for _ in range(int(rows.size))]
    for name in names:
        col = batch.columns.get(name)
        if col is None:
            continue
        for event, value in zip(events, raw_cells(col, rows), strict=True):
            if value is not ABSENT:
                event[name] = value
    return [templates.render(template, event, event.get("@r")) for event in events]


def _template_rows(batch: Batch, exclude: BoolArray) -> tuple[Values, np.ndarray, list[str]]:
    """The `@mt` values, a template code per row (-1 for rows without a template or in
    `exclude`), and the distinct templates."""
    template = column_values(batch.columns.get("@mt"), batch.n)
    usable = (template.kind == K_STRING) & ~exclude
    if not usable.any():
        return template, np.full(batch.n, -1, dtype=np.int64), []
    found = template.string_dictionary(limit=None)
    assert found is not None
    codes, distinct = found
    return template, np.where(usable, codes, -1), distinct


def _template_codes(batch: Batch, exclude: BoolArray) -> tuple[np.ndarray, list[str]]:
    """A template code per row (-1 for rows without an `@mt` string or in `exclude`) and
    the distinct templates, from the column's dictionary when it has one."""
    col = batch.columns.get("@mt")
    if col is None:
        return np.full(batch.n, -1, dtype=np.int64), []
    found = column_dictionary(col)
    if found is None:
        _, codes, distinct = _template_rows(batch, exclude)
        return codes, distinct
    codes = np.full(batch.n, -1, dtype=np.int64)
    codes[B.string_rows(col.tags)] = found.codes
    codes[(col.tags != B.TAG_STRING) | exclude] = -1
    return codes, found.distinct


def message_values(batch: Batch) -> Values:
    """`@Message` for every row."""
    message = column_values(batch.columns.get("@m"), batch.n)
    has_message = message.kind == K_STRING
    _, codes, distinct = _template_rows(batch, has_message)
    if not bool((codes >= 0).any()):
        kind = np.where(has_message, K_STRING, 0).astype(np.uint8)
        if message.has_dictionary():
            found = message.string_dictionary()
            assert found is not None
            return Values(kind, dictionary=found, dictionary_strings=message.dictionary_strings())
        return Values(kind, strings=message.dense_strings())
    out: list[Any] = [UNDEFINED] * batch.n
    rows = np.flatnonzero(has_message)
    for row, text in zip(rows.tolist(), message.strings_at(rows), strict=True):
        out[row] = text
    for code in np.unique(codes[codes >= 0]).tolist():
        template = distinct[code]
        rows = np.flatnonzero(codes == code)
        tokens = templates.parse(template)
        if not any(isinstance(t, templates.PropertyToken) for t in tokens):
            text = templates.render(template, {})
            for row in rows.tolist():
                out[row] = text
            continue
        for row, text in zip(rows.tolist(), _render_rows(batch, template, rows), strict=True):
            out[row] = text
    return Values.from_python(out)


class _Columns:
    """Per search: each column's string positions, computed once.  The search reads the
    columns' own strings (never a row-aligned copy), and only for the rows it asks about."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self._arrays: dict[str, BoolArray] = {}
        self._any: dict[tuple[str, str], BoolArray] = {}
        self._num_ranks: dict[str, np.ndarray] = {}
        self._hits: dict[tuple[str, str], BoolArray] = {}

    def num_ranks(self, name: str, col: Column) -> np.ndarray:
        found = self._num_ranks.get(name)
        if found is None:
            found = self._num_ranks[name] = np.cumsum(B.numeric_rows(col.tags)) - 1
        return found

    def hits(self, name: str, needle: str, idx: np.ndarray) -> BoolArray:
        """For the rows `idx`: whether each row's text (STRING, JSON or BIGINT cell)
        contains `needle` (folded), ignoring case.  The column is searched once per needle
        (once per distinct string when it has a dictionary)."""
        per_row = self._hits.get((name, needle))
        if per_row is None:
            col = self.batch.columns[name]
            cached = getattr(col, "_query_dictionary", None)
            if cached is not None:
                per_string = _contains_ci(cached.strings[0], cached.strings[1], needle)
                per_string = per_string[cached.codes]
            else:
                per_string = _contains_ci(col.str_offsets, col.str_data, needle)
            per_row = np.zeros(self.batch.n, dtype=np.bool_)
            per_row[B.string_rows(col.tags)] = per_string
            self._hits[(name, needle)] = per_row
        result: BoolArray = per_row[idx]
        return result

    def any_of(self, name: str, chars: frozenset[str]) -> BoolArray:
        """Rows whose text may hold one of `chars` (see `_contains_any`)."""
        key = (name, "".join(sorted(chars)))
        found = self._any.get(key)
        if found is None:
            table = np.zeros(256, dtype=np.uint8)
            for ch in chars:
                for form in {ch, ch.lower(), ch.upper(), fold(ch)}:
                    if form.isascii() and len(form) == 1:
                        table[ord(form)] = 1
                    else:
                        table[0x80:] = 1
            # Dotless i and long s fold to I and S.
            if chars & {"I", "S", "i", "s"}:
                table[0x80:] = 1
            col = self.batch.columns[name]
            found = np.zeros(self.batch.n, dtype=np.bool_)
            found[B.string_rows(col.tags)] = (
                _native.any_byte_of(col.str_offsets, col.str_data, table) == 1
            )
            self._any[key] = found
        return found

    def arrays(self, name: str) -> BoolArray:
        """Rows whose cell is a JSON array."""
        found = self._arrays.get(name)
        if found is None:
            col = self.batch.columns[name]
            found = np.zeros(self.batch.n, dtype=np.bool_)
            data = np.frombuffer(col.str_data, dtype=np.uint8)
            if data.size:
                # An empty string at the very end starts at len(data); it is no JSON anyway.
                starts = np.minimum(col.str_offsets[:-1], data.size - 1)
                found[B.string_rows(col.tags)] = data[starts] == ord("[")
                found &= col.tags == B.TAG_JSON
            self._arrays[name] = found
        return found


def _contains_ci(offsets: np.ndarray, data: bytes, needle: str) -> BoolArray:
    """Per string of (offsets, data): whether it contains the folded `needle`, ignoring
    case (non-ASCII strings are decided exactly in Python)."""
    out = _native.match_strings(
        offsets,
        data,
        b"",
        needle.encode("utf-8", "surrogatepass"),
        vector_strings.MODE_CONTAINS,
        True,
    )
    undecided = np.flatnonzero(out == 2)
    result: BoolArray = out == 1
    for j, text in zip(undecided.tolist(), decode_list(offsets, data, undecided), strict=True):
        result[j] = needle in fold(text)
    return result


def _column_contains(batch: Batch, name: str, needle: str) -> BoolArray:
    """Rows whose column `name` holds a string containing the folded `needle`."""
    result = np.zeros(batch.n, dtype=np.bool_)
    col = batch.columns.get(name)
    if col is None or col.str_offsets.shape[0] <= 1:
        return result
    cached = getattr(col, "_query_dictionary", None)
    if cached is not None:
        per_string = _contains_ci(cached.strings[0], cached.strings[1], needle)[cached.codes]
    else:
        per_string = _contains_ci(col.str_offsets, col.str_data, needle)
    result[B.string_rows(col.tags)] = per_string
    result &= col.tags == B.TAG_STRING
    return result


def text_search(batch: Batch, text: str) -> BoolArray:
    """Rows whose `@Message` or `@Exception` contains `text`, ignoring case."""
    needle = fold(text)
    hit = _column_contains(batch, "@x", needle) | _column_contains(batch, "@m", needle)
    message = batch.columns.get("@m")
    has_message = (
        message.tags == B.TAG_STRING if message is not None else np.zeros(batch.n, np.bool_)
    )
    codes, distinct = _template_codes(batch, has_message | hit)
    if not distinct:
        return hit
    # Rows grouped by template: one sort instead of a pass over all rows per template.
    # Stable sorts of 16-bit integers are radix sorts.
    small = codes.astype(np.int16) if len(distinct) < 32_000 else codes
    order = np.argsort(small, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.diff(sorted_codes, prepend=-2))
    stops = np.append(starts[1:], codes.size)
    cache = _Columns(batch)
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        code = int(sorted_codes[start])
        if code < 0:
            continue
        idx = order[start:stop]
        template = distinct[code]
        tokens = templates.parse(template)
        if any(isinstance(t, templates.TextToken) and needle in fold(t.text) for t in tokens):
            hit[idx] = True
            continue
        candidates = np.zeros(idx.size, dtype=np.bool_)
        before: str | None = ""  # the character rendered just before a token (None: varies)
        for token in tokens:
            if isinstance(token, templates.PropertyToken):
                candidates |= _could_overlap(cache, token, needle, idx, before)
                before = None
            else:
                before = token.text[-1:]
        which = idx[candidates]
        if which.size:
            rendered = _render_rows(batch, template, which)
            for row, message_text in zip(which.tolist(), rendered, strict=True):
                if needle in fold(message_text):
                    hit[row] = True
    return hit


# Characters of rendered numbers (see the module text).
_PLAIN_NUMBER_CHARS: Final = frozenset("0123456789-.,")
_SCIENTIFIC_CHARS: Final = frozenset("E+")
# Characters that structure a rendered array or object, and that bound a rendered string.
_STRUCTURE_CHARS: Final = frozenset('{}[]:, "\\')
# Numbers render without an exponent between these magnitudes (and at zero); a margin on
# both sides of .NET's limits (1e-4 and 1e15) keeps this safe.
_PLAIN_LOW: Final = 2e-4
_PLAIN_HIGH: Final = 1e14
_CUSTOM_FORMAT: Final = re.compile(r"[0#,]*(\.[0#]*)?")


def _plain_format(fmt: str | None) -> bool:
    """Whether numbers under `fmt` render in plain digits (the default text, or a custom
    format of `0`, `#`, `,` and one `.`), never with words or symbols."""
    if fmt is None or fmt == "l":
        return True
    return _CUSTOM_FORMAT.fullmatch(fmt) is not None and any(c in fmt for c in "0#")


@functools.lru_cache(maxsize=256)
def _folded(chars: frozenset[str]) -> frozenset[str]:
    return frozenset(fold(c) for c in chars)


def _contains_any(cache: _Columns, name: str, chars: set[str], idx: np.ndarray) -> BoolArray:
    """For the rows `idx` (all with text): whether each may contain one of `chars`,
    ignoring case (any non-ASCII byte counts when a char is not ASCII or folds from one
    that is not: this only picks rows to render)."""
    found: BoolArray = cache.any_of(name, frozenset(chars))[idx]
    return found


def _could_overlap(
    cache: _Columns,
    token: templates.PropertyToken,
    needle: str,
    idx: np.ndarray,
    before: str | None,
) -> BoolArray:
    """For the rows `idx`: whether the rendering of `token` could overlap a match of
    `needle`.  `before` is the character rendered just before the token ("" at the start,
    None when it varies)."""
    batch = cache.batch
    needle_chars = set(needle)
    col = batch.columns.get(token.name)
    if col is None:
        return np.ones(idx.size, dtype=np.bool_)  # the token stays as written: render
    tags = col.tags[idx]
    result = np.zeros(idx.size, dtype=np.bool_)
    padding = frozenset(" ") if token.alignment is not None else frozenset()

    def shares(chars: frozenset[str]) -> bool:
        return not needle_chars.isdisjoint(_folded(chars | padding))

    # A client's own rendering (`@r`, an array of texts) replaces a formatted token.
    r_col = batch.columns.get("@r")
    if token.format is not None and r_col is not None:
        has_r = cache.arrays("@r")[idx]
        if has_r.any():
            chars = needle_chars | {"\\"} | padding
            result[has_r] = _contains_any(cache, "@r", chars, idx[has_r])
    result |= tags == B.TAG_ABSENT
    for tag, word in ((B.TAG_NULL, "null"), (B.TAG_TRUE, "True"), (B.TAG_FALSE, "False")):
        if shares(frozenset(word)):
            result |= tags == tag
    plain = _plain_format(token.format)
    if not plain or shares(_PLAIN_NUMBER_CHARS):
        result |= (tags == B.TAG_INT) | (tags == B.TAG_BIGINT)
    floats = tags == B.TAG_FLOAT
    if floats.any():
        if not plain or shares(_PLAIN_NUMBER_CHARS):
            result |= floats
        else:
            ranks = cache.num_ranks(token.name, col)
            values = col.nums[ranks[idx[floats]]].view(np.float64)
            magnitude = np.abs(values)
            plain_range = ((magnitude >= _PLAIN_LOW) & (magnitude < _PLAIN_HIGH)) | (values == 0)
            # NaN and the infinities render as words; far from 1 as `1E+20`.
            odd = ~np.isfinite(values)
            if shares(_SCIENTIFIC_CHARS):
                odd |= ~plain_range
            result[floats] |= odd
    collections = tags == B.TAG_JSON
    if collections.any():
        if (
            token.format is not None
            or shares(_STRUCTURE_CHARS)
            or needle_chars <= set("0123456789-.E+")
        ):
            result |= collections
        else:
            # A match inside an array or object lies within one key, string, number or
            # word (the needle has none of the characters between them); keys, strings and
            # words appear in the JSON text as rendered unless escaped; numbers cannot hold
            # the needle's other characters.  A `$type` tag renders before the brace, where
            # a match could begin in the text before the token, unless that text ends in a
            # character the needle does not have.
            rows = idx[collections]
            odd = {"\\"}
            if before is None or (before and fold(before) in needle_chars):
                odd.add("$")
            result[collections] |= cache.hits(token.name, needle, rows) | _contains_any(
                cache, token.name, odd, rows
            )
    strings = tags == B.TAG_STRING
    if strings.any():
        quoted = token.format != "l"
        if quoted and '"' not in needle and "\\" not in needle and not shares(frozenset()):
            result[strings] |= cache.hits(token.name, needle, idx[strings])
        else:
            result |= strings
    return result
