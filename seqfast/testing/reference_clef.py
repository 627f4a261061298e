"""A slow, plain CLEF shredder: the oracle the native `seqfast.events.clef.shred` must match.

`shred(data)` turns a CLEF payload (newline-delimited JSON objects) into a `Batch`, or rejects
the whole payload with `InvalidEvents(line, reason)` for its first bad line.  It is written for
obviousness, not speed: every rule below is one visible step, so that a disagreement with the
native shredder can be settled by reading this file.

Lines.  `data` is split on b"\\n" and one trailing b"\\r" is stripped from each line.  Lines are
numbered from 1, counting every line.  Each line is checked in this order; the first failing
step gives the reason:

1. Longer than `max_event_bytes` (terminator excluded) → `event of {len} bytes exceeds the
   limit of {max} bytes`.  This applies to blank lines too.
2. Empty or only JSON whitespace (space, tab, CR) → skipped.
3. Not UTF-8 (strict: no overlongs, no encoded surrogates, nothing above U+10FFFF) →
   `invalid UTF-8: …`.  The whole line is checked before any JSON is read.
4. Read left to right as one JSON value surrounded by optional whitespace; the first problem
   met wins: malformed JSON (RFC 8259, strict) → `invalid JSON: …`; a number whose double is
   infinite → `invalid JSON: number out of range …`; a lone surrogate escape → `invalid JSON:
   lone surrogate …`; an array or object opened at depth 65 (the outermost value is depth 1)
   → `nesting deeper than 64`.
5. The value is not an object → `not a JSON object`.
6. The top-level members, in reading order; the first problem met wins:
   - a key (after unescaping) equal to an earlier one → `duplicate key '{key}'` (keys of
     nested objects are not checked);
   - `@t` not a string → `@t is not a string`; not a timestamp → `@t is not a valid
     timestamp: '{text}'`;
   - `@m @mt @x @tr @sp @ps @sk @st @l` not strings → `{key} must be a string`; `@st` not a
     timestamp → `@st is not a valid timestamp: '{text}'`; `@i` neither a string nor an
     integer literal → `@i must be a string or an integer`; `@r` not an array → `@r must be
     an array`; `@ra`, `@sa` not objects → `{key} must be an object`.
   Every other key (`@foo`, `@@m`, ...) takes any value.
7. No `@t` → `missing @t`.

Timestamps: `YYYY-MM-DD`, alone (midnight UTC) or followed by `T`, `t` or one space, `hh:mm`,
optionally `:ss`, optionally (after seconds) `.` and 1–9 digits, then optionally `Z`, `z`,
`±hh:mm`, `±hhmm` or `±hh` (none means UTC).  Fields must be in range (years 0001–9999, real
calendar days, hours 0–23, minutes and seconds 0–59, offset hours 0–23), and the instant, once
the offset is applied, must lie in 0001-01-01T00:00:00Z … 9999-12-31T23:59:59.9999999Z.
Fraction digits past the seventh are dropped (truncated, never rounded).

Output: one row per accepted line, `ts` in 100-ns ticks since the Unix epoch, `seq` 0…n-1,
and one column per distinct top-level key except `@t`, named by the unescaped key and ordered
by first appearance in the batch.  Values: null/false/true → TAG_NULL/FALSE/TRUE; an integer
literal (no fraction, no exponent) → TAG_INT if it fits int64 (`-0` is 0), else TAG_BIGINT
with its text as written; any other number → TAG_FLOAT with the bits of `float(text)`; a string
→ TAG_STRING, unescaped, UTF-8; an object or array → TAG_JSON, its original bytes minus every
whitespace byte outside strings (strings, escapes included, are kept as written).
"""

from __future__ import annotations

import datetime as _dt
import re
import struct
from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np

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
    Batch,
    Column,
)
from seqfast.storage.ids import TICKS_PER_SECOND, UNIX_EPOCH_DOTNET_TICKS

MAX_DEPTH = 64
DEFAULT_MAX_EVENT_BYTES = 262144

_JSON_WHITESPACE = b" \t\r\n"
_BLANK = b" \t\r"  # JSON whitespace that can occur inside a line
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_SHORT_ESCAPES = {
    ord('"'): '"',
    ord("\\"): "\\",
    ord("/"): "/",
    ord("b"): "\b",
    ord("f"): "\f",
    ord("n"): "\n",
    ord("r"): "\r",
    ord("t"): "\t",
}
_HEX = b"0123456789abcdefABCDEF"
_DIGITS = b"0123456789"

