"""The reference CLEF shredder against the rules it documents, one table per rule."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqfast.errors import InvalidEvents
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
    Column,
)
from seqfast.storage.ids import format_ticks
from seqfast.testing.reference_clef import parse_timestamp, shred

T = '"@t":"2024-05-01T12:00:00Z"'


def event(*members: str) -> bytes:
    """One CLEF line: `@t` then `members` (each `"key":value` text)."""
    return ("{" + ",".join((T, *members)) + "}").encode()


def rejection(data: bytes, max_event_bytes: int = 262144) -> tuple[int, str]:
    with pytest.raises(InvalidEvents) as caught:
        shred(data, max_event_bytes)
    assert str(caught.value) == f"line {caught.value.line}: {caught.value.reason}"
    return caught.value.line, caught.value.reason


def value_of(column: Column, row: int) -> tuple[int, object]:
    """(tag, value) of one row, read back through the sparse layout."""
    tag = int(column.tags[row])
    before = column.tags[:row]
    if tag in (TAG_INT, TAG_FLOAT):
        num = int(column.nums[int(np.isin(before, (TAG_INT, TAG_FLOAT)).sum())])
        return tag, num if tag == TAG_INT else struct.unpack("<d", struct.pack("<q", num))[0]
    if tag in (TAG_STRING, TAG_JSON, TAG_BIGINT):
        j = int(np.isin(before, (TAG_STRING, TAG_JSON, TAG_BIGINT)).sum())
        return tag, column.str_data[column.str_offsets[j] : column.str_offsets[j + 1]]
    return tag, None


def only_value(text: str) -> tuple[int, object]:
    batch = shred(event(f'"v":{text}'))
    assert list(batch.columns) == ["v"]
    return value_of(batch.columns["v"], 0)


# --- timestamps -------------------------------------------------------------------------------

TIMESTAMPS: list[tuple[str, str]] = [
    # separators, seconds and zone designators
    ("2024-05-01T12:34:56Z", "2024-05-01T12:34:56.0000000Z"),
    ("2024-05-01t12:34:56z", "2024-05-01T12:34:56.0000000Z"),
    ("2024-05-01 12:34:56", "2024-05-01T12:34:56.0000000Z"),
    ("2024-05-01T12:34", "2024-05-01T12:34:00.0000000Z"),
    ("2024-05-01T12:34Z", "2024-05-01T12:34:00.0000000Z"),
    ("2024-05-01", "2024-05-01T00:00:00.0000000Z"),
    # fractions: 1 to 9 digits, truncated past the seventh
    ("2024-05-01T12:34:56.5Z", "2024-05-01T12:34:56.5000000Z"),
    ("2024-05-01T12:34:56.000000Z", "2024-05-01T12:34:56.0000000Z"),
    ("2024-05-01T12:34:56.1234567Z", "2024-05-01T12:34:56.1234567Z"),
    ("2024-05-01T12:34:56.12345678Z", "2024-05-01T12:34:56.1234567Z"),
    ("2024-05-01T12:34:56.999999999Z", "2024-05-01T12:34:56.9999999Z"),
    ("2024-05-01T12:34:56.000000099", "2024-05-01T12:34:56.0000000Z"),
    # offsets in every spelling
    ("2024-05-01T12:34:56+02:00", "2024-05-01T10:34:56.0000000Z"),
    ("2024-05-01T12:34:56-05:30", "2024-05-01T18:04:56.0000000Z"),
    ("2024-05-01T12:34:56+0530", "2024-05-01T07:04:56.0000000Z"),
    ("2024-05-01T12:34:56+05", "2024-05-01T07:34:56.0000000Z"),
    ("2024-05-01T12:34:56-00:00", "2024-05-01T12:34:56.0000000Z"),
    ("2024-05-01T12:34+23:59", "2024-04-30T12:35:00.0000000Z"),
    ("2024-05-01 12:34:56.25-0100", "2024-05-01T13:34:56.2500000Z"),
    # offsets crossing midnight, month, year and a leap day
    ("2024-01-01T00:30:00+01:00", "2023-12-31T23:30:00.0000000Z"),
    ("2023-12-31T23:30:00-01:00", "2024-01-01T00:30:00.0000000Z"),
    ("2024-02-28T23:00:00-02:00", "2024-02-29T01:00:00.0000000Z"),
    ("2024-03-01T01:00:00+02:00", "2024-02-29T23:00:00.0000000Z"),
    ("2023-03-01T01:00:00+02:00", "2023-02-28T23:00:00.0000000Z"),
    # leap days
    ("2024-02-29", "2024-02-29T00:00:00.0000000Z"),
    ("2000-02-29T12:00:00Z", "2000-02-29T12:00:00.0000000Z"),
    # before the Unix epoch, and the ends of the range
    ("1969-12-31T23:59:59.9999999Z", "1969-12-31T23:59:59.9999999Z"),
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.0000000Z"),
    ("0001-01-01", "0001-01-01T00:00:00.0000000Z"),
    ("0001-01-01T00:00:00-01:00", "0001-01-01T01:00:00.0000000Z"),
    ("9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59.9999999Z"),
    ("9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59.9999999Z"),
    ("9999-12-31T23:59:59+01:00", "9999-12-31T22:59:59.0000000Z"),
]

INVALID_TIMESTAMPS: list[str] = [
    "",
    "2024",
    "2024-05",
    "20240501",
    "2024-5-01",
    "2024-05-1",
    "02024-05-01",
    "0000-01-01",  # no year 0
    "2024-00-10",
    "2024-13-01",
    "2024-04-31",
    "2024-01-32",
    "2023-02-29",  # not a leap year
    "1900-02-29",  # divisible by 100, not by 400
    "2024-05-01T",
    "2024-05-01T12",
    "2024-05-01T1:00",
    "2024-05-01T24:00",
    "2024-05-01T23:60",
    "2024-05-01T23:59:60",  # no leap seconds
    "2024-05-01T12:00:00.",
    "2024-05-01T12:00:00.1234567890",  # ten digits
    "2024-05-01T12:00.5",  # a fraction needs seconds
    "2024-05-01T12:00:00,5",
    "2024-05-01Z",  # a date alone takes no zone
    "2024-05-01+01:00",
    "2024-05-01  12:00",
    "2024-05-01_12:00",
    " 2024-05-01",
    "2024-05-01 ",
    "2024-05-01T12:00:00Z ",
    "2024-05-01T12:00:00ZZ",
    "2024-05-01T12:00:00UTC",
    "2024-05-01T12:00:00+1",
    "2024-05-01T12:00:00+01:0",
    "2024-05-01T12:00:00+010",
    "2024-05-01T12:00:00+01:",
    "2024-05-01T12:00:00+01:00:00",
    "2024-05-01T12:00:00+24:00",
    "2024-05-01T12:00:00+01:60",
    "2024-05-01T12:00:00 +01:00",
    "2024-05-01T12:00:00\n",
    "２０２４-05-01",  # digits other than ASCII
    "2024-05-01T12:00:00.１",
    # in range locally, out of range once the offset is applied
    "0001-01-01T00:00:00+00:01",
    "0001-01-01T00:59:59.9999999+01:00",
    "9999-12-31T23:30:00-01:00",
    "9999-12-31T23:59:59.9999999-00:01",
]


@pytest.mark.parametrize(("text", "utc"), TIMESTAMPS)
def test_timestamp_forms(text: str, utc: str) -> None:
    ticks = parse_timestamp(text)
    assert ticks is not None
    assert format_ticks(ticks) == utc
    batch = shred(('{"@t":' + json.dumps(text) + "}").encode())
    assert batch.ts.tolist() == [ticks]


def test_timestamp_ticks_are_counted_from_the_unix_epoch() -> None:
    assert parse_timestamp("1970-01-01T00:00:00Z") == 0
    assert parse_timestamp("1970-01-01T00:00:00.0000001Z") == 1
    assert parse_timestamp("1969-12-31T23:59:59.9999999Z") == -1
    assert parse_timestamp("0001-01-01T00:00:00Z") == -621_355_968_000_000_000
    assert parse_timestamp("9999-12-31T23:59:59.9999999Z") == 2_534_023_007_999_999_999


@pytest.mark.parametrize("text", INVALID_TIMESTAMPS)
def test_invalid_timestamps(text: str) -> None:
    assert parse_timestamp(text) is None
    line = ('{"@t":' + json.dumps(text, ensure_ascii=False) + "}").encode()
    assert rejection(line) == (1, f"@t is not a valid timestamp: '{text}'")
    line = event('"@st":' + json.dumps(text, ensure_ascii=False))
    assert rejection(line) == (1, f"@st is not a valid timestamp: '{text}'")


def test_timestamp_is_read_after_unescaping() -> None:
    batch = shred(b'{"@t":"\\u0032024-05-01\\u0020\\u0031\\u0032:00"}')
    assert batch.ts.tolist() == [parse_timestamp("2024-05-01T12:00")]


# --- values -----------------------------------------------------------------------------------


VALUES: list[tuple[str, int, object]] = [
    ("null", TAG_NULL, None),
    ("false", TAG_FALSE, None),
    ("true", TAG_TRUE, None),
    # integers
    ("0", TAG_INT, 0),
    ("-0", TAG_INT, 0),
    ("42", TAG_INT, 42),
    ("-42", TAG_INT, -42),
    ("9223372036854775807", TAG_INT, 2**63 - 1),
    ("-9223372036854775808", TAG_INT, -(2**63)),
    ("9223372036854775808", TAG_BIGINT, b"9223372036854775808"),
    ("-9223372036854775809", TAG_BIGINT, b"-9223372036854775809"),
    ("18446744073709551616", TAG_BIGINT, b"18446744073709551616"),
    ("1" + "0" * 5000, TAG_BIGINT, b"1" + b"0" * 5000),
    ("-" + "9" * 400, TAG_BIGINT, b"-" + b"9" * 400),
    # anything with a fraction or an exponent is a double
    ("1.5", TAG_FLOAT, 1.5),
    ("1.50", TAG_FLOAT, 1.5),
    ("1.0", TAG_FLOAT, 1.0),
    ("1e5", TAG_FLOAT, 100000.0),
    ("1E+5", TAG_FLOAT, 100000.0),
    ("25e-1", TAG_FLOAT, 2.5),
    ("-0.0", TAG_FLOAT, -0.0),
    ("-0e0", TAG_FLOAT, -0.0),
    ("0.0", TAG_FLOAT, 0.0),
    ("0.1", TAG_FLOAT, 0.1),
    ("9223372036854775807.0", TAG_FLOAT, 9223372036854775807.0),
    ("1e-400", TAG_FLOAT, 0.0),
    ("-1e-400", TAG_FLOAT, -0.0),
    ("4.9e-324", TAG_FLOAT, 5e-324),
    ("2.4703282292062328e-324", TAG_FLOAT, 5e-324),  # just above half the least subnormal
    ("1.7976931348623157e308", TAG_FLOAT, 1.7976931348623157e308),
    ("1.7976931348623158e308", TAG_FLOAT, 1.7976931348623157e308),  # rounds down, not to inf
    ("0." + "0" * 3000 + "1e3000", TAG_FLOAT, 0.1),
    ("9007199254740993.0", TAG_FLOAT, 9007199254740992.0),  # ties to even
    # strings are unescaped and stored as UTF-8
    ('""', TAG_STRING, b""),
    ('"abc"', TAG_STRING, b"abc"),
    (r'"\"\\\/\b\f\n\r\t"', TAG_STRING, b'"\\/\b\f\n\r\t'),
    (r'"\u00e9\u00E9é"', TAG_STRING, "ééé".encode()),
    (r'"\u0000"', TAG_STRING, b"\x00"),
    (r'"\uD83D\uDE00\ud83d\ude00😀"', TAG_STRING, "😀😀😀".encode()),
    (r'"\uDBFF\uDFFF"', TAG_STRING, "\U0010ffff".encode()),
    (r'"\uFFFF\u0800"', TAG_STRING, "\uffff\u0800".encode()),
    ('"\x7f"', TAG_STRING, b"\x7f"),
    ('"a b  c"', TAG_STRING, b"a b  c"),
    # objects and arrays: minified, strings and numbers exactly as written
    ("[]", TAG_JSON, b"[]"),
    ("{}", TAG_JSON, b"{}"),
    ("[ ]", TAG_JSON, b"[]"),
    ("[ 1 ,\t2 ,\r3 ]", TAG_JSON, b"[1,2,3]"),
    ('{ "a" : [ ] , "b" : { } }', TAG_JSON, b'{"a":[],"b":{}}'),
    ("[1.50, -0, 1E+5, -0.0]", TAG_JSON, b"[1.50,-0,1E+5,-0.0]"),
    ('[ "a b" , " \\t\\u0020 " ]', TAG_JSON, b'["a b"," \\t\\u0020 "]'),
    ('{"k\\"ey" : "\\\\" , "x" : "\\""}', TAG_JSON, b'{"k\\"ey":"\\\\","x":"\\""}'),
    ('{"x":1, "x":2}', TAG_JSON, b'{"x":1,"x":2}'),  # nested duplicates are kept
    ('[{"é": ["😀", null, true, false]}]', TAG_JSON, '[{"é":["😀",null,true,false]}]'.encode()),
    ('[ "\\ud83d\\ude00" ]', TAG_JSON, b'["\\ud83d\\ude00"]'),
    ("[" + "9" * 30 + "]", TAG_JSON, b"[" + b"9" * 30 + b"]"),
]


@pytest.mark.parametrize(("text", "tag", "expected"), VALUES, ids=[v[0][:40] for v in VALUES])
def test_value_tags(text: str, tag: int, expected: object) -> None:
    got_tag, got = only_value(text)
    assert got_tag == tag
    if tag == TAG_FLOAT:
        assert isinstance(got, float)
        assert isinstance(expected, float)
        assert struct.pack("<d", got) == struct.pack("<d", expected)  # -0.0 differs from 0.0
    else:
        assert got == expected


def test_layout_is_sparse_and_columns_are_ordered_by_first_appearance() -> None:
    data = b"\n".join(
        [
            event('"b":1', '"a":"x"'),
            event('"c":[1, 2]', '"b":2.5'),
            event(),
            event('"a":"yy"', '"d":99999999999999999999', '"b":null', '"c":true'),
        ]
    )
    batch = shred(data)
    assert batch.n == 4
    assert batch.ts.dtype == np.int64
    assert batch.seq.dtype == np.int64
    assert batch.seq.tolist() == [0, 1, 2, 3]
    assert batch.ts.tolist() == [parse_timestamp("2024-05-01T12:00:00Z")] * 4
    assert list(batch.columns) == ["b", "a", "c", "d"]
    b, a, c, d = (batch.columns[k] for k in "bacd")
    for column in (a, b, c, d):
        assert column.tags.dtype == np.uint8
        assert column.nums.dtype == np.int64
        assert column.str_offsets.dtype == np.int64
    assert b.tags.tolist() == [TAG_INT, TAG_FLOAT, TAG_ABSENT, TAG_NULL]
    assert b.nums.tolist() == [1, struct.unpack("<q", struct.pack("<d", 2.5))[0]]
    assert b.str_offsets.tolist() == [0]
    assert b.str_data == b""
    assert a.tags.tolist() == [TAG_STRING, TAG_ABSENT, TAG_ABSENT, TAG_STRING]
    assert a.nums.tolist() == []
    assert a.str_offsets.tolist() == [0, 1, 3]
    assert a.str_data == b"xyy"
    assert c.tags.tolist() == [TAG_ABSENT, TAG_JSON, TAG_ABSENT, TAG_TRUE]
    assert c.str_offsets.tolist() == [0, 5]
    assert c.str_data == b"[1,2]"
    assert d.tags.tolist() == [TAG_ABSENT, TAG_ABSENT, TAG_ABSENT, TAG_BIGINT]
    assert d.str_data == b"99999999999999999999"


def test_keys_are_named_unescaped_and_at_t_is_never_a_column() -> None:
    batch = shred(
        event(
            r'"@@m":1',
            r'"\u0040l":"WRN"',
            r'"@foo":{}',
            r'"a\"b":2',
            r'"\uD83D\uDE00":3',
            r'"":4',
            r'"\u0000":5',
        )
    )
    assert list(batch.columns) == ["@@m", "@l", "@foo", 'a"b', "😀", "", "\x00"]
    assert shred(b'{"\\u0040t":"2024-05-01"}').columns == {}


def test_reified_fields_are_columns_like_any_other() -> None:
    batch = shred(
        event(
            '"@m":"m"',
            '"@mt":"t {X}"',
            '"@l":"Warning"',
            '"@x":"boom"',
            '"@i":12',
            '"@r":["a"]',
            '"@tr":"0af7651916cd43dd8448eb211c80319c"',
            '"@sp":"b7ad6b7169203331"',
            '"@ps":"00f067aa0ba902b7"',
            '"@sk":"Server"',
            '"@st":"2024-05-01T11:59:59Z"',
            '"@ra":{"service.name":"x"}',
            '"@sa":{ }',
        )
    )
    assert [(k, value_of(c, 0)[0]) for k, c in batch.columns.items()] == [
        ("@m", TAG_STRING),
        ("@mt", TAG_STRING),
        ("@l", TAG_STRING),
        ("@x", TAG_STRING),
        ("@i", TAG_INT),
        ("@r", TAG_JSON),
        ("@tr", TAG_STRING),
        ("@sp", TAG_STRING),
        ("@ps", TAG_STRING),
        ("@sk", TAG_STRING),
        ("@st", TAG_STRING),
        ("@ra", TAG_JSON),
        ("@sa", TAG_JSON),
    ]
    assert value_of(batch.columns["@st"], 0)[1] == b"2024-05-01T11:59:59Z"  # stored as given
    assert value_of(batch.columns["@sa"], 0)[1] == b"{}"
    for i in ('"12"', "-0", "99999999999999999999", '"x"'):
        assert shred(event(f'"@i":{i}')).n == 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\n",
        b"\r\n",
        b" \t \r\n\n\t\r",
        b"\r\r",  # one CR is the terminator's, the other whitespace
    ],
)
def test_payloads_with_no_events(data: bytes) -> None:
    batch = shred(data)
    assert batch.n == 0
    assert batch.ts.tolist() == []
    assert batch.ts.dtype == np.int64
    assert batch.seq.dtype == np.int64
    assert batch.columns == {}


@pytest.mark.parametrize(
    "data",
    [
        event() + b"\n" + event(),
        event() + b"\n" + event() + b"\n",
        event() + b"\r\n" + event() + b"\r\n",
        event() + b"\r\n" + event(),
        b"\n\n" + event() + b"\n \t\n\r\n" + event() + b"\n\n",
        b" \t" + event() + b" \r\r\n\t" + event() + b"\t",
    ],
)
def test_line_terminators_blank_lines_and_surrounding_whitespace(data: bytes) -> None:
    assert shred(data).n == 2


# --- rejections -------------------------------------------------------------------------------


def deep(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


REJECTIONS: list[tuple[bytes, int, str]] = [
    # JSON syntax: the reason text after "invalid JSON" is free, so only the prefix is checked
    *[
        (event(f'"v":{text}'), 1, "invalid JSON:")
        for text in [
            "NaN",
            "Infinity",
            "-Infinity",
            "01",
            "-01",
            "00",
            "1.",
            ".5",
            "1.e5",
            "1e",
            "1e+",
            "+1",
            "-",
            "0x10",
            "1_000",
            "tru",
            "True",
            "nul",
            "undefined",
            "'a'",
            '"a',
            '"a\x01"',
            '"a\tb"',  # raw control characters, tab included
            '"\x1f"',
            r'"\x41"',
            r'"\'"',
            r'"\U0041"',
            r'"\u12"',
            r'"\u12G4"',
            r'"\ud800"',  # lone surrogates
            r'"\udc00"',
            r'"\udc00\ud800"',
            r'"\ud800\u0041"',
            r'"\ud800\n"',
            r'"\ud800x"',
            r'"\ud800\ud800"',
            "[1,]",
            "[,1]",
            "[1 2]",
            "{,}",
            '{"a":1,}',
            '{"a" 1}',
            '{"a":}',
            "{a:1}",
            "{'a':1}",
            '{"a":1 "b":2}',
            "[1]]",
            "[1}",
            "1 // comment",
            "/* comment */ 1",
            "1e400",  # number out of range
            "-1e400",
            "1" + "0" * 400 + ".0",
            "\xa0 1",  # only space, tab, CR and LF are JSON whitespace
            "\x0c1",
            "\x0b1",
        ]
    ],
    (b"{", 1, "invalid JSON:"),
    (b"}", 1, "invalid JSON:"),
    (b"x", 1, "invalid JSON:"),
    (b'{"@t":"2024-05-01"', 1, "invalid JSON:"),
    (event() + b" {}", 1, "invalid JSON:"),
    (event() + event(), 1, "invalid JSON:"),
    (event() + b",", 1, "invalid JSON:"),
    (b"\xef\xbb\xbf" + event(), 1, "invalid JSON:"),  # a byte order mark is not whitespace
    (b'{"@t":"2024-05-01","a":1}\x00', 1, "invalid JSON:"),
    # UTF-8, checked over the whole line before any JSON
    (b'{"@t":"2024-05-01","v":"\xff"}', 1, "invalid UTF-8:"),
    (b'{"@t":"2024-05-01","v":"\xc0\xaf"}', 1, "invalid UTF-8:"),  # overlong '/'
    (b'{"@t":"2024-05-01","v":"\xe0\x80\xaf"}', 1, "invalid UTF-8:"),
    (b'{"@t":"2024-05-01","v":"\xf0\x80\x80\xaf"}', 1, "invalid UTF-8:"),
    (b'{"@t":"2024-05-01","v":"\xed\xa0\x80"}', 1, "invalid UTF-8:"),  # encoded surrogate
    (b'{"@t":"2024-05-01","v":"\xed\xbf\xbf"}', 1, "invalid UTF-8:"),
    (b'{"@t":"2024-05-01","v":"\xf4\x90\x80\x80"}', 1, "invalid UTF-8:"),  # above U+10FFFF
    (b'{"@t":"2024-05-01","v":"\xf5\x80\x80\x80"}', 1, "invalid UTF-8:"),
    (b'{"@t":"2024-05-01","v":"\xe2\x82"}', 1, "invalid UTF-8:"),  # truncated sequence
    (b'{"@t":"2024-05-01","v":"\x80"}', 1, "invalid UTF-8:"),  # lone continuation byte
    (b'{"@t":"2024-05-01"}\xff', 1, "invalid UTF-8:"),  # outside any string
    (b'{"@t":"2024-05-01", \xff}', 1, "invalid UTF-8:"),
    (b'{"@t":\xff "2024-05-01"', 1, "invalid UTF-8:"),  # UTF-8 wins over a later JSON error
    # not an object
    (b"[]", 1, "not a JSON object"),
    (b'"{}"', 1, "not a JSON object"),
    (b"1", 1, "not a JSON object"),
    (b"null", 1, "not a JSON object"),
    (b" [" + event() + b"] ", 1, "not a JSON object"),
    # nesting: the event is depth 1, so 63 nested arrays inside it are the most allowed
    (event(f'"v":{deep(64)}'), 1, "nesting deeper than 64"),
    (event(f'"v":{deep(63, "{}")}'), 1, "nesting deeper than 64"),
    (event(f'"v":{deep(1000)}'), 1, "nesting deeper than 64"),
    (deep(65).encode(), 1, "nesting deeper than 64"),  # before "not a JSON object"
    (event(f'"v":{deep(64)[:-1]}'), 1, "nesting deeper than 64"),  # before a later JSON error
    (event(f'"v":x,"w":{deep(64)}'), 1, "invalid JSON:"),  # after an earlier JSON error
    # duplicate keys, compared after unescaping; the first repeat in reading order is named
    (event('"a":1', '"a":1'), 1, "duplicate key 'a'"),
    (event('"a":1', r'"\u0061":2'), 1, "duplicate key 'a'"),
    (event('"b":1', '"a":1', '"a":2', '"b":2'), 1, "duplicate key 'a'"),
    (event('"@t":"2024-05-01"'), 1, "duplicate key '@t'"),
    (event('"@m":"x"', '"@m":1'), 1, "duplicate key '@m'"),
    (event('"":1', '"":2'), 1, "duplicate key ''"),
    (event('"a:b":1', '"a:b":2'), 1, "duplicate key 'a:b'"),
    # @t
    (b"{}", 1, "missing @t"),
    (b'{"@T":"2024-05-01"}', 1, "missing @t"),
    (b'{"@@t":"2024-05-01"}', 1, "missing @t"),
    (b'{"v":{"@t":"2024-05-01"}}', 1, "missing @t"),
    (b'{"@t":20240501}', 1, "@t is not a string"),
    (b'{"@t":null}', 1, "@t is not a string"),
    (b'{"@t":["2024-05-01"]}', 1, "@t is not a string"),
    (b'{"@t":"yesterday"}', 1, "@t is not a valid timestamp: 'yesterday'"),
    (b'{"@t":"2024-05-01\\n"}', 1, "@t is not a valid timestamp: '2024-05-01\n'"),
    # reified fields, checked in reading order
    *[
        (event(f'"{key}":{bad}'), 1, f"{key} must be a string")
        for key in ("@m", "@mt", "@x", "@tr", "@sp", "@ps", "@sk", "@st", "@l")
        for bad in ("1", "null", "true", "[]", '{"a":"b"}')
    ],
    *[
        (event(f'"@i":{bad}'), 1, "@i must be a string or an integer")
        for bad in ("1.0", "1e3", "-0.0", "null", "false", "[1]", "{}")
    ],
    *[(event(f'"@r":{bad}'), 1, "@r must be an array") for bad in ('"a"', "{}", "null", "1")],
    *[
        (event(f'"{key}":{bad}'), 1, f"{key} must be an object")
        for key in ("@ra", "@sa")
        for bad in ("[]", '"a"', "null", "1")
    ],
    (event('"@l":1', '"@m":2'), 1, "@l must be a string"),
    (event('"@m":2', '"@l":1'), 1, "@m must be a string"),
    (event('"@st":"soon"', '"@i":1.5'), 1, "@st is not a valid timestamp: 'soon'"),
    # members are checked in reading order, duplicates and @t included; a missing @t comes last
    (b'{"@m":1,"@t":"bad"}', 1, "@m must be a string"),
    (b'{"@t":"bad","@m":1}', 1, "@t is not a valid timestamp: 'bad'"),
    (b'{"@t":"bad","@t":"2024-05-01"}', 1, "@t is not a valid timestamp: 'bad'"),
    (b'{"@t":1,"@t":"2024-05-01"}', 1, "@t is not a string"),
    (b'{"a":1,"@l":2,"a":2}', 1, "@l must be a string"),
    (b'{"a":1,"a":2,"@l":2}', 1, "duplicate key 'a'"),
    (b'{"@m":"x","@m":1}', 1, "duplicate key '@m'"),
    (b'{"@m":1}', 1, "@m must be a string"),
    (b'{"a":1,"a":2}', 1, "duplicate key 'a'"),
    # line numbers count every line, blank ones included, whatever the terminator
    (b"\n\n  \n{", 4, "invalid JSON:"),
    (event() + b"\r\n\r\n" + event() + b"\r\n{}\r\n", 4, "missing @t"),
    (event() + b"\n" + event() + b"\n[]", 3, "not a JSON object"),
    (event() + b"\n\t\n" + b"{}\n" + b"[]\n", 3, "missing @t"),  # the first bad line wins
    (event() + b"\r\r\n{}", 2, "missing @t"),
    (event() + b"\r" + event(), 1, "invalid JSON:"),  # a lone CR does not end a line
]


@pytest.mark.parametrize(
    ("data", "line", "reason"), REJECTIONS, ids=[repr(r[0])[:60] for r in REJECTIONS]
)
def test_rejections(data: bytes, line: int, reason: str) -> None:
    got_line, got_reason = rejection(data)
    assert got_line == line
    if reason.endswith(":"):
        assert got_reason.startswith(reason), got_reason
    else:
        assert got_reason == reason


def test_out_of_range_numbers_are_invalid_json() -> None:
    assert rejection(event('"v":1e400'))[1].startswith("invalid JSON: number out of range")


def test_nesting_of_64_is_accepted() -> None:
    assert only_value(deep(63)) == (TAG_JSON, deep(63).encode())
    assert only_value(deep(62, "{}")) == (TAG_JSON, deep(62, "{}").encode())


@pytest.mark.parametrize(
    ("data", "limit", "line", "reason"),
    [
        (b"x" * 11, 10, 1, "event of 11 bytes exceeds the limit of 10 bytes"),
        (b" " * 11, 10, 1, "event of 11 bytes exceeds the limit of 10 bytes"),  # even if blank
        (event() + b"\n" + event(), len(event()) - 1, 1, None),
        (b"\n" + event() + b"\r\n", len(event()) - 1, 2, None),
        (b"\n{}\n" + b" " * 10, 10, 2, "missing @t"),  # the first bad line wins
        (b"\n\n" + b" " * 11, 10, 3, "event of 11 bytes exceeds the limit of 10 bytes"),
        (b"\xff" * 11, 10, 1, "event of 11 bytes exceeds the limit of 10 bytes"),
    ],
)
def test_oversized_lines(data: bytes, limit: int, line: int, reason: str | None) -> None:
    expected = f"event of {len(event())} bytes exceeds the limit of {limit} bytes"
    assert rejection(data, limit) == (line, reason or expected)


@pytest.mark.parametrize("terminator", [b"\n", b"\r\n"])
@pytest.mark.parametrize("final", [True, False])
def test_lines_of_exactly_the_limit_are_accepted(terminator: bytes, final: bool) -> None:
    data = event() + terminator + event() + (terminator if final else b"")
    assert shred(data, max_event_bytes=len(event())).n == 2


def test_default_limit_is_256_kib() -> None:
    filler = 262144 - len(event('"v":""'))
    assert shred(event('"v":"' + "x" * filler + '"')).n == 1
    assert rejection(event('"v":"' + "x" * (filler + 1) + '"')) == (
        1,
        "event of 262145 bytes exceeds the limit of 262144 bytes",
    )


# --- generated events: what json.dumps writes, the shredder must read back ---------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
# Reified keys have type rules of their own; `@@` keys are free-form.
user_keys = st.text(max_size=8).filter(lambda k: not k.startswith("@") or k.startswith("@@"))


def expected_row(value: Any, ensure_ascii: bool) -> tuple[int, object]:
    if value is None:
        return TAG_NULL, None
    if value is True or value is False:
        return (TAG_TRUE if value else TAG_FALSE), None
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return TAG_INT, value
        return TAG_BIGINT, str(value).encode()
    if isinstance(value, float):
        return TAG_FLOAT, value
    if isinstance(value, str):
        return TAG_STRING, value.encode()
    compact = json.dumps(value, ensure_ascii=ensure_ascii, separators=(",", ":"))
    return TAG_JSON, compact.encode()


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(st.dictionaries(user_keys, json_values, max_size=5), max_size=5),
    indent=st.sampled_from([None, 0, 2, "\t"]),
    ensure_ascii=st.booleans(),
)
def test_json_dumps_output_round_trips(
    events: list[dict[str, Any]], indent: int | str | None, ensure_ascii: bool
) -> None:
    lines = []
    for values in events:
        text = json.dumps({"@t": "2024-05-01T12:00:00Z", **values}, ensure_ascii=ensure_ascii)
        if indent is not None:  # whitespace inside the line, but still one line
            pretty = json.dumps(
                {"@t": "2024-05-01T12:00:00Z", **values}, ensure_ascii=ensure_ascii, indent=indent
            )
            text = pretty.replace("\n", " ")
        lines.append(text.encode())
    batch = shred(b"\n".join(lines))
    assert batch.n == len(events)
    names = list(dict.fromkeys(k for values in events for k in values))
    assert list(batch.columns) == names
    for name, column in batch.columns.items():
        for row, values in enumerate(events):
            if name not in values:
                assert column.tags[row] == TAG_ABSENT
                continue
            tag, got = value_of(column, row)
            want_tag, want = expected_row(values[name], ensure_ascii)
            assert tag == want_tag
            if tag == TAG_FLOAT:
                assert isinstance(got, float)
                assert isinstance(want, float)
                assert got == want
                assert math.copysign(1, got) == math.copysign(1, want)
            else:
                assert got == want
