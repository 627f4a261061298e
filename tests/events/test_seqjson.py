"""Seq's legacy JSON format turned into CLEF: the mapping, every error, and the store's reader
accepting what comes out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast.errors import InvalidEvents
from seqfast.events.clef import shred as native_shred
from seqfast.events.seqjson import decode_seq_json, formatted_tokens, property_tokens
from seqfast.storage.batch import TAG_BIGINT, TAG_INT
from seqfast.testing.reference_clef import shred

T = "2024-05-01T12:00:00Z"


def body(*events: Any, key: str = "Events") -> bytes:
    return json.dumps({key: list(events)}).encode()


def decoded(data: bytes) -> list[dict[str, Any]]:
    """The CLEF events of a legacy body, read back exactly (big integers included), after
    checking that the store's reference reader takes the output as it is."""
    clef = decode_seq_json(data)
    assert shred(clef).n == native_shred(clef).n
    assert clef == b"" or clef.endswith(b"\n")
    return [json.loads(line) for line in clef.splitlines()]


def only(event: dict[str, Any]) -> dict[str, Any]:
    (result,) = decoded(body(event))
    return result


def rejection(data: bytes) -> tuple[int, str]:
    with pytest.raises(InvalidEvents) as caught:
        decode_seq_json(data)
    return caught.value.line, caught.value.reason


# --- the mapping --------------------------------------------------------------------------------


def test_every_field_maps_to_its_clef_name() -> None:
    event = {
        "Timestamp": "2015-05-09T22:09:08.12345+10:00",
        "Level": "Warning",
        "MessageTemplate": "Disk space is low on {Drive}",
        "RenderedMessage": 'Disk space is low on "C:"',
        "Exception": "System.IO.IOException: full",
        "EventType": 3735928559,
        "TraceId": "0af7651916cd43dd8448eb211c80319c",
        "SpanId": "b7ad6b7169203331",
        "Properties": {"Drive": "C:", "Free": 0.5, "Nested": {"a": [1, None, True]}},
    }
    assert only(event) == {
        "@t": "2015-05-09T22:09:08.12345+10:00",
        "@l": "Warning",
        "@mt": "Disk space is low on {Drive}",
        "@m": 'Disk space is low on "C:"',
        "@x": "System.IO.IOException: full",
        "@i": 3735928559,
        "@tr": "0af7651916cd43dd8448eb211c80319c",
        "@sp": "b7ad6b7169203331",
        "Drive": "C:",
        "Free": 0.5,
        "Nested": {"a": [1, None, True]},
    }


def test_the_timestamp_text_is_kept_as_written() -> None:
    assert only({"Timestamp": "2024-05-01 12:00"}) == {"@t": "2024-05-01 12:00"}


@pytest.mark.parametrize(
    "field", ["Level", "MessageTemplate", "RenderedMessage", "Exception", "EventType", "TraceId"]
)
def test_null_fields_are_absent(field: str) -> None:
    assert only({"Timestamp": T, field: None, "Properties": None, "Renderings": None}) == {"@t": T}


def test_unknown_members_are_ignored() -> None:
    assert only({"Timestamp": T, "Foo": 1, "MessageTemplateTokens": []}) == {"@t": T}


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [(3735928559, 3735928559), (0, 0), ("deadbeef", "deadbeef"), ("$C0FFEE00", "C0FFEE00")],
)
def test_event_type(event_type: object, expected: object) -> None:
    assert only({"Timestamp": T, "EventType": event_type})["@i"] == expected


def test_lowercase_events_array_is_accepted() -> None:
    assert decoded(body({"Timestamp": T}, key="events")) == [{"@t": T}]


def test_lowercase_events_is_looked_up_first() -> None:
    data = json.dumps({"events": [{"Timestamp": T}], "Events": "not used"}).encode()
    assert decoded(data) == [{"@t": T}]


def test_no_events_is_no_clef() -> None:
    assert decode_seq_json(b'{"Events":[]}') == b""


def test_line_n_is_event_n() -> None:
    events = [{"Timestamp": T, "Properties": {"N": n}} for n in range(1, 6)]
    assert [e["N"] for e in decoded(body(*events))] == [1, 2, 3, 4, 5]


def test_byte_order_mark_is_skipped() -> None:
    assert decoded(b"\xef\xbb\xbf" + body({"Timestamp": T})) == [{"@t": T}]


