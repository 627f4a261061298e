"""Real clients against a real server: what they send is what is stored.

Each client sends its events over loopback to `seqfast serve`; the stored events are then read
back from the data directory and compared, field by field, with what the client sent:
timestamps (normalised to UTC, 100 ns), levels, templates, properties (nested values, big
integers), exceptions, trace fields.

Clients: `seqlog` (Python; Seq's legacy JSON and CLEF), the OpenTelemetry Python SDK's OTLP/HTTP
exporters (logs and traces; uncompressed, gzip and deflate), and the npm `seq-logging` package
run by Node.js.  Then API keys: minimum level, applied properties, the rules of
`--require-api-key`, the `/api/apikeys` endpoints and per-key counters.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import seqlog
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from seqlog.feature_flags import FeatureFlag, configure_feature
from seqlog.structured_logging import SeqLogHandler, StructuredLogger, StructuredLogRecord

from .conftest import REPO, Server, ServerFactory, clef, clef_time, run_seqfast

NODE_DIR = REPO / "tests" / "api" / "node"


def without_id(event: dict[str, Any]) -> dict[str, Any]:
    assert str(event.get("@id", "")).startswith("event-"), event
    return {k: v for k, v in event.items() if k != "@id"}


def by(events: Sequence[dict[str, Any]], field: str) -> dict[Any, dict[str, Any]]:
    """Events keyed by `field`, which must be unique among them."""
    keyed = {e[field]: e for e in events}
    assert len(keyed) == len(events), f"{field} is not unique among {events}"
    return keyed


def utc_text(text: str) -> str:
    """A client's timestamp text (any offset, 'T' or space) as the store writes it."""
    return clef_time(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


# -- seqlog ------------------------------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def local_time_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone 5:30 east of UTC, so that seqlog's local-time stamps carry an offset
    the server must convert (POSIX TZ syntax: no time zone database needed)."""
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _send_with_seqlog(url: str, *, use_clef: bool) -> tuple[list[logging.LogRecord], list[bytes]]:
    """Logs a fixed set of records through seqlog's `SeqLogHandler`; returns the records and
    the request bodies seqlog posted (every one of which must have been answered 201).

    This is what `seqlog.log_to_seq(url, json_encoder_class=…, support_extra_properties=True,
    use_clef=…)` sets up (feature flags, a `SeqLogHandler` with a "{" formatter, the
    `StructuredLogger` class), minus its `logging.basicConfig` call, which would change the
    process's root logger (and does nothing at all under pytest, whose handlers are there)."""
    configure_feature(FeatureFlag.EXTRA_PROPERTIES, True)
    configure_feature(FeatureFlag.USE_CLEF, use_clef)
    configure_feature(FeatureFlag.STACK_INFO, False)
    configure_feature(FeatureFlag.IGNORE_SEQ_SUBMISSION_ERRORS, False)
    failures: list[BaseException | None] = []
    seqlog.set_callback_on_failure(failures.append)
    handler = SeqLogHandler(url, None, batch_size=100, json_encoder_class=json.JSONEncoder)
    handler.setFormatter(logging.Formatter(style="{"))  # as log_to_seq configures it
    bodies: list[bytes] = []
    answers: list[tuple[int, Any]] = []
    post = handler.session.post

    def recording_post(target: str, **kwargs: Any) -> requests.Response:
        response = post(target, **kwargs)
        bodies.append(kwargs["data"].encode("utf-8"))
        answers.append((response.status_code, response.content))
        return response

    handler.session.post = recording_post  # type: ignore[method-assign]
    # A logger of its own (not registered with logging's manager): nothing global changes.
    logger = StructuredLogger(f"seqfast.tests.seqlog.{'clef' if use_clef else 'json'}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    capture = _Capture()
    logger.addHandler(capture)
    logger.addHandler(handler)
    try:
        logger.info(
            "Order {OrderId} placed by {Customer}",
            OrderId=42,
            Customer={
                "Name": "Ada",
                "Tags": ["a", "b"],
                "Address": {"City": "London", "Zip": None},
            },
            Total=12.5,
            Big=2**70,
            Negative=-(2**63),
            Paid=True,
        )
        logger.warning("Disk %s is %d%% full", "C:", 93)
        logger.debug("Text {Value}", Value='ünïcødé ✓ "quoted"\n', extra={"Source": "extra"})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.error("Step {Step} failed", Step="parse", exc_info=True)
        logger.critical("Plain message")
        handler.log_queue.join()  # every record is in the consumer's batch
        handler.flush()
    finally:
        handler.close()
        seqlog.set_callback_on_failure(lambda exc: None)
        configure_feature(FeatureFlag.USE_CLEF, False)
        configure_feature(FeatureFlag.EXTRA_PROPERTIES, False)
    assert not failures, f"seqlog reported failures: {failures}"
    assert answers, "seqlog sent nothing"
    for status, body in answers:
        assert status == 201, (status, body)
        assert orjson.loads(body) == {"MinimumLevelAccepted": None}
    return capture.records, bodies


def _check_seqlog_records(records: list[logging.LogRecord], stored: list[dict[str, Any]]) -> None:
    """Checks the stored events against the logging calls themselves (independently of how
    seqlog encoded them)."""
    assert len(stored) == len(records) == 5
    keyed = by(stored, "@mt")
    for record in records:
        assert isinstance(record, StructuredLogRecord)
        event = keyed[record.getMessageTemplate()]
        assert event["@t"] == clef_time(dt.datetime.fromtimestamp(record.created, dt.UTC))
        assert event["@l"] == record.levelname
    order = keyed["Order {OrderId} placed by {Customer}"]
    assert order["OrderId"] == 42
    assert order["Customer"] == {
        "Name": "Ada",
        "Tags": ["a", "b"],
        "Address": {"City": "London", "Zip": None},
    }
    assert order["Total"] == 12.5
    assert order["Big"] == 2**70 and isinstance(order["Big"], int)
    assert order["Negative"] == -(2**63)
    assert order["Paid"] is True
    assert keyed["Text {Value}"]["Value"] == 'ünïcødé ✓ "quoted"\n'
    assert keyed["Text {Value}"]["Extra_Source"] == "extra"
    failed = keyed["Step {Step} failed"]
    assert failed["@x"].startswith("Traceback (most recent call last):")
    assert failed["@x"].rstrip().endswith("ValueError: boom")
    assert "Disk C: is 93% full" in keyed


def test_seqlog_legacy_json(serve: ServerFactory, local_time_zone: None) -> None:
    server = serve()
    records, bodies = _send_with_seqlog(server.url, use_clef=False)
    sent = [e for body in bodies for e in orjson.loads(body)["Events"]]
    assert all("+05:30" in e["Timestamp"] for e in sent), "seqlog did not send local time"
    server.stop()
    stored = [without_id(e) for e in server.events()]
    _check_seqlog_records(records, stored)
    # Every field exactly as sent: Seq's legacy JSON mapped onto CLEF.
    expected = []
    for e in sent:
        event = {"@t": utc_text(e["Timestamp"]), "@l": e["Level"], "@mt": e["MessageTemplate"]}
        if "Exception" in e:
            event["@x"] = e["Exception"]
        event.update(e["Properties"])
        expected.append(event)
    assert by(stored, "@mt") == by(expected, "@mt")
    positional = by(stored, "@mt")["Disk C: is 93% full"]
    assert (positional["0"], positional["1"]) == ("C:", 93)


def test_seqlog_clef(serve: ServerFactory, local_time_zone: None) -> None:
    server = serve()
    records, bodies = _send_with_seqlog(server.url, use_clef=True)
    sent = [orjson.loads(line) for body in bodies for line in body.split(b"\r\n") if line]
    assert all("+05:30" in e["@t"] for e in sent), "seqlog did not send local time"
    server.stop()
    stored = [without_id(e) for e in server.events()]
    _check_seqlog_records(records, stored)
    expected = [{**e, "@t": utc_text(e["@t"])} for e in sent]
    assert by(stored, "@mt") == by(expected, "@mt")
    assert by(stored, "@mt")["Disk C: is 93% full"]["@r"] == ["C:", "93"]


# -- OpenTelemetry -------------------------------------------------------------------------------


class RecordingLogExporter(LogRecordExporter):
    """Passes batches to the real OTLP exporter and keeps what was exported and the results."""

    def __init__(self, inner: OTLPLogExporter) -> None:
        self.inner = inner
        self.records: list[ReadableLogRecord] = []
        self.results: list[LogRecordExportResult] = []

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = self.inner.export(batch)
        self.records.extend(batch)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class RecordingSpanExporter(SpanExporter):
    def __init__(self, inner: OTLPSpanExporter) -> None:
        self.inner = inner
        self.spans: list[ReadableSpan] = []
        self.results: list[SpanExportResult] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.spans.extend(spans)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


COMPRESSIONS = [Compression.NoCompression, Compression.Gzip, Compression.Deflate]
RESOURCE = {"service.name": "checkout", "deployment.environment": "test", "host.cores": 2}
TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C
SPAN_ID = 0xEEE19B7EC3C1B174
BASE_NS = 1_714_557_600_123_456_789  # 2024-05-01T10:00:00.123456789Z


@pytest.mark.parametrize("compression", COMPRESSIONS, ids=lambda c: c.value)
def test_opentelemetry_logs(serve: ServerFactory, compression: Compression) -> None:
    server = serve()
    resource = Resource.create(RESOURCE)
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    exporter = RecordingLogExporter(
        OTLPLogExporter(
            endpoint=f"{server.url}/ingest/otlp/v1/logs", compression=compression, timeout=10
        )
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("shop.orders", "2.1.0", attributes={"team": "payments"})
    span = NonRecordingSpan(
        SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    )
    logger.emit(
        timestamp=BASE_NS,
        context=trace.set_span_in_context(span),
        severity_number=SeverityNumber.WARN,
        severity_text="Warning",
        body="Order {OrderId} failed for {Customer}",
        attributes={
            "OrderId": 42,
            "Customer": "Ada",
            "Ratio": 0.25,
            "Retried": False,
            "Tags": ["a", "b"],
            "Address": {"City": "London", "Lines": ["1 Main St"], "Geo": {"Lat": 51.5}},
            "http.method": "POST",
        },
    )
    try:
        raise ValueError("bad order")
    except ValueError as exc:
        logger.emit(
            timestamp=BASE_NS + 1_000,
            severity_number=SeverityNumber.ERROR,
            body="Plain text, no template",
            exception=exc,
        )
    logger.emit(
        timestamp=BASE_NS + 2_000,
        severity_number=SeverityNumber.INFO,
        body={"message": "key-value body", "count": 3},
    )
    provider.shutdown()
    assert exporter.results == [LogRecordExportResult.SUCCESS] * 3
    server.stop()
    stored = [without_id(e) for e in server.events()]
    assert len(stored) == 3
    keyed = by(stored, "@t")
    scope = {"name": "shop.orders", "version": "2.1.0", "team": "payments"}
    resource_attributes = dict(resource.attributes)
    assert resource_attributes["service.name"] == "checkout"

    first = keyed[clef_time(BASE_NS)]
    assert first == {
        "@t": "2024-05-01T10:00:00.1234567Z",
        "@mt": "Order {OrderId} failed for {Customer}",
        "@l": "Warning",
        "@tr": "5b8efff798038103d269b633813fc60c",
        "@sp": "eee19b7ec3c1b174",
        "@ra": resource_attributes,
        "@sa": scope,
        "OrderId": 42,
        "Customer": "Ada",
        "Ratio": 0.25,
        "Retried": False,
        "Tags": ["a", "b"],
        "Address": {"City": "London", "Lines": ["1 Main St"], "Geo": {"Lat": 51.5}},
        "http.method": "POST",
    }

    second = keyed[clef_time(BASE_NS + 1_000)]
    exported = exporter.records[1].log_record.attributes
    assert exported is not None
    assert second["@m"] == "Plain text, no template"
    assert "@mt" not in second
    assert second["@l"] == "Error"  # from the severity number: no severity text was sent
    assert second["@x"] == exported["exception.stacktrace"]
    assert "ValueError: bad order" in second["@x"]
    assert second["exception.type"] == "ValueError"
    assert second["exception.message"] == "bad order"
    assert "exception.stacktrace" not in second
    assert second["@ra"] == resource_attributes and second["@sa"] == scope
    assert "@tr" not in second and "@sp" not in second

    third = keyed[clef_time(BASE_NS + 2_000)]
    assert third["@m"] == "key-value body"
    assert (third["message"], third["count"]) == ("key-value body", 3)
    assert third["@l"] == "Information"


@pytest.mark.parametrize("compression", COMPRESSIONS, ids=lambda c: c.value)
def test_opentelemetry_traces(serve: ServerFactory, compression: Compression) -> None:
    server = serve()
    resource = Resource.create(RESOURCE)
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    exporter = RecordingSpanExporter(
        OTLPSpanExporter(
            endpoint=f"{server.url}/ingest/otlp/v1/traces", compression=compression, timeout=10
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop.http", "1.0.0", attributes={"library": "tests"})
    with tracer.start_as_current_span(
        "HTTP GET {Route}",
        kind=SpanKind.SERVER,
        attributes={"Route": "/orders", "http.status_code": 500, "Flags": [True, False]},
    ) as parent:
        with tracer.start_as_current_span(
            "SELECT orders", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql"}
        ) as child:
            child.add_event("retry", {"attempt": 2})
        parent.set_status(Status(StatusCode.ERROR, "database unavailable"))
    with tracer.start_as_current_span("background job", kind=SpanKind.INTERNAL):
        pass
    provider.shutdown()
    assert exporter.results == [SpanExportResult.SUCCESS] * 3
    server.stop()
    stored = [without_id(e) for e in server.events()]
    assert len(stored) == 3
    keyed = by(stored, "@sp")
    scope = {"name": "shop.http", "version": "1.0.0", "library": "tests"}
    for span in exporter.spans:
        context = span.context
        assert context is not None and span.start_time and span.end_time
        event = keyed[f"{context.span_id:016x}"]
        assert event["@tr"] == f"{context.trace_id:032x}"
        assert event["@t"] == clef_time(span.end_time)
        assert event["@st"] == clef_time(span.start_time)
        assert event["@mt"] == span.name
        assert event["@ra"] == dict(resource.attributes)
        assert event["@sa"] == scope
        if span.parent is None:
            assert "@ps" not in event
        else:
            assert event["@ps"] == f"{span.parent.span_id:016x}"
        for name, value in (span.attributes or {}).items():
            assert event[name] == (list(value) if isinstance(value, tuple) else value)

    spans = {s.name: s for s in exporter.spans}
    http = keyed[f"{spans['HTTP GET {Route}'].context.span_id:016x}"]  # type: ignore[union-attr]
    assert http["@sk"] == "Server"
    assert http["@l"] == "Error"
    assert http["StatusMessage"] == "database unavailable"
    assert http["Route"] == "/orders" and http["Flags"] == [True, False]
    select = keyed[f"{spans['SELECT orders'].context.span_id:016x}"]  # type: ignore[union-attr]
    assert select["@sk"] == "Client"
    assert select["@ps"] == http["@sp"] and select["@tr"] == http["@tr"]
    assert select["@l"] == "Information"
    retry = spans["SELECT orders"].events[0]
    assert select["Events"] == [
        {"name": "retry", "time": clef_time(retry.timestamp), "attributes": {"attempt": 2}}
    ]
    job = keyed[f"{spans['background job'].context.span_id:016x}"]  # type: ignore[union-attr]
    assert job["@sk"] == "Internal"
    assert job["@tr"] != http["@tr"]


# -- Node.js: seq-logging -------------------------------------------------------------------------


def run_node_client(
    url: str, events: list[dict[str, Any]], api_key: str | None = None
) -> list[str]:
    """Sends `events` with the npm `seq-logging` package (see tests/api/node/send.mjs);
    returns the errors the logger reported."""
    node = shutil.which("node")
    assert node is not None, (
        "Node.js is required for this test and `node` is not on PATH: install Node.js 18+ "
        "(ci/test.sh does so with apt-get), then run `npm ci --prefix tests/api/node`"
    )
    assert (NODE_DIR / "node_modules" / "seq-logging").is_dir(), (
        "the npm package seq-logging is not installed: run `npm ci --prefix tests/api/node` "
        "(ci/test.sh does)"
    )
    spec = {"serverUrl": url, "apiKey": api_key, "events": events}
    done = subprocess.run(
        [node, str(NODE_DIR / "send.mjs")],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=NODE_DIR,
        timeout=60,
    )
    assert done.returncode in (0, 1) and done.stdout, (
        f"the Node.js client failed:\n{done.stdout}\n{done.stderr}"
    )
    errors: list[str] = json.loads(done.stdout)["errors"]
    assert (done.returncode == 1) == bool(errors)
    return errors


def test_node_seq_logging(serve: ServerFactory) -> None:
    server = serve()
    stack = "Error: connection refused\n    at connect (db.js:10:5)\n    at main (app.js:3:1)"
    events: list[dict[str, Any]] = [
        {
            "timestamp": "2024-05-01T10:00:00.123Z",
            "level": "Information",
            "messageTemplate": "User {UserId} signed in from {Address}",
            "properties": {
                "UserId": 7,
                "Address": {"Ip": "10.0.0.1", "Ports": [80, 443], "Geo": {"Country": "NZ"}},
                "Roles": ["admin", "dev"],
                "Score": 0.75,
                "Active": True,
                "Note": None,
            },
        },
        {
            "timestamp": "2024-05-01T10:00:01.500Z",
            "level": "Error",
            "messageTemplate": "Database {Db} unreachable",
            "properties": {"Db": "orders", "Unicode": "żółw 🐢"},
            "exception": stack,
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "spanId": "00f067aa0ba902b7",
        },
        {
            "timestamp": "2024-05-01T09:59:59.999Z",
            "level": "Debug",
            "messageTemplate": "No properties",
        },
    ]
    # Without a key, seq-logging sends the header `X-Seq-ApiKey: null`: no key.
    assert run_node_client(server.url, events) == []
    server.stop()
    stored = by([without_id(e) for e in server.events()], "@t")
    assert stored == {
        "2024-05-01T10:00:00.1230000Z": {
            "@t": "2024-05-01T10:00:00.1230000Z",
            "@l": "Information",
            "@mt": "User {UserId} signed in from {Address}",
            "UserId": 7,
            "Address": {"Ip": "10.0.0.1", "Ports": [80, 443], "Geo": {"Country": "NZ"}},
            "Roles": ["admin", "dev"],
            "Score": 0.75,
            "Active": True,
            "Note": None,
        },
        "2024-05-01T10:00:01.5000000Z": {
            "@t": "2024-05-01T10:00:01.5000000Z",
            "@l": "Error",
            "@mt": "Database {Db} unreachable",
            "@x": stack,
            "@tr": "4bf92f3577b34da6a3ce929d0e0e4736",
            "@sp": "00f067aa0ba902b7",
            "Db": "orders",
            "Unicode": "żółw 🐢",
        },
        "2024-05-01T09:59:59.9990000Z": {
            "@t": "2024-05-01T09:59:59.9990000Z",
            "@l": "Debug",
            "@mt": "No properties",
        },
    }


# -- API keys ------------------------------------------------------------------------------------


def create_key(data: Path, title: str, *flags: str) -> dict[str, Any]:
    """`seqfast apikey create … --json` (before the server starts, or while it runs)."""
    done = run_seqfast("apikey", "create", "--data", str(data), "--title", title, "--json", *flags)
    key: dict[str, Any] = json.loads(done.stdout)
    assert key["Token"] and key["Id"].startswith("apikey-")
    return key


LEVELS = ["Verbose", "Debug", "Information", "Warning", "Error", "Fatal"]


def leveled_batch(tag: str) -> bytes:
    return clef(
        *(
            {
                "@t": f"2024-05-01T10:00:0{i}Z",
                "@l": level,
                "@mt": "{Tag} at {Level}",
                "Tag": tag,
                "Level": level,
                "App": "own",
            }
            for i, level in enumerate(LEVELS)
        )
    )


def post_clef(
    server: Server,
    body: bytes,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    path: str = "/api/events/raw",
) -> requests.Response:
    return requests.post(
        server.url + path,
        data=body,
        params=params,
        headers={"Content-Type": "application/vnd.serilog.clef", **(headers or {})},
        timeout=30,
    )


def test_api_key_minimum_level_and_applied_property(serve: ServerFactory, tmp_path: Path) -> None:
    data = tmp_path / "keyed"
    key = create_key(data, "T", "--minimum-level", "Warning", "--property", "App=fixed")
    assert key["InputSettings"]["MinimumLevel"] == "Warning"
    server = serve(data=data)
    response = post_clef(server, leveled_batch("keyed"), {"X-Seq-ApiKey": key["Token"]})
    assert response.status_code == 201, response.text
    assert response.json() == {"MinimumLevelAccepted": "Warning"}
    # Without a key (not required here): everything is stored, untouched.
    response = post_clef(server, leveled_batch("open"))
    assert response.status_code == 201
    assert response.json() == {"MinimumLevelAccepted": None}
    # The legacy JSON format takes the key too.
    legacy = {
        "Events": [
            {"Timestamp": "2024-05-01T11:00:00Z", "Level": lvl, "MessageTemplate": "legacy " + lvl}
            for lvl in ("Debug", "Error")
        ]
    }
    response = requests.post(
        server.url + "/api/events/raw",
        json=legacy,
        headers={"X-Seq-ApiKey": key["Token"]},
        timeout=30,
    )
    assert response.status_code == 201 and response.json() == {"MinimumLevelAccepted": "Warning"}
    server.stop()
    stored = server.events()
    keyed = sorted((e["Level"], e["App"]) for e in stored if e.get("Tag") == "keyed")
    assert keyed == [("Error", "fixed"), ("Fatal", "fixed"), ("Warning", "fixed")]
    open_ = sorted((e["Level"], e["App"]) for e in stored if e.get("Tag") == "open")
    assert open_ == sorted((level, "own") for level in LEVELS)
    legacy_stored = [e for e in stored if e["@mt"].startswith("legacy")]
    assert [(e["@mt"], e["App"]) for e in legacy_stored] == [("legacy Error", "fixed")]


def test_api_key_required(serve: ServerFactory, tmp_path: Path) -> None:
    data = tmp_path / "required"
    ingest = create_key(data, "ingest")
    reader = create_key(data, "reader", "--permissions", "read")
    server = serve("--require-api-key", data=data)
    token = ingest["Token"]
    outcomes: list[tuple[str, int, Any]] = []

    def attempt(
        case: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
    ) -> None:
        body = clef({"@t": "2024-05-01T10:00:00Z", "@mt": "case {Case}", "Case": case})
        response = post_clef(server, body, headers, params)
        outcomes.append((case, response.status_code, response.json()))

    attempt("no key")
    attempt("unknown key", {"X-Seq-ApiKey": "not-a-key-" + token[10:]})
    attempt("empty key", {"X-Seq-ApiKey": ""})
    attempt("null key", {"X-Seq-ApiKey": "null"})
    attempt("null query key", params={"apiKey": "null"})
    attempt("read-only key", {"X-Seq-ApiKey": reader["Token"]})
    attempt("header", {"X-Seq-ApiKey": token})
    attempt("lower-case header", {"x-seq-apikey": token})
    attempt("odd-case header", {"X-SEQ-apiKEY": token})
    attempt("query", params={"apiKey": token})
    attempt("clef query", params={"apiKey": token, "clef": ""})
    statuses = {case: status for case, status, _ in outcomes}
    assert statuses == {
        "no key": 401,
        "unknown key": 401,
        "empty key": 401,
        "null key": 401,
        "null query key": 401,
        "read-only key": 403,
        "header": 201,
        "lower-case header": 201,
        "odd-case header": 201,
        "query": 201,
        "clef query": 201,
    }
    for case, status, body in outcomes:
        if status == 201:
            assert body == {"MinimumLevelAccepted": None}, case
        else:
            assert set(body) == {"Error"} and body["Error"], case
    # The OTLP endpoints are guarded the same way.
    otlp = requests.post(
        server.url + "/ingest/otlp/v1/logs",
        data=b"",
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert otlp.status_code == 401 and set(otlp.json()) == {"Error"}
    server.stop()
    stored = sorted(e["Case"] for e in server.events())
    assert stored == sorted(case for case, status, _ in outcomes if status == 201)


def test_api_keys_over_http(serve: ServerFactory, tmp_path: Path) -> None:
    data = tmp_path / "admin"
    admin = create_key(data, "admin", "--permissions", "system")
    server = serve("--require-api-key", data=data)
    auth = {"X-Seq-ApiKey": admin["Token"]}

    assert requests.get(server.url + "/api/apikeys", timeout=30).status_code == 401
    listed = requests.get(server.url + "/api/apikeys", headers=auth, timeout=30)
    assert listed.status_code == 200
    assert [k["Id"] for k in listed.json()] == [admin["Id"]]
    assert all("Token" not in k for k in listed.json())

    created = requests.post(
        server.url + "/api/apikeys",
        headers=auth,
        json={
            "Title": "shipper",
            "AssignedPermissions": ["Ingest"],
            "InputSettings": {
                "MinimumLevel": "Information",
                "AppliedProperties": [{"Name": "Env", "Value": "prod"}],
            },
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    key = created.json()
    token = key.pop("Token")
    assert key["Title"] == "shipper" and key["AssignedPermissions"] == ["Ingest"]
    assert key["InputSettings"]["MinimumLevel"] == "Information"
    assert key["InputSettings"]["AppliedProperties"] == [{"Name": "Env", "Value": "prod"}]
    assert key["Metrics"] == {"Events": 0, "Bytes": 0, "Rejections": 0}
    assert token.startswith(key["TokenPrefix"])

    fetched = requests.get(f"{server.url}/api/apikeys/{key['Id']}", headers=auth, timeout=30)
    assert fetched.status_code == 200 and fetched.json() == key
    # An ingest-only key cannot manage keys.
    denied = requests.get(server.url + "/api/apikeys", headers={"X-Seq-ApiKey": token}, timeout=30)
    assert denied.status_code == 403 and set(denied.json()) == {"Error"}
    bad = requests.post(server.url + "/api/apikeys", headers=auth, json={"Title": ""}, timeout=30)
    assert bad.status_code == 400 and set(bad.json()) == {"Error"}

    # Ingest with the new key: two accepted payloads (one event below the minimum level) and
    # one rejected; the counters follow.
    good = clef(
        {"@t": "2024-05-01T10:00:00Z", "@l": "Debug", "@mt": "dropped"},
        {"@t": "2024-05-01T10:00:01Z", "@l": "Warning", "@mt": "kept {Env}", "Env": "dev"},
    )
    also_good = clef({"@t": "2024-05-01T10:00:02Z", "@mt": "kept too"})
    invalid = b'{"@t":"2024-05-01T10:00:03Z","@mt":"fine"}\n{"@t":"yesterday"}\n'
    headers = {"X-Seq-ApiKey": token}
    assert post_clef(server, good, headers).json() == {"MinimumLevelAccepted": "Information"}
    assert post_clef(server, also_good, headers).status_code == 201
    rejected = post_clef(server, invalid, headers)
    assert rejected.status_code == 400 and "line 2" in rejected.json()["Error"]
    metrics = requests.get(f"{server.url}/api/apikeys/{key['Id']}", headers=auth, timeout=30)
    assert metrics.json()["Metrics"] == {
        "Events": 2,
        "Bytes": len(good) + len(also_good),
        "Rejections": 1,
    }
    listed_again = {
        k["Id"]: k
        for k in requests.get(server.url + "/api/apikeys", headers=auth, timeout=30).json()
    }
    assert listed_again[key["Id"]]["Metrics"] == metrics.json()["Metrics"]

    # Keys and counters survive a restart (counters are flushed to the metadata database at
    # shutdown); the events were stored with the key's settings applied.
    stored = server.stored()
    assert sorted(e["@mt"] for e in stored) == ["kept too", "kept {Env}"]
    assert all(e["Env"] == "prod" for e in stored)
    after = requests.get(f"{server.url}/api/apikeys/{key['Id']}", headers=auth, timeout=30)
    assert after.status_code == 200
    assert after.json()["Metrics"] == metrics.json()["Metrics"]
    assert post_clef(server, also_good, headers).status_code == 201

    removed = requests.delete(f"{server.url}/api/apikeys/{key['Id']}", headers=auth, timeout=30)
    assert removed.status_code == 204
    gone = requests.get(f"{server.url}/api/apikeys/{key['Id']}", headers=auth, timeout=30)
    assert gone.status_code == 404 and set(gone.json()) == {"Error"}
    again = requests.delete(f"{server.url}/api/apikeys/{key['Id']}", headers=auth, timeout=30)
    assert again.status_code == 404
    assert post_clef(server, also_good, headers).status_code == 401  # a removed key is unknown
    listed_last = requests.get(server.url + "/api/apikeys", headers=auth, timeout=30).json()
    assert [k["Id"] for k in listed_last] == [admin["Id"]]


def test_api_key_created_while_running_takes_effect(serve: ServerFactory) -> None:
    server = serve("--require-api-key")
    key = create_key(server.data, "late", "--property", "Late=true")
    body = clef({"@t": "2024-05-01T10:00:00Z", "@mt": "late key"})
    deadline = time.monotonic() + 10
    while True:
        response = post_clef(server, body, {"X-Seq-ApiKey": key["Token"]})
        if response.status_code == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code == 201, response.text
    server.stop()
    assert [(e["@mt"], e["Late"]) for e in server.events()] == [("late key", True)]


def test_concurrent_clients_share_one_server(server: Server) -> None:
    """Several threads, each its own connection, interleaving: every event lands once."""
    errors: list[str] = []

    def client(n: int) -> None:
        with requests.Session() as session:
            for i in range(20):
                body = clef(
                    *(
                        {"@t": "2024-05-01T10:00:00Z", "@mt": "c", "C": n, "I": i, "J": j}
                        for j in range(5)
                    )
                )
                r = session.post(server.url + "/ingest/clef", data=body, timeout=30)
                if r.status_code != 201:
                    errors.append(f"{n}/{i}: {r.status_code} {r.text}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    server.stop()
    found = sorted((e["C"], e["I"], e["J"]) for e in server.events())
    assert found == [(n, i, j) for n in range(4) for i in range(20) for j in range(5)]


def test_node_seq_logging_with_api_key(serve: ServerFactory, tmp_path: Path) -> None:
    data = tmp_path / "node"
    key = create_key(data, "node", "--minimum-level", "Warning", "--property", "Source=node")
    server = serve("--require-api-key", data=data)
    events = [
        {"timestamp": f"2024-05-01T10:00:0{i}.000Z", "level": level, "messageTemplate": level}
        for i, level in enumerate(["Debug", "Information", "Warning", "Error"])
    ]
    refused = run_node_client(server.url, events)
    assert len(refused) == 1 and "401" in refused[0], refused
    assert run_node_client(server.url, events, api_key=key["Token"]) == []
    server.stop()
    stored = sorted((e["@mt"], e["Source"]) for e in server.events())
    assert stored == [("Error", "node"), ("Warning", "node")]
