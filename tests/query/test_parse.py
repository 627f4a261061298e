"""Filters and queries → trees: literals, operators, precedence, `ci`, paths, functions, free
text, every query clause, errors with positions and suggestions, and round trips."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import cast

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seqfast.errors import SeqfastError
from seqfast.query import (
    DEFAULT_LIMIT,
    MAX_DEPTH,
    QuerySyntaxError,
    is_query,
    parse_filter,
    parse_query,
    to_source,
)
from seqfast.query.ast import (
    BUILT_INS,
    CI_COMPARISONS,
    COMPARISONS,
    FUNCTIONS,
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
    Member,
    Null,
    Number,
    Object,
    Ordering,
    Property,
    Query,
    Regex,
    Span,
    Star,
    String,
    TextSearch,
    TimeGrouping,
    TimeOrdering,
    Unary,
    Wildcard,
    is_plain_name,
)
from seqfast.query.ast import Node as AstNode


def expr(text: str) -> Expr:
    """`text` as an expression (strict: never read as free text)."""
    parsed = parse_filter(text, strict=True).expr
    assert parsed is not None
    return parsed


def error(text: str, *, query: bool = False, strict: bool = True) -> QuerySyntaxError:
    with pytest.raises(QuerySyntaxError) as caught:
        if query:
            parse_query(text)
        else:
            parse_filter(text, strict=strict)
    return caught.value


def P(name: str) -> Property:
    return Property(name)


def N(value: int | str) -> Number:
    return Number(Decimal(value))


def S(value: str) -> String:
    return String(value)


def B(op: BinaryOp, left: Expr, right: Expr, ci: bool = False) -> Binary:
    return Binary(op, left, right, ci)


def assert_round_trip_filter(text: str) -> None:
    parsed = parse_filter(text)
    again = parse_filter(to_source(parsed), strict=True)
    assert again == parsed, (text, to_source(parsed))


def assert_round_trip_query(text: str) -> None:
    parsed = parse_query(text)
    assert parse_query(to_source(parsed)) == parsed, (text, to_source(parsed))


# --- literals --------------------------------------------------------------------------------

LITERALS: list[tuple[str, Expr]] = [
    ("0", N(0)),
    ("12.34", N("12.34")),
    ("0xa1b234ff", N(0xA1B234FF)),
    ("'single quoted'", S("single quoted")),
    ("'it''s'", S("it's")),
    ("''", S("")),
    ("true", Boolean(True)),
    ("TRUE", Boolean(True)),
    ("false", Boolean(False)),
    ("False", Boolean(False)),
    ("null", Null()),
    ("NULL", Null()),
    ("[]", Array(())),
    ("[17, null, 'x']", Array((N(17), Null(), S("x")))),
    ("[[1], []]", Array((Array((N(1),)), Array(())))),
    ("{}", Object(())),
    ("{a: 'test', 'b c': 17, d: []}", Object((("a", S("test")), ("b c", N(17)), ("d", Array(()))))),
    ("{not: 1}", Object((("not", N(1)),))),
    ("/System.(Web|Api)/", Regex("System.(Web|Api)")),
    ("/a\\/b/", Regex("a\\/b")),
    ("1d", Duration(((1, "d"),))),
    ("30d", Duration(((30, "d"),))),
    ("2h", Duration(((2, "h"),))),
    ("3m", Duration(((3, "m"),))),
    ("4s", Duration(((4, "s"),))),
    ("5ms", Duration(((5, "ms"),))),
    ("6us", Duration(((6, "us"),))),
    ("6μs", Duration(((6, "us"),))),
    ("7ns", Duration(((7, "ns"),))),
    ("1h30m", Duration(((1, "h"), (30, "m")))),
    ('"timeout"', TextSearch("timeout")),
    ('"say \\"hi\\""', TextSearch('say "hi"')),
]


@pytest.mark.parametrize(("text", "tree"), LITERALS)
def test_literals(text: str, tree: Expr) -> None:
    assert expr(text) == tree


def test_duration_ticks() -> None:
    parsed = expr("1h30m")
    assert isinstance(parsed, Duration)
    assert parsed.ticks == Decimal(54_000_000_000)
    ns = expr("7ns")
    assert isinstance(ns, Duration) and ns.ticks == Decimal("0.07")


# --- operators -------------------------------------------------------------------------------

OPERATORS: list[tuple[str, Expr]] = [
    ("A = 1", B("=", P("A"), N(1))),
    ("A <> 1", B("<>", P("A"), N(1))),
    ("A < 1", B("<", P("A"), N(1))),
    ("A <= 1", B("<=", P("A"), N(1))),
    ("A > 1", B(">", P("A"), N(1))),
    ("A >= 1", B(">=", P("A"), N(1))),
    ("A like 'x%'", B("like", P("A"), S("x%"))),
    ("A LIKE 'x%'", B("like", P("A"), S("x%"))),
    ("A not like 'x%'", B("not like", P("A"), S("x%"))),
    ("A NOT  LIKE 'x%'", B("not like", P("A"), S("x%"))),
    ("A in [1, 2]", B("in", P("A"), Array((N(1), N(2))))),
    ("A not in [1]", B("not in", P("A"), Array((N(1),)))),
    ("A in B", B("in", P("A"), P("B"))),
    ("A + 1", B("+", P("A"), N(1))),
    ("A - 1", B("-", P("A"), N(1))),
    ("A * 1", B("*", P("A"), N(1))),
    ("A / 2", B("/", P("A"), N(2))),
    ("A % 2", B("%", P("A"), N(2))),
    ("A ^ 2", B("^", P("A"), N(2))),
    ("A and B", Logical("and", (P("A"), P("B")))),
    ("A AND B and C", Logical("and", (P("A"), P("B"), P("C")))),
    ("A or B", Logical("or", (P("A"), P("B")))),
    ("not A", Unary("not", P("A"))),
    ("-A", Unary("-", P("A"))),
    ("-5", Unary("-", N(5))),
    ("- -A", Unary("-", Unary("-", P("A")))),
    ("not not A", Unary("not", Unary("not", P("A")))),
    ("A is null", IsNull(P("A"))),
    ("A IS NULL", IsNull(P("A"))),
    ("A is not null", IsNull(P("A"), negated=True)),
    ("if A then 1 else 2", Conditional(P("A"), N(1), N(2))),
    ("IF A THEN 'x' ELSE 'y'", Conditional(P("A"), S("x"), S("y"))),
    ("A = /x/", B("=", P("A"), Regex("x"))),
]


@pytest.mark.parametrize(("text", "tree"), OPERATORS)
def test_operators(text: str, tree: Expr) -> None:
    assert expr(text) == tree


# Each pair parses to the same tree: the second shows the grouping with parentheses.  Seq's
# grammar: or < and < comparison < + - < * / % < ^ < prefix (-, not) and `is null` < paths.
PRECEDENCE: list[tuple[str, str]] = [
    ("a or b and c", "a or (b and c)"),
    ("a and b or c", "(a and b) or c"),
    ("a or b or c and d", "a or b or (c and d)"),
    ("a = 1 and b = 2", "(a = 1) and (b = 2)"),
    ("a = 1 or b = 2 and c = 3", "(a = 1) or ((b = 2) and (c = 3))"),
    ("not A = 1", "(not A) = 1"),  # `not` binds tighter than comparisons, as Seq documents
    ("not a and b", "(not a) and b"),
    ("not x is null", "not (x is null)"),
    ("-x is null", "-(x is null)"),
    ("A + B is null", "A + (B is null)"),
    ("a = b = c", "(a = b) = c"),
    ("a < b <> c", "(a < b) <> c"),
    ("a = 1 + 2", "a = (1 + 2)"),
    ("a + 1 = 2", "(a + 1) = 2"),
    ("a like 'x' + 'y'", "a like ('x' + 'y')"),
    ("a in [1] = true", "(a in [1]) = true"),
    ("1 + 2 * 3", "1 + (2 * 3)"),
    ("1 * 2 + 3", "(1 * 2) + 3"),
    ("1 - 2 - 3", "(1 - 2) - 3"),
    ("1 / 2 / 3", "(1 / 2) / 3"),
    ("a * b % c / d", "((a * b) % c) / d"),
    ("2 * 3 ^ 2", "2 * (3 ^ 2)"),
    ("2 ^ 3 ^ 2", "(2 ^ 3) ^ 2"),  # left-associative, as Seq's grammar has it
    ("-2 ^ 2", "(-2) ^ 2"),
    ("-x.y", "-(x.y)"),
    ("-a * b", "(-a) * b"),
    ("a - -b", "a - (-b)"),
    ("A = B or C = D ci", "(A = B) or (C = D ci)"),  # Seq's `ci` RFC example
    ("if a then b else c + 1", "if a then b else (c + 1)"),
    ("if a then b else c or d", "if a then b else (c or d)"),
    ("(if a then b else c) + 1", "(if a then b else c) + 1"),
    ("a.b.c = 1", "((a.b).c) = 1"),
    ("Keys(x).y", "(Keys(x)).y"),
    ("(a or b) or c", "(a or b) or c"),
]


@pytest.mark.parametrize(("text", "grouped"), PRECEDENCE)
def test_precedence(text: str, grouped: str) -> None:
    assert expr(text) == expr(grouped)


def test_parenthesised_runs_stay_nested() -> None:
    assert expr("(a or b) or c") == Logical("or", (Logical("or", (P("a"), P("b"))), P("c")))
    assert expr("a or b or c") == Logical("or", (P("a"), P("b"), P("c")))


def test_long_runs_of_or_are_flat() -> None:
    text = " or ".join(f"Id = '{i}'" for i in range(5000))
    parsed = expr(text)
    assert isinstance(parsed, Logical) and len(parsed.operands) == 5000


# --- ci --------------------------------------------------------------------------------------

CI: list[tuple[str, Expr]] = [
    ("A = 'x' ci", B("=", P("A"), S("x"), ci=True)),
    ("A = 'x' CI", B("=", P("A"), S("x"), ci=True)),
    ("A <> 'x' ci", B("<>", P("A"), S("x"), ci=True)),
    ("A like 'x%' ci", B("like", P("A"), S("x%"), ci=True)),
    ("A not like 'x%' ci", B("not like", P("A"), S("x%"), ci=True)),
    ("A in ['x'] ci", B("in", P("A"), Array((S("x"),)), ci=True)),
    ("A not in ['x'] ci", B("not in", P("A"), Array((S("x"),)), ci=True)),
    ("A = (ToLower(B)) ci", B("=", P("A"), Call("ToLower", (P("B"),)), ci=True)),
    ("Contains(A, 'x') ci", Call("Contains", (P("A"), S("x")), ci=True)),
    ("StartsWith(A, 'x') ci", Call("StartsWith", (P("A"), S("x")), ci=True)),
    ("EndsWith(A, 'x') ci", Call("EndsWith", (P("A"), S("x")), ci=True)),
    ("IndexOf(A, 'x') ci = 0", B("=", Call("IndexOf", (P("A"), S("x")), ci=True), N(0))),
    ("LastIndexOf(A, /x/) ci", Call("LastIndexOf", (P("A"), Regex("x")), ci=True)),
    ("Replace(A, 'x', 'y') ci", Call("Replace", (P("A"), S("x"), S("y")), ci=True)),
    (
        "ElementAt(@Properties, 'userid') ci",
        Call("ElementAt", (BuiltIn("Properties"), S("userid")), ci=True),
    ),
    ("A = Contains(B, 'x') ci", B("=", P("A"), Call("Contains", (P("B"), S("x")), ci=True))),
]


@pytest.mark.parametrize(("text", "tree"), CI)
def test_ci_modifier(text: str, tree: Expr) -> None:
    assert expr(text) == tree


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_ci_on_ordering_comparisons_is_an_error(op: str) -> None:
    caught = error(f"A {op} 'x' ci")
    assert caught.kind == "usage"
    assert caught.position == 0
    assert f"`{op}`" in caught.message


# --- properties, paths and wildcards --------------------------------------------------------

PATHS: list[tuple[str, Expr]] = [
    ("Name", P("Name")),
    ("_x1", P("_x1")),
    ("Größe", P("Größe")),
    ("a.b", Member(P("a"), "b")),
    ("a['b']", Member(P("a"), "b")),
    ("a['b c']", Member(P("a"), "b c")),
    ("a.in", Member(P("a"), "in")),
    ("http.response.status_code", Member(Member(P("http"), "response"), "status_code")),
    ("@Properties['x']", P("x")),
    ("@Properties['a b']", P("a b")),
    ("@Properties.x", P("x")),
    ("@Properties['not']", P("not")),
    ("@Properties", BuiltIn("Properties")),
    ("@Resource.service.name", Member(Member(BuiltIn("Resource"), "service"), "name")),
    ("@Resource['a.b.c']", Member(BuiltIn("Resource"), "a.b.c")),
    ("a[0]", Index(P("a"), N(0))),
    ("a[b]", Index(P("a"), P("b"))),
    ("a[1 + 1]", Index(P("a"), B("+", N(1), N(1)))),
    ("Items[?]", Wildcard(P("Items"), "any")),
    ("Items[*]", Wildcard(P("Items"), "all")),
    ("Items[?] = 'coffee'", B("=", Wildcard(P("Items"), "any"), S("coffee"))),
    ("Products[?].Name", Member(Wildcard(P("Products"), "any"), "Name")),
    (
        "Order.Shipments[*].Items[*].Tax > 0",
        B(
            ">",
            Member(
                Wildcard(Member(Wildcard(Member(P("Order"), "Shipments"), "all"), "Items"), "all"),
                "Tax",
            ),
            N(0),
        ),
    ),
    (
        "Post.Tags[*] in ['Seq', '2021']",
        B("in", Wildcard(Member(P("Post"), "Tags"), "all"), Array((S("Seq"), S("2021")))),
    ),
    ("[1, 2][0]", Index(Array((N(1), N(2))), N(0))),
    ("{a: 1}.a", Member(Object((("a", N(1)),)), "a")),
]


@pytest.mark.parametrize(("text", "tree"), PATHS)
def test_paths(text: str, tree: Expr) -> None:
    assert expr(text) == tree


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_every_built_in(name: str) -> None:
    assert expr(f"@{name}") == BuiltIn(name)


BUILT_IN_ERRORS: list[tuple[str, str, str | None]] = [
    # text, kind, corrected text
    ("@timestamp > 1", "name", "@Timestamp > 1"),
    ("@LEVEL = 'Error'", "name", "@Level = 'Error'"),
    ("@t > 1", "name", "@Timestamp > 1"),
    ("@mt = 'x'", "name", "@MessageTemplate = 'x'"),
    ("@Levle = 'x'", "name", "@Level = 'x'"),
    ("@Resource.x = @Exceptoin", "name", "@Resource.x = @Exception"),
    ("@Zzzzz", "name", None),
    ("@Data = 1", "unsupported", None),
    ("@Document", "unsupported", None),
    ("@Definitions", "unsupported", None),
]


@pytest.mark.parametrize(("text", "kind", "corrected"), BUILT_IN_ERRORS)
def test_built_in_errors(text: str, kind: str, corrected: str | None) -> None:
    caught = error(text)
    assert caught.kind == kind
    assert caught.corrected == corrected
    assert caught.expected == "a built-in property"
    assert text[caught.position] == "@"


# --- functions -------------------------------------------------------------------------------

FUNCTION_CALLS: list[tuple[str, Expr]] = [
    ("Now()", Call("Now", ())),
    ("now()", Call("Now", ())),
    ("NOW()", Call("Now", ())),
    ("tolower(A)", Call("ToLower", (P("A"),))),
    ("Substring(A, 0, 3)", Call("Substring", (P("A"), N(0), N(3)))),
    ("Substring(A, 0)", Call("Substring", (P("A"), N(0)))),
    ("Has(@Start)", Call("Has", (BuiltIn("Start"),))),
    ("Coalesce(A, B, C, 'x')", Call("Coalesce", (P("A"), P("B"), P("C"), S("x")))),
    ("IndexOf(A, /x+/)", Call("IndexOf", (P("A"), Regex("x+")))),
    ("Length (A)", Call("Length", (P("A"),))),
    ("DateTime('2026-05-29T10:56:01Z')", Call("DateTime", (S("2026-05-29T10:56:01Z"),))),
    (
        "Some(Items, |x| x.Price > 10)",
        Call(
            "Some",
            (P("Items"), Lambda(("x",), B(">", Member(LambdaParameter("x"), "Price"), N(10)))),
        ),
    ),
    (
        "Every(Items, |i| i = x)",
        Call("Every", (P("Items"), Lambda(("i",), B("=", LambdaParameter("i"), P("x"))))),
    ),
    ("Some(Items, || true)", Call("Some", (P("Items"), Lambda((), Boolean(True))))),
    (
        "Some(A, |x| Some(x, |y| y = x))",
        Call(
            "Some",
            (
                P("A"),
                Lambda(
                    ("x",),
                    Call(
                        "Some",
                        (
                            LambdaParameter("x"),
                            Lambda(("y",), B("=", LambdaParameter("y"), LambdaParameter("x"))),
                        ),
                    ),
                ),
            ),
        ),
    ),
]


@pytest.mark.parametrize(("text", "tree"), FUNCTION_CALLS)
def test_function_calls(text: str, tree: Expr) -> None:
    assert expr(text) == tree


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_name_in_any_case(name: str) -> None:
    info = FUNCTIONS[name]
    args = ", ".join(["1"] * info.min_args) if name != "count" else "*"
    text = f"select {info.name.upper()}({args}) from stream"
    column = parse_query(text).columns[0].expr
    assert isinstance(column, Call)
    assert column.name == info.name
    assert column.aggregate is info.aggregate


def test_aggregates_are_flagged() -> None:
    query = parse_query("select count(*), sum(A), ToLower(B) as b from stream")
    flags = [c.expr.aggregate for c in query.columns if isinstance(c.expr, Call)]
    assert flags == [True, True, False]


FUNCTION_ERRORS: list[tuple[str, str, str, str | None]] = [
    # text, kind, part of the message, corrected text
    ("Lenght(A) > 3", "name", "`Lenght()` is not a function", "Length(A) > 3"),
    ("tolowr(A) = 'x'", "name", "`tolowr()`", "ToLower(A) = 'x'"),
    ("Frobnicate(A)", "name", "`Frobnicate()`", None),
    ("Substring(A)", "usage", "takes 2 or 3 arguments, not 1", None),
    ("Now(1)", "usage", "takes 0 arguments, not 1", None),
    ("Length()", "usage", "takes 1 argument, not 0", None),
    ("Coalesce()", "usage", "takes at least 1 argument, not 0", None),
    ("ToLower(A) ci", "usage", "does not take the `ci` modifier", None),
    ("A = ToLower(B) ci", "usage", "does not take the `ci` modifier", None),
    ("count(*) > 0", "usage", "is an aggregate", None),
    ("sum(A) > 0", "usage", "is an aggregate", None),
    ("Length(|x| x)", "usage", "lambda", None),
    ("|x| x", "usage", "lambda", None),
    ("Some(Items, 1, |x| x)", "usage", "takes 2 arguments", None),
]


@pytest.mark.parametrize(("text", "kind", "message", "corrected"), FUNCTION_ERRORS)
def test_function_errors(text: str, kind: str, message: str, corrected: str | None) -> None:
    for strict in (True, False):  # names and usage are never read as free text
        caught = error(text, strict=strict)
        assert caught.kind == kind
        assert message in caught.message
        assert caught.corrected == corrected


def test_ci_error_on_a_call_suggests_parentheses() -> None:
    caught = error("A = ToLower(B) ci")
    assert caught.position == 4
    assert caught.suggestion is not None and "parentheses" in caught.suggestion


# --- free text and text fragments ------------------------------------------------------------

# text → (the expression, or the text searched for, matched as free text?)
TEXT_SEARCH: list[tuple[str, Expr | str | None, bool]] = [
    ("", None, False),
    ("   ", None, False),
    ("timeout", "timeout", True),
    ("  timeout  ", "timeout", True),
    ("System.Net.Http", "System.Net.Http", True),
    ("404", "404", True),
    ("30s", "30s", True),
    ("New user created", "New user created", True),
    ("Connection refused (timeout)", "Connection refused (timeout)", True),
    ("can't connect", "can't connect", True),
    ("user@example.com logged in", "user@example.com logged in", True),
    ("GET /api/events 500", "GET /api/events 500", True),
    ("Failed!", "Failed!", True),
    ("Tom & Jerry", "Tom & Jerry", True),
    ("ping ci server", "ping ci server", True),
    ("$100 refund", "$100 refund", True),
    ("--force", "--force", True),
    ("1.5h", "1.5h", True),
    ("StatusCode >= 500 and", "StatusCode >= 500 and", True),
    ("(unbalanced", "(unbalanced", True),
    ('"timeout"', TextSearch("timeout"), False),
    ("\"timed out\" and Application = 'web'", None, False),
    (
        '"operation" and not "timed out"',
        Logical("and", (TextSearch("operation"), Unary("not", TextSearch("timed out")))),
        False,
    ),
    ('"a" or "b"', Logical("or", (TextSearch("a"), TextSearch("b"))), False),
    (
        'if "x" then true else false',
        Conditional(TextSearch("x"), Boolean(True), Boolean(False)),
        False,
    ),
    ('not ("a" and "b")', Unary("not", Logical("and", (TextSearch("a"), TextSearch("b")))), False),
    ("Application = 'web'", B("=", P("Application"), S("web")), False),
    (
        "IsAdmin and not IsDeleted",
        Logical("and", (P("IsAdmin"), Unary("not", P("IsDeleted")))),
        False,
    ),
    ("true", Boolean(True), False),
    ("'x'", S("x"), False),
    ("@Level", BuiltIn("Level"), False),
    ("Has(x)", Call("Has", (P("x"),)), False),
]


@pytest.mark.parametrize(("text", "meaning", "as_text"), TEXT_SEARCH)
def test_free_text(text: str, meaning: Expr | str | None, as_text: bool) -> None:
    parsed = parse_filter(text)
    assert parsed.matched_as_text is as_text
    assert (parsed.reason is not None) is as_text
    if isinstance(meaning, str):
        assert parsed.expr == TextSearch(meaning)
        assert parsed.expr is not None
        assert text[parsed.expr.span.start : parsed.expr.span.end] == meaning
    elif meaning is not None or text.strip() == "":
        assert parsed.expr == meaning


def test_free_text_reason_explains_why() -> None:
    assert parse_filter("timeout").reason == "No structured syntax was recognized."
    reason = parse_filter("StatusCode >= 500 and").reason
    assert reason is not None and "ended where an expression was expected" in reason


def test_strict_filters_never_become_text() -> None:
    assert parse_filter("timeout", strict=True).expr == P("timeout")
    assert parse_filter("404", strict=True).expr == N(404)
    caught = error("hello world", strict=True)
    assert caught.position == 6
    assert "operator" in caught.expected


TEXT_ERRORS: list[tuple[str, int, str | None]] = [
    # fragments used as values: always an error, with the fix
    ('Application = "web"', 14, "Application = 'web'"),
    ('A in ["a", "b"]', 6, "A in ['a', \"b\"]"),
    ('"x" + 1', 0, "'x' + 1"),
    ('Contains(@Message, "x")', 19, "Contains(@Message, 'x')"),
    ('-"x"', 1, "-'x'"),
    ('"it\'s" = A', 0, "'it''s' = A"),
]


@pytest.mark.parametrize(("text", "position", "corrected"), TEXT_ERRORS)
def test_text_fragments_are_not_values(text: str, position: int, corrected: str | None) -> None:
    for strict in (True, False):
        caught = error(text, strict=strict)
        assert caught.kind == "usage"
        assert caught.position == position
        assert caught.corrected == corrected
        assert caught.suggestion is not None and "single quotes" in caught.suggestion


@pytest.mark.parametrize(
    ("text", "position"),
    [('"a" "b"', 4), ('say "hi"', 4), ('"a" and', 7), ('("x"', 4), ('"x" = ', 6)],
)
def test_double_quotes_mean_an_expression_was_intended(text: str, position: int) -> None:
    caught = error(text, strict=False)
    assert caught.position == position


# --- errors ----------------------------------------------------------------------------------

# text, kind, position, part of `expected`, part of the suggestion, corrected text
ERRORS: list[tuple[str, str, int, str, str | None, str | None]] = [
    ("A == 1", "operator", 2, "operator", "`=`", "A = 1"),
    ("A != 1", "operator", 2, "operator", "`<>`", "A <> 1"),
    ("A = 1 && B = 2", "operator", 6, "operator", "`and`", "A = 1 and B = 2"),
    ("A = 1 || B = 2", "operator", 6, "operator", "`or`", "A = 1 or B = 2"),
    ("A => 1", "operator", 2, "operator", "`>=`", "A >= 1"),
    ("A =< 1", "operator", 2, "operator", "`<=`", "A <= 1"),
    ("!Has(A)", "operator", 0, "expression", "`not`", "not Has(A)"),
    ("A = 1 & B", "syntax", 6, "operator", "`and`", "A = 1 and B"),
    ("A | B", "syntax", 2, "operator", "`or`", "A or B"),
    ("(A = 1", "syntax", 6, "`)`", "`)`", None),
    ("A = 1)", "syntax", 5, "operator", "opening bracket", "A = 1"),
    ("[1, 2", "syntax", 5, "`]`", "`]`", None),
    ("f(A, 1", "syntax", 6, "`)`", "`)`", None),
    ("Length(A, 1]", "syntax", 11, "`)`", None, None),
    ("A in ('a', 'b')", "syntax", 9, "`)`", "['a', 'b']", None),
    ("{a 1}", "syntax", 3, "`:`", None, None),
    ("A =", "syntax", 3, "expression", None, None),
    ("A = = 1", "syntax", 4, "expression", None, None),
    ("and", "syntax", 0, "expression", "@Properties['and']", None),
    ("A and or B", "syntax", 6, "expression", "@Properties['or']", None),
    ("A not B", "syntax", 2, "`like` or `in`", "not (A = 1)", None),
    ("A is B", "syntax", 5, "`null`", None, None),
    ("A is true", "syntax", 5, "`null`", "`= true`", None),
    ("A is not true", "syntax", 9, "`null`", "`= true`", None),
    ("A is null is null", "syntax", 10, "operator", None, None),
    ("if A then B", "syntax", 11, "`else`", "`else`", None),
    ("if A B else C", "syntax", 5, "`then`", None, None),
    ("A ci", "syntax", 2, "operator", None, None),
    ("A + 1 ci", "syntax", 6, "operator", None, None),
    ("Source = /x/i", "syntax", 12, "operator", "`ci`", "Source = /x/ ci"),
    ("A = $var", "syntax", 4, "expression", None, None),
    ("let |a: 1| a", "syntax", 0, "expression", None, None),
    ("count(*) * 2", "usage", 0, "scalar", None, None),
    ("A.'b'", "syntax", 2, "property name", "x['some name']", None),
    ("A.1", "syntax", 2, "property name", "x['some name']", None),
    ("*", "syntax", 0, "expression", None, None),
    ("A = 1 'x'", "syntax", 6, "operator", None, None),
]


@pytest.mark.parametrize(
    ("text", "kind", "position", "expected", "suggestion", "corrected"), ERRORS
)
def test_errors(
    text: str,
    kind: str,
    position: int,
    expected: str,
    suggestion: str | None,
    corrected: str | None,
) -> None:
    caught = error(text)
    assert (caught.kind, caught.position) == (kind, position), caught
    assert expected in caught.expected
    assert caught.message.endswith(".")
    if suggestion is None:
        assert caught.suggestion is None or corrected is None
    else:
        assert caught.suggestion is not None and suggestion in caught.suggestion
    assert caught.corrected == corrected


def test_error_is_a_seqfast_error_and_says_everything() -> None:
    caught = error("A == 1")
    assert isinstance(caught, SeqfastError)
    assert isinstance(caught, ValueError)
    assert str(caught) == "`==` is not an operator in Seq's language. Write `=` instead of `==`."


@pytest.mark.parametrize("text", ["A == 1", "A != 'x'", "a && b", "a || b", "!Has(x)"])
def test_operators_from_other_languages_are_errors_even_as_free_text(text: str) -> None:
    assert error(text, strict=False).kind == "operator"


# --- nesting limits --------------------------------------------------------------------------


def test_nesting_up_to_the_limit_parses() -> None:
    assert expr("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH) == P("a")
    assert expr("not " * MAX_DEPTH + "a") is not None
    assert expr(" + ".join(["1"] * (MAX_DEPTH + 1))) is not None
    assert (
        expr("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)) is not None
    )  # the innermost is a leaf


DEEP: dict[str, str] = {
    "parentheses": "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1),
    "not": "not " * (MAX_DEPTH + 1) + "a",
    "sum": " + ".join(["1"] * (MAX_DEPTH + 2)),
    "arrays": "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2),
    "open parentheses": "(" * 100_000,
    "minus": "-" + " -" * 100_000 + "a",
    "calls": "Length(" * 5000,
    "members": "a" + ".b" * 5000,
    "indexes": "a" + "[0]" * 5000,
    "if": "if a then " * 5000 + "1",
    "objects": "{a: " * 5000,
    "lambdas": "Some(x, |y| " * 5000,
}


@pytest.mark.parametrize("text", list(DEEP.values()), ids=list(DEEP))
def test_nesting_beyond_the_limit_is_a_clear_error(text: str) -> None:
    for strict in (True, False):
        caught = error(text, strict=strict)
        assert caught.kind == "limit"
        assert str(MAX_DEPTH) in caught.message


def test_deep_queries_are_limited_too() -> None:
    caught = error("select " + "(" * 5000 + "1", query=True)
    assert caught.kind == "limit"


def test_a_caller_deep_in_the_stack_gets_the_limit_error() -> None:
    def nest(levels: int) -> QuerySyntaxError:
        if levels:
            return nest(levels - 1)
        return error("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)

    caught = nest(sys.getrecursionlimit() - 250)
    assert caught.kind == "limit"


# --- spans -----------------------------------------------------------------------------------


def test_spans() -> None:
    text = "A = 'x' and Length(B) > 2"
    parsed = expr(text)
    assert isinstance(parsed, Logical)
    assert parsed.span == Span(0, len(text))
    first, second = parsed.operands
    assert isinstance(first, Binary) and isinstance(second, Binary)
    assert first.span == Span(0, 7)
    assert first.left.span == Span(0, 1)
    assert first.right.span == Span(4, 7)
    assert second.span == Span(12, 25)
    assert second.left.span == Span(12, 21)
    assert text[second.left.span.start : second.left.span.end] == "Length(B)"


def test_every_node_has_a_span_inside_the_text() -> None:
    text = "Items[?].Name like '%x%' ci or not (@Level in ['a'] and -x.y is null)"
    stack: list[AstNode] = [expr(text)]
    from seqfast.query.ast import children

    while stack:
        node = stack.pop()
        assert 0 <= node.span.start < node.span.end <= len(text), node
        stack.extend(children(node))


def test_spans_do_not_take_part_in_equality() -> None:
    assert expr("A = 1") == expr("  A   =   1  ")
    assert hash(expr("A = 1")) == hash(expr("(A)=(1)"))


# --- queries ---------------------------------------------------------------------------------


def test_a_query_with_every_clause() -> None:
    text = (
        "select count(*) as n, percentile(Elapsed, 95) as p95 "
        "from stream "
        "where @Level = 'Error' and \"timeout\" "
        "group by time(15m), Application ci as app, Environment "
        "having n > 10 "
        "order by n desc, app ci asc, time "
        "limit 10 "
        "for refresh, no_cache"
    )
    assert parse_query(text) == Query(
        columns=(
            Column(Call("count", (Star(),)), "n"),
            Column(Call("percentile", (P("Elapsed"), N(95))), "p95"),
        ),
        source="stream",
        where=Logical("and", (B("=", BuiltIn("Level"), S("Error")), TextSearch("timeout"))),
        group_by=(
            TimeGrouping(Duration(((15, "m"),))),
            Grouping(P("Application"), ci=True, alias="app"),
            Grouping(P("Environment")),
        ),
        having=B(">", P("n"), N(10)),
        order_by=(Ordering("n", descending=True), Ordering("app", ci=True), TimeOrdering()),
        limit=10,
        options=("refresh", "no_cache"),
    )


QUERIES: list[tuple[str, Query]] = [
    ("select count(*) from stream", Query((Column(Call("count", (Star(),))),), "stream")),
    ("SELECT COUNT(*) FROM STREAM", Query((Column(Call("count", (Star(),))),), "stream")),
    ("select 1 + 1", Query((Column(B("+", N(1), N(1))),))),
    ("select ToIsoString(12345)", Query((Column(Call("ToIsoString", (N(12345),))),))),
    ("select * from stream", Query((Column(Star()),), "stream")),
    (
        "select @Message, @Level as level from stream limit 5",
        Query((Column(BuiltIn("Message")), Column(BuiltIn("Level"), "level")), "stream", limit=5),
    ),
    (
        "select distinct(@Level) from stream",
        Query((Column(Call("distinct", (BuiltIn("Level"),))),), "stream"),
    ),
    (
        "select distinct(@Level) ci from stream",
        Query((Column(Call("distinct", (BuiltIn("Level"),), ci=True)),), "stream"),
    ),
    (
        "select count(distinct(@EventType)) from stream",
        Query((Column(Call("count", (Call("distinct", (BuiltIn("EventType"),)),))),), "stream"),
    ),
    (
        "select top(StatusCode, 5) from stream",
        Query((Column(Call("top", (P("StatusCode"), N(5)))),), "stream"),
    ),
    (
        "select bottom(StatusCode, 5) from stream",
        Query((Column(Call("bottom", (P("StatusCode"), N(5)))),), "stream"),
    ),
    (
        "select count(*) / (interval() / 1d) as rate from stream group by time(1d)",
        Query(
            (
                Column(
                    B(
                        "/",
                        Call("count", (Star(),)),
                        B("/", Call("interval", ()), Duration(((1, "d"),))),
                    ),
                    "rate",
                ),
            ),
            "stream",
            group_by=(TimeGrouping(Duration(((1, "d"),))),),
        ),
    ),
    (
        "select any(@Level = 'Error'), all(A), first(A), last(A), min(A), max(A), mean(A), sum(A) "
        "from stream",
        Query(
            tuple(
                Column(Call(name, (arg,)))
                for name, arg in [
                    ("any", cast(Expr, B("=", BuiltIn("Level"), S("Error")))),
                    ("all", P("A")),
                    ("first", P("A")),
                    ("last", P("A")),
                    ("min", P("A")),
                    ("max", P("A")),
                    ("mean", P("A")),
                    ("sum", P("A")),
                ]
            ),
            "stream",
        ),
    ),
    (
        "select count(*) from stream group by Environment, time(1h)",
        Query(
            (Column(Call("count", (Star(),))),),
            "stream",
            group_by=(Grouping(P("Environment")), TimeGrouping(Duration(((1, "h"),)))),
        ),
    ),
    (
        "select count(*) from stream group by (Substring(A, 0, 3)) ci",
        Query(
            (Column(Call("count", (Star(),))),),
            "stream",
            group_by=(Grouping(Call("Substring", (P("A"), N(0), N(3))), ci=True),),
        ),
    ),
    (
        "select count(*) from stream group by A = 'x' ci",
        Query(
            (Column(Call("count", (Star(),))),),
            "stream",
            group_by=(Grouping(B("=", P("A"), S("x"), ci=True)),),
        ),
    ),
    (
        "select count(*) as c from stream order by c",
        Query((Column(Call("count", (Star(),)), "c"),), "stream", order_by=(Ordering("c"),)),
    ),
    (
        "select count(*) from stream where /x/ = A",
        Query((Column(Call("count", (Star(),))),), "stream", where=B("=", Regex("x"), P("A"))),
    ),
    (
        "select count(*) from stream where A = 1 limit 2147483647",
        Query(
            (Column(Call("count", (Star(),))),),
            "stream",
            where=B("=", P("A"), N(1)),
            limit=2147483647,
        ),
    ),
    (
        "select group, from, where, 1 from stream",  # clause words are names where no clause starts
        Query((Column(P("group")), Column(P("from")), Column(P("where")), Column(N(1))), "stream"),
    ),
    (
        "select\n  count(*) as spans -- a comment\nfrom stream -- another\n",
        Query((Column(Call("count", (Star(),)), "spans"),), "stream"),
    ),
]


@pytest.mark.parametrize(("text", "tree"), QUERIES)
def test_queries(text: str, tree: Query) -> None:
    assert parse_query(text) == tree


def test_default_limit_is_recorded() -> None:
    assert parse_query("select count(*) from stream").limit == DEFAULT_LIMIT == 1024


def test_the_documented_trace_query() -> None:
    text = """
