"""OTLP/HTTP logs and traces (protobuf and JSON) turned into CLEF.

`decode_logs` and `decode_traces` take an `ExportLogsServiceRequest` /
`ExportTraceServiceRequest` body and give one CLEF line per accepted log record or span, plus
the counts the OTLP response reports.  A body that cannot be read at all raises
`InvalidEvents(1, …)` (the server answers 400); a content type other than
`application/x-protobuf` (or `application/protobuf`) and `application/json` raises `ValueError`
(415).  A record that cannot be mapped is left out and counted in `rejected`, which the
`encode_*_response` functions report as OTLP's `partial_success`.

JSON follows the OTLP/JSON mapping: lowerCamelCase names (the original snake_case names are
accepted too, as every proto3 JSON reader does), trace and span ids as hex (base64, as generic
proto3 JSON writers send them, is read too), enums as numbers or names, 64-bit integers as
numbers or decimal strings, doubles as numbers or the strings `NaN`, `Infinity`, `-Infinity`,
bytes as base64, null meaning absent, unknown members ignored.  A member of the wrong JSON type,
or an id that is neither hex nor base64 of the right size, makes the whole body invalid; hex of
the wrong size is an absent id, as in protobuf.

Values.  An `AnyValue` becomes the JSON value it obviously is: string, boolean, integer
(int64, exact), double (non-finite ones as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`,
their proto3 JSON spelling, since JSON has no such numbers), bytes as a base64 string, an array
as an array, a key-value list as an object (a repeated key: the last wins), an empty value as
null.  (`string_value_strindex` refers to a dictionary that only OTLP profiles carry, so it is
read as an empty value.)  Attribute names become CLEF property names, one more `@` in front of
a name that starts with `@` (CLEF's escape).  Names keep their dots: `http.method` stays one
property named `http.method`.

Log record → CLEF:

* `@t`: `timeUnixNano`, else `observedTimeUnixNano` (the fallback the OTLP data model
  recommends); both 0 → the record is rejected.  Every timestamp is written as RFC 3339 UTC
  with 7 fractional digits (100 ns, nanoseconds truncated).
* `@l`: `severityText` as sent; if empty, the Seq level name of `severityNumber`
  (`levels.canonical_of_otlp_severity`); neither → no `@l` (Information).
* Message.  Seq reads a string body as a message template when it looks like one (its maintainers:
  "Seq heuristically detects message templates in OTLP bodies", datalust/seq-tickets#2314); seqfast
  does so in two cases: the `message_template.text` attribute (set by Serilog's OpenTelemetry sink)
  is the template, and then the string body is the rendered message (`@m`); otherwise a string body
  that holds a template hole (Serilog's syntax, e.g. `{Name}`) naming one of the record's attributes
  is the template (`@mt`: .NET's exporter sends `Hello {Name}` with a `Name` attribute).  Any other
  string body is the message (`@m`), taken literally.  With a template, the
  `message_template.renderings` attribute (an array of strings) becomes `@r`.  Both attributes are
  consumed, not kept as properties.
* A key-value-list body: its entries become properties, and the first string among the
  entries `message`, `msg`, `Message` also becomes `@m`.  Any other body (number, boolean,
  bytes, array) becomes `@m` as the JSON text of its value.
* `exception.stacktrace` (a string attribute, OpenTelemetry's exception convention) becomes
  `@x` instead of a property; `exception.type` and `exception.message` stay properties.
* `eventName` becomes the property `EventName`, and also `@mt` (braces escaped, so it renders
  literally) when nothing above gave the record a message.
* `traceId`/`spanId` → `@tr`/`@sp` as lowercase hex, left out when empty, all zero or of the
  wrong length.  `flags` and the dropped-attribute count are not kept.

Span → CLEF:

* `@t` = end time, `@st` = start time; either 0 → the span is rejected, as is a span without
  a valid (16-byte, not all-zero) trace id or (8-byte, not all-zero) span id.
* `@mt` = the span name, as is: like a Serilog span template, a `{hole}` in it renders the
  attribute of that name.
* `@tr`, `@sp`, `@ps` (parent span id; left out when empty or all zero), `@sk` = `Internal`,
  `Server`, `Client`, `Producer` or `Consumer` (unspecified → left out).
* Status ERROR → `@l` = `Error` (otherwise no `@l`: Information); a status message becomes
  the property `StatusMessage`.
* Span events → the property `Events`: an array of `{"name", "time", "attributes"}` objects
  (`time` left out when 0, `attributes` when empty).  Links → the property `Links`: an array
  of `{"traceId", "spanId", "attributes"}` objects (`attributes` left out when empty).
  Trace state and flags are not kept.

A property derived from a record's own fields (`EventName`, `StatusMessage`, `Events`,
`Links`, the entries of a key-value-list body) never replaces an attribute of the same name:
the attribute wins.

Resource and scope (both signals):

* `@ra` = the resource attributes as one object (left out when there are none).
* `@sa` = the instrumentation scope as one object: `name` and `version` (when not empty) and the
  scope attributes beside them (Seq's API documents an event's scope as the scope attributes plus
  the scope name in a well-known `name` property: seq-api `EventEntity.Scope`).  The scope's own
  `name` and `version` win over attributes of those names.

Per-record rejections (besides the timestamp and id rules above): a value nested deeper than
the CLEF reader allows (`reference_clef.MAX_DEPTH`, 64), and a record whose CLEF line would be
longer than `max_event_bytes` (the store's per-event limit, 256 KiB by default).  Either would
otherwise make the store refuse the whole batch.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import orjson
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from seqfast.errors import InvalidEvents
from seqfast.events.clef import DEFAULT_MAX_EVENT_BYTES
from seqfast.events.levels import canonical_of_otlp_severity
from seqfast.events.seqjson import property_tokens
from seqfast.storage.ids import format_ticks

__all__ = [
    "OtlpResult",
    "decode_logs",
    "decode_traces",
    "encode_logs_response",
    "encode_traces_response",
]

MAX_DEPTH: Final = 64  # the CLEF reader's limit on nested arrays and objects
_NANOS_PER_TICK: Final = 100
_NANOS_PER_SECOND: Final = 1_000_000_000
_TICKS_PER_SECOND: Final = 10_000_000

_TEMPLATE_ATTRIBUTE: Final = "message_template.text"
_RENDERINGS_ATTRIBUTE: Final = "message_template.renderings"
_STACKTRACE_ATTRIBUTE: Final = "exception.stacktrace"
_MESSAGE_KEYS: Final = ("message", "msg", "Message")

_SPAN_KINDS: Final = {1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
_STATUS_ERROR: Final = 2

# Enum names the OTLP/JSON mapping allows in place of numbers.
_SEVERITY_NAMES: Final = dict(logs_pb2.SeverityNumber.items())
_SPAN_KIND_NAMES: Final = dict(trace_pb2.Span.SpanKind.items())
_STATUS_NAMES: Final = dict(trace_pb2.Status.StatusCode.items())

_NONFINITE: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass
class OtlpResult:
    """What an OTLP request decoded to."""

    clef: bytes
    """One CLEF line (newline-terminated) per accepted record or span, in request order."""
    accepted: int
    rejected: int
    """Records or spans that could not be mapped (no usable timestamp, ...)."""
    error_message: str
    """"" when nothing was rejected, else a sentence for OTLP's partial_success."""


