"""Every rejection reason: the batch fails whole, the error names the line, nothing is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

import seqfast
from seqfast.errors import InvalidEvents

GOOD = b'{"@t":"2024-01-01T00:00:00Z","@mt":"fine","N":1}\n'
DEEP = b'{"@t":"2024-01-01T00:00:00Z","x":' + b"[" * 64 + b"]" * 64 + b"}"
BIG = b'{"@t":"2024-01-01T00:00:00Z","x":"' + b"a" * 300_000 + b'"}'

CASES = [
    (b'{"@t":"2024-01-01T00:00:00Z","x":}', "invalid JSON"),
    (b'{"@t":"2024-01-01T00:00:00Z",}', "invalid JSON"),
    (b'{"@t":"2024-01-01T00:00:00Z","x":NaN}', "invalid JSON"),
    (b'{"@t":"2024-01-01T00:00:00Z","x":01}', "invalid JSON"),
    (b'{"@t":"2024-01-01T00:00:00Z","x":"\\ud800"}', "invalid JSON"),
    (b'{"@t":"2024-01-01T00:00:00Z","x":"a\tb"}', "invalid JSON"),
    (b'{"@t":"2024-01-01T00:00:00Z"} {}', "invalid JSON"),
    (b'{"@t":"2024-01-01T00:00:00Z","x":"\xc3\x28"}', "invalid UTF-8"),
    (b'{"@t":"2024-01-01T00:00:00Z","x":"\xed\xa0\x80"}', "invalid UTF-8"),
    (b"[1, 2]", "not a JSON object"),
    (b'"text"', "not a JSON object"),
    (DEEP, "nesting deeper than 64"),
    (BIG, "event of 300036 bytes exceeds the limit of 262144 bytes"),
    (b'{"@mt":"no time"}', "missing @t"),
    (b'{"@t":1704067200}', "@t is not a string"),
    (b'{"@t":"yesterday"}', "@t is not a valid timestamp: 'yesterday'"),
    (b'{"@t":"2024-02-30T00:00:00Z"}', "@t is not a valid timestamp: '2024-02-30T00:00:00Z'"),
    (b'{"@t":"2024-01-01T24:00:00Z"}', "@t is not a valid timestamp"),
    (b'{"@t":"2024-01-01T00:00:00.1234567890Z"}', "@t is not a valid timestamp"),
    (b'{"@t":"2024-01-01T00:00:00Z","a":1,"a":2}', "duplicate key 'a'"),
    (b'{"@t":"2024-01-01T00:00:00Z","@mt":5}', "@mt must be a string"),
    (b'{"@t":"2024-01-01T00:00:00Z","@l":null}', "@l must be a string"),
    (b'{"@t":"2024-01-01T00:00:00Z","@st":"soon"}', "@st is not a valid timestamp: 'soon'"),
    (b'{"@t":"2024-01-01T00:00:00Z","@i":1.5}', "@i must be a string or an integer"),
    (b'{"@t":"2024-01-01T00:00:00Z","@r":"x"}', "@r must be an array"),
    (b'{"@t":"2024-01-01T00:00:00Z","@ra":[]}', "@ra must be an object"),
]


@pytest.mark.parametrize(("line", "reason"), CASES, ids=[r for _, r in CASES])
def test_rejected_batch_names_line_and_stores_nothing(
    tmp_path: Path, line: bytes, reason: str
) -> None:
    with seqfast.open(tmp_path) as store:
        store.ingest_clef(GOOD)
        # the bad event is line 4, after two good ones and a blank line
        with pytest.raises(InvalidEvents) as info:
            store.ingest_clef(GOOD + GOOD + b"\r\n" + line + b"\n" + GOOD)
        assert info.value.line == 4
        assert info.value.reason.startswith(reason)
        assert str(info.value).startswith(f"line 4: {reason}")
        assert store.stats()["events"] == 1
    with seqfast.open(tmp_path) as store:
        assert store.stats()["events"] == 1


def test_per_event_limit_is_a_setting(tmp_path: Path) -> None:
    with seqfast.open(tmp_path, max_event_bytes=40) as store:
        with pytest.raises(InvalidEvents, match="exceeds the limit of 40 bytes"):
            store.ingest_clef(GOOD)
        assert store.ingest_clef(b'{"@t":"2024-01-01T00:00:00Z"}') == 1


def test_blank_lines_crlf_and_missing_final_newline_are_fine(tmp_path: Path) -> None:
    with seqfast.open(tmp_path) as store:
        payload = b"\r\n" + GOOD.rstrip(b"\n") + b"\r\n  \n\n" + GOOD.rstrip(b"\n")
        assert store.ingest_clef(payload) == 2
        assert store.ingest_clef(b"") == 0
        assert store.ingest_clef(b"\n \n") == 0


def test_events_that_are_not_objects_are_rejected_by_ingest(tmp_path: Path) -> None:
    with seqfast.open(tmp_path) as store:
        with pytest.raises(InvalidEvents) as info:
            store.ingest([{"@t": "2024-01-01T00:00:00Z"}, ["nope"]])  # type: ignore[list-item]
        assert info.value.line == 2
        with pytest.raises(InvalidEvents, match="line 1: missing @t"):
            store.ingest([{"x": 1}])
        assert store.stats()["events"] == 0