select
   @SpanId as span_id,
   @ParentId as parent_id,
   @Resource.service.name as service,
   @Message as span_name,
   @SpanKind as kind,
   @Start as start,                    -- raw ticks — order by THIS column
   ToIsoString(@Start) as start_iso,   -- readable copy, for display only
   TotalMilliseconds(@Elapsed) as ms
from stream
where @TraceId = '0af7651916cd43dd8448eb211c80319c' and Has(@Start)
order by start asc
limit 1000
"""
    query = parse_query(text)
    assert [c.alias for c in query.columns] == [
        "span_id",
        "parent_id",
        "service",
        "span_name",
        "kind",
        "start",
        "start_iso",
        "ms",
    ]
    assert query.order_by == (Ordering("start"),)
    assert query.limit == 1000


def test_the_documented_latency_query() -> None:
    text = """
select
   count(*) as spans,
   Round(TotalMilliseconds(percentile(@Elapsed, 95)), 2) as p95_ms,
   Round(TotalMilliseconds(max(@Elapsed)), 2) as max_ms
from stream
where @Timestamp >= now() - 30m and Has(@Start)
group by @Resource.service.name as service
having spans > 50
order by p95_ms desc
limit 100
"""
    query = parse_query(text)
    assert query.having == B(">", P("spans"), N(50))
    assert query.order_by == (Ordering("p95_ms", descending=True),)
    assert_round_trip_query(text)


QUERY_ERRORS: list[tuple[str, str, int, str, str | None]] = [
    # text, kind, position, part of the message, part of the suggestion
    ("count(*) from stream", "syntax", 0, "starts with `select`", None),
    ("select", "syntax", 6, "ended where an expression", None),
    ("select from stream", "syntax", 7, "Expected a column", "count(*)"),
    ("select count(*) from events", "syntax", 21, "Expected `stream`", "from stream"),
    ("select count(*) from series", "unsupported", 21, "from series", None),
    ("select count(*) from stream lateral unnest(A) as a", "unsupported", 28, "lateral", None),
    ("explain select count(*) from stream", "unsupported", 0, "explain", None),
    ("select count(*) into $x from stream", "unsupported", 16, "into", None),
    ("select count(*) from stream limit 10 where A", "syntax", 37, "out of order", None),
    ("select count(*) from stream where A where B", "syntax", 36, "repeated", None),
    ("select count(*) from stream group A", "syntax", 34, "Expected `by`", None),
    (
        "select count(*) from stream order by count(*) desc",
        "usage",
        37,
        "`order by` takes",
        "as total",
    ),
    ("select count(*) from stream order by @Timestamp", "usage", 37, "`order by` takes", None),
    ("select count(*) from stream group by time(15)", "syntax", 42, "duration", "time(15m)"),
    ("select count(*) from stream group by time(A)", "syntax", 42, "duration", None),
    ("select count(*) from stream group by time(0s)", "usage", 42, "longer than zero", None),
    ("select count(*) from stream group by time(1m), time(1h)", "usage", 47, "only once", None),
    ("select count(*) from stream limit 0", "syntax", 34, "whole number", None),
    ("select count(*) from stream limit 1.5", "syntax", 34, "whole number", None),
    ("select count(*) from stream limit 2147483648", "syntax", 34, "whole number", None),
    ("select count(*) from stream limit n", "syntax", 34, "whole number", None),
    ("select count(*) from stream for nothing", "unsupported", 32, "Unknown query option", None),
    ("select count(*) as 'n' from stream", "syntax", 19, "after `as`", "without quotes"),
    ("select count(*) as from from stream", "syntax", 19, "after `as`", "keyword"),
    ("select A as x, B as x from stream", "usage", 15, "used twice", None),
    ("select count(*) as x from stream group by A as x", "usage", 42, "used twice", None),
    ("select distinct A from stream", "syntax", 7, "`distinct` is a function", "distinct(Name)"),
    ("select A from stream group by A", "usage", 7, "group key", "group by ... as name"),
    ("select count(*) from stream where count(*) > 1", "usage", 34, "aggregate", None),
    ("select count(*) from stream group by count(*)", "usage", 37, "aggregate", None),
    ("select sum(count(*)) from stream", "usage", 11, "cannot be nested", None),
    ("select count(top(A, 2)) from stream", "usage", 13, "cannot be nested", None),
    ("select distinct(A), count(*) from stream", "usage", 7, "cannot be combined", None),
    ("select top(A, 5) + 1 from stream", "usage", 7, "column on its own", None),
    ("select count(distinct(A)) ci from stream", "usage", 7, "`ci`", "count(distinct(x) ci)"),
    ("select count(*)", "usage", 7, "without `from stream`", "from stream"),
    ("select *", "usage", 7, "`from stream`", None),
    ("select * as x from stream", "syntax", 9, "Expected a clause", None),
    ("select 1 where A", "usage", 9, "without `from stream`", "from stream"),
    ("select 1 group by A", "usage", 9, "without `from stream`", None),
    ('select "x" from stream', "usage", 7, "text search", "'x'"),
    (
        "select count(*) from stream group by Substring(A, 0, 3) ci",
        "usage",
        37,
        "`ci`",
        "parentheses",
    ),
    ("select count(*) from stream order by n asc desc", "syntax", 43, "Expected a clause", None),
    ("select count(*) from stream limit 10 offset 5", "syntax", 37, "Expected a clause", None),
    ("select count(*) from stream having", "syntax", 34, "ended where an expression", None),
    ("select count(*), from stream", "syntax", 17, "Expected a column", None),
    ("select count(*) from stream where A == 1", "operator", 36, "`==`", "`=`"),
]


@pytest.mark.parametrize(("text", "kind", "position", "message", "suggestion"), QUERY_ERRORS)
def test_query_errors(
    text: str, kind: str, position: int, message: str, suggestion: str | None
) -> None:
    caught = error(text, query=True)
    assert (caught.kind, caught.position) == (kind, position), caught
    assert message in caught.message
    if suggestion is not None:
        assert caught.suggestion is not None and suggestion in caught.suggestion


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("select count(*) from stream", True),
        ("  SELECT 1", True),
        ("explain select 1", True),
        ("selected = true", False),
        ("Select = 1", True),
        ("A = 1", False),
        ("", False),
        ("'unterminated", False),
        ('"select"', False),
    ],
)
def test_is_query(text: str, answer: bool) -> None:
    assert is_query(text) is answer


# --- round trips -----------------------------------------------------------------------------

FILTER_CORPUS = [text for text, _ in LITERALS + OPERATORS + CI + PATHS + FUNCTION_CALLS]
FILTER_CORPUS += [text for pair in PRECEDENCE for text in pair]
FILTER_CORPUS += [text for text, _, _ in TEXT_SEARCH]
FILTER_CORPUS += [
    "A = f(x) ci".replace("f", "Contains").replace("(x)", "(x, 'y')"),
    "A = (Contains(x, 'y')) ci",
    "A = B + (Contains(x, 'y')) ci",
    "@Properties['if'] = @Properties['a b'] and @Properties['ci'] = 1",
    "Some(Items, |x| x = @Properties['x'])",
    "- -1",
    "-(-1)",
    "1 + -(/x/ = A)",
    "(/x/) + 1",
    "not /x/",
    "a['b c'].d[0][?][*]",
    '"tab\\tquote\\"back\\\\slash\\u0001"',
    "if if a then b else c then d else e",
    "(if a then b else c).x",
    "[if a then 1 else 2, |x| x]".replace(", |x| x", ""),
    "{a: if a then 1 else 2, 'not ident': [1]}",
    "(not a) is null",
    "(a is null) is not null",
    "-(a = 1) ^ 2",
]


@pytest.mark.parametrize("text", FILTER_CORPUS)
def test_filter_round_trip(text: str) -> None:
    assert_round_trip_filter(text)


@pytest.mark.parametrize("text", [text for text, _ in QUERIES])
def test_query_round_trip(text: str) -> None:
    assert_round_trip_query(text)


# --- generated trees -------------------------------------------------------------------------

_WORDS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
_NAMES = st.one_of(
    _WORDS, st.sampled_from(["and", "ci", "time", "select", "x", "If"]), st.text(max_size=6)
)
_PLAIN = _WORDS.filter(is_plain_name)
_DECIMALS = st.decimals(
    min_value=0, max_value=10**20, allow_nan=False, allow_infinity=False, places=3
)
_UNITS = st.sampled_from(["d", "h", "m", "s", "ms", "us", "ns"])
_DURATIONS = st.lists(st.tuples(st.integers(0, 999), _UNITS), min_size=1, max_size=3).map(
    lambda parts: Duration(tuple(parts))
)
_PATTERNS = st.text(st.characters(exclude_characters="/\\\n", codec="utf-8"), max_size=6)


def _leaves(in_lambda: bool) -> st.SearchStrategy[Expr]:
    options: list[st.SearchStrategy[Expr]] = [
        _DECIMALS.map(Number),
        st.text(max_size=8).map(String),
        st.booleans().map(Boolean),
        st.just(Null()),
        _DURATIONS,
        _PATTERNS.map(Regex),
        _NAMES.map(Property),
        st.sampled_from(sorted(BUILT_INS)).map(BuiltIn),
    ]
    if in_lambda:
        options.append(st.just(LambdaParameter("it")))
    return st.one_of(options)


_SCALAR_CALLS = [
    f for f in FUNCTIONS.values() if not f.aggregate and f.name not in ("Some", "Every")
]


def _trees(in_lambda: bool, max_leaves: int) -> st.SearchStrategy[Expr]:
    def extend(inner: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        predicate = st.one_of(inner, st.text(max_size=8).map(TextSearch))
        member_target = inner.filter(lambda e: e != BuiltIn("Properties"))
        index = inner.filter(lambda e: not isinstance(e, String))

        @st.composite
        def call(draw: st.DrawFn) -> Expr:
            info = draw(st.sampled_from(_SCALAR_CALLS))
            high = info.min_args + 2 if info.max_args is None else info.max_args
            count = draw(st.integers(info.min_args, high))
            args = tuple(draw(inner) for _ in range(count))
            return Call(info.name, args, draw(st.booleans()) if info.ci else False)

        @st.composite
        def binary(draw: st.DrawFn) -> Expr:
            op = draw(st.sampled_from([*sorted(COMPARISONS), "+", "-", "*", "/", "%", "^"]))
            ci = draw(st.booleans()) if op in CI_COMPARISONS else False
            return Binary(op, draw(inner), draw(inner), ci)  # type: ignore[arg-type]

        return st.one_of(
            st.lists(inner, max_size=3).map(lambda items: Array(tuple(items))),
            st.lists(st.tuples(_NAMES, inner), max_size=2).map(lambda m: Object(tuple(m))),
            st.builds(Member, member_target, _NAMES),
            st.builds(Index, inner, index),
            st.builds(Wildcard, inner, st.sampled_from(["any", "all"])),
            st.builds(Unary, st.sampled_from(["not", "-"]), inner),
            st.builds(Unary, st.just("not"), predicate),
            binary(),
            st.builds(
                Logical,
                st.sampled_from(["and", "or"]),
                st.lists(predicate, min_size=2, max_size=3).map(tuple),
            ),
            st.builds(IsNull, inner, st.booleans()),
            st.builds(Conditional, predicate, inner, inner),
            call(),
            st.builds(
                lambda name, collection, body: Call(name, (collection, Lambda(("it",), body))),
                st.sampled_from(["Some", "Every"]),
                inner,
                _trees(True, 4) if not in_lambda else inner,
            ),
        )

    return st.recursive(_leaves(in_lambda), extend, max_leaves=max_leaves)


EXPRESSIONS = _trees(False, 12)
PREDICATES = st.one_of(EXPRESSIONS, st.text(max_size=8).map(TextSearch))


@settings(max_examples=400, deadline=None)
@given(PREDICATES)
def test_generated_filters_round_trip(tree: Expr) -> None:
    text = to_source(Filter(tree))
    assert parse_filter(text, strict=True) == Filter(tree), text


_AGGREGATES: list[st.SearchStrategy[Expr]] = [
    st.just(Call("count", (Star(),))),
    EXPRESSIONS.map(lambda e: Call("count", (e,))),
    EXPRESSIONS.map(lambda e: Call("sum", (e,))),
    EXPRESSIONS.map(lambda e: Call("count", (Call("distinct", (e,), True),))),
    st.builds(lambda e, p: Call("percentile", (e, Number(p))), EXPRESSIONS, _DECIMALS),
    st.just(Call("interval", ())),
]


@st.composite
def queries(draw: st.DrawFn) -> Query:
    aggregate = st.one_of(_AGGREGATES)
    column_exprs = st.one_of(
        EXPRESSIONS,
        aggregate,
        st.builds(lambda a, e: Binary("/", a, e), aggregate, EXPRESSIONS),
    )
    columns = draw(
        st.lists(st.builds(Column, column_exprs, st.none() | _PLAIN), min_size=1, max_size=3)
    )
    if draw(st.booleans()):
        columns = [Column(Star())]
    if not draw(st.booleans()):
        # A scalar query: no events, so no aggregates and no clauses but `limit`.
        columns = draw(
            st.lists(st.builds(Column, EXPRESSIONS, st.none() | _PLAIN), min_size=1, max_size=2)
        )
        query = Query(tuple(columns), limit=draw(st.integers(1, 2**31 - 1)))
    else:
        groupings = draw(
            st.lists(
                st.builds(Grouping, EXPRESSIONS, st.booleans(), st.none() | _PLAIN), max_size=2
            )
        )
        if draw(st.booleans()):
            interval = draw(_DURATIONS.filter(lambda d: d.ticks > 0))
            groupings.insert(draw(st.integers(0, len(groupings))), TimeGrouping(interval))  # type: ignore[arg-type]
        orderings = draw(
            st.lists(
                st.one_of(
                    st.builds(Ordering, _PLAIN, st.booleans(), st.booleans()),
                    st.builds(TimeOrdering, st.booleans()),
                ),
                max_size=2,
            )
        )
        query = Query(
            tuple(columns),
            "stream",
            where=draw(st.none() | PREDICATES),
            group_by=tuple(groupings),
            having=draw(
                st.none() | PREDICATES | aggregate.map(lambda a: Binary(">", a, Number(Decimal(1))))
            ),
            order_by=tuple(orderings),
            limit=draw(st.integers(1, 2**31 - 1)),
            options=tuple(draw(st.lists(st.sampled_from(["refresh", "no_cache"]), max_size=2))),
        )
    keys = [g.expr for g in query.group_by if isinstance(g, Grouping)]
    assume(all(c.expr not in keys for c in query.columns))
    aliases = [c.alias for c in query.columns] + [
        g.alias for g in query.group_by if isinstance(g, Grouping)
    ]
    named = [a for a in aliases if a is not None]
    assume(len(named) == len(set(named)))
    return query


@settings(max_examples=300, deadline=None)
@given(queries())
def test_generated_queries_round_trip(query: Query) -> None:
    text = to_source(query)
    assert parse_query(text) == query, text


# --- any input -------------------------------------------------------------------------------

_VOCABULARY = [
    "A", "B", "@Level", "@Properties", "1", "2.5", "0x1f", "15m", "'x'", '"t"', "/r/", "(", ")",
    "[", "]", "{", "}", ",", ".", ":", "?", "*", "+", "-", "/", "%", "^", "=", "<>", "<", "<=",
    ">", ">=", "==", "!", "&&", "|", "and", "or", "not", "like", "in", "is", "null", "true",
    "if", "then", "else", "ci", "count", "Length", "Some", "distinct", "select", "from",
    "stream", "where", "group", "by", "time", "having", "order", "limit", "for", "as", "desc",
    "refresh", "$v", "let", " ", "\n", "--",
]  # fmt: skip


def _check_any(text: str) -> None:
    for strict in (True, False):
        try:
            parsed = parse_filter(text, strict=strict)
        except QuerySyntaxError as caught:
            assert 0 <= caught.position <= len(text)
            assert caught.message and caught.expected
        else:
            assert parse_filter(to_source(parsed), strict=True) == parsed, text
    try:
        query = parse_query(text)
    except QuerySyntaxError as caught:
        assert 0 <= caught.position <= len(text)
    else:
        assert parse_query(to_source(query)) == query, text


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_any_text_parses_or_raises_a_query_syntax_error(text: str) -> None:
    _check_any(text)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_VOCABULARY), max_size=30).map(" ".join))
def test_any_token_soup_parses_or_raises_a_query_syntax_error(text: str) -> None:
    _check_any(text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_VOCABULARY), max_size=20).map(
        lambda parts: "select " + " ".join(parts)
    )
)
def test_any_query_soup_parses_or_raises_a_query_syntax_error(text: str) -> None:
    _check_any(text)