_STRING_KEYS = ("@m", "@mt", "@x", "@tr", "@sp", "@ps", "@sk", "@st", "@l")
_OBJECT_KEYS = ("@ra", "@sa")

# The timestamp grammar of the module docstring.  re.ASCII makes \d mean [0-9] only.
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(?:[Zz]|([+-])(\d{2})(?::?(\d{2}))?)?)?",
    re.ASCII,
)
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_TICKS_PER_DAY = 86400 * TICKS_PER_SECOND
_MIN_TICKS = -UNIX_EPOCH_DOTNET_TICKS  # 0001-01-01T00:00:00Z
_MAX_TICKS = (_dt.date(9999, 12, 31).toordinal() + 1 - _EPOCH_ORDINAL) * _TICKS_PER_DAY - 1


class _Rejected(Exception):
    """A line is bad; `reason` is the text of the InvalidEvents the caller raises."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Value:
    """One parsed JSON value, already in the form a column row stores it."""

    tag: int
    num: int = 0  # TAG_INT value or TAG_FLOAT bits
    text: bytes = b""  # TAG_STRING / TAG_JSON / TAG_BIGINT bytes
    members: list[tuple[str, _Value]] = field(default_factory=list)  # objects only
    is_array: bool = False
    string: str = ""  # TAG_STRING only: the unescaped text
    span: tuple[int, int] = (0, 0)  # TAG_JSON only: where the value lies in its line


def parse_timestamp(text: str) -> int | None:
    """Ticks (100 ns since 1970-01-01T00:00:00Z) of a CLEF timestamp, or None if it is not one."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        date = _dt.date(int(year), int(month), int(day))  # checks year, month and day ranges
    except ValueError:
        return None
    h, mi, s = int(hour or 0), int(minute or 0), int(second or 0)
    oh, om = int(off_h or 0), int(off_m or 0)
    if h > 23 or mi > 59 or s > 59 or oh > 23 or om > 59:
        return None
    offset_seconds = (oh * 3600 + om * 60) * (-1 if sign == "-" else 1)
    seconds = (date.toordinal() - _EPOCH_ORDINAL) * 86400 + h * 3600 + mi * 60 + s
    # A local time at offset +X is X earlier in UTC.
    ticks = (seconds - offset_seconds) * TICKS_PER_SECOND + int((fraction or "")[:7].ljust(7, "0"))
    if not _MIN_TICKS <= ticks <= _MAX_TICKS:
        return None
    return ticks


def _float_bits(value: float) -> int:
    result: int = struct.unpack("<q", struct.pack("<d", value))[0]
    return result


