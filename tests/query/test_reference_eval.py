"""The reference evaluator of filters: one table per group of operators and functions, each row
a real filter string parsed with `parse_filter` and evaluated against sample events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from seqfast.query import parse_filter
from seqfast.query.ast import Binary, Filter, Lambda, LambdaParameter, Property, Regex, String
from seqfast.query.ast import Call as CallNode
from seqfast.testing.reference_eval import UNDEFINED, evaluate, matches

U = UNDEFINED
D = Decimal

EVENT: dict[str, Any] = {
    "@t": "2024-05-01T12:00:00.1234567Z",
    "@id": "event-08dc69d7d4c2dc870000000000000007",
    "@mt": "User {Name} logged in from {Ip} after {Attempts} tries ({Ok}, {Missing}) {{x}}",
    "@l": "WRN",
    "@x": "System.TimeoutException: The Operation Timed Out",
    "@i": "a1b2c3d4",
    "@tr": "4bf92f3577b34da6a3ce929d0e0e4736",
    "@sp": "00f067aa0ba902b7",
    "@ps": "00f067aa0ba90200",
    "@st": "2024-05-01T11:59:59.1234567Z",
    "@sk": "Server",
    "@ra": {"service": {"name": "checkout"}},
    "@sa": {"name": "my.lib", "version": "1.0"},
    "@@m": "escaped",
    "Name": "Alice",
    "Ip": "10.0.0.1",
    "Attempts": 3,
    "Ok": True,
    "Ratio": 0.1,
    "Nothing": None,
    "Empty": [],
    "Tags": ["a", "B", "c"],
    "Nums": [1, 2, 3],
    "Items": [
        {"Name": "coffee", "Price": 4, "Taxes": [1, 2]},
        {"Name": "cake", "Price": 6, "Taxes": [3]},
    ],
    "Headers": {"Content-Type": "text/plain", "Accept": "json"},
    "Json": '{"a": [1, 2.5, null], "b": "x"}',
    "Big": 12345678901234567890123,
    "Emoji": "a😀b",
    "Greek": "ΣΊΣΥΦΟΣ",
}

MINIMAL: dict[str, Any] = {
    "@t": "2024-05-01T12:00:00.0000000Z",
    "@m": "Disk {full} on /dev/sda1",
    "@l": "Information",
}


def ev(text: str, event: dict[str, Any] | None = None) -> Any:
    tree = parse_filter(text, strict=True)
    assert tree.expr is not None
    return evaluate(tree.expr, EVENT if event is None else event)


def same(got: Any, want: Any) -> bool:
    """Equal values of the same type (`True` is not `1`; `UNDEFINED` only by identity)."""
    if want is UNDEFINED or got is UNDEFINED:
        return got is want
    if type(got) is not type(want):
        return False
    if isinstance(want, list):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    return bool(got == want)


def check(text: str, want: Any, event: dict[str, Any] | None = None) -> None:
    got = ev(text, event)
    assert same(got, want), f"{text}: got {got!r}, want {want!r}"


LITERALS = [
    ("1", D(1)),
    ("-2.50", D("-2.50")),
    ("0x1F", D(31)),
    ("'it''s'", "it's"),
    ("true", True),
    ("null", None),
    ("1h30m", D(54_000_000_000)),
    ("1ms", D(10_000)),
    ("[1, 'a', null]", [D(1), "a", None]),
    ("[1, Missing, 2]", [D(1), D(2)]),
    ("{a: 1, b: Missing}", {"a": D(1)}),
]

PROPERTIES = [
    ("Name", "Alice"),
    ("Attempts", D(3)),
    ("Ratio", D("0.1")),
    ("Ratio = 0.1", True),
    ("Nothing", None),
    ("Missing", U),
    ("@Properties['Name']", "Alice"),
    ("@Properties['@m']", "escaped"),
    ("@Properties['Content-Type']", U),
    ("Headers['Content-Type']", "text/plain"),
    ("Headers.Accept", "json"),
    ("Headers.Missing", U),
    ("Name.Length", U),
    ("Items[1].Name", "cake"),
    ("Items[2]", U),
    ("Items[-1]", U),
    ("Items[0.5]", U),
    ("Tags[0]", "a"),
    ("Headers[Concat('Acc', 'ept')]", "json"),
    ("Big", D(12345678901234567890123)),
    ("Big = 12345678901234567890123", True),
]

BUILT_INS = [
    ("@Timestamp", D(638_501_616_001_234_567)),
    ("@Start", D(638_501_615_991_234_567)),
    ("@Elapsed", D(10_000_000)),
    ("@Elapsed = 1s", True),
    ("@Timestamp - @Start > 500ms", True),
    ("@Level", "Warning"),
    ("@Level = 'Warning'", True),
    ("@Message", 'User "Alice" logged in from "10.0.0.1" after 3 tries (True, {Missing}) {x}'),
    ("@MessageTemplate", EVENT["@mt"]),
    ("@Exception", EVENT["@x"]),
    ("@EventType", D(0xA1B2C3D4)),
    ("@EventType = 0xA1B2C3D4", True),
    ("@Id", EVENT["@id"]),
    ("@TraceId", EVENT["@tr"]),
    ("@SpanId", EVENT["@sp"]),
    ("@ParentId", EVENT["@ps"]),
    ("@SpanKind", "Server"),
    ("@Resource.service.name", "checkout"),
    ("@Scope.name", "my.lib"),
    ("@Properties.Ok", True),
    ("Has(@Properties['@m'])", True),
    ("Has(@Properties['@l'])", False),
    ("Has(@Properties['@mt'])", False),
]

MINIMAL_BUILT_INS = [
    ("@Message", "Disk {full} on /dev/sda1"),
    ("@MessageTemplate", "Disk {{full}} on /dev/sda1"),
    ("@Exception", U),
    ("@Start", U),
    ("@Elapsed", U),
    ("@TraceId", U),
    ("@Resource", U),
    ("@Level", "Information"),
    ("@Properties", {}),
]

COMPARISONS = [
    ("Attempts = 3", True),
    ("Attempts = 3.0", True),
    ("Attempts <> 3", False),
    ("Attempts = '3'", False),
    ("Attempts <> '3'", True),
    ("Ok = true", True),
    ("Ok = 1", False),
    ("Missing = 1", U),
    ("Missing <> 1", U),
    ("Missing = null", U),
    ("Missing = Missing", U),
    ("Nothing = null", True),
    ("null = null", True),
    ("Nothing <> null", False),
    ("Nothing = 0", False),
    ("Name = 'alice'", False),
    ("Name = 'alice' ci", True),
    ("Name <> 'alice' ci", False),
    ("Tags = ['a', 'B', 'c']", True),
    ("Tags = ['a', 'b', 'c']", False),
    ("Tags = ['A', 'b', 'C'] ci", True),
    ("Tags = ['a', 'B']", False),
    ("Headers = {Accept: 'json', 'Content-Type': 'text/plain'}", True),
    ("Headers = {Accept: 'json'}", False),
    ("Attempts < 4", True),
    ("Attempts <= 3", True),
    ("Attempts > 3", False),
    ("Attempts >= 3.5", False),
    ("Name < 'Bob'", True),
    ("Name > 'alice'", False),
    ("'\ufb01' < '😀'", False),
    ("Name < 3", U),
    ("Ok < true", U),
    ("Missing < 3", U),
    ("Nothing < 3", U),
]

LOGIC = [
    ("true and true", True),
    ("true and false", False),
    ("false and Missing", False),
    ("Missing and false", False),
    ("true and Missing", U),
    ("true and 1", U),
    ("true or Missing", True),
    ("Missing or true", True),
    ("false or Missing", U),
    ("false or false", False),
    ("false or 'x'", U),
    ("Missing = 1 or Name = 'Alice'", True),
    ("Missing = 1 and Name = 'Alice'", U),
    ("not true", False),
    ("not false", True),
    ("not Missing", True),
    ("not (Missing = 1)", True),
    ("not Nothing", U),
    ("not 1", U),
    ("not 'x'", U),
    ("Missing is null", True),
    ("Nothing is null", True),
    ("Name is null", False),
    ("Missing is not null", False),
    ("Name is not null", True),
    ("if Ok then 'y' else 'n'", "y"),
    ("if Missing then 'y' else 'n'", "n"),
    ("if 1 then 'y' else 'n'", "n"),
    ("if Attempts > 2 then Attempts * 2 else Missing", D(6)),
]

LIKE_IN = [
    ("Name like 'Al%'", True),
    ("Name like 'al%'", False),
    ("Name like 'al%' ci", True),
    ("Name like '%ic%'", True),
    ("Name like 'Al_ce'", True),
    ("Name like 'Al_'", False),
    ("Name like '%'", True),
    ("'' like '%'", True),
    ("Name like 'Alice'", True),
    ("Name like 'A.*'", False),
    ("Name not like 'Al%'", False),
    ("Name not like 'x%'", True),
    ("Missing like '%'", U),
    ("Attempts like '3'", U),
    ("'a\nb' like 'a_b'", True),
    ("Name in ['Bob', 'Alice']", True),
    ("Name in ['bob', 'alice']", False),
    ("Name in ['bob', 'alice'] ci", True),
    ("Name not in ['Bob']", True),
    ("Name not in ['Alice']", False),
    ("Attempts in [1, 2, 3.0]", True),
    ("Attempts in ['3']", False),
    ("Nothing in [null]", True),
    ("Missing in [1]", U),
    ("Name in 'Alice'", U),
    ("@Level in ['Error', 'Warning']", True),
    ("[1, 2] in [[1, 2], 3]", True),
]

ARITHMETIC = [
    ("Attempts + 1", D(4)),
    ("Attempts - 5", D(-2)),
    ("Attempts * 1.5", D("4.5")),
    ("Attempts / 2", D("1.5")),
    ("1 / 3", D("0.3333333333333333333333333333")),
    ("Attempts % 2", D(1)),
    ("-7 % 2", D(-1)),
    ("2 ^ 10", D(1024)),
    ("-Attempts", D(-3)),
    ("Ratio * 3", D("0.3")),
    ("Attempts / 0", U),
    ("0 / 0", U),
    ("Attempts % 0", U),
    ("(-8) ^ 0.5", U),
    ("10 ^ 40", U),
    ("Attempts + '1'", U),
    ("Name + 'x'", U),
    ("Ok + 1", U),
    ("Missing + 1", U),
    ("Nothing + 1", U),
    ("-Name", U),
    ("1 + 2 * 3 = 7", True),
    ("@Timestamp + 1d - @Timestamp = 864000000000", True),
]

WILDCARDS = [
    ("Tags[?] = 'B'", True),
    ("Tags[?] = 'b'", False),
    ("Tags[?] = 'b' ci", True),
    ("Tags[*] = 'a'", False),
    ("Tags[*] like '_'", True),
    ("Nums[*] > 0", True),
    ("Nums[*] > 1", False),
    ("Nums[?] > 2", True),
    ("Nums[?] > 3", False),
    ("Items[?].Name = 'cake'", True),
    ("Items[*].Price >= 4", True),
    ("Items[*].Price > 4", False),
    ("Items[?].Taxes[?] = 3", True),
    ("Items[*].Taxes[?] = 2", False),
    ("Items[?].Taxes[*] < 3", True),
    ("Items[*].Taxes[*] > 0", True),
    ("Empty[?] = 1", False),
    ("Empty[*] = 1", True),
    ("Missing[?] = 1", U),
    ("Name[?] = 'A'", U),
    ("Headers[?] = 'json'", True),
    ("Tags[?] in ['x', 'c']", True),
    ("Nums[?] = Nums[?]", True),
    ("Nums[*] = Nums[?]", True),
    ("Nums[*] = Nums[*]", False),
    ("StartsWith(Tags[?], 'B')", True),
    ("Contains(Items[*].Name, 'c')", True),
    ("EndsWith(Items[*].Name, 'e')", True),
    ("(Nums[?] > 2) = true", True),
    ("not (Tags[?] = 'z')", True),
    ("Tags[?] = 'a' and Nums[*] < 4", True),
    ("Length(Items[?].Taxes) = 2", True),
]

FUNCTIONS = [
    ("Has(Name)", True),
    ("Has(Nothing)", True),
    ("Has(Missing)", False),
    ("Has(Headers.Accept)", True),
    ("Contains(Name, 'lic')", True),
    ("Contains(Name, 'LIC')", False),
    ("Contains(Name, 'LIC') ci", True),
    ("Contains(Name, 3)", U),
    ("Contains(Missing, 'a')", U),
    ("StartsWith(Name, 'Al')", True),
    ("StartsWith(Name, 'al') ci", True),
    ("EndsWith(Name, 'ce')", True),
    ("EndsWith(Name, 'CE')", False),
    ("IndexOf(Name, 'i')", D(2)),
    ("IndexOf(Name, 'z')", D(-1)),
    ("IndexOf(Name, 'L') ci", D(1)),
    ("IndexOf(Emoji, 'b')", D(3)),
    ("LastIndexOf('abcabc', 'bc')", D(4)),
    ("LastIndexOf('abcabc', 'BC') ci", D(4)),
    ("Length(Name)", D(5)),
    ("Length(Emoji)", D(4)),
    ("Length(Tags)", D(3)),
    ("Length(Headers)", U),
    ("Length(3)", U),
    ("ToLower(Name)", "alice"),
    ("ToUpper(Name)", "ALICE"),
    ("ToLower(Greek)", "σίσυφοσ"),
    ("ToUpper('straße')", "STRAßE"),
    ("ToLower(3)", U),
    ("Substring(Name, 1)", "lice"),
    ("Substring(Name, 1, 2)", "li"),
    ("Substring(Name, 3, 10)", "ce"),
    ("Substring(Name, 5)", ""),
    ("Substring(Name, 6)", U),
    ("Substring(Name, -1)", U),
    ("Substring(Name, 1, -1)", U),
    ("Substring(Name, 1.5)", U),
    ("Substring(Emoji, 3)", "b"),
    ("Concat(Name, '-', Ip)", "Alice-10.0.0.1"),
    ("Concat(Name, Attempts)", U),
    ("Concat(Name, Missing)", U),
    ("Coalesce(Missing, Nothing, Name)", "Alice"),
    ("Coalesce(Missing, Nothing)", None),
    ("Coalesce(Nothing, Missing)", U),
    ("Coalesce(Attempts, Name)", D(3)),
    ("Replace(Name, 'li', 'LI')", "ALIce"),
    ("Replace('aAaA', 'a', 'x')", "xAxA"),
    ("Replace('aAaA', 'a', 'x') ci", "xxxx"),
    ("Replace(Name, '', 'x')", U),
    ("Replace(Name, 'l', Missing)", U),
    ("TypeOf(Name)", "string"),
    ("TypeOf(Attempts)", "number"),
    ("TypeOf(Ok)", "boolean"),
    ("TypeOf(Nothing)", "null"),
    ("TypeOf(Tags)", "array"),
    ("TypeOf(Headers)", "object"),
    ("TypeOf(Missing)", "undefined"),
    ("Round(2.345, 2)", D("2.34")),
    ("Round(2.355, 2)", D("2.36")),
    ("Round(Attempts / 2, 0)", D(2)),
    ("Round(2.5, 0)", D(2)),
    ("Round(Name, 2)", U),
    ("Round(1.5, 0.5)", U),
    ("ToNumber('42')", D(42)),
    ("ToNumber('-1.25')", D("-1.25")),
    ("ToNumber('abc')", U),
    ("ToNumber(Attempts)", D(3)),
    ("ToNumber(Ok)", U),
    ("ToJson(Items[0])", '{"Name":"coffee","Price":4,"Taxes":[1,2]}'),
    ("ToJson(Name)", '"Alice"'),
    ("ToJson(Ratio)", "0.1"),
    ("ToJson([true, null])", "[true,null]"),
    ("ToJson(Missing)", U),
    ("FromJson(Json)", {"a": [D(1), D("2.5"), None], "b": "x"}),
    ("FromJson(Json).a[1]", D("2.5")),
    ("FromJson('nope')", U),
    ("FromJson('NaN')", U),
    ("FromJson(3)", U),
    ("Keys(Headers)", ["Content-Type", "Accept"]),
    ("Values(Headers)", ["text/plain", "json"]),
    ("Keys(Tags)", U),
    ("ElementAt(Tags, 1)", "B"),
    ("ElementAt(Tags, 3)", U),
    ("ElementAt(Headers, 'Accept')", "json"),
    ("ElementAt(Headers, 'accept')", U),
    ("ElementAt(Headers, 'accept') ci", "json"),
    ("ElementAt(Name, 0)", U),
    ("Some(Items, |x| x.Price > 5)", True),
    ("Some(Items, |x| x.Price > 6)", False),
    ("Every(Items, |x| x.Price > 3)", True),
    ("Every(Items, |x| x.Price > 4)", False),
    ("Some(Empty, |x| true)", False),
    ("Every(Empty, |x| false)", True),
    ("Some(Missing, |x| true)", U),
    ("Some(Headers, |v| v = 'json')", True),
    ("Every(Nums, |n| Some(Nums, |m| m * n = 6))", False),
    ("Some(Nums, |n| Some(Nums, |m| m * n = 6))", True),
]


REGEXES = [
    ("Name = /Al.*/", True),
    ("Name = /al.*/", False),
    ("Name = /al.*/ ci", True),
    ("Name = /lic/", False),  # the whole string must match
    ("Name <> /lic/", True),
    ("/A\\w+/ = Name", True),
    ("Attempts = /3/", U),  # not a string
    ("Missing = /x/", U),
    ("Ip = /(?<a>\\d+)\\.0\\.0\\.\\d+/", True),  # .NET named groups
    ("Tags[?] = /[A-Z]/", True),
    ("Tags[*] = /[a-z]/", False),
    ("Contains(Name, /li/)", True),
    ("Contains(Name, /LI/)", False),
    ("Contains(Name, /LI/) ci", True),
    ("Contains(Attempts, /3/)", U),
    ("StartsWith(Name, /a/ ) ci", True),
    ("StartsWith(Name, /l/)", False),
    ("EndsWith(Name, /c?e/)", True),
    ("EndsWith(Name, /c/)", False),
    ("EndsWith(Ip, /\\.\\d\\z/)", True),
    ("IndexOf(Name, /[ce]/)", D(3)),
    ("IndexOf(Name, /z/)", D(-1)),
    ("IndexOf(Emoji, /b/)", D(3)),  # UTF-16 units
    ("Replace(Ip, /\\d+/, '#')", "#.#.#.#"),
    ("Replace(Ip, /(\\d+)\\.(\\d+)/, '$2-$1')", "0-10.1-0"),
    ("Replace(Name, /(?<first>.)/, '${first}$$') ci", "A$l$i$c$e$"),
    ("Replace(Name, /L/, '$&$&') ci", "Allice"),
    ("Replace(Name, /x/, '$1')", "Alice"),
]

DATES = [
    ("DateTime('2024-05-01T12:00:00.1234567Z') = @Timestamp", True),
    ("DateTime('2024-05-01T14:00:00.1234567+02:00') = @Timestamp", True),
    ("DateTime('2024-05-01 12:00:00,1234567') = @Timestamp", True),
    ("DateTime('2024-05-01T12:00:00.123456789Z') = @Timestamp", True),  # cut to ticks
    ("DateTime('2024-05-01T07:00-0500') = @Timestamp - 1234567", True),
    ("DateTime('2024-05-01')", D(638501184000000000)),
    ("DateTime('0001-01-01T00:00:00Z')", D(0)),
    ("DateTime('0001-01-01T00:00:00+01:00')", U),  # before the first instant
    ("DateTime('2024-05-01T24:00:00Z')", U),
    ("DateTime('1 May 2024')", U),
    ("DateTime(Attempts)", U),
    ("TimeOfDay(@Timestamp, 0)", D(432_001_234_567)),
    ("TimeOfDay(@Timestamp, -12.5)", D(432_001_234_567 + 11 * 36_000_000_000
                                       + 30 * 600_000_000)),
    ("TimeOfDay(@Timestamp, 15)", U),
    ("TimeOfDay(Name, 0)", U),
    ("TimeOfDay(@Timestamp + 0.5, 0)", U),
    ("DatePart(@Timestamp, 'year', 0)", D(2024)),
    ("DatePart(@Timestamp, 'Month', 0)", D(5)),
    ("DatePart(@Timestamp, 'day', -13)", D(30)),
    ("DatePart(@Timestamp, 'hour', 5.75)", D(17)),
    ("DatePart(@Timestamp, 'minute', 5.75)", D(45)),
    ("DatePart(@Timestamp, 'second', 0)", D(0)),
    ("DatePart(@Timestamp, 'millisecond', 0)", D(123)),
    ("DatePart(@Timestamp, 'weekday', 0)", D(3)),  # Wednesday; 0 is Sunday
    ("DatePart(@Timestamp, 'weekday', -13)", D(2)),
    ("DatePart(@Timestamp, 'dayofyear', 0)", D(122)),
    ("DatePart(@Timestamp, 'week', 0)", U),
    ("DatePart(@Timestamp, 1, 0)", U),
    ("TotalMilliseconds(1s)", D(1000)),
    ("TotalMilliseconds(@Elapsed)", D(1000)),
    ("TotalMilliseconds(15)", D("0.0015")),
    ("TotalMilliseconds('1s')", U),
    ("ToIsoString(@Timestamp)", "2024-05-01T12:00:00.1234567Z"),
    ("ToIsoString(@Timestamp, 0)", "2024-05-01T12:00:00.1234567+00:00"),
    ("ToIsoString(@Timestamp, -3.5)", "2024-05-01T08:30:00.1234567-03:30"),
    ("ToIsoString(@Timestamp, 14)", "2024-05-02T02:00:00.1234567+14:00"),
    ("ToIsoString(@Timestamp, 14.25)", U),
    ("ToIsoString(0)", "0001-01-01T00:00:00.0000000Z"),
    ("ToIsoString(3155378975999999999)", "9999-12-31T23:59:59.9999999Z"),
    ("ToIsoString(3155378975999999999, 1)", U),
    ("ToIsoString(-1)", U),
    ("ToIsoString(Name)", U),
    ("ToIsoString(DateTime('2024-05-01T12:00:00Z'), 2) = '2024-05-01T14:00:00.0000000+02:00'",
     True),
    ("ToEventType('Hello {A}')", D(539113752)),
    ("ToEventType('')", D(0)),
    ("ToEventType(3)", U),
]  # fmt: skip


def _table(*tables: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [row for table in tables for row in table]


@pytest.mark.parametrize(
    ("text", "want"),
    _table(LITERALS, PROPERTIES, BUILT_INS, COMPARISONS, LOGIC, LIKE_IN, ARITHMETIC),
)
def test_expressions(text: str, want: Any) -> None:
    check(text, want)


@pytest.mark.parametrize(("text", "want"), WILDCARDS)
def test_wildcards(text: str, want: Any) -> None:
    check(text, want)


@pytest.mark.parametrize(("text", "want"), FUNCTIONS)
def test_functions(text: str, want: Any) -> None:
    check(text, want)


@pytest.mark.parametrize(("text", "want"), REGEXES)
def test_regular_expressions(text: str, want: Any) -> None:
    check(text, want)


@pytest.mark.parametrize(("text", "want"), DATES)
def test_dates_and_times(text: str, want: Any) -> None:
    check(text, want)


def test_now_is_the_given_clock() -> None:
    tree = parse_filter("Now() - @Timestamp")
    assert evaluate(tree, EVENT, now_ticks=638501616001234567 + 5) == D(5)
    assert matches(parse_filter("Now() > @Timestamp"), EVENT, now_ticks=638501616001234568)


def test_event_type_without_i_hashes_the_template() -> None:
    check("@EventType = ToEventType(@MessageTemplate)", True, MINIMAL)
    check("@EventType", D(539113752), {"@t": MINIMAL["@t"], "@mt": "Hello {A}"})
    check("@EventType", D(0), {"@t": MINIMAL["@t"]})


@pytest.mark.parametrize(("text", "want"), MINIMAL_BUILT_INS)
def test_built_ins_of_a_minimal_event(text: str, want: Any) -> None:
    check(text, want, MINIMAL)


@pytest.mark.parametrize(
    ("text", "selected"),
    [
        ("", True),
        ("timed out", True),  # free text: searched in @Exception, case folded
        ('"LOGGED IN"', True),  # in the rendered message
        ('"alice"', True),
        ('"nowhere"', False),
        ('"logged" and not "nowhere"', True),
        ('"logged" and Attempts > 5', False),
        ("Attempts > 2", True),
        ("Missing = 1", False),
        ("Missing <> 1", False),
        ("not (Missing = 1)", True),
        ("Name", False),  # free text: 'Name' is not in the message or the exception
        ("@Level = 'Warning' and Items[?].Price > 5", True),
        ("Attempts", False),  # free text
        ("Attempts + 1", False),  # a number is not `true`
    ],
)
def test_matches(text: str, selected: bool) -> None:
    assert matches(parse_filter(text), EVENT) is selected


def test_text_search_uses_the_message_field_when_present() -> None:
    assert matches(parse_filter('"/DEV/SDA1"'), MINIMAL)
    assert not matches(parse_filter('"Exception"'), MINIMAL)


def test_properties_named_like_clef_fields_are_escaped() -> None:
    event = {**MINIMAL, "@@l": "mine", "l": "plain"}
    check("@Properties['@l']", "mine", event)
    check("l", "plain", event)
    check("@Level", "Information", event)
    check("@Properties", {"@l": "mine", "l": "plain"}, event)


def test_unknown_level_spellings_are_kept() -> None:
    check("@Level", "Chatty", {**MINIMAL, "@l": "Chatty"})
    check("@Level", "Error", {**MINIMAL, "@l": "err"})


def test_timestamps_with_offsets_and_short_fractions() -> None:
    check("@Timestamp", D(621_355_968_000_000_000), {"@t": "1970-01-01T00:00:00Z", "@l": "x"})
    check(
        "@Timestamp",
        D(621_355_968_000_000_000 + 5_000_000),  # 01:00:00.5+01:00 is 00:00:00.5Z
        {"@t": "1970-01-01T01:00:00.5+01:00", "@l": "x"},
    )


def test_timestamps_in_other_rfc3339_spellings() -> None:
    epoch = D(621_355_968_000_000_000)
    for text in ("1970-01-01T00:00:00", "1970-01-01 02:00:00+0200", "1969-12-31T23:00:00-01"):
        check("@Timestamp", epoch, {"@t": text, "@l": "x"})
    check("@Timestamp", U, {"@t": "yesterday", "@l": "x"})
    check("@Timestamp", U, {"@t": "2024-02-30T00:00:00Z", "@l": "x"})


def test_round_beyond_the_precision_is_undefined() -> None:
    check("Round(12345678901234567890123, 10)", U)


def test_evaluating_a_filter() -> None:
    assert evaluate(parse_filter("Attempts = 3"), EVENT) is True
    assert evaluate(Filter(None), EVENT) is True


def test_non_string_levels_and_event_types() -> None:
    check("@Level", D(3), {**MINIMAL, "@l": 3})


def test_event_type_as_an_integer() -> None:
    check("@EventType", D(7), {**MINIMAL, "@i": 7})


@pytest.mark.parametrize(
    ("text", "event", "detail"),
    [
        ("Now()", EVENT, "Now"),
        ("Name like /Al.*/", EVENT, "regular expression"),
        ("LastIndexOf(Name, /li/)", EVENT, "regular expression"),
        ("Name like '%?'", EVENT, "like pattern"),
        ("Name like '100%%'", EVENT, "like pattern"),
        ("@Arrived", EVENT, "@Arrived"),
        ("Tags[?]", EVENT, "wildcard"),
        ("Tags[?] is null", EVENT, "wildcard"),
        ("ToNumber('1e3')", EVENT, "ToNumber"),
        ("ToNumber(' 1')", EVENT, "ToNumber"),
        ("@Message", {**MINIMAL, "@m": None, "@mt": "{X:0.00}", "X": 1}, "format"),
        ("@Message", {**MINIMAL, "@m": None, "@mt": "{X,5}", "X": 1}, "alignment"),
        ("@Message", {"@t": EVENT["@t"], "@mt": "{X}", "X": 1.5}, "float"),
        ('"x"', {"@t": EVENT["@t"], "@mt": "{X}", "X": [1]}, "list"),
    ],
)
def test_refuses_what_it_cannot_answer_for_sure(
    text: str, event: dict[str, Any], detail: str
) -> None:
    tree = parse_filter(text)
    assert tree.expr is not None
    with pytest.raises(NotImplementedError, match=detail):
        evaluate(tree.expr, event)


def test_refuses_lambdas_it_does_not_know_and_stray_parameters() -> None:
    two = Lambda(("a", "b"), Binary("=", LambdaParameter("a"), LambdaParameter("b")))
    with pytest.raises(NotImplementedError, match="Some"):
        evaluate(CallNode("Some", (Property("Tags"), two)), EVENT)
    with pytest.raises(NotImplementedError, match="lambda parameter"):
        evaluate(LambdaParameter("x"), EVENT)
    with pytest.raises(NotImplementedError, match="regular"):
        evaluate(Binary("<", String("a"), Regex("a")), EVENT)


def test_undefined_is_a_singleton_without_truth_value() -> None:
    assert repr(UNDEFINED) == "UNDEFINED"
    assert type(UNDEFINED)() is UNDEFINED
    with pytest.raises(TypeError):
        bool(UNDEFINED)


def test_an_empty_filter_matches_everything() -> None:
    assert matches(Filter(None), {})


def test_the_event_is_not_changed() -> None:
    event = {**EVENT, "Items": [dict(item) for item in EVENT["Items"]]}
    before = repr(event)
    for text, _ in _table(PROPERTIES, WILDCARDS, FUNCTIONS):
        ev(text, event)
    assert repr(event) == before


def test_events_read_back_from_a_store(tmp_path: Any) -> None:
    import seqfast

    payload = (
        b'{"@t":"2024-05-01T12:00:00.5+02:00","@mt":"Hi {Who}","Who":"Bo","@l":"ERR",'
        b'"Ratio":0.25,"Tags":["x","y"],"@@Who":1}\n'
        b'{"@t":"2024-05-01T10:00:01Z","@m":"plain text","N":12345678901234567890}\n'
    )
    with seqfast.open(tmp_path / "data") as store:
        store.ingest_clef(payload)
        events = list(store.events())
    assert len(events) == 2
    newest, oldest = events
    cases = [
        (newest, "@Message", "plain text"),
        (newest, "N = 12345678901234567890", True),
        (newest, "@Level", "Information"),
        (newest, "@Timestamp - 500ms", ev("@Timestamp", oldest)),
        (oldest, "@Message", 'Hi "Bo"'),
        (oldest, "@Level = 'Error' and Ratio = 0.25 and Tags[?] = 'y'", True),
        (oldest, "@Properties['@Who'] = 1 and Who = 'Bo'", True),
        (oldest, "@Id = " + repr(oldest["@id"]), True),
    ]
    for event, text, want in cases:
        check(text, want, event)
    assert [matches(parse_filter('"HI"'), e) for e in events] == [False, True]
