# Column kernels of the query read path: one pass per block over a column's tags turns the
# sparse stored shape (tags, nums in numeric-row order, dictionary codes in string-row order)
# into row-aligned arrays; grouping numbers dictionary codes without touching the strings; a
# per-group selection answers nearest-rank percentiles without sorting all the numbers.
#
# Every function checks what it is given (counts, codes, group numbers) and raises ValueError
# rather than reading out of bounds; the loops run without the GIL, so that the query threads
# decode blocks side by side.  Each has a pure-Python twin in tests/native/.

from libc.math cimport ceil, fabs


def byte_counts(const uint8_t[::1] values not None):
    """How many times each byte value 0..255 occurs (int64[256]): one pass, where
    np.bincount would first widen every byte to a machine integer."""
    out = np.zeros(256, dtype=np.int64)
    cdef int64_t[::1] o = out
    cdef Py_ssize_t i, n = values.shape[0]
    with nogil:
        for i in range(n):
            o[values[i]] += 1
    return out


def column_numbers(
    const uint8_t[::1] tags not None,
    const int64_t[::1] nums not None,
    const uint8_t[::1] kind_of_tag not None,
    double limit,
):
    """(kind, numbers, exact) of a column's rows: kind[i] = kind_of_tag[tags[i]]; rows
    tagged INT or FLOAT take the next entry of `nums` (FLOAT entries are IEEE bits) as a
    number, other rows 0.  A FLOAT whose magnitude is not below `limit` (or NaN) leaves its
    row kind 0 and number 0.  `exact` holds the INT values as int64 (0 elsewhere), or is None
    when some row is FLOAT.  `numbers` is None when `exact` is not (the same values, as
    floats, which the caller derives only if it needs them): a column of integers then
    fills one array instead of two.

    Raises ValueError unless `nums` has exactly one entry per INT or FLOAT row and
    `kind_of_tag` has 256 entries.
    """
    cdef Py_ssize_t n = tags.shape[0], m = nums.shape[0], i, j = 0
    cdef uint8_t t
    cdef double d
    cdef int64_t v
    cdef bint floats = False, ints = False, short = False
    if kind_of_tag.shape[0] != 256:
        raise ValueError("kind_of_tag must have 256 entries")
    kind = np.empty(n, dtype=np.uint8)
    numbers = np.zeros(n, dtype=np.float64)
    exact = np.zeros(n, dtype=np.int64) if m else None
    cdef uint8_t[::1] k = kind
    cdef double[::1] x = numbers
    cdef int64_t[::1] e
    if m == 0:
        with nogil:
            for i in range(n):
                t = tags[i]
                k[i] = kind_of_tag[t]
                if t == TAG_INT or t == TAG_FLOAT:
                    short = True
                    break
        if short:
            raise ValueError(f"more numeric rows than the {m} numbers given")
        return kind, numbers, None
    e = exact
    with nogil:
        for i in range(n):
            t = tags[i]
            k[i] = kind_of_tag[t]
            if t == TAG_INT or t == TAG_FLOAT:
                if j >= m:
                    short = True
                    break
                v = nums[j]
                j += 1
                if t == TAG_INT:
                    ints = True
                    e[i] = v
                else:
                    floats = True
                    memcpy(&d, &v, 8)
                    if fabs(d) < limit:
                        x[i] = d
                    else:
                        k[i] = 0
    if short or j != m:
        raise ValueError(f"{m} numbers for a different number of numeric rows")
    if not floats:
        return kind, None, exact
    if ints:  # a mix: the integers as floats too
        with nogil:
            for i in range(n):
                if tags[i] == TAG_INT:
                    x[i] = <double>e[i]
    return kind, numbers, None


def scatter_codes(
    const uint8_t[::1] tags not None, const int64_t[::1] codes not None, int lo, int hi
):
    """Row-aligned codes: row i gets the next entry of `codes` when lo <= tags[i] <= hi,
    else -1.  Raises ValueError unless `codes` has exactly one entry per such row."""
    cdef Py_ssize_t n = tags.shape[0], m = codes.shape[0], i, j = 0
    cdef uint8_t t
    cdef bint short = False
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for i in range(n):
            t = tags[i]
            if lo <= t <= hi:
                if j >= m:
                    short = True
                    break
                o[i] = codes[j]
                j += 1
            else:
                o[i] = -1
    if short or j != m:
        raise ValueError(f"{m} codes for a different number of rows")
    return out


