"""Event ids and timestamp text: the two ways an event's position is shown to users.

An event id is `event-` followed by 32 lowercase hex digits: the event's timestamp as .NET ticks
(100 ns since 0001-01-01, so never negative for a valid timestamp) and its arrival number, each
16 digits.  Comparing ids as strings therefore orders events by time, then arrival.
"""

from __future__ import annotations

import datetime as _dt

# 100-ns ticks between 0001-01-01T00:00:00Z and 1970-01-01T00:00:00Z.
UNIX_EPOCH_DOTNET_TICKS = 621_355_968_000_000_000
TICKS_PER_SECOND = 10_000_000
_ID_PREFIX = "event-"
_EPOCH = _dt.datetime(1970, 1, 1)


def event_id(ts: int, seq: int) -> str:
    """The id of the event with Unix-epoch tick timestamp `ts` and arrival number `seq`."""
    return f"{_ID_PREFIX}{ts + UNIX_EPOCH_DOTNET_TICKS:016x}{seq:016x}"


def parse_event_id(text: str) -> tuple[int, int]:
    """(ts, seq) of an id made by `event_id`; ValueError with a sentence if it is not one."""
    problem = f"{text!r} is not a seqfast event id (expected 'event-' and 32 hex digits)"
    if len(text) != len(_ID_PREFIX) + 32 or not text.startswith(_ID_PREFIX):
        raise ValueError(problem)
    try:
        ticks = int(text[6:22], 16)
        seq = int(text[22:38], 16)
    except ValueError:
        raise ValueError(problem) from None
    return ticks - UNIX_EPOCH_DOTNET_TICKS, seq


def format_ticks(ts: int) -> str:
    """RFC 3339 UTC text with 7 fractional digits, e.g. `2024-05-01T12:00:00.1234567Z`."""
    seconds, frac = divmod(ts, TICKS_PER_SECOND)
    moment = _EPOCH + _dt.timedelta(seconds=seconds)
    # Spelled out rather than strftime("%Y"), which does not zero-pad years before 1000.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{frac:07d}Z"
    )
