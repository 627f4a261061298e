"""String predicates over `Values`: equality, containment, prefixes, suffixes and `like`.

The native kernels answer for ASCII text in one pass without the GIL; the rare strings they
leave undecided (non-ASCII text under `ci`, or `_` counting characters) are answered here with
the language's exact rules.  When the values carry a dictionary, the kernels run over the
distinct strings only and the answer is spread to the rows by code.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from seqfast import _native
from seqfast.query.values import K_STRING, BoolArray, QueryError, Values, fold

MODE_EQUALS: Final = 0
MODE_CONTAINS: Final = 1
MODE_STARTS: Final = 2
MODE_ENDS: Final = 3


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _python_match(text: str, needle: str, mode: int, ci: bool) -> bool:
    # `needle` is already folded under `ci`.  Comparing code points gives the same answers as
    # comparing UTF-16 units for these four questions.
    if ci:
        text = fold(text)
    if mode == MODE_EQUALS:
        return text == needle
    if mode == MODE_CONTAINS:
        return needle in text
    if mode == MODE_STARTS:
        return text.startswith(needle)
    return text.endswith(needle)


def _piece_at(piece: str, text: str, at: int) -> bool:
    """Whether `piece` (literal characters and `_`) matches `text` at `at`."""
    if "_" not in piece:
        return text.startswith(piece, at)
    return all(p == "_" or p == t for p, t in zip(piece, text[at : at + len(piece)], strict=True))


def _find_piece(piece: str, text: str, start: int, end: int) -> int:
    """The leftmost index in [start, end - len(piece)] where `piece` matches, or -1."""
    if "_" not in piece:
        return text.find(piece, start, end)
    # Anchor on the piece's longest literal run, then check the whole piece around it.
    run = max(piece.split("_"), key=len)
    offset = piece.index(run) if run else 0
    at = start
    while at + len(piece) <= end:
        if run:
            found = text.find(run, at + offset, end - (len(piece) - offset - len(run)))
            if found < 0:
                return -1
            at = found - offset
        if _piece_at(piece, text, at):
            return at
        at += 1
    return -1


def like_match(pattern: str, text: str) -> bool:
    """Whether the `like` pattern (`%` any run, `_` one character) matches all of `text`.

    Not a regular expression: a backtracking engine takes polynomial time in the number of
    `%` (and user patterns may come from a column), while this takes each `%`-separated piece
    at its leftmost place, which is always safe because pieces have fixed length -- the scan
    is at most pieces x text long."""
    pieces = pattern.split("%")
    if len(pieces) == 1:
        return len(text) == len(pattern) and _piece_at(pattern, text, 0)
    first, *middle, last = pieces
    end = len(text) - len(last)
    if end < len(first) or not _piece_at(first, text, 0) or not _piece_at(last, text, end):
        return False
    at = len(first)
    for piece in middle:
        found = _find_piece(piece, text, at, end)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def check_like_pattern(pattern: str) -> None:
    if "?" in pattern or "%%" in pattern:
        raise QueryError(
            f"the like pattern {pattern!r} is not supported: '?' and '%%' have no agreed "
            "meaning in Seq's language"
        )


def _string_rows(values: Values, rows: BoolArray | None) -> BoolArray:
    mask: BoolArray = values.kind == K_STRING
    if rows is not None:
        mask &= rows
    return mask


def _dictionary(values: Values) -> tuple[np.ndarray, list[str]]:
    found = values.string_dictionary()
    assert found is not None
    return found


def match(
    values: Values, needle: str, mode: int, ci: bool, rows: BoolArray | None = None
) -> BoolArray:
    """Rows (of `rows`, default all) holding a string that equals / contains / starts with /
    ends with `needle` (mode), ignoring case with `ci`; False for every other row."""
    mask = _string_rows(values, rows)
    result: BoolArray = np.zeros(values.n, dtype=np.bool_)
    if not mask.any():
        return result
    folded = fold(needle) if ci else needle
    encoded = _encode(folded)
    if values.has_dictionary():
        codes, distinct = _dictionary(values)
        offsets, data = values.dictionary_strings()
        table = _native.match_strings(offsets, data, b"", encoded, mode, ci)
        for j in np.flatnonzero(table == 2).tolist():
            table[j] = _python_match(distinct[j], folded, mode, ci)
        result[mask] = table[codes[mask]] == 1
        return result
    offsets, data = values.dense_strings()
    out = _native.match_strings(offsets, data, mask.view(np.uint8), encoded, mode, ci)
    undecided = np.flatnonzero(out == 2)
    result = out == 1
    if undecided.size:
        for row, text in zip(undecided.tolist(), values.strings_at(undecided), strict=True):
            result[row] = _python_match(text, folded, mode, ci)
    return result


def _simple_like(pattern: str) -> tuple[int, str] | None:
    """(mode, text) when the pattern says equals / contains / starts with / ends with a
    literal text (no `_`, `%` only at the ends), which the faster search answers."""
    if "_" in pattern:
        return None
    if pattern == "%":
        return (MODE_CONTAINS, "")
    inner = pattern.strip("%")
    if "%" in inner:
        return None
    starts, ends = pattern.startswith("%"), pattern.endswith("%")
    if starts and ends:
        return (MODE_CONTAINS, inner)
    if starts:
        return (MODE_ENDS, inner)
    if ends:
        return (MODE_STARTS, inner)
    return (MODE_EQUALS, inner)


def like(values: Values, pattern: str, ci: bool, rows: BoolArray | None = None) -> BoolArray:
    """Rows holding a string that the `like` pattern matches as a whole."""
    check_like_pattern(pattern)
    simple = _simple_like(pattern)
    if simple is not None:
        return match(values, simple[1], simple[0], ci, rows)
    mask = _string_rows(values, rows)
    result: BoolArray = np.zeros(values.n, dtype=np.bool_)
    if not mask.any():
        return result
    folded = fold(pattern) if ci else pattern
    encoded = _encode(folded)

    def exact(text: str) -> bool:
        return like_match(folded, fold(text) if ci else text)

    if values.has_dictionary():
        codes, distinct = _dictionary(values)
        offsets, data = values.dictionary_strings()
        table = _native.like_strings(offsets, data, b"", encoded, ci)
        for j in np.flatnonzero(table == 2).tolist():
            table[j] = exact(distinct[j])
        result[mask] = table[codes[mask]] == 1
        return result
    offsets, data = values.dense_strings()
    out = _native.like_strings(offsets, data, mask.view(np.uint8), encoded, ci)
    undecided = np.flatnonzero(out == 2)
    result = out == 1
    for row, text in zip(undecided.tolist(), values.strings_at(undecided), strict=True):
        result[row] = exact(text)
    return result


def equal_pairs(a: Values, b: Values, ci: bool, rows: BoolArray) -> BoolArray:
    """Rows (of `rows`, where both sides are strings) whose two strings are equal."""
    if not rows.any():
        return np.zeros(a.n, dtype=np.bool_)
    a_offsets, a_data = a.dense_strings()
    b_offsets, b_data = b.dense_strings()
    out = _native.equal_string_pairs(a_offsets, a_data, b_offsets, b_data, rows.view(np.uint8), ci)
    undecided = np.flatnonzero(out == 2)
    result: BoolArray = out == 1
    if undecided.size:
        for row, x, y in zip(
            undecided.tolist(), a.strings_at(undecided), b.strings_at(undecided), strict=True
        ):
            result[row] = fold(x) == fold(y)
    return result


def utf16_lengths(values: Values) -> np.ndarray:
    """Per row: the length of the row's string in UTF-16 units (0 for other rows)."""
    if values.has_dictionary():
        codes, _ = _dictionary(values)
        offsets, data = values.dictionary_strings()
        table = _native.string_lengths_utf16(offsets, data)
        return np.where(codes >= 0, table[np.maximum(codes, 0)], 0) if table.size else codes * 0
    offsets, data = values.dense_strings()
    return _native.string_lengths_utf16(offsets, data)
