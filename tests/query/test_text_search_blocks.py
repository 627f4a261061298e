"""Free-text search over stored blocks, which reads a template's properties only where a match
could involve them (by the block's column statistics, the text around each token and the
column's strings read alone): checked against rendering every stored event."""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqfast
from seqfast.events import templates
from seqfast.query import vector_text
from seqfast.query.values import fold
from seqfast.storage.segment import read_strings

PIECES = [
    "timeout",
    "TimeOut",
    "time",
    "out",
    "ti",
    "meo",
    "x",
    "",
    '"q"',
    "a\\b",
    "ſ",
    "ı",
    "İ",
    "\u212a",  # Kelvin sign, folds to K
    "ß",
    "σς",
    "\U0001d4af",  # astral
    "[1]",
    "{x}",
    "E+20",
    "null",
    "True",
]
texts = st.lists(st.sampled_from(PIECES), max_size=3).map("".join)
numbers = st.sampled_from(
    [0, 7, -12, 2**70, -(2**66), 0.0, 0.5, 12.3456, -3.25, 1e20, -1e-7, 1e-5, 1e15, 123.0]
)
scalars = st.none() | st.booleans() | numbers | texts
collections = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["$type", "k", "Ti", "meout"]), inner, max_size=2)
    ),
    max_leaves=4,
)
TEMPLATES = [
    "Time{A}ut",
    "{A}imeout",
    "timeo{A}",
    "{A}{B}",
    "{A}",
    "x {A:0.00} y",
    "{A,8}|{B,-8}",
    "TIME{A:#}OUT",
    "TIM{A}",
    "{A}EOUT",
    "t{A}i{B}m",
    "{A:l} and {B}",
    "Upstream timeout {A}",
    "{@A} {$B}",
    "{A:N2} {B:X}",
    "{A} {{B}} {B}",
    "no tokens",
    "{A} in {B:0.0000} ms",
    "{C}",
]
NEEDLES = [
    "timeout",
    "TIMEOUT",
    "imeout",
    "e",
    "E+",
    "1E",
    "0",
    "ti",
    "t",
    " ",
    "ut",
    "{a}",
    "ı",
    "ss",
    "ß",
    '"',
    "\\",
    "null",
    "rue",
    "[",
    "a,",
    "\U0001d4af",
    "K",
    "1.5",
    ".",
    "out|",
]


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {"@mt": draw(st.sampled_from(TEMPLATES))}
    for name in ("A", "B", "C"):
        kind = draw(st.integers(0, 3))
        if kind == 1:
            event[name] = draw(scalars)
        elif kind == 2:
            event[name] = draw(numbers)
        elif kind == 3:
            event[name] = draw(collections)
    if draw(st.integers(0, 3)) == 0:
        event["@r"] = draw(st.lists(texts, max_size=2))
    if draw(st.integers(0, 5)) == 0:
        event["@x"] = draw(texts)
    if draw(st.integers(0, 7)) == 0:
        event["@m"] = draw(texts)
    return event


def rendered_match(event: dict[str, Any], needle: str) -> bool:
    folded = fold(needle)
    message = event.get("@m")
    if not isinstance(message, str) and isinstance(event.get("@mt"), str):
        message = templates.render(event["@mt"], event, event.get("@r"))
    return any(
        isinstance(text, str) and folded in fold(text) for text in (message, event.get("@x"))
    )


def quoted(needle: str) -> str:
    return '"' + needle.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_store(parts: list[list[dict[str, Any]]], needles: list[str]) -> None:
    """Stores `parts` (a segment each, small blocks), then searches for each needle."""
    with tempfile.TemporaryDirectory() as directory:
        with seqfast.open(directory, block_rows=4, flush_rows=1 << 30) as store:
            second = 0
            for part in parts:
                batch = []
                for event in part:
                    batch.append({"@t": f"2026-01-01T00:00:{second % 60:02d}Z", **event})
                    second += 1
                store.ingest(batch)
                store.flush()  # one segment per part: blocks with their statistics
        with seqfast.open(directory) as store:
            stored = list(store.events(limit=1 << 30))
            for needle in needles:
                expected = [e["@id"] for e in stored if rendered_match(e, needle)]
                found = store.search(quoted(needle), limit=1 << 30).events
                assert [e["@id"] for e in found] == expected, needle
                count = store.query(f"select count(*) from stream where {quoted(needle)}")
                assert count.rows == [[len(expected)]], needle


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(events(), min_size=1, max_size=12), min_size=1, max_size=4),
    st.lists(st.sampled_from(NEEDLES), min_size=1, max_size=4),
)
def test_stored_blocks_agree_with_rendering_every_event(
    parts: list[list[dict[str, Any]]], needles: list[str]
) -> None:
    check_store(parts, needles)


