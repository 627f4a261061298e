"""The typed syntax tree of filters and queries, the names it knows, and `to_source`.

Nodes are frozen dataclasses.  Every node carries `span`, the half-open range of source
offsets it was parsed from; spans take no part in equality or hashing, so two trees are equal
when they have the same structure, wherever they came from.  (Tests rely on this:
`parse(to_source(tree)) == tree`.)

The tree keeps what the text says and normalises only spellings that mean the same thing:

* function names to their documented case (`tolower` → `ToLower`, `COUNT` → `count`);
* `@Properties['Name']` and `@Properties.Name` to `Property('Name')`, which is what the bare
  `Name` means;
* `x['name']` (a string literal index) to `Member(x, 'name')`, which is what `x.name` means;
* `μs`/`µs` to `us` in durations.

It does not fold constants: `-5` is `Unary('-', Number(5))`, so `Number` is never negative.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal, TypeAlias, cast

from seqfast.query.lexer import duration_ticks, is_identifier

DEFAULT_LIMIT: Final = 1024  # rows a query returns without a `limit` clause, as in Seq


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int


NO_SPAN: Final = Span(0, 0)


@dataclass(frozen=True, slots=True)
class Node:
    span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)


# --- literals ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number(Node):
    value: Decimal  # never negative: a minus sign is `Unary('-', ...)`


@dataclass(frozen=True, slots=True)
class String(Node):
    value: str


@dataclass(frozen=True, slots=True)
class Boolean(Node):
    value: bool


@dataclass(frozen=True, slots=True)
class Null(Node):
    pass


@dataclass(frozen=True, slots=True)
class Duration(Node):
    """`1h30m`: kept as written so that it prints back the same; `ticks` is its value."""

    parts: tuple[tuple[int, str], ...]  # (count, unit), unit one of d h m s ms us ns

    @property
    def ticks(self) -> Decimal:
        """The duration in 100-nanosecond ticks, Seq's unit of time."""
        return duration_ticks(self.parts)


@dataclass(frozen=True, slots=True)
class Regex(Node):
    """`/pattern/`: the pattern exactly as written between the slashes (`\\/` stays)."""

    pattern: str


@dataclass(frozen=True, slots=True)
class TextSearch(Node):
    """A `"text fragment"`, or a whole filter read as free text.

    True when `@Message` or `@Exception` contains `text`, compared case-insensitively (Seq
    documents `"prod"` as `@Message like '%prod%' ci or @Exception like '%prod%' ci`, with
    `text` taken literally rather than as a `like` pattern).  The parser only allows it where a
    condition is expected: alone, under `and`/`or`/`not`, or as the condition of an `if`.
    """

    text: str


