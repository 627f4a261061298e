"""Message templates: what a user sees as an event's message, and Seq's token list."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast.events.templates import (
    PropertyToken,
    TextToken,
    escape,
    format_double,
    format_number,
    parse,
    render,
    render_value,
    tokens,
)
from seqfast.testing import reference_eval


@pytest.mark.parametrize(
    ("template", "properties", "expected"),
    [
        ("Hello {Name}", {"Name": "World"}, 'Hello "World"'),
        ("Hello {Name:l}", {"Name": "World"}, "Hello World"),
        ("Quote {Q}", {"Q": 'say "hi"'}, 'Quote "say \\"hi\\""'),
        ("{@User} and {$User}", {"User": "u"}, '"u" and "u"'),
        ("{A} {B} {C}", {"A": True, "B": False, "C": None}, "True False null"),
        ("{N} items", {"N": 42}, "42 items"),
        ("{N}", {"N": -7}, "-7"),
        ("{{Name}} {Name}", {"Name": 1}, "{Name} 1"),
        ("}} and {{", {}, "} and {"),
        ("{Missing} stays", {}, "{Missing} stays"),
        ("{0} positional", {"0": "a"}, '"a" positional'),
        ("open { brace", {}, "open { brace"),
        ("close } brace", {}, "close } brace"),
        ("{} empty", {}, "{} empty"),
        ("{ Name } spaced", {"Name": 1}, "{ Name } spaced"),
        ("{A{B}", {"B": 2}, "{A2"),
        ("{N,5}|", {"N": 1}, "    1|"),
        ("{N,-5}|", {"N": 1}, "1    |"),
        ("{S,6}|", {"S": "ab"}, '  "ab"|'),
        ("{N,2}|", {"N": 12345}, "12345|"),
        ("{N,x}|", {"N": 1}, "{N,x}|"),
        ("{N,0}|", {"N": 1}, "{N,0}|"),
        ("{N,}|", {"N": 1}, "{N,}|"),
        ("{F}", {"F": 0.1}, "0.1"),
        ("{F}", {"F": 1.0}, "1"),
        ("{F}", {"F": 1e20}, "1E+20"),
        ("{L}", {"L": [1, "a", None]}, '[1, "a", null]'),
        ("{L:l}", {"L": ["a"]}, "[a]"),
        ("{O}", {"O": {"a": 1, "b": "x"}}, '{ a: 1, b: "x" }'),
        ("{O}", {"O": {"$type": "Point", "X": 1}}, "Point { X: 1 }"),
        ("{O}", {"O": {}}, "{  }"),
        ("{N:000}", {"N": 7}, "007"),
        ("{N:x8}", {"N": 255}, "000000ff"),
        ("{N:F2}", {"N": 3.14159}, "3.14"),
        ("{N:0.00}", {"N": 2.5}, "2.50"),
        ("{D}", {"D": Decimal("1.50")}, "1.50"),
    ],
)
def test_render(template: str, properties: dict[str, Any], expected: str) -> None:
    assert render(template, properties) == expected


def test_renderings_are_used_for_formatted_tokens_in_order() -> None:
    properties = {"A": 1, "B": 2, "C": 3}
    template = "{A:000} {B} {C:x}"
    assert render(template, properties, ["first", "second"]) == "first 2 second"
    # Fewer renderings than formatted tokens: the rest are formatted here.
    assert render(template, properties, ["first"]) == "first 2 3"
    # A rendering that is not text is ignored.
    assert render(template, properties, [5, None]) == "001 2 3"


def test_a_missing_property_with_a_format_still_takes_its_rendering_slot() -> None:
    assert render("{Gone:x} {N:x}", {"N": 10}, ["r1", "r2"]) == "{Gone:x} r2"


def test_render_accepts_a_whole_clef_event() -> None:
    event = {"@t": "2024-01-01T00:00:00Z", "@mt": "Hi {User}", "User": "ann", "@l": "Warning"}
    assert render(event["@mt"], event) == 'Hi "ann"'
    assert render("{t} {mt}", event) == "{t} {mt}"


def test_parse_shapes() -> None:
    assert parse("a {{b}} {@C,-4:x} d") == (
        TextToken("a {b} ", "a {{b}} "),
        PropertyToken("C", "{@C,-4:x}", "@", -4, "x"),
        TextToken(" d", " d"),
    )
    assert parse("") == ()


def test_tokens_in_seq_shape() -> None:
    assert tokens("User {Name} has {N:000} {Gone}", {"Name": "ann", "N": 3}) == [
        {"Text": "User "},
        {"PropertyName": "Name", "RawText": "{Name}"},
        {"Text": " has "},
        {"PropertyName": "N", "RawText": "{N:000}", "FormattedValue": "003"},
        {"Text": " "},
        {"PropertyName": "Gone", "RawText": "{Gone}"},
    ]
    assert tokens("{N:x}", {"N": 1}, ["0x1"]) == [
        {"PropertyName": "N", "RawText": "{N:x}", "FormattedValue": "0x1"}
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.5, "1.5"),
        (1e14, "100000000000000"),
        (1e15, "1E+15"),
        (1234567890123456.0, "1.234567890123456E+15"),
        (0.0001, "0.0001"),
        (0.00001, "1E-05"),
        (1.5e300, "1.5E+300"),
        (5e-324, "5E-324"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
    ],
)
def test_doubles_print_as_dotnet_does(value: float, expected: str) -> None:
    assert format_double(value) == expected


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_double_text_round_trips(value: float) -> None:
    assert float(format_double(value)) == value


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        (255, "D5", "00255"),
        (-12, "D4", "-0012"),
        (255, "X", "FF"),
        (-1, "X", "FFFFFFFF"),
        (1234.5678, "F", "1234.57"),
        (1234.5678, "N", "1,234.57"),
        (1234.5678, "N0", "1,235"),
        (1234.5678, "E", "1.234568E+003"),
        (0.125, "P1", "12.5 %"),
        (1234.5678, "#,##0", "1,235"),
        (0.5, "0.0#", "0.5"),
        (2.345, "0.00", "2.35"),
        (7, "000", "007"),
        (1.5, "D", "1.5"),  # D applies to integers only: the default text
        (1.5, "yyyy-MM", "1.5"),
    ],
)
def test_number_formats(value: float, fmt: str, expected: str) -> None:
    assert format_number(value, fmt) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.decimals(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
names = st.text(alphabet="ABab01_", min_size=1, max_size=3)
template_text = st.lists(
    st.sampled_from(["{", "}", "{{", "}}", ",", ":", "-", "@", "$", "A", "b", "0", "_", " ", "5"])
    | st.text(max_size=3),
    max_size=14,
).map("".join)


@settings(max_examples=400)
@given(
    template_text,
    st.dictionaries(names, json_values, max_size=4),
    st.none() | st.lists(st.text(max_size=3) | st.integers(), max_size=3),
)
def test_render_never_raises(template: str, properties: dict[str, Any], r: Any) -> None:
    rendered = render(template, properties, r)
    assert isinstance(rendered, str)
    assert isinstance(tokens(template, properties, r), list)


@settings(max_examples=400)
@given(
    template_text,
    st.dictionaries(
        names, st.none() | st.booleans() | st.integers() | st.text(max_size=6), max_size=4
    ),
)
def test_render_agrees_with_the_reference_where_it_answers(
    template: str, properties: dict[str, Any]
) -> None:
    try:
        expected = reference_eval._render(template, properties)
    except NotImplementedError:
        return
    assert render(template, properties) == expected


@given(st.text(max_size=20))
def test_text_without_tokens_renders_as_itself_once_escaped(text: str) -> None:
    assert render(escape(text), {"A": 1}) == text


@settings(max_examples=300)
@given(
    template_text,
    st.dictionaries(names, json_values, max_size=4),
    st.none() | st.lists(st.text(max_size=3), max_size=3),
)
def test_tokens_spell_out_the_rendered_message(
    template: str, properties: dict[str, Any], r: Any
) -> None:
    # What a client shows from the tokens is the message the server renders.
    shown = []
    for token in tokens(template, properties, r):
        if "Text" in token:
            shown.append(token["Text"])
        elif "FormattedValue" in token:
            shown.append(token["FormattedValue"])
        elif token["PropertyName"] in properties:
            shown.append(render_value(properties[token["PropertyName"]]))
        else:
            shown.append(token["RawText"])
    assert "".join(shown) == render(template, properties, r)
