"""The native CLEF shredder against the pure-Python reference, on generated payloads.

Valid payloads must shred to identical batches; invalid ones must be rejected at the same line
for the same kind of reason (the text before the first ':', or the whole reason without one).
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from decimal import Decimal, localcontext

import hypothesis
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seqfast.errors import InvalidEvents
from seqfast.events.clef import shred as native_shred
from seqfast.storage.batch import TAG_BIGINT, TAG_FLOAT, TAG_INT, TAG_JSON, TAG_STRING, Batch
from seqfast.testing.reference_clef import shred as reference_shred

Shred = Callable[[bytes, int], Batch]
DEFAULT_LIMIT = 262144

# --- comparing ------------------------------------------------------------------------------


def check_batch_shape(batch: Batch) -> None:
    """The invariants of `seqfast.storage.batch` that hold for any batch."""
    assert isinstance(batch.n, int)
    for dense in (batch.ts, batch.seq):
        assert isinstance(dense, np.ndarray)
        assert dense.dtype == np.int64
        assert dense.shape == (batch.n,)
    for name, column in batch.columns.items():
        assert isinstance(name, str)
        assert name != "@t"
        assert column.tags.dtype == np.uint8
        assert column.tags.shape == (batch.n,)
        assert column.nums.dtype == np.int64
        assert column.str_offsets.dtype == np.int64
        assert isinstance(column.str_data, bytes)
        assert int(np.isin(column.tags, (TAG_INT, TAG_FLOAT)).sum()) == len(column.nums)
        strings = int(np.isin(column.tags, (TAG_STRING, TAG_JSON, TAG_BIGINT)).sum())
        assert len(column.str_offsets) == strings + 1
        assert column.str_offsets[0] == 0
        assert column.str_offsets[-1] == len(column.str_data)
        assert bool(np.all(np.diff(column.str_offsets) >= 0))


def assert_batches_equal(a: Batch, b: Batch) -> None:
    """Equal in every observable part: rows, columns and their order, and each array's values
    and dtype (FLOAT rows compare by their bits, so -0.0 and 0.0 differ)."""
    check_batch_shape(a)
    check_batch_shape(b)
    assert a.n == b.n
    np.testing.assert_array_equal(a.ts, b.ts)
    np.testing.assert_array_equal(a.seq, b.seq)
    assert list(a.columns) == list(b.columns)
    for name, x in a.columns.items():
        y = b.columns[name]
        np.testing.assert_array_equal(x.tags, y.tags, err_msg=f"tags of {name!r}")
        np.testing.assert_array_equal(x.nums, y.nums, err_msg=f"nums of {name!r}")
        np.testing.assert_array_equal(
            x.str_offsets, y.str_offsets, err_msg=f"str_offsets of {name!r}"
        )
        assert x.str_data == y.str_data, f"str_data of {name!r}"


def category(reason: str) -> str:
    """The kind of a rejection: the text before its first ':', or all of it."""
    return reason.split(":", 1)[0]


def outcome(shred: Shred, data: bytes, limit: int) -> Batch | tuple[int, str]:
    try:
        return shred(data, limit)
    except InvalidEvents as e:
        return e.line, e.reason


def note(label: str) -> None:
    """Counts an outcome for `pytest --hypothesis-show-statistics`: what the strategies reach."""
    if hypothesis.currently_in_test_context():
        hypothesis.event(re.sub(r"[0-9]+", "N", label)[:40])


def assert_same_outcome(data: bytes, limit: int = DEFAULT_LIMIT) -> None:
    expected = outcome(reference_shred, data, limit)
    got = outcome(native_shred, data, limit)
    if isinstance(expected, Batch):
        note("accepted")
        assert isinstance(got, Batch), f"the reference accepts, the native rejects: {got}"
        assert_batches_equal(got, expected)
    else:
        line, reason = expected
        note(f"rejected: {category(reason)}")
        assert not isinstance(got, Batch), f"the reference rejects at line {line}: {reason}"
        assert (got[0], category(got[1])) == (line, category(reason)), (got, expected)


# --- generating CLEF text ---------------------------------------------------------------------

# JSON whitespace that may sit between tokens of one line (no LF: that ends the line).
ws = st.sampled_from(["", "", "", "", " ", "  ", "\t", " \t ", "\r", " \r\t"])

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _u(code: int, upper: bool) -> str:
    return f"\\u{code:04X}" if upper else f"\\u{code:04x}"


@st.composite
def string_literal(draw: st.DrawFn, text: st.SearchStrategy[str] | None = None) -> str:
    """A JSON string literal of some text, each character written raw or escaped at random."""
    value = draw(text if text is not None else st.text(max_size=12))
    out = ['"']
    for ch in value:
        code = ord(ch)
        style = draw(st.integers(0, 9))
        upper = draw(st.booleans()) if style < 3 else False
        must_escape = ch in '"\\' or code < 0x20
        if not must_escape and style >= 3:
            out.append("\\/" if ch == "/" and style == 9 else ch)
        elif ch in _SHORT_ESCAPES and style % 2 == 0:
            out.append(_SHORT_ESCAPES[ch])
        elif code > 0xFFFF:
            high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
            out.append(_u(high, upper) + _u(low, upper))
        else:
            out.append(_u(code, upper))
    out.append('"')
    return "".join(out)


_INT64_EDGES = [0, 1, -1, 2**31, -(2**31), 2**53, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1]
_INT64_EDGES += [2**64 - 1, 2**64, -(2**64), 10**19, -(10**19), 10**20]

int_literal = st.one_of(
    st.integers(-1000, 1000),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from(_INT64_EDGES).flatmap(lambda v: st.integers(v - 2, v + 2)),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.integers(min_value=10**60, max_value=10**80),
).map(str) | st.just("-0")


@st.composite
def float_literal_by_grammar(draw: st.DrawFn) -> str:
    """Any JSON number with a fraction or an exponent, mostly within double range."""
    sign = draw(st.sampled_from(["", "", "-"]))
    whole = draw(
        st.sampled_from(["0", "0", "1"]) | st.from_regex(r"[1-9][0-9]{0,24}", fullmatch=True)
    )
    fraction = draw(st.none() | st.from_regex(r"\.[0-9]{1,25}", fullmatch=True))
    exponent = draw(
        st.none()
        | st.tuples(
            st.sampled_from(["e", "E"]),
            st.sampled_from(["", "+", "-"]),
            st.integers(0, 40) | st.integers(280, 330),
            st.sampled_from(["", "", "0", "00"]),
        ).map(lambda t: f"{t[0]}{t[1]}{t[3]}{t[2]}")
    )
    if fraction is None and exponent is None:
        fraction = ".0"
    return f"{sign}{whole}{fraction or ''}{exponent or ''}"


@st.composite
def float_literal_near_a_tie(draw: st.DrawFn) -> str:
    """Decimal text at or next to the midpoint of two adjacent doubles, or a double's exact
    expansion: the inputs where a decimal-to-double conversion rounds wrongly if it is not exact."""
    x = draw(st.floats(min_value=0.0, allow_infinity=False, allow_nan=False))
    up = math.nextafter(x, math.inf)
    with localcontext() as context:
        context.prec = 2000  # a double's exact expansion has at most 767 significant digits
        point = Decimal(x)
        if not math.isinf(up):
            point = draw(st.sampled_from([point, (point + Decimal(up)) / 2]))
        nudge = draw(st.sampled_from([0, 1, -1]))
        if nudge and point:
            point += nudge * point.scaleb(-40)
    text = format(point, draw(st.sampled_from(["e", "E", "f"])))
    if "." not in text and "e" not in text.lower():
        text += ".0"
    return draw(st.sampled_from(["", "-"])) + text


float_literal = st.one_of(
    float_literal_by_grammar(),
    float_literal_near_a_tie(),
    st.floats(allow_nan=False, allow_infinity=False)
    .map(repr)
    .map(lambda t: t if ("." in t or "e" in t) else t + ".0"),
    st.sampled_from(
        [
            "-0.0",
            "0.0",
            "1e5",
            "1E+5",
            "1.50",
            "-0e0",
            "0e-0",
            "5e-324",
            "4.9e-324",
            "2.4703282292062328e-324",
            "2.4703282292062327e-324",
            "1e-400",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "1e309",
            "9007199254740993.0",
            "9007199254740993.00000000000000000000001",
            "0.1000000000000000055511151231257827021181583404541015625",
            "123456789012345678901234567890.5",
            "1" + "0" * 400 + ".0",
            "0." + "0" * 400 + "1e400",
        ]
    ),
)

scalar = st.one_of(
    st.sampled_from(["null", "true", "false"]),
    int_literal,
    float_literal,
    string_literal(),
)


@st.composite
def json_array(draw: st.DrawFn, items: st.SearchStrategy[str]) -> str:
    values = draw(st.lists(items, max_size=4))
    return "[" + (",".join(draw(ws) + v + draw(ws) for v in values) or draw(ws)) + "]"


@st.composite
def json_object(draw: st.DrawFn, items: st.SearchStrategy[str]) -> str:
    # Nested keys may repeat: only the event's own keys must be distinct.
    keys = draw(st.lists(string_literal(st.text(max_size=4)), max_size=4))
    members = [f"{draw(ws)}{key}{draw(ws)}:{draw(ws)}{draw(items)}{draw(ws)}" for key in keys]
    return "{" + (",".join(members) or draw(ws)) + "}"


def _container(items: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return json_array(items) | json_object(items)


json_value = st.recursive(scalar, _container, max_leaves=8)


@st.composite
def deep_value(draw: st.DrawFn, most: int = 63) -> str:
    """A chain of arrays and objects near the nesting limit: inside an event (depth 1), 63
    levels are allowed and 64 are too many."""
    levels = draw(st.integers(60, most))
    inner = draw(scalar)
    for _ in range(levels):
        inner = f"[{draw(ws)}{inner}]" if draw(st.booleans()) else f'{{"k":{draw(ws)}{inner}}}'
    return inner


@st.composite
def timestamp_text(draw: st.DrawFn) -> str:
    """Every accepted timestamp form (a few fall outside the range once the offset applies)."""
    year = draw(st.integers(1, 9999) | st.sampled_from([1, 2, 1969, 1970, 2000, 2024, 9999]))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, calendar.monthrange(year, month)[1]))
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if draw(st.integers(0, 9)) == 0:
        return text
    text += draw(st.sampled_from(["T", "T", "t", " "]))
    text += f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
    if draw(st.integers(0, 4)):
        text += f":{draw(st.integers(0, 59)):02d}"
        digits = draw(st.integers(0, 9))
        if digits:
            text += "." + draw(st.from_regex(rf"[0-9]{{{digits}}}", fullmatch=True))
    zone = draw(st.integers(0, 2))
    if zone == 1:
        text += draw(st.sampled_from(["Z", "z"]))
    elif zone == 2:
        sign = draw(st.sampled_from("+-"))
        h, m = draw(st.integers(0, 23)), draw(st.integers(0, 59))
        text += draw(
            st.sampled_from([f"{sign}{h:02d}:{m:02d}", f"{sign}{h:02d}{m:02d}", f"{sign}{h:02d}"])
        )
    return text


STRING_FIELDS = ["@m", "@mt", "@x", "@tr", "@sp", "@ps", "@sk", "@l"]
RESERVED = {"@t", "@st", "@i", "@r", "@ra", "@sa", *STRING_FIELDS}
KEY_POOL = ["a", "b", "Message", "RequestPath", "Elapsed", "@@x", "@@t", "@foo", "Ω", "a b", ""]

user_key = st.sampled_from(KEY_POOL) | st.text(max_size=6).filter(lambda k: k not in RESERVED)
timestamp_literal = string_literal(timestamp_text())

reified_member = st.one_of(
    st.tuples(st.sampled_from(STRING_FIELDS), string_literal()),
    st.tuples(st.just("@l"), string_literal(st.sampled_from(["Warning", "INF", "debug"]))),
    st.tuples(st.just("@st"), timestamp_literal),
    st.tuples(st.just("@i"), int_literal | string_literal()),
    st.tuples(st.just("@r"), json_array(json_value)),
    st.tuples(st.sampled_from(["@ra", "@sa"]), json_object(json_value)),
)


@st.composite
def event_line(
    draw: st.DrawFn,
    members: st.SearchStrategy[tuple[str, str]] | None = None,
    with_t: bool = True,
) -> str:
    """One CLEF event: `@t`, some reified fields and some user properties, in any order, with
    keys written raw or escaped and whitespace anywhere between tokens; `members` override."""
    chosen: dict[str, str] = {"@t": draw(timestamp_literal)} if with_t else {}
    for key, value in draw(st.lists(reified_member, max_size=3)):
        chosen.setdefault(key, value)
    for key in draw(st.lists(user_key, max_size=5)):
        chosen.setdefault(
            key, draw(json_value | deep_value()) if draw(st.booleans()) else draw(scalar)
        )
    if members is not None:
        for key, value in draw(st.lists(members, min_size=1, max_size=2)):
            chosen[key] = value
    order = draw(st.permutations(list(chosen)))
    parts = [
        f"{draw(ws)}{draw(string_literal(st.just(key)))}{draw(ws)}:{draw(ws)}{chosen[key]}{draw(ws)}"
        for key in order
    ]
    return draw(ws) + "{" + ",".join(parts) + "}" + draw(ws)


blank_line = st.sampled_from(["", " ", "\t", "\r", " \t\r "])


@st.composite
def clef_payload(draw: st.DrawFn) -> bytes:
    """Events separated by LF or CRLF, with blank lines between them and an optional final
    terminator."""
    events = draw(st.lists(event_line(), max_size=6))
    out: list[str] = []
    for line in events:
        out.extend(draw(st.lists(blank_line, max_size=2)))
        out.append(line + draw(st.sampled_from(["", "", "\r"])))  # "\r" + the LF: CRLF
    text = "\n".join(out)
    if draw(st.booleans()):
        text += draw(st.sampled_from(["\n", "\r\n", "\n\n", "\n \n"]))
    return text.encode("utf-8")


# --- mutations -------------------------------------------------------------------------------

INTERESTING_BYTES = (
    b'"\\{}[],:\n\r \t0-.eE+nut/\x00\x1f\x7f\x80\xbf\xc0\xc2\xe0\xed\xf0\xf4\xf5\xff'
)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few random edits: byte changes, insertions, deletions, a cut or a splice."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.integers(0, 4))
        at = draw(st.integers(0, len(buf)))
        byte = draw(st.sampled_from(list(INTERESTING_BYTES)) | st.integers(0, 255))
        if what == 0 and at < len(buf):
            buf[at] = byte
        elif what == 1:
            buf.insert(at, byte)
        elif what == 2 and at < len(buf):
            del buf[at]
        elif what == 3:
            del buf[at:]
        else:
            end = draw(st.integers(at, len(buf)))
            buf[at:at] = buf[at:end]
    return bytes(buf)


# Lines aimed at one rejection each; the payload around them stays valid.
bad_members = st.one_of(
    st.tuples(st.sampled_from(sorted(RESERVED)), scalar | json_value),
    st.tuples(st.just("@t"), string_literal()),
    st.tuples(st.just("@st"), string_literal()),
    # a timestamp cut short
    st.tuples(st.sampled_from(["@t", "@st"]), timestamp_literal.map(lambda s: s[:-2] + '"')),
    st.tuples(user_key, st.sampled_from(["NaN", "-Infinity", "01", "1.", ".5", "[1,]", "{,}"])),
    st.tuples(user_key, st.sampled_from(['"\x01"', '"\\x"', '"\\ud800"', '"\\udc00\\ud800"'])),
    st.tuples(user_key, st.sampled_from(['"\udcff"', '"\udcc0\udcaf"', '"\udced\udca0\udc80"'])),
    st.tuples(user_key, deep_value(most=66)),
)


@st.composite
def payload_with_a_bad_line(draw: st.DrawFn) -> bytes:
    good = draw(st.lists(event_line(), max_size=3))
    bad = draw(
        st.one_of(
            event_line(bad_members),
            event_line(with_t=False),
            # every key twice
            event_line().map(str.strip).map(lambda line: line[:-1] + "," + line[1:]),
            st.sampled_from(["[]", '"x"', "1", "null", "{}", "{", "}", '{"@t":"2024-05-01"} x']),
        )
    )
    at = draw(st.integers(0, len(good)))
    lines = [*good[:at], bad, *good[at:]]
    blanks = draw(st.lists(blank_line, max_size=2))
    text = "\n".join(blanks + lines)
    # Lone surrogates in `bad_members` stand for raw bytes (surrogateescape): invalid UTF-8.
    return text.encode("utf-8", "surrogateescape")


# --- the tests -------------------------------------------------------------------------------

# Payloads are written character by character, so generation, not shredding, takes the time.
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(clef_payload())
@example(b"")
@example(b"\n")
@example(b'{"@t":"2024-05-01T12:00:00Z"}')
@example(b'{"@t":"0001-01-01T00:00:00Z","a":-0,"b":-0.0,"c":[ 1 , { "d" : "\\u00e9" } ]}\r\n')
@example(b'{"@t":"9999-12-31T23:59:59.9999999Z","a":9223372036854775808}')
def test_valid_payloads_shred_alike(data: bytes) -> None:
    assert_same_outcome(data)


@SETTINGS
@given(clef_payload().flatmap(lambda data: mutated(data)))
def test_mutated_payloads_are_judged_alike(data: bytes) -> None:
    assert_same_outcome(data)


@SETTINGS
@given(payload_with_a_bad_line())
def test_bad_lines_are_rejected_alike(data: bytes) -> None:
    assert_same_outcome(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=clef_payload(), limit=st.integers(0, 400) | st.integers(400, 4000))
def test_event_size_limit_is_applied_alike(data: bytes, limit: int) -> None:
    assert_same_outcome(data, limit)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40) | st.sampled_from([b"\n", b"\r\n", b"{", b'"']), max_size=8))
def test_arbitrary_bytes_are_judged_alike(chunks: list[bytes]) -> None:
    assert_same_outcome(b"".join(chunks))


CORNER_CASES: list[bytes] = [
    b"",
    b"\r\n\r\n",
    b'{"@t":"2024-05-01"}',
    b'{"@t":"2024-05-01"}\r',
    b'{"@t":"2024-05-01"}\r\r',
    b'{"@t":"2024-05-01"}\r{"@t":"2024-05-01"}',
    b'{"@t":"2024-05-01","v":' + b"[" * 63 + b"]" * 63 + b"}",
    b'{"@t":"2024-05-01","v":' + b"[" * 64 + b"]" * 64 + b"}",
    b"[" * 65 + b"]" * 65,
    b"[" * 100000,
    b'{"@t":"2024-05-01","v":' + b"[" * 64 + b"x",
    b'{"@t":"2024-05-01","v":x,"w":' + b"[" * 64 + b"]" * 64 + b"}",
    b'{"@t":"2024-05-01","v":"\xff"',
    b'{"@t":"2024-05-01","v":"\\ud800"',
    b'{"@t":"2024-05-01","v":1e400,',
    b'{"@t":"2024-05-01","v":1e400}',
    b'{"@t":"2024-05-01","v":' + b"1" * 5000 + b"}",
    b'{"@t":"2024-05-01","v":0.' + b"0" * 5000 + b"1e5000}",
    b'{"@t":"2024-05-01","v":1e99999999999999999999}',
    b'{"@t":"2024-05-01","v":1e-99999999999999999999}',
    b'{"@t":"2024-05-01","v":-0.0,"w":-0,"x":0e0}',
    b'{"@m":1,"@t":"bad"}',
    b'{"@t":"bad","@m":1}',
    b'{"@t":"bad","@t":"2024-05-01"}',
    b'{"a":1,"\\u0061":2}',
    b'{"a":1,"a":2,"@t":"2024-05-01"}',
    b'{"@t":"2024-05-01","@i":1.0}',
    b'{"@t":"2024-05-01","@i":99999999999999999999}',
    b'{"@t":"2024-05-01","@st":"2024-05-01T25:00"}',
    b'{"@t":"2024-05-01","@r":{}}',
    b'{"@t":"2024-05-01","@ra":[]}',
    b'{"\\u0040t":"2024-05-01","@\\u0040m":1}',
    b'{"@t":"2024-05-01T12:00:00.1234567890Z"}',
    b'{"@t":"0001-01-01T00:00:00+00:01"}',
    b'{"@t":"9999-12-31T23:59:59.9999999-00:01"}',
    b'{"@t":"2024-02-29T23:30:00-01:00"}',
    b'{"@t":"2023-02-29"}',
    b'\xef\xbb\xbf{"@t":"2024-05-01"}',
    b' \t{"@t":"2024-05-01"} \t\r\n',
]


@pytest.mark.parametrize("data", CORNER_CASES, ids=[repr(c)[:50] for c in CORNER_CASES])
def test_corner_cases(data: bytes) -> None:
    assert_same_outcome(data)


@pytest.mark.parametrize("limit", [0, 1, 18, 19, 20])
@pytest.mark.parametrize(
    "data", [b'{"@t":"2024-05-01"}', b' {"@t":"2024-05-01"}\r\n', b"\n" + b" " * 19]
)
def test_size_limit_corner_cases(data: bytes, limit: int) -> None:
    assert_same_outcome(data, limit)
