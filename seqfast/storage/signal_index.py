"""Saved filters' match bitmaps per segment: one bit per row, kept in a sidecar file.

The server tells the store which filters are saved (each signal's filters, `and`ed:
`execute.saved_filter`).  For each saved filter and each segment, the rows of every block
that the filter selects are evaluated once, in the background, and kept as packed bits in
memory and in a sidecar file next to the segment, `<lo>-<hi>.<key>.sig` (the format is in
native/FORMAT.md, "Signal bitmaps").  Searches and queries whose filter contains a saved
filter use the bits instead of evaluating that part, and skip the blocks where no bit is set
without reading them (`execute._with_bitmaps`).

A sidecar is only ever a cache of something the segment determines, so it is written without
fsync and trusted only when it checks out: its magic, version, checksum, the identity of the
segment it was built from (lsn range, size, footer checksum, rows and rows per block) and the
filter key must all match, or it is ignored and built again.  It goes when its segment goes
(`forget`, before the store publishes the segment's removal or replacement), sidecars of
segments that no longer exist are swept at open (`sweep`), and sidecars of filters no longer
saved are swept once the store has been told the saved filters.

The pure part (`encode`, `decode`) is apart from the I/O.  `SignalIndex` keeps the bits and does
the file work; the thread that calls `run` belongs to the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import xxhash

from seqfast.query import vector
from seqfast.query.execute import SavedFilter
from seqfast.storage.layout import TEMP_SUFFIX
from seqfast.storage.segment import TRAILER, SegmentReader

Packed = npt.NDArray[np.uint8]

MAGIC: Final = b"\x89SQFSIG\n"
FORMAT_VERSION: Final = 1
SIDECAR_SUFFIX: Final = ".sig"
# magic, version, reserved (zero), lo lsn, hi lsn, segment bytes, segment footer checksum,
# rows, filter key (16 bytes), block count.
_HEADER: Final = struct.Struct("<8sHHQQQQQ16sI")
_ROWS: Final = struct.Struct("<I")
_CHECKSUM: Final = struct.Struct("<Q")
_NAME: Final = re.compile(r"^([0-9a-f]{16}-[0-9a-f]{16})\.([0-9a-f]{32})\.sig$")
# While searches or queries run, a build waits between blocks, but never longer than this, so
# that a server never idle for long still gets its bitmaps.
_MAX_PAUSE_SECONDS: Final = 1.0
_IDLE_SECONDS: Final = 0.5

_log = logging.getLogger("seqfast.store")


class BadSidecar(ValueError):
    """A sidecar file that does not check out (it is then ignored)."""


@dataclass(frozen=True)
class SegmentIdentity:
    """What a sidecar must have been built from: one segment file's contents."""

    lo_lsn: int
    hi_lsn: int
    size: int
    footer_checksum: int
    block_rows: tuple[int, ...]

    @property
    def stem(self) -> str:
        return stem(self.lo_lsn, self.hi_lsn)


def stem(lo_lsn: int, hi_lsn: int) -> str:
    return f"{lo_lsn:016x}-{hi_lsn:016x}"


def sidecar_name(lo_lsn: int, hi_lsn: int, key: str) -> str:
    return f"{stem(lo_lsn, hi_lsn)}.{key}{SIDECAR_SUFFIX}"


def parse_sidecar_name(name: str) -> tuple[str, str] | None:
    """(segment stem, filter key) of a sidecar file name, or None."""
    match = _NAME.match(name)
    return None if match is None else (match[1], match[2])


# --- the format (pure) ----------------------------------------------------------------------


def _header_fields(
    identity: SegmentIdentity, key: str
) -> tuple[int, int, int, int, int, bytes, int]:
    """The header's fields after magic, version and reserved: what ties a sidecar to its
    segment and filter."""
    return (
        identity.lo_lsn,
        identity.hi_lsn,
        identity.size,
        identity.footer_checksum,
        sum(identity.block_rows),
        bytes.fromhex(key),
        len(identity.block_rows),
    )


