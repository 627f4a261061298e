"""The date and time functions of Seq's language over `Values`: `DateTime`, `TimeOfDay`,
`DatePart`, `TotalMilliseconds`, `ToIsoString` (and `ToEventType`, a hash of text).

Instants are whole numbers of ticks (100 ns) since 0001-01-01 up to .NET's
DateTime.MaxValue; offsets are hours (whole minutes, at most 14 either way, as .NET's
DateTimeOffset).  Anything else gives undefined, as `seqfast.testing.reference_eval`
documents.  Text functions run once per distinct string when the column has a dictionary;
`TotalMilliseconds` of whole milliseconds is vectorised; the rest run per row.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any, Final

import numpy as np

from seqfast.events.event_type import template_event_type
from seqfast.query.values import K_NUMBER, K_UNDEFINED, UNDEFINED, Values

_TICKS_PER_SECOND: Final = 10_000_000
_TICKS_PER_MINUTE: Final = 60 * _TICKS_PER_SECOND
_TICKS_PER_DAY: Final = 86_400 * _TICKS_PER_SECOND
_TICKS_PER_MS: Final = 10_000
MAX_TICKS: Final = 3_155_378_975_999_999_999  # .NET DateTime.MaxValue
_ISO: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_PARTS: Final = frozenset(
    ("year", "month", "day", "hour", "minute", "second", "millisecond", "weekday", "dayofyear")
)


def _whole(value: Any) -> int | None:
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    return None


def _local_ticks(instant: Any, offset_hours: Any) -> tuple[int, int] | None:
    """(ticks of the local time, ticks of the offset), or None when either is out of range."""
    ticks = _whole(instant)
    if ticks is None or not 0 <= ticks <= MAX_TICKS:
        return None
    if offset_hours is None:
        offset = 0
    else:
        minutes = _whole(offset_hours * 60) if isinstance(offset_hours, Decimal) else None
        if minutes is None or abs(minutes) > 14 * 60:
            return None
        offset = minutes * _TICKS_PER_MINUTE
    local = ticks + offset
    return (local, offset) if 0 <= local <= MAX_TICKS else None


def parse_date_time(text: Any) -> Any:
    """`DateTime(text)`: ISO 8601 / RFC 3339 text to ticks, else undefined."""
    found = _ISO.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        return UNDEFINED
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    h, m, s = int(hour or 0), int(minute or 0), int(second or 0)
    if h > 23 or m > 59 or s > 59:
        return UNDEFINED
    try:
        days = dt.date(int(year), int(month), int(day)).toordinal() - 1
    except ValueError:
        return UNDEFINED
    zone_minutes = 0
    if zone is not None and zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        zone_minutes = int(digits[:2]) * 60 + int(digits[2:] or "0")
        if zone[0] == "-":
            zone_minutes = -zone_minutes
    ticks = (
        days * _TICKS_PER_DAY
        + ((h * 60 + m - zone_minutes) * 60 + s) * _TICKS_PER_SECOND
        + int((fraction or "")[:7].ljust(7, "0"))
    )
    return Decimal(ticks) if 0 <= ticks <= MAX_TICKS else UNDEFINED


def time_of_day(instant: Any, offset_hours: Any) -> Any:
    local = _local_ticks(instant, offset_hours)
    return UNDEFINED if local is None else Decimal(local[0] % _TICKS_PER_DAY)


def date_part(instant: Any, part: Any, offset_hours: Any) -> Any:
    local = _local_ticks(instant, offset_hours)
    if local is None or not isinstance(part, str) or part.lower() not in _PARTS:
        return UNDEFINED
    ticks = local[0]
    days, within = divmod(ticks, _TICKS_PER_DAY)
    date = dt.date.fromordinal(days + 1)
    seconds = within // _TICKS_PER_SECOND
    value = {
        "year": date.year,
        "month": date.month,
        "day": date.day,
        "hour": seconds // 3600,
        "minute": seconds // 60 % 60,
        "second": seconds % 60,
        "millisecond": within % _TICKS_PER_SECOND // _TICKS_PER_MS,
        # 0001-01-01 was a Monday; 0 is Sunday.
        "weekday": (days + 1) % 7,
        "dayofyear": days + 1 - dt.date(date.year, 1, 1).toordinal() + 1,
    }[part.lower()]
    return Decimal(value)


def to_iso_string(instant: Any, offset_hours: Any = None) -> Any:
    local = _local_ticks(instant, offset_hours)
    if local is None:
        return UNDEFINED
    ticks, offset = local
    days, within = divmod(ticks, _TICKS_PER_DAY)
    date = dt.date.fromordinal(days + 1)
    seconds, fraction = divmod(within, _TICKS_PER_SECOND)
    text = (
        f"{date.year:04d}-{date.month:02d}-{date.day:02d}T"
        f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:07d}"
    )
    if offset_hours is None:
        return text + "Z"
    minutes = abs(offset) // _TICKS_PER_MINUTE
    return f"{text}{'-' if offset < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"


def to_event_type(text: Any) -> Any:
    return Decimal(template_event_type(text)) if isinstance(text, str) else UNDEFINED


def total_milliseconds(value: Values) -> Values | None:
    """Whole milliseconds vectorised; None when some row needs decimal division."""
    numeric = value.kind == K_NUMBER
    if value.exact is None or bool((value.exact[numeric] % _TICKS_PER_MS != 0).any()):
        return None
    exact = np.where(numeric, value.exact // _TICKS_PER_MS, 0)
    kind = np.where(numeric, K_NUMBER, K_UNDEFINED).astype(np.uint8)
    return Values(kind, exact.astype(np.float64), exact=exact)


def total_milliseconds_one(value: Any) -> Any:
    if not isinstance(value, Decimal):
        return UNDEFINED
    return value / _TICKS_PER_MS
