"""The expression engine's semantics, case by case: each filter over a small batch of events
must give exactly the values Seq's language defines (undefined included), and the same as the
one-event oracle."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from seqfast.query import ast as A
from seqfast.query import vector
from seqfast.query.parse import parse_filter, parse_query
from seqfast.query.values import K_STRING, QueryError, Values
from seqfast.storage.batch import (
    TAG_ABSENT,
    TAG_BIGINT,
    TAG_FALSE,
    TAG_FLOAT,
    TAG_INT,
    TAG_JSON,
    TAG_NULL,
    TAG_STRING,
    TAG_TRUE,
    Batch,
    to_events,
)
from seqfast.testing import batch_from_cells
from seqfast.testing import reference_eval as R

U = R.UNDEFINED
_ = (TAG_ABSENT, None)


def s(text: str) -> tuple[int, Any]:
    return (TAG_STRING, text)


def i(value: int) -> tuple[int, Any]:
    return (TAG_INT, value)


def j(text: str) -> tuple[int, Any]:
    return (TAG_JSON, text)


# Five events: row 0 a web request, row 1 an API failure, row 2 a bare event, row 3 a
# message without template, row 4 odd values.
BATCH = batch_from_cells(
    ts=[10, 20, 30, 40, 50],
    seq=[0, 1, 2, 3, 4],
    columns={
        "@mt": [s("GET {Path} gave {Status}"), s("Upstream timeout after {Ms} ms"), _, _, _],
        "@m": [_, _, _, s("Disk almost FULL"), _],
        "@l": [_, s("ERR"), s("Warning"), s("odd"), (TAG_INT, 3)],
        "@x": [_, s("System.TimeoutException: boom"), _, _, _],
        "Path": [s("/api/Orders/1"), s("/health"), _, (TAG_NULL, None), s("ÉCOLE ß")],
        "Status": [i(200), i(503), (TAG_FLOAT, 0.5), s("500"), (TAG_TRUE, None)],
        "Ms": [_, i(12), _, _, (TAG_BIGINT, "123456789012345678901234")],
        "Tags": [j('["a","B"]'), j("[]"), j('{"k":"v","n":2}'), (TAG_FALSE, None), j("[1,2,3]")],
        "@@x": [s("escaped"), _, _, _, _],
    },
)


def expression(text: str) -> A.Node:
    """The tree of `text`; a bare path (which a filter reads as free text) as a value."""
    tree = parse_filter(text)
    if tree.matched_as_text:
        return parse_query(f"select {text} from stream").columns[0].expr
    return tree


def values_of(text: str, batch: Batch = BATCH) -> list[Any]:
    return vector.evaluate(expression(text), batch).to_python()


def oracle(text: str, batch: Batch = BATCH) -> list[Any]:
    tree = expression(text)
    return [R.evaluate(tree, event) for event in to_events(batch)]


CASES: list[tuple[str, list[Any]]] = [
    # undefined propagates; comparisons of different types are false, not undefined
    ("Nope = 1", [U, U, U, U, U]),
    ("Status = 200", [True, False, False, False, False]),
    ("Status <> 200", [False, True, True, True, True]),
    ("Status = '500'", [False, False, False, True, False]),
    ("Path = null", [False, False, U, True, False]),
    ("null = null", [True] * 5),
    # is null is true for null and for undefined
    ("Path is null", [False, False, True, True, False]),
    ("Path is not null", [True, True, False, False, True]),
    # ci folds case, also outside ASCII (ß has no single-character upper case)
    ("Path = '/API/orders/1' ci", [True, False, U, False, False]),
    ("Path = 'école ß' ci", [False, False, U, False, True]),
    ("Path = 'ÉCOLE SS' ci", [False, False, U, False, False]),
    # like: % and _, whole string, case-sensitive unless ci
    ("Path like '/api/%'", [True, False, U, U, False]),
    ("Path like '/API/%' ci", [True, False, U, U, False]),
    ("Path like '/health'", [False, True, U, U, False]),
    ("Path like '/healt_'", [False, True, U, U, False]),
    ("Path like '_COLE%'", [False, False, U, U, True]),
    ("Path not like '%1'", [False, True, U, U, True]),
    # in: the right side must be an array
    ("Status in [200, 503]", [True, True, False, False, False]),
    ("Status not in [200, 503]", [False, False, True, True, True]),
    ("Path in ['/HEALTH'] ci", [False, True, U, False, False]),
    ("Status in Path", [U, U, U, U, U]),
    ("'B' in Tags", [True, False, U, U, False]),
    # ordering: numbers with numbers, strings with strings
    ("Status >= 500", [False, True, False, U, U]),
    ("Path < '/b'", [True, False, U, U, False]),
    # arithmetic on numbers only; division by zero is undefined
    ("Status + 1", [Decimal(201), Decimal(504), Decimal("1.5"), U, U]),
    ("Status / 0", [U, U, U, U, U]),
    ("Status % 7", [Decimal(4), Decimal(6), Decimal("0.5"), U, U]),
    ("-Status", [Decimal(-200), Decimal(-503), Decimal("-0.5"), U, U]),
    # Kleene logic; not undefined is true
    ("Status = 200 or Nope = 1", [True, U, U, U, U]),
    ("Status = 200 and Nope = 1", [U, False, False, False, False]),
    ("not (Nope = 1)", [True] * 5),
    ("not Path", [U, U, True, U, U]),
    ("if Status >= 500 then 'bad' else 'ok'", ["ok", "bad", "ok", "ok", "ok"]),
    # wildcards: any / all over arrays and object values; undefined when not a collection
    ("Tags[?] = 'a'", [True, False, False, U, False]),
    ("Tags[*] > 0", [False, True, False, U, True]),
    ("Tags[?] = 'V' ci", [False, False, True, U, False]),
    ("Contains(Tags[?], 'b') ci", [True, False, False, U, False]),
    ("Contains(Tags[?], 'V') ci", [False, False, True, U, False]),
    ("Some(Tags, |t| t = 2)", [False, False, True, U, True]),
    ("Every(Tags, |t| t > 0)", [False, True, False, U, True]),
    # members and indexes
    ("Tags.k", [U, U, "v", U, U]),
    ("Tags[0]", ["a", U, U, U, Decimal(1)]),
    ("Tags['n'] + 1", [U, U, Decimal(3), U, U]),
    # built-ins
    ("@Level", ["Information", "Error", "Warning", "odd", Decimal(3)]),
    ("@Level = 'error'", [False, False, False, False, False]),
    ("@Level = 'error' ci", [False, True, False, False, False]),
    ("@Message", ['GET "/api/Orders/1" gave 200', "Upstream timeout after 12 ms", U,
                  "Disk almost FULL", U]),
    ("@MessageTemplate", ["GET {Path} gave {Status}", "Upstream timeout after {Ms} ms", U,
                          "Disk almost FULL", U]),
    ("@Exception", [U, "System.TimeoutException: boom", U, U, U]),
    ("@Properties['@x']", ["escaped", U, U, U, U]),
    ("@Timestamp", [Decimal(621355968000000010 + k * 10) for k in range(5)]),
    ("@Timestamp - @Timestamp", [Decimal(0)] * 5),
    ("@Id", [f"event-{621355968000000000 + 10 * (k + 1):016x}{k:016x}" for k in range(5)]),
    # free text: message (rendered) or exception, ignoring case
    ('"timeout"', [False, True, False, False, False]),
    ('"orders/1"', [True, False, False, False, False]),
    ('"almost full"', [False, False, False, True, False]),
    ('"boom"', [False, True, False, False, False]),
    # functions
    ("Has(Path)", [True, True, False, True, True]),
    ("Length(Path)", [Decimal(13), Decimal(7), U, U, Decimal(7)]),
    ("ToUpper(Path)", ["/API/ORDERS/1", "/HEALTH", U, U, "ÉCOLE ß"]),
    ("ToLower(Path)", ["/api/orders/1", "/health", U, U, "école ß"]),
    ("Contains(Path, 'ORDERS') ci", [True, False, U, U, False]),
    ("StartsWith(Path, '/h')", [False, True, U, U, False]),
    ("EndsWith(Path, 'ß')", [False, False, U, U, True]),
    ("IndexOf(Path, 'o')", [Decimal(-1), Decimal(-1), U, U, Decimal(-1)]),
    ("IndexOf(Path, 'o') ci", [Decimal(5), Decimal(-1), U, U, Decimal(2)]),
    ("Substring(Path, 1, 3)", ["api", "hea", U, U, "COL"]),
    ("Concat(Path, '!')", ["/api/Orders/1!", "/health!", U, U, "ÉCOLE ß!"]),
    ("Coalesce(Path, 'none')", ["/api/Orders/1", "/health", "none", "none", "ÉCOLE ß"]),
    ("Replace(Path, '/', '|')", ["|api|Orders|1", "|health", U, U, "ÉCOLE ß"]),
    ("TypeOf(Status)", ["number", "number", "number", "string", "boolean"]),
    ("TypeOf(Nope)", ["undefined"] * 5),
    ("Round(Status, 0)", [Decimal(200), Decimal(503), Decimal(0), U, U]),
    ("ToNumber(Status)", [Decimal(200), Decimal(503), Decimal("0.5"), Decimal(500), U]),
    ("ToJson(Tags)", ['["a","B"]', "[]", '{"k":"v","n":2}', "false", "[1,2,3]"]),
    ("FromJson('[1, {\"a\": null}]')", [[Decimal(1), {"a": None}]] * 5),
    ("Keys(Tags)", [U, U, ["k", "n"], U, U]),
    ("Values(Tags)", [U, U, ["v", Decimal(2)], U, U]),
    ("ElementAt(Tags, 'K') ci", [U, U, "v", U, U]),
    ("[Status, Nope, 1]", [[Decimal(200), Decimal(1)], [Decimal(503), Decimal(1)],
                           [Decimal("0.5"), Decimal(1)], ["500", Decimal(1)], [True, Decimal(1)]]),
    ("{s: Status, n: Nope}", [{"s": Decimal(200)}, {"s": Decimal(503)}, {"s": Decimal("0.5")},
                              {"s": "500"}, {"s": True}]),
    ("1h + 1", [Decimal(36_000_000_001)] * 5),
    # regular expressions: `=` matches the whole string; functions take them as patterns
    ("Path = /\\/health/", [False, True, U, U, False]),
    ("Path = /health/", [False, False, U, U, False]),
    ("Path = /.*ORDERS.*/ ci", [True, False, U, U, False]),
    ("Path <> /\\/health/", [True, False, U, U, True]),
    ("/[^a-z]+ ß/ = Path", [False, False, U, U, True]),
    ("Tags[?] = /[a-z]/", [True, False, True, U, False]),
    ("Contains(Path, /\\d$/)", [True, False, U, U, False]),
    ("StartsWith(Path, /\\/a/)", [True, False, U, U, False]),
    ("EndsWith(Path, /[a-z]+/)", [False, True, U, U, False]),
    ("EndsWith(Path, /ORDERS\\/\\d/) ci", [True, False, U, U, False]),
    ("IndexOf(Path, /[A-Z]/)", [Decimal(5), Decimal(-1), U, U, Decimal(1)]),
    ("Replace(Path, /(?<w>[a-z]+)/, '<${w}>')", ["/<api>/O<rders>/1", "/<health>", U, U,
                                                  "ÉCOLE ß"]),
    ("Replace(Path, /[aeo]/, '$$') ci", ["/$pi/$rd$rs/1", "/h$$lth", U, U, "ÉC$L$ ß"]),
    # dates and times: instants are ticks since 0001-01-01
    ("DateTime('2024-03-05T06:07:08.1234567Z')", [Decimal(638452156281234567)] * 5),
    ("DateTime('2024-03-05T07:07:08.1234567+01:00') = DateTime('2024-03-05 06:07:08.1234567')",
     [True] * 5),
    ("DateTime('2024-03-05') = DateTime('2024-03-05T00:00:00Z')", [True] * 5),
    ("DateTime('2024-02-30')", [U] * 5),
    ("DateTime('yesterday')", [U] * 5),
    ("DateTime(Status)", [U] * 5),
    ("ToIsoString(@Timestamp)", [f"1970-01-01T00:00:00.00000{k}0Z" for k in range(1, 6)]),
    ("ToIsoString(@Timestamp, -5.5)", [f"1969-12-31T18:30:00.00000{k}0-05:30"
                                       for k in range(1, 6)]),
    ("ToIsoString(@Timestamp, 0)", [f"1970-01-01T00:00:00.00000{k}0+00:00" for k in range(1, 6)]),
    ("ToIsoString(@Timestamp, 15)", [U] * 5),
    ("ToIsoString(Path)", [U] * 5),
    ("DatePart(@Timestamp, 'weekday', 0)", [Decimal(4)] * 5),  # a Thursday
    ("DatePart(@Timestamp, 'Year', -1)", [Decimal(1969)] * 5),
    ("DatePart(DateTime('2024-12-31T23:59:59.999Z'), 'dayofyear', 0)", [Decimal(366)] * 5),
    ("DatePart(DateTime('2024-12-31T23:59:59.999Z'), 'millisecond', 0)", [Decimal(999)] * 5),
    ("DatePart(DateTime('2024-12-31T23:59:59.999Z'), 'hour', 1)", [Decimal(0)] * 5),
    ("DatePart(@Timestamp, 'fortnight', 0)", [U] * 5),
    ("TimeOfDay(@Timestamp, 2)", [Decimal(72_000_000_000 + 10 * k) for k in range(1, 6)]),
    ("TimeOfDay(@Timestamp, 0.33)", [U] * 5),  # not whole minutes
    ("TotalMilliseconds(1h)", [Decimal(3_600_000)] * 5),
    ("TotalMilliseconds(Status)", [Decimal("0.02"), Decimal("0.0503"), Decimal("0.00005"), U, U]),
    # event types: Murmur3-32 of the template (unless the event gives @i)
    ("ToEventType('Hello {A}')", [Decimal(539113752)] * 5),
    ("@EventType", [Decimal(440638765), Decimal(2758403253), Decimal(0), Decimal(556703832),
                    Decimal(0)]),
    ("@EventType = ToEventType(@MessageTemplate)", [True, True, U, True, U]),
]  # fmt: skip


def strictly_equal(a: Any, b: Any) -> bool:
    if a is U or b is U:
        return a is b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(strictly_equal(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_semantics(text: str, expected: list[Any]) -> None:
    got = values_of(text)
    assert all(strictly_equal(g, e) for g, e in zip(got, expected, strict=True)), got
    assert all(strictly_equal(g, e) for g, e in zip(got, oracle(text), strict=True))


def test_filter_mask_selects_exactly_true_rows() -> None:
    mask = vector.filter_mask(parse_filter("Status >= 500 or Path = '/api/Orders/1'"), BATCH)
    assert mask.tolist() == [True, True, False, False, False]
    assert vector.filter_mask(None, BATCH).tolist() == [True] * 5
    assert vector.filter_mask(parse_filter(""), BATCH).tolist() == [True] * 5


def test_big_numbers_stay_numbers() -> None:
    # A BIGINT cell is a number (read as the nearest float).
    assert values_of("TypeOf(Ms)")[4] == "number"
    assert values_of("Ms > 1000000")[4] is True


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Path like /a.c/", "regular expression"),
        ("LastIndexOf(Path, /a/) > 0", "regular expression"),
        ("Path = /a(b/", "invalid regular expression"),
        ("Contains(Path, /[a/)", "invalid regular expression"),
        ("ToHexString(Status) = 'a'", "ToHexString"),
        ("@Arrived > 0", "@Arrived"),
        ("Path like 'a?b'", "like pattern"),
        ("Path like 'a%%b'", "like pattern"),
    ],
)
def test_unsupported_is_rejected_before_reading_rows(text: str, fragment: str) -> None:
    with pytest.raises(QueryError, match=fragment):
        vector.check(parse_filter(text))
    with pytest.raises(QueryError):
        vector.evaluate(parse_filter(text), BATCH)


def test_aggregates_only_when_allowed() -> None:
    node = A.Call("count", (A.Star(),))
    with pytest.raises(QueryError, match="aggregate"):
        vector.check(node)
    vector.check(node, allow_aggregates=True)


def test_event_type_is_i_when_given_else_the_template_hash() -> None:
    batch = batch_from_cells(
        [1, 2, 3], [0, 1, 2], {"@i": [i(7), s("a1"), _], "@mt": [_, s("x"), s("Hello {A}")]}
    )
    assert values_of("@EventType", batch) == [Decimal(7), Decimal(0xA1), Decimal(539113752)]
    assert oracle("@EventType", batch) == values_of("@EventType", batch)


def test_now_is_the_given_clock_and_otherwise_the_current_time() -> None:
    tree = parse_filter("Now() - @Timestamp")
    now = 638452156281234567
    expected = [Decimal(now - 621355968000000000 - 10 * k) for k in range(1, 6)]
    assert vector.evaluate(tree, BATCH, now_ticks=now).to_python() == expected
    assert [R.evaluate(tree, e, now_ticks=now) for e in to_events(BATCH)] == expected
    mask = vector.filter_mask(parse_filter("Now() > @Timestamp + 1d"), BATCH, now_ticks=now)
    assert mask.tolist() == [True] * 5
    # Without a given clock: the current time (later than 2026-01-01).
    current = vector.evaluate(parse_filter("Now()"), BATCH).to_python()[0]
    assert current > R.evaluate(parse_filter("DateTime('2026-01-01')"), {})


def test_columns_needed() -> None:
    assert vector.columns_needed(parse_filter("Path = 'x' and @Level = 'Error'")) == {"Path", "@l"}
    assert vector.columns_needed(parse_filter("@Properties['a'] = 1")) == {"a"}
    assert vector.columns_needed(parse_filter("Has(@Properties)")) is None
    assert vector.columns_needed(parse_filter('"text"')) is None  # templates name properties


def test_evaluating_a_block_with_only_the_needed_columns_gives_the_same_values() -> None:
    tree = parse_filter("Status >= 500 or Tags[?] = 'a'")
    needed = vector.columns_needed(tree)
    assert needed is not None
    slim = Batch(
        BATCH.n, BATCH.ts, BATCH.seq, {k: v for k, v in BATCH.columns.items() if k in needed}
    )
    assert vector.evaluate(tree, slim).to_python() == vector.evaluate(tree, BATCH).to_python()


def test_text_search_uses_rendered_properties_and_template_text() -> None:
    # 'gave 2' spans the template text and the rendered number.
    assert values_of('"gave 2"') == [True, False, False, False, False]
    assert values_of('"/api/orders/1\\" gave"') == [True, False, False, False, False]
    batch = batch_from_cells(
        [1, 2, 3],
        [0, 1, 2],
        {
            "@mt": [s("t{A}out"), s("{B}"), s("x {C:0.00}")],
            "A": [s("ime"), _, _],
            "B": [_, j('{"$type":"Timeout","x":1}'), _],
            "C": [_, _, (TAG_FLOAT, 1e20)],
        },
    )
    # `t"ime"out` has quotes; `{B}` renders as `Timeout { x: 1 }`.
    assert values_of('"timeout"', batch) == [False, True, False]
    assert values_of('"t\\"ime\\"out"', batch) == [True, False, False]
    assert values_of('"00000000000000000000.00"', batch) == [False, False, True]


def test_group_codes_follow_equality() -> None:
    batch = batch_from_cells(
        [1] * 7,
        list(range(7)),
        {"V": [s("a"), s("A"), i(1), (TAG_FLOAT, 1.0), _, (TAG_NULL, None), j("[1]")]},
    )
    values = vector.evaluate(A.Property("V"), batch)
    codes, keys = values.group_codes()
    assert codes[2] == codes[3] and codes[0] != codes[1]
    assert keys[codes[4]] is U and keys[codes[5]] is None and keys[codes[6]] == [Decimal(1)]
    codes_ci, keys_ci = values.group_codes(ci=True)
    assert codes_ci[0] == codes_ci[1] and keys_ci[codes_ci[0]] == "a"


def test_level_group_codes_share_the_dictionary() -> None:
    values = vector.evaluate(A.BuiltIn("Level"), BATCH)
    codes, keys = values.group_codes()
    assert [keys[c] for c in codes] == ["Information", "Error", "Warning", "odd", Decimal(3)]
    assert values.kind[0] == K_STRING


def test_values_take_and_constant() -> None:
    values = vector.evaluate(A.Property("Path"), BATCH)
    taken = values.take(np.array([4, 0, 0]))
    assert taken.to_python() == ["ÉCOLE ß", "/api/Orders/1", "/api/Orders/1"]
    constant = Values.constant("x", 3)
    assert constant.to_python() == ["x", "x", "x"]


def test_text_search_needs_only_the_columns_its_templates_name() -> None:
    tree = parse_filter('"timeout" or "orders" or @Message like \'%200%\'')
    assert vector.columns_needed(tree) is None
    mt = BATCH.columns["@mt"]
    templates = {
        BATCH.columns["@mt"].str_data[a:b].decode()
        for a, b in zip(mt.str_offsets[:-1].tolist(), mt.str_offsets[1:].tolist(), strict=True)
    }
    needed = vector.columns_needed_with_templates(tree, templates)
    assert needed == {"@m", "@mt", "@r", "@x", "Path", "Status", "Ms"}
    slim = Batch(
        BATCH.n, BATCH.ts, BATCH.seq, {k: v for k, v in BATCH.columns.items() if k in needed}
    )
    assert vector.evaluate(tree, slim).to_python() == vector.evaluate(tree, BATCH).to_python()
    assert vector.columns_needed_with_templates(parse_filter("Has(@Properties)"), []) is None