# --- property names -----------------------------------------------------------------------------


def test_names_starting_with_at_are_escaped() -> None:
    properties = {"@t": 1, "@mt": "x", "@@already": 2, "plain": 3, "a@b": 4, "": 5}
    event = only({"Timestamp": T, "MessageTemplate": "real", "Properties": properties})
    assert event == {
        "@t": T,
        "@mt": "real",
        "@@t": 1,
        "@@mt": "x",
        "@@@already": 2,
        "plain": 3,
        "a@b": 4,
        "": 5,
    }


def test_escaped_names_reach_the_store_as_properties() -> None:
    data = body({"Timestamp": T, "Properties": {"@l": "not a level", "@r": 7}})
    batch = shred(decode_seq_json(data))
    assert list(batch.columns) == ["@@l", "@@r"]


# --- exact values -------------------------------------------------------------------------------

BIG_VALUES: list[object] = [
    123456789012345678901234567890,
    -123456789012345678901234567890,
    2**64,  # one past what orjson reads exactly
    2**64 - 1,
    -(2**63) - 1,
    -(2**63),
    2**63 - 1,
    10**400,
]


@pytest.mark.parametrize("value", BIG_VALUES)
def test_integers_of_any_size_stay_exact(value: int) -> None:
    assert only({"Timestamp": T, "Properties": {"V": value, "L": [value]}}) == {
        "@t": T,
        "V": value,
        "L": [value],
    }


def test_big_integers_reach_the_store_as_big_integers() -> None:
    data = body(
        {"Timestamp": T, "Properties": {"V": 2**70}}, {"Timestamp": T, "Properties": {"V": 1}}
    )
    column = shred(decode_seq_json(data)).columns["V"]
    assert list(column.tags) == [TAG_BIGINT, TAG_INT]
    assert column.str_data == str(2**70).encode()


def test_a_long_digit_run_in_a_string_changes_nothing() -> None:
    event = {"Timestamp": T, "Properties": {"Id": "1234567890123456789012", "F": 0.1, "U": "é"}}
    assert only(event) == {"@t": T, "Id": "1234567890123456789012", "F": 0.1, "U": "é"}


@pytest.mark.parametrize("digits", ["", "1234567890123456789012"])
def test_floats_keep_their_value_on_both_paths(digits: str) -> None:
    values = [0.1, 1.0, -0.0, 1e300, 5e-324, 1.7976931348623157e308]
    event = {"Timestamp": T, "Properties": {"F": values, "Pad": digits}}
    result = only(event)["F"]
    assert result == values
    assert all(isinstance(v, float) for v in result)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=5))
def test_any_properties_survive_exactly(properties: dict[str, Any]) -> None:
    (event,) = decoded(body({"Timestamp": T, "Properties": properties}))
    expected = {("@" + k if k.startswith("@") else k): v for k, v in properties.items()}
    assert event == {"@t": T, **expected}
    # Equal as JSON text too: 1 and 1.0 compare equal in Python but are different values.
    assert json.dumps(event) == json.dumps({"@t": T, **expected})


# --- renderings ---------------------------------------------------------------------------------


def renderings_of(template: str, renderings: dict[str, Any]) -> object:
    event = {"Timestamp": T, "MessageTemplate": template, "Renderings": renderings}
    return only(event).get("@r", "dropped")


RENDERINGS: list[tuple[str, dict[str, Any], object]] = [
    (
        "Paid {Amount:0.00} to {Payee} at {When:HH:mm}",
        {
            "When": [{"Format": "HH:mm", "Rendering": "10:15"}],
            "Amount": [{"Format": "0.00", "Rendering": "12.50"}],
        },
        ["12.50", "10:15"],
    ),
    # one property rendered with two formats, in template order
    (
        "{X:x8} and {X:d} and {X:x8}",
        {"X": [{"Format": "d", "Rendering": "255"}, {"Format": "x8", "Rendering": "000000ff"}]},
        ["000000ff", "255", "000000ff"],
    ),
    # alignment and destructuring hints do not hide the format
    (
        "{@Order,-10:G} {$Total,8:C}",
        {
            "Order": [{"Format": "G", "Rendering": "o"}],
            "Total": [{"Format": "C", "Rendering": "$1.00"}],
        },
        ["o", "$1.00"],
    ),
    # escaped braces are text, not tokens
    ("{{Not:a}} {Real:r}", {"Real": [{"Format": "r", "Rendering": "R"}]}, ["R"]),
    # a formatted token without a rendering: dropped rather than misaligned
    ("{A:x} {B:y}", {"B": [{"Format": "y", "Rendering": "b"}]}, "dropped"),
    # a rendering that no token uses (the parsers would disagree): dropped
    (
        "{A:x}",
        {"A": [{"Format": "x", "Rendering": "a"}, {"Format": "z", "Rendering": "?"}]},
        "dropped",
    ),
    ("{A:x}", {"B": [{"Format": "x", "Rendering": "a"}]}, "dropped"),
    # no formatted token at all
    ("{A} {B,5}", {"A": [{"Format": "x", "Rendering": "a"}]}, "dropped"),
    ("{A}", {}, "dropped"),
]


