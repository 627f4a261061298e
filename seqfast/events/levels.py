"""Log levels: stored exactly as the client spelled them, compared by severity rank.

Every logging ecosystem spells levels differently, and a query such as
`@Level = 'Warning'` or a retention rule "drop below Information" has to treat `WRN`, `warn`
and `Warning` alike.  `_TABLE` below is the only place that knows the spellings; everything
else (the ranks, the Seq names, the OpenTelemetry severity numbers) is derived from it.

Ranks follow Seq's six levels: Verbose 0, Debug 1, Information 2, Warning 3, Error 4,
Fatal 5.  A missing level means Information (as in CLEF, where an event without `@l` is an
Information event).  A spelling the table does not know has no rank: callers keep the text and
treat its severity as unknown rather than guess.

Choices where ecosystems disagree:

* winston/npm `http` sits between `info` and `verbose`; it is the level of request/access
  logs, which users expect to see at the default Information filter, so it ranks as
  Information.  npm `verbose` is spelled like Serilog's and ranks as Verbose.
* Python `NOTSET` (level 0, below DEBUG) ranks as Verbose: a record carrying it is more
  detailed than debug output.
* .NET `None` and log4j `OFF`/`ALL` are thresholds that switch logging off or on, never the
  level of an actual event, so they stay unknown.
* Numeric text such as `"13"` is not a level spelling; OpenTelemetry severity numbers arrive
  as numbers and go through `rank_of_otlp_severity`.
"""

from __future__ import annotations

from typing import Final

DEFAULT_LEVEL: Final = "Information"

# One row per Seq level, least severe first: the row's index is its rank.
# (Seq name, OpenTelemetry severity numbers, spellings other than the Seq name, lower case).
_TABLE: Final[tuple[tuple[str, range, tuple[str, ...]], ...]] = (
    (
        "Verbose",
        range(1, 5),
        (
            "vrb",  # Serilog short form
            "trace",  # .NET MEL, log4j, NLog, logrus, OpenTelemetry TRACE
            "trce",  # .NET MEL console formatter
            "trace2",  # OpenTelemetry
            "trace3",
            "trace4",
            "silly",  # winston/npm
            "notset",  # Python logging
            "finer",  # java.util.logging
            "finest",
        ),
    ),
    (
        "Debug",
        range(5, 9),
        (
            "dbg",  # Serilog short form
            "dbug",  # .NET MEL console formatter
            "debug2",  # OpenTelemetry
            "debug3",
            "debug4",
            "fine",  # java.util.logging
            "config",
        ),
    ),
    (
        "Information",
        range(9, 13),
        (
            "inf",  # Serilog short form
            "info",  # Python, syslog, winston, log4j, OpenTelemetry INFO
            "info2",  # OpenTelemetry
            "info3",
            "info4",
            "informational",  # syslog (RFC 5424 name)
            "notice",  # syslog: normal but significant
            "http",  # winston/npm, see the module docstring
        ),
    ),
    (
        "Warning",
        range(13, 17),
        (
            "wrn",  # Serilog short form
            "warn",  # Python, syslog, winston, log4j, .NET MEL console, OpenTelemetry WARN
            "warn2",  # OpenTelemetry
            "warn3",
            "warn4",
        ),
    ),
    (
        "Error",
        range(17, 21),
        (
            "err",  # Serilog short form, syslog
            "fail",  # .NET MEL console formatter
            "error2",  # OpenTelemetry
            "error3",
            "error4",
            "severe",  # java.util.logging
            "dpanic",  # zap: a development-time panic, logged as an error in production
        ),
    ),
    (
        "Fatal",
        range(21, 25),
        (
            "ftl",  # Serilog short form
            "critical",  # .NET MEL, Python, syslog
            "crit",  # syslog, .NET MEL console formatter
            "fatal2",  # OpenTelemetry
            "fatal3",
            "fatal4",
            "emerg",  # syslog
            "emergency",
            "panic",  # syslog (deprecated emerg), logrus, zap
            "alert",  # syslog: action must be taken immediately
        ),
    ),
)

LEVELS: Final[tuple[str, ...]] = tuple(name for name, _, _ in _TABLE)
"""The Seq level names, indexed by rank."""

_BY_SPELLING: Final[dict[str, int]] = {
    spelling: rank
    for rank, (name, _, spellings) in enumerate(_TABLE)
    for spelling in (name.lower(), *spellings)
}
_BY_OTLP_SEVERITY: Final[dict[int, int]] = {
    number: rank for rank, (_, numbers, _) in enumerate(_TABLE) for number in numbers
}
_DEFAULT_RANK: Final = _BY_SPELLING[DEFAULT_LEVEL.lower()]


def rank(level: str | None) -> int | None:
    """The severity rank (0 Verbose … 5 Fatal) of `level`.

    `None` (no level given) ranks as Information; a spelling the table does not know gives
    `None`.  Case and surrounding whitespace are ignored.
    """
    if level is None:
        return _DEFAULT_RANK
    return _BY_SPELLING.get(level.strip().lower())


def canonical(level: str | None) -> str | None:
    """The Seq name (`"Warning"` for `"WRN"`) of `level`; Information for `None`; `None` if
    the spelling is unknown."""
    found = rank(level)
    return None if found is None else LEVELS[found]


def rank_of_otlp_severity(number: int) -> int | None:
    """The rank of an OpenTelemetry severity number: 1–4 trace … 21–24 fatal.

    0 (SEVERITY_NUMBER_UNSPECIFIED) and anything outside 1–24 give `None`.
    """
    return _BY_OTLP_SEVERITY.get(number)


def canonical_of_otlp_severity(number: int) -> str | None:
    """The Seq name of an OpenTelemetry severity number, or `None` as `rank_of_otlp_severity`."""
    found = rank_of_otlp_severity(number)
    return None if found is None else LEVELS[found]
