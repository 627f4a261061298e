"""Regular-expression literals (seqfast/query/regex.py): .NET spellings read as .NET reads
them, constructs that need backtracking refused by name, linear time on patterns that
backtracking engines take exponential time on, and .NET replacement text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast.query.regex import compile_regex, expand_replacement


def full(pattern: str, text: str, ci: bool = False) -> bool:
    return compile_regex(pattern, ci).fullmatch(text) is not None


def found(pattern: str, text: str, ci: bool = False) -> bool:
    return compile_regex(pattern, ci).search(text) is not None


def replace(pattern: str, text: str, replacement: str, ci: bool = False) -> str:
    return compile_regex(pattern, ci).sub(lambda m: expand_replacement(m, replacement), text)


# --- linear time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern", ["(a+)+$", "(a|a)*b", "(a|aa)+$", "(.*a){20}", "(\\w+\\s?)+$", "(a*)*b"]
)
def test_patterns_that_backtrack_exponentially_finish(pattern: str) -> None:
    # Would not finish with a backtracking engine; no timing is asserted, finishing is the test.
    text = "a" * 100_000 + "!"
    regex = compile_regex(pattern, False)
    assert regex.fullmatch(text) is None
    assert regex.search(text) is None or pattern == "(.*a){20}"
    assert regex.search_each([text, text]) == [regex.search(text) is not None] * 2


@pytest.mark.parametrize("unit", ["(?<", "(?'", "\\p{", "\\x{", "{1", "["])
def test_reading_a_hostile_pattern_finishes(unit: str) -> None:
    # Each unit opens something never closed: reading stays linear in the pattern's length.
    with pytest.raises(ValueError, match="invalid regular expression"):
        compile_regex(unit * 100_000 + "(", False)


# --- refused constructs -----------------------------------------------------------------------

REFUSED = [
    ("(a)\\1", "back-references are not supported"),
    ("(?<n>a)\\k<n>", "back-references are not supported"),
    ("(?'n'a)\\k'n'", "back-references are not supported"),
    ("(?P<n>a)(?P=n)", "back-references are not supported"),
    ("a(?=b)", "look-ahead is not supported"),
    ("a(?!b)", "look-ahead is not supported"),
    ("(?<=a)b", "look-behind is not supported"),
    ("(?<!a)b", "look-behind is not supported"),
    ("(?>a+)b", "atomic groups are not supported"),
    ("a*+b", "possessive quantifiers are not supported"),
    ("a++b", "possessive quantifiers are not supported"),
    ("a?+b", "possessive quantifiers are not supported"),
    ("a{2,3}+b", "possessive quantifiers are not supported"),
    ("(?<open>\\()(?<close-open>\\))", "balancing groups are not supported"),
    ("(?<-open>x)", "balancing groups are not supported"),
    ("(?(a)b|c)", "conditional groups are not supported"),
    ("[a-z-[aeiou]]", "character-class subtraction is not supported"),
    ("a\\Cb", "\\C (any byte) is not supported"),
    ("[\\W\\d]", "\\W or \\S inside a character class with other members"),
]


@pytest.mark.parametrize(("pattern", "reason"), REFUSED)
@pytest.mark.parametrize("ci", [False, True])
def test_constructs_needing_backtracking_are_refused_by_name(
    pattern: str, reason: str, ci: bool
) -> None:
    with pytest.raises(ValueError) as raised:
        compile_regex(pattern, ci)
    message = str(raised.value)
    assert message.startswith(f"invalid regular expression /{pattern}/: ")
    assert reason in message


def test_the_back_reference_message_says_why() -> None:
    with pytest.raises(ValueError) as raised:
        compile_regex("(a)\\1", False)
    assert str(raised.value) == (
        "invalid regular expression /(a)\\1/: back-references are not supported "
        "(regular expressions run in linear time)"
    )


@pytest.mark.parametrize(
    "pattern", ["(", "a)", "[a", "a{2000}", "\\p{IsGreek}", "(?x)a", "\\", "a(?#b"]
)
def test_invalid_patterns_name_the_pattern(pattern: str) -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        compile_regex(pattern, False)


def test_look_alikes_are_not_refused() -> None:
    # A `+` after a group or a lazy quantifier, `\1` inside a class (an octal escape),
    # and `(?` flags are not the refused constructs.
    assert full("(a+)+", "aaa")
    assert full("a+?b", "aab")
    assert full("[\\1]", "\x01")
    assert full("(?i)abc", "ABC")
    assert full("(?s)a.b", "a\nb")
    assert full("(?m)a$\\nb", "a\nb")


# --- .NET spellings -----------------------------------------------------------------------------


def test_named_groups_in_both_spellings() -> None:
    match = compile_regex("(?<user>\\w+)@(?'host'[a-z.]+)", False).fullmatch("ann@example.org")
    assert match is not None
    assert match.group("user") == "ann"
    assert match.group("host") == "example.org"
    assert match.group(2) == "example.org"
    assert full("(?P<user>a)", "a")


def test_end_anchors() -> None:
    assert found("b\\z", "ab")
    assert not found("b\\z", "ab\n")
    # `\Z` and `$` match at the very end only: .NET's "or before a final newline" needs a
    # look-ahead.  `\n?` before the anchor says it.
    assert found("b\\Z", "ab")
    assert not found("b\\Z", "ab\n")
    assert not found("b$", "ab\n")
    assert found("b\\n?$", "ab\n")
    assert found("(?m)b$", "ab\nc")
    assert found("\\Ab", "bc")
    assert not found("\\Ab", "abc")


def test_escapes_and_classes_read_as_dotnet_reads_them() -> None:
    assert full("\\u00e9\\u00C9", "éÉ")
    assert full("\\e", "\x1b")
    assert full("a(?#a comment)b", "ab")
    assert full("[]a]+", "]a]")
    # Not a POSIX class in .NET: a class of `[`, `:`, `a`, `l`, `p`, `h`, then a `]`.
    assert full("[[:alpha:]]", ":]")
    assert not full("[[:alpha:]]", "b]")
    assert full("[a\\b]", "\b")  # backspace inside a class
    assert full("\\x41\\x{42}", "AB")


def test_shorthand_classes_are_unicode() -> None:
    assert full("\\w+", "élan_Ω9")
    assert full("\\d+", "٣4")  # Arabic-Indic three
    assert full("\\s+", " \t\u00a0\u2003\v\x85")
    assert full("\\W\\S\\D", "-xé")
    assert not full("\\W", "é")
    assert full("[\\w-]+", "é-a")
    assert full("[^\\W]+", "é1")
    assert full("[\\W]", "-")
    assert full("[\\s\\S]+", "a\nb")
    assert full("[^\\d]+", "abc")
    assert not full("[^\\d]", "٣")
    assert full("[\\D]", "é")


def test_word_boundaries_see_ascii_word_characters() -> None:
    assert found("\\bcat\\b", "a cat here")
    assert not found("\\bcat\\b", "concatenate")
    # RE2's rule: é is not a word character to `\b`.
    assert found("\\bcaf\\b", "café")


def test_leftmost_first_like_a_backtracking_engine() -> None:
    match = compile_regex("a|ab", False).search("ab")
    assert match is not None and match.group(0) == "a"
    lazy = compile_regex("<.+?>", False).search("<a><b>")
    assert lazy is not None and lazy.group(0) == "<a>"


# --- case ---------------------------------------------------------------------------------------

CI_CASES = [
    ("é", "É", True),
    ("ß", "ẞ", True),
    ("ß", "SS", False),  # no multi-character folding
    ("σ", "Σ", True),
    ("σ", "ς", True),
    ("ς", "Σ", True),
    ("k", "\u212a", True),  # Kelvin sign
    ("s", "ſ", True),
    ("i", "I", True),
    ("i", "İ", False),  # the Turkish i's match only themselves
    ("i", "ı", False),
    ("I", "ı", False),
    ("İ", "İ", True),
    ("[a-z]+", "ABC", True),
    ("[a-zé]+", "ÉLAN", True),
]


@pytest.mark.parametrize(("pattern", "text", "matches"), CI_CASES)
def test_ci_folds_unicode_simple_case(pattern: str, text: str, matches: bool) -> None:
    assert full(pattern, text, ci=True) is matches
    if len(pattern) == 1:  # a literal: without `ci`, only itself
        assert full(pattern, text) is (pattern == text)


# --- positions and replacement ----------------------------------------------------------------


def test_positions_are_in_characters() -> None:
    match = compile_regex("(b+)(x)?", False).search("éé𝒜bb")
    assert match is not None
    assert (match.start(), match.end()) == (3, 5)
    assert (match.start(1), match.end(1)) == (3, 5)
    assert match.group(2) is None
    assert match.start(2) == -1
    with pytest.raises(IndexError):
        match.group(3)
    with pytest.raises(IndexError):
        match.group("nope")


def test_lone_surrogates_are_characters() -> None:
    assert full("a.b", "a\ud800b")
    assert compile_regex("b", False).search_each(["a\ud800b", "a"]) == [True, False]
    assert replace("\\d", "\ud8001", "#") == "\ud800#"


REPLACEMENTS = [
    ("(\\d+)\\.(\\d+)", "10.0.1.0", "$2-$1", "0-10.0-1"),
    ("(?<first>.)", "ab", "${first}$$", "a$b$"),
    ("b", "abc", "[$&]", "a[b]c"),
    ("b", "abc", "$1", "a$1c"),  # no such group: as written
    ("(b)", "abc", "${1}${2}${x}", "ab${2}${x}c"),
    ("(b)(x)?", "abc", "<$2>", "a<>c"),  # a group that did not take part: empty
    ("x*", "abxd", "-", "-a-b--d-"),  # empty matches, .NET's order
    ("", "é𝒜", "-", "-é-𝒜-"),
    ("é", "éaé", "e", "eae"),
    ("^a", "aaa", "b", "baa"),
    ("a$", "aaa", "b", "aab"),
    ("\\bw", "w ww", "W", "W Ww"),
]


@pytest.mark.parametrize(("pattern", "text", "replacement", "expected"), REPLACEMENTS)
def test_replacement_text_reads_dotnet_substitutions(
    pattern: str, text: str, replacement: str, expected: str
) -> None:
    assert replace(pattern, text, replacement) == expected


def test_replace_ignoring_case() -> None:
    assert replace("L", "Alice", "$&$&", ci=True) == "Allice"


# --- many texts at once -----------------------------------------------------------------------

PATTERNS = ["a", "b+", "x*", "\\bab", "ab\\b", "^a", "b$", "a.", "[^a]", "é|𝒜", "\\W", "(a)(b)?"]
TEXTS = st.text(st.sampled_from([*"ab -\n", "é", "𝒜", "\ud800", "ÿ"]), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATTERNS), st.booleans(), st.lists(TEXTS, max_size=8))
def test_search_each_is_search_per_text(pattern: str, ci: bool, texts: list[str]) -> None:
    regex = compile_regex(pattern, ci)
    assert regex.search_each(texts) == [regex.search(text) is not None for text in texts]
