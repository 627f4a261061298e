# Token bloom filters (native/FORMAT.md, "Segment file", "Token bloom filters").
#
# A token is a maximal run of token bytes: ASCII letters, ASCII digits and every byte >= 0x80
# (so UTF-8 text outside ASCII stays inside tokens and needs no decoding).  Tokens are
# lowercased (ASCII only) and hashed with sqhash64 (hashing.pyx) while they are scanned.  A
# filter of m bits (m a multiple of 64) sets, for each distinct token hash h, the k bits
#
#     g_i = (lo32(h) + i * hi32(h)) mod 2**32,   bit_i = (g_i * m) >> 32,   i = 0 .. k-1
#
# (double hashing, with a multiply-shift instead of a division to map g_i onto [0, m)).  Bit b
# is bit (b mod 8) of byte (b div 8).

import numpy as np

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdlib cimport calloc, free

cdef extern from *:
    """
    /* For each byte: its ASCII-lowercase form when it is a token byte, else 0 (no token
       byte is 0, so one lookup both classifies and lowercases). */
    static unsigned char sqf_token_lower[256];
    static void sqf_token_init(void) {
        int c;
        for (c = 0; c < 256; c++) {
            int token = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
                || (c >= 'A' && c <= 'Z') || c >= 0x80;
            sqf_token_lower[c] = !token ? 0
                : (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : (unsigned char)c;
        }
    }
    """
    uint8_t sqf_token_lower[256]
    void sqf_token_init()

sqf_token_init()

# Filters are at most 2**32 bits because bit positions come from 32-bit multiply-shifts.
DEF BLOOM_MAX_BITS = 4294967296
DEF BLOOM_MAX_K = 32


# --- a set of distinct 64-bit hashes --------------------------------------------------------

cdef struct HashSet:
    uint64_t* slots  # 0 marks an empty slot; the hash 0 itself is kept in has_zero
    Py_ssize_t cap  # a power of two, at least twice count
    Py_ssize_t count
    int has_zero


cdef int _set_init(HashSet* s) noexcept nogil:
    s.cap = 1024
    s.count = 0
    s.has_zero = 0
    s.slots = <uint64_t*>calloc(s.cap, sizeof(uint64_t))
    return 0 if s.slots != NULL else -1


cdef void _set_put(uint64_t* slots, Py_ssize_t cap, uint64_t h, Py_ssize_t* count) noexcept nogil:
    cdef uint64_t mask = <uint64_t>(cap - 1)
    cdef uint64_t slot = h & mask  # the hash is already well mixed in its low bits
    while slots[slot] != 0:
        if slots[slot] == h:
            return
        slot = (slot + 1) & mask
    slots[slot] = h
    count[0] += 1


cdef int _set_add(HashSet* s, uint64_t h) noexcept nogil:
    # Returns -1 when growing the table runs out of memory.
    cdef uint64_t* bigger
    cdef Py_ssize_t i, ignored = 0
    if h == 0:
        s.has_zero = 1
        return 0
    if 2 * (s.count + 1) > s.cap:
        bigger = <uint64_t*>calloc(2 * s.cap, sizeof(uint64_t))
        if bigger == NULL:
            return -1
        for i in range(s.cap):
            if s.slots[i] != 0:
                _set_put(bigger, 2 * s.cap, s.slots[i], &ignored)
        free(s.slots)
        s.slots = bigger
        s.cap *= 2
    _set_put(s.slots, s.cap, h, &s.count)
    return 0


# --- tokenising -----------------------------------------------------------------------------

cdef int _hash_tokens(const uint8_t* p, Py_ssize_t n, HashSet* s) noexcept nogil:
    # Adds the sqhash64 of every lowercased token of p[0:n] to s; -1 when out of memory.
    # Each token is hashed while it is scanned, 8 bytes per round.
    cdef Py_ssize_t i = 0, start, length
    cdef uint64_t h, word
    cdef uint8_t c
    while i < n:
        c = sqf_token_lower[p[i]]
        if c == 0:
            i += 1
            continue
        start = i
        h = SQH_SEED
        word = 0
        while True:
            word |= (<uint64_t>c) << (8 * ((i - start) & 7))
            i += 1
            if ((i - start) & 7) == 0:
                h = sqh_round(h, word)
                word = 0
            if i == n:
                break
            c = sqf_token_lower[p[i]]
            if c == 0:
                break
        length = i - start
        if length & 7:
            h = sqh_round(h, word)
        if _set_add(s, sqh_finish(h, <uint64_t>length)) < 0:
            return -1
    return 0


