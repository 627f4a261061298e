"""Tokens of Seq's query language: every literal form, operators, regex/divide, errors."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqfast.query.errors import QuerySyntaxError
from seqfast.query.lexer import DECIMAL_MAX, Token, TokenKind, scan, tokenize

K = TokenKind


def only(text: str, *, query: bool = False) -> Token:
    """The one token `text` lexes to."""
    tokens = tokenize(text, query=query)
    assert tokens[-1].kind is K.EOF
    assert len(tokens) == 2, tokens
    return tokens[0]


def kinds(text: str, *, query: bool = False) -> list[tuple[TokenKind, str]]:
    return [(t.kind, t.text) for t in tokenize(text, query=query)[:-1]]


# --- literals -------------------------------------------------------------------------------

NUMBERS: list[tuple[str, Decimal]] = [
    ("0", Decimal(0)),
    ("42", Decimal(42)),
    ("12.34", Decimal("12.34")),
    ("0.5", Decimal("0.5")),
    ("007", Decimal(7)),
    ("0xa1b234ff", Decimal(0xA1B234FF)),
    ("0xFF", Decimal(255)),
    ("0X10", Decimal(16)),
    (str(int(DECIMAL_MAX)), DECIMAL_MAX),
]


@pytest.mark.parametrize(("text", "value"), NUMBERS)
def test_numbers(text: str, value: Decimal) -> None:
    token = only(text)
    assert token.kind is K.NUMBER
    assert token.value == value
    assert (token.start, token.end) == (0, len(text))


DURATIONS: list[tuple[str, tuple[tuple[int, str], ...], Decimal | None]] = [
    ("1d", ((1, "d"),), Decimal(864_000_000_000)),
    ("2h", ((2, "h"),), Decimal(72_000_000_000)),
    ("3m", ((3, "m"),), Decimal(1_800_000_000)),
    ("4s", ((4, "s"),), Decimal(40_000_000)),
    ("5ms", ((5, "ms"),), Decimal(50_000)),
    ("6us", ((6, "us"),), Decimal(60)),
    ("6μs", ((6, "us"),), Decimal(60)),  # Greek mu
    ("6µs", ((6, "us"),), Decimal(60)),  # micro sign
    ("7ns", ((7, "ns"),), Decimal("0.07")),
    ("30d", ((30, "d"),), Decimal(25_920_000_000_000)),
    ("1h30m", ((1, "h"), (30, "m")), Decimal(54_000_000_000)),
    ("1d2h3m4s5ms", ((1, "d"), (2, "h"), (3, "m"), (4, "s"), (5, "ms")), None),
]


@pytest.mark.parametrize(("text", "parts", "ticks"), DURATIONS)
def test_durations(text: str, parts: tuple[tuple[int, str], ...], ticks: Decimal | None) -> None:
    from seqfast.query.lexer import duration_ticks

    token = only(text)
    assert token.kind is K.DURATION
    assert token.value == parts
    if ticks is not None:
        assert duration_ticks(parts) == ticks


STRINGS: list[tuple[str, str]] = [
    ("''", ""),
    ("'single quoted'", "single quoted"),
    ("'can''t'", "can't"),
    ("''''", "'"),
    ("'a\\nb'", "a\\nb"),  # no backslash escapes in strings
    ("'\"double\" inside'", '"double" inside'),
    ("'line\nbreak'", "line\nbreak"),
    ("'-- not a comment'", "-- not a comment"),
]


@pytest.mark.parametrize(("text", "value"), STRINGS)
def test_strings(text: str, value: str) -> None:
    token = only(text)
    assert token.kind is K.STRING
    assert token.value == value


TEXTS: list[tuple[str, str]] = [
    ('"timeout"', "timeout"),
    ('"New users \\"Lucy\\" created"', 'New users "Lucy" created'),
    ('"back\\\\slash"', "back\\slash"),
    ('"tab\\tnew\\nline\\r"', "tab\tnew\nline\r"),
    ('"\\u00e9t\\u00E9"', "été"),
    ('"it\'s"', "it's"),
    ('"\\/\\b\\f\\v\\0\\\'"', "/\b\f\v\0'"),
]


@pytest.mark.parametrize(("text", "value"), TEXTS)
def test_text_fragments(text: str, value: str) -> None:
    token = only(text)
    assert token.kind is K.TEXT
    assert token.value == value


REGEXES: list[tuple[str, str]] = [
    ("/System.(Web|Api)/", "System.(Web|Api)"),
    ("/a\\/b/", "a\\/b"),
    ("/a\\\\/", "a\\\\"),  # an escaped backslash does not escape the closing slash
    ("//", ""),
    ("/^\\d+$/", "^\\d+$"),
]


@pytest.mark.parametrize(("text", "pattern"), REGEXES)
def test_regular_expressions(text: str, pattern: str) -> None:
    token = only(text)
    assert token.kind is K.REGEX
    assert token.value == pattern


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("@Timestamp", K.BUILTIN, "Timestamp"),
        ("@t", K.BUILTIN, "t"),
        ("@_x1", K.BUILTIN, "_x1"),
        ("$var", K.VARIABLE, "var"),
        ("Name", K.WORD, None),
        ("_private", K.WORD, None),
        ("Größe", K.WORD, None),
        ("état2", K.WORD, None),
        ("AND", K.WORD, None),
    ],
)
def test_names(text: str, kind: TokenKind, value: str | None) -> None:
    token = only(text)
    assert token.kind is kind
    assert token.value == value


def test_keywords_compare_case_insensitively() -> None:
    token = only("NoT")
    assert token.is_word("not")
    assert not token.is_word("and")


# --- operators and punctuation ---------------------------------------------------------------

PUNCTUATION = ["<>", "<=", ">=", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":"]
PUNCTUATION += ["?", "*", "+", "-", "%", "^", "|"]


@pytest.mark.parametrize("symbol", PUNCTUATION)
def test_punctuation(symbol: str) -> None:
    assert kinds(f"a {symbol}") == [(K.WORD, "a"), (K.PUNCT, symbol)]


@pytest.mark.parametrize("symbol", ["==", "!=", "&&", "=>", "=<", "!", "&"])
def test_operators_from_other_languages_are_mistake_tokens(symbol: str) -> None:
    assert kinds(f"a {symbol} b") == [(K.WORD, "a"), (K.MISTAKE, symbol), (K.WORD, "b")]


def test_longest_operator_wins() -> None:
    assert kinds("a<=b<>c>=d") == [
        (K.WORD, "a"),
        (K.PUNCT, "<="),
        (K.WORD, "b"),
        (K.PUNCT, "<>"),
        (K.WORD, "c"),
        (K.PUNCT, ">="),
        (K.WORD, "d"),
    ]


def test_number_then_member_access() -> None:
    assert kinds("1.x") == [(K.NUMBER, "1"), (K.PUNCT, "."), (K.WORD, "x")]
    assert kinds("1.5.x") == [(K.NUMBER, "1.5"), (K.PUNCT, "."), (K.WORD, "x")]
    assert kinds("1d.x") == [(K.DURATION, "1d"), (K.PUNCT, "."), (K.WORD, "x")]


# --- `/`: regular expression or division ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "/x/",
        "a = /x/",
        "a <> /x/",
        "(/x/)",
        "[/x/]",
        "f(a, /x/)",
        "a and /x/",
        "a or /x/",
        "not /x/",
        "a like /x/",
        "a in /x/",
        "a < /x/",
        "a <= /x/",
        "a > /x/",
        "a >= /x/",
        "if /x/ then /x/ else /x/",
        "{a: /x/}",
        "a == /x/",
        "a is /x/",
    ],
)
def test_slash_opens_a_regex_where_an_operand_must_follow(text: str) -> None:
    assert K.REGEX in [t.kind for t in tokenize(text)]


@pytest.mark.parametrize(
    "text", ["a / b / c", "1 / 2", "(a) / 2", "a[0] / 2", "f(x) / 2", "'s' / 2"]
)
def test_slash_divides_after_an_operand(text: str) -> None:
    assert K.REGEX not in [t.kind for t in tokenize(text)]


@pytest.mark.parametrize("word", ["select", "where", "having", "by"])
def test_query_clause_words_open_a_regex_in_queries_only(word: str) -> None:
    assert tokenize(f"{word} /x/", query=True)[1].kind is K.REGEX
    assert tokenize(f"{word} /x/ 2")[1].kind is K.PUNCT


# --- blanks and comments ---------------------------------------------------------------------


def test_comments_run_to_the_end_of_the_line_in_queries() -> None:
    text = "select count(*) -- every event\nfrom stream -- all of it"
    assert [t.text for t in tokenize(text, query=True)[:-1]] == [
        "select",
        "count",
        "(",
        "*",
        ")",
        "from",
        "stream",
    ]


def test_double_minus_is_not_a_comment_in_filters() -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        tokenize("a --b")
    assert caught.value.position == 2
    assert caught.value.suggestion is not None and "- -x" in caught.value.suggestion
    assert kinds("a - -b") == [(K.WORD, "a"), (K.PUNCT, "-"), (K.PUNCT, "-"), (K.WORD, "b")]


def test_spans_point_into_the_text() -> None:
    text = "  @Level  =\t'x'\n"
    tokens = tokenize(text)
    assert [(t.start, t.end) for t in tokens] == [(2, 8), (10, 11), (12, 15), (16, 16)]


def test_empty_input_is_just_the_end() -> None:
    assert [t.kind for t in tokenize("")] == [K.EOF]
    assert [t.kind for t in tokenize(" \t\n")] == [K.EOF]


# --- errors ----------------------------------------------------------------------------------

LEXICAL_ERRORS: list[tuple[str, int, str, str | None]] = [
    # text, position, part of `expected`, part of the suggestion (None: no suggestion)
    ("'unterminated", 0, "closing `'`", "''"),
    ("a = 'x", 4, "closing `'`", "''"),
    ('"unterminated', 0, 'closing `"`', '\\"'),
    ('"bad \\q escape"', 5, "escape", "\\\\"),
    ('"\\u12"', 1, "escape", "\\\\"),
    ("a = /unterminated", 4, "closing `/`", "\\/"),
    ("a ~ b", 2, "expression or an operator", "= /pattern/"),
    ("a = `x`", 4, "expression or an operator", "single quotes"),
    ("a; b", 1, "expression or an operator", "one statement"),
    ("a # b", 2, "expression or an operator", None),
    ("1.5h", 0, "duration", "1h30m"),
    ("3x", 0, "duration", "lower case"),
    ("10min", 0, "duration", "lower case"),
    ("1H", 0, "duration", "lower case"),
    ("1e5", 0, "duration", "exponent"),
    ("404NotFound", 0, "duration", "lower case"),
    ("0x", 0, "hexadecimal", None),
    ("0xZZ", 0, "hexadecimal", None),
    ("0x1g", 0, "hexadecimal", None),
    (str(int(DECIMAL_MAX) + 1), 0, "smaller number", None),
    ("0x" + "f" * 25, 0, "smaller number", None),
    ("@", 0, "built-in property name", None),
    ("@ Level", 0, "built-in property name", None),
    ('@"case sensitive"', 0, "built-in property name", "like"),
    ("$", 0, "variable name", None),
]


@pytest.mark.parametrize(("text", "position", "expected", "suggestion"), LEXICAL_ERRORS)
def test_lexical_errors(text: str, position: int, expected: str, suggestion: str | None) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        tokenize(text)
    error = caught.value
    assert error.position == position
    assert expected in error.expected
    assert error.kind == "syntax"
    assert error.message.endswith(".")
    if suggestion is None:
        assert error.suggestion is None
    else:
        assert error.suggestion is not None and suggestion in error.suggestion


def test_scan_yields_tokens_before_an_error() -> None:
    seen: list[str] = []
    with pytest.raises(QuerySyntaxError):
        for token in scan('"a" and \'b'):
            seen.append(token.text)
    assert seen == ['"a"', "and"]


# --- properties ------------------------------------------------------------------------------


@given(st.text(max_size=60))
def test_any_text_lexes_or_raises_a_query_syntax_error(text: str) -> None:
    for query in (False, True):
        try:
            tokens = tokenize(text, query=query)
        except QuerySyntaxError as error:
            assert 0 <= error.position <= len(text)
            continue
        position = 0
        for token in tokens:
            assert position <= token.start <= token.end <= len(text)
            assert text[token.start : token.end] == token.text
            position = token.end
        assert tokens[-1].kind is K.EOF


@given(st.lists(st.sampled_from(["a", "1", "'s'", "/", "(", ")", "=", "and", " ", "-", "x"])))
def test_token_soup_lexes_or_raises_a_query_syntax_error(parts: list[str]) -> None:
    with contextlib.suppress(QuerySyntaxError):
        tokenize("".join(parts))
