# Column codecs of the segment file (native/FORMAT.md, "Segment file", "Streams").
#
# Integer streams: delta (sorted timestamps), zigzag delta (arrival numbers), frame of
# reference (INT values), then narrowing to the smallest of 1/2/4/8 bytes.  String streams:
# gathering strings by index (row selection and dictionary decoding are the same operation),
# dictionary building, and packing of lowercase hex text into raw bytes.
#
# Every function validates what it is given (lengths, widths, offsets, indices) and raises
# ValueError instead of reading out of bounds: the segment reader converts that into
# CorruptSegment, and the loops themselves run without the GIL.

import numpy as np

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdlib cimport free, malloc

# --- helpers -------------------------------------------------------------------------------


cdef inline const uint8_t* _bytes_ptr(const uint8_t[::1] v) noexcept nogil:
    # The address of an empty buffer is never dereferenced, but taking &v[0] of one is not
    # something to rely on.
    return &v[0] if v.shape[0] else NULL


cdef inline Py_ssize_t _bad_offset(const int64_t[::1] offsets, Py_ssize_t data_len) noexcept nogil:
    # Index of the first offset that is negative, decreasing or past the data; -1 when sound.
    cdef Py_ssize_t i
    cdef int64_t prev = 0
    for i in range(offsets.shape[0]):
        if offsets[i] < prev or offsets[i] > data_len:
            return i
        prev = offsets[i]
    return -1


cdef _check_offsets(const int64_t[::1] offsets, Py_ssize_t data_len):
    cdef Py_ssize_t bad
    if offsets.shape[0] == 0:
        raise ValueError("string offsets are empty: m strings need m + 1 offsets")
    with nogil:
        bad = _bad_offset(offsets, data_len)
    if bad >= 0:
        raise ValueError(
            f"string offset {bad} ({offsets[bad]}) is negative, decreasing or beyond the "
            f"{data_len} data bytes"
        )


# --- integer codecs ------------------------------------------------------------------------


def delta_encode(const int64_t[::1] values not None):
    """(base, deltas) of non-decreasing values: base = values[0] (0 when empty) and
    deltas[i] = values[i + 1] - values[i] as uint64 (len(values) - 1 entries).

    Raises ValueError when the values decrease, which is how the segment writer checks that
    its rows are sorted without a separate pass.
    """
    cdef Py_ssize_t n = values.shape[0], i, bad = -1
    out = np.empty(max(n - 1, 0), dtype=np.uint64)
    cdef uint64_t[::1] d = out
    with nogil:
        for i in range(1, n):
            if values[i] < values[i - 1]:
                bad = i
                break
            d[i - 1] = <uint64_t>values[i] - <uint64_t>values[i - 1]
    if bad >= 0:
        raise ValueError(f"values decrease at index {bad}")
    return (values[0] if n else 0), out


def delta_decode(int64_t base, const uint64_t[::1] deltas not None):
    """The len(deltas) + 1 values that `delta_encode` turned into (base, deltas)."""
    cdef Py_ssize_t n = deltas.shape[0], i
    out = np.empty(n + 1, dtype=np.int64)
    cdef int64_t[::1] v = out
    cdef uint64_t acc = <uint64_t>base
    with nogil:
        v[0] = base
        for i in range(n):
            acc += deltas[i]  # wraps like the int64 subtraction it undoes
            v[i + 1] = <int64_t>acc
    return out


cdef inline uint64_t _zigzag(uint64_t diff) noexcept nogil:
    # Small magnitudes of either sign become small unsigned numbers: 0, -1, 1, -2 -> 0, 1, 2, 3.
    return (diff << 1) ^ <uint64_t>(<int64_t>diff >> 63)


cdef inline uint64_t _unzigzag(uint64_t z) noexcept nogil:
    return (z >> 1) ^ (0 - (z & 1))


def zigzag_delta_encode(const int64_t[::1] values not None):
    """(base, deltas) of any int64 values: deltas[i] = zigzag(values[i + 1] - values[i]), the
    difference taken modulo 2**64, so every input round-trips."""
    cdef Py_ssize_t n = values.shape[0], i
    out = np.empty(max(n - 1, 0), dtype=np.uint64)
    cdef uint64_t[::1] d = out
    with nogil:
        for i in range(1, n):
            d[i - 1] = _zigzag(<uint64_t>values[i] - <uint64_t>values[i - 1])
    return (values[0] if n else 0), out


