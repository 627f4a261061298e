# Query kernels: per-row string predicates over a string list (offsets, data), the shape of a
# column's strings, of a dense row-aligned string array and of a dictionary's distinct values.
#
# Each kernel answers one byte per string: 0 (false), 1 (true) or 2 (undecided), left to the
# caller, which applies the language's exact Unicode rules to those few strings.  Case
# folding of ASCII is upper-casing a-z, which is what the language's per-character folding
# does to ASCII.  A needle or pattern is given already folded by the caller.
#
# Case-insensitive matching of an ASCII needle is decided on bytes even in non-ASCII text:
# the only non-ASCII characters whose folded form is ASCII are dotless i (U+0131, bytes C4 B1)
# and long s (U+017F, C5 BF), which fold to I and S; every other non-ASCII character folds to
# a non-ASCII one and so can never be part of a match.  So a byte match is a match, and no
# byte match is no match unless the needle has I or S and the text has a C4 or C5 byte: only
# those strings are undecided.

DEF MODE_EQUALS = 0
DEF MODE_CONTAINS = 1
DEF MODE_STARTS = 2
DEF MODE_ENDS = 3

from libc.string cimport memchr


cdef inline uint8_t _upper(uint8_t c) noexcept nogil:
    return c - 32 if 97 <= c <= 122 else c


