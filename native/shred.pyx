# The shredder: newline-delimited CLEF bytes -> one column per top-level key, in one pass.
#
# This is the ingest hot path.  It never creates a Python object per event or per value: it
# validates and decodes JSON straight into growable C buffers, with the GIL released, so two
# threads can shred two batches at once.  The rules it enforces are the contract written out in
# seqfast/testing/reference_clef.py (the pure-Python oracle it is tested against):
# strict RFC 8259 JSON, strict UTF-8, one object per line, nesting <= 64, a per-event size
# limit, `@t` required and parseable, reified `@` fields of the right JSON type, no duplicate
# top-level keys.  The first bad line fails the whole batch.

from libc.math cimport isinf
from libc.stdlib cimport malloc, calloc, realloc, free

cdef extern from "<locale.h>" nogil:
    ctypedef struct __locale_struct:
        pass
    ctypedef __locale_struct* locale_t
    locale_t newlocale(int mask, const char* locale, locale_t base)
    int LC_ALL_MASK

cdef extern from "<stdlib.h>" nogil:
    double strtod_l(const char* text, char** end, locale_t locale)

# JSON numbers use '.', whatever locale the embedding process has set: parse in the C locale.
cdef locale_t _C_LOCALE = newlocale(LC_ALL_MASK, "C", NULL)
from libc.string cimport memchr
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

# Error codes of a rejected line; the message text is made once, in Python, after the loop.
DEF ERR_NONE = 0
DEF ERR_JSON = 1            # malformed JSON (detail in err_detail)
DEF ERR_UTF8 = 2
DEF ERR_NOT_OBJECT = 3
DEF ERR_DEPTH = 4
DEF ERR_DUPLICATE = 5       # err_key holds the key
DEF ERR_MISSING_T = 6
DEF ERR_T_NOT_STRING = 7
DEF ERR_T_INVALID = 8       # err_key holds the text
DEF ERR_MUST_STRING = 9     # err_key holds the field name
DEF ERR_ST_INVALID = 10
DEF ERR_I_TYPE = 11
DEF ERR_R_TYPE = 12
DEF ERR_MUST_OBJECT = 13
DEF ERR_TOO_BIG = 14
DEF ERR_TOO_WIDE = 15
DEF ERR_NO_MEMORY = 16

# What a top-level key's value must be (reified CLEF fields are checked, the rest are free).
DEF KIND_FREE = 0
DEF KIND_T = 1
DEF KIND_STRING = 2
DEF KIND_START = 3
DEF KIND_EVENT_TYPE = 4
DEF KIND_ARRAY = 5
DEF KIND_OBJECT = 6

# A batch may hold at most this many (rows x distinct keys) cells: a guard against input made of
# many events that each bring new keys, whose dense tag columns would otherwise grow quadratically.
DEF MAX_CELLS = 1 << 26

cdef enum:
    # JSON value kinds seen by the parser (the top-level object's value types).
    V_NULL = 1
    V_FALSE = 2
    V_TRUE = 3
    V_INT = 4
    V_FLOAT = 5
    V_STRING = 6
    V_OBJECT = 7
    V_ARRAY = 8
    V_BIGINT = 9


cdef struct Buf:
    char* data
    Py_ssize_t len
    Py_ssize_t cap


cdef inline int buf_reserve(Buf* b, Py_ssize_t extra) noexcept nogil:
    cdef Py_ssize_t need = b.len + extra
    cdef Py_ssize_t cap
    cdef char* p
    if need <= b.cap:
        return 1
    cap = b.cap * 2 if b.cap else 256
    while cap < need:
        cap *= 2
    p = <char*>realloc(b.data, cap)
    if p == NULL:
        return 0
    b.data = p
    b.cap = cap
    return 1


cdef inline int buf_put(Buf* b, const void* src, Py_ssize_t n) noexcept nogil:
    if b.len + n > b.cap and not buf_reserve(b, n):
        return 0
    memcpy(b.data + b.len, src, n)
    b.len += n
    return 1


cdef inline int buf_put_i64(Buf* b, int64_t v) noexcept nogil:
    if b.len + 8 > b.cap and not buf_reserve(b, 8):
        return 0
    memcpy(b.data + b.len, &v, 8)
    b.len += 8
    return 1


cdef inline int buf_put_byte(Buf* b, char c) noexcept nogil:
    if b.len + 1 > b.cap and not buf_reserve(b, 1):
        return 0
    b.data[b.len] = c
    b.len += 1
    return 1


cdef struct Col:
    Py_ssize_t key_off       # the key's bytes in Shredder.keys
    Py_ssize_t key_len
    uint64_t hash
    int kind
    int64_t last_row         # the row that last set this column: duplicate-key detection
    Buf rows                 # uint32 row numbers of the rows that have this key
    Buf tags                 # uint8 tag of each of those rows
    Buf nums                 # int64
    Buf offs                 # int64 end offsets of the strings (the leading 0 is added on output)
    Buf data                 # UTF-8 bytes