class _Parser:
    """Recursive descent over one line's bytes (already known to be valid UTF-8)."""

    def __init__(self, line: bytes) -> None:
        self.line = line
        self.pos = 0

    def fail(self, what: str) -> NoReturn:
        raise _Rejected(f"invalid JSON: {what} at byte {self.pos + 1}")

    def peek(self) -> int | None:
        return self.line[self.pos] if self.pos < len(self.line) else None

    def skip_whitespace(self) -> None:
        while self.pos < len(self.line) and self.line[self.pos] in _JSON_WHITESPACE:
            self.pos += 1

    def expect(self, literal: bytes) -> None:
        if not self.line.startswith(literal, self.pos):
            self.fail(f"expected {literal.decode()!r}")
        self.pos += len(literal)

    def document(self) -> _Value:
        self.skip_whitespace()
        value = self.value(depth=1)
        self.skip_whitespace()
        if self.pos != len(self.line):
            self.fail("unexpected text after the value")
        return value

    def value(self, depth: int) -> _Value:
        start = self.pos
        c = self.peek()
        if c == ord("{") or c == ord("["):
            if depth > MAX_DEPTH:
                raise _Rejected(f"nesting deeper than {MAX_DEPTH}")
            value = self.object(depth) if c == ord("{") else self.array(depth)
            value.span = (start, self.pos)
            return value
        if c == ord('"'):
            string = self.string()
            return _Value(TAG_STRING, text=string.encode("utf-8"), string=string)
        if c == ord("t"):
            self.expect(b"true")
            return _Value(TAG_TRUE)
        if c == ord("f"):
            self.expect(b"false")
            return _Value(TAG_FALSE)
        if c == ord("n"):
            self.expect(b"null")
            return _Value(TAG_NULL)
        if c == ord("-") or (c is not None and c in _DIGITS):
            return self.number()
        self.fail("expected a value")

    def object(self, depth: int) -> _Value:
        self.expect(b"{")
        result = _Value(TAG_JSON)
        self.skip_whitespace()
        if self.peek() == ord("}"):
            self.pos += 1
            return result
        while True:
            self.skip_whitespace()
            if self.peek() != ord('"'):
                self.fail("expected a string key")
            key = self.string()
            self.skip_whitespace()
            self.expect(b":")
            self.skip_whitespace()
            result.members.append((key, self.value(depth + 1)))
            self.skip_whitespace()
            if self.peek() == ord(","):
                self.pos += 1
                continue
            self.expect(b"}")
            return result

    def array(self, depth: int) -> _Value:
        self.expect(b"[")
        self.skip_whitespace()
        if self.peek() == ord("]"):
            self.pos += 1
            return _Value(TAG_JSON, is_array=True)
        while True:
            self.skip_whitespace()
            self.value(depth + 1)
            self.skip_whitespace()
            if self.peek() == ord(","):
                self.pos += 1
                continue
            self.expect(b"]")
            return _Value(TAG_JSON, is_array=True)

    def string(self) -> str:
        self.expect(b'"')
        pieces: list[str] = []
        run_start = self.pos
        while True:
            c = self.peek()
            if c is None:
                self.fail("unterminated string")
            if c < 0x20:
                self.fail("control character in string")
            if c != ord('"') and c != ord("\\"):
                self.pos += 1
                continue
            # '"' and '\\' never occur inside a multi-byte UTF-8 sequence, so the run decodes.
            pieces.append(self.line[run_start : self.pos].decode("utf-8"))
            if c == ord('"'):
                self.pos += 1
                return "".join(pieces)
            pieces.append(self.escape())
            run_start = self.pos

    def escape(self) -> str:
        self.expect(b"\\")
        c = self.peek()
        if c is not None and c in _SHORT_ESCAPES:
            self.pos += 1
            return _SHORT_ESCAPES[c]
        if c != ord("u"):
            self.fail("invalid escape")
        self.pos += 1
        high = self.hex4()
        if 0xDC00 <= high <= 0xDFFF:
            self.fail("lone surrogate")
        if not 0xD800 <= high <= 0xDBFF:
            return chr(high)
        if not self.line.startswith(b"\\u", self.pos):
            self.fail("lone surrogate")
        self.pos += 2
        low = self.hex4()
        if not 0xDC00 <= low <= 0xDFFF:
            self.fail("lone surrogate")
        return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))

    def hex4(self) -> int:
        digits = self.line[self.pos : self.pos + 4]
        if len(digits) != 4 or any(d not in _HEX for d in digits):
            self.fail("invalid \\u escape")
        self.pos += 4
        return int(digits, 16)

    def number(self) -> _Value:
        start = self.pos
        if self.peek() == ord("-"):
            self.pos += 1
        if self.peek() == ord("0"):
            self.pos += 1
        elif not self.digits():
            self.fail("expected a digit")
        integral = True
        if self.peek() == ord("."):
            integral = False
            self.pos += 1
            if not self.digits():
                self.fail("expected a digit after '.'")
        if self.peek() in (ord("e"), ord("E")):
            integral = False
            self.pos += 1
            if self.peek() in (ord("+"), ord("-")):
                self.pos += 1
            if not self.digits():
                self.fail("expected a digit in the exponent")
        text = self.line[start : self.pos]
        if integral:
            # Compare by length first: int() refuses texts over 4300 digits.
            if len(text) <= 20 and _INT64_MIN <= int(text) <= _INT64_MAX:
                return _Value(TAG_INT, num=int(text))
            return _Value(TAG_BIGINT, text=text)
        number = float(text)  # correctly rounded; no digit limit
        if number in (float("inf"), float("-inf")):
            self.pos = start
            self.fail("number out of range")
        return _Value(TAG_FLOAT, num=_float_bits(number))

    def digits(self) -> bool:
        start = self.pos
        while self.peek() is not None and self.line[self.pos] in _DIGITS:
            self.pos += 1
        return self.pos > start