@pytest.mark.parametrize(("template", "renderings", "expected"), RENDERINGS)
def test_renderings(template: str, renderings: dict[str, Any], expected: object) -> None:
    assert renderings_of(template, renderings) == expected


def test_renderings_without_a_template_are_dropped() -> None:
    event = {"Timestamp": T, "RenderedMessage": "m", "Renderings": {"A": []}}
    assert only(event) == {"@t": T, "@m": "m"}


# Serilog's MessageTemplateParser on edge cases: (template, every property token).
TOKENS: list[tuple[str, list[tuple[str, str | None]]]] = [
    ("", []),
    ("plain text", []),
    ("{A}", [("A", None)]),
    ("{A:x}{B}", [("A", "x"), ("B", None)]),
    ("{0} {1:d}", [("0", None), ("1", "d")]),
    ("{@A} {$B}", [("A", None), ("B", None)]),
    ("{snake_case} {Ünïcode}", [("snake_case", None), ("Ünïcode", None)]),
    ("{A:}", [("A", None)]),  # an empty format is no format
    ("{A:x:y}", [("A", "x:y")]),  # the format runs to the closing brace
    ("{A,5}", [("A", None)]),
    ("{A,-5:x}", [("A", "x")]),
    ("{A,0}", []),  # zero width: text
    ("{A,5-}", []),  # a dash that is not leading: text
    ("{A,}", []),
    ("{A,:x}", []),
    ("{A B}", []),  # a space is not valid in a name
    ("{A-B}", []),
    ("{}", []),
    ("{@}", []),
    ("{{A}}", []),
    ("{{{A}}}", [("A", None)]),
    ("{A", []),
    ("A}", []),
    ("{A:x y.z}", [("A", "x y.z")]),
    ("{A:x+y}", []),  # '+' is a symbol, not punctuation: text
    ("{A:€}", []),
    ("{A{B}", []),
    ("{A}{", [("A", None)]),
    ("{😀}", []),  # a surrogate pair in .NET: never a name
]


@pytest.mark.parametrize(("template", "tokens"), TOKENS)
def test_template_tokens_follow_serilog(
    template: str, tokens: list[tuple[str, str | None]]
) -> None:
    assert list(property_tokens(template)) == tokens
    assert formatted_tokens(template) == [(n, f) for n, f in tokens if f is not None]


# --- errors -------------------------------------------------------------------------------------

EVENT_ERRORS: list[tuple[object, str]] = [
    (1, "not a JSON object"),
    ([], "not a JSON object"),
    ("event", "not a JSON object"),
    (None, "not a JSON object"),
    ({}, "missing Timestamp"),
    ({"Timestamp": None}, "missing Timestamp"),
    ({"Timestamp": 1714564800}, "Timestamp must be a string"),
    ({"Timestamp": "yesterday"}, "Timestamp is not a valid timestamp: 'yesterday'"),
    ({"Timestamp": "2024-02-30"}, "Timestamp is not a valid timestamp: '2024-02-30'"),
    ({"Timestamp": T, "Level": 3}, "Level must be a string"),
    ({"Timestamp": T, "MessageTemplate": ["x"]}, "MessageTemplate must be a string"),
    ({"Timestamp": T, "RenderedMessage": 1}, "RenderedMessage must be a string"),
    ({"Timestamp": T, "Exception": {"Message": "x"}}, "Exception must be a string"),
    ({"Timestamp": T, "TraceId": 1}, "TraceId must be a string"),
    ({"Timestamp": T, "SpanId": False}, "SpanId must be a string"),
    ({"Timestamp": T, "EventType": 1.5}, "EventType must be an integer or a string"),
    ({"Timestamp": T, "EventType": True}, "EventType must be an integer or a string"),
    ({"Timestamp": T, "Properties": [1]}, "Properties must be an object"),
    ({"Timestamp": T, "Properties": "x"}, "Properties must be an object"),
]
RENDERINGS_PROBLEM = (
    'Renderings must map property names to arrays of {"Format", "Rendering"} objects'
)
BAD_RENDERINGS: list[object] = [
    [],
    {"A": {"Format": "x", "Rendering": "y"}},
    {"A": ["x"]},
    {"A": [{"Format": "x"}]},
    {"A": [{"Format": 1, "Rendering": "y"}]},
    {"A": [{"Format": "x", "Rendering": None}]},
]
EVENT_ERRORS += [({"Timestamp": T, "Renderings": r}, RENDERINGS_PROBLEM) for r in BAD_RENDERINGS]