cdef struct Shredder:
    const unsigned char* src
    Py_ssize_t src_len
    Py_ssize_t max_event
    int64_t max_rows
    Col* cols
    Py_ssize_t ncols
    Py_ssize_t cap_cols
    int32_t* table           # open addressing: column index + 1, 0 = empty
    Py_ssize_t table_mask
    Buf keys
    Buf scratch              # an unescaped key or @t text
    Buf ts                   # int64 per row
    int64_t row
    # the first error
    int err
    int64_t err_line
    Py_ssize_t err_pos       # byte offset within the line
    const char* err_detail
    # a semantic error of the current line, reported only if the line is also valid JSON
    int sem_err
    Buf sem_text


cdef inline uint64_t _key_hash(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # FNV-1a: keys are short, and this only picks a bucket.
    cdef uint64_t h = 14695981039346656037ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return h


cdef inline int _key_is(const unsigned char* p, Py_ssize_t n, const char* lit) noexcept nogil:
    cdef Py_ssize_t i = 0
    while lit[i] != 0:
        if i >= n or p[i] != <unsigned char>lit[i]:
            return 0
        i += 1
    return i == n


cdef int _kind_of(const unsigned char* k, Py_ssize_t n) noexcept nogil:
    if n < 2 or k[0] != 64 or k[1] == 64:  # only single-@ names are reified
        return KIND_FREE
    if _key_is(k, n, "@t"):
        return KIND_T
    if _key_is(k, n, "@m") or _key_is(k, n, "@mt") or _key_is(k, n, "@x") \
            or _key_is(k, n, "@tr") or _key_is(k, n, "@sp") or _key_is(k, n, "@ps") \
            or _key_is(k, n, "@sk") or _key_is(k, n, "@l"):
        return KIND_STRING
    if _key_is(k, n, "@st"):
        return KIND_START
    if _key_is(k, n, "@i"):
        return KIND_EVENT_TYPE
    if _key_is(k, n, "@r"):
        return KIND_ARRAY
    if _key_is(k, n, "@ra") or _key_is(k, n, "@sa"):
        return KIND_OBJECT
    return KIND_FREE


cdef int _grow_table(Shredder* s) noexcept nogil:
    cdef Py_ssize_t size = (s.table_mask + 1) * 2 if s.table != NULL else 64
    cdef int32_t* t = <int32_t*>calloc(size, sizeof(int32_t))
    cdef Py_ssize_t i, j
    if t == NULL:
        return 0
    for i in range(s.ncols):
        j = <Py_ssize_t>(s.cols[i].hash & <uint64_t>(size - 1))
        while t[j] != 0:
            j = (j + 1) & (size - 1)
        t[j] = <int32_t>(i + 1)
    free(s.table)
    s.table = t
    s.table_mask = size - 1
    return 1


cdef Py_ssize_t _column(Shredder* s, const unsigned char* k, Py_ssize_t n) noexcept nogil:
    """Index of the column for key k[0:n], created on first sight; -1 when out of memory/cells."""
    cdef uint64_t h = _key_hash(k, n)
    cdef Py_ssize_t j = <Py_ssize_t>(h & <uint64_t>s.table_mask)
    cdef int32_t slot
    cdef Col* c
    while True:
        slot = s.table[j]
        if slot == 0:
            break
        c = &s.cols[slot - 1]
        if c.hash == h and c.key_len == n and memcmp(s.keys.data + c.key_off, k, n) == 0:
            return slot - 1
        j = (j + 1) & s.table_mask
    # a new column
    if (s.ncols + 1) * s.max_rows > MAX_CELLS:
        s.err = ERR_TOO_WIDE
        return -1
    if s.ncols == s.cap_cols:
        s.cap_cols = s.cap_cols * 2 if s.cap_cols else 32
        c = <Col*>realloc(s.cols, s.cap_cols * sizeof(Col))
        if c == NULL:
            s.err = ERR_NO_MEMORY
            return -1
        s.cols = c
    c = &s.cols[s.ncols]
    memset(c, 0, sizeof(Col))
    c.key_off = s.keys.len
    c.key_len = n
    c.hash = h
    c.kind = _kind_of(k, n)
    c.last_row = -1
    if not buf_put(&s.keys, k, n):
        s.err = ERR_NO_MEMORY
        return -1
    s.table[j] = <int32_t>(s.ncols + 1)
    s.ncols += 1
    if s.ncols * 2 > s.table_mask + 1 and not _grow_table(s):
        s.err = ERR_NO_MEMORY
        return -1
    return s.ncols - 1


# ---------------------------------------------------------------------------------------------
# JSON scanning.  Every function gets the cursor `p` and the end of the line `e`, and returns the
# new cursor, or NULL after recording an error in the Shredder.

cdef inline const unsigned char* _ws(const unsigned char* p, const unsigned char* e) noexcept nogil:
    while p < e and (p[0] == 32 or p[0] == 9 or p[0] == 13 or p[0] == 10):
        p += 1
    return p


cdef inline const unsigned char* _fail(Shredder* s, const unsigned char* p, int err,
                                       const char* detail) noexcept nogil:
    if s.err == ERR_NONE:
        s.err = err
        s.err_pos = <Py_ssize_t>(p - s.src)
        s.err_detail = detail
    return NULL


cdef inline int _utf8_len(const unsigned char* p, const unsigned char* e) noexcept nogil:
    # Length of the valid UTF-8 sequence starting at a non-ASCII byte p[0], or 0 if invalid.
    cdef unsigned char c = p[0]
    cdef unsigned char lo = 0x80, hi = 0xBF
    cdef int n
    if 0xC2 <= c <= 0xDF:
        n = 2
    elif 0xE0 <= c <= 0xEF:
        n = 3
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F  # no UTF-8-encoded surrogates
    elif 0xF0 <= c <= 0xF4:
        n = 4
        if c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F  # nothing above U+10FFFF
    else:
        return 0
    if p + n > e or p[1] < lo or p[1] > hi:
        return 0
    if n >= 3 and (p[2] & 0xC0) != 0x80:
        return 0
    if n == 4 and (p[3] & 0xC0) != 0x80:
        return 0
    return n


cdef inline int _hex4(const unsigned char* p, uint32_t* out) noexcept nogil:
    cdef uint32_t v = 0
    cdef int i
    cdef unsigned char c
    for i in range(4):
        c = p[i]
        if 48 <= c <= 57:
            v = (v << 4) | (c - 48)
        elif 97 <= c <= 102:
            v = (v << 4) | (c - 87)
        elif 65 <= c <= 70:
            v = (v << 4) | (c - 55)
        else:
            return 0
    out[0] = v
    return 1


cdef inline int _put_utf8(Buf* b, uint32_t cp) noexcept nogil:
    cdef unsigned char tmp[4]
    if cp < 0x80:
        tmp[0] = <unsigned char>cp
        return buf_put(b, tmp, 1)
    if cp < 0x800:
        tmp[0] = <unsigned char>(0xC0 | (cp >> 6))
        tmp[1] = <unsigned char>(0x80 | (cp & 0x3F))
        return buf_put(b, tmp, 2)
    if cp < 0x10000:
        tmp[0] = <unsigned char>(0xE0 | (cp >> 12))
        tmp[1] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
        tmp[2] = <unsigned char>(0x80 | (cp & 0x3F))
        return buf_put(b, tmp, 3)
    tmp[0] = <unsigned char>(0xF0 | (cp >> 18))
    tmp[1] = <unsigned char>(0x80 | ((cp >> 12) & 0x3F))
    tmp[2] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
    tmp[3] = <unsigned char>(0x80 | (cp & 0x3F))
    return buf_put(b, tmp, 4)


cdef const unsigned char* _string(Shredder* s, const unsigned char* p, const unsigned char* e,
                                  Buf* out, bint raw) noexcept nogil:
    """Scans the string whose opening quote is at p.  With `raw` it copies the source bytes
    (quotes and escapes included, for minified JSON); otherwise it appends the unescaped text."""
    cdef const unsigned char* start = p
    cdef const unsigned char* run
    cdef unsigned char c
    cdef uint32_t cp, lo
    cdef int n
    p += 1
    run = p
    while True:
        # the plain-ASCII fast path
        while p < e and p[0] >= 0x20 and p[0] != 34 and p[0] != 92 and p[0] < 0x80:
            p += 1
        if p >= e:
            return _fail(s, p, ERR_JSON, "unterminated string")
        c = p[0]
        if c == 34:
            if raw:
                if not buf_put(out, start, p + 1 - start):
                    return _fail(s, p, ERR_NO_MEMORY, "")
            elif not buf_put(out, run, p - run):
                return _fail(s, p, ERR_NO_MEMORY, "")
            return p + 1
        if c < 0x20:
            return _fail(s, p, ERR_JSON, "control character in string")
        if c >= 0x80:
            n = _utf8_len(p, e)
            if n == 0:
                return _fail(s, p, ERR_UTF8, "")
            p += n
            continue
        # a backslash escape
        if not raw and not buf_put(out, run, p - run):
            return _fail(s, p, ERR_NO_MEMORY, "")
        if p + 1 >= e:
            return _fail(s, p, ERR_JSON, "unterminated string")
        c = p[1]
        if c == 117:  # \uXXXX
            if p + 6 > e or not _hex4(p + 2, &cp):
                return _fail(s, p, ERR_JSON, "invalid \\u escape")
            p += 6
            if 0xD800 <= cp <= 0xDBFF:
                if p + 6 > e or p[0] != 92 or p[1] != 117 or not _hex4(p + 2, &lo) \
                        or not (0xDC00 <= lo <= 0xDFFF):
                    return _fail(s, p, ERR_JSON, "lone surrogate in \\u escape")
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                p += 6
            elif 0xDC00 <= cp <= 0xDFFF:
                return _fail(s, p, ERR_JSON, "lone surrogate in \\u escape")
            if not raw and not _put_utf8(out, cp):
                return _fail(s, p, ERR_NO_MEMORY, "")
        else:
            if c == 34 or c == 92 or c == 47:
                pass
            elif c == 98:
                c = 8
            elif c == 102:
                c = 12
            elif c == 110:
                c = 10
            elif c == 114:
                c = 13
            elif c == 116:
                c = 9
            else:
                return _fail(s, p, ERR_JSON, "invalid escape")
            if not raw and not buf_put_byte(out, <char>c):
                return _fail(s, p, ERR_NO_MEMORY, "")
            p += 2
        run = p


cdef double[23] _POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
                         1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]