def encode(identity: SegmentIdentity, key: str, blocks: Sequence[Packed]) -> bytes:
    """A sidecar holding `blocks` (each block's bits, np.packbits of its rows)."""
    if len(blocks) != len(identity.block_rows):
        raise ValueError("one bitmap per block is needed")
    parts = [_HEADER.pack(MAGIC, FORMAT_VERSION, 0, *_header_fields(identity, key))]
    parts.extend(_ROWS.pack(rows) for rows in identity.block_rows)
    for rows, bits in zip(identity.block_rows, blocks, strict=True):
        if bits.size != (rows + 7) // 8:
            raise ValueError("a block's bitmap does not match its rows")
        parts.append(bits.tobytes())
    body = b"".join(parts)
    return body + _CHECKSUM.pack(xxhash.xxh3_64_intdigest(body))


def decode(data: bytes, identity: SegmentIdentity, key: str) -> list[Packed]:
    """The per-block bits of a sidecar built for `identity` and `key`; BadSidecar when it is
    damaged or was built from anything else."""
    if len(data) < _HEADER.size + _CHECKSUM.size:
        raise BadSidecar(f"{len(data)} bytes is too short")
    body, (checksum,) = data[: -_CHECKSUM.size], _CHECKSUM.unpack(data[-_CHECKSUM.size :])
    magic, version, reserved, lo, hi, size, footer, rows, raw_key, count = _HEADER.unpack_from(body)
    if magic != MAGIC:
        raise BadSidecar(f"magic is {magic!r}")
    if version != FORMAT_VERSION:
        raise BadSidecar(f"unsupported version {version}")
    if xxhash.xxh3_64_intdigest(body) != checksum:
        raise BadSidecar("checksum mismatch")
    if reserved != 0:
        raise BadSidecar("reserved bytes are not zero")
    if (lo, hi, size, footer, rows, raw_key, count) != _header_fields(identity, key):
        raise BadSidecar("built from another segment or filter")
    offset = _HEADER.size
    block_rows = [_ROWS.unpack_from(body, offset + i * _ROWS.size)[0] for i in range(count)]
    if tuple(block_rows) != identity.block_rows:
        raise BadSidecar("rows per block differ from the segment's")
    offset += count * _ROWS.size
    out: list[Packed] = []
    for n in block_rows:
        length = (n + 7) // 8
        if offset + length > len(body):
            raise BadSidecar("the bits end early")
        bits = np.frombuffer(body, dtype=np.uint8, count=length, offset=offset)
        if n % 8 and bits[-1] & ((1 << (8 - n % 8)) - 1):
            raise BadSidecar("padding bits are set")
        out.append(bits)
        offset += length
    if offset != len(body):
        raise BadSidecar("bytes after the last block")
    return out