class _Rejected(Exception):
    """One record cannot be mapped; `reason` completes "log record N …" / "span N …"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _BadJson(Exception):
    """The JSON body does not follow the OTLP/JSON mapping; the message says where."""


# --- content types and responses ---------------------------------------------------------------


def _is_json(content_type: str) -> bool:
    """True for JSON, False for protobuf; ValueError for anything else."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("application/x-protobuf", "application/protobuf"):
        return False
    if media == "application/json":
        return True
    raise ValueError(
        f"unsupported content type {content_type!r}: OTLP/HTTP takes "
        "application/x-protobuf or application/json"
    )


def encode_logs_response(result: OtlpResult, content_type: str) -> bytes:
    """An ExportLogsServiceResponse for `result`, in the encoding of `content_type`."""
    return _encode_response(
        result,
        content_type,
        logs_service_pb2.ExportLogsServiceResponse,
        ("rejected_log_records", "rejectedLogRecords"),
    )


def encode_traces_response(result: OtlpResult, content_type: str) -> bytes:
    """An ExportTraceServiceResponse for `result`, in the encoding of `content_type`."""
    return _encode_response(
        result,
        content_type,
        trace_service_pb2.ExportTraceServiceResponse,
        ("rejected_spans", "rejectedSpans"),
    )