cdef const unsigned char* _number(Shredder* s, const unsigned char* p, const unsigned char* e,
                                  int* kind, int64_t* ival, double* fval) noexcept nogil:
    """Scans a JSON number at p: INT when it has no fraction or exponent and fits int64, BIGINT
    when it has neither but does not fit, FLOAT otherwise (correctly rounded)."""
    cdef const unsigned char* start = p
    cdef bint neg = False, is_float = False, overflow = False
    cdef uint64_t mant = 0
    cdef int mdigits = 0, frac_digits = 0
    cdef const unsigned char* q
    cdef char* endp
    cdef double d
    cdef int expo = 0, esign = 1
    cdef bint exp_ok = True
    if p[0] == 45:
        neg = True
        p += 1
    if p >= e or not (48 <= p[0] <= 57):
        return _fail(s, p, ERR_JSON, "invalid number")
    if p[0] == 48:
        p += 1
        if p < e and 48 <= p[0] <= 57:
            return _fail(s, p, ERR_JSON, "leading zero in number")
    else:
        while p < e and 48 <= p[0] <= 57:
            # mant * 10 + digit would pass 2**64 - 1
            if mant > 1844674407370955161ULL or (mant == 1844674407370955161ULL and p[0] > 53):
                overflow = True
            if not overflow:
                mant = mant * 10 + (p[0] - 48)
                mdigits += 1
            p += 1
    if p < e and p[0] == 46:
        is_float = True
        p += 1
        if p >= e or not (48 <= p[0] <= 57):
            return _fail(s, p, ERR_JSON, "invalid number")
        while p < e and 48 <= p[0] <= 57:
            if mant < 1000000000000000000ULL:
                mant = mant * 10 + (p[0] - 48)
                frac_digits += 1
            else:
                exp_ok = False  # too many significant digits for the fast path
            p += 1
    if p < e and (p[0] == 101 or p[0] == 69):
        is_float = True
        p += 1
        if p < e and (p[0] == 43 or p[0] == 45):
            if p[0] == 45:
                esign = -1
            p += 1
        if p >= e or not (48 <= p[0] <= 57):
            return _fail(s, p, ERR_JSON, "invalid number")
        while p < e and 48 <= p[0] <= 57:
            if expo < 100000:
                expo = expo * 10 + (p[0] - 48)
            p += 1
    if not is_float:
        if not overflow and (mant <= 9223372036854775807ULL or (neg and mant == 9223372036854775808ULL)):
            kind[0] = V_INT
            ival[0] = -<int64_t>mant if neg else <int64_t>mant
        else:
            kind[0] = V_BIGINT
        return p
    kind[0] = V_FLOAT
    # Fast path (exact): the significand fits in 53 bits and the power of ten is exact.
    expo = esign * expo - frac_digits
    if exp_ok and not overflow and mant < 9007199254740992ULL and -22 <= expo <= 22:
        d = <double>mant
        if expo < 0:
            d = d / _POW10[-expo]
        else:
            d = d * _POW10[expo]
        fval[0] = -d if neg else d
        return p
    # The slow path: strtod (correctly rounded) on a NUL-terminated copy of the number, as the
    # source buffer need not end in a NUL.
    cdef char local[64]
    cdef char* text = local
    cdef Py_ssize_t length = p - start
    if length >= 64:
        text = <char*>malloc(length + 1)
        if text == NULL:
            return _fail(s, start, ERR_NO_MEMORY, "")
    memcpy(text, start, length)
    text[length] = 0
    d = strtod_l(text, &endp, _C_LOCALE)
    if text != local:
        free(text)
    if isinf(d):
        return _fail(s, start, ERR_JSON, "number out of range")
    fval[0] = d
    return p