cdef inline bint _may_fold_to_i_or_s(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    # Whether the text may hold U+0131 or U+017F (lead bytes C4, C5).
    return n > 0 and (memchr(p, 0xC4, <size_t>n) != NULL or memchr(p, 0xC5, <size_t>n) != NULL)


cdef inline bint _has_i_or_s(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    return n > 0 and (memchr(p, 73, <size_t>n) != NULL or memchr(p, 83, <size_t>n) != NULL)


cdef inline bint _ascii(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] >= 0x80:
            return False
    return True


cdef inline bint _same(const uint8_t* a, const uint8_t* b, Py_ssize_t n, bint fold) noexcept nogil:
    # a is text, b the (folded) needle.
    cdef Py_ssize_t i
    if not fold:
        return n == 0 or memcmp(a, b, <size_t>n) == 0
    for i in range(n):
        if _upper(a[i]) != b[i]:
            return False
    return True


cdef inline bint _contains(
    const uint8_t* h, Py_ssize_t hn, const uint8_t* nd, Py_ssize_t nn, bint fold
) noexcept nogil:
    cdef Py_ssize_t i, last
    cdef uint8_t first, lower
    cdef const uint8_t* hit
    if nn == 0:
        return True
    if nn > hn:
        return False
    last = hn - nn
    first = nd[0]
    if not fold or not (65 <= first <= 90):
        # The first byte has one spelling: memchr finds candidates.
        i = 0
        while i <= last:
            hit = <const uint8_t*>memchr(h + i, first, <size_t>(last - i + 1))
            if hit == NULL:
                return False
            i = hit - h
            if _same(h + i + 1, nd + 1, nn - 1, fold):
                return True
            i += 1
        return False
    lower = first + 32
    for i in range(last + 1):
        if (h[i] == first or h[i] == lower) and _same(h + i + 1, nd + 1, nn - 1, fold):
            return True
    return False


def match_strings(
    const int64_t[::1] offsets not None,
    const uint8_t[::1] data not None,
    const uint8_t[::1] rows not None,
    const uint8_t[::1] needle not None,
    int mode,
    bint fold,
):
    """Per string of (offsets, data): whether it equals (mode 0), contains (1), starts with (2)
    or ends with (3) `needle`; with `fold`, comparing case-insensitively (the needle already
    folded) and answering 2 where bytes cannot decide (see the top of this file).  `rows` (one
    byte per string, or empty for all) limits the work: strings whose byte is 0 answer 0.
    """
    cdef Py_ssize_t m = offsets.shape[0] - 1, i, length
    cdef Py_ssize_t nn = needle.shape[0]
    cdef const uint8_t* base = _bytes_ptr(data)
    cdef const uint8_t* nd = _bytes_ptr(needle)
    cdef const uint8_t* p
    cdef bint all_rows = rows.shape[0] == 0
    cdef bint hit
    cdef bint needle_ascii = _ascii(nd, nn)
    cdef bint needle_i_or_s = _has_i_or_s(nd, nn)
    _check_offsets(offsets, data.shape[0])
    if not all_rows and rows.shape[0] != m:
        raise ValueError(f"rows has {rows.shape[0]} entries for {m} strings")
    if mode < MODE_EQUALS or mode > MODE_ENDS:
        raise ValueError(f"unknown match mode {mode}")
    out = np.zeros(m, dtype=np.uint8)
    cdef uint8_t[::1] o = out
    with nogil:
        for i in range(m):
            if not all_rows and rows[i] == 0:
                continue
            p = base + offsets[i]
            length = offsets[i + 1] - offsets[i]
            if fold and not needle_ascii and not _ascii(p, length):
                o[i] = 2
                continue
            if mode == MODE_EQUALS:
                hit = length == nn and _same(p, nd, nn, fold)
            elif mode == MODE_CONTAINS:
                hit = _contains(p, length, nd, nn, fold)
            elif mode == MODE_STARTS:
                hit = length >= nn and _same(p, nd, nn, fold)
            else:
                hit = length >= nn and _same(p + length - nn, nd, nn, fold)
            if hit:
                o[i] = 1
            elif fold and needle_i_or_s and _may_fold_to_i_or_s(p, length):
                o[i] = 2
    return out


# --- whether any string of a list contains a text -----------------------------------------
#
# A search that only needs to know whether some string of a list holds a text (to rule a
# whole column out unread) scans the list's bytes once rather than string by string: short
# strings cost no per-string setup and the scan stops at the first match.  A byte match
# counts only when it lies inside one string.  The answer is what `match_strings` in contains
# mode would give for the list as a whole: 1 when some string answers 1, else 2 when some
# string is undecided, else 0.


# English letters from the most to the least frequent: the needle byte looked for is its
# rarest one, so that few candidates need checking.
cdef const char* _LETTERS_BY_FREQUENCY = b"ETAOINSHRDLCUMWFGYPBVKJXQZ"


cdef inline int _rarity(uint8_t c) noexcept nogil:
    cdef int i
    if 65 <= c <= 90:
        for i in range(26):
            if _LETTERS_BY_FREQUENCY[i] == c:
                return i
    if c == 32:
        return -1
    if 48 <= c <= 57:
        return 10
    return 30


cdef inline Py_ssize_t _anchor(const uint8_t* nd, Py_ssize_t nn) noexcept nogil:
    # The (folded) needle byte to look for: the rarest one.
    cdef Py_ssize_t j, best = 0
    for j in range(1, nn):
        if _rarity(_upper(nd[j])) >= _rarity(_upper(nd[best])):
            best = j
    return best


cdef inline Py_ssize_t _next(
    const uint8_t* base, uint8_t c, Py_ssize_t lo, Py_ssize_t hi
) noexcept nogil:
    # The first position in [lo, hi] holding c, or -1.
    cdef const uint8_t* hit
    if lo > hi:
        return -1
    hit = <const uint8_t*>memchr(base + lo, c, <size_t>(hi - lo + 1))
    return -1 if hit == NULL else hit - base


def contains_any(
    const int64_t[::1] offsets not None,
    const uint8_t[::1] data not None,
    const uint8_t[::1] needle not None,
    bint fold,
):
    """Whether some string of (offsets, data) contains `needle`; with `fold`, ignoring case
    (the needle already folded).  1: one does; 0: none does; 2: bytes cannot decide (with
    `fold`: a non-ASCII needle and some non-ASCII text, or a needle holding I or S and text
    that may hold dotless i or long s; see the top of this file)."""
    cdef Py_ssize_t m = offsets.shape[0] - 1, nn = needle.shape[0]
    cdef Py_ssize_t k = 0, start, stop, hi, j, at, pa, pb
    cdef const uint8_t* base = _bytes_ptr(data)
    cdef const uint8_t* nd = _bytes_ptr(needle)
    cdef uint8_t a, b
    cdef int answer = 0
    cdef bint needle_ascii = _ascii(nd, nn)
    _check_offsets(offsets, data.shape[0])
    if m <= 0:
        return 0
    with nogil:
        start = offsets[0]
        stop = offsets[m]
        if nn == 0:
            answer = 1
        elif fold and not needle_ascii:
            # Only non-ASCII text can hold it, and that is left to the caller.
            answer = 0 if _ascii(base + start, stop - start) else 2
        else:
            # Candidates are the places of the needle's rarest byte, in either spelling of a
            # letter when folding: two memchr scans, each resumed past the candidate it gave.
            j = _anchor(nd, nn)
            a = nd[j]
            b = a + 32 if fold and 65 <= a <= 90 else a
            hi = stop - nn + j  # the last place the anchor byte of a match can be
            pa = _next(base, a, start + j, hi)
            pb = _next(base, b, start + j, hi) if b != a else -1
            while pa >= 0 or pb >= 0:
                at = pa if pb < 0 or (0 <= pa < pb) else pb
                if _same(base + at - j, nd, nn, fold):
                    while offsets[k + 1] <= at - j:
                        k += 1
                    if at - j + nn <= offsets[k + 1]:
                        answer = 1
                        break
                if pa == at:
                    pa = _next(base, a, at + 1, hi)
                if pb == at:
                    pb = _next(base, b, at + 1, hi)
            if (
                answer == 0
                and fold
                and _has_i_or_s(nd, nn)
                and _may_fold_to_i_or_s(base + start, stop - start)
            ):
                answer = 2
    return answer


cdef bint _like(
    const uint8_t* s, Py_ssize_t sn, const uint8_t* pat, Py_ssize_t pn, bint fold
) noexcept nogil:
    # `%` any run, `_` one byte (the caller sends non-ASCII text elsewhere when `_` or
    # folding is involved).  Backtracking to the latest `%` is enough: each `%` only ever
    # needs to absorb more.
    cdef Py_ssize_t si = 0, pi = 0, star = -1, mark = 0
    cdef uint8_t c
    while si < sn:
        if pi < pn and pat[pi] == 37:  # '%'
            star = pi
            mark = si
            pi += 1
            continue
        if pi < pn:
            c = _upper(s[si]) if fold else s[si]
            if pat[pi] == 95 or pat[pi] == c:  # '_' or the same byte
                si += 1
                pi += 1
                continue
        if star >= 0:
            pi = star + 1
            mark += 1
            si = mark
            continue
        return False
    while pi < pn and pat[pi] == 37:
        pi += 1
    return pi == pn


def like_strings(
    const int64_t[::1] offsets not None,
    const uint8_t[::1] data not None,
    const uint8_t[::1] rows not None,
    const uint8_t[::1] pattern not None,
    bint fold,
):
    """Per string: whether the whole string matches the `like` pattern (`%` any run of
    characters, `_` exactly one); 2 for non-ASCII text when `_` counts characters or the
    folded pattern is not ASCII, and as in `match_strings` for I and S.  `rows` as in
    `match_strings`."""
    cdef Py_ssize_t m = offsets.shape[0] - 1, i, length
    cdef Py_ssize_t pn = pattern.shape[0]
    cdef const uint8_t* base = _bytes_ptr(data)
    cdef const uint8_t* pat = _bytes_ptr(pattern)
    cdef const uint8_t* p
    cdef bint all_rows = rows.shape[0] == 0
    cdef bint per_char = fold and not _ascii(pat, pn)
    cdef bint pattern_i_or_s = _has_i_or_s(pat, pn)
    _check_offsets(offsets, data.shape[0])
    if not all_rows and rows.shape[0] != m:
        raise ValueError(f"rows has {rows.shape[0]} entries for {m} strings")
    if pn and memchr(pat, 95, <size_t>pn) != NULL:
        per_char = True  # `_` counts characters
    out = np.zeros(m, dtype=np.uint8)
    cdef uint8_t[::1] o = out
    with nogil:
        for i in range(m):
            if not all_rows and rows[i] == 0:
                continue
            p = base + offsets[i]
            length = offsets[i + 1] - offsets[i]
            if per_char and not _ascii(p, length):
                o[i] = 2
                continue
            if _like(p, length, pat, pn, fold):
                o[i] = 1
            elif fold and pattern_i_or_s and _may_fold_to_i_or_s(p, length):
                o[i] = 2
    return out


def ascii_rows(
    const int64_t[::1] offsets not None,
    const uint8_t[::1] data not None,
):
    """Per string: 1 when it is pure ASCII, else 0."""
    cdef Py_ssize_t m = offsets.shape[0] - 1, i
    cdef const uint8_t* base = _bytes_ptr(data)
    _check_offsets(offsets, data.shape[0])
    out = np.zeros(m, dtype=np.uint8)
    cdef uint8_t[::1] o = out
    with nogil:
        for i in range(m):
            o[i] = 1 if _ascii(base + offsets[i], offsets[i + 1] - offsets[i]) else 0
    return out


def string_lengths_utf16(
    const int64_t[::1] offsets not None,
    const uint8_t[::1] data not None,
):
    """Per string: its length in UTF-16 code units (a 4-byte UTF-8 sequence counts 2)."""
    cdef Py_ssize_t m = offsets.shape[0] - 1, i
    cdef int64_t j, count
    cdef uint8_t c
    cdef const uint8_t* base = _bytes_ptr(data)
    _check_offsets(offsets, data.shape[0])
    out = np.zeros(m, dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for i in range(m):
            count = 0
            for j in range(offsets[i], offsets[i + 1]):
                c = base[j]
                if (c & 0xC0) != 0x80:  # not a continuation byte: a new character
                    count += 2 if c >= 0xF0 else 1
            o[i] = count
    return out


def equal_string_pairs(
    const int64_t[::1] a_offsets not None,
    const uint8_t[::1] a_data not None,
    const int64_t[::1] b_offsets not None,
    const uint8_t[::1] b_data not None,
    const uint8_t[::1] rows not None,
    bint fold,
):
    """Per row i: whether string i of a equals string i of b (with `fold`, ASCII
    case-insensitively, 2 when either is not ASCII).  `rows` as in `match_strings`."""
    cdef Py_ssize_t m = a_offsets.shape[0] - 1, i, la, lb
    cdef const uint8_t* abase = _bytes_ptr(a_data)
    cdef const uint8_t* bbase = _bytes_ptr(b_data)
    cdef const uint8_t* pa
    cdef const uint8_t* pb
    cdef bint all_rows = rows.shape[0] == 0
    _check_offsets(a_offsets, a_data.shape[0])
    _check_offsets(b_offsets, b_data.shape[0])
    if b_offsets.shape[0] - 1 != m or (not all_rows and rows.shape[0] != m):
        raise ValueError("string lists of different lengths")
    out = np.zeros(m, dtype=np.uint8)
    cdef uint8_t[::1] o = out
    with nogil:
        for i in range(m):
            if not all_rows and rows[i] == 0:
                continue
            pa = abase + a_offsets[i]
            pb = bbase + b_offsets[i]
            la = a_offsets[i + 1] - a_offsets[i]
            lb = b_offsets[i + 1] - b_offsets[i]
            if fold:
                if not (_ascii(pa, la) and _ascii(pb, lb)):
                    o[i] = 2
                    continue
                o[i] = 1 if la == lb and _fold_same(pa, pb, la) else 0
            else:
                o[i] = 1 if la == lb and (la == 0 or memcmp(pa, pb, <size_t>la) == 0) else 0
    return out


cdef inline bint _fold_same(const uint8_t* a, const uint8_t* b, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if _upper(a[i]) != _upper(b[i]):
            return False
    return True


def any_byte_of(
    const int64_t[::1] offsets not None,
    const uint8_t[::1] data not None,
    const uint8_t[::1] table not None,
):
    """Per string: 1 when it holds a byte b with table[b] != 0 (table has 256 entries)."""
    cdef Py_ssize_t m = offsets.shape[0] - 1, i
    cdef int64_t j
    cdef const uint8_t* base = _bytes_ptr(data)
    _check_offsets(offsets, data.shape[0])
    if table.shape[0] != 256:
        raise ValueError("the byte table needs 256 entries")
    out = np.zeros(m, dtype=np.uint8)
    cdef uint8_t[::1] o = out
    with nogil:
        for i in range(m):
            for j in range(offsets[i], offsets[i + 1]):
                if table[base[j]]:
                    o[i] = 1
                    break
    return out