def _encode_response(
    result: OtlpResult, content_type: str, response_class: Any, rejected_field: tuple[str, str]
) -> bytes:
    """`rejected_field` is the (proto, JSON) name of the response's rejected-count field."""
    # OTLP: partial_success is set only when something was rejected (or there is a warning).
    partial = result.rejected > 0 or bool(result.error_message)
    if _is_json(content_type):
        if not partial:
            return b"{}"
        # proto3 JSON writes int64 as a decimal string.
        body = {rejected_field[1]: str(result.rejected), "errorMessage": result.error_message}
        return orjson.dumps({"partialSuccess": body})
    response = response_class()
    if partial:
        setattr(response.partial_success, rejected_field[0], result.rejected)
        response.partial_success.error_message = result.error_message
    data: bytes = response.SerializeToString()
    return data


# --- shared mapping -----------------------------------------------------------------------------


# (second, "YYYY-MM-DDTHH:MM:SS") of the last timestamp written: the records of one request
# mostly share their second, and formatting the date is the slow part.  One tuple, replaced
# whole, so concurrent callers at worst recompute it.
_last_second: tuple[int, str] = (-1, "")


def _timestamp(nanos: int) -> str:
    """RFC 3339 UTC text with 7 fractional digits (nanoseconds truncated) of Unix nanoseconds."""
    global _last_second
    second, fraction = divmod(nanos, _NANOS_PER_SECOND)
    cached = _last_second
    if cached[0] != second:
        cached = (second, format_ticks(second * _TICKS_PER_SECOND)[:19])
        _last_second = cached
    return f"{cached[1]}.{fraction // _NANOS_PER_TICK:07d}Z"


def _double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _name(key: str) -> str:
    return "@" + key if key.startswith("@") else key


def _add_properties(out: dict[str, Any], attributes: dict[str, Any]) -> None:
    for key, value in attributes.items():
        if key[:1] == "@":
            key = "@" + key
        out[key] = value


def _add_derived(out: dict[str, Any], attributes: dict[str, Any], key: str, value: Any) -> None:
    """A property derived from the record's own fields; an attribute of that name wins."""
    if key not in attributes:
        out[_name(key)] = value


