"""Regular-expression literals (`/…/`) of Seq's language, on Python's `re`.

Seq runs .NET regular expressions.  Patterns are compiled with `re` after rewriting the .NET
spellings Python reads differently: named groups `(?<name>…)` and back-references
`\\k<name>`, and the anchors `\\z` (end of text) and `\\Z` (end, or before a final newline).
Everything else is passed through, so the supported dialect is what the two share (classes,
quantifiers, lazy quantifiers, groups, look-arounds, `\\d \\w \\s \\b`); .NET-only constructs
(balancing groups, `(?<a-b>)`, character-class subtraction) are rejected or misread by `re`.
`ci` compiles with IGNORECASE.  Replacement text uses .NET's `$1`, `${name}`, `$$`, `$&`.
"""

from __future__ import annotations

import functools
import re
from typing import Final

__all__ = ["compile_regex", "expand_replacement"]

_TOKEN: Final = re.compile(r"\\k<|\\.|\(\?<(?![=!])|\[|\]|.", re.DOTALL)


def _translate(pattern: str) -> str:
    out: list[str] = []
    in_class = False
    in_reference = False  # inside `\k<name>`, whose closing `>` becomes `)`
    for token in _TOKEN.findall(pattern):
        if in_reference and token == ">":
            in_reference = False
            out.append(")")
        elif in_class:
            in_class = token != "]"
            out.append(token)
        elif token == "[":
            in_class = True
            out.append(token)
        elif token == "(?<":
            out.append("(?P<")
        elif token == "\\k<":
            out.append("(?P=")
            in_reference = True
        elif token == "\\z":
            out.append(r"\Z")
        elif token == "\\Z":
            out.append(r"(?=\n?\Z)")
        else:
            out.append(token)
    return "".join(out)


@functools.lru_cache(maxsize=256)
def compile_regex(pattern: str, ci: bool) -> re.Pattern[str]:
    """The compiled pattern; ValueError naming the problem when it is not a valid regex."""
    try:
        return re.compile(_translate(pattern), re.IGNORECASE if ci else 0)
    except re.error as error:
        raise ValueError(f"invalid regular expression /{pattern}/: {error}") from None


_SUBSTITUTION: Final = re.compile(r"\$(?:(\d+)|\{(\w+)\}|(\$)|(&))")


def expand_replacement(match: re.Match[str], replacement: str) -> str:
    """`replacement` for one match, .NET style: `$n`/`${name}` a group (empty when it did not
    take part), `$$` a dollar, `$&` the whole match; a `$` naming no group stays as written."""

    def one(found: re.Match[str]) -> str:
        number, name, dollar, whole = found.groups()
        if dollar:
            return "$"
        if whole:
            return match.group(0)
        key: int | str = int(number) if number is not None else name
        try:
            return match.group(key) or ""
        except IndexError:
            return found.group(0)

    return _SUBSTITUTION.sub(one, replacement)