@dataclass(frozen=True, slots=True)
class Array(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Object(Node):
    members: tuple[tuple[str, Expr], ...]


# --- properties and paths ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Property(Node):
    """A user property: bare `Name`, or `@Properties['any name']`."""

    name: str


@dataclass(frozen=True, slots=True)
class BuiltIn(Node):
    """`@Timestamp`, `@Level`, ...: `name` is one of `BUILT_INS`, without the `@`."""

    name: str


@dataclass(frozen=True, slots=True)
class Member(Node):
    """`target.name` or `target['name']`."""

    target: Expr
    name: str


@dataclass(frozen=True, slots=True)
class Index(Node):
    """`target[index]` with a computed or numeric index."""

    target: Expr
    index: Expr


Quantifier: TypeAlias = Literal["any", "all"]


@dataclass(frozen=True, slots=True)
class Wildcard(Node):
    """`target[?]` (`any`) or `target[*]` (`all`).

    The comparison that contains the wildcard is true when it holds for any (all) elements;
    the evaluator scopes the quantifier to the innermost enclosing comparison, as Seq does.
    """

    target: Expr
    quantifier: Quantifier


# --- operators --------------------------------------------------------------------------------

UnaryOp: TypeAlias = Literal["not", "-"]
BinaryOp: TypeAlias = Literal[
    "=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "not like",
    "in",
    "not in",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
]
LogicalOp: TypeAlias = Literal["and", "or"]

COMPARISONS: Final[frozenset[str]] = frozenset(
    ("=", "<>", "<", "<=", ">", ">=", "like", "not like", "in", "not in")
)
# Seq's `ci` modifier applies to these; on `<`, `<=`, `>` and `>=` it is an error (Seq reserves
# it for a future case-insensitive ordering of strings).
CI_COMPARISONS: Final[frozenset[str]] = frozenset(("=", "<>", "like", "not like", "in", "not in"))


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: UnaryOp
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """Comparisons and arithmetic; `ci` (case-insensitive) only on `CI_COMPARISONS`."""

    op: BinaryOp
    left: Expr
    right: Expr
    ci: bool = False


@dataclass(frozen=True, slots=True)
class Logical(Node):
    """`a and b and c`: one node per run of the same operator, at least two operands.

    A run is flattened because filters such as `Id = 'a' or Id = 'b' or ...` grow long, and
    a left-deep tree would grow as deep; parentheses in the text still nest.
    """

    op: LogicalOp
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class IsNull(Node):
    """`operand is null` (`negated`: `is not null`): true when null *or* undefined."""

    operand: Expr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Conditional(Node):
    """`if condition then consequent else alternative`."""

    condition: Expr
    consequent: Expr
    alternative: Expr


@dataclass(frozen=True, slots=True)
class Star(Node):
    """`*` in `count(*)` and `select *`."""


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A function call; `name` is the canonical spelling from `FUNCTIONS`."""

    name: str
    args: tuple[Expr, ...]
    ci: bool = False

    @property
    def aggregate(self) -> bool:
        """Whether this is an aggregate (`count`, `sum`, ...), valid only in queries."""
        info = FUNCTIONS.get(self.name.lower())
        return info is not None and info.aggregate


@dataclass(frozen=True, slots=True)
class Lambda(Node):
    """`|x, y| body`: the predicate argument of `Some()` and `Every()`."""

    params: tuple[str, ...]
    body: Expr


@dataclass(frozen=True, slots=True)
class LambdaParameter(Node):
    """A reference, inside a lambda's body, to one of its parameters."""

    name: str


Expr: TypeAlias = (
    Number
    | String
    | Boolean
    | Null
    | Duration
    | Regex
    | TextSearch
    | Array
    | Object
    | Property
    | BuiltIn
    | Member
    | Index
    | Wildcard
    | Unary
    | Binary
    | Logical
    | IsNull
    | Conditional
    | Call
    | Star
    | Lambda
    | LambdaParameter
)

# --- filters and queries ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filter(Node):
    """A search expression: `expr` is None for an empty filter, which matches every event.

    `matched_as_text` says that the text was not a structured expression and became one
    `TextSearch` of the whole text; `reason` says why (Seq's API reports both, as
    `MatchedAsText` and `ReasonIfMatchedAsText`).  Neither takes part in equality.
    """

    expr: Expr | None
    matched_as_text: bool = field(default=False, compare=False)
    reason: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Column(Node):
    expr: Expr  # `Star()` for `select *`
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class Grouping(Node):
    expr: Expr
    ci: bool = False
    alias: str | None = None


@dataclass(frozen=True, slots=True)
class TimeGrouping(Node):
    """`time(15m)`: slices of `interval` on `@Timestamp`."""

    interval: Duration


@dataclass(frozen=True, slots=True)
class Ordering(Node):
    """`order by alias [ci] [asc|desc]`: `alias` names a column or a group key."""

    alias: str
    ci: bool = False
    descending: bool = False


@dataclass(frozen=True, slots=True)
class TimeOrdering(Node):
    """`order by time`: by time slice."""

    descending: bool = False


@dataclass(frozen=True, slots=True)
class Query(Node):
    """`select ... [from stream] [where] [group by] [having] [order by] [limit] [for]`.

    `source` is None for a scalar query such as `select 1 + 1`.  `limit` is `DEFAULT_LIMIT`
    when the text has no `limit` clause.  `options` holds the `for` options, in lower case.
    """

    columns: tuple[Column, ...]
    source: Literal["stream"] | None = None
    where: Expr | None = None
    group_by: tuple[Grouping | TimeGrouping, ...] = ()
    having: Expr | None = None
    order_by: tuple[Ordering | TimeOrdering, ...] = ()
    limit: int = DEFAULT_LIMIT
    options: tuple[str, ...] = ()


# --- the names the language knows ------------------------------------------------------------

# Built-in properties seqfast evaluates (Seq's list, without the three below).
BUILT_INS: Final[frozenset[str]] = frozenset(
    (
        "Arrived",
        "Elapsed",
        "EventType",
        "Exception",
        "Id",
        "Level",
        "Message",
        "MessageTemplate",
        "ParentId",
        "Properties",
        "Resource",
        "Scope",
        "SpanId",
        "SpanKind",
        "Start",
        "Timestamp",
        "TraceId",
    )
)
# Seq has these, seqfast does not (yet): rejected by name rather than evaluated as undefined.
UNSUPPORTED_BUILT_INS: Final[frozenset[str]] = frozenset(("Data", "Document", "Definitions"))
# CLEF's short names, which people type out of habit: they are not properties in Seq's language.
CLEF_NAMES: Final[dict[str, str]] = {
    "t": "Timestamp",
    "m": "Message",
    "mt": "MessageTemplate",
    "l": "Level",
    "x": "Exception",
    "i": "EventType",
    "tr": "TraceId",
    "sp": "SpanId",
    "ps": "ParentId",
    "st": "Start",
    "sk": "SpanKind",
    "ra": "Resource",
    "sa": "Scope",
}


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    name: str  # canonical spelling
    min_args: int
    max_args: int | None  # None: any number
    aggregate: bool = False
    ci: bool = False  # accepts the `ci` modifier


def _fn(
    name: str, lo: int, hi: int | None, *, aggregate: bool = False, ci: bool = False
) -> FunctionInfo:
    return FunctionInfo(name, lo, hi, aggregate, ci)


# Keyed by lower-case name: function names are matched case-insensitively.
FUNCTIONS: Final[dict[str, FunctionInfo]] = {
    f.name.lower(): f
    for f in (
        # Scalar functions (Seq's documented list).
        _fn("Arrived", 1, 1),
        _fn("Bucket", 1, 2),
        _fn("Coalesce", 1, None),
        _fn("Concat", 1, None),
        _fn("Contains", 2, 2, ci=True),
        _fn("DatePart", 3, 3),
        _fn("DateTime", 1, 1),
        _fn("ElementAt", 2, 2, ci=True),
        _fn("EndsWith", 2, 2, ci=True),
        _fn("Every", 2, 2),
        _fn("FromJson", 1, 1),
        _fn("Has", 1, 1),
        _fn("IndexOf", 2, 2, ci=True),
        _fn("Keys", 1, 1),
        _fn("LastIndexOf", 2, 2, ci=True),
        _fn("Length", 1, 1),
        _fn("Now", 0, 0),
        _fn("OffsetIn", 2, 2),
        _fn("Replace", 3, 3, ci=True),
        _fn("Round", 2, 2),
        _fn("Some", 2, 2),
        _fn("StartsWith", 2, 2, ci=True),
        _fn("Substring", 2, 3),
        _fn("TimeOfDay", 2, 2),
        _fn("TimeSpan", 1, 1),
        _fn("ToEventType", 1, 1),
        _fn("ToHexString", 1, 1),
        _fn("ToIsoString", 1, 2),
        _fn("ToJson", 1, 1),
        _fn("ToLower", 1, 1),
        _fn("ToNumber", 1, 1),
        _fn("TotalMilliseconds", 1, 1),
        _fn("ToTimeString", 1, 1),
        _fn("ToUpper", 1, 1),
        _fn("TypeOf", 1, 1),
        _fn("Values", 1, 1),
        # Aggregates: only in a query's columns and `having`.
        _fn("all", 1, 1, aggregate=True),
        _fn("any", 1, 1, aggregate=True),
        _fn("bottom", 2, 2, aggregate=True),
        _fn("count", 1, 1, aggregate=True),
        _fn("distinct", 1, 1, aggregate=True, ci=True),
        _fn("first", 1, 1, aggregate=True),
        _fn("interval", 0, 0, aggregate=True),
        _fn("last", 1, 1, aggregate=True),
        _fn("max", 1, 1, aggregate=True),
        _fn("mean", 1, 1, aggregate=True),
        _fn("min", 1, 1, aggregate=True),
        _fn("percentile", 2, 3, aggregate=True),
        _fn("sum", 1, 1, aggregate=True),
        _fn("top", 2, 2, aggregate=True),
    )
}
# Aggregates that produce a set of rows: each must be a whole column, and alone in its query.
ROWSET_AGGREGATES: Final[frozenset[str]] = frozenset(("distinct", "top", "bottom"))

# Words that cannot name a property without `@Properties['...']`, in any case.
KEYWORDS: Final[frozenset[str]] = frozenset(
    {"and", "or", "not", "like", "in", "is", "null", "true", "false", "if", "then", "else"}
    | {"ci", "let"}
)
# Words with a meaning in queries; the parser accepts them as property names where no clause
# can start, but `to_source` quotes them so that its output never depends on that.
QUERY_WORDS: Final[frozenset[str]] = frozenset(
    {"select", "from", "where", "group", "by", "having", "order", "limit", "for", "as"}
    | {"asc", "desc", "into", "stream", "series", "time", "explain", "lateral"}
)


def is_plain_name(name: str) -> bool:
    """Whether `name` can be written bare, as a property or an alias."""
    return is_identifier(name) and name.lower() not in KEYWORDS and name.lower() not in QUERY_WORDS


# --- walking the tree -------------------------------------------------------------------------

_CHILD_FIELDS: dict[type[Node], tuple[str, ...]] = {}


def children(node: Node) -> Iterator[Node]:
    """The nodes directly below `node`, in source order."""
    names = _CHILD_FIELDS.get(type(node))
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(node) if f.name != "span")
        _CHILD_FIELDS[type(node)] = names
    for name in names:
        value = getattr(node, name)
        if isinstance(value, Node):
            yield value
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, Node):
                    yield item
                elif isinstance(item, tuple):  # an object member: (name, value)
                    yield from (x for x in item if isinstance(x, Node))