def segment_identity(lo_lsn: int, hi_lsn: int, reader: SegmentReader) -> SegmentIdentity:
    """The identity of the segment `reader` has open (its footer checksum read from its
    trailer).  OSError if the file is gone."""
    with open(reader.path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size != reader.size_bytes or size < TRAILER.size:
            raise OSError(f"{reader.path} is not the file that was opened")
        trailer = os.pread(f.fileno(), TRAILER.size, size - TRAILER.size)
    _, _, checksum, _, _ = TRAILER.unpack(trailer)
    return SegmentIdentity(
        lo_lsn, hi_lsn, size, checksum, tuple(block.rows for block in reader.blocks)
    )


def block_bits(reader: SegmentReader, filters: Sequence[SavedFilter], block: int) -> list[Packed]:
    """Each filter's bits over one block of `reader`, reading the block once."""
    needed: set[str] | None = set()
    for f in filters:
        wanted = vector.columns_needed(f.expr)
        needed = None if wanted is None or needed is None else needed | wanted
    batch = reader.read_block(block, needed)
    return [np.packbits(vector.filter_mask(f.expr, batch)) for f in filters]


# --- the index (files and threads' shared state) ------------------------------------------------


@dataclass(frozen=True)
class LiveSegment:
    """A segment as the store publishes it: its lsn range and open reader."""

    lo_lsn: int
    hi_lsn: int
    reader: SegmentReader


_Identity = tuple[str, int, int]  # SegmentReader.identity


class SignalIndex:
    """The saved filters, the bits built for them, and the sidecar files in one directory.
    Thread-safe: queries look bits up while the store's thread builds them."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._lock = threading.Condition()
        self._saved: tuple[SavedFilter, ...] = ()
        self._told = False  # whether the saved filters were ever given (then sweep others)
        self._sweep_due = False
        self._closed = False
        self._reading = 0
        # reader identity -> filter key -> bits per block
        self._bits: dict[_Identity, dict[str, tuple[Packed, ...]]] = {}
        self._failed: set[tuple[_Identity, str]] = set()  # filters that cannot be evaluated
        # Segments removed or replaced (until no snapshot shows them): never built again.
        self._retired: set[_Identity] = set()
        self._building: _Identity | None = None
        self.built = 0  # sidecars built (not loaded), for tests and benchmarks

    # -- what the store calls ------------------------------------------------------------------

    def sweep(self, live: Sequence[LiveSegment]) -> None:
        """Removes the sidecars of segments that no longer exist (at open)."""
        stems = {stem(s.lo_lsn, s.hi_lsn) for s in live}
        for entry in self._dir.iterdir():
            found = parse_sidecar_name(entry.name)
            if found is not None and found[0] not in stems:
                entry.unlink(missing_ok=True)

    def set_saved(self, filters: Sequence[SavedFilter]) -> None:
        unique = {f.key: f for f in filters}
        with self._lock:
            self._saved = tuple(unique.values())
            self._told = True
            self._sweep_due = True
            self._lock.notify_all()

    def saved(self) -> tuple[SavedFilter, ...]:
        """The saved filters (those with bits for some blocks are used by the planner)."""
        return self._saved

    def lookup(self, identity: _Identity, block: int, key: str) -> Packed | None:
        """The bits of filter `key` over block `block` of the segment, if built."""
        found = self._bits.get(identity)
        if found is None:
            return None
        bits = found.get(key)
        return None if bits is None else bits[block]

    def forget(self, lo_lsn: int, hi_lsn: int, reader: SegmentReader | None) -> None:
        """The segment is going (merged, dropped, rewritten): its bits and sidecars go first."""
        with self._lock:
            if reader is not None:
                self._retired.add(reader.identity)
                self._bits.pop(reader.identity, None)
            prefix = stem(lo_lsn, hi_lsn) + "."
            for entry in self._dir.iterdir():
                if entry.name.startswith(prefix) and parse_sidecar_name(entry.name):
                    entry.unlink(missing_ok=True)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Marks a search or query as running: builds pause between blocks meanwhile."""
        with self._lock:
            self._reading += 1
        try:
            yield
        finally:
            with self._lock:
                self._reading -= 1
                if not self._reading:
                    self._lock.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def complete(self, live: Sequence[LiveSegment]) -> bool:
        """Whether every saved filter has bits (or cannot have any) for every segment."""
        return not self._missing(live)

    # -- the builder (on the store's thread) ---------------------------------------------------

    def run(self, live: Callable[[], Sequence[LiveSegment]]) -> None:
        """Builds bits until `close`, one segment at a time, newest first; idle when every
        segment has them.  Errors are logged, never raised: the bits are an optimisation."""
        while True:
            with self._lock:
                if self._closed:
                    return
            try:
                segments = live()
                self._prune(segments)
                if self._sweep_due:
                    self._sweep_keys()
                missing = self._missing(segments)
                if missing:
                    segment, filters = missing[0]
                    try:
                        self._build(segment, filters)
                    except Exception:
                        # Not tried again for this segment (it would fail the same way): its
                        # blocks are evaluated as usual.
                        _log.exception("building signal bitmaps of %s failed", segment.reader)
                        with self._lock:
                            identity = segment.reader.identity
                            self._failed.update((identity, f.key) for f in filters)
                    continue
            except Exception:
                _log.exception("building signal bitmaps failed")
            with self._lock:
                if not self._closed:
                    self._lock.wait(_IDLE_SECONDS)

    def _missing(self, live: Sequence[LiveSegment]) -> list[tuple[LiveSegment, list[SavedFilter]]]:
        saved = self._saved
        out = []
        for segment in sorted(live, key=lambda s: s.lo_lsn, reverse=True):
            reader = segment.reader
            identity = reader.identity
            if not reader.rows or identity in self._retired:
                continue
            have = self._bits.get(identity, {})
            wanted = [
                f for f in saved if f.key not in have and (identity, f.key) not in self._failed
            ]
            if wanted:
                out.append((segment, wanted))
        return out

    def _prune(self, live: Sequence[LiveSegment]) -> None:
        current = {s.reader.identity for s in live}
        keys = {f.key for f in self._saved}
        with self._lock:
            self._retired &= current
            self._failed = {(i, k) for i, k in self._failed if i in current and k in keys}
            for identity in [i for i in self._bits if i not in current]:
                del self._bits[identity]
            if self._told:
                for identity, found in list(self._bits.items()):
                    if not found.keys() <= keys:
                        self._bits[identity] = {k: v for k, v in found.items() if k in keys}

    def _sweep_keys(self) -> None:
        with self._lock:
            self._sweep_due = False
            keys = {f.key for f in self._saved}
            for entry in self._dir.iterdir():
                found = parse_sidecar_name(entry.name)
                if found is not None and found[1] not in keys:
                    entry.unlink(missing_ok=True)

    def _pause(self) -> bool:
        """Waits (a while at most) for running searches and queries; True once closed."""
        with self._lock:
            if self._reading and not self._closed:
                self._lock.wait_for(
                    lambda: self._closed or not self._reading, timeout=_MAX_PAUSE_SECONDS
                )
            return self._closed

    def _build(self, segment: LiveSegment, filters: list[SavedFilter]) -> None:
        reader = segment.reader
        identity = reader.identity
        try:
            ident = segment_identity(segment.lo_lsn, segment.hi_lsn, reader)
        except OSError:
            with self._lock:
                self._retired.add(identity)  # gone under us: a merge or removal took it
            return
        with self._lock:
            self._building = identity
        try:
            todo: list[SavedFilter] = []
            for f in filters:
                loaded = self._load(ident, f.key)
                if loaded is None:
                    todo.append(f)
                else:
                    self._publish(identity, ident, f.key, loaded, None)
            if todo:
                self._evaluate(segment, ident, todo)
        finally:
            with self._lock:
                self._building = None

    def _load(self, ident: SegmentIdentity, key: str) -> tuple[Packed, ...] | None:
        path = self._dir / sidecar_name(ident.lo_lsn, ident.hi_lsn, key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            blocks = decode(data, ident, key)
        except BadSidecar as exc:
            _log.warning("ignoring the signal bitmap %s, to be built again: %s", path.name, exc)
            return None
        for bits in blocks:
            bits.flags.writeable = False
        return tuple(blocks)

    def _evaluate(
        self, segment: LiveSegment, ident: SegmentIdentity, filters: list[SavedFilter]
    ) -> None:
        reader = segment.reader
        identity = reader.identity
        good = list(filters)
        per_filter: dict[str, list[Packed]] = {f.key: [] for f in filters}
        for block in range(len(reader.blocks)):
            if self._pause() or not good:
                return
            try:
                found = block_bits(reader, good, block)
            except Exception:
                # One filter failing (a runtime error) must not stop the others: find it.
                found = []
                for f in list(good):
                    try:
                        found.extend(block_bits(reader, [f], block))
                    except Exception as exc:
                        _log.warning("a saved filter cannot be evaluated: %s", exc)
                        good.remove(f)
                        with self._lock:
                            self._failed.add((identity, f.key))
            for f, bits in zip(good, found, strict=True):
                bits.flags.writeable = False
                per_filter[f.key].append(bits)
        for f in good:
            blocks = tuple(per_filter[f.key])
            self._publish(identity, ident, f.key, blocks, encode(ident, f.key, blocks))
            self.built += 1

    def _publish(
        self,
        identity: _Identity,
        ident: SegmentIdentity,
        key: str,
        blocks: tuple[Packed, ...],
        sidecar: bytes | None,
    ) -> None:
        """Makes bits visible to queries and (when `sidecar` is given) writes the sidecar,
        unless the segment was retired meanwhile, under the lock that `forget` takes."""
        with self._lock:
            if identity in self._retired or key not in {f.key for f in self._saved}:
                return
            if sidecar is not None:
                path = self._dir / sidecar_name(ident.lo_lsn, ident.hi_lsn, key)
                temp = path.with_name(path.name + TEMP_SUFFIX)
                temp.write_bytes(sidecar)
                os.replace(temp, path)
            self._bits[identity] = {**self._bits.get(identity, {}), key: blocks}


def lower_priority() -> None:
    """Makes the calling thread yield the CPU to the others (Linux: a thread's nice value is
    its own); best effort."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