@pytest.mark.parametrize(("bad", "reason"), EVENT_ERRORS)
def test_a_bad_event_is_named_by_its_position(bad: object, reason: str) -> None:
    data = body({"Timestamp": T}, {"Timestamp": T}, bad, {"Timestamp": T})
    assert rejection(data) == (3, reason)


BODY_ERRORS: list[tuple[bytes, str]] = [
    (b"", "invalid JSON: "),
    (b"{", "invalid JSON: "),
    (b'{"Events":[]} x', "invalid JSON: "),
    (b'{"Events":[NaN]}', "invalid JSON: "),
    (
        b'{"Events":[{"Timestamp":"' + T.encode() + b'","Properties":{"F":1e400}}]}',
        "invalid JSON: ",
    ),
    (b"\xff{}", "invalid UTF-8: invalid start byte at byte 1"),
    (b'{"Events":["\xc3\x28"]}', "invalid UTF-8: invalid continuation byte at byte 13"),
    (b"[]", 'the body is not a JSON object with an "Events" array'),
    (b'"Events"', 'the body is not a JSON object with an "Events" array'),
    (b"{}", 'the body has no "Events" array'),
    (b'{"Events":null}', 'the body has no "Events" array'),
    (b'{"Event":[]}', 'the body has no "Events" array'),
    (b'{"Events":{}}', '"Events" must be an array'),
    (b'{"events":"x"}', '"Events" must be an array'),
]


@pytest.mark.parametrize(("data", "reason"), BODY_ERRORS)
def test_a_bad_body_is_event_1(data: bytes, reason: str) -> None:
    line, got = rejection(data)
    assert line == 1
    assert got.startswith(reason) if reason.endswith(": ") else got == reason


@pytest.mark.parametrize(
    "literal",
    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400"],
)
def test_non_json_numbers_are_refused_on_the_exact_path_too(literal: bytes) -> None:
    # The 22-digit integer sends the body through the standard-library reader.
    data = b'{"Events":[{"Timestamp":"%s","Properties":{"B":1234567890123456789012,"F":%s}}]}'
    line, reason = rejection(data % (T.encode(), literal))
    assert (line, reason.split(":")[0]) == (1, "invalid JSON")


def test_a_lone_surrogate_is_refused() -> None:
    orjson_path = b'{"Events":[{"Timestamp":"%s","Properties":{"S":"\\ud800"}}]}' % T.encode()
    assert rejection(orjson_path)[0] == 1
    assert rejection(orjson_path)[1].startswith("invalid JSON: ")
    exact_path = (
        b'{"Events":[{"Timestamp":"%s"},{"Timestamp":"%s","Properties":'
        b'{"B":1234567890123456789012,"S":"\\ud800"}}]}' % (T.encode(), T.encode())
    )
    assert rejection(exact_path) == (2, "a string holds a lone surrogate")


def test_what_the_store_refuses_is_numbered_as_the_event() -> None:
    deep: object = 1
    for _ in range(70):
        deep = [deep]
    clef = decode_seq_json(body({"Timestamp": T}, {"Timestamp": T, "Properties": {"D": deep}}))
    with pytest.raises(InvalidEvents) as caught:
        shred(clef)
    assert (caught.value.line, caught.value.reason) == (2, "nesting deeper than 64")