def zigzag_delta_decode(int64_t base, const uint64_t[::1] deltas not None):
    """The len(deltas) + 1 values that `zigzag_delta_encode` turned into (base, deltas)."""
    cdef Py_ssize_t n = deltas.shape[0], i
    out = np.empty(n + 1, dtype=np.int64)
    cdef int64_t[::1] v = out
    cdef uint64_t acc = <uint64_t>base
    with nogil:
        v[0] = base
        for i in range(n):
            acc += _unzigzag(deltas[i])
            v[i + 1] = <int64_t>acc
    return out


def for_encode(const int64_t[::1] values not None):
    """Frame of reference: (base, offsets) with base = min(values) (0 when empty) and
    offsets[i] = values[i] - base, which always fits uint64."""
    cdef Py_ssize_t n = values.shape[0], i
    cdef int64_t lo = values[0] if n else 0
    out = np.empty(n, dtype=np.uint64)
    cdef uint64_t[::1] d = out
    with nogil:
        for i in range(n):
            if values[i] < lo:
                lo = values[i]
        for i in range(n):
            d[i] = <uint64_t>values[i] - <uint64_t>lo
    return lo, out


def for_decode(int64_t base, const uint64_t[::1] offsets not None):
    """The values that `for_encode` turned into (base, offsets)."""
    cdef Py_ssize_t n = offsets.shape[0], i
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] v = out
    with nogil:
        for i in range(n):
            v[i] = <int64_t>(<uint64_t>base + offsets[i])
    return out


def narrow(const uint64_t[::1] values not None):
    """The values as a little-endian uint8/16/32/64 array, the narrowest that holds them all
    (uint8 when empty); its itemsize is the width recorded in the footer."""
    cdef Py_ssize_t n = values.shape[0], i
    cdef uint64_t hi = 0
    with nogil:
        for i in range(n):
            hi |= values[i]  # the OR has the same highest bit as the maximum
    if hi <= 0xFF:
        out = np.empty(n, dtype=np.uint8)
        _narrow8(values, out)
    elif hi <= 0xFFFF:
        out = np.empty(n, dtype=np.uint16)
        _narrow16(values, out)
    elif hi <= 0xFFFFFFFF:
        out = np.empty(n, dtype=np.uint32)
        _narrow32(values, out)
    else:
        out = np.array(values, dtype=np.uint64, copy=True)
    return out


cdef void _narrow8(const uint64_t[::1] src, uint8_t[::1] dst) noexcept:
    cdef Py_ssize_t i
    with nogil:
        for i in range(src.shape[0]):
            dst[i] = <uint8_t>src[i]


cdef void _narrow16(const uint64_t[::1] src, uint16_t[::1] dst) noexcept:
    cdef Py_ssize_t i
    with nogil:
        for i in range(src.shape[0]):
            dst[i] = <uint16_t>src[i]


cdef void _narrow32(const uint64_t[::1] src, uint32_t[::1] dst) noexcept:
    cdef Py_ssize_t i
    with nogil:
        for i in range(src.shape[0]):
            dst[i] = <uint32_t>src[i]


def widen(const uint8_t[::1] packed not None, int width, Py_ssize_t count):
    """`count` little-endian unsigned integers of `width` bytes (1, 2, 4 or 8) as uint64.

    Raises ValueError unless len(packed) == count * width exactly.
    """
    cdef Py_ssize_t i
    cdef const uint8_t* p
    cdef uint16_t v16
    cdef uint32_t v32
    cdef uint64_t v64
    if width not in (1, 2, 4, 8):
        raise ValueError(f"integer width {width} is not 1, 2, 4 or 8")
    if count < 0 or packed.shape[0] != count * width:
        raise ValueError(f"{packed.shape[0]} bytes do not hold {count} integers of width {width}")
    out = np.empty(count, dtype=np.uint64)
    cdef uint64_t[::1] d = out
    p = _bytes_ptr(packed)
    with nogil:
        if width == 1:
            for i in range(count):
                d[i] = p[i]
        elif width == 2:
            for i in range(count):
                memcpy(&v16, p + 2 * i, 2)
                d[i] = v16
        elif width == 4:
            for i in range(count):
                memcpy(&v32, p + 4 * i, 4)
                d[i] = v32
        else:
            for i in range(count):
                memcpy(&v64, p + 8 * i, 8)
                d[i] = v64
    return out


