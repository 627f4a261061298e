"""Seq's filter and query language as tokens.

The lexical rules are those of the grammar in Seq's own query documentation (the
`seq-search-and-query` skill shipped with seqcli):

* identifiers are a Unicode letter or `_`, then letters, digits and `_`; keywords are
  identifiers compared case-insensitively (the parser decides which words are keywords where);
* `@Name` is a built-in property, `$name` a session variable;
* numbers are `123` or `1.5` (no sign, no exponent: `-` is the unary operator), hex numbers
  `0x1f`; durations are one or more `<natural><unit>` pairs with no space, `1h30m`, units
  `d h m s ms us μs ns`;
* `'single quoted'` strings escape a quote by doubling it and know no backslash escapes;
* `"double quoted"` text fragments use C#/JavaScript backslash escapes;
* `/regular expressions/` escape `/` with a backslash (a backslash escapes whatever character
  follows it, so `/a\\\\/` ends after the doubled backslash, as in JavaScript);
* `/` starts a regular expression at the start of the input or after a token after which an
  operand must follow (Seq's list: `and or not ( [ , = <> like > >= < <= in is ! if then else
  :`, to which queries add the clause words `select where having by`); elsewhere it divides;
* in queries, `--` starts a comment that runs to the end of the line (Seq's documented query
  examples use them).  Filters are often free text (`--force`), and whether Seq reads `--`
  there as a comment is not documented, so in a filter `--` is an error (which lets the
  filter be read as free text); a double negation is written `- -x` in both.

Operators that other languages spell differently (`==`, `!=`, `&&`, `!`, `&`, `=>`, `=<`) are
lexed as `MISTAKE` tokens rather than rejected here, so that the parser can say what to write
instead, at the right place.  Everything else the grammar does not know is a `QuerySyntaxError`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from seqfast.query.errors import QuerySyntaxError

# .NET's decimal, Seq's one numeric type, holds integers up to 2^96 - 1; a literal beyond that
# would be rejected by Seq, and silently rounding it would change what a filter matches.
DECIMAL_MAX: Final = Decimal(2**96 - 1)

# Duration units in 100-nanosecond ticks, the unit of Seq's timestamps and durations.
TICKS_PER_UNIT: Final[dict[str, Decimal]] = {
    "d": Decimal(864_000_000_000),
    "h": Decimal(36_000_000_000),
    "m": Decimal(600_000_000),
    "s": Decimal(10_000_000),
    "ms": Decimal(10_000),
    "us": Decimal(10),
    "ns": Decimal("0.01"),
}

# Both spellings of "micro": U+03BC (Greek mu, what the documentation shows) and U+00B5 (the
# micro sign a keyboard produces); both mean `us`.
_MICRO: Final = ("μs", "µs")
_DURATION_PART: Final = re.compile(r"([0-9]+)(ms|us|μs|µs|ns|d|h|m|s)")

# Words after which `/` opens a regular expression rather than dividing (Seq's list).
_REGEX_AFTER_WORDS: Final = frozenset(
    ("and", "or", "not", "like", "in", "is", "if", "then", "else")
)
_REGEX_AFTER_QUERY_WORDS: Final = frozenset(("select", "where", "having", "by"))
_REGEX_AFTER_PUNCT: Final = frozenset(("(", "[", ",", "=", "<>", ">", ">=", "<", "<=", ":"))

# Longest first, so that `<=` is not read as `<` then `=`.
_PUNCTUATION: Final = (
    "<>",
    "<=",
    ">=",
    "<",
    ">",
    "=",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    ":",
    "?",
    "*",
    "+",
    "-",
    "/",
    "%",
    "^",
    "|",
)
_MISTAKES: Final = ("==", "!=", "&&", "=>", "=<", "!", "&")

_TEXT_ESCAPES: Final[dict[str, str]] = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "'": "'",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "0": "\0",
}


class TokenKind(enum.Enum):
    WORD = "word"  # identifier or keyword: the parser decides by position
    BUILTIN = "built-in property"  # @Name; value is the name without `@`
    VARIABLE = "variable"  # $name
    NUMBER = "number"  # decimal or hex; value is a Decimal
    DURATION = "duration"  # value is a tuple of (count, unit) pairs
    STRING = "string"  # 'single quoted'; value is the decoded text
    TEXT = "text fragment"  # "double quoted"; value is the decoded text
    REGEX = "regular expression"  # value is the pattern between the slashes, verbatim
    PUNCT = "punctuation"  # operators and delimiters; value is the text
    MISTAKE = "operator"  # an operator from another language; value is the text
    EOF = "end of input"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str  # exactly as written
    start: int
    end: int
    value: object = None

    @property
    def lower(self) -> str:
        """The text in lower case: how keywords are compared."""
        return self.text.lower()

    def is_word(self, *words: str) -> bool:
        return self.kind is TokenKind.WORD and self.text.lower() in words

    def is_punct(self, *symbols: str) -> bool:
        return self.kind is TokenKind.PUNCT and self.text in symbols

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind is TokenKind.EOF:
            return "the end of the input"
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return f"`{text}`"


def is_identifier_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_"


def is_identifier_part(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def is_identifier(text: str) -> bool:
    """Whether `text` lexes as one WORD token."""
    return (
        bool(text) and is_identifier_start(text[0]) and all(is_identifier_part(c) for c in text[1:])
    )


def duration_ticks(parts: tuple[tuple[int, str], ...]) -> Decimal:
    return sum((Decimal(n) * TICKS_PER_UNIT[unit] for n, unit in parts), Decimal(0))


def tokenize(text: str, *, query: bool = False) -> list[Token]:
    """All tokens of `text`, ending with one EOF token; raises at the first bad character.

    `query` adds the clause words after which `/` opens a regular expression.
    """
    return list(scan(text, query=query))


def scan(text: str, *, query: bool = False) -> Iterator[Token]:
    """Tokens one by one, so that a caller can look at those before a lexical error."""
    pos = 0
    n = len(text)
    previous: Token | None = None
    while True:
        pos = _skip_blank(text, pos, query)
        if pos >= n:
            yield Token(TokenKind.EOF, "", n, n)
            return
        token = _next_token(text, pos, _regex_allowed(previous, query))
        yield token
        previous = token
        pos = token.end


def _skip_blank(text: str, pos: int, query: bool) -> int:
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch.isspace():
            pos += 1
        elif text.startswith("--", pos):
            if not query:
                raise QuerySyntaxError(
                    f"`--` at position {pos} starts a comment, and comments are only "
                    "allowed in queries.",
                    position=pos,
                    expected="an expression or an operator",
                    suggestion="For a double negation, write `- -x`.",
                )
            newline = text.find("\n", pos)
            pos = n if newline < 0 else newline + 1
        else:
            break
    return pos


def _regex_allowed(previous: Token | None, query: bool) -> bool:
    if previous is None:
        return True
    if previous.kind is TokenKind.WORD:
        word = previous.lower
        return word in _REGEX_AFTER_WORDS or (query and word in _REGEX_AFTER_QUERY_WORDS)
    if previous.kind is TokenKind.PUNCT:
        return previous.text in _REGEX_AFTER_PUNCT
    # After a mistaken operator (`==`, `!=`, ...) an operand follows too; lexing it as one lets
    # the parser report the operator rather than a confusing slash.
    return previous.kind is TokenKind.MISTAKE


def _next_token(text: str, pos: int, regex_allowed: bool) -> Token:
    ch = text[pos]
    if "0" <= ch <= "9":
        return _number(text, pos)
    if is_identifier_start(ch):
        end = pos + 1
        while end < len(text) and is_identifier_part(text[end]):
            end += 1
        return Token(TokenKind.WORD, text[pos:end], pos, end)
    if ch == "'":
        return _string(text, pos)
    if ch == '"':
        return _text(text, pos)
    if ch == "@" or ch == "$":
        return _sigil_name(text, pos)
    if ch == "/" and regex_allowed:
        return _regex(text, pos)
    for mistake in _MISTAKES:
        if text.startswith(mistake, pos):
            return Token(TokenKind.MISTAKE, mistake, pos, pos + len(mistake), mistake)
    for symbol in _PUNCTUATION:
        if text.startswith(symbol, pos):
            return Token(TokenKind.PUNCT, symbol, pos, pos + len(symbol), symbol)
    raise _unexpected_character(text, pos)


def _unexpected_character(text: str, pos: int) -> QuerySyntaxError:
    ch = text[pos]
    shown = repr(ch)[1:-1] if not ch.isprintable() or ch.isspace() else ch
    suggestion = None
    if ch == "~":
        suggestion = "Match a regular expression with `=`, as in `Name = /pattern/`."
    elif ch == "`":
        suggestion = "Quote strings with single quotes, as in `'text'`."
    elif ch == ";":
        suggestion = "A filter or query is one statement: remove the `;`."
    return QuerySyntaxError(
        f"The character `{shown}` at position {pos} is not part of Seq's query language.",
        position=pos,
        expected="an expression or an operator",
        suggestion=suggestion,
    )


def _number(text: str, pos: int) -> Token:
    n = len(text)
    if text.startswith(("0x", "0X"), pos):
        end = pos + 2
        while end < n and text[end] in "0123456789abcdefABCDEF":
            end += 1
        if end == pos + 2 or (end < n and is_identifier_part(text[end])):
            end = _word_end(text, end)
            raise QuerySyntaxError(
                f"`{text[pos:end]}` is not a hexadecimal number.",
                position=pos,
                expected="hexadecimal digits after `0x`",
            )
        value = Decimal(int(text[pos + 2 : end], 16))
        _check_range(value, text, pos, end)
        return Token(TokenKind.NUMBER, text[pos:end], pos, end, value)
    end = pos
    while end < n and "0" <= text[end] <= "9":
        end += 1
    if end + 1 < n and text[end] == "." and "0" <= text[end + 1] <= "9":
        end += 1
        while end < n and "0" <= text[end] <= "9":
            end += 1
    if end < n and (is_identifier_part(text[end]) or text[end] in "μµ"):
        return _duration(text, pos, end)
    value = Decimal(text[pos:end])
    _check_range(value, text, pos, end)
    return Token(TokenKind.NUMBER, text[pos:end], pos, end, value)


def _word_end(text: str, pos: int) -> int:
    while pos < len(text) and (is_identifier_part(text[pos]) or text[pos] in "μµ"):
        pos += 1
    return pos


def _duration(text: str, pos: int, number_end: int) -> Token:
    # `1h30m` is one run of digits and letters after the first number.
    end = _word_end(text, number_end)
    written = text[pos:end]
    parts: list[tuple[int, str]] = []
    cursor = 0
    while cursor < len(written):
        match = _DURATION_PART.match(written, cursor)
        if match is None:
            break
        unit = "us" if match.group(2) in _MICRO else match.group(2)
        parts.append((int(match.group(1)), unit))
        cursor = match.end()
    if cursor == len(written) and parts:
        value = duration_ticks(tuple(parts))
        _check_range(value, text, pos, end)
        return Token(TokenKind.DURATION, written, pos, end, tuple(parts))
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?[eE][0-9]+", written):
        suggestion = "Seq has no exponent notation: write the number in full."
    elif "." in text[pos:number_end]:
        suggestion = "Durations count whole units: write `1h30m` rather than `1.5h`."
    elif re.fullmatch(r"[0-9]+[A-Za-z]+", written):
        suggestion = "Duration units are `d h m s ms us ns`, in lower case, as in `15m` or `1h30m`."
    else:
        suggestion = None
    raise QuerySyntaxError(
        f"`{written}` is neither a number nor a duration.",
        position=pos,
        expected="a number or a duration such as `15m`",
        suggestion=suggestion,
    )


def _check_range(value: Decimal, text: str, start: int, end: int) -> None:
    if value > DECIMAL_MAX:
        raise QuerySyntaxError(
            f"The number `{text[start:end]}` is too large: Seq's numbers are .NET decimals, "
            f"at most {DECIMAL_MAX}.",
            position=start,
            expected="a smaller number",
        )


def _string(text: str, pos: int) -> Token:
    chars: list[str] = []
    i = pos + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            if i + 1 < n and text[i + 1] == "'":
                chars.append("'")
                i += 2
                continue
            return Token(TokenKind.STRING, text[pos : i + 1], pos, i + 1, "".join(chars))
        chars.append(ch)
        i += 1
    raise QuerySyntaxError(
        f"The string that starts at position {pos} has no closing quote.",
        position=pos,
        expected="a closing `'`",
        suggestion="Close the string with `'`; write a quote inside a string as `''`.",
    )


def _text(text: str, pos: int) -> Token:
    chars: list[str] = []
    i = pos + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return Token(TokenKind.TEXT, text[pos : i + 1], pos, i + 1, "".join(chars))
        if ch != "\\":
            chars.append(ch)
            i += 1
            continue
        escape = text[i + 1 : i + 2]
        if escape in _TEXT_ESCAPES:
            chars.append(_TEXT_ESCAPES[escape])
            i += 2
        elif escape == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
            chars.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
        else:
            raise QuerySyntaxError(
                f"`\\{escape}` at position {i} is not an escape sequence.",
                position=i,
                expected='an escape such as `\\"`, `\\\\`, `\\n` or `\\u00e9`',
                suggestion="Write a backslash inside a text fragment as `\\\\`.",
            )
    raise QuerySyntaxError(
        f"The text fragment that starts at position {pos} has no closing double quote.",
        position=pos,
        expected='a closing `"`',
        suggestion='Close the text fragment with `"`; write a double quote inside it as `\\"`.',
    )


def _regex(text: str, pos: int) -> Token:
    i = pos + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "/":
            return Token(TokenKind.REGEX, text[pos : i + 1], pos, i + 1, text[pos + 1 : i])
        i += 1
    raise QuerySyntaxError(
        f"The regular expression that starts at position {pos} has no closing `/`.",
        position=pos,
        expected="a closing `/`",
        suggestion="Close the regular expression with `/`; write a slash inside it as `\\/`.",
    )


def _sigil_name(text: str, pos: int) -> Token:
    sigil = text[pos]
    end = pos + 1
    while end < len(text) and is_identifier_part(text[end]):
        end += 1
    if end > pos + 1:
        kind = TokenKind.BUILTIN if sigil == "@" else TokenKind.VARIABLE
        return Token(kind, text[pos:end], pos, end, text[pos + 1 : end])
    if sigil == "@" and text.startswith('@"', pos):
        # Seq 5's case-sensitive text fragment, replaced by the `ci` modifier since.
        raise QuerySyntaxError(
            'Case-sensitive text fragments (`@"text"`) are no longer part of Seq\'s language.',
            position=pos,
            expected="a built-in property name after `@`",
            suggestion="Write `@Message like '%text%'` for a case-sensitive search.",
        )
    what = "a built-in property name" if sigil == "@" else "a variable name"
    raise QuerySyntaxError(
        f"`{sigil}` at position {pos} must be followed by {what}.",
        position=pos,
        expected=f"{what} after `{sigil}`",
    )