cdef const unsigned char* _nested(Shredder* s, const unsigned char* p, const unsigned char* e,
                                  Buf* out, int depth) noexcept nogil:
    """Validates the array or object at p (at nesting `depth`), appending it minified to out."""
    cdef unsigned char close = 93 if p[0] == 91 else 125
    cdef bint is_obj = p[0] == 123
    cdef int kind
    cdef int64_t iv
    cdef double fv
    cdef const unsigned char* start
    if depth > MAX_DEPTH:
        return _fail(s, p, ERR_DEPTH, "")
    if not buf_put_byte(out, <char>p[0]):
        return _fail(s, p, ERR_NO_MEMORY, "")
    p = _ws(p + 1, e)
    if p < e and p[0] == close:
        if not buf_put_byte(out, <char>close):
            return _fail(s, p, ERR_NO_MEMORY, "")
        return p + 1
    while True:
        if is_obj:
            if p >= e or p[0] != 34:
                return _fail(s, p, ERR_JSON, "expected a string key")
            p = _string(s, p, e, out, True)
            if p == NULL:
                return NULL
            p = _ws(p, e)
            if p >= e or p[0] != 58:
                return _fail(s, p, ERR_JSON, "expected ':'")
            if not buf_put_byte(out, 58):
                return _fail(s, p, ERR_NO_MEMORY, "")
            p = _ws(p + 1, e)
        if p >= e:
            return _fail(s, p, ERR_JSON, "unexpected end of line")
        if p[0] == 34:
            p = _string(s, p, e, out, True)
        elif p[0] == 123 or p[0] == 91:
            p = _nested(s, p, e, out, depth + 1)
        elif p[0] == 116 and p + 4 <= e and memcmp(p, b"true", 4) == 0:
            p = p + 4 if buf_put(out, b"true", 4) else _fail(s, p, ERR_NO_MEMORY, "")
        elif p[0] == 102 and p + 5 <= e and memcmp(p, b"false", 5) == 0:
            p = p + 5 if buf_put(out, b"false", 5) else _fail(s, p, ERR_NO_MEMORY, "")
        elif p[0] == 110 and p + 4 <= e and memcmp(p, b"null", 4) == 0:
            p = p + 4 if buf_put(out, b"null", 4) else _fail(s, p, ERR_NO_MEMORY, "")
        elif p[0] == 45 or 48 <= p[0] <= 57:
            start = p
            p = _number(s, p, e, &kind, &iv, &fv)
            if p != NULL and not buf_put(out, start, p - start):
                p = _fail(s, p, ERR_NO_MEMORY, "")
        else:
            return _fail(s, p, ERR_JSON, "unexpected character")
        if p == NULL:
            return NULL
        p = _ws(p, e)
        if p >= e:
            return _fail(s, p, ERR_JSON, "unexpected end of line")
        if p[0] == 44:
            if not buf_put_byte(out, 44):
                return _fail(s, p, ERR_NO_MEMORY, "")
            p = _ws(p + 1, e)
            continue
        if p[0] == close:
            if not buf_put_byte(out, <char>close):
                return _fail(s, p, ERR_NO_MEMORY, "")
            return p + 1
        return _fail(s, p, ERR_JSON, "expected ',' or a closing bracket")


