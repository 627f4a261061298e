"""Seq's legacy ("raw") JSON ingestion format, turned into CLEF.

Before CLEF, Seq took one JSON document per request::

    {"Events": [{"Timestamp": "2015-05-09T22:09:08.12345+10:00", "Level": "Warning",
                 "MessageTemplate": "Disk space is low on {Drive}",
                 "Properties": {"Drive": "C:"}, "Exception": "...",
                 "Renderings": {"Drive": [{"Format": "x8", "Rendering": "..."}]}}]}

Seq still accepts it on `/api/events/raw` when the request is not CLEF.  `decode_seq_json`
turns such a body into CLEF bytes for the one ingest path (`Store.ingest_clef`), one line per
event and nothing else, so that line N of the output is event N of the input: an event the
store later rejects (a bad timestamp text, an event over the size limit, nesting deeper than
64) is reported with the same number the client used.

Mapping, per event (members not listed here are ignored, as a typed .NET reader ignores them):

=================  ===============================================================
`Timestamp`        `@t`, required, a string that is a CLEF timestamp; kept as written
`Level`            `@l` (absent or null: no `@l`, which CLEF reads as Information)
`MessageTemplate`  `@mt`
`RenderedMessage`  `@m`
`Exception`        `@x`
`EventType`        `@i`: an integer, or a hex string (a leading `$`, as Seq prints
                   event types, is dropped)
`TraceId`          `@tr`;  `SpanId` → `@sp`
`Properties`       one top-level member each; a name starting with `@` gets one more
                   `@` (CLEF's escape), so `@foo` is written `@@foo`
`Renderings`       `@r`, see below
=================  ===============================================================

Every field above may also be null, which means absent.  The body may name the array `Events`
or `events` (as Seq's own forwarder does; `events` is looked up first).

Renderings.  CLEF's `@r` is an array with one pre-rendered string per message-template token
that carries a format (`{Amount:0.00}`), in template order; the legacy format instead keys the
renderings by property name and format.  The template is tokenized exactly as Serilog's
`MessageTemplateParser` does, and `@r` is written only when the renderings and the formatted
tokens match one to one (every formatted token has a rendering, every rendering belongs to a
formatted token).  Otherwise the renderings are dropped: a partial or misaligned `@r` would
attach a rendering to the wrong token, which is worse than none (Seq then renders the token
from the property value).

Values keep their exact JSON type and value, including integers beyond 64 bits (orjson reads
those as floats, so a body holding a run of 19 or more digits is read by the standard library
instead).

Errors.  Any problem rejects the whole body with `InvalidEvents(index, reason)`, `index` the
1-based position of the offending event (1 for problems with the body itself), and `reason`
naming the field, in the store's style (`missing Timestamp`, `Level must be a string`): callers
put the number in front (`event 3: missing Timestamp`).
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from typing import Any, Final

import orjson

from seqfast import _native
from seqfast.errors import InvalidEvents

# orjson reads integers beyond u64 (or below i64) as floats without a word; any such integer
# is written with at least 19 digits, so the (rare) bodies holding such a run take the exact,
# slower, standard-library path.
_LONG_DIGIT_RUN: Final = re.compile(rb"\d{19}")

_SIMPLE_FIELDS: Final = (
    ("Level", "@l"),
    ("MessageTemplate", "@mt"),
    ("RenderedMessage", "@m"),
    ("Exception", "@x"),
    ("TraceId", "@tr"),
    ("SpanId", "@sp"),
)


def decode_seq_json(body: bytes) -> bytes:
    """CLEF bytes (one line per event, each ending in a newline) of a legacy Seq JSON body.

    Raises `InvalidEvents` naming the first bad event.
    """
    document = _parse(body)
    if not isinstance(document, dict):
        raise InvalidEvents(1, 'the body is not a JSON object with an "Events" array')
    events = document.get("events", document.get("Events"))
    if events is None:
        raise InvalidEvents(1, 'the body has no "Events" array')
    if not isinstance(events, list):
        raise InvalidEvents(1, '"Events" must be an array')
    lines = [_dumps(index, _event(index, event)) for index, event in enumerate(events, start=1)]
    lines.append(b"")
    return b"\n".join(lines) if len(lines) > 1 else b""


def _parse(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvents(1, f"invalid UTF-8: {exc.reason} at byte {exc.start + 1}") from None
    # A UTF-8 byte order mark is not JSON, but .NET readers (and so Seq) skip it.
    text = text.removeprefix("\ufeff")
    try:
        if _LONG_DIGIT_RUN.search(body) is None:
            return orjson.loads(text)
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidEvents(1, f"invalid JSON: {exc}") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text}")
    return value


def _no_constant(text: str) -> float:
    # The standard library accepts NaN and Infinity literals; JSON (and orjson) does not.
    raise ValueError(f"{text} is not JSON")


def _event(index: int, event: Any) -> dict[str, Any]:
    """The CLEF object of legacy event number `index`."""
    if not isinstance(event, dict):
        raise InvalidEvents(index, "not a JSON object")
    out: dict[str, Any] = {}

    timestamp = event.get("Timestamp")
    if timestamp is None:
        raise InvalidEvents(index, "missing Timestamp")
    if not isinstance(timestamp, str):
        raise InvalidEvents(index, "Timestamp must be a string")
    if _native.parse_timestamp_text(timestamp) is None:
        raise InvalidEvents(index, f"Timestamp is not a valid timestamp: '{timestamp}'")
    out["@t"] = timestamp

    for field, key in _SIMPLE_FIELDS:
        value = event.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidEvents(index, f"{field} must be a string")
        out[key] = value

    event_type = event.get("EventType")
    if event_type is not None:
        if isinstance(event_type, str):
            out["@i"] = event_type.removeprefix("$")
        elif isinstance(event_type, int) and not isinstance(event_type, bool):
            out["@i"] = event_type
        else:
            raise InvalidEvents(index, "EventType must be an integer or a string")

    renderings = event.get("Renderings")
    if renderings is not None:
        by_token = _renderings(index, renderings)
        template = out.get("@mt")
        if template is not None:
            ordered = _ordered_renderings(template, by_token)
            if ordered is not None:
                out["@r"] = ordered

    properties = event.get("Properties")
    if properties is not None:
        if not isinstance(properties, dict):
            raise InvalidEvents(index, "Properties must be an object")
        for name, value in properties.items():
            # Every reified CLEF name starts with "@", so escaped names never collide with them.
            out["@" + name if name.startswith("@") else name] = value
    return out


def _renderings(index: int, renderings: Any) -> dict[tuple[str, str], str]:
    """{(property name, format): rendering} of a legacy `Renderings` object."""
    problem = 'Renderings must map property names to arrays of {"Format", "Rendering"} objects'
    if not isinstance(renderings, dict):
        raise InvalidEvents(index, problem)
    found: dict[tuple[str, str], str] = {}
    for name, entries in renderings.items():
        if not isinstance(entries, list):
            raise InvalidEvents(index, problem)
        for entry in entries:
            if not isinstance(entry, dict):
                raise InvalidEvents(index, problem)
            fmt, rendering = entry.get("Format"), entry.get("Rendering")
            if not isinstance(fmt, str) or not isinstance(rendering, str):
                raise InvalidEvents(index, problem)
            found[(name, fmt)] = rendering
    return found


def _ordered_renderings(template: str, by_token: dict[tuple[str, str], str]) -> list[str] | None:
    """`@r` for `template`, or None when the renderings do not match its formatted tokens."""
    tokens = formatted_tokens(template)
    if not tokens or set(tokens) != set(by_token):
        return None
    return [by_token[token] for token in tokens]


def _dumps(index: int, event: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(event)
    except TypeError:
        pass
    # orjson refuses integers beyond 64 bits and strings holding lone surrogates (which the
    # standard-library reader lets through from "\\ud800" escapes).
    text = json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvents(index, "a string holds a lone surrogate") from None


# --- message templates --------------------------------------------------------------------------
#
# A port of Serilog's MessageTemplateParser (src/Serilog/Parsing/MessageTemplateParser.cs), cut
# down to what `@r` needs: the property tokens that carry a format, in order.  .NET classifies
# UTF-16 code units; a code point beyond U+FFFF is a surrogate pair there, which no rule accepts.

_LETTER_OR_DIGIT: Final = frozenset(("Lu", "Ll", "Lt", "Lm", "Lo", "Nd"))
_FORMAT_CATEGORIES: Final = _LETTER_OR_DIGIT | {"Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"}


def _category(c: str) -> str:
    return "Cs" if ord(c) > 0xFFFF else unicodedata.category(c)


# Character classes are looked up per character of every tag; caching them (a bounded cache:
# at most one entry per distinct character seen) keeps unicodedata out of the hot path.
@functools.lru_cache(maxsize=65536)
def _valid_in_name(c: str) -> bool:
    return c == "_" or _category(c) in _LETTER_OR_DIGIT


@functools.lru_cache(maxsize=65536)
def _valid_in_format(c: str) -> bool:
    return c != "}" and (c == " " or _category(c) in _FORMAT_CATEGORIES)


@functools.lru_cache(maxsize=65536)
def _valid_in_tag(c: str) -> bool:
    return c in "@$:" or _valid_in_name(c) or _valid_in_format(c)


# Templates repeat (that is their point), so a bounded cache answers most calls.
@functools.lru_cache(maxsize=4096)
def property_tokens(template: str) -> tuple[tuple[str, str | None], ...]:
    """(property name, format or None) of each property token of `template`, in order."""
    found: list[tuple[str, str | None]] = []
    n = len(template)
    i = 0
    while i < n:
        i = _skip_text(template, i)
        if i == n:
            break
        i, token = _property_token(template, i)
        if token is not None:
            found.append(token)
    return tuple(found)


def formatted_tokens(template: str) -> list[tuple[str, str]]:
    """(property name, format) of each property token of `template` that has a format, in order
    (the tokens a CLEF `@r` array renders)."""
    return [(name, fmt) for name, fmt in property_tokens(template) if fmt is not None]


def _skip_text(t: str, i: int) -> int:
    """The index of the next `{` that may open a property token (not `{{`), or len(t)."""
    n = len(t)
    while i < n:
        c = t[i]
        if c == "{":
            if i + 1 < n and t[i + 1] == "{":
                i += 1
            else:
                return i
        elif c == "}" and i + 1 < n and t[i + 1] == "}":
            i += 1
        i += 1
    return i


def _property_token(t: str, first: int) -> tuple[int, tuple[str, str | None] | None]:
    """(next index, (name, format) or None if the text at `first` is not a property token)."""
    n = len(t)
    i = first + 1
    while i < n and _valid_in_tag(t[i]):
        i += 1
    if i == n or t[i] != "}":
        return i, None
    i += 1
    content = t[first + 1 : i - 1]
    if not content:
        return i, None
    split = _split_tag(content)
    if split is None:
        return i, None
    name, fmt, alignment = split
    if name and name[0] in "@$":
        name = name[1:]
    if not name or not all(_valid_in_name(c) for c in name):
        return i, None
    if fmt is not None and not all(_valid_in_format(c) for c in fmt):
        return i, None
    if alignment is not None and not _valid_alignment(alignment):
        return i, None
    return i, (name, fmt)


def _split_tag(content: str) -> tuple[str, str | None, str | None] | None:
    """(name with hint, format, alignment) of a tag's content, as Serilog's TrySplitTagContent."""
    colon = content.find(":")
    comma = content.find(",")
    if colon == -1 and comma == -1:
        return content, None, None
    if comma == -1 or (colon != -1 and comma > colon):
        return content[:colon], (content[colon + 1 :] or None), None
    if colon == -1:
        if comma == len(content) - 1:
            return None
        return content[:comma], None, content[comma + 1 :]
    if comma == colon - 1:
        return None
    return content[:comma], (content[colon + 1 :] or None), content[comma + 1 : colon]


def _valid_alignment(alignment: str) -> bool:
    if not all(c == "-" or _category(c) == "Nd" for c in alignment):
        return False
    if alignment.rfind("-") > 0:
        return False
    digits = alignment.removeprefix("-")
    # .NET's int.TryParse takes ASCII digits only and fails beyond int32; a zero width is text.
    if not (digits.isascii() and digits.isdigit()):
        return False
    return 0 < int(digits) < 2**31
