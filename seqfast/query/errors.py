"""The one error the query parser raises, with enough detail for an editor to point at it."""

from __future__ import annotations

from typing import Final, Literal

from seqfast.errors import SeqfastError

# Why a text was rejected.  The filter parser uses the kind to decide whether a text that is not
# a valid expression may still be read as free text (only plain `syntax` errors may: see
# `parse.py`); callers can use it to word their answer.
ErrorKind = Literal[
    "syntax",  # the text is not in the grammar: bad token, unexpected word, unbalanced bracket
    "operator",  # an operator from another language, such as `==`, `!=`, `&&` or `||`
    "name",  # an unknown or misspelt function or built-in property
    "usage",  # grammatical, but used where it means nothing (an aggregate in a filter, ...)
    "unsupported",  # valid Seq that seqfast does not implement, rejected rather than mis-read
    "limit",  # nested deeper than the parser allows
]

KINDS: Final[frozenset[str]] = frozenset(
    ("syntax", "operator", "name", "usage", "unsupported", "limit")
)


class QuerySyntaxError(SeqfastError, ValueError):
    """A filter or query that cannot be parsed, or that seqfast would not evaluate as written.

    `position` is the 0-based character offset the problem starts at (the length of the text
    when the text ended too early), `expected` names what would have been valid there,
    `message` is a complete sentence, and `suggestion` a sentence saying how to fix it when
    the fix is obvious.  `corrected` is the whole text with that fix applied, when the fix is
    a mechanical replacement (Seq's query API answers with such a corrected text).
    """

    def __init__(
        self,
        message: str,
        *,
        position: int,
        expected: str,
        kind: ErrorKind = "syntax",
        suggestion: str | None = None,
        corrected: str | None = None,
    ) -> None:
        super().__init__(message if suggestion is None else f"{message} {suggestion}")
        self.message = message
        self.position = position
        self.expected = expected
        self.kind: ErrorKind = kind
        self.suggestion = suggestion
        self.corrected = corrected

    def __repr__(self) -> str:
        return (
            f"QuerySyntaxError({self.message!r}, position={self.position}, "
            f"expected={self.expected!r}, kind={self.kind!r}, suggestion={self.suggestion!r})"
        )