def _minify(text: bytes) -> bytes:
    """`text` (valid JSON) without the whitespace outside its strings."""
    out = bytearray()
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == ord("\\"):
                escaped = True
            elif c == ord('"'):
                in_string = False
        elif c == ord('"'):
            in_string = True
        elif c in _JSON_WHITESPACE:
            continue
        out.append(c)
    return bytes(out)


def _member_problem(key: str, value: _Value) -> str | None:
    """What is wrong with one top-level member, if anything (step 6, after the duplicate check)."""
    if key == "@t":
        if value.tag != TAG_STRING:
            return "@t is not a string"
        if parse_timestamp(value.string) is None:
            return f"@t is not a valid timestamp: '{value.string}'"
    elif key in _STRING_KEYS:
        if value.tag != TAG_STRING:
            return f"{key} must be a string"
        if key == "@st" and parse_timestamp(value.string) is None:
            return f"@st is not a valid timestamp: '{value.string}'"
    elif key == "@i":
        if value.tag not in (TAG_STRING, TAG_INT, TAG_BIGINT):
            return "@i must be a string or an integer"
    elif key == "@r":
        if value.tag != TAG_JSON or not value.is_array:
            return "@r must be an array"
    elif key in _OBJECT_KEYS and (value.tag != TAG_JSON or value.is_array):
        return f"{key} must be an object"
    return None


def _check_event(members: list[tuple[str, _Value]]) -> int:
    """Steps 6 and 7 of the module docstring; returns the event's `ts`."""
    seen: set[str] = set()
    for key, value in members:
        if key in seen:
            raise _Rejected(f"duplicate key '{key}'")
        seen.add(key)
        problem = _member_problem(key, value)
        if problem is not None:
            raise _Rejected(problem)
    if "@t" not in seen:
        raise _Rejected("missing @t")
    ts = parse_timestamp(dict(members)["@t"].string)
    assert ts is not None  # checked above
    return ts


def _parse_line(line: bytes) -> tuple[int, list[tuple[str, _Value]]]:
    """Steps 3–7 of the module docstring for one non-blank line."""
    try:
        line.decode("utf-8")  # Python's codec is strict: overlongs, surrogates, > U+10FFFF
    except UnicodeDecodeError as e:
        raise _Rejected(f"invalid UTF-8: {e.reason} at byte {e.start + 1}") from None
    value = _Parser(line).document()
    if value.tag != TAG_JSON or value.is_array:
        raise _Rejected("not a JSON object")
    ts = _check_event(value.members)
    for _, member in value.members:
        if member.tag == TAG_JSON:
            member.text = _minify(line[member.span[0] : member.span[1]])
    return ts, value.members


def _column(rows: list[_Value | None]) -> Column:
    tags: list[int] = []
    nums: list[int] = []
    offsets = [0]
    data = bytearray()
    for value in rows:
        if value is None:
            tags.append(TAG_ABSENT)
            continue
        tags.append(value.tag)
        if value.tag in (TAG_INT, TAG_FLOAT):
            nums.append(value.num)
        elif value.tag in (TAG_STRING, TAG_JSON, TAG_BIGINT):
            data += value.text
            offsets.append(len(data))
    return Column(
        tags=np.array(tags, dtype=np.uint8),
        nums=np.array(nums, dtype=np.int64),
        str_offsets=np.array(offsets, dtype=np.int64),
        str_data=bytes(data),
    )


def shred(data: bytes, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> Batch:
    """The `Batch` of the CLEF payload `data`; `InvalidEvents` for its first bad line."""
    events: list[tuple[int, dict[str, _Value]]] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > max_event_bytes:
            raise InvalidEvents(
                number,
                f"event of {len(line)} bytes exceeds the limit of {max_event_bytes} bytes",
            )
        if not line.strip(_BLANK):
            continue
        try:
            ts, members = _parse_line(line)
        except _Rejected as e:
            raise InvalidEvents(number, e.reason) from None
        events.append((ts, dict(members)))

    names: dict[str, None] = {}  # an ordered set: first appearance in the batch
    for _, values in events:
        names.update((key, None) for key in values if key != "@t")
    return Batch(
        n=len(events),
        ts=np.array([ts for ts, _ in events], dtype=np.int64),
        seq=np.arange(len(events), dtype=np.int64),
        columns={name: _column([values.get(name) for _, values in events]) for name in names},
    )
