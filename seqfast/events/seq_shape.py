"""A stored event (CLEF-shaped, with `@id`) as Seq's event API returns it.

Seq's `EventEntity`: `Id`, `Timestamp`, `Properties` (a list of `{Name, Value}`),
`MessageTemplateTokens`, `EventType` (`$` and 8 hex digits), `Level`, `Exception`,
`RenderedMessage` (only when asked for), `TraceId`, `SpanId`, `ParentId`, `SpanKind`, `Start`,
`Elapsed` (spans: `@t - @st` as .NET's `TimeSpan` text), `Resource` and `Scope` (lists of
`{Name, Value}`), and `Links`.  Members without a value are left out, as Seq leaves them out.

The event type is `@i` when the event carries one (an integer, or hex text); otherwise the
32-bit MurmurHash3 (seed 0) of the UTF-8 message template, the template being `@mt`, or `@m`
with its braces doubled when there is no `@mt`.  Seq does not document its own hash, so a
seqfast event type matches Seq's only when the client sent `@i`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from seqfast import _native
from seqfast.events import templates
from seqfast.events.event_type import murmur3_32, template_event_type

_HEX_TYPE: Final = re.compile(r"\$?[0-9A-Fa-f]{1,8}")
_TICKS_PER_SECOND: Final = 10_000_000


def message_template(event: Mapping[str, Any]) -> str | None:
    """`@mt`, or `@m` with its braces doubled, or None when the event has neither."""
    template = event.get("@mt")
    if isinstance(template, str):
        return template
    message = event.get("@m")
    return templates.escape(message) if isinstance(message, str) else None


def event_type(event: Mapping[str, Any]) -> int:
    """The event's 32-bit type: `@i`, else the hash of its message template."""
    given = event.get("@i")
    if isinstance(given, int) and not isinstance(given, bool):
        return given & 0xFFFFFFFF
    if isinstance(given, str):
        if _HEX_TYPE.fullmatch(given):
            return int(given.removeprefix("$"), 16)
        return murmur3_32(given.encode("utf-8"))
    return template_hash(message_template(event) or "")


# The event type of a template (cached: a stream has few distinct templates).
template_hash = template_event_type


def properties(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event's own properties by name (`@@x` in CLEF is the property `@x`)."""
    out: dict[str, Any] = {}
    for name, value in event.items():
        if name.startswith("@@"):
            out[name[1:]] = value
        elif not name.startswith("@"):
            out[name] = value
    return out


def rendered_message(event: Mapping[str, Any]) -> str:
    """`@m`, or `@mt` rendered with the event's properties and `@r`."""
    message = event.get("@m")
    if isinstance(message, str):
        return message
    template = event.get("@mt")
    if not isinstance(template, str):
        return ""
    return templates.render(template, properties(event), event.get("@r"))


def _parts(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, Mapping):
        return [{"Name": str(k), "Value": v} for k, v in value.items()]
    return []


def timespan_text(ticks: int) -> str:
    """.NET's `TimeSpan` text (`[-][d.]hh:mm:ss[.fffffff]`), as Seq writes `Elapsed`."""
    sign = "-" if ticks < 0 else ""
    seconds, fraction = divmod(abs(ticks), _TICKS_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    text = f"{sign}{f'{days}.' if days else ''}{hour:02d}:{minute:02d}:{second:02d}"
    return text + (f".{fraction:07d}" if fraction else "")


def _elapsed(event: Mapping[str, Any]) -> str | None:
    start, end = event.get("@st"), event.get("@t")
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    start_ticks = _native.parse_timestamp_text(start)
    end_ticks = _native.parse_timestamp_text(end)
    if start_ticks is None or end_ticks is None:
        return None
    return timespan_text(end_ticks - start_ticks)


def to_seq_event(event: Mapping[str, Any], *, render: bool = False) -> dict[str, Any]:
    """Seq's JSON for one stored event."""
    event_id = event.get("@id")
    props = properties(event)
    template = message_template(event) or ""
    renderings = event.get("@r")
    out: dict[str, Any] = {
        "Timestamp": event.get("@t"),
        "Properties": [{"Name": name, "Value": value} for name, value in props.items()],
        "MessageTemplateTokens": templates.tokens(
            template, props, renderings if "@mt" in event else None
        ),
        "EventType": f"${event_type(event):08X}",
    }
    for member, key in (
        ("Level", "@l"),
        ("Exception", "@x"),
        ("TraceId", "@tr"),
        ("SpanId", "@sp"),
        ("ParentId", "@ps"),
        ("SpanKind", "@sk"),
        ("Start", "@st"),
    ):
        value = event.get(key)
        if value is not None:
            out[member] = value if isinstance(value, str) else str(value)
    if render:
        out["RenderedMessage"] = rendered_message(event)
    if (elapsed := _elapsed(event)) is not None:
        out["Elapsed"] = elapsed
    if "@ra" in event:
        out["Resource"] = _parts(event["@ra"])
    if "@sa" in event:
        out["Scope"] = _parts(event["@sa"])
    out["Id"] = event_id
    out["Links"] = {"Self": f"api/events/{event_id}", "Group": "api/events/resources"}
    return out