def _escape_template(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _looks_like_template(body: str, attributes: dict[str, Any]) -> bool:
    return "{" in body and any(name in attributes for name, _ in property_tokens(body))


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


_BODY_STRING: Final = 0
_BODY_KVLIST: Final = 1
_BODY_OTHER: Final = 2


def _log_event(
    time: int,
    observed: int,
    severity_number: int,
    severity_text: str,
    body: tuple[int, Any] | None,
    attributes: dict[str, Any],
    trace_id: str,
    span_id: str,
    event_name: str,
) -> dict[str, Any]:
    """The CLEF object (without `@ra`/`@sa`) of one log record, from already-decoded fields.

    `attributes` is consumed: the attributes that become reified fields are removed from it.
    """
    nanos = time or observed
    if not nanos:
        raise _Rejected("has no timestamp (timeUnixNano and observedTimeUnixNano are both 0)")
    out: dict[str, Any] = {"@t": _timestamp(nanos)}
    level = severity_text or canonical_of_otlp_severity(severity_number)
    if level:
        out["@l"] = level

    template = attributes.get(_TEMPLATE_ATTRIBUTE)
    if isinstance(template, str):
        del attributes[_TEMPLATE_ATTRIBUTE]
    else:
        template = None
    message: str | None = None
    body_entries: dict[str, Any] = {}
    if body is not None:
        kind, value = body
        if kind == _BODY_STRING:
            if template is None and _looks_like_template(value, attributes):
                template = value
            else:
                message = value
        elif kind == _BODY_KVLIST:
            body_entries = value
            for key in _MESSAGE_KEYS:
                candidate = value.get(key)
                if isinstance(candidate, str):
                    message = candidate
                    break
        elif value is not None:
            message = value if isinstance(value, str) else _json_text(value)
    if template is None and message is None and event_name:
        template = _escape_template(event_name)
    if template is not None:
        out["@mt"] = template
        renderings = attributes.get(_RENDERINGS_ATTRIBUTE)
        if isinstance(renderings, list) and all(isinstance(r, str) for r in renderings):
            del attributes[_RENDERINGS_ATTRIBUTE]
            out["@r"] = renderings
    if message is not None:
        out["@m"] = message
    stacktrace = attributes.get(_STACKTRACE_ATTRIBUTE)
    if isinstance(stacktrace, str):
        del attributes[_STACKTRACE_ATTRIBUTE]
        out["@x"] = stacktrace
    if trace_id:
        out["@tr"] = trace_id
    if span_id:
        out["@sp"] = span_id
    _add_properties(out, attributes)
    for key, value in body_entries.items():
        _add_derived(out, attributes, key, value)
    if event_name:
        _add_derived(out, attributes, "EventName", event_name)
    return out


def _span_event(
    start: int,
    end: int,
    name: str,
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    kind: int,
    status_code: int,
    status_message: str,
    attributes: dict[str, Any],
    events: list[dict[str, Any]],
    links: list[dict[str, Any]],
) -> dict[str, Any]:
    """The CLEF object (without `@ra`/`@sa`) of one span, from already-decoded fields."""
    if not start or not end:
        raise _Rejected("has no start or end time")
    if not trace_id:
        raise _Rejected("has no valid traceId")
    if not span_id:
        raise _Rejected("has no valid spanId")
    out: dict[str, Any] = {"@t": _timestamp(end), "@st": _timestamp(start), "@mt": name}
    if status_code == _STATUS_ERROR:
        out["@l"] = "Error"
    out["@tr"] = trace_id
    out["@sp"] = span_id
    if parent_span_id:
        out["@ps"] = parent_span_id
    kind_name = _SPAN_KINDS.get(kind)
    if kind_name is not None:
        out["@sk"] = kind_name
    _add_properties(out, attributes)
    if status_message:
        _add_derived(out, attributes, "StatusMessage", status_message)
    if events:
        _add_derived(out, attributes, "Events", events)
    if links:
        _add_derived(out, attributes, "Links", links)
    return out


def _scope_object(name: str, version: str, attributes: dict[str, Any]) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    if name:
        scope["name"] = name
    if version:
        scope["version"] = version
    for key, value in attributes.items():
        scope.setdefault(key, value)
    return scope


class _Writer:
    """Collects CLEF lines, counts, and the first rejection reason."""

    def __init__(self, noun: str, max_event_bytes: int) -> None:
        self.noun = noun
        self.max_event_bytes = max_event_bytes
        self.lines: list[bytes] = []
        self.number = 0  # of the record being written, 1-based over the whole request
        self.rejected = 0
        self.first_problem = ""

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if not self.first_problem:
            self.first_problem = f"{self.noun} {self.number} {reason}"

    def each(
        self, items: Iterable[Any], suffix: Callable[..., bytes], *context: Any
    ) -> Iterator[tuple[bytes, Any]]:
        """Numbers the records of one resource and scope and yields each with the context
        suffix `suffix(*context)`; when that context is unusable, rejects them all instead."""
        try:
            members = suffix(*context)
        except _Rejected as exc:
            for _ in items:
                self.number += 1
                self.reject(f"has a resource or scope that {exc.reason}")
            return
        for item in items:
            self.number += 1
            yield members, item

    def add(self, event: dict[str, Any], suffix: bytes) -> None:
        """Write `event` with the pre-serialised `"@ra":…,"@sa":…` members `suffix`."""
        line = orjson.dumps(event)
        if suffix:
            line = line[:-1] + suffix
        if len(line) > self.max_event_bytes:
            self.reject(
                f"is {len(line)} bytes as CLEF, over the limit of {self.max_event_bytes} bytes"
            )
            return
        self.lines.append(line)

    def result(self) -> OtlpResult:
        accepted = len(self.lines)
        message = ""
        if self.rejected:
            total = accepted + self.rejected
            plural = "s" if total != 1 else ""
            message = (
                f"{self.rejected} of {total} {self.noun}{plural} rejected; "
                f"the first: {self.first_problem}."
            )
        clef = b"\n".join(self.lines) + b"\n" if self.lines else b""
        return OtlpResult(
            clef=clef, accepted=accepted, rejected=self.rejected, error_message=message
        )


def _context_suffix(resource: dict[str, Any], scope: dict[str, Any]) -> bytes:
    """The `,"@ra":{…},"@sa":{…}}` tail shared by every line of one scope.

    Serialised once per scope rather than once per record: resources are often the bulk of a
    record's attributes.
    """
    parts = []
    if resource:
        parts.append(b',"@ra":' + orjson.dumps(resource))
    if scope:
        parts.append(b',"@sa":' + orjson.dumps(scope))
    return b"".join(parts) + b"}" if parts else b""


# --- protobuf -----------------------------------------------------------------------------------


def _pb_value(value: Any, depth: int) -> Any:
    """The JSON value of an AnyValue that sits at `depth` in the CLEF document."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return _double(value.double_value)
    if kind == "kvlist_value":
        if depth > MAX_DEPTH:
            raise _Rejected(f"nests values deeper than {MAX_DEPTH} levels")
        return {kv.key: _pb_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "array_value":
        if depth > MAX_DEPTH:
            raise _Rejected(f"nests values deeper than {MAX_DEPTH} levels")
        return [_pb_value(item, depth + 1) for item in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def _pb_attributes(attributes: Iterable[Any], depth: int) -> dict[str, Any]:
    """Attributes as an object whose values sit at `depth`."""
    return {kv.key: _pb_value(kv.value, depth) for kv in attributes}


def _pb_id(raw: bytes, size: int) -> str:
    """Lowercase hex of a trace or span id; "" when empty, all zero or of the wrong size."""
    if len(raw) != size or not any(raw):
        return ""
    return raw.hex()


def _pb_parse(message: Any, body: bytes) -> None:
    try:
        message.ParseFromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        # upb raises DecodeError for malformed input; RecursionError (a RuntimeError) guards
        # against pathological nesting in the pure-Python implementation.
        raise InvalidEvents(1, f"invalid OTLP protobuf: {exc or 'cannot parse the body'}") from None


def _pb_suffix(resource: Any, scope: Any) -> bytes:
    """`_context_suffix` of a protobuf Resource and InstrumentationScope (or `_Rejected`)."""
    return _context_suffix(
        _pb_attributes(resource.attributes, 3),
        _scope_object(scope.name, scope.version, _pb_attributes(scope.attributes, 3)),
    )


def _pb_logs(body: bytes, writer: _Writer) -> None:
    request = logs_service_pb2.ExportLogsServiceRequest()
    _pb_parse(request, body)
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            records = scope_logs.log_records
            for suffix, record in writer.each(
                records, _pb_suffix, resource_logs.resource, scope_logs.scope
            ):
                try:
                    body_value: tuple[int, Any] | None = None
                    if record.HasField("body"):
                        body_value = _pb_body(record.body)
                    event = _log_event(
                        record.time_unix_nano,
                        record.observed_time_unix_nano,
                        record.severity_number,
                        record.severity_text,
                        body_value,
                        _pb_attributes(record.attributes, 2),
                        _pb_id(record.trace_id, 16),
                        _pb_id(record.span_id, 8),
                        record.event_name,
                    )
                except _Rejected as exc:
                    writer.reject(exc.reason)
                    continue
                writer.add(event, suffix)


def _pb_body(value: Any) -> tuple[int, Any]:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _BODY_STRING, value.string_value
    if kind == "kvlist_value":
        # The entries become top-level properties: their values sit at depth 2.
        return _BODY_KVLIST, {kv.key: _pb_value(kv.value, 2) for kv in value.kvlist_value.values}
    return _BODY_OTHER, _pb_value(value, 2)


def _pb_traces(body: bytes, writer: _Writer) -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    _pb_parse(request, body)
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            spans = scope_spans.spans
            for suffix, span in writer.each(
                spans, _pb_suffix, resource_spans.resource, scope_spans.scope
            ):
                try:
                    event = _span_event(
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        span.name,
                        _pb_id(span.trace_id, 16),
                        _pb_id(span.span_id, 8),
                        _pb_id(span.parent_span_id, 8),
                        span.kind,
                        span.status.code,
                        span.status.message,
                        _pb_attributes(span.attributes, 2),
                        [_pb_span_event(e) for e in span.events],
                        [_pb_link(link) for link in span.links],
                    )
                except _Rejected as exc:
                    writer.reject(exc.reason)
                    continue
                writer.add(event, suffix)


def _pb_span_event(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": event.name}
    if event.time_unix_nano:
        out["time"] = _timestamp(event.time_unix_nano)
    if event.attributes:
        # Events array (2) → event object (3) → attributes object (4) → values (5).
        out["attributes"] = _pb_attributes(event.attributes, 5)
    return out


def _pb_link(link: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": _pb_id(link.trace_id, 16),
        "spanId": _pb_id(link.span_id, 8),
    }
    if link.attributes:
        out["attributes"] = _pb_attributes(link.attributes, 5)
    return out


# --- JSON ---------------------------------------------------------------------------------------
#
# The OTLP/JSON walkers read orjson's output directly.  Each reader takes the object, the
# lowerCamelCase name and the snake_case name of a field; a missing field or null is the
# field's default.


def _fail(what: str) -> NoReturn:
    raise _BadJson(what)


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _j_object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(f"{what} must be an object")
    return value


def _j_array(obj: dict[str, Any], camel: str, snake: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(f"{camel} must be an array")
    return value


def _j_objects(obj: dict[str, Any], camel: str, snake: str) -> list[dict[str, Any]]:
    items = _j_array(obj, camel, snake)
    for item in items:
        if not isinstance(item, dict):
            _fail(f"every element of {camel} must be an object")
    return items


def _j_string(obj: dict[str, Any], camel: str, snake: str) -> str:
    value = _get(obj, camel, snake)
    if value is None:
        return ""
    if not isinstance(value, str):
        _fail(f"{camel} must be a string")
    return value


def _j_int(value: Any, what: str, signed: bool) -> int:
    """A 64-bit integer written as a JSON number or a decimal string."""
    if value is None:
        return 0
    if isinstance(value, str):
        try:
            number = int(value, 10)
        except ValueError:
            _fail(f"{what} must be an integer")
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        # proto3 JSON readers accept 1.0 and 1e3 for integer fields.
        number = int(value)
    else:
        _fail(f"{what} must be an integer")
    low, high = (-(2**63), 2**63 - 1) if signed else (0, 2**64 - 1)
    if not low <= number <= high:
        _fail(f"{what} is out of range")
    return number


def _j_uint(obj: dict[str, Any], camel: str, snake: str) -> int:
    return _j_int(_get(obj, camel, snake), camel, signed=False)


def _j_enum(obj: dict[str, Any], camel: str, snake: str, names: dict[str, int]) -> int:
    value = _get(obj, camel, snake)
    if isinstance(value, str):
        number = names.get(value)
        if number is None:
            _fail(f"{camel} {value!r} is not a known value")
        return number
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value is None:
        return 0
    _fail(f"{camel} must be an enum name or number")


def _j_id(obj: dict[str, Any], camel: str, snake: str, size: int) -> str:
    """Lowercase hex of an id; "" when empty, all zero or of the wrong size.

    OTLP/JSON writes ids as hex; a generic proto3 JSON writer (protobuf's own json_format, for
    one) writes them as base64.  Hex of the right size (`2 * size` characters) cannot be base64
    of `size` bytes (at most `4 * ceil(size / 3)` characters), so text that is not hex is read
    as base64 when it decodes to exactly `size` bytes.
    """
    text = _j_string(obj, camel, snake)
    if not text:
        return ""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = _b64decode(text)
        except ValueError:
            raw = b""
        if len(raw) != size:
            _fail(f"{camel} must be hex")
    if len(raw) != size or not any(raw):
        return ""
    return raw.hex()


def _j_double(value: Any) -> float | str:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        special = _NONFINITE.get(value)
        if special is not None:
            return _double(special)
        try:
            return _double(float(value))
        except ValueError:
            pass
    _fail("doubleValue must be a number")


def _b64decode(text: str) -> bytes:
    """proto3 JSON bytes: standard or URL-safe base64, padded or not; ValueError if not."""
    text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def _j_bytes(value: Any) -> str:
    if not isinstance(value, str):
        _fail("bytesValue must be a base64 string")
    try:
        raw = _b64decode(value)
    except ValueError:
        _fail("bytesValue must be a base64 string")
    # Written back as standard padded base64, as protobuf bytes are.
    return base64.b64encode(raw).decode("ascii")


def _j_value(value: Any, depth: int) -> Any:
    """The JSON value of an OTLP/JSON AnyValue that sits at `depth` in the CLEF document."""
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail("an AnyValue must be an object")
    for key, item in value.items():
        if item is None:
            continue
        if key in ("stringValue", "string_value"):
            if not isinstance(item, str):
                _fail("stringValue must be a string")
            return item
        if key in ("intValue", "int_value"):
            return _j_int(item, "intValue", signed=True)
        if key in ("boolValue", "bool_value"):
            if not isinstance(item, bool):
                _fail("boolValue must be true or false")
            return item
        if key in ("doubleValue", "double_value"):
            return _j_double(item)
        if key in ("kvlistValue", "kvlist_value"):
            if depth > MAX_DEPTH:
                raise _Rejected(f"nests values deeper than {MAX_DEPTH} levels")
            return _j_attributes(_j_object(item, "kvlistValue"), "values", "values", depth + 1)
        if key in ("arrayValue", "array_value"):
            if depth > MAX_DEPTH:
                raise _Rejected(f"nests values deeper than {MAX_DEPTH} levels")
            items = _j_array(_j_object(item, "arrayValue"), "values", "values")
            return [_j_value(element, depth + 1) for element in items]
        if key in ("bytesValue", "bytes_value"):
            return _j_bytes(item)
        # Anything else (e.g. stringValueStrindex) is not a value logs or traces can use.
    return None


def _j_attributes(obj: dict[str, Any], camel: str, snake: str, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in _j_objects(obj, camel, snake):
        key = kv.get("key")
        if key is None:
            key = ""  # proto3 JSON leaves default (empty) strings out
        elif not isinstance(key, str):
            _fail("every attribute must have a string key")
        out[key] = _j_value(kv.get("value"), depth)
    return out


def _j_body(value: Any) -> tuple[int, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail("body must be an AnyValue object")
    text = _get(value, "stringValue", "string_value")
    if text is not None:
        if not isinstance(text, str):
            _fail("stringValue must be a string")
        return _BODY_STRING, text
    kvlist = _get(value, "kvlistValue", "kvlist_value")
    if kvlist is not None:
        return _BODY_KVLIST, _j_attributes(_j_object(kvlist, "kvlistValue"), "values", "values", 2)
    return _BODY_OTHER, _j_value(value, 2)


def _j_suffix(resource_container: dict[str, Any], scope_container: dict[str, Any]) -> bytes:
    """`_context_suffix` of the resource and scope of resource/scope containers (or
    `_Rejected`)."""
    resource = _j_object(resource_container.get("resource"), "resource")
    scope = _j_object(scope_container.get("scope"), "scope")
    return _context_suffix(
        _j_attributes(resource, "attributes", "attributes", 3),
        _scope_object(
            _j_string(scope, "name", "name"),
            _j_string(scope, "version", "version"),
            _j_attributes(scope, "attributes", "attributes", 3),
        ),
    )


def _j_load(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvents(1, f"invalid OTLP JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidEvents(1, "invalid OTLP JSON: the body is not a JSON object")
    return document


def _j_logs(body: bytes, writer: _Writer) -> None:
    for resource_logs in _j_objects(_j_load(body), "resourceLogs", "resource_logs"):
        for scope_logs in _j_objects(resource_logs, "scopeLogs", "scope_logs"):
            records = _j_objects(scope_logs, "logRecords", "log_records")
            for suffix, record in writer.each(records, _j_suffix, resource_logs, scope_logs):
                try:
                    event = _log_event(
                        _j_uint(record, "timeUnixNano", "time_unix_nano"),
                        _j_uint(record, "observedTimeUnixNano", "observed_time_unix_nano"),
                        _j_enum(record, "severityNumber", "severity_number", _SEVERITY_NAMES),
                        _j_string(record, "severityText", "severity_text"),
                        _j_body(record.get("body")),
                        _j_attributes(record, "attributes", "attributes", 2),
                        _j_id(record, "traceId", "trace_id", 16),
                        _j_id(record, "spanId", "span_id", 8),
                        _j_string(record, "eventName", "event_name"),
                    )
                except _Rejected as exc:
                    writer.reject(exc.reason)
                    continue
                except _BadJson as exc:
                    raise _BadJson(f"{exc} in {writer.noun} {writer.number}") from None
                writer.add(event, suffix)


def _j_traces(body: bytes, writer: _Writer) -> None:
    for resource_spans in _j_objects(_j_load(body), "resourceSpans", "resource_spans"):
        for scope_spans in _j_objects(resource_spans, "scopeSpans", "scope_spans"):
            spans = _j_objects(scope_spans, "spans", "spans")
            for suffix, span in writer.each(spans, _j_suffix, resource_spans, scope_spans):
                try:
                    status = _j_object(span.get("status"), "status")
                    event = _span_event(
                        _j_uint(span, "startTimeUnixNano", "start_time_unix_nano"),
                        _j_uint(span, "endTimeUnixNano", "end_time_unix_nano"),
                        _j_string(span, "name", "name"),
                        _j_id(span, "traceId", "trace_id", 16),
                        _j_id(span, "spanId", "span_id", 8),
                        _j_id(span, "parentSpanId", "parent_span_id", 8),
                        _j_enum(span, "kind", "kind", _SPAN_KIND_NAMES),
                        _j_enum(status, "code", "code", _STATUS_NAMES),
                        _j_string(status, "message", "message"),
                        _j_attributes(span, "attributes", "attributes", 2),
                        [_j_span_event(e) for e in _j_objects(span, "events", "events")],
                        [_j_link(link) for link in _j_objects(span, "links", "links")],
                    )
                except _Rejected as exc:
                    writer.reject(exc.reason)
                    continue
                except _BadJson as exc:
                    raise _BadJson(f"{exc} in {writer.noun} {writer.number}") from None
                writer.add(event, suffix)


def _j_span_event(event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": _j_string(event, "name", "name")}
    time = _j_uint(event, "timeUnixNano", "time_unix_nano")
    if time:
        out["time"] = _timestamp(time)
    attributes = _j_attributes(event, "attributes", "attributes", 5)
    if attributes:
        out["attributes"] = attributes
    return out


def _j_link(link: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": _j_id(link, "traceId", "trace_id", 16),
        "spanId": _j_id(link, "spanId", "span_id", 8),
    }
    attributes = _j_attributes(link, "attributes", "attributes", 5)
    if attributes:
        out["attributes"] = attributes
    return out


# --- entry points -------------------------------------------------------------------------------


def _decode(
    body: bytes,
    content_type: str,
    noun: str,
    max_event_bytes: int,
    from_protobuf: Callable[[bytes, _Writer], None],
    from_json: Callable[[bytes, _Writer], None],
) -> OtlpResult:
    json_encoded = _is_json(content_type)
    writer = _Writer(noun, max_event_bytes)
    if not json_encoded:
        from_protobuf(body, writer)
        return writer.result()
    try:
        from_json(body, writer)
    except _BadJson as exc:
        raise InvalidEvents(1, f"invalid OTLP JSON: {exc}") from None
    return writer.result()


def decode_logs(
    body: bytes, content_type: str, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> OtlpResult:
    """CLEF for an OTLP ExportLogsServiceRequest body (see the module docstring)."""
    return _decode(body, content_type, "log record", max_event_bytes, _pb_logs, _j_logs)


def decode_traces(
    body: bytes, content_type: str, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> OtlpResult:
    """CLEF for an OTLP ExportTraceServiceRequest body (see the module docstring)."""
    return _decode(body, content_type, "span", max_event_bytes, _pb_traces, _j_traces)
