"""OTLP/HTTP logs and traces, protobuf and JSON, turned into CLEF: the mapping, partial
success, bad bodies, and the store's reader accepting what comes out."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from seqfast.errors import InvalidEvents
from seqfast.events.clef import shred as native_shred
from seqfast.events.otlp import (
    OtlpResult,
    decode_logs,
    decode_traces,
    encode_logs_response,
    encode_traces_response,
)
from seqfast.testing.reference_clef import shred

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

T0 = 1714564800123456789  # 2024-05-01T12:00:00.123456789Z
T0_TEXT = "2024-05-01T12:00:00.1234567Z"
TRACE = bytes(range(1, 17))
TRACE_HEX = TRACE.hex()
SPAN = bytes(range(0xA1, 0xA9))
SPAN_HEX = SPAN.hex()
PARENT = bytes(range(0xB1, 0xB9))


# --- building requests --------------------------------------------------------------------------


def any_value(value: object) -> AnyValue:
    """The AnyValue of a Python value: str, bool, int, float, bytes, list, dict or None."""
    out = AnyValue()
    if isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.values.extend(any_value(v) for v in value)
    elif isinstance(value, dict):
        out.kvlist_value.values.extend(key_values(value))
    else:
        assert value is None
    return out


def key_values(attributes: dict[str, object]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def record(**fields: Any) -> LogRecord:
    """A LogRecord; `attributes` and `body` take Python values."""
    attributes = fields.pop("attributes", {})
    body = fields.pop("body", ...)
    out = LogRecord(attributes=key_values(attributes), **fields)
    if body is not ...:
        out.body.CopyFrom(any_value(body))
    return out


def logs_request(
    *records: LogRecord,
    resource: dict[str, object] | None = None,
    scope: InstrumentationScope | None = None,
) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    if resource is not None:
        resource_logs.resource.CopyFrom(Resource(attributes=key_values(resource)))
    scope_logs = resource_logs.scope_logs.add()
    if scope is not None:
        scope_logs.scope.CopyFrom(scope)
    scope_logs.log_records.extend(records)
    return request


def span(**fields: Any) -> Span:
    """A valid span unless overridden; `attributes` takes Python values."""
    attributes = fields.pop("attributes", {})
    defaults: dict[str, Any] = {
        "trace_id": TRACE,
        "span_id": SPAN,
        "name": "GET /orders",
        "start_time_unix_nano": T0,
        "end_time_unix_nano": T0 + 5_000_000,
    }
    return Span(attributes=key_values(attributes), **(defaults | fields))


def traces_request(
    *spans: Span,
    resource: dict[str, object] | None = None,
    scope: InstrumentationScope | None = None,
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    if resource is not None:
        resource_spans.resource.CopyFrom(Resource(attributes=key_values(resource)))
    scope_spans = resource_spans.scope_spans.add()
    if scope is not None:
        scope_spans.scope.CopyFrom(scope)
    scope_spans.spans.extend(spans)
    return request


# --- reading results ----------------------------------------------------------------------------


def events_of(result: OtlpResult) -> list[dict[str, Any]]:
    """The CLEF events of a result, after checking that the store's reader takes them."""
    assert shred(result.clef).n == native_shred(result.clef).n == result.accepted
    assert result.clef == b"" or result.clef.endswith(b"\n")
    return [json.loads(line) for line in result.clef.splitlines()]


def log_events(request: ExportLogsServiceRequest) -> list[dict[str, Any]]:
    """The events of a protobuf request, checked against the same request in OTLP/JSON."""
    result = decode_logs(request.SerializeToString(), PROTOBUF)
    assert decode_logs(otlp_json(request), JSON) == result
    return events_of(result)


