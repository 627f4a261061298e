"""The embedded store: the commit log, the in-memory head and the segments, behind one object.

Write path (`ingest_clef`): shred the CLEF payload into columns (native, GIL released), append
one commit-log record under a short lock, fsync with group commit (concurrent callers share an
fsync), then publish the batch in the head.  A batch is acknowledged only after its fsync.

Background: a flusher turns the head into a segment once it is large enough (the commit log is
then trimmed), and a merger combines neighbouring small segments chosen by the pure
`MergePolicy`.  A third, low-priority thread builds the bitmaps of saved signals' filters per
segment (`signal_index.py`), which searches and queries use.  Readers see segments and head
together; every published structure is replaced, never mutated, so a reader takes a snapshot
under the lock and reads without it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial as _bind
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

from seqfast.errors import CommitRefused, CorruptLog, CorruptSegment, SeqfastError, StoreLocked
from seqfast.events.apply import KeySettings, apply
from seqfast.events.clef import DEFAULT_MAX_EVENT_BYTES, encode_events, shred
from seqfast.query import execute
from seqfast.query.execute import BlockSource, QueryResult, Range, SearchResult
from seqfast.storage import batch as batches
from seqfast.storage.batch import Batch
from seqfast.storage.cache import ColumnCache
from seqfast.storage.ids import parse_event_id
from seqfast.storage.layout import TEMP_SUFFIX, Layout, fsync_directory, parse_segment_name
from seqfast.storage.merge import merge_segments
from seqfast.storage.merge_policy import MergePolicy, SegmentSize
from seqfast.storage.retention import (
    Cut,
    RetentionPlan,
    RetentionReport,
    RetentionRule,
    SegmentInfo,
    age_cuts,
    plan_cuts,
)
from seqfast.storage.retention import plan as retention_plan
from seqfast.storage.rewrite import (
    RowMatcher,
    block_removals,
    drop_segment,
    resolve_rewrites,
    rewrite_segment,
)
from seqfast.storage.segment import SegmentReader, read_strings, write_segment
from seqfast.storage.signal_index import LiveSegment, SignalIndex, lower_priority
from seqfast.storage.wal import CommitLog

# The commit-log payload of one batch (native/FORMAT.md, "Batch record payload"):
# u32 payload version, u64 arrival number of the batch's first event, [version 2: u32 length and
# the JSON of the key settings applied to the batch], zstd frame of the CLEF.
_PAYLOAD_HEADER = struct.Struct("<IQ")
_SETTINGS_LENGTH = struct.Struct("<I")
_PLAIN_PAYLOAD = 1
_SETTINGS_PAYLOAD = 2
# The epoch of a store that is not part of a cluster.
LOCAL_EPOCH = 1


@dataclass(frozen=True)
class StoreOptions:
    """Settings of an embedded store (each has exactly one home: here)."""

    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    # The head becomes a segment once it holds this many events...
    flush_rows: int = 262_144
    # ...and ingestion waits while this many events are not yet in segments (bounded memory).
    max_unflushed_rows: int = 393_216
    block_rows: int = 65_536
    segment_compression_level: int = 3
    log_compression_level: int = 1
    merge_policy: MergePolicy = field(default_factory=MergePolicy)
    # Decoded block columns kept for queries (0: none), and the threads queries run on.
    query_cache_bytes: int = 512 << 20
    query_threads: int = 2


@dataclass(frozen=True)
class _Segment:
    lo_lsn: int
    hi_lsn: int
    path: Path
    reader: SegmentReader | None  # None when the file failed its checks at open
    error: CorruptSegment | None

    def open_reader(self) -> SegmentReader:
        if self.reader is None:
            assert self.error is not None
            raise self.error
        return self.reader


@dataclass(frozen=True)
class _HeadPart:
    lsn: int
    batch: Batch


class Store:
    """An open data directory.  Thread-safe; use `seqfast.open` to make one."""

    def __init__(self, path: str | os.PathLike[str], options: StoreOptions | None = None) -> None:
        self.options = options or StoreOptions()
        self.layout = Layout(Path(path))
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_directory(self.layout.lock_file)
        try:
            self._open()
        except BaseException:
            os.close(self._lock_fd)
            raise

    # -- opening and recovery ------------------------------------------------------------------

    def _open(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self._failure: BaseException | None = None
        self._local = threading.local()
        self.layout.segments_dir.mkdir(exist_ok=True)
        self._segments = self._open_segments()
        self._signals = SignalIndex(self.layout.segments_dir)
        self._signals.sweep(self._live_segments())
        covered = max((s.hi_lsn for s in self._segments), default=0)
        self._log, records = CommitLog.open(self.layout.wal_dir)
        next_seq = 1 + max(
            (s.reader.max_seq for s in self._segments if s.reader is not None and s.reader.rows),
            default=-1,
        )
        head: list[_HeadPart] = []
        for record in records:
            if record.lsn <= covered:
                continue  # already in a segment; the log file is trimmed at the next flush
            batch = self._decode_record(record.payload, record.lsn)
            head.append(_HeadPart(record.lsn, batch))
            if batch.n:
                next_seq = max(next_seq, int(batch.seq[-1]) + 1)
        self._head: tuple[_HeadPart, ...] = tuple(head)
        self._flushing: tuple[_HeadPart, ...] = ()
        self._next_lsn = 1 + max(covered, self._log.last_lsn or 0)
        self._next_seq = next_seq
        self._published_lsn = self._next_lsn - 1
        self._pending: dict[int, Batch] = {}
        self._query_state = _QueryState(self.options)
        # Held by merges and by deletions: each replaces segments the other may be reading.
        self._rewriting = threading.Lock()
        # Flushing and merging on threads of their own: a long merge never holds up a flush, so
        # it never makes ingestion wait on back-pressure.
        self._workers = [
            threading.Thread(
                target=self._background,
                args=(self._flush_due, self._flush),
                name="seqfast-flush",
                daemon=True,
            ),
            threading.Thread(
                target=self._background,
                args=(self._merge_candidates, self._merge_guarded),
                name="seqfast-merge",
                daemon=True,
            ),
            threading.Thread(
                target=self._build_signal_bitmaps, name="seqfast-signals", daemon=True
            ),
        ]
        for worker in self._workers:
            worker.start()

    def _open_segments(self) -> list[_Segment]:
        resolve_rewrites(self.layout.segments_dir)  # see "retention and deletion" below
        found: list[tuple[int, int, Path]] = []
        for entry in self.layout.segments_dir.iterdir():
            if entry.name.endswith(TEMP_SUFFIX):
                entry.unlink()  # a segment whose writing was interrupted; its data is in the log
                continue
            rng = parse_segment_name(entry.name)
            if rng is not None:
                found.append((rng[0], rng[1], entry))
        found.sort()
        # A merge publishes its output before deleting its inputs: drop inputs left behind.
        kept: list[tuple[int, int, Path]] = []
        for lo, hi, entry in found:
            if any(klo <= lo and hi <= khi for klo, khi, _ in kept):
                entry.unlink()
                continue
            while kept and lo <= kept[-1][0] and kept[-1][1] <= hi:
                kept.pop()[2].unlink()
            if kept and lo <= kept[-1][1]:
                raise SeqfastError(
                    f"segments {kept[-1][2].name} and {entry.name} overlap; the data directory "
                    "was changed by something other than seqfast"
                )
            kept.append((lo, hi, entry))
        segments = []
        for lo, hi, entry in kept:
            try:
                segments.append(_Segment(lo, hi, entry, SegmentReader(entry), None))
            except CorruptSegment as exc:
                segments.append(_Segment(lo, hi, entry, None, exc))
        return segments

    def _decode_record(self, payload: bytes, lsn: int) -> Batch:
        if len(payload) < _PAYLOAD_HEADER.size:
            raise CorruptLog(str(self.layout.wal_dir), 0, f"record {lsn} is too short")
        version, first_seq = _PAYLOAD_HEADER.unpack_from(payload)
        offset = _PAYLOAD_HEADER.size
        settings = KeySettings()
        if version == _SETTINGS_PAYLOAD:
            (length,) = _SETTINGS_LENGTH.unpack_from(payload, offset)
            offset += _SETTINGS_LENGTH.size
            settings = KeySettings.from_json(payload[offset : offset + length])
            offset += length
        elif version != _PLAIN_PAYLOAD:
            raise CorruptLog(str(self.layout.wal_dir), 0, f"record {lsn} has version {version}")
        clef = zstandard.ZstdDecompressor().decompress(payload[offset:])
        # The batch was accepted under the limits of its day: replay it whatever they are now.
        batch = apply(shred(clef, max_event_bytes=1 << 62), settings)
        batch.seq += first_seq
        return batch

    # -- writing -------------------------------------------------------------------------------

    def ingest_clef(
        self,
        payload: bytes,
        settings: KeySettings | None = None,
        *,
        may_commit: Callable[[], bool] | None = None,
    ) -> int:
        """Commits newline-delimited CLEF; returns the number of events stored, once durable.

        Raises InvalidEvents (nothing stored) when any line is invalid.  `settings` (an API
        key's minimum level and applied properties) are applied to the batch, and recorded with
        it in the commit log so that recovery applies them again.  `may_commit` is asked under
        the log's lock, right before the batch is appended (after any wait for the flusher):
        if it says no, CommitRefused is raised and nothing is stored.  A cluster node passes
        "do I still lead?", so that nothing enters its log once its leadership has lapsed.
        """
        batch = shred(payload, self.options.max_event_bytes)
        if settings:
            batch = apply(batch, settings)
        if batch.n == 0:
            return 0
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(level=self.options.log_compression_level)
            self._local.compressor = compressor
        frame = compressor.compress(payload)
        with self._changed:
            self._check_open()
            while self._unflushed_rows() >= self.options.max_unflushed_rows:
                self._changed.wait()  # back-pressure: let the flusher catch up
                self._check_open()
            if may_commit is not None and not may_commit():
                raise CommitRefused("the commit was refused: this node may not commit now")
            lsn = self._next_lsn
            first_seq = self._next_seq
            self._next_lsn += 1
            self._next_seq += batch.n
            if settings:
                encoded = settings.to_json()
                record = b"".join(
                    (
                        _PAYLOAD_HEADER.pack(_SETTINGS_PAYLOAD, first_seq),
                        _SETTINGS_LENGTH.pack(len(encoded)),
                        encoded,
                        frame,
                    )
                )
            else:
                record = _PAYLOAD_HEADER.pack(_PLAIN_PAYLOAD, first_seq) + frame
            # Appending under the lock keeps the log in lsn order; the fsync happens outside it.
            token = self._log.append(LOCAL_EPOCH, lsn, record)
            self._pending[lsn] = batch
        try:
            self._log.sync(token)
        except BaseException as exc:
            self._fail(exc)
            raise
        batch.seq += first_seq
        with self._changed:
            # Publish in lsn order, so that the head is always a contiguous run of the log.
            while self._published_lsn + 1 in self._pending:
                self._published_lsn += 1
                part = _HeadPart(self._published_lsn, self._pending.pop(self._published_lsn))
                self._head = (*self._head, part)
            self._changed.notify_all()
        self._query_state.notify(batch)
        return batch.n

    def ingest(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Commits CLEF-shaped dicts (see `ingest_clef`); line numbers in errors count events."""
        return self.ingest_clef(encode_events(events))

    def _unflushed_rows(self) -> int:
        return sum(p.batch.n for p in self._head) + sum(p.batch.n for p in self._flushing)

    def _check_open(self) -> None:
        if self._failure is not None:
            raise SeqfastError(f"the store failed and must be reopened: {self._failure}")
        if self._closed:
            raise SeqfastError("the store is closed")

    def _fail(self, exc: BaseException) -> None:
        with self._changed:
            if self._failure is None:
                self._failure = exc
            self._changed.notify_all()

    # -- background: flush and merge -----------------------------------------------------------

    def _background(self, due: Callable[[], object], work: Callable[[], None]) -> None:
        """Runs `work` whenever `due()` says so (checked under the lock), until close."""
        try:
            while True:
                with self._changed:
                    while not (self._closed or self._failure is not None or due()):
                        self._changed.wait()
                    if self._closed or self._failure is not None:
                        return
                work()
        except BaseException as exc:  # a failed flush or merge must not go unnoticed
            self._fail(exc)

    def _flush_due(self) -> bool:
        return sum(p.batch.n for p in self._head) >= self.options.flush_rows

    def _flush(self) -> None:
        with self._changed:
            parts = self._head
            if not parts:
                return
            self._flushing = parts
            self._head = ()
        hi = parts[-1].lsn
        segment = self._write(parts[0].lsn, hi, [p.batch for p in parts])
        with self._changed:
            self._segments = [*self._segments, segment]
            self._flushing = ()
            self._changed.notify_all()
        self._log.discard_through(hi)

    def _write(self, lo: int, hi: int, parts: list[Batch]) -> _Segment:
        """Writes the events of `parts` (log records lo..hi) as one durable segment."""
        path = self.layout.segment_path(lo, hi)
        write_segment(
            path,
            batches.sort_by_id(batches.concat(parts)),
            block_rows=self.options.block_rows,
            level=self.options.segment_compression_level,
        )
        return _Segment(lo, hi, path, SegmentReader(path), None)

    def _merge_candidates(self) -> list[int]:
        sizes = [
            SegmentSize(s.lo_lsn, s.hi_lsn, s.reader.rows if s.reader is not None else 1 << 62)
            for s in self._segments
        ]
        return self.options.merge_policy.choose(sizes)

    def _merge_once(self) -> None:
        with self._changed:
            chosen = [self._segments[i] for i in self._merge_candidates()]
        if not chosen:
            return
        lo, hi = chosen[0].lo_lsn, chosen[-1].hi_lsn
        path = self.layout.segment_path(lo, hi)
        # Block by block: the merge holds one block of each input, whatever their sizes.
        merge_segments(
            [s.open_reader() for s in chosen],
            path,
            block_rows=self.options.block_rows,
            level=self.options.segment_compression_level,
        )
        segment = _Segment(lo, hi, path, SegmentReader(path), None)
        for old in chosen:
            self._signals.forget(old.lo_lsn, old.hi_lsn, old.reader)
        with self._changed:
            kept = [s for s in self._segments if s not in chosen]
            self._segments = sorted([*kept, segment], key=lambda s: s.lo_lsn)
            self._changed.notify_all()
        for old in chosen:
            # Readers that took a snapshot before the swap may still be reading the old file:
            # its reader is not closed here but when the last snapshot lets go of it.
            old.path.unlink()
        fsync_directory(self.layout.segments_dir)

    def flush(self) -> None:
        """Writes everything in the head into a segment now (normally done in the background)."""
        with self._changed:
            self._check_open()
            while self._flushing:
                self._changed.wait()
        self._flush()

    def wait_idle(self) -> None:
        """Returns once no flush or merge is due or running (for tests and benchmarks)."""
        with self._changed:
            while (
                self._failure is None
                and not self._closed
                and (self._flushing or self._flush_due() or self._merge_candidates())
            ):
                self._changed.wait()
            self._check_open()

    # -- reading -------------------------------------------------------------------------------

    def _snapshot(self) -> tuple[list[_Segment], list[Batch]]:
        with self._lock:
            head = [p.batch for p in (*self._flushing, *self._head)]
            return list(self._segments), head

    def events(
        self,
        start: str | int | None = None,
        end: str | int | None = None,
        after_id: str | None = None,
        limit: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """Events newest first, as CLEF-shaped dicts with `@id`.

        `start` (inclusive) and `end` (exclusive) are timestamps (text, or ticks since 1970);
        `after_id` continues a listing after the event with that id (older ones follow).
        """
        lo_ts = _ticks(start) if start is not None else None
        hi_ts = _ticks(end) if end is not None else None
        cursor = parse_event_id(after_id) if after_id is not None else None
        segments, head = self._snapshot()
        if limit <= 0:
            return iter(())
        # Candidates (ts, seq, source, block, row) from every source, then the newest `limit`.
        keys_ts: list[np.ndarray] = []
        keys_seq: list[np.ndarray] = []
        refs: list[tuple[Any, int, np.ndarray]] = []
        for seg in segments:
            reader = seg.open_reader()
            if reader.rows == 0:
                continue
            if lo_ts is not None and reader.max_ts < lo_ts:
                continue
            if hi_ts is not None and reader.min_ts >= hi_ts:
                continue
            found = 0
            for block_index in range(len(reader.blocks) - 1, -1, -1):
                block = reader.blocks[block_index]
                if lo_ts is not None and block.max_ts < lo_ts:
                    break  # blocks are in time order: every earlier one is older still
                if hi_ts is not None and block.min_ts >= hi_ts:
                    continue
                if cursor is not None and block.min_ts > cursor[0]:
                    continue
                ts, seq = reader.read_ts_seq(block_index)
                rows = _select(ts, seq, lo_ts, hi_ts, cursor)
                if rows.size:
                    rows = rows[-limit:]
                    keys_ts.append(ts[rows])
                    keys_seq.append(seq[rows])
                    refs.append((reader, block_index, rows))
                    found += rows.size
                    if found >= limit:
                        break
        for batch in head:
            rows = _select(batch.ts, batch.seq, lo_ts, hi_ts, cursor)
            if rows.size:
                keys_ts.append(batch.ts[rows])
                keys_seq.append(batch.seq[rows])
                refs.append((batch, -1, rows))
        if not refs:
            return iter(())
        all_ts = np.concatenate(keys_ts)
        all_seq = np.concatenate(keys_seq)
        source = np.concatenate([np.full(len(r[2]), i, dtype=np.int64) for i, r in enumerate(refs)])
        position = np.concatenate([np.arange(len(r[2])) for r in refs])
        order = np.lexsort((all_seq, all_ts))[::-1][:limit]
        results: list[tuple[int, int, dict[str, Any]]] = []
        for ref_index in np.unique(source[order]):
            picked = order[source[order] == ref_index]
            owner, block_index, rows = refs[ref_index]
            rows = rows[position[picked]]
            if block_index < 0:
                data = batches.take(owner, rows)
            else:
                data = batches.take(owner.read_block(block_index), rows)
            for ts_value, seq_value, event in zip(
                data.ts.tolist(), data.seq.tolist(), batches.to_events(data), strict=True
            ):
                results.append((ts_value, seq_value, event))
        results.sort(key=lambda r: (r[0], r[1]), reverse=True)
        return iter([r[2] for r in results])

    def get(self, event_id: str) -> dict[str, Any] | None:
        """The event with this id, or None."""
        ts, seq = parse_event_id(event_id)
        segments, head = self._snapshot()
        for batch in head:
            rows = np.flatnonzero((batch.seq == seq) & (batch.ts == ts))
            if rows.size:
                return batches.to_events(batches.take(batch, rows[:1]))[0]
        unreadable: CorruptSegment | None = None
        for seg in segments:
            if seg.reader is None:
                unreadable = unreadable or seg.error
                continue
            reader = seg.reader
            if not reader.rows or not (reader.min_seq <= seq <= reader.max_seq):
                continue
            for block_index, block in enumerate(reader.blocks):
                if not (block.min_ts <= ts <= block.max_ts):
                    continue
                block_ts, block_seq = reader.read_ts_seq(block_index)
                rows = np.flatnonzero((block_seq == seq) & (block_ts == ts))
                if rows.size:
                    data = batches.take(reader.read_block(block_index), rows[:1])
                    return batches.to_events(data)[0]
        if unreadable is not None:
            raise unreadable
        return None

    def stats(self) -> dict[str, Any]:
        """Events, segments, bytes on disk (segments and commit log) and bytes per event."""
        segments, head = self._snapshot()
        segment_rows = sum(s.reader.rows for s in segments if s.reader is not None)
        head_rows = sum(b.n for b in head)
        segment_bytes = sum(s.path.stat().st_size for s in segments if s.path.exists())
        log_bytes = self._log.size_bytes
        events = segment_rows + head_rows
        total = segment_bytes + log_bytes
        return {
            "events": events,
            "segments": len(segments),
            "corrupt_segments": [str(s.path) for s in segments if s.reader is None],
            "head_events": head_rows,
            "segment_bytes": segment_bytes,
            "log_bytes": log_bytes,
            "bytes_on_disk": total,
            "bytes_per_event": total / events if events else 0.0,
        }

    # --- retention and deletion ---------------------------------------------------------------
    # Events are removed by replacing the segments that hold them (seqfast/storage/rewrite.py):
    # dropped whole when every row goes, rewritten otherwise.  Rows still in the head are first
    # flushed into a segment, so that a removal never depends on the commit log forgetting them;
    # the crash-safety protocol is in native/FORMAT.md, "Removing events".

    def delete_events(
        self,
        filter: str | None = None,
        start: str | int | None = None,
        end: str | int | None = None,
        *,
        extra_filters: tuple[str, ...] | list[str] = (),
    ) -> int:
        """Removes the events with `start <= timestamp < end` (None: unbounded) that match
        `filter` and every text of `extra_filters` (a signal's filters); returns how many.

        Durable on return: a restart never brings them back.  Raises QuerySyntaxError or
        QueryError for a filter that cannot be evaluated, before anything is removed.  Each
        segment is replaced atomically; if the process dies part-way, some segments may still
        hold matching events (running the deletion again removes them), but no other event is
        ever lost.
        """
        filters = tuple(f for f in (filter, *extra_filters) if f is not None and f.strip())
        cut = Cut(
            _ticks(start) if start is not None else None,
            _ticks(end) if end is not None else None,
            filters,
        )
        return self._remove([cut], lambda segs, _fixed: plan_cuts(segs, [cut])).events_removed

    def apply_retention(
        self, policies: tuple[RetentionRule, ...] | list[RetentionRule], now: int | None = None
    ) -> RetentionReport:
        """Applies retention rules (`seqfast.storage.retention`) at `now` (ticks since 1970;
        the current time by default): removes the events past each age limit (matching the
        rule's filters) and then drops the oldest segments while the store is larger than the
        smallest size limit.  Durable and crash-safe like `delete_events`."""
        at = time.time_ns() // 100 if now is None else now
        rules = tuple(policies)
        return self._remove(
            age_cuts(rules, at),
            lambda segs, fixed: retention_plan(segs, rules, at, fixed_bytes=fixed),
        )

    def _remove(
        self,
        cuts: list[Cut] | tuple[Cut, ...],
        planner: Callable[[list[SegmentInfo], int], RetentionPlan],
    ) -> RetentionReport:
        self._check_open()
        matcher = RowMatcher(cuts)  # a bad filter fails here, before anything changes
        _segments, head = self._snapshot()
        if any(matcher.removed(batch, cuts).any() for batch in head if batch.n):
            self._flush_all()
        with self._rewriting:
            return self._remove_from_segments(cuts, planner, matcher)

    def _flush_all(self) -> None:
        """Flushes the head, and waits for a flush already running: every event in the head
        when this was called is then in a published segment."""
        self.flush()
        with self._changed:
            while self._flushing and self._failure is None:
                self._changed.wait()
            self._check_open()

    def _merge_guarded(self) -> None:
        with self._rewriting:
            self._merge_once()

    def _remove_from_segments(
        self,
        cuts: list[Cut] | tuple[Cut, ...],
        planner: Callable[[list[SegmentInfo], int], RetentionPlan],
        matcher: RowMatcher,
    ) -> RetentionReport:
        with self._lock:
            segments = [s for s in self._segments if s.reader is not None]
        by_key = {s.lo_lsn: s for s in segments}
        infos = [
            SegmentInfo(s.lo_lsn, r.rows, r.min_ts, r.max_ts, r.size_bytes)
            for s in segments
            if (r := s.reader) is not None
        ]
        log_bytes = self._log.size_bytes
        bytes_before = log_bytes + sum(i.size_bytes for i in infos)
        chosen = planner(infos, log_bytes)
        dropped = rewritten = removed = 0
        for key in chosen.drop:
            removed += by_key[key].open_reader().rows
            self._drop_segment(by_key[key])
            dropped += 1
        for key, seg_cuts in chosen.cuts.items():
            seg = by_key[key]
            reader = seg.open_reader()
            masks = block_removals(reader, seg_cuts, matcher)
            count = sum(int(m.sum()) for m in masks if m is not None)
            if count == 0:
                continue
            removed += count
            if count == reader.rows:
                self._drop_segment(seg)
                dropped += 1
                continue
            path = rewrite_segment(
                reader,
                masks,
                block_rows=self.options.block_rows,
                level=self.options.segment_compression_level,
            )
            self._swap_segment(seg, _reopened(seg, path))
            rewritten += 1
        self._prune_empty_segments()
        with self._lock:
            after = self._log.size_bytes + sum(
                s.reader.size_bytes for s in self._segments if s.reader is not None
            )
        return RetentionReport(dropped, rewritten, removed, bytes_before, after)

    def _drop_segment(self, seg: _Segment) -> None:
        with self._lock:
            newest = seg.hi_lsn >= max(s.hi_lsn for s in self._segments)
        empty = drop_segment(
            seg.path,
            keep_place=newest,
            block_rows=self.options.block_rows,
            level=self.options.segment_compression_level,
        )
        self._swap_segment(seg, None if empty is None else _reopened(seg, empty))

    def _prune_empty_segments(self) -> None:
        """Unlinks the empty segments left by drops once a newer segment covers later log
        records (only the newest one keeps the store's place in the log)."""
        with self._lock:
            if not self._segments:
                return
            top = max(s.hi_lsn for s in self._segments)
            empty = [
                s
                for s in self._segments
                if s.reader is not None and s.reader.rows == 0 and s.hi_lsn < top
            ]
        for seg in empty:
            seg.path.unlink()
            self._swap_segment(seg, None)
        if empty:
            fsync_directory(self.layout.segments_dir)

    def _swap_segment(self, old: _Segment, new: _Segment | None) -> None:
        # Readers that took a snapshot before the swap keep the old reader (and its file, even
        # unlinked or renamed over) until they let go of it.
        self._signals.forget(old.lo_lsn, old.hi_lsn, old.reader)
        with self._changed:
            if new is None:
                self._segments = [s for s in self._segments if s is not old]
            else:
                self._segments = [new if s is old else s for s in self._segments]
            self._changed.notify_all()

    # -- searches, queries and live tail --------------------------------------------------------

    def search(
        self,
        filter: str | None,
        *,
        start: str | int | None = None,
        end: str | int | None = None,
        after_id: str | None = None,
        start_at_id: str | None = None,
        limit: int = 30,
        timeout: float | None = None,
        extra_filters: Sequence[str] = (),
    ) -> SearchResult:
        """Events matching `filter` (Seq's filter language; None or blank: all) and every one
        of `extra_filters`, newest first, at most `limit` of them.

        `start` (inclusive) and `end` (exclusive) bound timestamps (text, or ticks since
        1970); `after_id` continues after that event, `start_at_id` starts at it.  Raises
        QuerySyntaxError, QueryError, or QueryTimeout past `timeout` seconds.
        """
        rng = self._range(start, end, after_id, start_at_id)
        with self._signals.reading():
            return execute.search(
                self._block_sources(),
                [filter, *extra_filters],
                rng=rng,
                limit=limit,
                timeout=timeout,
                saved=self._signals.saved(),
            )

    def query(
        self,
        sql: str,
        *,
        start: str | int | None = None,
        end: str | int | None = None,
        timeout: float | None = None,
        extra_filters: Sequence[str] = (),
    ) -> QueryResult:
        """Runs a `select ... from stream ...` query over events in [start, end) that also
        match every one of `extra_filters` (a signal's filters: `and`ed to its `where`)."""
        rng = self._range(start, end, None, None)
        state = self._query_state
        with self._signals.reading():
            return execute.query(
                self._block_sources(),
                sql,
                rng=rng,
                start=rng.lo,
                timeout=timeout,
                map_fn=state.map,
                workers=state.workers,
                key_table=state.key_table(),
                extra_filters=extra_filters,
                saved=self._signals.saved(),
            )

    def add_listener(self, fn: Callable[[Batch], None]) -> Callable[[], None]:
        """Calls `fn(batch)` with every batch committed from now on, once it is durable, on
        the committing thread (so `fn` must be quick); returns a function that removes it."""
        return self._query_state.add_listener(fn)

    def _range(
        self,
        start: str | int | None,
        end: str | int | None,
        after_id: str | None,
        start_at_id: str | None,
    ) -> Range:
        if after_id is not None and start_at_id is not None:
            raise ValueError("give after_id or start_at_id, not both")
        cursor_text = after_id if after_id is not None else start_at_id
        return Range(
            lo=_ticks(start) if start is not None else None,
            hi=_ticks(end) if end is not None else None,
            cursor=parse_event_id(cursor_text) if cursor_text is not None else None,
            inclusive=start_at_id is not None,
        )

    def _block_sources(self) -> list[BlockSource]:
        segments, head = self._snapshot()
        sources: list[BlockSource] = []
        for seg in segments:
            sources.extend(
                self._query_state.segment_blocks(seg.open_reader(), self._signals.lookup)
            )
        sources.extend(self._query_state.head_blocks(head, self.options.block_rows))
        return sources

    # -- saved filters' bitmaps (seqfast/storage/signal_index.py) ------------------------------

    def set_saved_filters(self, filters: Mapping[str, Sequence[str]]) -> None:
        """Tells the store the saved filters (signal id -> its filters, all of which must
        match), so that it builds their bitmaps in the background for searches and queries
        to use; bitmaps of filters no longer given are removed.  A filter that cannot be run
        or that reads the clock gets none."""
        saved: list[execute.SavedFilter] = []
        for name, texts in filters.items():
            try:
                found = execute.saved_filter(texts)
            except ValueError as exc:  # QuerySyntaxError, QueryError
                _listener_log.warning("the saved filter %s gets no bitmaps: %s", name, exc)
                continue
            if found is not None:
                saved.append(found)
        self._signals.set_saved(saved)

    def wait_signal_bitmaps(self, timeout: float | None = None) -> bool:
        """Waits until every saved filter has bitmaps for every segment (or cannot have
        any); False if `timeout` seconds pass first (for tests and benchmarks)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._signals.complete(self._live_segments()):
            self._check_open()
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _live_segments(self) -> list[LiveSegment]:
        with self._lock:
            segments = self._segments
        return [LiveSegment(s.lo_lsn, s.hi_lsn, s.reader) for s in segments if s.reader is not None]

    def _build_signal_bitmaps(self) -> None:
        """The bitmap builder's thread: below the others in priority, and never holding the
        store's lock for more than a snapshot, so that it never holds up a commit."""
        lower_priority()
        self._signals.run(self._live_segments)

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Flushes the head into a segment, stops the background work and releases the lock."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._changed.notify_all()
        self._signals.close()
        for worker in self._workers:
            worker.join()
        try:
            if self._failure is None and self._head:
                self._flush()
        finally:
            self._log.close()
            for seg in self._segments:
                if seg.reader is not None:
                    seg.reader.close()
            self._query_state.close()
            os.close(self._lock_fd)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reopened(seg: _Segment, path: Path) -> _Segment:
    """`seg` replaced by the file at `path` (a rewrite of it: the same lsn range)."""
    return _Segment(seg.lo_lsn, seg.hi_lsn, path, SegmentReader(path), None)


def _select(
    ts: np.ndarray,
    seq: np.ndarray,
    lo_ts: int | None,
    hi_ts: int | None,
    cursor: tuple[int, int] | None,
) -> np.ndarray:
    """Row numbers (ascending) of the rows inside the range and strictly before the cursor."""
    mask = np.ones(len(ts), dtype=bool)
    if lo_ts is not None:
        mask &= ts >= lo_ts
    if hi_ts is not None:
        mask &= ts < hi_ts
    if cursor is not None:
        c_ts, c_seq = cursor
        mask &= (ts < c_ts) | ((ts == c_ts) & (seq < c_seq))
    return np.flatnonzero(mask)


def _ticks(value: str | int) -> int:
    if isinstance(value, int):
        return value
    from seqfast._native import parse_timestamp_text

    ticks = parse_timestamp_text(value)
    if ticks is None:
        raise ValueError(f"{value!r} is not a valid timestamp")
    return int(ticks)


def _lock_directory(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreLocked(
            f"the data directory {path.parent} is in use by another process"
        ) from None
    return fd


def open(path: str | os.PathLike[str], **options: Any) -> Store:
    """Opens (creating if needed) the store in directory `path`; see StoreOptions for options."""
    return Store(path, StoreOptions(**options))


# --- searches and queries: the cache, the worker threads, the head in chunks, listeners ------


_listener_log = logging.getLogger("seqfast.store")
# Distinct group keys numbered for queries before the table starts afresh (bounds its memory).
_MAX_TABLE_KEYS = 2_000_000


class _QueryState:
    """What a store keeps for reading: the column cache, the query threads, the head's
    batches concatenated into block-sized chunks (reused while the head keeps them), the
    per-segment block descriptions and the live-tail listeners."""

    def __init__(self, options: StoreOptions) -> None:
        self.cache = ColumnCache(options.query_cache_bytes)
        self.workers = max(1, options.query_threads)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._chunks: dict[tuple[int, ...], tuple[tuple[Batch, ...], BlockSource]] = {}
        self._segments: dict[tuple[str, int, int], tuple[SegmentReader, list[BlockSource]]] = {}
        self._listeners: tuple[Callable[[Batch], None], ...] = ()
        self._keys: execute.KeyTable | None = None

    def key_table(self) -> execute.KeyTable:
        """The group-key table, replaced by an empty one once it holds too many keys (a
        query holds on to the table it started with)."""
        with self._lock:
            if self._keys is None or len(self._keys) > _MAX_TABLE_KEYS:
                self._keys = execute.KeyTable()
            return self._keys

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="seqfast-query")
            pool = self._pool
        return list(pool.map(fn, items))

    def segment_blocks(
        self,
        reader: SegmentReader,
        bitmap: Callable[[tuple[str, int, int], int, str], np.ndarray | None] | None = None,
    ) -> list[BlockSource]:
        key = reader.identity
        found = self._segments.get(key)
        if found is not None and found[0] is reader:
            return found[1]
        blocks = [
            BlockSource(
                rows=meta.rows,
                min_ts=meta.min_ts,
                max_ts=meta.max_ts,
                min_seq=meta.min_seq,
                max_seq=meta.max_seq,
                read=_bind(self.cache.read_block, reader, meta.index),
                stats=meta.columns,
                probe=_bind(reader.might_contain_token, meta.index),
                strings=_bind(_block_strings, self.cache, reader, meta.index),
                memo=_bind(self.cache.memo, reader, meta.index),
                bitmap=None if bitmap is None else _bind(bitmap, key, meta.index),
            )
            for meta in reader.blocks
        ]
        with self._lock:
            if len(self._segments) > 4096:
                self._segments.clear()  # segments come and go with merges: start afresh
            self._segments[key] = (reader, blocks)
        return blocks

    def head_blocks(self, head: Sequence[Batch], block_rows: int) -> list[BlockSource]:
        """The head as chunks of about `block_rows` rows, each a BlockSource."""
        runs: list[tuple[Batch, ...]] = []
        current: list[Batch] = []
        rows = 0
        for batch in head:
            if batch.n == 0:
                continue
            current.append(batch)
            rows += batch.n
            if rows >= block_rows:
                runs.append(tuple(current))
                current, rows = [], 0
        if current:
            runs.append(tuple(current))
        with self._lock:
            known = self._chunks
        out: list[BlockSource] = []
        kept: dict[tuple[int, ...], tuple[tuple[Batch, ...], BlockSource]] = {}
        for run in runs:
            key = tuple(id(b) for b in run)
            entry = known.get(key)
            if entry is None:
                entry = (run, _head_block(batches.concat(run)))
            kept[key] = entry
            out.append(entry[1])
        with self._lock:
            # Holding the batches keeps their ids from being reused while they key the map.
            self._chunks = kept
        return out

    def add_listener(self, fn: Callable[[Batch], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners = (*self._listeners, fn)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(f for f in self._listeners if f is not fn)

        return remove

    def notify(self, batch: Batch) -> None:
        for fn in self._listeners:
            try:
                fn(batch)
            except Exception:  # a listener's bug must not fail an acknowledged commit
                _listener_log.exception("a live-tail listener failed")

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self._chunks = {}
            self._segments = {}
        if pool is not None:
            pool.shutdown(wait=True)
        self.cache.clear()


def _head_block(batch: Batch) -> BlockSource:
    def read(columns: Collection[str] | None) -> Batch:
        if columns is None:
            return batch
        return Batch(
            n=batch.n,
            ts=batch.ts,
            seq=batch.seq,
            columns={k: v for k, v in batch.columns.items() if k in columns},
        )

    derived: dict[tuple[Any, ...], Any] = {}

    def memo(key: tuple[Any, ...], compute: Callable[[], Any], size: Callable[[Any], int]) -> Any:
        # Lives as long as the chunk does; a few entries at most (the columns queried).
        if key not in derived:
            if len(derived) >= 64:
                derived.clear()
            derived[key] = compute()
        return derived[key]

    return BlockSource(
        rows=batch.n,
        min_ts=int(batch.ts.min()),
        max_ts=int(batch.ts.max()),
        min_seq=int(batch.seq.min()),
        max_seq=int(batch.seq.max()),
        read=read,
        memo=memo,
    )


def _block_strings(
    cache: ColumnCache, reader: SegmentReader, block: int, name: str
) -> tuple[np.ndarray, bytes] | None:
    """A block column's strings alone (see `segment.read_strings`), kept in the cache like
    a column."""

    def size(found: tuple[np.ndarray, bytes] | None) -> int:
        return 0 if found is None else int(found[0].nbytes) + len(found[1])

    found: tuple[np.ndarray, bytes] | None = cache.memo(
        reader, block, ("strings", name), lambda: read_strings(reader, block, name), size
    )
    return found