# --- strings -------------------------------------------------------------------------------


def gather_strings(
    const int64_t[::1] offsets not None,
    const uint8_t[::1] data not None,
    const int64_t[::1] indices not None,
):
    """(offsets, data) of the strings number `indices[0]`, `indices[1]`, ... of the list
    (offsets, data); the result's offsets start at 0.

    This is both row selection (take) and dictionary decoding (indices = codes).  Raises
    ValueError on an index outside [0, m) or on unsound offsets.
    """
    cdef Py_ssize_t m = offsets.shape[0] - 1, k = indices.shape[0], i, bad = -1
    cdef int64_t j, total = 0
    _check_offsets(offsets, data.shape[0])
    out_offsets = np.empty(k + 1, dtype=np.int64)
    cdef int64_t[::1] oo = out_offsets
    with nogil:
        oo[0] = 0
        for i in range(k):
            j = indices[i]
            if j < 0 or j >= m:
                bad = i
                break
            total += offsets[j + 1] - offsets[j]
            oo[i + 1] = total
    if bad >= 0:
        raise ValueError(f"string index {indices[bad]} at position {bad} is outside [0, {m})")
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef uint8_t* dst = <uint8_t*>PyBytes_AS_STRING(out)
    cdef const uint8_t* src = _bytes_ptr(data)
    with nogil:
        for i in range(k):
            j = indices[i]
            memcpy(dst + oo[i], src + offsets[j], <size_t>(oo[i + 1] - oo[i]))
    return out_offsets, out


cdef int _dict_build(
    const int64_t* off, const uint8_t* data, Py_ssize_t m, Py_ssize_t max_distinct,
    uint64_t* codes, int64_t* firsts, Py_ssize_t* distinct,
) noexcept nogil:
    # Open addressing over the first occurrence of each distinct string; stops (returns 0) as
    # soon as a string would be distinct number max_distinct + 1.  Returns -1 when out of
    # memory, 1 on success.
    cdef Py_ssize_t cap = 16, d = 0, j, e
    cdef uint64_t h, slot, mask
    cdef int64_t length
    cdef int* table
    cdef uint64_t* hashes
    while cap < 2 * max_distinct + 2:
        cap *= 2
    mask = <uint64_t>(cap - 1)
    table = <int*>malloc(cap * sizeof(int))
    hashes = <uint64_t*>malloc((max_distinct + 1) * sizeof(uint64_t))
    if table == NULL or hashes == NULL:
        free(table)
        free(hashes)
        return -1
    memset(table, 0xFF, cap * sizeof(int))  # every slot -1: empty
    for j in range(m):
        length = off[j + 1] - off[j]
        h = sqh_bytes(data + off[j], length)
        slot = h & mask
        while True:
            e = table[slot]
            if e < 0:
                if d == max_distinct:
                    free(table)
                    free(hashes)
                    return 0
                table[slot] = <int>d
                hashes[d] = h
                firsts[d] = j
                codes[j] = d
                d += 1
                break
            if hashes[e] == h and off[firsts[e] + 1] - off[firsts[e]] == length and memcmp(
                data + off[firsts[e]], data + off[j], <size_t>length
            ) == 0:
                codes[j] = e
                break
            slot = (slot + 1) & mask
    free(table)
    free(hashes)
    distinct[0] = d
    return 1