def used_codes(
    const uint8_t[::1] kind not None, const int64_t[::1] codes not None, int k, Py_ssize_t d
):
    """uint8[d]: 1 where some row of kind `k` has that code.  Raises ValueError when the
    arrays differ in length or such a row's code is outside [0, d)."""
    cdef Py_ssize_t n = kind.shape[0], i, bad = -1
    cdef int64_t c
    if codes.shape[0] != n:
        raise ValueError(f"{codes.shape[0]} codes for {n} rows")
    out = np.zeros(d, dtype=np.uint8)
    cdef uint8_t[::1] o = out
    with nogil:
        for i in range(n):
            if kind[i] == k:
                c = codes[i]
                if c < 0 or c >= d:
                    bad = i
                    break
                o[c] = 1
    if bad >= 0:
        raise ValueError(f"code {codes[bad]} at row {bad} is outside [0, {d})")
    return out


def apply_codes(
    const uint8_t[::1] kind not None,
    const int64_t[::1] codes not None,
    int k,
    const int64_t[::1] remap not None,
    const int64_t[::1] code_of_kind not None,
):
    """Group codes: rows of kind `k` get remap[codes[i]], others code_of_kind[kind[i]].
    `k` < 0: no row is looked up in `remap` (`codes` may then be empty).  Raises ValueError
    on mismatched lengths or a code outside `remap`."""
    cdef Py_ssize_t n = kind.shape[0], d = remap.shape[0], i, bad = -1
    cdef int64_t c
    if code_of_kind.shape[0] != 256:
        raise ValueError("code_of_kind must have 256 entries")
    if k >= 0 and codes.shape[0] != n:
        raise ValueError(f"{codes.shape[0]} codes for {n} rows")
    out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for i in range(n):
            if kind[i] == k:
                c = codes[i]
                if c < 0 or c >= d:
                    bad = i
                    break
                o[i] = remap[c]
            else:
                o[i] = code_of_kind[kind[i]]
    if bad >= 0:
        raise ValueError(f"code {codes[bad]} at row {bad} is outside [0, {d})")
    return out


def rank_rows(
    const uint8_t[::1] tags not None, int lo, int hi, const int64_t[::1] rows not None
):
    """For each of `rows` (ascending), how many rows before it have lo <= tag <= hi: its
    position among those rows' values.  One scan that stops at the last row asked for, with
    no per-row array.  Raises ValueError on rows out of range or not ascending."""
    cdef Py_ssize_t n = tags.shape[0], m = rows.shape[0], i, r
    cdef int64_t count = 0, pos = 0, prev = -1, row
    cdef bint bad = False
    out = np.empty(m, dtype=np.int64)
    cdef int64_t[::1] o = out
    with nogil:
        for i in range(m):
            row = rows[i]
            if row < prev or row < 0 or row >= n:
                bad = True
                break
            prev = row
            while pos < row:
                if lo <= tags[pos] <= hi:
                    count += 1
                pos += 1
            o[i] = count
    if bad:
        raise ValueError(f"rows must be ascending and lie in [0, {n})")
    return out