def token_hashes(const int64_t[::1] offsets not None, const uint8_t[::1] data not None):
    """The distinct sqhash64 values of the lowercased tokens of the m strings (offsets, data),
    sorted ascending, as uint64.  Tokens never span two strings."""
    cdef Py_ssize_t m = offsets.shape[0] - 1, j, k = 0, i
    cdef HashSet s
    cdef int rc = 0
    cdef const uint8_t* base = _bytes_ptr(data)
    _check_offsets(offsets, data.shape[0])
    with nogil:
        rc = _set_init(&s)
        if rc == 0:
            for j in range(m):
                rc = _hash_tokens(base + offsets[j], offsets[j + 1] - offsets[j], &s)
                if rc < 0:
                    break
    if rc < 0:
        free(s.slots)
        raise MemoryError("out of memory while hashing tokens")
    out = np.empty(s.count + s.has_zero, dtype=np.uint64)
    cdef uint64_t[::1] o = out
    with nogil:
        if s.has_zero:
            o[k] = 0
            k += 1
        for i in range(s.cap):
            if s.slots[i] != 0:
                o[k] = s.slots[i]
                k += 1
        free(s.slots)
    out.sort()
    return out


# --- the filter -----------------------------------------------------------------------------

cdef inline uint64_t _bit(uint64_t h, uint32_t i, uint64_t nbits) noexcept nogil:
    cdef uint32_t g = <uint32_t>h + i * <uint32_t>(h >> 32)  # wraps modulo 2**32
    return (<uint64_t>g * nbits) >> 32


cdef _check_shape(int64_t nbits, int k):
    if nbits < 64 or nbits % 64 or nbits > BLOOM_MAX_BITS:
        raise ValueError(f"bloom size {nbits} bits is not a multiple of 64 in [64, 2**32]")
    if k < 1 or k > BLOOM_MAX_K:
        raise ValueError(f"bloom probe count {k} is outside [1, {BLOOM_MAX_K}]")


def bloom_build(const uint64_t[::1] hashes not None, int64_t nbits, int k) -> bytes:
    """The nbits / 8 bytes of a filter with k probes holding every hash in `hashes`."""
    cdef Py_ssize_t i
    cdef uint32_t j
    cdef uint64_t b
    _check_shape(nbits, k)
    out = PyBytes_FromStringAndSize(NULL, nbits // 8)
    cdef uint8_t* bits = <uint8_t*>PyBytes_AS_STRING(out)
    with nogil:
        memset(bits, 0, <size_t>(nbits // 8))
        for i in range(hashes.shape[0]):
            for j in range(<uint32_t>k):
                b = _bit(hashes[i], j, <uint64_t>nbits)
                bits[b >> 3] |= <uint8_t>(1 << (b & 7))
    return out


def bloom_contains_all(
    const uint8_t[::1] bits not None, int k, const uint64_t[::1] hashes not None
) -> bool:
    """True when the filter `bits` (k probes, 8 * len(bits) bits) may hold every hash in
    `hashes`; False means at least one of them was certainly never added."""
    cdef int64_t nbits = 8 * bits.shape[0]
    cdef Py_ssize_t i
    cdef uint32_t j
    cdef uint64_t b
    cdef int found = 1
    _check_shape(nbits, k)
    with nogil:
        for i in range(hashes.shape[0]):
            for j in range(<uint32_t>k):
                b = _bit(hashes[i], j, <uint64_t>nbits)
                if not (bits[b >> 3] >> (b & 7)) & 1:
                    found = 0
                    break
            if not found:
                break
    return found == 1
