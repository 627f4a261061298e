"""Level spellings → severity ranks, one row per spelling of every ecosystem we accept."""

from __future__ import annotations

import pytest

from seqfast.events import levels
from seqfast.events.levels import (
    DEFAULT_LEVEL,
    LEVELS,
    canonical,
    canonical_of_otlp_severity,
    rank,
    rank_of_otlp_severity,
)

VERBOSE, DEBUG, INFORMATION, WARNING, ERROR, FATAL = range(6)

SPELLINGS: list[tuple[str, int]] = [
    # Serilog
    ("Verbose", VERBOSE),
    ("Debug", DEBUG),
    ("Information", INFORMATION),
    ("Warning", WARNING),
    ("Error", ERROR),
    ("Fatal", FATAL),
    # Serilog short forms
    ("VRB", VERBOSE),
    ("DBG", DEBUG),
    ("INF", INFORMATION),
    ("WRN", WARNING),
    ("ERR", ERROR),
    ("FTL", FATAL),
    # .NET Microsoft.Extensions.Logging, and its console formatter's four-letter forms
    ("Trace", VERBOSE),
    ("Critical", FATAL),
    ("trce", VERBOSE),
    ("dbug", DEBUG),
    ("info", INFORMATION),
    ("warn", WARNING),
    ("fail", ERROR),
    ("crit", FATAL),
    # Python logging
    ("NOTSET", VERBOSE),
    ("DEBUG", DEBUG),
    ("INFO", INFORMATION),
    ("WARNING", WARNING),
    ("WARN", WARNING),
    ("ERROR", ERROR),
    ("CRITICAL", FATAL),
    ("FATAL", FATAL),
    # syslog
    ("emerg", FATAL),
    ("emergency", FATAL),
    ("panic", FATAL),
    ("alert", FATAL),
    ("crit", FATAL),
    ("critical", FATAL),
    ("err", ERROR),
    ("error", ERROR),
    ("warning", WARNING),
    ("warn", WARNING),
    ("notice", INFORMATION),
    ("info", INFORMATION),
    ("informational", INFORMATION),
    ("debug", DEBUG),
    # winston / npm
    ("error", ERROR),
    ("warn", WARNING),
    ("info", INFORMATION),
    ("http", INFORMATION),
    ("verbose", VERBOSE),
    ("debug", DEBUG),
    ("silly", VERBOSE),
    # log4j, NLog, logrus, zap
    ("TRACE", VERBOSE),
    ("FATAL", FATAL),
    ("dpanic", ERROR),
    # java.util.logging
    ("SEVERE", ERROR),
    ("CONFIG", DEBUG),
    ("FINE", DEBUG),
    ("FINER", VERBOSE),
    ("FINEST", VERBOSE),
    # OpenTelemetry severity texts
    *[
        (f"{text}{suffix}", r)
        for r, text in enumerate(("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"))
        for suffix in ("", "2", "3", "4")
    ],
]

UNKNOWN: list[str | None] = [
    "",
    "   ",
    "None",  # .NET MEL: a threshold, never an event's level
    "OFF",  # log4j
    "ALL",
    "13",  # numbers are not spellings
    "0",
    "TRACE1",
    "TRACE5",
    "Warnings",
    "W ARN",
    "Informations",
    "infos",
    "İNFO",  # dotted capital I lowers to "i̇nfo", not "info"
]


@pytest.mark.parametrize(("spelling", "expected"), SPELLINGS)
def test_rank_of_each_spelling(spelling: str, expected: int) -> None:
    assert rank(spelling) == expected
    assert canonical(spelling) == LEVELS[expected]


@pytest.mark.parametrize(("spelling", "expected"), SPELLINGS)
def test_case_and_surrounding_whitespace_are_ignored(spelling: str, expected: int) -> None:
    for variant in (spelling.upper(), spelling.lower(), spelling.swapcase(), f" \t{spelling}\n "):
        assert rank(variant) == expected


@pytest.mark.parametrize("spelling", UNKNOWN)
def test_unknown_spellings_have_no_rank(spelling: str) -> None:
    assert rank(spelling) is None
    assert canonical(spelling) is None


def test_missing_level_is_information() -> None:
    assert DEFAULT_LEVEL == "Information"
    assert rank(None) == INFORMATION
    assert canonical(None) == "Information"


def test_seq_names_are_their_own_canonical_form_in_rank_order() -> None:
    assert LEVELS == ("Verbose", "Debug", "Information", "Warning", "Error", "Fatal")
    for r, name in enumerate(LEVELS):
        assert rank(name) == r
        assert canonical(name) == name


def test_no_spelling_is_claimed_by_two_levels() -> None:
    seen: dict[str, str] = {}
    for name, _, spellings in levels._TABLE:
        for spelling in (name.lower(), *spellings):
            assert spelling == spelling.strip().lower(), spelling
            assert spelling not in seen, f"{spelling!r} is both {seen[spelling]} and {name}"
            seen[spelling] = name


OTLP: list[tuple[int, int | None]] = [
    (0, None),  # SEVERITY_NUMBER_UNSPECIFIED
    (1, VERBOSE),
    (4, VERBOSE),
    (5, DEBUG),
    (8, DEBUG),
    (9, INFORMATION),
    (12, INFORMATION),
    (13, WARNING),
    (16, WARNING),
    (17, ERROR),
    (20, ERROR),
    (21, FATAL),
    (24, FATAL),
    (25, None),
    (-1, None),
    (2**40, None),
]


@pytest.mark.parametrize(("number", "expected"), OTLP)
def test_rank_of_otlp_severity_number(number: int, expected: int | None) -> None:
    assert rank_of_otlp_severity(number) == expected
    assert canonical_of_otlp_severity(number) == (None if expected is None else LEVELS[expected])


def test_otlp_numbers_agree_with_otlp_texts() -> None:
    # SeverityNumber n's short name is TEXT plus its position in the band of four (1 is bare).
    texts = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
    for number in range(1, 25):
        band, position = divmod(number - 1, 4)
        text = texts[band] + ("" if position == 0 else str(position + 1))
        assert rank_of_otlp_severity(number) == rank(text)
