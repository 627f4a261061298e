"""`contains_any`: whether some string of a list contains a text, against pure Python and
against `match_strings` over the same list (its answer for the list as a whole)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast import _native
from seqfast.query.values import fold

MODE_CONTAINS = 1
# ASCII, the non-ASCII letters that fold onto ASCII ones (dotless i, long s) or change case
# in odd ways (dotted I, sharp s, final sigma, Kelvin sign), and an astral character.
ALPHABET = "aAbBiIsStT0 ıİſßσςΣ\u212a\U0001d4af"
strings = st.lists(st.text(st.sampled_from(ALPHABET), max_size=8), max_size=8)
needles = st.text(st.sampled_from(ALPHABET), max_size=3)


def encode(texts: list[str], prefix: str = "") -> tuple[np.ndarray, bytes]:
    parts = [t.encode("utf-8") for t in [prefix, *texts]]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return offsets[1:], b"".join(parts)  # the prefix lies before the first string


def combined(per_string: np.ndarray) -> int:
    """`match_strings`' answers for a whole list: 1 if any is 1, else 2 if any is 2, else 0."""
    if (per_string == 1).any():
        return 1
    return 2 if (per_string == 2).any() else 0


@settings(max_examples=1500, deadline=None)
@given(strings, needles, st.sampled_from(["", "ti", "ı"]), st.booleans())
def test_contains_any_agrees_with_python_and_match_strings(
    texts: list[str], text: str, prefix: str, case_insensitive: bool
) -> None:
    needle = fold(text) if case_insensitive else text
    offsets, data = encode(texts, prefix)
    raw = needle.encode("utf-8")
    answer = _native.contains_any(offsets, data, raw, case_insensitive)
    per_string = _native.match_strings(offsets, data, b"", raw, MODE_CONTAINS, case_insensitive)
    assert answer == combined(per_string)
    if case_insensitive:
        exact = any(needle in fold(t) for t in texts)
    else:
        exact = any(needle in t for t in texts)
    if answer != 2:
        assert answer == int(exact)
    else:
        assert case_insensitive  # bytes decide every case-sensitive search


def test_matches_never_span_two_strings() -> None:
    offsets, data = encode(["abti", "meout", "x"])
    assert _native.contains_any(offsets, data, b"TIMEOUT", True) == 0
    assert _native.contains_any(offsets, data, b"TIMEOUT", False) == 0
    offsets, data = encode(["ab", "xtimeoutx"])
    assert _native.contains_any(offsets, data, b"TIMEOUT", True) == 1
    assert _native.contains_any(offsets, data, b"timeout", False) == 1
    assert _native.contains_any(offsets, data, b"TIMEOUT", False) == 0


def test_edge_cases() -> None:
    empty = np.zeros(1, dtype=np.int64)
    assert _native.contains_any(empty, b"", b"A", True) == 0
    assert _native.contains_any(empty, b"", b"", True) == 0  # no string at all
    offsets, data = encode([""])
    assert _native.contains_any(offsets, data, b"", True) == 1  # every string holds ""
    # Dotless i folds to I: bytes cannot tell, so the caller decides.
    offsets, data = encode(["tımeout"])
    assert _native.contains_any(offsets, data, b"TIMEOUT", True) == 2
    offsets, data = encode(["tımeout", "TIMEOUT"])
    assert _native.contains_any(offsets, data, b"TIMEOUT", True) == 1


def test_bad_offsets_are_refused() -> None:
    bad = np.array([0, 5], dtype=np.int64)
    with pytest.raises(ValueError):
        _native.contains_any(bad, b"abc", b"A", True)