cdef inline void _swap(double* a, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef double t = a[i]
    a[i] = a[j]
    a[j] = t


cdef void _sift(double* a, Py_ssize_t start, Py_ssize_t end) noexcept nogil:
    # Max-heap sift-down of a[start] within a[0:end].
    cdef Py_ssize_t root = start, child
    while 2 * root + 1 < end:
        child = 2 * root + 1
        if child + 1 < end and a[child] < a[child + 1]:
            child += 1
        if a[root] < a[child]:
            _swap(a, root, child)
            root = child
        else:
            return


cdef void _heap_sort(double* a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    i = n // 2 - 1
    while i >= 0:
        _sift(a, i, n)
        i -= 1
    i = n - 1
    while i > 0:
        _swap(a, 0, i)
        _sift(a, 0, i)
        i -= 1


cdef double _select(double* a, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    # The k-th smallest of a[0:n] (0-based), reordering a: quickselect with a median-of-three
    # pivot and Hoare partitioning (runs of equal values split evenly); a range that keeps
    # failing to shrink is heap-sorted, so the worst case stays n log n.
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j, mid
    cdef int budget = 64
    cdef double pivot, t
    while hi - lo > 16:
        if budget == 0:
            _heap_sort(a + lo, hi - lo + 1)
            return a[k]
        budget -= 1
        mid = lo + (hi - lo) // 2
        if a[mid] < a[lo]:
            _swap(a, mid, lo)
        if a[hi] < a[lo]:
            _swap(a, hi, lo)
        if a[hi] < a[mid]:
            _swap(a, hi, mid)
        pivot = a[mid]
        i = lo - 1
        j = hi + 1
        while True:
            i += 1
            while a[i] < pivot:
                i += 1
            j -= 1
            while a[j] > pivot:
                j -= 1
            if i >= j:
                break
            _swap(a, i, j)
        if k <= j:
            hi = j
        else:
            lo = j + 1
    # Insertion sort of what is left.
    for i in range(lo + 1, hi + 1):
        t = a[i]
        j = i - 1
        while j >= lo and a[j] > t:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = t
    return a[k]


def group_percentiles(
    const int64_t[::1] gids not None, const double[::1] x not None, Py_ssize_t groups, double p
):
    """(values, counts) per group 0..groups-1 of the nearest-rank `p`-th percentile of the
    numbers `x[i]` whose group is `gids[i]`: the value of rank max(1, ceil(p / 100 * count))
    in ascending order, 0.0 for an empty group.  Values are bucketed by group (a counting
    sort), then each bucket is partially ordered only as far as its rank: linear time
    instead of a sort of every number.  `x` must hold no NaN.  Raises ValueError when the
    arrays differ in length or a group number is outside [0, groups)."""
    cdef Py_ssize_t n = gids.shape[0], i, g, bad = -1, c, r
    cdef int64_t start
    cdef double fraction = p / 100
    if x.shape[0] != n:
        raise ValueError(f"{x.shape[0]} numbers for {n} group numbers")
    if groups < 0:
        raise ValueError("the number of groups cannot be negative")
    values = np.zeros(groups, dtype=np.float64)
    counts = np.zeros(groups, dtype=np.int64)
    starts = np.zeros(groups + 1, dtype=np.int64)
    bucket = np.empty(n, dtype=np.float64)
    cdef double[::1] v = values
    cdef int64_t[::1] cnt = counts
    cdef int64_t[::1] st = starts
    cdef double[::1] b = bucket
    with nogil:
        for i in range(n):
            g = gids[i]
            if g < 0 or g >= groups:
                bad = i
                break
            cnt[g] += 1
        if bad < 0:
            for g in range(groups):
                st[g + 1] = st[g] + cnt[g]
            for i in range(n):
                g = gids[i]
                b[st[g]] = x[i]
                st[g] += 1
            start = 0
            for g in range(groups):
                c = cnt[g]
                if c:
                    # The same float arithmetic as numpy's ceil(p / 100 * count).
                    r = <Py_ssize_t>ceil(fraction * <double>c)
                    if r < 1:
                        r = 1
                    if r > c:
                        r = c
                    v[g] = _select(&b[start], c, r - 1)
                start += c
    if bad >= 0:
        raise ValueError(f"group {gids[bad]} at position {bad} is outside [0, {groups})")
    return values, counts


from libc.stdlib cimport realloc as _realloc


cdef class StringIds:
    """A map from byte strings to the numbers given them (`add`), looked up many at a time
    (`find`) without making a Python string or hashing one: what a group-key table keeps
    for its string keys, so that a block's distinct strings are numbered from their bytes.

    Open addressing over sqhash64; equal hashes are confirmed by comparing the bytes, so a
    number is only ever found for the very string it was added with."""

    cdef int64_t* slots        # capacity entries: an entry index, or -1 for empty
    cdef uint64_t* hashes      # per entry
    cdef int64_t* numbers      # per entry
    cdef int64_t* starts       # per entry + 1: where its bytes start in `data`
    cdef uint8_t* data
    cdef Py_ssize_t capacity, count, entries_cap, data_len, data_cap

    def __cinit__(self):
        self.capacity = 0
        self.count = 0
        self.entries_cap = 0
        self.data_len = 0
        self.data_cap = 0
        self.slots = NULL
        self.hashes = NULL
        self.numbers = NULL
        self.starts = NULL
        self.data = NULL

    def __dealloc__(self):
        free(self.slots)
        free(self.hashes)
        free(self.numbers)
        free(self.starts)
        free(self.data)

    def __len__(self):
        return self.count

    cdef Py_ssize_t _probe(self, const uint8_t* p, int64_t n, uint64_t h) noexcept nogil:
        # The slot holding this string, or the empty slot where it would go.
        cdef uint64_t mask = <uint64_t>(self.capacity - 1)
        cdef uint64_t slot = h & mask
        cdef int64_t e
        while True:
            e = self.slots[slot]
            if e < 0:
                return <Py_ssize_t>slot
            if (
                self.hashes[e] == h
                and self.starts[e + 1] - self.starts[e] == n
                and (n == 0 or memcmp(self.data + self.starts[e], p, <size_t>n) == 0)
            ):
                return <Py_ssize_t>slot
            slot = (slot + 1) & mask

    cdef int _grow_slots(self) except -1:
        cdef Py_ssize_t cap = 1024 if self.capacity == 0 else 2 * self.capacity, i
        cdef int64_t* slots = <int64_t*>malloc(cap * sizeof(int64_t))
        cdef uint64_t mask = <uint64_t>(cap - 1)
        cdef uint64_t slot
        if slots == NULL:
            raise MemoryError()
        memset(slots, 0xFF, cap * sizeof(int64_t))
        for i in range(self.count):
            slot = self.hashes[i] & mask
            while slots[slot] >= 0:
                slot = (slot + 1) & mask
            slots[slot] = i
        free(self.slots)
        self.slots = slots
        self.capacity = cap
        return 0

    def find(self, const int64_t[::1] offsets not None, const uint8_t[::1] data not None):
        """The number of each string of the list (offsets, data), -1 for those not added."""
        cdef Py_ssize_t m = offsets.shape[0] - 1, i, slot
        cdef const uint8_t* base = _bytes_ptr(data)
        cdef int64_t n, e
        _check_offsets(offsets, data.shape[0])
        out = np.full(max(m, 0), -1, dtype=np.int64)
        cdef int64_t[::1] o = out
        if self.count == 0:
            return out
        with nogil:
            for i in range(m):
                n = offsets[i + 1] - offsets[i]
                slot = self._probe(base + offsets[i], n, sqh_bytes(base + offsets[i], n))
                e = self.slots[slot]
                if e >= 0:
                    o[i] = self.numbers[e]
        return out

    def add(
        self,
        const int64_t[::1] offsets not None,
        const uint8_t[::1] data not None,
        const int64_t[::1] which not None,
        const int64_t[::1] numbers not None,
    ):
        """Gives string `which[j]` of the list (offsets, data) the number `numbers[j]`; a
        string already added keeps its number."""
        cdef Py_ssize_t m = offsets.shape[0] - 1, j, k = which.shape[0], slot, cap
        cdef const uint8_t* base = _bytes_ptr(data)
        cdef int64_t i, n
        cdef uint64_t h
        cdef void* grown
        _check_offsets(offsets, data.shape[0])
        if numbers.shape[0] != k:
            raise ValueError(f"{numbers.shape[0]} numbers for {k} strings")
        for j in range(k):
            if which[j] < 0 or which[j] >= m:
                raise ValueError(f"string {which[j]} is outside [0, {m})")
        for j in range(k):
            if 2 * (self.count + 1) > self.capacity:
                self._grow_slots()
            i = which[j]
            n = offsets[i + 1] - offsets[i]
            h = sqh_bytes(base + offsets[i], n)
            slot = self._probe(base + offsets[i], n, h)
            if self.slots[slot] >= 0:
                continue
            if self.count + 1 >= self.entries_cap:
                cap = 1024 if self.entries_cap == 0 else 2 * self.entries_cap
                grown = _realloc(self.hashes, cap * sizeof(uint64_t))
                if grown == NULL:
                    raise MemoryError()
                self.hashes = <uint64_t*>grown
                grown = _realloc(self.numbers, cap * sizeof(int64_t))
                if grown == NULL:
                    raise MemoryError()
                self.numbers = <int64_t*>grown
                grown = _realloc(self.starts, (cap + 1) * sizeof(int64_t))
                if grown == NULL:
                    raise MemoryError()
                self.starts = <int64_t*>grown
                if self.entries_cap == 0:
                    self.starts[0] = 0
                self.entries_cap = cap
            if self.data_len + n > self.data_cap:
                cap = max(4096, 2 * self.data_cap, self.data_len + n)
                grown = _realloc(self.data, cap)
                if grown == NULL:
                    raise MemoryError()
                self.data = <uint8_t*>grown
                self.data_cap = cap
            if n:
                memcpy(self.data + self.data_len, base + offsets[i], <size_t>n)
            self.data_len += n
            self.hashes[self.count] = h
            self.numbers[self.count] = numbers[j]
            self.starts[self.count + 1] = self.data_len
            self.slots[slot] = self.count
            self.count += 1