cdef inline void _semantic(Shredder* s, int err, const unsigned char* text, Py_ssize_t n) noexcept nogil:
    # Remembers the line's first semantic error; syntax errors later in the line take precedence.
    if s.sem_err == ERR_NONE:
        s.sem_err = err
        s.sem_text.len = 0
        buf_put(&s.sem_text, text, n)


cdef int _record(Shredder* s, Col* c, uint8_t tag) noexcept nogil:
    cdef uint32_t r = <uint32_t>s.row
    return buf_put(&c.rows, &r, 4) and buf_put(&c.tags, &tag, 1)


cdef const unsigned char* _event(Shredder* s, const unsigned char* p, const unsigned char* e) noexcept nogil:
    """Parses one event object spanning p..e (already trimmed of whitespace)."""
    cdef const unsigned char* kp
    cdef Py_ssize_t kn, ci
    cdef Col* c
    cdef int kind
    cdef int64_t iv
    cdef double fv
    cdef bint have_t = False
    cdef int64_t ticks = 0
    cdef const unsigned char* vstart
    cdef Py_ssize_t before
    if p[0] != 123:
        # Tell malformed JSON from valid JSON that is not an object.
        s.scratch.len = 0
        if p[0] == 91:
            p = _nested(s, p, e, &s.scratch, 1)
        elif p[0] == 34:
            p = _string(s, p, e, &s.scratch, True)
        elif p[0] == 45 or 48 <= p[0] <= 57:
            p = _number(s, p, e, &kind, &iv, &fv)
        elif e - p >= 4 and (memcmp(p, b"true", 4) == 0 or memcmp(p, b"null", 4) == 0):
            p += 4
        elif e - p >= 5 and memcmp(p, b"false", 5) == 0:
            p += 5
        else:
            return _fail(s, p, ERR_JSON, "unexpected character")
        if p == NULL:
            return NULL
        if _ws(p, e) != e:
            return _fail(s, p, ERR_JSON, "unexpected data after the value")
        return _fail(s, p, ERR_NOT_OBJECT, "")
    s.sem_err = ERR_NONE
    p = _ws(p + 1, e)
    if p < e and p[0] == 125:
        p += 1
    else:
        while True:
            if p >= e or p[0] != 34:
                return _fail(s, p, ERR_JSON, "expected a string key")
            # the key: borrowed from the source when it has no escapes
            kp = p + 1
            while kp < e and kp[0] != 34 and kp[0] != 92 and 0x20 <= kp[0] < 0x80:
                kp += 1
            if kp < e and kp[0] == 34:
                kn = kp - (p + 1)
                kp = p + 1
                p = kp + kn + 1
            else:
                s.scratch.len = 0
                p = _string(s, p, e, &s.scratch, False)
                if p == NULL:
                    return NULL
                kp = <const unsigned char*>s.scratch.data
                kn = s.scratch.len
            ci = _column(s, kp, kn)
            if ci < 0:
                return _fail(s, p, s.err, "")
            c = &s.cols[ci]
            if c.last_row == s.row:
                _semantic(s, ERR_DUPLICATE, kp, kn)
            c.last_row = s.row
            p = _ws(p, e)
            if p >= e or p[0] != 58:
                return _fail(s, p, ERR_JSON, "expected ':'")
            p = _ws(p + 1, e)
            if p >= e:
                return _fail(s, p, ERR_JSON, "unexpected end of line")
            vstart = p
            # the value
            if p[0] == 34:
                if c.kind == KIND_T:
                    s.scratch.len = 0
                    p = _string(s, p, e, &s.scratch, False)
                    if p == NULL:
                        return NULL
                    if parse_timestamp(<const unsigned char*>s.scratch.data, s.scratch.len, &ticks):
                        have_t = True
                    else:
                        have_t = True
                        _semantic(s, ERR_T_INVALID, <const unsigned char*>s.scratch.data, s.scratch.len)
                else:
                    before = c.data.len
                    p = _string(s, p, e, &c.data, False)
                    if p == NULL:
                        return NULL
                    if not buf_put_i64(&c.offs, c.data.len) or not _record(s, c, TAG_STRING):
                        return _fail(s, p, ERR_NO_MEMORY, "")
                    if c.kind == KIND_START and not parse_timestamp(
                            <const unsigned char*>c.data.data + before, c.data.len - before, &iv):
                        _semantic(s, ERR_ST_INVALID, <const unsigned char*>c.data.data + before,
                                  c.data.len - before)
                    elif c.kind == KIND_ARRAY:
                        _semantic(s, ERR_R_TYPE, kp, kn)
                    elif c.kind == KIND_OBJECT:
                        _semantic(s, ERR_MUST_OBJECT, kp, kn)
            elif p[0] == 123 or p[0] == 91:
                kind = V_OBJECT if p[0] == 123 else V_ARRAY
                p = _nested(s, p, e, &c.data, 2)
                if p == NULL:
                    return NULL
                if not buf_put_i64(&c.offs, c.data.len) or not _record(s, c, TAG_JSON):
                    return _fail(s, p, ERR_NO_MEMORY, "")
                if c.kind == KIND_ARRAY and kind != V_ARRAY:
                    _semantic(s, ERR_R_TYPE, kp, kn)
                elif c.kind == KIND_OBJECT and kind != V_OBJECT:
                    _semantic(s, ERR_MUST_OBJECT, kp, kn)
                elif c.kind != KIND_FREE and c.kind != KIND_ARRAY and c.kind != KIND_OBJECT:
                    _semantic_kind(s, c, kp, kn)
            else:
                if p[0] == 45 or 48 <= p[0] <= 57:
                    p = _number(s, p, e, &kind, &iv, &fv)
                    if p == NULL:
                        return NULL
                    if kind == V_INT:
                        if not buf_put_i64(&c.nums, iv) or not _record(s, c, TAG_INT):
                            return _fail(s, p, ERR_NO_MEMORY, "")
                    elif kind == V_FLOAT:
                        memcpy(&iv, &fv, 8)
                        if not buf_put_i64(&c.nums, iv) or not _record(s, c, TAG_FLOAT):
                            return _fail(s, p, ERR_NO_MEMORY, "")
                    else:
                        if not buf_put(&c.data, vstart, p - vstart) \
                                or not buf_put_i64(&c.offs, c.data.len) \
                                or not _record(s, c, TAG_BIGINT):
                            return _fail(s, p, ERR_NO_MEMORY, "")
                    if c.kind == KIND_EVENT_TYPE and kind == V_FLOAT:
                        _semantic(s, ERR_I_TYPE, kp, kn)
                    elif c.kind != KIND_FREE and c.kind != KIND_EVENT_TYPE:
                        _semantic_kind(s, c, kp, kn)
                elif p[0] == 116 and e - p >= 4 and memcmp(p, b"true", 4) == 0:
                    p += 4
                    if not _record(s, c, TAG_TRUE):
                        return _fail(s, p, ERR_NO_MEMORY, "")
                    _semantic_kind(s, c, kp, kn)
                elif p[0] == 102 and e - p >= 5 and memcmp(p, b"false", 5) == 0:
                    p += 5
                    if not _record(s, c, TAG_FALSE):
                        return _fail(s, p, ERR_NO_MEMORY, "")
                    _semantic_kind(s, c, kp, kn)
                elif p[0] == 110 and e - p >= 4 and memcmp(p, b"null", 4) == 0:
                    p += 4
                    if not _record(s, c, TAG_NULL):
                        return _fail(s, p, ERR_NO_MEMORY, "")
                    _semantic_kind(s, c, kp, kn)
                else:
                    return _fail(s, p, ERR_JSON, "unexpected character")
            p = _ws(p, e)
            if p >= e:
                return _fail(s, p, ERR_JSON, "unexpected end of line")
            if p[0] == 44:
                p = _ws(p + 1, e)
                continue
            if p[0] == 125:
                p += 1
                break
            return _fail(s, p, ERR_JSON, "expected ',' or '}'")
    if _ws(p, e) != e:
        return _fail(s, p, ERR_JSON, "unexpected data after the object")
    if s.sem_err != ERR_NONE:
        return _fail(s, p, s.sem_err, "")
    if not have_t:
        return _fail(s, p, ERR_MISSING_T, "")
    if not buf_put_i64(&s.ts, ticks):
        return _fail(s, p, ERR_NO_MEMORY, "")
    return p


