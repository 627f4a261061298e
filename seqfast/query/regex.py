"""Regular-expression literals (`/…/`) of Seq's language, run by RE2 in linear time.

Seq runs .NET regular expressions, a backtracking engine: a pattern such as `/(a+)+$/` takes
time exponential in the text's length, and a query cannot be interrupted inside one match.
Here every user pattern runs on RE2 (the `google-re2` package), whose time is linear in the
text, after a rewrite of the .NET spellings RE2 reads differently:

* named groups `(?<name>…)` and `(?'name'…)` become `(?P<name>…)`; comments `(?#…)` are
  dropped; `\\uXXXX` becomes `\\x{XXXX}` and `\\e` the escape character; a `[` inside a class
  is a literal, as in .NET;
* `\\d \\w \\s` (and `\\D \\W \\S`) keep .NET's Unicode meaning (`\\p{Nd}`;
  `[\\p{L}\\p{Mn}\\p{Nd}\\p{Pc}]`; `[\\t-\\r\\x85\\p{Z}]`).  `\\W` and `\\S` inside a class
  must be its only member, or come with their opposite (`[\\s\\S]`, any character);
* `\\z`, and `$` outside `(?m)`, match only at the very end of the text.  `\\Z` becomes `\\z`
  too: .NET's `$` and `\\Z` also match before a final newline, which needs a look-ahead RE2
  does not have, so a text ending in `\\n` does not match `/error$/`; write `/error\\n?$/`.
  `\\b` and `\\B` see only ASCII letters and digits as word characters (RE2's rule).

Constructs that need backtracking are refused with a ValueError naming them, before any text
is read: back-references (`\\1`, `\\k<name>`), look-ahead and look-behind (`(?=` `(?!` `(?<=`
`(?<!`), atomic groups `(?>…)`, possessive quantifiers (`a*+`), conditionals `(?(…)…)`,
balancing groups `(?<a-b>…)` and class subtraction `[a-z-[aeiou]]`.  So is `\\C`, which could
split a character.

`ci` ignores case by Unicode simple case folding: é/É, ß/ẞ, σ/ς/Σ, k/K/K (Kelvin sign), s/ſ
match one another; ß does not match `ss` (no multi-character folds); the dotted and dotless
Turkish i (İ, ı) match only themselves, where Python's `re` also made them match `i`/`I`
(.NET's invariant culture agrees with RE2 here).

Matching follows .NET's (and Python's) leftmost-first choice among alternatives and lazy
quantifiers.  `Replace` reads every non-overlapping match left to right; after an empty match
the scan moves on one character.  Replacement text uses .NET's `$1`, `${name}`, `$$`, `$&`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

import re2  # type: ignore[import-untyped]

__all__ = ["Regex", "RegexMatch", "compile_regex", "expand_replacement"]

_UNSUPPORTED: Final = "is not supported (regular expressions run in linear time)"
_ARE_UNSUPPORTED: Final = "are not supported (regular expressions run in linear time)"

# .NET's Unicode shorthand classes, as RE2 class members (without brackets).
_WORD: Final = r"\p{L}\p{Mn}\p{Nd}\p{Pc}"
_SPACE: Final = r"\t-\r\x{85}\p{Z}"
_DIGIT: Final = r"\p{Nd}"
_POSITIVE: Final = {"d": _DIGIT, "w": _WORD, "s": _SPACE}

_QUANTIFIER_BRACES: Final = re.compile(r"\{\d+(?:,\d*)?\}")
_HEX4: Final = re.compile(r"[0-9A-Fa-f]{4}")
_OCTAL: Final = re.compile(r"[0-7]{1,3}")
# Both stop at the first character that cannot be in them, so that scanning a hostile
# pattern (`(?<(?<(?<…`) stays linear.
_GROUP_NAME: Final = re.compile(r"(?:<([\w-]*)>|'([\w-]*)')")
_BRACED: Final = re.compile(r"\{[^{}\\]*\}")


class _Refused(Exception):
    """A construct the translation cannot or will not hand to RE2; the text says why."""


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """The RE2 text for the escape starting at `pattern[i] == '\\\\'`, and the index after it."""
    if i + 1 >= len(pattern):
        return "\\", i + 1  # RE2 reports the trailing backslash
    c = pattern[i + 1]
    after = i + 2
    if c == "u" and _HEX4.fullmatch(pattern, after, after + 4):
        return "\\x{" + pattern[after : after + 4] + "}", after + 4
    if c == "e":
        return r"\x{1B}", after
    if c == "0" or (in_class and c in "1234567"):
        # An octal character code (`\\1` is one only inside a class, else a back-reference).
        digits = _OCTAL.match(pattern, i + 1)
        assert digits is not None
        return f"\\x{{{int(digits.group(0), 8):X}}}", digits.end()
    if c == "C":
        raise _Refused(r"\C (any byte) is not supported")
    if c in "xpP" and (braced := _BRACED.match(pattern, after)) is not None:
        return pattern[i : braced.end()], braced.end()
    if in_class:
        if c in _POSITIVE:
            return _POSITIVE[c], after
        if c == "D":
            return r"\P{Nd}", after
        if c == "b":
            return r"\x{8}", after  # backspace, inside a class
        return pattern[i:after], after
    if c in "123456789" or c == "k":
        raise _Refused(f"back-references {_ARE_UNSUPPORTED}")
    if c in "zZ":
        return r"\z", after
    if c in _POSITIVE:
        return f"[{_POSITIVE[c]}]", after
    if c == "D":
        return r"\P{Nd}", after
    if c in "WS":
        return f"[^{_POSITIVE[c.lower()]}]", after
    return pattern[i:after], after


def _class(pattern: str, i: int) -> tuple[str, int]:
    """The RE2 text for the character class starting at `pattern[i] == '['`."""
    j = i + 1
    negated = pattern.startswith("^", j)
    if negated:
        j += 1
    members: list[str] = []
    complements: list[str] = []  # `\W`, `\S` as the letter of the class they complement
    first = True
    while j < len(pattern) and (first or pattern[j] != "]"):
        ch = pattern[j]
        if ch == "\\" and pattern[j + 1 : j + 2] in ("W", "S"):
            complements.append(pattern[j + 1].lower())
            j += 2
        elif ch == "\\":
            text, j = _escape(pattern, j, in_class=True)
            members.append(text)
        elif ch == "-" and pattern.startswith("[", j + 1) and not first:
            raise _Refused(f"character-class subtraction {_UNSUPPORTED}")
        elif ch in "[]":
            members.append("\\" + ch)  # literal in .NET; `[` would open `[:alpha:]` in RE2
            j += 1
        else:
            members.append(ch)
            j += 1
        first = False
    end = j + 1 if j < len(pattern) else j  # an unterminated class is RE2's to report
    closing = "]" if j < len(pattern) else ""
    if not complements:
        return "[" + ("^" if negated else "") + "".join(members) + closing, end
    if len(complements) == 1 and not members:
        # `[\W]` is `\W`; `[^\W]` is `\w`.
        return "[" + ("" if negated else "^") + _POSITIVE[complements[0]] + closing, end
    if not negated and all(_POSITIVE[c] in members for c in complements):
        return "(?s:.)", end  # `[\s\S]` and the like: any character
    raise _Refused(
        r"\W or \S inside a character class with other members is not supported "
        r"(write the class without it, or use [^…])"
    )


def _group(pattern: str, i: int) -> tuple[str, int]:
    """The RE2 text for a group opener at `pattern[i] == '('`, and the index after it."""
    if not pattern.startswith("(?", i):
        return "(", i + 1
    rest = pattern[i + 2 : i + 4]
    if rest[:1] in ("=", "!"):
        raise _Refused(f"look-ahead {_UNSUPPORTED}")
    if rest in ("<=", "<!"):
        raise _Refused(f"look-behind {_UNSUPPORTED}")
    if rest[:1] == ">":
        raise _Refused(f"atomic groups {_ARE_UNSUPPORTED}")
    if rest[:1] == "(":
        raise _Refused(f"conditional groups {_ARE_UNSUPPORTED}")
    if rest == "P=":
        raise _Refused(f"back-references {_ARE_UNSUPPORTED}")
    if rest[:1] == "#":
        close = pattern.find(")", i)
        if close < 0:
            return "(?#", i + 3  # unterminated: RE2 names it
        return "", close + 1
    named = _GROUP_NAME.match(pattern, i + 2)
    if named is not None:
        name = named.group(1) if named.group(1) is not None else named.group(2)
        if "-" in name:
            raise _Refused(f"balancing groups {_ARE_UNSUPPORTED}")
        return f"(?P<{name}>", named.end()
    return "(?", i + 2


def _translate(pattern: str) -> tuple[str, bool]:
    """The RE2 text, and whether it holds an anchor (`^ $ \\A \\z`), which ties a match to
    where the text starts or ends."""
    out: list[str] = []
    anchored = False
    i = 0
    after_quantifier = False  # the previous token was `*`, `+`, `?` or `{n,m}`
    while i < len(pattern):
        ch = pattern[i]
        quantifier = False
        if ch == "\\":
            anchored = anchored or pattern[i + 1 : i + 2] in ("A", "z", "Z")
            text, i = _escape(pattern, i, in_class=False)
        elif ch == "[":
            text, i = _class(pattern, i)
        elif ch == "(":
            text, i = _group(pattern, i)
        elif ch == "+" and after_quantifier:
            raise _Refused(f"possessive quantifiers {_ARE_UNSUPPORTED}")
        elif ch in "*+?":
            text, i = ch, i + 1
            # `?` after a quantifier makes it lazy, and ends it.
            quantifier = not (ch == "?" and after_quantifier)
        elif ch == "{" and (braces := _QUANTIFIER_BRACES.match(pattern, i)) is not None:
            text, i = braces.group(0), braces.end()
            quantifier = True
        else:
            anchored = anchored or ch in "^$"
            text, i = ch, i + 1
        after_quantifier = quantifier
        out.append(text)
    return "".join(out), anchored


# --- matching ---------------------------------------------------------------------------------

_UNANCHORED: Final[Any] = re2._Anchor.UNANCHORED
_ANCHOR_START: Final[Any] = re2._Anchor.ANCHOR_START
_ANCHOR_BOTH: Final[Any] = re2._Anchor.ANCHOR_BOTH
# Separates texts searched together: 0xFF never occurs in UTF-8, so no pattern can match it
# (`\\C`, which could, is refused).
_SEPARATOR: Final = b"\xff"


def _encode(text: str) -> bytes:
    # `surrogatepass`: a lone surrogate (JSON allows `"\ud800"`) is one character to RE2 too.
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _char_length(lead: int) -> int:
    """Bytes in the UTF-8 sequence that starts with byte `lead`."""
    return 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


class RegexMatch:
    """One match: `group(n or name)` (None for a group that did not take part; IndexError for
    one the pattern does not have), `start()` and `end()` in characters of the text."""

    __slots__ = ("_anchor", "_data", "_position", "_regex", "_spans", "_text")

    def __init__(
        self,
        regex: Regex,
        text: str,
        data: bytes,
        spans: list[tuple[int, int]],
        anchor: Any,
        position: int,
    ) -> None:
        self._regex = regex
        self._text = text
        self._data = data  # the UTF-8 text; spans are byte offsets into it
        self._spans = spans
        # How the match was found, to find it again with its groups when they are asked for.
        self._anchor = anchor
        self._position = position

    def _span(self, key: int | str) -> tuple[int, int]:
        regex = self._regex
        index = regex.names.get(key, -1) if isinstance(key, str) else key
        if not 0 <= index <= regex.groups:
            raise IndexError(f"no group {key!r}")
        if index >= len(self._spans):
            # Found without groups (faster): the same search with them gives the same match.
            self._spans = regex.program.Match(
                self._anchor, self._data, self._position, len(self._data)
            )
        return self._spans[index]

    def group(self, key: int | str = 0) -> str | None:
        start, end = self._span(key)
        if start < 0:
            return None
        if self._text.isascii():
            return self._text[start:end]
        return _decode(self._data[start:end])

    def start(self, key: int | str = 0) -> int:
        return self._offset(self._span(key)[0])

    def end(self, key: int | str = 0) -> int:
        return self._offset(self._span(key)[1])

    def _offset(self, byte: int) -> int:
        if byte < 0 or self._text.isascii():
            return byte
        return len(_decode(self._data[:byte]))


class Regex:
    """A compiled pattern with `re`'s method names (`fullmatch`, `match`, `search`, `sub`), and
    `search_each` for many texts at once."""

    __slots__ = ("_test_match", "anchored", "groups", "names", "pattern", "program", "test")

    def __init__(self, pattern: str, program: Any, test: Any, anchored: bool) -> None:
        self.pattern = pattern
        self.program = program  # reports groups
        self.test = test  # the same pattern without groups, which RE2 runs faster
        self._test_match = test.Match
        self.anchored = anchored
        self.groups: int = program.NumberOfCapturingGroups()
        self.names: dict[str, int] = {
            _decode(name): index for name, index in program.NamedCapturingGroups()
        }

    # The three below are the per-row hot path: a call into RE2 costs most of their time, so
    # they spell the work out rather than share a helper (a Python call is a sixth more).

    def fullmatch(self, text: str) -> RegexMatch | None:
        data = text.encode("utf-8", "surrogatepass")
        spans: list[tuple[int, int]] = self._test_match(_ANCHOR_BOTH, data, 0, len(data))
        if spans[0][0] < 0:
            return None
        return RegexMatch(self, text, data, spans, _ANCHOR_BOTH, 0)

    def match(self, text: str) -> RegexMatch | None:
        data = text.encode("utf-8", "surrogatepass")
        spans: list[tuple[int, int]] = self._test_match(_ANCHOR_START, data, 0, len(data))
        if spans[0][0] < 0:
            return None
        return RegexMatch(self, text, data, spans, _ANCHOR_START, 0)

    def search(self, text: str) -> RegexMatch | None:
        data = text.encode("utf-8", "surrogatepass")
        spans: list[tuple[int, int]] = self._test_match(_UNANCHORED, data, 0, len(data))
        if spans[0][0] < 0:
            return None
        return RegexMatch(self, text, data, spans, _UNANCHORED, 0)

    def sub(self, replace: Callable[[RegexMatch], str], text: str) -> str:
        """`text` with every match replaced by `replace(match)`, scanning left to right."""
        data = _encode(text)
        pieces: list[str] = []
        kept = 0  # where the text not yet copied starts
        position = 0
        while position <= len(data):
            spans: list[tuple[int, int]] = self.test.Match(_UNANCHORED, data, position, len(data))
            start, end = spans[0]
            if start < 0:
                break
            pieces.append(_decode(data[kept:start]))
            pieces.append(replace(RegexMatch(self, text, data, spans, _UNANCHORED, position)))
            kept = end
            if end > start:
                position = end
            elif start < len(data):
                position = start + _char_length(data[start])
            else:
                break
        pieces.append(_decode(data[kept:]))
        return "".join(pieces)

    def search_each(self, texts: Sequence[str]) -> list[bool]:
        """`[search(t) is not None for t in texts]`, in one pass over all of them when it can.

        Each call into RE2 costs about as much as matching a short text, so the texts are
        joined with a byte no pattern matches and searched together: a match lies within one
        text, the search resumes at the next text, and texts without a match cost nothing
        more.  Only anchors (`^ $ \\A \\z`) would see the joined text's edges instead of each
        text's, so an anchored pattern, or texts with lone surrogates, are searched one by one.
        """
        data = self._join(texts) if not self.anchored and texts else None
        if data is None:
            return [self.search(text) is not None for text in texts]
        found = [False] * len(texts)
        row = 0
        position = 0  # where text `row` starts
        while True:
            start = self.test.Match(_UNANCHORED, data, position, len(data))[0][0]
            if start < 0:
                break
            row += data.count(_SEPARATOR, position, start)  # texts passed over without a match
            found[row] = True
            end_of_row = data.find(_SEPARATOR, start)
            if end_of_row < 0:
                break
            position = end_of_row + 1
            row += 1
        return found

    @staticmethod
    def _join(texts: Sequence[str]) -> bytes | None:
        """The texts' UTF-8 joined by 0xFF bytes; None when a text holds a NUL (the joint
        while joining) or a lone surrogate (it would not encode as `search` encodes it)."""
        joined = "\0".join(texts)
        if joined.count("\0") != len(texts) - 1:
            return None
        try:
            return joined.encode("utf-8").replace(b"\0", _SEPARATOR)
        except UnicodeEncodeError:
            return None


@functools.lru_cache(maxsize=256)
def compile_regex(pattern: str, ci: bool) -> Regex:
    """The compiled pattern; ValueError naming the problem when it is not a valid regex or
    needs a construct that cannot run in linear time."""
    try:
        translated, anchored = _translate(pattern)
    except _Refused as refused:
        raise ValueError(f"invalid regular expression /{pattern}/: {refused}") from None
    program = _program(pattern, translated, ci, capture=True)
    test = program
    if program.NumberOfCapturingGroups() > 0:
        test = _program(pattern, translated, ci, capture=False)
    return Regex(pattern, program, test, anchored)


def _program(pattern: str, translated: str, ci: bool, capture: bool) -> Any:
    options = re2.Options()
    options.case_sensitive = not ci
    options.never_capture = not capture
    options.log_errors = False  # the error goes back to the user, not to stderr
    program = re2._re2.RE2(_encode(translated), options)
    if not program.ok():
        reason = program.error()
        if isinstance(reason, bytes):
            reason = _decode(reason)
        raise ValueError(f"invalid regular expression /{pattern}/: {reason}")
    return program


_SUBSTITUTION: Final = re.compile(r"\$(?:(\d+)|\{(\w+)\}|(\$)|(&))")


def expand_replacement(match: RegexMatch, replacement: str) -> str:
    """`replacement` for one match, .NET style: `$n`/`${name}` a group (empty when it did not
    take part), `$$` a dollar, `$&` the whole match; a `$` naming no group stays as written."""

    def one(found: re.Match[str]) -> str:
        number, name, dollar, whole = found.groups()
        if dollar:
            return "$"
        if whole:
            return match.group(0) or ""
        # `${1}` names group 1, as `$1` does.
        key: int | str = (
            int(number) if number is not None else int(name) if name.isdigit() else name
        )
        try:
            return match.group(key) or ""
        except IndexError:
            return found.group(0)

    return _SUBSTITUTION.sub(one, replacement)