def depth(node: Node) -> int:
    """The number of nodes on the longest path down from `node`, without recursion."""
    deepest = 0
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children(current))
    return deepest


# --- printing ---------------------------------------------------------------------------------
#
# Binding strength, loosest first.  A node is wrapped in parentheses when its context needs a
# tighter one.  `if` and lambdas end in an expression that would swallow whatever follows, so
# they sit below everything and are wrapped everywhere but in delimited places (arguments,
# brackets, clause bodies).
_LOOSEST, _OR, _AND, _COMPARISON, _SUM, _PRODUCT, _POWER, _UNARY, _PATH = range(9)

_BINARY_LEVEL: Final[dict[str, int]] = {
    **dict.fromkeys(COMPARISONS, _COMPARISON),
    **dict.fromkeys(("+", "-"), _SUM),
    **dict.fromkeys(("*", "/", "%"), _PRODUCT),
    "^": _POWER,
}


def _level(node: Node) -> int:
    if isinstance(node, Conditional | Lambda):
        return _LOOSEST
    if isinstance(node, Logical):
        return _OR if node.op == "or" else _AND
    if isinstance(node, Binary):
        return _BINARY_LEVEL[node.op]
    if isinstance(node, Unary | IsNull):
        return _UNARY
    return _PATH


def to_source(node: Node) -> str:
    """Text that parses back to a tree equal to `node` (for trees the parser can produce)."""
    return _Printer().node(node)


