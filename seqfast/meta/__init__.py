"""Metadata: what the server knows besides events (API keys; later leases, signals, settings),
kept in SQLite in the data directory or in PostgreSQL for a cluster."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seqfast.meta.apikeys import ApiKey, ApiKeys, InvalidApiKey
    from seqfast.meta.db import MetadataError, open_metadata

__all__ = ["ApiKey", "ApiKeys", "InvalidApiKey", "MetadataError", "open_metadata"]

# Where each name lives.  They are imported on first use, so that importing a light submodule
# (`seqfast.meta.apikey_cli`, for the `seqfast` parser) does not import SQLAlchemy.
_HOMES = {
    "ApiKey": "seqfast.meta.apikeys",
    "ApiKeys": "seqfast.meta.apikeys",
    "InvalidApiKey": "seqfast.meta.apikeys",
    "MetadataError": "seqfast.meta.db",
    "open_metadata": "seqfast.meta.db",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