cdef void _semantic_kind(Shredder* s, Col* c, const unsigned char* kp, Py_ssize_t kn) noexcept nogil:
    # A reified field holding a value of the wrong JSON type (not a string where one is due...).
    if c.kind == KIND_T:
        _semantic(s, ERR_T_NOT_STRING, kp, kn)
    elif c.kind == KIND_STRING or c.kind == KIND_START:
        _semantic(s, ERR_MUST_STRING, kp, kn)
    elif c.kind == KIND_EVENT_TYPE:
        _semantic(s, ERR_I_TYPE, kp, kn)
    elif c.kind == KIND_ARRAY:
        _semantic(s, ERR_R_TYPE, kp, kn)
    elif c.kind == KIND_OBJECT:
        _semantic(s, ERR_MUST_OBJECT, kp, kn)


cdef int _line_is_utf8(const unsigned char* p, const unsigned char* e) noexcept nogil:
    cdef int n
    while p < e:
        if p[0] < 0x80:
            p += 1
        else:
            n = _utf8_len(p, e)
            if n == 0:
                return 0
            p += n
    return 1


cdef void _shred_all(Shredder* s) noexcept nogil:
    cdef const unsigned char* p = s.src
    cdef const unsigned char* end = s.src + s.src_len
    cdef const unsigned char* nl
    cdef const unsigned char* e
    cdef const unsigned char* b
    cdef int64_t line = 0
    while p < end:
        line += 1
        nl = <const unsigned char*>memchr(p, 10, end - p)
        e = nl if nl != NULL else end
        if e > p and (e - 1)[0] == 13:
            e -= 1
        if e - p > s.max_event:
            s.err = ERR_TOO_BIG
            s.err_line = line
            s.err_pos = e - p
            return
        b = _ws(p, e)
        if b < e:
            if _event(s, b, e) == NULL:
                if s.err == ERR_JSON or s.err == ERR_NOT_OBJECT or s.err == ERR_DEPTH:
                    # Invalid UTF-8 anywhere in the line is the reason given first.
                    if not _line_is_utf8(p, e):
                        s.err = ERR_UTF8
                s.err_line = line
                s.err_pos -= p - s.src
                return
            s.row += 1
        p = nl + 1 if nl != NULL else end


