"""Text → tree: Seq's search expressions (filters) and its `select` queries.

The grammar is the one Seq documents (the `seq-search-and-query` skill shipped with seqcli),
parsed by recursive descent with precedence climbing.  From loosest to tightest binding:

=====  =============================================================  =============
level  operators                                                      associativity
=====  =============================================================  =============
1      ``or``                                                         left (a run)
2      ``and``                                                        left (a run)
3      ``= <> < <= > >= like, not like, in, not in`` [``ci``]         left
4      ``+ -``                                                        left
5      ``* / %``                                                      left
6      ``^``                                                          left
7      prefix ``-`` and ``not``; postfix ``is null``, ``is not null``  prefix: right
8      ``.name``, ``[expr]``, ``[?]``, ``[*]``, calls ``f(...) [ci]``   left
=====  =============================================================  =============

Consequences worth knowing, all as Seq documents them: `not` binds tighter than comparisons,
so `not A = 1` is `(not A) = 1` (write `not (A = 1)`); `2 ^ 3 ^ 2` is `(2 ^ 3) ^ 2`;
`A + B is null` is `A + (B is null)`; a `ci` after a call belongs to the call, so in
`A = ToLower(B) ci` it is an error (`ToLower` takes no `ci`): write `A = (ToLower(B)) ci`.
`if … then … else …` is an operand whose `else` branch extends as far as possible.

Parsing is in two steps.  The grammar step builds the tree and raises `syntax` errors (and
`operator` errors for `==`, `!=`, `&&`, `||` and a prefix `!`).  The check step then looks the
tree over: function and built-in names, argument counts, where `ci`, aggregates, lambdas and
text fragments may appear, the rules of `select`, nesting depth.

Free text (how a filter that is not an expression is read)
------------------------------------------------------------
Seq reads what is typed into its search box as an expression when it is one, and otherwise as
free text: a case-insensitive search for the whole input in `@Message` and `@Exception`.  Its
API says which happened and why (`MatchedAsText`, `ReasonIfMatchedAsText`).  `parse_filter`
does the same, by these rules:

1. An empty filter (only blanks) matches everything: `Filter(None)`.
2. Text that parses and checks as an expression is that expression, except when no structure
   was recognised: a lone bare name or dotted name (`timeout`, `System.Net.Http`) or a lone
   number or duration (`404`).  Those are far more often searched for than used as a
   condition (a property is only true when it holds `true`), so they are free text.
3. Text that fails the *grammar* step is free text, unless it contains a `"double quoted"`
   fragment: quotes mean the author is writing an expression (Seq's cheat sheet: double
   quotes are required when operators are used), so the error is reported instead.
4. Every other error is reported: operators from other languages (`==`, `&&`, ...), unknown
   functions or built-ins, misplaced aggregates, text fragments used as values, anything
   seqfast does not implement, and nesting beyond `MAX_DEPTH`.  Such text was meant as an
   expression, and searching for it as text would silently find nothing.

`strict=True` turns rules 2 and 3 off (for API key filters, retention rules and the like,
where a typo must not become a text search).  Queries never fall back to text.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Final, NoReturn, TypeVar, cast

from seqfast.query.ast import (
    BUILT_INS,
    CI_COMPARISONS,
    CLEF_NAMES,
    FUNCTIONS,
    KEYWORDS,
    ROWSET_AGGREGATES,
    UNSUPPORTED_BUILT_INS,
    Array,
    Binary,
    BinaryOp,
    Boolean,
    BuiltIn,
    Call,
    Column,
    Conditional,
    Duration,
    Expr,
    Filter,
    Grouping,
    Index,
    IsNull,
    Lambda,
    LambdaParameter,
    Logical,
    LogicalOp,
    Member,
    Node,
    Null,
    Number,
    Object,
    Ordering,
    Property,
    Quantifier,
    Query,
    Regex,
    Span,
    Star,
    String,
    TextSearch,
    TimeGrouping,
    TimeOrdering,
    Unary,
    UnaryOp,
    Wildcard,
    children,
    depth,
    is_plain_name,
    quote_string,
    to_source,
)
from seqfast.query.errors import ErrorKind, QuerySyntaxError
from seqfast.query.lexer import Token, TokenKind, scan, tokenize

# Deeper nesting is rejected, so that neither this parser nor anything that walks its trees
# recursively runs out of stack; no hand-written filter comes near it.
MAX_DEPTH: Final = 128
MAX_LIMIT: Final = 2**31 - 1
_T = TypeVar("_T")

_OR, _AND, _COMPARISON, _SUM, _PRODUCT, _POWER = 1, 2, 3, 4, 5, 6
_PUNCT_OPERATORS: Final[dict[str, tuple[BinaryOp, int]]] = {
    "=": ("=", _COMPARISON),
    "<>": ("<>", _COMPARISON),
    "<": ("<", _COMPARISON),
    "<=": ("<=", _COMPARISON),
    ">": (">", _COMPARISON),
    ">=": (">=", _COMPARISON),
    "+": ("+", _SUM),
    "-": ("-", _SUM),
    "*": ("*", _PRODUCT),
    "/": ("/", _PRODUCT),
    "%": ("%", _PRODUCT),
    "^": ("^", _POWER),
}
# What to write instead of an operator from another language.
_MISTAKE_FIXES: Final[dict[str, str]] = {
    "==": "=",
    "!=": "<>",
    "&&": "and",
    "||": "or",
    "=>": ">=",
    "=<": "<=",
    "!": "not",
    "&": "and",
}
_CLAUSES: Final = ("from", "where", "group", "having", "order", "limit", "for")
_CLAUSE_NAMES: Final = {"group": "group by", "order": "order by"}
_FOR_OPTIONS: Final = ("refresh", "no_cache")
_UNSTRUCTURED_REASON: Final = "No structured syntax was recognized."


def parse_filter(text: str, *, strict: bool = False) -> Filter:
    """Parse a search expression; see the module documentation for when it is free text."""
    whole = Span(0, len(text))
    try:
        expr = _guarded(lambda: _Parser(text, query=False).filter())
    except QuerySyntaxError as error:
        if strict or error.kind != "syntax" or _has_text_fragment(text):
            raise
        return _as_text(text, str(error))
    if expr is None:
        return Filter(None, span=whole)
    if not strict and _unstructured(text):
        return _as_text(text, _UNSTRUCTURED_REASON)
    return Filter(expr, span=whole)


def parse_query(text: str) -> Query:
    """Parse a `select` query."""
    return _guarded(lambda: _Parser(text, query=True).query())


def is_query(text: str) -> bool:
    """Whether `text` is a query rather than a filter: it starts with `select` (or `explain`)."""
    try:
        first = next(scan(text, query=True))
    except QuerySyntaxError:
        return False
    return first.is_word("select", "explain")


def _guarded(parse: Callable[[], _T]) -> _T:
    # MAX_DEPTH keeps the parser within Python's default stack; a caller that is itself deep
    # in the stack could still run out, and must get the same error rather than a crash.
    try:
        return parse()
    except RecursionError:
        raise QuerySyntaxError(
            "The text is nested too deeply to parse.",
            position=0,
            expected="less nesting",
            kind="limit",
        ) from None


def _as_text(text: str, reason: str) -> Filter:
    stripped = text.strip()
    start = text.find(stripped) if stripped else 0
    node = TextSearch(stripped, span=Span(start, start + len(stripped)))
    return Filter(node, matched_as_text=True, reason=reason, span=Span(0, len(text)))


def _has_text_fragment(text: str) -> bool:
    try:
        return any(token.kind is TokenKind.TEXT for token in scan(text))
    except QuerySyntaxError:
        return False  # only tokens before a lexical error count; they were all looked at


def _unstructured(text: str) -> bool:
    """A lone number or duration, or names joined by dots (`System.Net.Http`)."""
    tokens = tokenize(text)[:-1]  # the text has parsed, so it lexes
    if len(tokens) == 1 and tokens[0].kind in (TokenKind.NUMBER, TokenKind.DURATION):
        return True
    return (
        all(
            (token.kind is TokenKind.WORD and token.lower not in KEYWORDS)
            if i % 2 == 0
            else token.is_punct(".")
            for i, token in enumerate(tokens)
        )
        and len(tokens) % 2 == 1
    )


def _corrected(text: str, start: int, end: int, replacement: str) -> str:
    return text[:start] + replacement + text[end:]


def _closest(name: str, candidates: Iterable[str]) -> str | None:
    by_lower = {c.lower(): c for c in candidates}
    # 0.75 keeps transpositions and dropped letters (`Lenght`, `@Levle`) and drops far fetches.
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.75)
    return by_lower[match[0]] if match else None


class _Parser:
    """The grammar step; `_Checker` below is the check step."""

    def __init__(self, text: str, *, query: bool) -> None:
        self.text = text
        self.what = "query" if query else "filter"
        self.tokens = tokenize(text, query=query)
        self.pos = 0
        self.nesting = -1  # the outermost expression is at depth 0
        self.scope: list[str] = []  # lambda parameters in scope, innermost last
        self.clause_tokens: dict[str, Token] = {}

    # --- token access -------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind is not TokenKind.EOF:
            self.pos += 1
        return token

    @property
    def last_end(self) -> int:
        return self.tokens[self.pos - 1].end if self.pos else 0

    def span_from(self, start: int) -> Span:
        return Span(start, self.last_end)

    def fail(
        self,
        message: str,
        at: Token | int,
        expected: str,
        *,
        kind: ErrorKind = "syntax",
        suggestion: str | None = None,
        replace_with: tuple[int, int, str] | None = None,
    ) -> NoReturn:
        position = at if isinstance(at, int) else at.start
        corrected = None if replace_with is None else _corrected(self.text, *replace_with)
        raise QuerySyntaxError(
            message,
            position=position,
            expected=expected,
            kind=kind,
            suggestion=suggestion,
            corrected=corrected,
        )

    def expect_punct(self, symbol: str, opener: Token) -> Token:
        """Consume the `symbol` that closes `opener`."""
        token = self.peek()
        if token.is_punct(symbol):
            return self.advance()
        if token.kind is TokenKind.EOF:
            self.fail(
                f"The `{opener.text}` at position {opener.start} is never closed.",
                token,
                f"`{symbol}`",
                suggestion=f"Add `{symbol}` where the bracketed part ends.",
            )
        self.fail(
            f"Expected `{symbol}` to close the `{opener.text}` at position {opener.start}, "
            f"but found {token.describe()}.",
            token,
            f"`{symbol}`",
        )

    def expect_word(self, word: str, context: str) -> Token:
        token = self.peek()
        if token.is_word(word):
            return self.advance()
        self.fail(f"Expected `{word}` {context}, but found {token.describe()}.", token, f"`{word}`")

    # --- entry points ---------------------------------------------------------------------------

    def filter(self) -> Expr | None:
        if self.peek().kind is TokenKind.EOF:
            return None
        expr = self.expr()
        self.end_of_input("an operator such as `=`, `and` or `or`, or the end of the filter")
        _check_depth([expr])
        _Checker(self.text).filter(expr)
        return expr

    def query(self) -> Query:
        first = self.peek()
        if first.is_word("explain"):
            self.fail(
                "`explain` is not supported by seqfast.",
                first,
                "`select`",
                kind="unsupported",
                suggestion="Remove `explain` to run the query.",
            )
        if not first.is_word("select"):
            self.fail(
                f"A query starts with `select`, but this one starts with {first.describe()}.",
                first,
                "`select`",
            )
        self.advance()
        query = self.select_clauses(first.start)
        exprs = [c.expr for c in query.columns]
        exprs.extend(g.expr for g in query.group_by if isinstance(g, Grouping))
        exprs.extend(e for e in (query.where, query.having) if e is not None)
        _check_depth(exprs)
        _Checker(self.text).query(query, self.clause_tokens)
        return query

    def end_of_input(self, expected: str) -> None:
        token = self.peek()
        if token.kind is TokenKind.EOF:
            return
        if token.is_punct(")", "]", "}"):
            self.fail(
                f"The `{token.text}` at position {token.start} has no matching opening bracket.",
                token,
                expected,
                suggestion="Remove it, or add the opening bracket it closes.",
                replace_with=(token.start, token.end, ""),
            )
        if token.is_word("ci"):
            self.fail(
                "`ci` must follow a comparison (`=`, `<>`, `like`, `in`) or a function call.",
                token,
                expected,
            )
        previous = self.tokens[self.pos - 1]
        if (
            previous.kind is TokenKind.REGEX
            and token.kind is TokenKind.WORD
            and token.start == previous.end
            and set(token.lower) <= set("imsxn")
        ):
            self.fail(
                "Seq's regular expressions take no flags after the closing `/`.",
                token,
                expected,
                suggestion="For a case-insensitive match, put `ci` after the comparison.",
                replace_with=(token.start, token.end, " ci" if token.lower == "i" else ""),
            )
        if token.kind is TokenKind.TEXT:
            message = (
                f"The text fragment at position {token.start} follows an expression "
                "without an operator between them."
            )
            suggestion = 'Join text fragments with `and` or `or`: `"a" and "b"`.'
        else:
            message = (
                f"Expected {expected}, but found {token.describe()} at position {token.start}."
            )
            suggestion = None
        self.fail(message, token, expected, suggestion=suggestion)

    # --- expressions ----------------------------------------------------------------------------

    def enter(self, token: Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            self.fail(
                f"The {self.what} is nested more than {MAX_DEPTH} levels deep.",
                token,
                "less nesting",
                kind="limit",
            )

    def expr(self, min_level: int = _OR) -> Expr:
        """An expression whose operators bind at least as tightly as `min_level`."""
        start_token = self.peek()
        self.enter(start_token)
        try:
            start = start_token.start
            left = self.operand()
            while True:
                infix = self.infix(self.peek())
                if infix is None or infix[1] < min_level:
                    return left
                op, level = infix
                if op in ("and", "or"):
                    left = self.logical_run(left, "and" if op == "and" else "or", start)
                    continue
                self.advance()
                if op in ("not like", "not in"):
                    self.advance()
                right = self.expr(level + 1)
                ci = False
                if level == _COMPARISON and self.peek().is_word("ci"):
                    self.advance()
                    ci = True
                binary_op = cast(BinaryOp, op)
                left = Binary(binary_op, left, right, ci, span=self.span_from(start))
        finally:
            self.nesting -= 1

    def logical_run(self, first: Expr, op: LogicalOp, start: int) -> Logical:
        operands = [first]
        level = _OR if op == "or" else _AND
        while self.peek().is_word(op):
            self.advance()
            operands.append(self.expr(level + 1))
        return Logical(op, tuple(operands), span=self.span_from(start))

    def infix(self, token: Token) -> tuple[str, int] | None:
        """The binary operator `token` starts and its level, or None if it ends the operand."""
        if token.kind is TokenKind.PUNCT:
            if token.text in _PUNCT_OPERATORS:
                return _PUNCT_OPERATORS[token.text]
            if token.text == "|":
                self.mistake(token, "||" if self.peek(1).is_punct("|") else "|")
            return None
        if token.kind is TokenKind.MISTAKE:
            self.mistake(token, token.text)
        if token.kind is not TokenKind.WORD:
            return None
        word = token.lower
        if word in ("and", "or"):
            return word, _OR if word == "or" else _AND
        if word in ("like", "in"):
            return word, _COMPARISON
        if word == "not":
            following = self.peek(1)
            if following.is_word("like", "in"):
                return f"not {following.lower}", _COMPARISON
            self.fail(
                f"`not` at position {token.start} follows an expression; only `not like` and "
                "`not in` can.",
                token,
                "`like` or `in` after `not`",
                suggestion="To negate a condition, put `not` before it: `not (A = 1)`.",
            )
        if word == "is":
            self.fail(
                f"`is` at position {token.start} has nothing to test: `is null` applies once.",
                token,
                "an operator or the end of the expression",
            )
        return None

    def mistake(self, token: Token, written: str) -> NoReturn:
        fix = _MISTAKE_FIXES.get(written, "or")
        end = token.start + len(written)
        # A lone `!` or `&` in the middle of text is probably punctuation of free text, so
        # those stay plain syntax errors (the filter may still be read as text).
        kind: ErrorKind = "syntax" if written in ("!", "&", "|") else "operator"
        self.fail(
            f"`{written}` is not an operator in Seq's language.",
            token,
            "an operator such as `=`, `<>`, `and` or `or`",
            kind=kind,
            suggestion=f"Write `{fix}` instead of `{written}`.",
            replace_with=(token.start, end, fix),
        )

    def operand(self) -> Expr:
        """Prefix `-`/`not`, a path, and an optional `is [not] null` (Seq's `Operand`)."""
        token = self.peek()
        if token.is_punct("-") or token.is_word("not"):
            self.advance()
            self.enter(token)
            try:
                inner = self.operand()
            finally:
                self.nesting -= 1
            op: UnaryOp = "-" if token.text == "-" else "not"
            node: Expr = Unary(op, inner, span=self.span_from(token.start))
        elif token.kind is TokenKind.MISTAKE and token.text == "!":
            self.fail(
                "`!` is not an operator in Seq's language.",
                token,
                "an expression",
                kind="operator",
                suggestion="Write `not` instead of `!`.",
                replace_with=(token.start, token.end, "not "),
            )
        else:
            node = self.path()
        if self.peek().is_word("is"):
            is_token = self.advance()
            negated = False
            if self.peek().is_word("not"):
                self.advance()
                negated = True
            if not self.peek().is_word("null"):
                found = self.peek()
                suggestion = None
                if found.is_word("true", "false"):
                    suggestion = f"Compare with `=`: `= {found.lower}`."
                self.fail(
                    f"Expected `null` after `{self.text[is_token.start : found.start].strip()}`, "
                    f"but found {found.describe()}.",
                    found,
                    "`null`" if negated else "`null` or `not null`",
                    suggestion=suggestion,
                )
            self.advance()
            node = IsNull(node, negated, span=self.span_from(token.start))
        return node

    def path(self) -> Expr:
        start = self.peek().start
        node = self.primary()
        while True:
            token = self.peek()
            if token.is_punct("."):
                self.advance()
                name = self.peek()
                if name.kind is not TokenKind.WORD:
                    self.fail(
                        f"Expected a property name after `.`, but found {name.describe()}.",
                        name,
                        "a property name",
                        suggestion="Write names that are not identifiers as `x['some name']`.",
                    )
                self.advance()
                node = _member(node, name.text, self.span_from(start))
            elif token.is_punct("["):
                self.advance()
                node = self.index(node, token, start)
            else:
                return node

    def index(self, target: Expr, opener: Token, start: int) -> Expr:
        token = self.peek()
        if (token.is_punct("?") or token.is_punct("*")) and self.peek(1).is_punct("]"):
            self.advance()
            self.advance()
            quantifier: Quantifier = "any" if token.text == "?" else "all"
            return Wildcard(target, quantifier, span=self.span_from(start))
        key = self.expr()
        self.expect_punct("]", opener)
        if isinstance(key, String):
            return _member(target, key.value, self.span_from(start))
        return Index(target, key, span=self.span_from(start))

    def primary(self) -> Expr:
        token = self.peek()
        kind = token.kind
        start = token.start
        if kind is TokenKind.NUMBER:
            self.advance()
            return Number(cast(Decimal, token.value), span=self.span_from(start))
        if kind is TokenKind.DURATION:
            self.advance()
            return Duration(_duration_parts(token), span=self.span_from(start))
        if kind is TokenKind.STRING:
            self.advance()
            return String(str(token.value), span=self.span_from(start))
        if kind is TokenKind.TEXT:
            self.advance()
            return TextSearch(str(token.value), span=self.span_from(start))
        if kind is TokenKind.REGEX:
            self.advance()
            return Regex(str(token.value), span=self.span_from(start))
        if kind is TokenKind.BUILTIN:
            self.advance()
            return BuiltIn(str(token.value), span=self.span_from(start))
        if kind is TokenKind.WORD:
            return self.word()
        if token.is_punct("("):
            self.advance()
            inner = self.expr()
            if self.peek().is_punct(","):
                self.fail(
                    "Parentheses hold one expression; a list of values is an array.",
                    self.peek(),
                    "`)`",
                    suggestion="Write a list in square brackets, as in `in ['a', 'b']`.",
                )
            self.expect_punct(")", token)
            return inner
        if token.is_punct("["):
            self.advance()
            items = self.delimited("]", token)
            return Array(tuple(items), span=self.span_from(start))
        if token.is_punct("{"):
            return self.object_literal()
        if token.is_punct("|"):
            return self.lambda_literal()
        self.unexpected_operand(token)

    def delimited(self, closer: str, opener: Token) -> list[Expr]:
        """Comma-separated expressions up to `closer`, which is consumed."""
        items: list[Expr] = []
        if not self.peek().is_punct(closer):
            items.append(self.expr())
            while self.peek().is_punct(","):
                self.advance()
                items.append(self.expr())
        self.expect_punct(closer, opener)
        return items

    def word(self) -> Expr:
        token = self.advance()
        word = token.lower
        span = Span(token.start, token.end)
        if word == "true" or word == "false":
            return Boolean(word == "true", span=span)
        if word == "null":
            return Null(span=span)
        if word == "if":
            return self.conditional(token)
        if word == "let":
            self.fail(
                "Blocks (`let |name: value| ...`) are not supported by seqfast.",
                token,
                "an expression",
            )
        if word in KEYWORDS:
            self.fail(
                f"Expected an expression, but found the keyword `{token.text}` "
                f"at position {token.start}.",
                token,
                "an expression",
                suggestion=(
                    f"A property named `{token.text}` is written "
                    f"`@Properties[{quote_string(token.text)}]`."
                    if word != "ci"
                    else None
                ),
            )
        if self.peek().is_punct("("):
            return self.call(token)
        if token.text in self.scope:
            return LambdaParameter(token.text, span=span)
        return Property(token.text, span=span)

    def call(self, name: Token) -> Call:
        opener = self.advance()
        info = FUNCTIONS.get(name.lower)
        canonical = info.name if info is not None else name.text
        if canonical == "count" and self.peek().is_punct("*") and self.peek(1).is_punct(")"):
            star = self.advance()
            args: list[Expr] = [Star(span=Span(star.start, star.end))]
            self.advance()
        else:
            args = self.delimited(")", opener)
        ci = False
        if self.peek().is_word("ci"):
            self.advance()
            ci = True
        return Call(canonical, tuple(args), ci, span=self.span_from(name.start))

    def conditional(self, if_token: Token) -> Conditional:
        condition = self.expr()
        self.expect_word("then", f"after the condition of the `if` at position {if_token.start}")
        consequent = self.expr()
        if not self.peek().is_word("else"):
            self.fail(
                f"The `if` at position {if_token.start} has no `else`: Seq requires one.",
                self.peek(),
                "`else`",
                suggestion="Add `else` and the value for when the condition is not true.",
            )
        self.advance()
        alternative = self.expr()
        return Conditional(condition, consequent, alternative, span=self.span_from(if_token.start))

    def object_literal(self) -> Object:
        opener = self.advance()
        members: list[tuple[str, Expr]] = []
        while not self.peek().is_punct("}"):
            if members:
                if not self.peek().is_punct(","):
                    self.expect_punct("}", opener)
                self.advance()
            key = self.peek()
            if key.kind is TokenKind.WORD:
                name = key.text
            elif key.kind is TokenKind.STRING:
                name = str(key.value)
            else:
                self.fail(
                    f"Expected a member name, but found {key.describe()}.",
                    key,
                    "a name or a 'quoted name'",
                )
            self.advance()
            colon = self.peek()
            if not colon.is_punct(":"):
                self.fail(
                    f"Expected `:` after the member name `{name}`, but found {colon.describe()}.",
                    colon,
                    "`:`",
                )
            self.advance()
            members.append((name, self.expr()))
        self.advance()
        return Object(tuple(members), span=self.span_from(opener.start))

    def lambda_literal(self) -> Lambda:
        opener = self.advance()
        params: list[str] = []
        while not self.peek().is_punct("|"):
            if params:
                if not self.peek().is_punct(","):
                    self.expect_punct("|", opener)
                self.advance()
            param = self.peek()
            if param.kind is not TokenKind.WORD or not is_plain_name(param.text):
                self.fail(
                    f"Expected a parameter name, but found {param.describe()}.",
                    param,
                    "a parameter name",
                )
            params.append(self.advance().text)
        self.advance()
        self.scope.extend(params)
        try:
            body = self.expr()
        finally:
            del self.scope[len(self.scope) - len(params) :]
        return Lambda(tuple(params), body, span=self.span_from(opener.start))

    def unexpected_operand(self, token: Token) -> NoReturn:
        expected = "an expression"
        if token.kind is TokenKind.EOF:
            self.fail(f"The {self.what} ended where an expression was expected.", token, expected)
        if token.kind is TokenKind.VARIABLE:
            self.fail(
                f"Variables such as `{token.text}` are not supported by seqfast.",
                token,
                expected,
            )
        if token.kind is TokenKind.MISTAKE:
            self.mistake(token, token.text)
        if token.is_punct("*"):
            self.fail(
                f"`*` at position {token.start} is not a value: it only appears in `count(*)`, "
                "`select *` and wildcards such as `Items[*]`.",
                token,
                expected,
            )
        self.fail(
            f"Expected an expression, but found {token.describe()} at position {token.start}.",
            token,
            expected,
        )

    # --- queries --------------------------------------------------------------------------------

    def select_clauses(self, start: int) -> Query:
        columns = [self.column()]
        while self.peek().is_punct(","):
            self.advance()
            columns.append(self.column())
        query = Query(tuple(columns))
        if self.peek().is_word("into"):
            self.fail(
                "`into` (query variables) is not supported by seqfast.",
                self.peek(),
                "`from`",
                kind="unsupported",
            )
        for clause in _CLAUSES:
            token = self.peek()
            if not token.is_word(clause):
                continue
            self.clause_tokens[clause] = self.advance()
            query = self.clause(query, clause)
        token = self.peek()
        if token.is_word(*_CLAUSES):
            name = _CLAUSE_NAMES.get(token.lower, token.lower)
            again = token.lower in self.clause_tokens
            self.fail(
                f"The `{name}` clause at position {token.start} is "
                + ("repeated." if again else "out of order.")
                + " Clauses go in the order select, from, where, group by, having, "
                "order by, limit, for.",
                token,
                "the end of the query",
            )
        self.end_of_input("a clause such as `from`, `where` or `group by`, or the end of the query")
        return replace(query, span=Span(start, self.last_end))

    def column(self) -> Column:
        token = self.peek()
        start = token.start
        # `select from stream`; a property named `from` is still selectable (`select from, x`).
        if token.is_word(*_CLAUSES) and self.peek(1).kind is not TokenKind.PUNCT:
            self.fail(
                f"Expected a column after `select`, but found {token.describe()}.",
                token,
                "a column",
                suggestion="Select at least one expression, such as `count(*)` or `*`.",
            )
        if token.is_punct("*") and not self.peek(1).is_punct("("):
            self.advance()
            # Seq's grammar gives `*` no alias: a following `as` is reported as out of place.
            return Column(Star(span=Span(token.start, token.end)), span=self.span_from(start))
        if token.is_word("distinct") and self.sql_distinct():
            self.fail(
                "`distinct` is a function in Seq's queries, not a keyword.",
                token,
                "a column",
                suggestion="Write `select distinct(Name) from stream`.",
            )
        expr = self.expr()
        alias = self.alias()
        return Column(expr, alias, span=self.span_from(start))

    def sql_distinct(self) -> bool:
        """Whether `distinct` starts SQL's `select distinct x` (a property named so does not)."""
        following = self.peek(1)
        if following.kind is TokenKind.WORD:
            return not following.is_word(*_CLAUSES, "as", *KEYWORDS)
        return following.kind in (TokenKind.BUILTIN, TokenKind.STRING, TokenKind.NUMBER)

    def alias(self) -> str | None:
        if not self.peek().is_word("as"):
            return None
        self.advance()
        token = self.peek()
        if token.kind is TokenKind.WORD and is_plain_name(token.text):
            return self.advance().text
        suggestion = None
        if token.kind in (TokenKind.STRING, TokenKind.TEXT):
            suggestion = "Aliases are plain names, as in `as request_count`, without quotes."
        elif token.kind is TokenKind.WORD:
            suggestion = f"`{token.text}` is a keyword; choose another name."
        self.fail(
            f"Expected a name after `as`, but found {token.describe()}.",
            token,
            "a name",
            suggestion=suggestion,
        )

    def clause(self, query: Query, clause: str) -> Query:
        if clause == "from":
            source = self.peek()
            if source.is_word("stream"):
                self.advance()
                if self.peek().is_word("lateral"):
                    self.fail(
                        "`lateral` joins are not supported by seqfast.",
                        self.peek(),
                        "a clause such as `where`",
                        kind="unsupported",
                    )
                return replace(query, source="stream")
            if source.is_word("series"):
                self.fail(
                    "Metrics (`from series`) are not supported by seqfast.",
                    source,
                    "`stream`",
                    kind="unsupported",
                )
            self.fail(
                f"Expected `stream` after `from`, but found {source.describe()}.",
                source,
                "`stream`",
                suggestion="Seq queries read `from stream`, which holds all events and spans.",
            )
        if clause == "where":
            return replace(query, where=self.expr())
        if clause == "having":
            return replace(query, having=self.expr())
        if clause == "group":
            self.expect_word("by", "after `group`")
            return replace(query, group_by=tuple(self.groupings()))
        if clause == "order":
            self.expect_word("by", "after `order`")
            return replace(query, order_by=tuple(self.orderings()))
        if clause == "limit":
            return replace(query, limit=self.limit())
        return replace(query, options=tuple(self.options()))

    def groupings(self) -> list[Grouping | TimeGrouping]:
        groupings: list[Grouping | TimeGrouping] = []
        while True:
            token = self.peek()
            start = token.start
            if token.is_word("time") and self.peek(1).is_punct("("):
                self.advance()
                opener = self.advance()
                interval = self.peek()
                if interval.kind is not TokenKind.DURATION:
                    suggestion = None
                    if interval.kind is TokenKind.NUMBER:
                        suggestion = f"Give the slice a unit, as in `time({interval.text}m)`."
                    self.fail(
                        f"Expected a duration in `time(...)`, but found {interval.describe()}.",
                        interval,
                        "a duration such as `15m`",
                        suggestion=suggestion,
                    )
                self.advance()
                duration = Duration(
                    _duration_parts(interval), span=Span(interval.start, interval.end)
                )
                self.expect_punct(")", opener)
                groupings.append(TimeGrouping(duration, span=self.span_from(start)))
            else:
                expr = self.expr()
                ci = False
                if self.peek().is_word("ci"):
                    self.advance()
                    ci = True
                alias = self.alias()
                groupings.append(Grouping(expr, ci, alias, span=self.span_from(start)))
            if not self.peek().is_punct(","):
                return groupings
            self.advance()

    def orderings(self) -> list[Ordering | TimeOrdering]:
        orderings: list[Ordering | TimeOrdering] = []
        ends = ("ci", "asc", "desc", "limit", "for")
        while True:
            token = self.peek()
            following = self.peek(1)
            ends_here = (
                following.kind is TokenKind.EOF
                or following.is_punct(",")
                or following.is_word(*ends)
            )
            if token.is_word("time") and ends_here:
                self.advance()
                orderings.append(TimeOrdering(self.direction(), span=self.span_from(token.start)))
            elif token.kind is TokenKind.WORD and is_plain_name(token.text) and ends_here:
                self.advance()
                ci = False
                if self.peek().is_word("ci"):
                    self.advance()
                    ci = True
                orderings.append(
                    Ordering(token.text, ci, self.direction(), span=self.span_from(token.start))
                )
            else:
                self.fail(
                    "`order by` takes the name of a column or group key, or `time`, "
                    f"but found {token.describe()}.",
                    token,
                    "a column alias or `time`",
                    kind="usage",
                    suggestion=(
                        "Name the value in `select` (`count(*) as total`) or in `group by` "
                        "(`group by Path as path`) and order by that name."
                    ),
                )
            if not self.peek().is_punct(","):
                return orderings
            self.advance()

    def direction(self) -> bool:
        if self.peek().is_word("asc", "desc"):
            return self.advance().lower == "desc"
        return False

    def limit(self) -> int:
        token = self.peek()
        if token.kind is TokenKind.NUMBER and token.text.isdigit():
            value = int(token.text)
            if 1 <= value <= MAX_LIMIT:
                self.advance()
                return value
        self.fail(
            f"Expected a whole number of rows from 1 to {MAX_LIMIT} after `limit`, "
            f"but found {token.describe()}.",
            token,
            "a whole number",
        )

    def options(self) -> list[str]:
        options: list[str] = []
        while True:
            token = self.peek()
            if not token.is_word(*_FOR_OPTIONS):
                self.fail(
                    f"Unknown query option {token.describe()}: seqfast knows "
                    + ", ".join(f"`{o}`" for o in _FOR_OPTIONS)
                    + ".",
                    token,
                    "a query option",
                    kind="unsupported",
                )
            options.append(self.advance().lower)
            if not self.peek().is_punct(","):
                return options
            self.advance()


def _duration_parts(token: Token) -> tuple[tuple[int, str], ...]:
    return cast(tuple[tuple[int, str], ...], token.value)


def _member(target: Expr, name: str, span: Span) -> Expr:
    # `@Properties.Name` and `@Properties['Name']` are what the bare `Name` means.
    if isinstance(target, BuiltIn) and target.name == "Properties":
        return Property(name, span=span)
    return Member(target, name, span=span)


def _check_depth(exprs: list[Expr]) -> None:
    # Left-associative runs (`1 + 1 + 1 + ...`) grow the tree without nesting the parser, so
    # the tree's own depth is bounded too: later passes walk it recursively.  A lone leaf is
    # at depth 0, as the outermost expression is for the parser.
    for expr in exprs:
        if depth(expr) - 1 > MAX_DEPTH:
            raise QuerySyntaxError(
                f"The expression is nested more than {MAX_DEPTH} levels deep.",
                position=expr.span.start,
                expected="a shallower expression",
                kind="limit",
            )


class _Checker:
    """The check step: names, argument counts, and where each construct may appear."""

    def __init__(self, text: str) -> None:
        self.text = text

    def fail(
        self,
        message: str,
        node: Node,
        expected: str,
        kind: ErrorKind,
        suggestion: str | None = None,
        replacement: str | None = None,
    ) -> NoReturn:
        corrected = None
        if replacement is not None:
            corrected = _corrected(self.text, node.span.start, node.span.end, replacement)
        raise QuerySyntaxError(
            message,
            position=node.span.start,
            expected=expected,
            kind=kind,
            suggestion=suggestion,
            corrected=corrected,
        )

    def filter(self, expr: Expr) -> None:
        self.visit(expr, predicate=True, aggregates=None)

    def query(self, query: Query, clause_tokens: dict[str, Token]) -> None:
        scalar = query.source is None
        if scalar:
            for clause in ("where", "group", "having", "order"):
                if clause in clause_tokens:
                    token = clause_tokens[clause]
                    raise QuerySyntaxError(
                        f"A query without `from stream` computes one row of constants, so it "
                        f"cannot have a `{_CLAUSE_NAMES.get(clause, clause)}` clause.",
                        position=token.start,
                        expected="`from stream`",
                        kind="usage",
                        suggestion="Add `from stream` after the selected columns.",
                    )
        column_context = "scalar" if scalar else "query"
        for column in query.columns:
            if scalar and isinstance(column.expr, Star):
                self.fail(
                    "`select *` needs events to select: add `from stream`.",
                    column,
                    "`from stream`",
                    "usage",
                )
            self.visit(column.expr, predicate=False, aggregates=column_context)
        self.rowsets(query.columns)
        if query.where is not None:
            self.visit(query.where, predicate=True, aggregates=None)
        keys = []
        for grouping in query.group_by:
            if isinstance(grouping, Grouping):
                self.visit(grouping.expr, predicate=False, aggregates=None)
                keys.append(grouping.expr)
        times = [g for g in query.group_by if isinstance(g, TimeGrouping)]
        if len(times) > 1:
            self.fail(
                "A query can group by `time(...)` only once.", times[1], "one `time(...)`", "usage"
            )
        for t in times:
            if t.interval.ticks <= 0:
                self.fail(
                    "A time slice must be longer than zero.", t.interval, "a duration", "usage"
                )
        if query.having is not None:
            self.visit(query.having, predicate=True, aggregates="query")
        for column in query.columns:
            if column.expr in keys:
                self.fail(
                    f"`{to_source(column.expr)}` is a group key: group keys are output "
                    "automatically and must not be selected.",
                    column,
                    "a column that is not a group key",
                    "usage",
                    suggestion="Remove it from `select`; name it with `group by ... as name`.",
                )
        aliases: set[str] = set()
        named: list[Column | Grouping] = [*query.columns]
        named.extend(g for g in query.group_by if isinstance(g, Grouping))
        for item in named:
            if item.alias is None:
                continue
            if item.alias in aliases:
                self.fail(f"The name `{item.alias}` is used twice.", item, "a new name", "usage")
            aliases.add(item.alias)

    def rowsets(self, columns: tuple[Column, ...]) -> None:
        """`distinct`, `top` and `bottom` are whole columns, and the only aggregate present."""
        aggregates: list[Call] = []
        rowset: Call | None = None
        for column in columns:
            top_level = column.expr
            for call in _aggregate_calls(column.expr):
                aggregates.append(call)
                if call.name in ROWSET_AGGREGATES:
                    if call is not top_level:
                        self.fail(
                            f"`{call.name}()` produces rows, so it must be a column on its own.",
                            call,
                            "an aggregate",
                            "usage",
                        )
                    rowset = call
        if rowset is not None and len(aggregates) > 1:
            self.fail(
                f"`{rowset.name}()` cannot be combined with other aggregates in one query.",
                rowset,
                "a single aggregate",
                "usage",
            )

    def visit(
        self,
        node: Expr,
        *,
        predicate: bool,
        aggregates: str | None,
        within: str | None = None,
    ) -> None:
        """Check `node` and what is below it.

        `predicate`: a condition is expected here (text fragments are allowed).
        `aggregates`: None where aggregates are not allowed, "query" where they are, "scalar"
        in a query without `from stream`.  `within`: the aggregate being looked inside.
        """
        if isinstance(node, TextSearch):
            if not predicate:
                self.fail(
                    'A "double quoted" fragment is a text search, true or false, not a '
                    "string value.",
                    node,
                    "a 'single quoted' string",
                    "usage",
                    suggestion=f"Quote strings with single quotes: {quote_string(node.text)}.",
                    replacement=quote_string(node.text),
                )
            return
        if isinstance(node, BuiltIn):
            self.built_in(node)
            return
        if isinstance(node, Lambda):
            self.fail(
                "A lambda (`|x| ...`) can only be the second argument of `Some()` or `Every()`.",
                node,
                "an expression",
                "usage",
            )
        if isinstance(node, Call):
            self.call(node, aggregates, within)
            return
        if isinstance(node, Binary) and node.ci and node.op not in CI_COMPARISONS:
            self.fail(
                f"`ci` cannot modify `{node.op}`: only `=`, `<>`, `like` and `in` compare "
                "case-insensitively.",
                node,
                "a comparison without `ci`",
                "usage",
            )
        below_predicate = isinstance(node, Logical) or (
            isinstance(node, Unary) and node.op == "not"
        )
        for child in children(node):
            is_condition = isinstance(node, Conditional) and child is node.condition
            branch = isinstance(node, Conditional) and not is_condition and predicate
            self.visit(
                cast(Expr, child),
                predicate=below_predicate or is_condition or branch,
                aggregates=aggregates,
                within=within,
            )

    def built_in(self, node: BuiltIn) -> None:
        name = node.name
        if name in BUILT_INS:
            return
        if name in UNSUPPORTED_BUILT_INS:
            self.fail(
                f"`@{name}` is not supported by seqfast.",
                node,
                "a built-in property",
                "unsupported",
            )
        known = sorted(BUILT_INS | UNSUPPORTED_BUILT_INS)
        fix = next((k for k in known if k.lower() == name.lower()), None)
        if fix is None:
            fix = CLEF_NAMES.get(name.lower())
        if fix is None:
            fix = _closest(name, known)
        suggestion = (
            f"Did you mean `@{fix}`?"
            if fix
            else "Built-ins are " + ", ".join(f"`@{k}`" for k in sorted(BUILT_INS)) + "."
        )
        self.fail(
            f"`@{name}` is not a built-in property.",
            node,
            "a built-in property",
            "name",
            suggestion=suggestion,
            replacement=None if fix is None else self.relabel(node, "@" + fix),
        )

    def relabel(self, node: Node, name: str) -> str:
        """The source of `node` with its leading name replaced by `name`."""
        source = self.text[node.span.start : node.span.end]
        end = 1
        while end < len(source) and (source[end].isalnum() or source[end] == "_"):
            end += 1
        return name + source[end:]

    def call(self, node: Call, aggregates: str | None, within: str | None) -> None:
        info = FUNCTIONS.get(node.name.lower())
        if info is None:
            fix = _closest(node.name, [f.name for f in FUNCTIONS.values()])
            self.fail(
                f"`{node.name}()` is not a function Seq knows.",
                node,
                "a function name",
                "name",
                suggestion=f"Did you mean `{fix}()`?" if fix else None,
                replacement=None if fix is None else self.relabel(node, fix),
            )
        count = len(node.args)
        if not info.min_args <= count <= (info.max_args if info.max_args is not None else count):
            if info.max_args is None:
                wanted = f"at least {info.min_args}"
            elif info.min_args == info.max_args:
                wanted = str(info.min_args)
            else:
                wanted = f"{info.min_args} or {info.max_args}"
            plural = "" if wanted in ("1", "at least 1") else "s"
            self.fail(
                f"`{info.name}()` takes {wanted} argument{plural}, not {count}.",
                node,
                f"{wanted} argument{plural}",
                "usage",
            )
        if node.ci and not info.ci:
            suggestion = "If `ci` is meant for a comparison, wrap the call in parentheses."
            if info.name == "count" and isinstance(node.args[0], Call):
                suggestion = "For case-insensitive distinct values write `count(distinct(x) ci)`."
            self.fail(
                f"`{info.name}()` does not take the `ci` modifier.",
                node,
                "no `ci`",
                "usage",
                suggestion=suggestion,
            )
        if info.aggregate:
            self.aggregate(node, aggregates, within)
            within = info.name
        for position, arg in enumerate(node.args):
            if isinstance(arg, Lambda) and info.name in ("Some", "Every") and position == 1:
                self.visit(arg.body, predicate=True, aggregates=aggregates, within=within)
            elif isinstance(arg, Star):
                continue
            else:
                self.visit(arg, predicate=False, aggregates=aggregates, within=within)

    def aggregate(self, node: Call, aggregates: str | None, within: str | None) -> None:
        if aggregates is None:
            self.fail(
                f"`{node.name}()` is an aggregate: it can only be used in the columns or the "
                "`having` clause of a `select ... from stream` query.",
                node,
                "a scalar expression",
                "usage",
            )
        if aggregates == "scalar":
            self.fail(
                f"`{node.name}()` is an aggregate, and a query without `from stream` has no "
                "events to aggregate.",
                node,
                "a scalar expression",
                "usage",
                suggestion="Add `from stream` after the selected columns.",
            )
        if within is not None and not (within == "count" and node.name == "distinct"):
            self.fail(
                f"`{node.name}()` is inside `{within}()`: aggregates cannot be nested "
                "(except `count(distinct(x))`).",
                node,
                "a scalar expression",
                "usage",
            )


def _aggregate_calls(expr: Expr) -> list[Call]:
    """Aggregate calls in `expr`, outermost first (`distinct` under `count` is part of it)."""
    found: list[Call] = []
    stack: list[Node] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Call) and node.aggregate:
            found.append(node)
            continue  # nesting is the visitor's error to report
        stack.extend(children(node))
    return found
