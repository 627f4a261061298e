"""The native string kernels (native/kernels.pyx) against plain Python: an answer of 0 or 1
must be exact, and 2 (undecided) may only come where bytes cannot decide."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast import _native
from seqfast.query.values import fold

# Characters chosen to trip byte-level matching: dotless i and long s fold to ASCII, others
# fold to non-ASCII, ß has no single-character upper case, 𝒜 is astral.
CHARS = [*"aAiIsSkK%_ xé", "ı", "ſ", "É", "ß", "K", "𝒜", "σ", "Σ"]
texts = st.text(st.sampled_from(CHARS), max_size=8)


def encode(strings: list[str]) -> tuple[np.ndarray, bytes]:
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return offsets, b"".join(encoded)


def expected_match(text: str, needle: str, mode: int, ci: bool) -> bool:
    if ci:
        text, needle = fold(text), fold(needle)
    return [text == needle, needle in text, text.startswith(needle), text.endswith(needle)][mode]


@settings(max_examples=500, deadline=None)
@given(st.lists(texts, max_size=6), texts, st.integers(0, 3), st.booleans())
def test_match_strings(strings: list[str], needle: str, mode: int, ci: bool) -> None:
    offsets, data = encode(strings)
    folded = fold(needle) if ci else needle
    out = _native.match_strings(offsets, data, b"", folded.encode("utf-8"), mode, ci)
    for text, answer in zip(strings, out.tolist(), strict=True):
        if answer == 2:
            assert ci and not (folded.isascii() and text.isascii())
        else:
            assert bool(answer) == expected_match(text, needle, mode, ci), (text, needle)


@settings(max_examples=500, deadline=None)
@given(st.lists(texts, max_size=6), texts.filter(lambda p: "%%" not in p), st.booleans())
def test_like_strings(strings: list[str], pattern: str, ci: bool) -> None:
    offsets, data = encode(strings)
    folded = fold(pattern) if ci else pattern
    regex = "".join("." if c == "_" else ".*" if c == "%" else re.escape(c) for c in folded)
    out = _native.like_strings(offsets, data, b"", folded.encode("utf-8"), ci)
    for text, answer in zip(strings, out.tolist(), strict=True):
        if answer == 2:
            assert not text.isascii()
        else:
            subject = fold(text) if ci else text
            assert bool(answer) == (re.fullmatch(regex, subject, re.DOTALL) is not None)


def test_rows_limit_the_work_and_lengths_count_utf16_units() -> None:
    offsets, data = encode(["abc", "ABC", "x𝒜"])
    rows = np.array([1, 0, 1], dtype=np.uint8)
    assert _native.match_strings(offsets, data, rows, b"ABC", 0, True).tolist() == [1, 0, 0]
    assert _native.string_lengths_utf16(offsets, data).tolist() == [3, 3, 3]
    pairs = _native.equal_string_pairs(offsets, data, offsets, data, b"", False)
    assert pairs.tolist() == [1, 1, 1]