def quote_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote_text(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else ch)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class _Printer:
    def __init__(self) -> None:
        # Lambda parameters in scope: a property with the same name must be written in full.
        self.scope: list[str] = []

    def node(self, node: Node) -> str:
        if isinstance(node, Filter):
            return "" if node.expr is None else self.expr(node.expr)
        if isinstance(node, Query):
            return self.query(node)
        if isinstance(node, Column | Grouping | TimeGrouping | Ordering | TimeOrdering):
            return self.clause_item(node)
        return self.expr(cast(Expr, node))  # every other node is an expression

    def expr(self, node: Expr, level: int = _LOOSEST, regex_ok: bool = True) -> str:
        """`node` written where binding strength `level` is needed.

        `regex_ok` says whether the token before this text lets `/` open a regular
        expression (see the lexer); where it does not, a leading regex is parenthesised.
        """
        if _level(node) < level:
            return "(" + self.bare(node, True) + ")"
        return self.bare(node, regex_ok)

    def bare(self, node: Expr, regex_ok: bool) -> str:
        if isinstance(node, Number):
            if not node.value.is_finite():
                raise ValueError(f"cannot write the number {node.value}")
            return format(node.value, "f")
        if isinstance(node, String):
            return quote_string(node.value)
        if isinstance(node, Boolean):
            return "true" if node.value else "false"
        if isinstance(node, Null):
            return "null"
        if isinstance(node, Duration):
            return "".join(f"{count}{unit}" for count, unit in node.parts)
        if isinstance(node, Regex):
            text = f"/{node.pattern}/"
            return text if regex_ok else f"({text})"
        if isinstance(node, TextSearch):
            return quote_text(node.text)
        if isinstance(node, Array):
            return "[" + ", ".join(self.expr(item) for item in node.items) + "]"
        if isinstance(node, Object):
            members = (f"{self.key(name)}: {self.expr(value)}" for name, value in node.members)
            return "{" + ", ".join(members) + "}"
        if isinstance(node, Property):
            if is_plain_name(node.name) and node.name not in self.scope:
                return node.name
            return f"@Properties[{quote_string(node.name)}]"
        if isinstance(node, BuiltIn):
            return "@" + node.name
        if isinstance(node, LambdaParameter):
            return node.name
        if isinstance(node, Member):
            target = self.expr(node.target, _PATH, regex_ok)
            if is_identifier(node.name):
                return f"{target}.{node.name}"
            return f"{target}[{quote_string(node.name)}]"
        if isinstance(node, Index):
            return f"{self.expr(node.target, _PATH, regex_ok)}[{self.expr(node.index)}]"
        if isinstance(node, Wildcard):
            mark = "?" if node.quantifier == "any" else "*"
            return f"{self.expr(node.target, _PATH, regex_ok)}[{mark}]"
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, IsNull):
            operand = self.expr(node.operand, _PATH, regex_ok)
            return f"{operand} is {'not null' if node.negated else 'null'}"
        if isinstance(node, Binary):
            return self.binary(node, regex_ok)
        if isinstance(node, Logical):
            # Each operand must bind tighter than the run, so that a nested run of the same
            # operator (from parentheses in the text) keeps its parentheses.
            inner = _OR + 1 if node.op == "or" else _AND + 1
            parts = [self.expr(node.operands[0], inner, regex_ok)]
            parts.extend(self.expr(operand, inner) for operand in node.operands[1:])
            return f" {node.op} ".join(parts)
        if isinstance(node, Conditional):
            return (
                f"if {self.expr(node.condition)} then {self.expr(node.consequent)} "
                f"else {self.expr(node.alternative)}"
            )
        if isinstance(node, Call):
            args = ", ".join(self.expr(arg) for arg in node.args)
            return f"{node.name}({args})" + (" ci" if node.ci else "")
        if isinstance(node, Star):
            return "*"
        if isinstance(node, Lambda):
            self.scope.extend(node.params)
            try:
                body = self.expr(node.body, _LOOSEST, regex_ok=False)
            finally:
                del self.scope[len(self.scope) - len(node.params) :]
            return f"|{', '.join(node.params)}| {body}"
        raise TypeError(f"not an expression node: {node!r}")

    def unary(self, node: Unary) -> str:
        if node.op == "not":
            return "not " + self.expr(node.operand, _UNARY)
        operand = self.expr(node.operand, _UNARY, regex_ok=False)
        # `--` would start a comment.
        return "- " + operand if operand.startswith("-") else "-" + operand

    def binary(self, node: Binary, regex_ok: bool) -> str:
        level = _BINARY_LEVEL[node.op]
        comparison = level == _COMPARISON
        left = self.expr(node.left, level, regex_ok)
        right = self.expr(node.right, level + 1, regex_ok=comparison)
        if node.ci:
            # A call's own `ci` binds first (`A = f(x) ci` is `ci` on `f`), so a right
            # operand ending in `)` is wrapped to leave the `ci` to the comparison.
            if right.endswith(")"):
                right = f"({right})"
            right += " ci"
        return f"{left} {node.op} {right}"

    def key(self, name: str) -> str:
        return name if is_identifier(name) else quote_string(name)

    def clause_item(self, node: Node) -> str:
        if isinstance(node, Column):
            text = self.expr(node.expr)
            return text if node.alias is None else f"{text} as {node.alias}"
        if isinstance(node, TimeGrouping):
            return f"time({self.expr(node.interval)})"
        if isinstance(node, Grouping):
            text = self.expr(node.expr)
            if node.ci:
                # Only a plain path leaves a following `ci` to the grouping; anything else
                # might end in a comparison or a call that would take it.
                if not isinstance(node.expr, Property | BuiltIn | Member | Index | Wildcard):
                    text = f"({text})"
                text += " ci"
            return text if node.alias is None else f"{text} as {node.alias}"
        if isinstance(node, Ordering):
            return node.alias + (" ci" if node.ci else "") + (" desc" if node.descending else "")
        if isinstance(node, TimeOrdering):
            return "time" + (" desc" if node.descending else "")
        raise TypeError(f"not a clause item: {node!r}")

    def query(self, node: Query) -> str:
        parts = ["select " + ", ".join(self.clause_item(c) for c in node.columns)]
        if node.source is not None:
            parts.append(f"from {node.source}")
        if node.where is not None:
            parts.append(f"where {self.expr(node.where)}")
        if node.group_by:
            parts.append("group by " + ", ".join(self.clause_item(g) for g in node.group_by))
        if node.having is not None:
            parts.append(f"having {self.expr(node.having)}")
        if node.order_by:
            parts.append("order by " + ", ".join(self.clause_item(o) for o in node.order_by))
        if node.limit != DEFAULT_LIMIT:
            parts.append(f"limit {node.limit}")
        if node.options:
            parts.append("for " + ", ".join(node.options))
        return " ".join(parts)
