# cython: language_level=3
"""seqfast's native core: one compiled unit, one `include` per concept.

Each included file is one concept of the on-disk format or the ingest path (see
native/FORMAT.md and ARCHITECTURE.md).  Loops that touch every event or every byte live
here and release the GIL so that ingestion and segment building can use both cores.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memcmp, memset

include "consts.pxi"
include "hashing.pyx"
include "timestamps.pyx"
include "shred.pyx"
include "codecs.pyx"
include "bloom.pyx"
include "kernels.pyx"
include "columns.pyx"
