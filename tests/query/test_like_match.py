"""`like` matching without a regular-expression engine, against a regex translation."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from seqfast.query.vector_strings import like_match

patterns = st.text(st.sampled_from(["a", "b", "%", "_", "é", "𝒜"]), max_size=8).filter(
    lambda p: "%%" not in p
)
texts = st.text(st.sampled_from(["a", "b", "é", "𝒜", "\n"]), max_size=10)


def by_regex(pattern: str, text: str) -> bool:
    parts = ("." if ch == "_" else ".*" if ch == "%" else re.escape(ch) for ch in pattern)
    return re.fullmatch("".join(parts), text, re.DOTALL) is not None


@given(patterns, texts)
def test_agrees_with_the_regex_translation(pattern: str, text: str) -> None:
    assert like_match(pattern, text) is by_regex(pattern, text)


def test_examples() -> None:
    assert like_match("%timeout%", "Upstream timeout calling")
    assert like_match("t_m%", "timeout")
    assert not like_match("t_m", "timeout")
    assert like_match("%a_b%", "xxaxbyy")
    assert like_match("a%a", "aa")
    assert not like_match("a%a", "a")
    assert like_match("", "")
    assert like_match("%", "")


def test_many_wildcards_on_a_long_text_finish() -> None:
    # A backtracking engine takes time polynomial in the number of `%` here.
    assert not like_match("%a%a%a%a%a%a%b", "a" * 100_000)
    assert like_match("%a_a%a_a%b", "a" * 100_000 + "b")