def span_events(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    result = decode_traces(request.SerializeToString(), PROTOBUF)
    assert decode_traces(otlp_json(request), JSON) == result
    return events_of(result)


def only_log(rec: LogRecord, **context: Any) -> dict[str, Any]:
    (event,) = log_events(logs_request(rec, **context))
    return event


def only_span(s: Span, **context: Any) -> dict[str, Any]:
    (event,) = span_events(traces_request(s, **context))
    return event


_ID_FIELDS = {"traceId", "spanId", "parentSpanId"}


def otlp_json(message: Any) -> bytes:
    """A message in OTLP/JSON: protobuf's own JSON mapping with the ids turned to hex, as OTLP
    requires (protobuf writes bytes as base64)."""

    def hexify(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: base64.b64decode(v).hex() if k in _ID_FIELDS else hexify(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [hexify(v) for v in node]
        return node

    return json.dumps(hexify(MessageToDict(message))).encode()


# --- log records --------------------------------------------------------------------------------


def test_a_log_record_in_full() -> None:
    rec = record(
        time_unix_nano=T0,
        observed_time_unix_nano=T0 + 1000,
        severity_number=13,
        severity_text="WARN",
        body="Disk {Drive} is low",
        attributes={"Drive": "C:", "Free": 0.05, "Count": 3, "Ok": False},
        trace_id=TRACE,
        span_id=SPAN,
        flags=1,
        event_name="disk.low",
    )
    event = only_log(
        rec,
        resource={"service.name": "api", "host.pid": 42},
        scope=InstrumentationScope(
            name="Disk.Monitor", version="1.2", attributes=key_values({"lib": "x"})
        ),
    )
    assert event == {
        "@t": T0_TEXT,
        "@l": "WARN",
        "@mt": "Disk {Drive} is low",
        "@tr": TRACE_HEX,
        "@sp": SPAN_HEX,
        "Drive": "C:",
        "Free": 0.05,
        "Count": 3,
        "Ok": False,
        "EventName": "disk.low",
        "@ra": {"service.name": "api", "host.pid": 42},
        "@sa": {"name": "Disk.Monitor", "version": "1.2", "lib": "x"},
    }


@pytest.mark.parametrize(
    ("time", "observed", "expected"),
    [
        (T0, 0, T0_TEXT),
        (0, T0, T0_TEXT),
        (T0, 1, T0_TEXT),  # the event time wins over the observed time
        (1, 0, "1970-01-01T00:00:00.0000000Z"),  # 1 ns truncates to 0 ticks
        (99, 0, "1970-01-01T00:00:00.0000000Z"),
        (100, 0, "1970-01-01T00:00:00.0000001Z"),
        (2**64 - 1, 0, "2554-07-21T23:34:33.7095516Z"),
    ],
)
def test_timestamps(time: int, observed: int, expected: str) -> None:
    event = only_log(record(time_unix_nano=time, observed_time_unix_nano=observed))
    assert event == {"@t": expected}


def test_timestamps_across_seconds_are_each_right() -> None:
    second = 1_000_000_000
    times = [T0, T0 + 1, T0 + second, T0, T0 + 86400 * second, T0 - second]
    events = log_events(logs_request(*(record(time_unix_nano=t) for t in times)))
    assert [e["@t"] for e in events] == [
        "2024-05-01T12:00:00.1234567Z",
        "2024-05-01T12:00:00.1234567Z",
        "2024-05-01T12:00:01.1234567Z",
        "2024-05-01T12:00:00.1234567Z",
        "2024-05-02T12:00:00.1234567Z",
        "2024-05-01T11:59:59.1234567Z",
    ]


@pytest.mark.parametrize(
    ("number", "text", "expected"),
    [
        (0, "", None),
        (1, "", "Verbose"),
        (5, "", "Debug"),
        (9, "", "Information"),
        (12, "", "Information"),
        (13, "", "Warning"),
        (17, "", "Error"),
        (21, "", "Fatal"),
        (24, "", "Fatal"),
        (25, "", None),
        (17, "oops", "oops"),  # the text as sent wins
        (0, "Information", "Information"),
    ],
)
def test_levels(number: int, text: str, expected: str | None) -> None:
    event = only_log(record(time_unix_nano=T0, severity_number=number, severity_text=text))
    assert event.get("@l") == expected


BODIES: list[tuple[object, dict[str, object], dict[str, object]]] = [
    # a string without holes is the message, taken literally
    ("Started", {}, {"@m": "Started"}),
    ("{not json", {}, {"@m": "{not json"}),
    # holes that name no attribute: still a plain message
    ("Hello {Name}", {}, {"@m": "Hello {Name}"}),
    ("Hello {Name}", {"Other": 1}, {"@m": "Hello {Name}", "Other": 1}),
    # a hole naming an attribute: a template (.NET's exporter sends {OriginalFormat})
    ("Hello {Name}", {"Name": "W"}, {"@mt": "Hello {Name}", "Name": "W"}),
    ("Hello {@Name:l}", {"Name": "W"}, {"@mt": "Hello {@Name:l}", "Name": "W"}),
    ("{{Name}}", {"Name": "W"}, {"@m": "{{Name}}", "Name": "W"}),
    # Serilog's sink: rendered body plus the template attribute
    (
        'Hello "W"',
        {"message_template.text": "Hello {Name}", "Name": "W"},
        {"@mt": "Hello {Name}", "@m": 'Hello "W"', "Name": "W"},
    ),
    (
        "Paid 1.50",
        {
            "message_template.text": "Paid {Amount:0.00}",
            "message_template.renderings": ["1.50"],
            "Amount": 1.5,
        },
        {"@mt": "Paid {Amount:0.00}", "@r": ["1.50"], "@m": "Paid 1.50", "Amount": 1.5},
    ),
    # renderings without a template stay an attribute
    (
        "Paid",
        {"message_template.renderings": ["1.50"]},
        {"@m": "Paid", "message_template.renderings": ["1.50"]},
    ),
    # a template attribute that is not a string is just an attribute
    ("x", {"message_template.text": 5}, {"@m": "x", "message_template.text": 5}),
    # a key-value list body: entries become properties, a message key becomes @m
    (
        {"message": "hi", "user": {"id": 7}},
        {"extra": True},
        {"@m": "hi", "extra": True, "message": "hi", "user": {"id": 7}},
    ),
    ({"msg": "short", "Message": "long"}, {}, {"@m": "short", "msg": "short", "Message": "long"}),
    ({"message": 5, "Message": "text"}, {}, {"@m": "text", "message": 5, "Message": "text"}),
    ({"a": 1}, {"a": 2}, {"a": 2}),  # the attribute wins over a body entry
    ({"@t": "x"}, {}, {"@@t": "x"}),
    ({}, {}, {}),
    # other bodies: their JSON text
    (42, {}, {"@m": "42"}),
    (-1.5, {}, {"@m": "-1.5"}),
    (True, {}, {"@m": "true"}),
    (b"\x00\xff", {}, {"@m": "AP8="}),
    ([1, "a", None], {}, {"@m": '[1,"a",null]'}),
    (None, {}, {}),  # a body field holding an empty AnyValue
]


@pytest.mark.parametrize(("body", "attributes", "expected"), BODIES)
def test_bodies(body: object, attributes: dict[str, object], expected: dict[str, object]) -> None:
    event = only_log(record(time_unix_nano=T0, body=body, attributes=attributes))
    assert event == {"@t": T0_TEXT, **expected}


def test_event_name_is_the_template_only_when_there_is_no_message() -> None:
    unnamed = only_log(record(time_unix_nano=T0, event_name="cache {miss}"))
    assert unnamed == {"@t": T0_TEXT, "@mt": "cache {{miss}}", "EventName": "cache {miss}"}
    with_body = only_log(record(time_unix_nano=T0, event_name="e", body="b"))
    assert with_body == {"@t": T0_TEXT, "@m": "b", "EventName": "e"}
    shadowed = only_log(record(time_unix_nano=T0, event_name="e", attributes={"EventName": 1}))
    assert shadowed == {"@t": T0_TEXT, "@mt": "e", "EventName": 1}


def test_exception_stacktrace_is_the_exception() -> None:
    attributes = {
        "exception.type": "IOError",
        "exception.message": "disk full",
        "exception.stacktrace": "IOError: disk full\n  at Save()",
    }
    event = only_log(record(time_unix_nano=T0, body="Save failed", attributes=attributes))
    assert event == {
        "@t": T0_TEXT,
        "@m": "Save failed",
        "@x": "IOError: disk full\n  at Save()",
        "exception.type": "IOError",
        "exception.message": "disk full",
    }


@pytest.mark.parametrize(
    ("trace_id", "span_id", "expected"),
    [
        (TRACE, SPAN, {"@tr": TRACE_HEX, "@sp": SPAN_HEX}),
        (b"", b"", {}),
        (bytes(16), bytes(8), {}),  # all zero means none
        (TRACE[:8], SPAN + b"\x01", {}),  # the wrong size is no id
        (b"\xab" * 16, b"", {"@tr": "ab" * 16}),
    ],
)
def test_log_ids(trace_id: bytes, span_id: bytes, expected: dict[str, str]) -> None:
    event = only_log(record(time_unix_nano=T0, trace_id=trace_id, span_id=span_id))
    assert event == {"@t": T0_TEXT, **expected}


def test_attribute_names_starting_with_at_are_escaped() -> None:
    attributes = {"@t": 1, "@mt": "x", "@@l": 2, "@ra": {"a": 1}, "a@": 3}
    event = only_log(record(time_unix_nano=T0, body="real", attributes=attributes))
    assert event == {
        "@t": T0_TEXT,
        "@m": "real",
        "@@t": 1,
        "@@mt": "x",
        "@@@l": 2,
        "@@ra": {"a": 1},
        "a@": 3,
    }


def test_resource_and_scope_shapes() -> None:
    rec = record(time_unix_nano=T0)
    assert only_log(rec) == {"@t": T0_TEXT}
    assert only_log(rec, resource={}, scope=InstrumentationScope()) == {"@t": T0_TEXT}
    assert only_log(rec, scope=InstrumentationScope(name="s")) == {
        "@t": T0_TEXT,
        "@sa": {"name": "s"},
    }
    scope = InstrumentationScope(
        name="s", version="", attributes=key_values({"name": "shadowed", "version": "v", "k": [1]})
    )
    # the scope's own name wins; an empty version leaves an attribute of that name alone
    assert only_log(rec, scope=scope)["@sa"] == {"name": "s", "version": "v", "k": [1]}
    assert only_log(rec, resource={"@odd": {"deep": [True]}})["@ra"] == {"@odd": {"deep": [True]}}


def test_records_of_many_resources_and_scopes_keep_their_own_context() -> None:
    request = ExportLogsServiceRequest()
    for r in range(2):
        resource_logs = request.resource_logs.add()
        resource_logs.resource.attributes.extend(key_values({"r": r}))
        for s in range(2):
            scope_logs = resource_logs.scope_logs.add()
            scope_logs.scope.name = f"scope{s}"
            scope_logs.log_records.extend(
                record(time_unix_nano=T0, attributes={"n": n}) for n in range(2)
            )
    events = log_events(request)
    assert [(e["@ra"]["r"], e["@sa"]["name"], e["n"]) for e in events] == [
        (r, f"scope{s}", n) for r in range(2) for s in range(2) for n in range(2)
    ]


# --- values -------------------------------------------------------------------------------------

VALUES: list[tuple[object, object]] = [
    ("text", "text"),
    ("", ""),
    ('ünï\u2028\n"\\', 'ünï\u2028\n"\\'),
    (True, True),
    (False, False),
    (0, 0),
    (2**63 - 1, 2**63 - 1),
    (-(2**63), -(2**63)),
    (1.5, 1.5),
    (-0.0, -0.0),
    (1e300, 1e300),
    (5e-324, 5e-324),
    (math.inf, "Infinity"),
    (-math.inf, "-Infinity"),
    (b"", ""),
    (b"\x00\x01\xfe\xff", "AAH+/w=="),
    ([], []),
    ([1, "a", [None, 2.5]], [1, "a", [None, 2.5]]),
    ({}, {}),
    ({"a": {"b": [1, {"c": b"\x01"}]}}, {"a": {"b": [1, {"c": "AQ=="}]}}),
    (None, None),
]


@pytest.mark.parametrize(("value", "expected"), VALUES)
def test_attribute_values(value: object, expected: object) -> None:
    event = only_log(record(time_unix_nano=T0, attributes={"v": value}))
    assert event["v"] == expected
    assert type(event["v"]) is type(expected)


def test_nan_is_written_as_its_proto3_json_name() -> None:
    event = only_log(record(time_unix_nano=T0, attributes={"v": math.nan, "w": [math.nan]}))
    assert (event["v"], event["w"]) == ("NaN", ["NaN"])


def test_a_repeated_key_keeps_the_last_value() -> None:
    rec = LogRecord(time_unix_nano=T0, attributes=key_values({"a": 1}) + key_values({"a": 2}))
    assert only_log(rec) == {"@t": T0_TEXT, "a": 2}


def json_value(value: object) -> object:
    """The JSON value an AnyValue of `value` must become."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


SCALARS = (
    st.text()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.binary(max_size=20)
    | st.none()
)
TREES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(TREES)
def test_any_value_trees_survive(value: object) -> None:
    request = logs_request(record(time_unix_nano=T0, attributes={"v": value}))
    result = decode_logs(request.SerializeToString(), PROTOBUF)
    (event,) = events_of(result)
    expected = json_value(value)
    assert event["v"] == expected
    # NaN only equals its spelling; compare the rest by JSON text to catch int/float mix-ups.
    assert json.dumps(event["v"]) == json.dumps(expected)
    assert decode_logs(otlp_json(request), JSON) == result


# --- spans --------------------------------------------------------------------------------------


def test_a_span_in_full() -> None:
    s = span(
        parent_span_id=PARENT,
        kind=Span.SPAN_KIND_SERVER,
        attributes={"http.method": "GET", "http.status_code": 500},
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
        events=[
            Span.Event(time_unix_nano=T0 + 1000, name="exception", attributes=key_values({"x": 1})),
            Span.Event(name="no time"),
        ],
        links=[
            Span.Link(
                trace_id=b"\x02" * 16, span_id=b"\x03" * 8, attributes=key_values({"k": "v"})
            ),
            Span.Link(trace_id=b"\x04" * 16, span_id=b"\x05" * 8),
        ],
        trace_state="a=b",
        flags=1,
    )
    event = only_span(s, resource={"service.name": "api"}, scope=InstrumentationScope(name="t"))
    assert event == {
        "@t": "2024-05-01T12:00:00.1284567Z",
        "@st": T0_TEXT,
        "@mt": "GET /orders",
        "@l": "Error",
        "@tr": TRACE_HEX,
        "@sp": SPAN_HEX,
        "@ps": PARENT.hex(),
        "@sk": "Server",
        "http.method": "GET",
        "http.status_code": 500,
        "StatusMessage": "boom",
        "Events": [
            {"name": "exception", "time": "2024-05-01T12:00:00.1234577Z", "attributes": {"x": 1}},
            {"name": "no time"},
        ],
        "Links": [
            {"traceId": "02" * 16, "spanId": "03" * 8, "attributes": {"k": "v"}},
            {"traceId": "04" * 16, "spanId": "05" * 8},
        ],
        "@ra": {"service.name": "api"},
        "@sa": {"name": "t"},
    }


def test_a_minimal_span() -> None:
    assert only_span(span()) == {
        "@t": "2024-05-01T12:00:00.1284567Z",
        "@st": T0_TEXT,
        "@mt": "GET /orders",
        "@tr": TRACE_HEX,
        "@sp": SPAN_HEX,
    }


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (0, None),
        (1, "Internal"),
        (2, "Server"),
        (3, "Client"),
        (4, "Producer"),
        (5, "Consumer"),
        (9, None),
    ],
)
def test_span_kinds(kind: int, expected: str | None) -> None:
    assert only_span(span(kind=kind)).get("@sk") == expected


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (0, "", {}),
        (1, "", {}),
        (1, "fine", {"StatusMessage": "fine"}),
        (2, "", {"@l": "Error"}),
        (2, "bad", {"@l": "Error", "StatusMessage": "bad"}),
    ],
)
def test_span_status(code: int, message: str, expected: dict[str, str]) -> None:
    status = Status(message=message)
    status.code = code  # type: ignore[assignment]  # the stubs want the enum's NewType
    event = only_span(span(status=status))
    assert {k: v for k, v in event.items() if k in ("@l", "StatusMessage")} == expected


def test_span_attributes_win_over_derived_properties() -> None:
    s = span(
        attributes={"Events": "mine", "StatusMessage": 1, "Links": None, "@sk": "escaped"},
        status=Status(message="m"),
        events=[Span.Event(name="e")],
        links=[Span.Link(trace_id=TRACE, span_id=SPAN)],
    )
    event = only_span(s)
    assert (event["Events"], event["StatusMessage"], event["Links"]) == ("mine", 1, None)
    assert event["@@sk"] == "escaped"


def test_a_braced_span_name_is_kept_as_the_template() -> None:
    assert only_span(span(name="GET /users/{id}"))["@mt"] == "GET /users/{id}"


# --- rejected records and partial success -------------------------------------------------------


def test_records_without_a_timestamp_are_rejected_and_counted() -> None:
    request = logs_request(
        record(time_unix_nano=T0, body="one"),
        record(body="no time"),
        record(observed_time_unix_nano=T0, body="two"),
        record(body="no time either"),
    )
    result = decode_logs(request.SerializeToString(), PROTOBUF)
    assert (result.accepted, result.rejected) == (2, 2)
    assert [e["@m"] for e in events_of(result)] == ["one", "two"]
    assert result.error_message == (
        "2 of 4 log records rejected; the first: log record 2 has no timestamp "
        "(timeUnixNano and observedTimeUnixNano are both 0)."
    )
    assert decode_logs(otlp_json(request), JSON) == result

    response = ExportLogsServiceResponse()
    response.ParseFromString(encode_logs_response(result, PROTOBUF))
    assert response.HasField("partial_success")
    assert response.partial_success.rejected_log_records == 2
    assert response.partial_success.error_message == result.error_message
    assert json.loads(encode_logs_response(result, JSON)) == {
        "partialSuccess": {"rejectedLogRecords": "2", "errorMessage": result.error_message}
    }


def test_a_fully_accepted_request_has_an_empty_response() -> None:
    result = decode_logs(logs_request(record(time_unix_nano=T0)).SerializeToString(), PROTOBUF)
    assert (result.accepted, result.rejected, result.error_message) == (1, 0, "")
    assert encode_logs_response(result, PROTOBUF) == b""
    response = ExportLogsServiceResponse()
    response.ParseFromString(encode_logs_response(result, PROTOBUF))
    assert not response.HasField("partial_success")
    assert encode_logs_response(result, JSON) == b"{}"
    assert encode_traces_response(result, PROTOBUF) == b""
    assert encode_traces_response(result, "application/json; charset=utf-8") == b"{}"


def test_empty_requests() -> None:
    for data, content_type in ((b"", PROTOBUF), (b"{}", JSON), (b'{"resourceLogs":[]}', JSON)):
        assert decode_logs(data, content_type) == OtlpResult(b"", 0, 0, "")
        assert decode_traces(data, content_type) == OtlpResult(b"", 0, 0, "")


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (span(start_time_unix_nano=0), "span 2 has no start or end time"),
        (span(end_time_unix_nano=0), "span 2 has no start or end time"),
        (span(trace_id=b""), "span 2 has no valid traceId"),
        (span(trace_id=bytes(16)), "span 2 has no valid traceId"),
        (span(trace_id=TRACE[:15]), "span 2 has no valid traceId"),
        (span(span_id=b""), "span 2 has no valid spanId"),
        (span(span_id=bytes(8)), "span 2 has no valid spanId"),
    ],
)
def test_unmappable_spans_are_rejected(bad: Span, reason: str) -> None:
    request = traces_request(span(name="ok"), bad, span(name="also ok"))
    result = decode_traces(request.SerializeToString(), PROTOBUF)
    assert (result.accepted, result.rejected) == (2, 1)
    assert [e["@mt"] for e in events_of(result)] == ["ok", "also ok"]
    assert result.error_message == f"1 of 3 spans rejected; the first: {reason}."
    assert decode_traces(otlp_json(request), JSON) == result

    response = ExportTraceServiceResponse()
    response.ParseFromString(encode_traces_response(result, PROTOBUF))
    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message == result.error_message
    assert json.loads(encode_traces_response(result, JSON)) == {
        "partialSuccess": {"rejectedSpans": "1", "errorMessage": result.error_message}
    }


def test_a_record_over_the_event_size_limit_is_rejected() -> None:
    request = logs_request(
        record(time_unix_nano=T0, body="small"), record(time_unix_nano=T0, body="x" * 500)
    )
    result = decode_logs(request.SerializeToString(), PROTOBUF, max_event_bytes=300)
    assert (result.accepted, result.rejected) == (1, 1)
    assert result.error_message.startswith(
        "1 of 2 log records rejected; the first: log record 2 is "
    )
    assert result.error_message.endswith(" bytes as CLEF, over the limit of 300 bytes.")


def nested_json(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"intValue": "1"}
    for _ in range(levels):
        value = {"arrayValue": {"values": [value]}}
    return value


def json_logs(*records: dict[str, Any], resource: Any = None, scope: Any = None) -> bytes:
    scope_logs: dict[str, Any] = {"logRecords": list(records)}
    if scope is not None:
        scope_logs["scope"] = scope
    resource_logs: dict[str, Any] = {"scopeLogs": [scope_logs]}
    if resource is not None:
        resource_logs["resource"] = resource
    return json.dumps({"resourceLogs": [resource_logs]}).encode()


def test_values_nested_deeper_than_the_store_reads_are_rejected() -> None:
    # An attribute value sits at depth 2 of the CLEF document: 63 arrays fit, 64 do not.
    fits = {"timeUnixNano": str(T0), "attributes": [{"key": "v", "value": nested_json(63)}]}
    deep = {"timeUnixNano": str(T0), "attributes": [{"key": "v", "value": nested_json(64)}]}
    result = decode_logs(json_logs(fits, deep), JSON)
    assert (result.accepted, result.rejected) == (1, 1)
    assert "log record 2 nests values deeper than 64 levels" in result.error_message
    events_of(result)

    too_deep_resource = {"attributes": [{"key": "v", "value": nested_json(63)}]}
    result = decode_logs(json_logs(fits, fits, resource=too_deep_resource), JSON)
    assert (result.accepted, result.rejected) == (0, 2)
    assert "log record 1 has a resource or scope that nests values deeper" in result.error_message


# --- OTLP/JSON ----------------------------------------------------------------------------------


def test_a_hand_written_json_log_record() -> None:
    data = json_logs(
        {
            "timeUnixNano": "1714564800123456789",
            "observedTimeUnixNano": 1714564800123456789,
            "severityNumber": "SEVERITY_NUMBER_ERROR",
            "body": {"stringValue": "Saved {Id}"},
            "attributes": [
                {"key": "Id", "value": {"intValue": "9223372036854775807"}},
                {"key": "n", "value": {"intValue": -5}},
                {"key": "d", "value": {"doubleValue": 2.5}},
                {"key": "dn", "value": {"doubleValue": "NaN"}},
                {"key": "di", "value": {"doubleValue": "-Infinity"}},
                {"key": "ds", "value": {"doubleValue": "1.25"}},
                {"key": "di2", "value": {"doubleValue": 3}},
                {"key": "b", "value": {"boolValue": True}},
                {"key": "y", "value": {"bytesValue": "AP8="}},
                {"key": "yu", "value": {"bytesValue": "_-8"}},  # URL-safe, unpadded
                {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "x"}, {}]}}},
                {"key": "ae", "value": {"arrayValue": {}}},
                {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "k"}]}}},
                {"key": "e", "value": {}},
                {"key": "nul", "value": None},
                {"key": "missing"},
            ],
            "traceId": TRACE_HEX.upper(),
            "spanId": SPAN_HEX,
            "flags": 1,
            "unknownField": {"ignored": True},
        },
        resource={"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        scope={"name": "s", "version": "2"},
    )
    (event,) = events_of(decode_logs(data, JSON))
    assert event == {
        "@t": T0_TEXT,
        "@l": "Error",
        "@mt": "Saved {Id}",
        "@tr": TRACE_HEX,
        "@sp": SPAN_HEX,
        "Id": 9223372036854775807,
        "n": -5,
        "d": 2.5,
        "dn": "NaN",
        "di": "-Infinity",
        "ds": 1.25,
        "di2": 3.0,
        "b": True,
        "y": "AP8=",
        "yu": "/+8=",
        "a": ["x", None],
        "ae": [],
        "kv": {"k": None},
        "e": None,
        "nul": None,
        "missing": None,
        "@ra": {"service.name": "api"},
        "@sa": {"name": "s", "version": "2"},
    }


def test_snake_case_json_is_read_too() -> None:
    data = json.dumps(
        {
            "resource_logs": [
                {
                    "scope_logs": [
                        {
                            "log_records": [
                                {
                                    "time_unix_nano": str(T0),
                                    "severity_text": "Debug",
                                    "body": {
                                        "kvlist_value": {
                                            "values": [
                                                {"key": "message", "value": {"string_value": "m"}}
                                            ]
                                        }
                                    },
                                    "trace_id": TRACE_HEX,
                                    "span_id": SPAN_HEX,
                                    "event_name": "ev",
                                    "attributes": [{"key": "i", "value": {"int_value": "3"}}],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()
    (event,) = events_of(decode_logs(data, JSON))
    assert event == {
        "@t": T0_TEXT,
        "@l": "Debug",
        "@m": "m",
        "@tr": TRACE_HEX,
        "@sp": SPAN_HEX,
        "i": 3,
        "message": "m",
        "EventName": "ev",
    }


def test_a_hand_written_json_span() -> None:
    data = json.dumps(
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": TRACE_HEX,
                                    "spanId": SPAN_HEX,
                                    "parentSpanId": "",
                                    "name": "work",
                                    "kind": "SPAN_KIND_CLIENT",
                                    "startTimeUnixNano": str(T0),
                                    "endTimeUnixNano": str(T0 + 100),
                                    "status": {"code": "STATUS_CODE_ERROR"},
                                    "events": [{"name": "e", "timeUnixNano": str(T0)}],
                                    "links": [{"traceId": TRACE_HEX, "spanId": SPAN_HEX}],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    ).encode()
    (event,) = events_of(decode_traces(data, JSON))
    assert event == {
        "@t": "2024-05-01T12:00:00.1234568Z",
        "@st": T0_TEXT,
        "@mt": "work",
        "@l": "Error",
        "@tr": TRACE_HEX,
        "@sp": SPAN_HEX,
        "@sk": "Client",
        "Events": [{"name": "e", "time": T0_TEXT}],
        "Links": [{"traceId": TRACE_HEX, "spanId": SPAN_HEX}],
    }


def test_base64_ids_from_generic_proto3_json_writers_are_read() -> None:
    request = traces_request(span(parent_span_id=PARENT))
    as_protobuf_writes_it = json.dumps(MessageToDict(request)).encode()
    assert decode_traces(as_protobuf_writes_it, JSON) == decode_traces(
        request.SerializeToString(), PROTOBUF
    )


# --- bad bodies and content types ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"\xff\xff\xff", b"\x0a\x05\x0a\x03", b"\x0a", b"garbage that is not protobuf at all"],
)
@pytest.mark.parametrize("decode", [decode_logs, decode_traces])
def test_garbage_protobuf_is_invalid(data: bytes, decode: Any) -> None:
    with pytest.raises(InvalidEvents) as caught:
        decode(data, PROTOBUF)
    assert caught.value.line == 1
    assert caught.value.reason.startswith("invalid OTLP protobuf: ")


def length_delimited(field: int, payload: bytes) -> bytes:
    """One protobuf field of wire type LEN."""
    varint = bytearray()
    size = len(payload)
    while size >= 0x80:
        varint.append(size & 0x7F | 0x80)
        size >>= 7
    varint.append(size)
    return bytes([field << 3 | 2]) + bytes(varint) + payload


def test_protobuf_nested_past_the_parser_limit_is_invalid() -> None:
    # Written by hand: the protobuf runtime refuses to build a message this deep.
    array_value = AnyValue.DESCRIPTOR.fields_by_name["array_value"].number
    value = any_value(1).SerializeToString()
    for _ in range(120):
        value = length_delimited(array_value, length_delimited(1, value))  # ArrayValue.values = 1
    attribute = length_delimited(1, b"v") + length_delimited(2, value)  # KeyValue key, value
    attributes = LogRecord.DESCRIPTOR.fields_by_name["attributes"].number
    rec = LogRecord(time_unix_nano=T0).SerializeToString()
    rec += length_delimited(attributes, attribute)
    # ExportLogsServiceRequest.resource_logs = 1, ResourceLogs.scope_logs = 2,
    # ScopeLogs.log_records = 2
    data = length_delimited(1, length_delimited(2, length_delimited(2, rec)))
    with pytest.raises(InvalidEvents, match="invalid OTLP protobuf: "):
        decode_logs(data, PROTOBUF)
    # The same framing around a shallow value is read.
    value = any_value([1]).SerializeToString()
    attribute = length_delimited(1, b"v") + length_delimited(2, value)
    rec = LogRecord(time_unix_nano=T0).SerializeToString() + length_delimited(attributes, attribute)
    shallow = length_delimited(1, length_delimited(2, length_delimited(2, rec)))
    assert events_of(decode_logs(shallow, PROTOBUF)) == [{"@t": T0_TEXT, "v": [1]}]


LOG_JSON_ERRORS: list[tuple[bytes, str]] = [
    (b"", "invalid OTLP JSON: "),
    (b"{", "invalid OTLP JSON: "),
    (b"\xff", "invalid OTLP JSON: "),
    (b"[]", "invalid OTLP JSON: the body is not a JSON object"),
    (b'{"resourceLogs":{}}', "invalid OTLP JSON: resourceLogs must be an array"),
    (b'{"resourceLogs":[1]}', "invalid OTLP JSON: every element of resourceLogs must be an object"),
    (b'{"resourceLogs":[{"scopeLogs":"x"}]}', "invalid OTLP JSON: scopeLogs must be an array"),
    (
        b'{"resourceLogs":[{"resource":[],"scopeLogs":[{}]}]}',
        "invalid OTLP JSON: resource must be an object",
    ),
    (
        b'{"resourceLogs":[{"scopeLogs":[{"scope":{"name":1}}]}]}',
        "invalid OTLP JSON: name must be a string",
    ),
]


def log_json_error(record_json: dict[str, Any], reason: str) -> tuple[bytes, str]:
    return json_logs(
        {"timeUnixNano": "1"}, record_json
    ), f"invalid OTLP JSON: {reason} in log record 2"


LOG_JSON_ERRORS += [
    log_json_error({"timeUnixNano": "soon"}, "timeUnixNano must be an integer"),
    log_json_error({"timeUnixNano": 1.5}, "timeUnixNano must be an integer"),
    log_json_error({"timeUnixNano": True}, "timeUnixNano must be an integer"),
    log_json_error({"timeUnixNano": "-1"}, "timeUnixNano is out of range"),
    log_json_error({"timeUnixNano": str(2**64)}, "timeUnixNano is out of range"),
    log_json_error({"severityNumber": "LOUD"}, "severityNumber 'LOUD' is not a known value"),
    log_json_error({"severityNumber": 1.5}, "severityNumber must be an enum name or number"),
    log_json_error({"severityText": 3}, "severityText must be a string"),
    log_json_error({"traceId": "xyz"}, "traceId must be hex"),
    log_json_error({"traceId": "g" * 32}, "traceId must be hex"),
    log_json_error({"spanId": 5}, "spanId must be a string"),
    log_json_error({"body": "text"}, "body must be an AnyValue object"),
    log_json_error({"body": {"stringValue": 1}}, "stringValue must be a string"),
    log_json_error({"attributes": {}}, "attributes must be an array"),
    log_json_error({"attributes": [{"key": 5}]}, "every attribute must have a string key"),
    log_json_error({"attributes": [{"key": "k", "value": 1}]}, "an AnyValue must be an object"),
    log_json_error(
        {"attributes": [{"key": "k", "value": {"intValue": str(2**63)}}]},
        "intValue is out of range",
    ),
    log_json_error(
        {"attributes": [{"key": "k", "value": {"boolValue": "true"}}]},
        "boolValue must be true or false",
    ),
    log_json_error(
        {"attributes": [{"key": "k", "value": {"doubleValue": "many"}}]},
        "doubleValue must be a number",
    ),
    log_json_error(
        {"attributes": [{"key": "k", "value": {"bytesValue": "***"}}]},
        "bytesValue must be a base64 string",
    ),
    log_json_error(
        {"attributes": [{"key": "k", "value": {"bytesValue": 1}}]},
        "bytesValue must be a base64 string",
    ),
    log_json_error(
        {"attributes": [{"key": "k", "value": {"arrayValue": []}}]}, "arrayValue must be an object"
    ),
    log_json_error(
        {"attributes": [{"key": "k", "value": {"kvlistValue": {"values": 1}}}]},
        "values must be an array",
    ),
]


@pytest.mark.parametrize(("data", "reason"), LOG_JSON_ERRORS)
def test_malformed_json_is_invalid(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvents) as caught:
        decode_logs(data, JSON)
    assert caught.value.line == 1
    if reason.endswith(": "):
        assert caught.value.reason.startswith(reason)
    else:
        assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("span_json", "reason"),
    [
        ({"kind": "SPAN_KIND_SIDEWAYS"}, "kind 'SPAN_KIND_SIDEWAYS' is not a known value"),
        ({"status": "ok"}, "status must be an object"),
        (
            {"status": {"code": "STATUS_CODE_MAYBE"}},
            "code 'STATUS_CODE_MAYBE' is not a known value",
        ),
        ({"events": [1]}, "every element of events must be an object"),
        ({"links": [{"traceId": "zz"}]}, "traceId must be hex"),
        ({"parentSpanId": "12345"}, "parentSpanId must be hex"),
    ],
)
def test_malformed_json_spans_are_invalid(span_json: dict[str, Any], reason: str) -> None:
    data = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span_json]}]}]}).encode()
    with pytest.raises(InvalidEvents) as caught:
        decode_traces(data, JSON)
    assert caught.value.reason == f"invalid OTLP JSON: {reason} in span 1"


@pytest.mark.parametrize(
    "content_type", ["", "text/plain", "application/grpc", "application/jsonl"]
)
def test_unknown_content_types_are_refused(content_type: str) -> None:
    with pytest.raises(ValueError, match="unsupported content type") as caught:
        decode_logs(b"", content_type)
    assert not isinstance(caught.value, InvalidEvents)
    with pytest.raises(ValueError, match="unsupported content type"):
        decode_traces(b"", content_type)
    with pytest.raises(ValueError, match="unsupported content type"):
        encode_logs_response(OtlpResult(b"", 0, 0, ""), content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-protobuf",
        "Application/X-Protobuf",
        "application/protobuf",
        "application/x-protobuf; a=b",
    ],
)
def test_protobuf_content_type_spellings(content_type: str) -> None:
    data = logs_request(record(time_unix_nano=T0)).SerializeToString()
    assert decode_logs(data, content_type).accepted == 1
