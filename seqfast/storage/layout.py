"""Every file and directory name in a data directory, in one place.

```
<data>/
  LOCK                       held (flock) by the process that has the store open
  wal/<n>.log                the commit log (seqfast.storage.wal)
  segments/<lo>-<hi>.seg     immutable segments, named by the commit-log lsn range they hold
  segments/<lo>-<hi>.<key>.sig  a saved filter's match bits for a segment (signal_index)
  segments/*.tmp             a segment being written; removed at open
```
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "LOCK"
WAL_DIR = "wal"
SEGMENTS_DIR = "segments"
SEGMENT_SUFFIX = ".seg"
TEMP_SUFFIX = ".tmp"

_SEGMENT_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.seg$")


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def wal_dir(self) -> Path:
        return self.root / WAL_DIR

    @property
    def segments_dir(self) -> Path:
        return self.root / SEGMENTS_DIR

    def segment_path(self, lo_lsn: int, hi_lsn: int) -> Path:
        return self.segments_dir / f"{lo_lsn:016x}-{hi_lsn:016x}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    """The (lo, hi) lsn range of a segment file name, or None if it is not one."""
    match = _SEGMENT_NAME.match(name)
    if match is None:
        return None
    return int(match.group(1), 16), int(match.group(2), 16)


def fsync_directory(path: Path) -> None:
    """Makes the creation, renaming and deletion of entries in directory `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