def dict_encode(
    const int64_t[::1] offsets not None,
    const uint8_t[::1] data not None,
    Py_ssize_t max_distinct,
):
    """(codes, firsts) of the m strings (offsets, data), or None when they hold more than
    `max_distinct` distinct values.

    Distinct values are numbered in order of first appearance: firsts[c] is the index of the
    first string with code c and codes[i] (uint64) is the code of string i.  Stopping early
    keeps the cost low for columns of unique ids, which never dictionary-encode.
    """
    cdef Py_ssize_t m = offsets.shape[0] - 1, d = 0
    cdef int rc
    _check_offsets(offsets, data.shape[0])
    if max_distinct < 0 or max_distinct > 0x7FFFFFFF:
        raise ValueError(f"max_distinct {max_distinct} is outside [0, 2**31)")
    codes = np.empty(m, dtype=np.uint64)
    firsts = np.empty(min(max_distinct, m), dtype=np.int64)
    cdef uint64_t[::1] c = codes
    cdef int64_t[::1] f = firsts
    with nogil:
        rc = _dict_build(
            &offsets[0], _bytes_ptr(data), m, max_distinct,
            &c[0] if m else NULL, &f[0] if f.shape[0] else NULL, &d,
        )
    if rc < 0:
        raise MemoryError("out of memory while building a string dictionary")
    if rc == 0:
        return None
    return codes, firsts[:d]


cdef extern from *:
    """
    /* 0..15 for the bytes '0'-'9' and 'a'-'f', 255 for every other byte. */
    static unsigned char sqf_hex_value[256];
    static const char sqf_hex_digits[17] = "0123456789abcdef";
    static void sqf_hex_init(void) {
        int i;
        for (i = 0; i < 256; i++) sqf_hex_value[i] = 255;
        for (i = 0; i < 10; i++) sqf_hex_value['0' + i] = (unsigned char)i;
        for (i = 0; i < 6; i++) sqf_hex_value['a' + i] = (unsigned char)(10 + i);
    }
    """
    uint8_t sqf_hex_value[256]
    const char* sqf_hex_digits
    void sqf_hex_init()

sqf_hex_init()


def hex_length(const int64_t[::1] offsets not None, const uint8_t[::1] data not None) -> int:
    """L when every one of the m >= 1 strings is lowercase hex of the same even length L >= 2
    (so the hex stream encoding applies), else -1."""
    cdef Py_ssize_t m = offsets.shape[0] - 1, i
    cdef int64_t length, p
    cdef int ok = 1
    _check_offsets(offsets, data.shape[0])
    if m < 1:
        return -1
    length = offsets[1] - offsets[0]
    if length < 2 or length % 2:
        return -1
    with nogil:
        for i in range(1, m):
            if offsets[i + 1] - offsets[i] != length:
                ok = 0
                break
        if ok:
            for p in range(offsets[0], offsets[m]):
                if sqf_hex_value[data[p]] == 255:
                    ok = 0
                    break
    return length if ok else -1


def hex_pack(const uint8_t[::1] text not None) -> bytes:
    """Two lowercase hex digits per byte -> that byte.  Raises ValueError on anything else."""
    cdef Py_ssize_t n = text.shape[0], i, bad = -1
    cdef uint8_t hi, lo
    if n % 2:
        raise ValueError(f"hex text of odd length {n}")
    out = PyBytes_FromStringAndSize(NULL, n // 2)
    cdef uint8_t* dst = <uint8_t*>PyBytes_AS_STRING(out)
    with nogil:
        for i in range(n // 2):
            hi = sqf_hex_value[text[2 * i]]
            lo = sqf_hex_value[text[2 * i + 1]]
            if hi == 255 or lo == 255:
                bad = 2 * i
                break
            dst[i] = (hi << 4) | lo
    if bad >= 0:
        raise ValueError(f"byte {bad} of hex text is not a lowercase hex digit pair")
    return out


def hex_unpack(const uint8_t[::1] raw not None) -> bytes:
    """Each byte -> its two lowercase hex digits (the inverse of `hex_pack`)."""
    cdef Py_ssize_t n = raw.shape[0], i
    out = PyBytes_FromStringAndSize(NULL, 2 * n)
    cdef uint8_t* dst = <uint8_t*>PyBytes_AS_STRING(out)
    with nogil:
        for i in range(n):
            dst[2 * i] = sqf_hex_digits[raw[i] >> 4]
            dst[2 * i + 1] = sqf_hex_digits[raw[i] & 15]
    return out
