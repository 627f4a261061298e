"""Stored events in Seq's event JSON shape, as `GET /api/events` returns them."""

from __future__ import annotations

from pathlib import Path

import seqfast
from seqfast.events.seq_shape import (
    event_type,
    murmur3_32,
    properties,
    rendered_message,
    timespan_text,
    to_seq_event,
)

EVENT_ID = "event-08dc0a5c9900c0000000000000000000"


def test_a_full_event() -> None:
    event = {
        "@t": "2024-01-01T00:00:02.0000000Z",
        "@id": EVENT_ID,
        "@mt": "Order {OrderId} took {Elapsed:0.0} ms",
        "@r": ["12.5"],
        "@l": "Warning",
        "@x": "System.Exception: boom",
        "@i": "c0ffee00",
        "@tr": "0af7651916cd43dd8448eb211c80319c",
        "@sp": "b7ad6b7169203331",
        "@ps": "00f067aa0ba902b7",
        "@sk": "Server",
        "@st": "2024-01-01T00:00:00.5Z",
        "@ra": {"service": {"name": "shop"}},
        "@sa": {"name": "shop.orders"},
        "OrderId": 42,
        "Elapsed": 12.46,
        "@@odd": "escaped",
    }
    shaped = to_seq_event(event, render=True)
    assert shaped == {
        "Id": EVENT_ID,
        "Timestamp": "2024-01-01T00:00:02.0000000Z",
        "Properties": [
            {"Name": "OrderId", "Value": 42},
            {"Name": "Elapsed", "Value": 12.46},
            {"Name": "@odd", "Value": "escaped"},
        ],
        "MessageTemplateTokens": [
            {"Text": "Order "},
            {"PropertyName": "OrderId", "RawText": "{OrderId}"},
            {"Text": " took "},
            {"PropertyName": "Elapsed", "RawText": "{Elapsed:0.0}", "FormattedValue": "12.5"},
            {"Text": " ms"},
        ],
        "EventType": "$C0FFEE00",
        "Level": "Warning",
        "Exception": "System.Exception: boom",
        "RenderedMessage": "Order 42 took 12.5 ms",
        "TraceId": "0af7651916cd43dd8448eb211c80319c",
        "SpanId": "b7ad6b7169203331",
        "ParentId": "00f067aa0ba902b7",
        "SpanKind": "Server",
        "Start": "2024-01-01T00:00:00.5Z",
        "Elapsed": "00:00:01.5000000",
        "Resource": [{"Name": "service", "Value": {"name": "shop"}}],
        "Scope": [{"Name": "name", "Value": "shop.orders"}],
        "Links": {"Self": f"api/events/{EVENT_ID}", "Group": "api/events/resources"},
    }


def test_members_without_values_are_left_out_and_render_is_on_request() -> None:
    shaped = to_seq_event({"@t": "2024-01-01T00:00:00Z", "@id": EVENT_ID, "@m": "plain {x}"})
    assert set(shaped) == {
        "Id",
        "Timestamp",
        "Properties",
        "MessageTemplateTokens",
        "EventType",
        "Links",
    }
    # A message without a template is one text token, braces and all.
    assert shaped["MessageTemplateTokens"] == [{"Text": "plain {x}"}]
    assert to_seq_event({"@m": "plain {x}"}, render=True)["RenderedMessage"] == "plain {x}"


def test_event_types() -> None:
    assert event_type({"@i": 77}) == 77
    assert event_type({"@i": "$0A1B"}) == 0x0A1B
    assert event_type({"@mt": "Hello {Name}"}) == murmur3_32(b"Hello {Name}")
    # Without @mt, the message with its braces doubled is the template.
    assert event_type({"@m": "a {b}"}) == murmur3_32(b"a {{b}}")
    assert event_type({"@i": "not hex"}) == murmur3_32(b"not hex")


def test_murmur3_known_answers() -> None:
    assert murmur3_32(b"") == 0
    assert murmur3_32(b"hello") == 0x248BFA47
    assert murmur3_32(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723


def test_timespans() -> None:
    assert timespan_text(12_340_000) == "00:00:01.2340000"
    assert timespan_text(90_061 * 10_000_000) == "1.01:01:01"
    assert timespan_text(-10_000_000) == "-00:00:01"


def test_properties_and_rendering_of_stored_events(tmp_path: Path) -> None:
    with seqfast.open(tmp_path / "data") as store:
        store.ingest(
            [
                {
                    "@t": "2024-05-01T12:00:00Z",
                    "@mt": "{User} bought {Items} for {Total}",
                    "User": "ann",
                    "Items": ["tea", "cake"],
                    "Total": 9.5,
                    "@@t": "a property named @t",
                }
            ]
        )
        (event,) = list(store.events())
    assert properties(event) == {
        "User": "ann",
        "Items": ["tea", "cake"],
        "Total": 9.5,
        "@t": "a property named @t",
    }
    assert rendered_message(event) == '"ann" bought ["tea", "cake"] for 9.5'
    shaped = to_seq_event(event)
    assert shaped["Id"] == event["@id"]
    assert shaped["Level"] == "Information"
