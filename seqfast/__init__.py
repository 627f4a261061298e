"""seqfast: a fast, self-hosted, Seq-compatible store and server for structured logs and traces.

The embedded API::

    import seqfast
    with seqfast.open("./data") as store:
        store.ingest_clef(payload)
        for event in store.events(limit=10):
            ...
"""

from seqfast.errors import (
    CorruptLog,
    CorruptSegment,
    InvalidEvents,
    SeqfastError,
    StoreLocked,
)
from seqfast.storage.store import Store, StoreOptions, open

__version__ = "0.1.0"

__all__ = [
    "CorruptLog",
    "CorruptSegment",
    "InvalidEvents",
    "SeqfastError",
    "Store",
    "StoreLocked",
    "StoreOptions",
    "__version__",
    "open",
]
