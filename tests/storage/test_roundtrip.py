"""Arbitrary CLEF events round-trip exactly through ingest -> head -> segment -> reopen."""

from __future__ import annotations

import datetime as dt
import json
import math
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqfast
from seqfast.storage.ids import format_ticks

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**100), max_value=2**100),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
property_names = st.text(min_size=1, max_size=12).filter(lambda k: not k.startswith("@"))
escaped_names = st.text(min_size=1, max_size=6).map(lambda k: "@@" + k)

moments = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)).map(
    lambda d: d.replace(tzinfo=dt.UTC)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60)


@st.composite
def timestamps(draw: st.DrawFn) -> tuple[str, str]:
    """(timestamp text in one of the forms clients send, its normalised form)."""
    moment: dt.datetime = draw(moments)
    extra = draw(st.integers(0, 99))  # digits 8 and 9 of a nanosecond fraction
    digits = draw(st.integers(0, 9))
    minutes = draw(offsets)
    zone = draw(st.sampled_from(["Z", "offset", "none"]))
    # The text shows local time for an offset, UTC otherwise.
    shown = moment + dt.timedelta(minutes=minutes) if zone == "offset" else moment
    sep = draw(st.sampled_from(["T", " ", "t"]))
    frac9 = f"{moment.microsecond:06d}{extra:03d}"[:9]
    text = (
        f"{shown.year:04d}-{shown.month:02d}-{shown.day:02d}{sep}"
        f"{shown.hour:02d}:{shown.minute:02d}:{shown.second:02d}"
    )
    if digits:
        text += "." + frac9[:digits]
    if zone == "Z":
        text += draw(st.sampled_from(["Z", "z"]))
    elif zone == "offset":
        sign = "+" if minutes >= 0 else "-"
        text += f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    frac7 = int((frac9[:digits] + "0" * 9)[:7])
    unix = moment.replace(microsecond=0) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    ticks = (unix.days * 86400 + unix.seconds) * 10_000_000 + frac7
    return text, format_ticks(ticks)


@st.composite
def events(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    text, normal = draw(timestamps())
    props = draw(st.dictionaries(st.one_of(property_names, escaped_names), json_values, max_size=6))
    event: dict[str, Any] = {"@t": text, **props}
    for key, strategy in (
        ("@mt", st.text()),
        ("@m", st.text()),
        ("@l", st.sampled_from(["Debug", "Warning", "error", "INFO"])),
        ("@x", st.text()),
        ("@i", st.one_of(st.integers(0, 2**32), st.text(max_size=8))),
        ("@tr", st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)),
        ("@sp", st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)),
    ):
        if draw(st.booleans()):
            event[key] = draw(strategy)
    expected = {**event, "@t": normal}
    expected.setdefault("@l", "Information")
    return event, expected


def same(a: Any, b: Any) -> bool:
    """Equality that also tells 1 from 1.0 and compares floats bit for bit."""
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and (a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), min_size=1, max_size=20))
def test_events_round_trip(batch: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    sent = [e for e, _ in batch]
    expected = [x for _, x in batch]
    with tempfile.TemporaryDirectory() as tmp:
        with seqfast.open(tmp) as store:
            store.ingest(sent)
            got_head = list(store.events(limit=1000))
            store.flush()
            got_segment = list(store.events(limit=1000))
        with seqfast.open(tmp) as store:
            got_reopened = list(store.events(limit=1000))
            by_id = [store.get(e["@id"]) for e in got_reopened]
    for got in (got_head, got_segment, got_reopened, by_id):
        assert len(got) == len(expected)
        # newest first; the same timestamp keeps batch order (reversed)
        order = sorted(range(len(expected)), key=lambda i: (expected[i]["@t"], i), reverse=True)
        for event, index in zip(got, order, strict=True):
            event = dict(event)
            event.pop("@id")
            assert same(event, expected[index]), (
                json.dumps(event, default=str),
                json.dumps(expected[index], default=str),
            )