KNOWN: list[tuple[dict[str, Any], str]] = [
    # Arrays and objects render with spaces and quotes their stored text lacks.
    ({"@mt": "{A}", "A": [1, 2]}, ", "),
    ({"@mt": "{A}", "A": {"k": 1}}, "{ k: 1 }"),
    ({"@mt": "{A}", "A": {"$type": "T", "k": "v"}}, "T { k"),
    ({"@mt": "x{A}", "A": {"$type": "Tı", "k": 1}}, "xti"),
    # Escapes in an array's stored text that its rendering spells out.
    ({"@mt": "{A}", "A": ["a\nb"]}, "a\nb"),
    ({"@mt": "{A}", "A": {"k": "tab\there"}}, "b\th"),
    # Escaped quotes inside a rendered string.
    ({"@mt": "{A}", "A": 'say "hi"'}, '\\"hi'),
    # An empty custom-format rendering joins the texts around it.
    ({"@mt": "TIME{A:#}OUT", "A": 0}, "timeout"),
    ({"@mt": "TIME{A:0.0}OUT", "A": 1.5, "@r": [""]}, "timeout"),
    ({"@mt": "TIME{A:x}OUT", "A": "zz", "@r": [""]}, "timeout"),
    # Words and numbers meeting the template's text.
    ({"@mt": "t{A}", "A": True}, "TTRUE"),
    ({"@mt": "{A}imeout", "A": "t"}, "timeout"),
    ({"@mt": "{A}imeout", "A": None}, "llim"),
    ({"@mt": "{A}EOUT", "A": 1e20}, "E+20EOUT"),
    ({"@mt": "{A}x", "A": 2**70}, "424x"),
    ({"@mt": "at {A}", "B": 1}, "{a}"),
    ({"@mt": "{A,6}|", "A": 1}, "  1|"),
    # Case folding that changes scripts or lengths.
    ({"@mt": "{A}", "A": "ſtop"}, "stop"),
    ({"@mt": "{A}", "A": "\u212aey"}, "key"),
    ({"@mt": "{A}", "A": "straße"}, "STRASSE"),
    ({"@mt": "{A}", "A": "\U0001d4af!"}, "\U0001d4af"),
]


def test_known_cases() -> None:
    for event, needle in KNOWN:
        check_store([[event, {"@mt": "other"}]], [needle])


def test_a_column_s_strings_read_alone() -> None:
    """`read_strings` gives a dictionary's distinct values, or every string cell in order."""
    with tempfile.TemporaryDirectory() as directory:
        with seqfast.open(directory, block_rows=64, flush_rows=1 << 30) as store:
            store.ingest(
                [
                    {
                        "@t": f"2026-01-01T00:00:{i:02d}Z",
                        "@mt": "m",
                        "Few": ["a", "bb"][i % 2],
                        "Many": f"v{i}" if i % 3 else i,
                    }
                    for i in range(12)
                ]
            )
        with seqfast.open(directory) as store:
            segments, _ = store._snapshot()
            reader = segments[0].open_reader()
            few = read_strings(reader, 0, "Few")
            many = read_strings(reader, 0, "Many")
            assert read_strings(reader, 0, "Missing") is None
            assert few is not None and many is not None

            def listed(found: tuple[np.ndarray, bytes]) -> list[str]:
                offsets, data = found
                return [data[offsets[i] : offsets[i + 1]].decode() for i in range(offsets.size - 1)]

            assert listed(few) == ["a", "bb"]
            assert listed(many) == [f"v{i}" for i in range(12) if i % 3]


# --- the overlap rules against brute force ----------------------------------------------------

small_texts = st.text(st.sampled_from("abAB1 +E"), max_size=4)


@settings(max_examples=400, deadline=None)
@given(
    st.text(st.sampled_from("abAB1 +E"), min_size=1, max_size=4),
    small_texts,
    small_texts,
    small_texts,
    small_texts,
    small_texts,
)
def test_overlap_rules_never_miss_a_match(
    needle: str, far_left: str, left: str, value: str, right: str, far_right: str
) -> None:
    """Whenever the needle occurs across a rendering (or an empty one's place) in some
    context, the rules say it may."""
    needle, left, value, right = fold(needle), fold(left), fold(value), fold(right)
    text = fold(far_left) + left + value + right + fold(far_right)
    start = len(far_left) + len(left)
    stop = start + len(value)
    at = text.find(needle)
    crossing = False
    while at >= 0:
        end = at + len(needle)
        if (at < stop and end > start) if value else (at < start < end):
            crossing = True
        at = text.find(needle, at + 1)
    if crossing and value:
        assert vector_text._word_overlaps(needle, left, value, right)
    if crossing:
        chars = frozenset(value)
        assert vector_text._run_overlaps(needle, left, chars, right, empty=not value)
