"""`@Message` and free-text search (`"timeout"`) over a batch.

An event's message is `@m`, or its template `@mt` rendered with its properties
(`seqfast.events.templates.render`).  Rendering every event is the slow way to search: a
search instead works per distinct template.

* When the folded text occurs in one of the template's literal pieces, every event of that
  template matches: rendering only replaces tokens, so the piece is in every message.
* Otherwise a match must overlap (or, for an empty rendering, span) some token's rendered
  value.  The match is then the text split in three: a part ending the literal text before
  the token, a part inside the rendering, a part starting the literal text after it
  (beyond those, another token's rendering could be anything).  For each kind of value that
  decides, once per template and text, whether it can take part (`_TokenCheck`): a number
  renders with digits, sign, `.`, `,` (and `E`, `+` far from 1) only, by its format;
  `null`, `True`, `False` and an absent property's token as written are fixed words; a
  string renders as `"value"` (quotes and `\\"` escapes), so for text without `"` or `\\`
  a match overlapping it lies inside the value, which a kernel checks on the column's
  strings, and such a row matches without rendering.  Only the remaining candidate rows
  are rendered and searched.
* Over a stored block (`partial_batch.PartialBatch`) a property column is read only when
  that can matter: not when the block's column statistics show it holds no kind of value
  that can take part (numbers in range, no strings), nor when its strings, read alone
  (a dictionary's distinct values), hold neither the text nor an array or object.  A
  client's renderings (`@r`) are read only for a formatted token, and only when one of
  them holds a character that could take part.  Templates where nothing can take part
  never look at their rows.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from seqfast import _native
from seqfast.events import templates
from seqfast.query import partial_batch, vector_strings
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
from seqfast.storage.segment import ColumnStats


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
    partial_batch.require(batch, names)
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
        self._present: dict[tuple[str, int], bool] = {}
        self._any_hit: dict[tuple[str, str], bool] = {}
        self._strings_matter: dict[tuple[str, str, bool, bool], bool] = {}
        self._client: dict[str, bool] = {}
        # The search's rows found so far (`text_search` sets it).
        self.hit = np.zeros(batch.n, dtype=np.bool_)

    def has_tag(self, name: str, tag: int) -> bool:
        """Whether some row of the column has `tag`."""
        key = (name, tag)
        found = self._present.get(key)
        if found is None:
            found = self._present[key] = bool((self.batch.columns[name].tags == tag).any())
        return found

    def any_hit(self, name: str, needle: str) -> bool:
        """Whether some string cell of the column contains `needle` (folded)."""
        key = (name, needle)
        found = self._any_hit.get(key)
        if found is None:
            strings = partial_batch.strings_of(self.batch, name)
            found = self._any_hit[key] = strings is not None and _any_contains(strings, needle)
        return found

    def strings_matter(self, name: str, check: _TokenCheck) -> bool:
        """Whether the strings of a column, read alone, may matter to `check`: some holds
        its needle, or some array or object could take part anyway (see
        `_value_overlap`: any, when the needle has characters that structure them; else
        one holding an escape, or a `$type` tag that could follow a match's start)."""
        dollar = _dollar_matters(check)
        key = (name, check.needle, check.json_all, dollar)
        found = self._strings_matter.get(key)
        if found is None:
            strings = partial_batch.strings_of(self.batch, name)
            found = False
            if strings is not None:
                data = strings[1]
                found = _any_contains(strings, check.needle) or (
                    (b"[" in data or b"{" in data)
                    and (check.json_all or b"\\" in data or (dollar and b"$" in data))
                )
            self._strings_matter[key] = found
        return found

    def client_renderings_matter(self, check: _TokenCheck) -> bool:
        """Whether a client's renderings (`@r`) of the block could take part in a match
        through the formatted token of `check`: when a match could span an empty one, any;
        else one holding a character of `_client_chars(check)`, which the renderings'
        strings alone can rule out."""
        key = "" if check.spans else "".join(sorted(_client_chars(check)))
        found = self._client.get(key)
        if found is None:
            strings = partial_batch.strings_of(self.batch, "@r")
            if strings is None:
                found = False
            elif check.spans:
                found = True
            else:
                table = _byte_table(_client_chars(check))
                found = bool((_native.any_byte_of(strings[0], strings[1], table) == 1).any())
            if found:
                partial_batch.require(self.batch, ("@r",))
                found = self.batch.columns.get("@r") is not None and bool(self.arrays("@r").any())
            self._client[key] = found
        return found

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
            per_row = np.zeros(self.batch.n, dtype=np.bool_)
            per_row[B.string_rows(col.tags)] = _strings_contain(col, needle)
            self._hits[(name, needle)] = per_row
        result: BoolArray = per_row[idx]
        return result

    def any_of(self, name: str, chars: frozenset[str]) -> BoolArray:
        """Rows whose text may hold one of `chars` (see `_contains_any`)."""
        key = (name, "".join(sorted(chars)))
        found = self._any.get(key)
        if found is None:
            col = self.batch.columns[name]
            found = np.zeros(self.batch.n, dtype=np.bool_)
            found[B.string_rows(col.tags)] = (
                _native.any_byte_of(col.str_offsets, col.str_data, _byte_table(chars)) == 1
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
    result: BoolArray = out == 1
    undecided = np.flatnonzero(out == 2)
    if undecided.size:
        texts = decode_list(offsets, data, undecided)
        for j, text in zip(undecided.tolist(), texts, strict=True):
            result[j] = needle in fold(text)
    return result


def _any_contains(strings: tuple[np.ndarray, bytes], needle: str) -> bool:
    """Whether some string of (offsets, data) contains the folded `needle`, ignoring case:
    one scan of the bytes, the strings bytes cannot decide looked at one by one."""
    offsets, data = strings
    answer = _native.contains_any(offsets, data, needle.encode("utf-8", "surrogatepass"), True)
    if answer == 2:
        return bool(_contains_ci(offsets, data, needle).any())
    return answer == 1


def _strings_contain(col: Column, needle: str) -> BoolArray:
    """Per string cell of `col` (STRING, JSON or BIGINT, in row order): whether it contains
    the folded `needle`.  A dictionary column is searched once per distinct string, without
    building its per-row strings."""
    if col.dictionary is not None:
        codes, offsets, data = col.dictionary
        found: BoolArray = _contains_ci(offsets, data, needle)[codes]
        return found
    cached = getattr(col, "_query_dictionary", None)
    if cached:
        found = _contains_ci(cached.strings[0], cached.strings[1], needle)[cached.codes]
        return found
    return _contains_ci(col.str_offsets, col.str_data, needle)


def _column_contains(batch: Batch, name: str, needle: str) -> BoolArray:
    """Rows whose column `name` holds a string containing the folded `needle`."""
    result = np.zeros(batch.n, dtype=np.bool_)
    col = batch.columns.get(name)
    if col is None or not B.string_rows(col.tags).any():
        return result
    result[B.string_rows(col.tags)] = _strings_contain(col, needle)
    result &= col.tags == B.TAG_STRING
    return result


def text_search(batch: Batch, text: str) -> BoolArray:
    """Rows whose `@Message` or `@Exception` contains `text`, ignoring case."""
    needle = fold(text)
    partial_batch.require(batch, ("@x", "@m", "@mt"))
    cache = _Columns(batch)
    hit = cache.hit
    hit |= _column_contains(batch, "@x", needle) | _column_contains(batch, "@m", needle)
    message = batch.columns.get("@m")
    has_message = (
        message.tags == B.TAG_STRING if message is not None else np.zeros(batch.n, np.bool_)
    )
    codes, distinct = _template_codes(batch, has_message | hit)
    if not distinct:
        return hit
    stats = partial_batch.stats_of(batch)
    # Each template present is decided on its own first; only the templates where a token's
    # value or a client's rendering could take part look at their rows.
    present = np.flatnonzero(np.bincount(codes + 1, minlength=len(distinct) + 1)[1:])
    literal = np.zeros(len(distinct) + 1, dtype=np.bool_)  # the last: rows without a code
    for code in present.tolist():
        template = distinct[code]
        checks = _template_checks(template, needle)
        if checks is None:  # the text is in the template's own text
            literal[code] = True
            continue
        every = False
        looks: list[tuple[_TokenCheck, bool, bool]] = []
        for check in checks:
            scope = _value_scope(cache, check, stats)
            if scope == _EVERY:
                every = True
                break
            by_client = check.formatted and cache.client_renderings_matter(check)
            if scope == _SOME or by_client:
                looks.append((check, scope == _SOME, by_client))
        if not every and not looks:
            continue
        idx = np.flatnonzero(codes == code)
        candidates = np.ones(idx.size, dtype=np.bool_) if every else _candidates(cache, looks, idx)
        which = idx[candidates & ~hit[idx]]
        if which.size:
            rendered = _render_rows(batch, template, which)
            for row, message_text in zip(which.tolist(), rendered, strict=True):
                if needle in fold(message_text):
                    hit[row] = True
    hit |= literal[codes]
    return hit


def _candidates(
    cache: _Columns, looks: list[tuple[_TokenCheck, bool, bool]], idx: np.ndarray
) -> BoolArray:
    """For the rows `idx` of one template: which need rendering, given the tokens whose
    value (`_value_overlap`) or client rendering (`_client_rendering`) could take part.  Rows
    whose value certainly holds the text are marked in the search's hits instead."""
    candidates = np.zeros(idx.size, dtype=np.bool_)
    for check, by_value, by_client in looks:
        if by_value:
            certain, render = _value_overlap(cache, check, idx)
            if certain is not None:
                cache.hit[idx[certain]] = True
            if render is not None:
                candidates |= render
        if by_client:
            render = _client_rendering(cache, check, idx)
            if render is not None:
                candidates |= render
    return candidates


# --- which renderings of a token can take part in a match ------------------------------------
#
# A match overlapping a token's rendering is the needle split in three: a part ending the text
# before the token, a part inside the rendering and a part starting the text after it.  The
# template's literal text next to the token is known (beyond it, another token's rendering
# could be anything), so for each kind of value -- a fixed word such as `null`, or digits and
# signs of any length -- the possible splits decide, once per template and needle, whether
# rows holding that kind need a closer look.

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
_HEX_FOLDED: Final = frozenset("0123456789ABCDEF")
_NON_FINITE: Final = (float("nan"), float("inf"), float("-inf"))


def _plain_format(fmt: str | None) -> bool:
    """Whether numbers under `fmt` render in plain digits (the default text, or a custom
    format of `0`, `#`, `,` and one `.`), never with words or symbols."""
    if fmt is None or fmt == "l":
        return True
    return _CUSTOM_FORMAT.fullmatch(fmt) is not None and any(c in fmt for c in "0#")


def _ends_fit(part: str, left: str) -> bool:
    """Whether `part` (folded) can end the text rendered before a token, of which `left`
    (folded) is the known end."""
    k = min(len(part), len(left))
    return part[len(part) - k :] == left[len(left) - k :]


def _starts_fit(part: str, right: str) -> bool:
    """Whether `part` (folded) can start the text rendered after a token, of which `right`
    (folded) is the known start."""
    k = min(len(part), len(right))
    return part[:k] == right[:k]


def _word_overlaps(needle: str, left: str, word: str, right: str) -> bool:
    """Whether a match of `needle` can overlap the rendering `word` between `left` and
    `right` (all folded)."""
    n, w = len(needle), len(word)
    for at in range(1 - n, w):  # where the needle starts, relative to the word
        lo, hi = max(at, 0), min(at + n, w)
        head = needle[: lo - at]
        body = needle[lo - at : hi - at]
        tail = needle[hi - at :]
        if body == word[lo:hi] and _ends_fit(head, left) and _starts_fit(tail, right):
            return True
    return False


def _run_overlaps(
    needle: str, left: str, chars: frozenset[str], right: str, *, empty: bool = True
) -> bool:
    """Whether a match of `needle` can overlap a rendering made of any number of `chars`
    (folded) between `left` and `right`, or span it when it may be `empty`."""
    n = len(needle)
    for i in range(n + 1):
        if not _ends_fit(needle[:i], left):
            continue
        # An empty rendering (a custom format can give one) joins `left` and `right`.
        if empty and 0 < i < n and _starts_fit(needle[i:], right):
            return True
        for j in range(i + 1, n + 1):
            if needle[j - 1] not in chars:
                break
            if _starts_fit(needle[j:], right):
                return True
    return False


@dataclass(frozen=True)
class _TokenCheck:
    """For one property token of a template and one needle: which of the token's renderings
    could take part in a match (the rows holding the others need no look)."""

    token: templates.PropertyToken
    needle: str  # folded
    before: str | None  # the character rendered just before the token (None: it varies)
    absent: bool  # the token as written, when the event lacks the property
    words: frozenset[int]  # of TAG_NULL, TAG_FALSE, TAG_TRUE
    ints: bool  # INT and BIGINT
    plain_floats: bool  # finite floats that render without an exponent
    far_floats: bool  # finite floats that render with one
    non_finite: bool
    strings_all: bool  # every string (else only those holding the needle)
    json_all: bool  # every array or object (else see `_value_overlap`)
    formatted: bool  # a client's rendering (`@r`) may replace the value
    spans: bool  # a match can join the texts around an empty rendering


def _token_check(
    token: templates.PropertyToken, needle: str, left: str, right: str, before: str | None
) -> _TokenCheck:
    padding = frozenset(" ") if token.alignment is not None else frozenset()
    needle_chars = set(needle)

    def shares(chars: frozenset[str]) -> bool:
        return not needle_chars.isdisjoint(_folded(chars | padding))

    def word(text: str) -> bool:
        if padding:
            chars = _folded(frozenset(text) | padding)
            return _run_overlaps(needle, left, chars, right, empty=False)
        return _word_overlaps(needle, left, fold(text), right)

    # Only a custom format can render a number as nothing (`#` for zero).
    empty = token.format is not None and token.format != "l"

    def run(chars: frozenset[str]) -> bool:
        return _run_overlaps(needle, left, _folded(chars | padding), right, empty=empty)

    plain = _plain_format(token.format)
    words = frozenset(
        tag
        for tag, text in ((B.TAG_NULL, "null"), (B.TAG_FALSE, "False"), (B.TAG_TRUE, "True"))
        if word(text)
    )
    quoted = token.format != "l"
    return _TokenCheck(
        token=token,
        needle=needle,
        before=before,
        absent=_word_overlaps(needle, left, fold(token.raw), right),
        words=words,
        ints=not plain or run(_PLAIN_NUMBER_CHARS),
        plain_floats=not plain or run(_PLAIN_NUMBER_CHARS),
        far_floats=not plain or run(_PLAIN_NUMBER_CHARS | _SCIENTIFIC_CHARS),
        non_finite=not plain
        or any(word(templates.format_number(v, token.format)) for v in _NON_FINITE),
        strings_all=not quoted or '"' in needle or "\\" in needle or shares(frozenset()),
        json_all=token.format is not None
        or shares(_STRUCTURE_CHARS)
        or needle_chars <= set("0123456789-.E+"),
        formatted=token.format is not None,
        spans=any(
            _ends_fit(needle[:i], left) and _starts_fit(needle[i:], right)
            for i in range(1, len(needle))
        ),
    )


@functools.lru_cache(maxsize=4096)
def _template_checks(template: str, needle: str) -> tuple[_TokenCheck, ...] | None:
    """A check per property token of `template`; None when `needle` is in its literal text
    (every event of the template matches)."""
    tokens = templates.parse(template)
    if any(isinstance(t, templates.TextToken) and needle in fold(t.text) for t in tokens):
        return None
    checks: list[_TokenCheck] = []
    for i, token in enumerate(tokens):
        if not isinstance(token, templates.PropertyToken):
            continue
        prev = tokens[i - 1] if i > 0 else None
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        left = fold(prev.text) if isinstance(prev, templates.TextToken) else ""
        right = fold(after.text) if isinstance(after, templates.TextToken) else ""
        before = None if isinstance(prev, templates.PropertyToken) else left[-1:]
        checks.append(_token_check(token, needle, left, right, before))
    return tuple(checks)


@functools.lru_cache(maxsize=256)
def _folded(chars: frozenset[str]) -> frozenset[str]:
    return frozenset(fold(c) for c in chars)


def _contains_any(cache: _Columns, name: str, chars: set[str], idx: np.ndarray) -> BoolArray:
    """For the rows `idx` (all with text): whether each may contain one of `chars`,
    ignoring case (any non-ASCII byte counts when a char is not ASCII or folds from one
    that is not: this only picks rows to render)."""
    found: BoolArray = cache.any_of(name, frozenset(chars))[idx]
    return found


def _float_kinds(stats: ColumnStats) -> tuple[bool, bool, bool]:
    """Whether the block's floats of a column may render (plain, with an exponent, as a
    word), from their range."""
    lo, hi = stats.float_min, stats.float_max
    if lo is None or hi is None:
        return False, False, stats.float_nan
    non_finite = stats.float_nan or math.isinf(lo) or math.isinf(hi)
    plain_only = (
        (lo == hi == 0.0)
        or (lo >= _PLAIN_LOW and hi < _PLAIN_HIGH)
        or (lo > -_PLAIN_HIGH and hi <= -_PLAIN_LOW)
    )
    return True, not plain_only, non_finite


def _reads_value(check: _TokenCheck, stats: ColumnStats, *, strings: bool = True) -> bool:
    """Whether rows of the block could need the token's column looked at, by its
    statistics: which kinds of values it holds (without `strings`: leaving aside the
    strings, arrays, objects and big integers)."""
    if strings and stats.strings is not None:
        # Strings, arrays, objects or big integers, searched or looked at; unless every one
        # is lowercase hex (ids: no arrays or objects) without the needle's characters.
        hex_only = stats.strings == "hex" and not check.strings_all and not check.ints
        if not hex_only or set(check.needle) <= _HEX_FOLDED:
            return True
    tag = stats.const_tag
    floats, far, non_finite = _float_kinds(stats)
    kinds = {
        B.TAG_ABSENT: check.absent,
        B.TAG_NULL: B.TAG_NULL in check.words,
        B.TAG_FALSE: B.TAG_FALSE in check.words,
        B.TAG_TRUE: B.TAG_TRUE in check.words,
        B.TAG_INT: stats.int_min is not None and check.ints,
        B.TAG_FLOAT: (floats and (check.plain_floats or (far and check.far_floats)))
        or (non_finite and check.non_finite),
    }
    if tag is not None:
        return kinds.get(tag, True)
    return any(kinds.values())


# How many rows of a template a token's value could involve.
_NONE: Final = 0
_EVERY: Final = 1  # the block lacks the property, and the token as written could take part
_SOME: Final = 2  # to be found row by row (`_value_overlap`)


def _value_scope(
    cache: _Columns, check: _TokenCheck, stats: Mapping[str, ColumnStats] | None
) -> int:
    """Whether the token's value could take part in a match in no row of the block, in
    every row, or in some.  `stats` are the block's column statistics when the batch may
    lack columns: a column is then read only when its statistics and its strings alone
    cannot rule it out."""
    batch = cache.batch
    name = check.token.name
    if stats is not None:
        col_stats = stats.get(name)
        if col_stats is None:  # no event of the block has the property
            return _EVERY if check.absent else _NONE
        if not _reads_value(check, col_stats):
            return _NONE
        if (
            name not in batch.columns
            and not check.strings_all
            and not check.ints
            and not _reads_value(check, col_stats, strings=False)
            and not cache.strings_matter(name, check)
        ):
            return _NONE  # the strings alone rule the column out
        partial_batch.require(batch, (name,))
    if batch.columns.get(name) is None:
        return _EVERY if check.absent else _NONE
    return _SOME


def _client_rendering(cache: _Columns, check: _TokenCheck, idx: np.ndarray) -> BoolArray | None:
    """For the rows `idx`: whether a client's own rendering of the formatted token (`@r`,
    an array of texts, which replaces the value) could take part in a match."""
    has_r: BoolArray = cache.arrays("@r")[idx]
    if not has_r.any():
        return None
    if check.spans:
        return has_r
    result = np.zeros(idx.size, dtype=np.bool_)
    result[has_r] = _contains_any(cache, "@r", _client_chars(check), idx[has_r])
    return result if result.any() else None


def _dollar_matters(check: _TokenCheck) -> bool:
    """Whether a `$type` tag, rendered before an object's brace, could be where a match
    begins: unless the text before the token ends in a character the needle lacks."""
    return check.before is None or bool(check.before and check.before in check.needle)


def _client_chars(check: _TokenCheck) -> set[str]:
    """Characters one of which a client's rendering of the token must hold to take part in
    a match it cannot span: one of the needle's, or an escape, or alignment padding."""
    padding = {" "} if check.token.alignment is not None else set()
    return set(check.needle) | {"\\"} | padding


def _byte_table(chars: Iterable[str]) -> np.ndarray:
    """A table of the bytes (ASCII, or any non-ASCII one) that text holding one of
    `chars`, ignoring case, must have (see `_native.any_byte_of`)."""
    table = np.zeros(256, dtype=np.uint8)
    found = set(chars)
    for ch in found:
        for form in {ch, ch.lower(), ch.upper(), fold(ch)}:
            if form.isascii() and len(form) == 1:
                table[ord(form)] = 1
            else:
                table[0x80:] = 1
    # Dotless i and long s fold to I and S.
    if found & {"I", "S", "i", "s"}:
        table[0x80:] = 1
    return table


def _value_overlap(
    cache: _Columns, check: _TokenCheck, idx: np.ndarray
) -> tuple[BoolArray | None, BoolArray | None]:
    """For the rows `idx` (the column is read): which certainly match by the token's value
    (a quoted string holding the needle), and which need rendering to tell (None: no row)."""
    name = check.token.name
    col = cache.batch.columns[name]
    tags = col.tags[idx]
    result = np.zeros(idx.size, dtype=np.bool_)
    certain: BoolArray | None = None
    if check.absent and cache.has_tag(name, B.TAG_ABSENT):
        result |= tags == B.TAG_ABSENT
    for tag in check.words:
        if cache.has_tag(name, tag):
            result |= tags == tag
    if check.ints and (cache.has_tag(name, B.TAG_INT) or cache.has_tag(name, B.TAG_BIGINT)):
        result |= (tags == B.TAG_INT) | (tags == B.TAG_BIGINT)
    floating = check.plain_floats or check.far_floats or check.non_finite
    if floating and cache.has_tag(name, B.TAG_FLOAT):
        floats = tags == B.TAG_FLOAT
        ranks = cache.num_ranks(name, col)
        values = col.nums[ranks[idx[floats]]].view(np.float64)
        magnitude = np.abs(values)
        finite = np.isfinite(values)
        plain_range = ((magnitude >= _PLAIN_LOW) & (magnitude < _PLAIN_HIGH)) | (values == 0)
        kinds = np.zeros(values.size, dtype=np.bool_)
        if check.plain_floats:
            kinds |= finite & plain_range
        if check.far_floats:
            kinds |= finite & ~plain_range
        if check.non_finite:
            kinds |= ~finite
        result[floats] |= kinds
    if cache.has_tag(name, B.TAG_JSON):
        collections = tags == B.TAG_JSON
        if check.json_all:
            result |= collections
        elif collections.any():
            # A match inside an array or object lies within one key, string, number or
            # word (the needle has none of the characters between them); keys, strings and
            # words appear in the JSON text as rendered unless escaped; numbers cannot hold
            # the needle's other characters.  A `$type` tag renders before the brace, where
            # a match could begin in the text before the token, unless that text ends in a
            # character the needle does not have.
            rows = idx[collections]
            odd = {"\\", "$"} if _dollar_matters(check) else {"\\"}
            result[collections] |= cache.hits(name, check.needle, rows) | _contains_any(
                cache, name, odd, rows
            )
    if cache.has_tag(name, B.TAG_STRING):
        if check.strings_all:
            result |= tags == B.TAG_STRING
        elif cache.any_hit(name, check.needle):
            strings = tags == B.TAG_STRING
            contains = np.zeros(idx.size, dtype=np.bool_)
            contains[strings] = cache.hits(name, check.needle, idx[strings])
            if check.formatted:
                result |= contains  # an `@r` text may replace the value
            else:
                certain = contains  # the value is in the message as it is, between quotes
    return certain, (result if result.any() else None)
