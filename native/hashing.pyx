# sqhash64: the 64-bit hash behind token bloom filters and string dictionaries.
#
# Specified byte for byte in native/FORMAT.md ("Segment file", "sqhash64") and re-implemented
# in seqfast/testing/reference.py; bloom filters on disk depend on it, so any change to it is a
# format change.  It is a word-at-a-time multiply/rotate mix followed by a xorshift-multiply
# finaliser: fast on short tokens (one round per 8 bytes) and well spread in every output bit,
# which bloom probing needs because it splits the hash into two 32-bit halves.
#
# The length is mixed in at the end rather than the start so that a tokeniser can hash a token
# while it scans it, without knowing its length up front.

cdef extern from *:
    """
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #error "seqfast's native core assumes a little-endian host (see native/FORMAT.md)"
    #endif
    #define SQH_SEED 0x243F6A8885A308D3ULL
    #define SQH_MUL1 0x9E3779B97F4A7C15ULL
    #define SQH_MUL2 0xC2B2AE3D27D4EB4FULL
    #define SQH_FIN1 0xFF51AFD7ED558CCDULL
    #define SQH_FIN2 0xC4CEB9FE1A85EC53ULL
    """
    const uint64_t SQH_SEED
    const uint64_t SQH_MUL1
    const uint64_t SQH_MUL2
    const uint64_t SQH_FIN1
    const uint64_t SQH_FIN2


cdef inline uint64_t sqh_round(uint64_t h, uint64_t word) noexcept nogil:
    # Mixes one little-endian 8-byte word (the last one zero-padded) into the state.
    h ^= word * SQH_MUL1
    h = (h << 27) | (h >> 37)
    return h * SQH_MUL2


cdef inline uint64_t sqh_finish(uint64_t h, uint64_t length) noexcept nogil:
    # Folds in the byte length (so b"a" and b"a\0" differ) and avalanches every bit.
    h ^= length
    h ^= h >> 33
    h *= SQH_FIN1
    h ^= h >> 33
    h *= SQH_FIN2
    h ^= h >> 33
    return h


cdef inline uint64_t sqh_bytes(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """sqhash64 of p[0:n]."""
    cdef uint64_t h = SQH_SEED
    cdef uint64_t word
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&word, p + i, 8)  # little-endian host: the first byte is the low byte
        h = sqh_round(h, word)
        i += 8
    if i < n:
        word = 0
        memcpy(&word, p + i, n - i)
        h = sqh_round(h, word)
    return sqh_finish(h, <uint64_t>n)


def hash64(const uint8_t[::1] data not None) -> int:
    """sqhash64 of `data` (bytes or any contiguous byte buffer), as an unsigned int."""
    cdef Py_ssize_t n = data.shape[0]
    cdef uint64_t h
    with nogil:
        h = sqh_bytes(&data[0] if n else NULL, n)
    return h