cdef void _free_shredder(Shredder* s) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(s.ncols):
        free(s.cols[i].rows.data)
        free(s.cols[i].tags.data)
        free(s.cols[i].nums.data)
        free(s.cols[i].offs.data)
        free(s.cols[i].data.data)
    free(s.cols)
    free(s.table)
    free(s.keys.data)
    free(s.scratch.data)
    free(s.ts.data)
    free(s.sem_text.data)


cdef str _message(Shredder* s):
    cdef bytes sem = PyBytes_FromStringAndSize(s.sem_text.data, s.sem_text.len) if s.sem_text.len else b""
    text = sem.decode("utf-8", "replace")
    cdef bytes detail
    if s.err == ERR_JSON:
        detail = s.err_detail
        return f"invalid JSON: {detail.decode()} at byte {s.err_pos + 1}"
    if s.err == ERR_UTF8:
        return "invalid UTF-8"
    if s.err == ERR_NOT_OBJECT:
        return "not a JSON object"
    if s.err == ERR_DEPTH:
        return f"nesting deeper than {MAX_DEPTH}"
    if s.err == ERR_DUPLICATE:
        return f"duplicate key '{text}'"
    if s.err == ERR_MISSING_T:
        return "missing @t"
    if s.err == ERR_T_NOT_STRING:
        return "@t is not a string"
    if s.err == ERR_T_INVALID:
        return f"@t is not a valid timestamp: '{text}'"
    if s.err == ERR_MUST_STRING:
        return f"{text} must be a string"
    if s.err == ERR_ST_INVALID:
        return f"@st is not a valid timestamp: '{text}'"
    if s.err == ERR_I_TYPE:
        return "@i must be a string or an integer"
    if s.err == ERR_R_TYPE:
        return "@r must be an array"
    if s.err == ERR_MUST_OBJECT:
        return f"{text} must be an object"
    if s.err == ERR_TOO_BIG:
        return f"event of {s.err_pos} bytes exceeds the limit of {s.max_event} bytes"
    if s.err == ERR_TOO_WIDE:
        return "the batch has too many distinct property names for its number of events"
    return "out of memory while decoding the batch"


