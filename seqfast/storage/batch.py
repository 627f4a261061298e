"""`Batch`: events as columns, the one in-memory shape shared by the shredder, the head,
the segment writer and the segment reader.

A batch holds `n` events.  `ts` and `seq` are dense; every other CLEF key (`@mt`, `@l`, `@x`,
`RequestPath`, `@@escaped`, ...) is a `Column` named by the key exactly as it appeared in CLEF
(so `@@x` stays `@@x`; `@t` is never a column).  A column is sparse in its values:

* `tags[i]` (uint8, one per row) says what row i holds: one of the TAG_* values below.
* `nums` (int64) holds one entry per row tagged INT or FLOAT, in row order; FLOAT entries are
  the IEEE-754 bits of the double (`nums.view(float64)` reads them).
* `str_offsets` (int64, m + 1 entries, starting at 0) and `str_data` (UTF-8 bytes) hold one
  string per row tagged STRING, JSON or BIGINT, in row order: string j is
  `str_data[str_offsets[j]:str_offsets[j + 1]]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# Value tags: the same numbers as native/consts.pxi and native/FORMAT.md.  Append-only.
TAG_ABSENT = 0
TAG_NULL = 1
TAG_FALSE = 2
TAG_TRUE = 3
TAG_INT = 4
TAG_FLOAT = 5
TAG_STRING = 6
TAG_JSON = 7
TAG_BIGINT = 8

Int64Array = npt.NDArray[np.int64]
UInt8Array = npt.NDArray[np.uint8]


@dataclass
class Column:
    tags: UInt8Array
    nums: Int64Array
    str_offsets: Int64Array
    str_data: bytes


@dataclass
class Batch:
    n: int
    ts: Int64Array  # 100-ns ticks since 1970-01-01T00:00:00Z
    seq: Int64Array  # arrival numbers: unique, increasing in commit order
    columns: dict[str, Column] = field(default_factory=dict)
