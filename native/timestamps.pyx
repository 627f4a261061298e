# Timestamp text -> 100-ns ticks since 1970-01-01T00:00:00Z.
#
# The forms real clients send: ISO 8601 / RFC 3339 with `T`, `t` or a space between date and
# time, seconds optional, 0 to 9 fractional digits (beyond 7 truncated: ticks are 100 ns),
# `Z`, an offset (`+hh:mm`, `+hhmm`, `+hh`) or nothing (= UTC), or a bare date (midnight UTC).

DEF TICKS_PER_SECOND = 10000000
# Ticks of 0001-01-01T00:00:00Z and of 9999-12-31T23:59:59.9999999Z, relative to 1970.
cdef int64_t MIN_TICKS = -621355968000000000LL
cdef int64_t MAX_TICKS = 2534023007999999999LL


cdef inline int64_t _days_from_civil(int64_t y, int64_t m, int64_t d) noexcept nogil:
    # Days since 1970-01-01 of a proleptic Gregorian date (an era-based closed form, valid for
    # every year we accept).
    cdef int64_t era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline int _days_in_month(int y, int m) noexcept nogil:
    if m == 2:
        if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0:
            return 29
        return 28
    if m == 4 or m == 6 or m == 9 or m == 11:
        return 30
    return 31


cdef inline int _digits(const unsigned char* p, Py_ssize_t n, int* out) noexcept nogil:
    # Reads exactly n ASCII digits; returns 0 when any is not a digit.
    cdef int v = 0
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] < 48 or p[i] > 57:
            return 0
        v = v * 10 + (p[i] - 48)
    out[0] = v
    return 1


cdef int parse_timestamp(const unsigned char* p, Py_ssize_t n, int64_t* out) noexcept nogil:
    """Parses timestamp text p[0:n]; returns 1 and sets *out, or 0 when the text is not one."""
    cdef int year, month, day, hour = 0, minute = 0, second = 0, oh = 0, om = 0
    cdef int64_t frac = 0, seconds, ticks
    cdef int fdigits = 0, sign = 0
    cdef Py_ssize_t i
    if n < 10 or not _digits(p, 4, &year) or p[4] != 45 or not _digits(p + 5, 2, &month) \
            or p[7] != 45 or not _digits(p + 8, 2, &day):
        return 0
    if year < 1 or month < 1 or month > 12 or day < 1 or day > _days_in_month(year, month):
        return 0
    i = 10
    if i < n:
        # 'T', 't' or a space, then hh:mm
        if p[i] != 84 and p[i] != 116 and p[i] != 32:
            return 0
        if i + 6 > n or not _digits(p + i + 1, 2, &hour) or p[i + 3] != 58 \
                or not _digits(p + i + 4, 2, &minute):
            return 0
        i += 6
        if i < n and p[i] == 58:
            if i + 3 > n or not _digits(p + i + 1, 2, &second):
                return 0
            i += 3
            if i < n and p[i] == 46:
                i += 1
                while i < n and 48 <= p[i] <= 57:
                    if fdigits < 7:
                        frac = frac * 10 + (p[i] - 48)
                    fdigits += 1
                    i += 1
                if fdigits == 0 or fdigits > 9:
                    return 0
                while fdigits < 7:
                    frac *= 10
                    fdigits += 1
        if hour > 23 or minute > 59 or second > 59:
            return 0
        if i < n:
            if (p[i] == 90 or p[i] == 122) and i + 1 == n:
                i += 1
            elif p[i] == 43 or p[i] == 45:
                sign = 1 if p[i] == 43 else -1
                if i + 3 > n or not _digits(p + i + 1, 2, &oh):
                    return 0
                i += 3
                if i < n:
                    if p[i] == 58:
                        i += 1
                    if i + 2 != n or not _digits(p + i, 2, &om):
                        return 0
                    i += 2
                if oh > 23 or om > 59:
                    return 0
            else:
                return 0
        if i != n:
            return 0
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    seconds -= sign * (oh * 3600 + om * 60)
    ticks = seconds * TICKS_PER_SECOND + frac
    if ticks < MIN_TICKS or ticks > MAX_TICKS:
        return 0
    out[0] = ticks
    return 1


def parse_timestamp_text(text):
    """Ticks since 1970 (100 ns) of timestamp text, or None when it is not a valid timestamp."""
    cdef bytes b = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    cdef int64_t ticks = 0
    if parse_timestamp(<const unsigned char*>b, len(b), &ticks):
        return ticks
    return None