cdef object _int64_array(const char* src, Py_ssize_t count):
    import numpy
    arr = numpy.empty(count, dtype=numpy.int64)
    cdef int64_t[::1] view = arr
    if count:
        memcpy(&view[0], src, count * 8)
    return arr


def shred_clef(const unsigned char[::1] data not None, Py_ssize_t max_event_bytes):
    """Shreds CLEF bytes into columns.

    Returns (n, ts, columns) where ts is an int64 array and columns a list of
    (key: str, tags: uint8 array, nums: int64 array, str_offsets: int64 array, str_data: bytes)
    in order of first appearance; or raises ValueError((line, reason)) for the first bad line.
    The caller (seqfast.events.clef) turns the result into a Batch or an InvalidEvents.
    """
    import numpy
    cdef Shredder s
    cdef Py_ssize_t i, j, k
    cdef Col* c
    cdef uint8_t[::1] tags
    cdef int64_t[::1] offs
    cdef const uint32_t* rows
    cdef int64_t nlines = 1
    cdef const unsigned char* p
    memset(&s, 0, sizeof(Shredder))
    s.src = &data[0] if data.shape[0] else <const unsigned char*>b""
    s.src_len = data.shape[0]
    s.max_event = max_event_bytes
    try:
        with nogil:
            # An upper bound of the number of events, for the cells guard.
            p = s.src
            while True:
                p = <const unsigned char*>memchr(p, 10, s.src + s.src_len - p)
                if p == NULL:
                    break
                nlines += 1
                p += 1
            s.max_rows = nlines
            if _grow_table(&s):
                _shred_all(&s)
            else:
                s.err = ERR_NO_MEMORY
        if s.err != ERR_NONE:
            raise ValueError((int(s.err_line), _message(&s)))
        n = s.row
        ts = _int64_array(s.ts.data, n)
        columns = []
        for i in range(s.ncols):
            c = &s.cols[i]
            if c.kind == KIND_T:
                continue  # @t lives in ts
            key = PyBytes_FromStringAndSize(s.keys.data + c.key_off, c.key_len).decode("utf-8")
            tag_array = numpy.zeros(n, dtype=numpy.uint8)
            tags = tag_array
            rows = <const uint32_t*>c.rows.data
            k = c.tags.len
            with nogil:
                for j in range(k):
                    tags[rows[j]] = <uint8_t>c.tags.data[j]
            k = c.offs.len // 8
            off_array = numpy.empty(k + 1, dtype=numpy.int64)
            offs = off_array
            offs[0] = 0
            if k:
                memcpy(&offs[1], c.offs.data, k * 8)
            columns.append((
                key,
                tag_array,
                _int64_array(c.nums.data, c.nums.len // 8),
                off_array,
                PyBytes_FromStringAndSize(c.data.data, c.data.len),
            ))
        return n, ts, columns
    finally:
        _free_shredder(&s)
