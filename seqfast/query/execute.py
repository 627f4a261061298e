"""Running searches and `select` queries over blocks of events.

The store hands this module a list of `BlockSource`s — blocks of segments (with statistics,
bloom probes and cached column reads) and chunks of the in-memory head — and a `map` function
that runs tasks on its worker threads.  Nothing here opens files or starts threads, so the same
code runs a query over one node's blocks or over a share of a cluster's.

Search (`search`): newest first.  Blocks are visited in descending order of their newest
event; a block is read only if its time range meets the range and the cursor and the planner
(`plan.may_match`) cannot rule it out, and the walk stops as soon as `limit` matches are found
and no block left can hold a newer one.  So "the latest 50 errors" reads the last block or two.

Query (`query`): the `where` filter selects rows per block; each task folds its blocks into a
partial state (`Partial`: the groups it has seen and one mergeable aggregate state per
aggregate), partial states are merged, and `exec_final` computes columns, `having`, order and
limit per group.  When every column is a bare aggregate or group key and there is no `having`
(the common case), groups are ordered with numpy instead (integer ranks of keys and numeric
results) and only the `limit` rows returned are built.
`group by time(d)` adds the time slice (`d` wide, counted from `start` when given, else from
0001-01-01) to every group's key and returns slices as Seq's `/api/data` does.
A `ci` grouping shows each group as its least spelling (`aggregates.order_key`), whatever
order the blocks are read in.
A query without aggregates or grouping returns the newest `limit` matching rows, newest first.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import math
import operator
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

from seqfast import _native
from seqfast.query import aggregates as agg
from seqfast.query import ast, filter_reads, plan, vector
from seqfast.query.exec_final import GroupEvaluator, to_json
from seqfast.query.gc_pause import gc_paused
from seqfast.query.parse import parse_filter, parse_query
from seqfast.query.values import UNDEFINED, QueryError, Values, fold_deep
from seqfast.storage import batch as batches
from seqfast.storage.batch import Batch
from seqfast.storage.ids import UNIX_EPOCH_DOTNET_TICKS, format_ticks
from seqfast.storage.segment import ColumnStats

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
_T = TypeVar("_T")
_R = TypeVar("_R")
MapFn = Callable[[Callable[[_T], _R], Sequence[_T]], list[_R]]

# Blocks per query task: enough to amortise a task, few enough to balance two cores.
_TASKS_PER_WORKER: Final = 2


class QueryTimeout(Exception):
    """The search or query ran past its time limit."""


@dataclass
class SearchResult:
    events: list[dict[str, Any]]  # CLEF-shaped, with "@id", newest first
    scanned: int  # events examined
    # Pass as after_id for the next page; None when fewer than `limit` events were found.
    next_id: str | None


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    # For `group by time(..)`: [{"Time": iso8601, "Rows": [[...], ...]}], the rows without
    # the time column (which `columns` and `rows` start with).
    slices: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class BlockSource:
    """One block of events: what is known about it without reading it, and how to read it."""

    rows: int
    min_ts: int
    max_ts: int
    min_seq: int
    max_seq: int
    read: Callable[[Collection[str] | None], Batch]  # ts, seq and the named columns
    stats: Mapping[str, ColumnStats] | None = None  # None: unknown (the head)
    probe: plan.Probe | None = None
    # strings(column): the column's strings (offsets, data; a dictionary's distinct values),
    # read without the rest of it; None when it has none.
    strings: Callable[[str], tuple[Int64Array, bytes] | None] | None = None
    # memo(key, compute, size): a value derived from the whole block (a column's Values, its
    # group codes), computed once and kept while the block's columns are cached.
    memo: Callable[[tuple[Any, ...], Callable[[], Any], Callable[[Any], int]], Any] | None = None
    # bitmap(key): the rows of the block that the saved filter `key` (`saved_filter`) selects,
    # as packed bits (np.packbits), or None when there are none (never for the head).
    bitmap: Callable[[str], npt.NDArray[np.uint8] | None] | None = None
    # Set by `_with_bitmaps` for one search or query: (its filter, the packed bits of the part
    # of it that saved bitmaps answer, the rest of it or None).
    answered: tuple[ast.Node, npt.NDArray[np.uint8], ast.Node | None] | None = None


@dataclass(frozen=True)
class Range:
    """Rows wanted: ts in [lo, hi) and (ts, seq) before (or at) a cursor."""

    lo: int | None = None
    hi: int | None = None
    cursor: tuple[int, int] | None = None
    inclusive: bool = False  # the cursor row itself is wanted (start_at_id)

    def overlaps(self, b: BlockSource) -> bool:
        if self.lo is not None and b.max_ts < self.lo:
            return False
        if self.hi is not None and b.min_ts >= self.hi:
            return False
        if self.cursor is not None:
            # No row's key is below (min_ts, min_seq).
            first = (b.min_ts, b.min_seq)
            if self.inclusive:
                return first <= self.cursor
            return first < self.cursor
        return True

    def covers(self, b: BlockSource) -> bool:
        """Every row of the block is in range (so its row count is the count)."""
        return (
            self.cursor is None
            and (self.lo is None or b.min_ts >= self.lo)
            and (self.hi is None or b.max_ts < self.hi)
        )

    def mask(self, ts: Int64Array, seq: Int64Array) -> BoolArray | None:
        """Rows in range; None when all are."""
        mask: BoolArray | None = None

        def both(m: BoolArray) -> None:
            nonlocal mask
            mask = m if mask is None else mask & m

        if self.lo is not None:
            both(ts >= self.lo)
        if self.hi is not None:
            both(ts < self.hi)
        if self.cursor is not None:
            c_ts, c_seq = self.cursor
            before = (seq <= c_seq) if self.inclusive else (seq < c_seq)
            both((ts < c_ts) | ((ts == c_ts) & before))
        return mask


class _Deadline:
    def __init__(self, timeout: float | None) -> None:
        self.at = None if timeout is None else time.monotonic() + timeout

    def check(self) -> None:
        if self.at is not None and time.monotonic() > self.at:
            raise QueryTimeout("the query ran past its time limit")


def _serial_map(fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    return [fn(item) for item in items]


def _and(filters: Sequence[ast.Filter]) -> ast.Filter:
    exprs = [f.expr for f in filters if f.expr is not None]
    if not exprs:
        return ast.Filter(None)
    if len(exprs) == 1:
        return ast.Filter(exprs[0])
    return ast.Filter(ast.Logical("and", tuple(exprs)))


def _needed(exprs: Iterable[ast.Node | None]) -> set[str] | None:
    names: set[str] = set()
    for expr in exprs:
        if expr is None:
            continue
        found = vector.columns_needed(expr)
        if found is None:
            return None
        names |= found
    return names


def _candidates(
    blocks: Sequence[BlockSource], rng: Range, prune: plan.Prune | None
) -> list[BlockSource]:
    return [
        b
        for b in blocks
        if b.rows
        and rng.overlaps(b)
        and plan.may_match(prune, b.stats, b.probe, b.min_ts, b.max_ts)
    ]


def _matching_rows(
    block: BlockSource,
    expr: ast.Node | None,
    filter_columns: set[str] | None,
    rng: Range,
    columns: set[str] | None,
) -> tuple[Batch, Int64Array]:
    batch, rows = _selected(block, expr, filter_columns, rng, columns)
    return batch, np.arange(batch.n, dtype=np.int64) if rows is None else rows


def _selected(
    block: BlockSource,
    expr: ast.Node | None,
    filter_columns: set[str] | None,
    rng: Range,
    columns: set[str] | None,
) -> tuple[Batch, Int64Array | None]:
    """The block with `columns` (None: all), and the rows in range that `expr` selects
    (None: every row).  The filter's own columns are read only when its answer for the
    block is not already known."""
    batch = block.read(columns)
    # A block wholly in range needs no per-row check (nor its ts and seq decoded for one).
    mask = None if rng.covers(block) else rng.mask(batch.ts, batch.seq)
    if expr is not None:

        def load() -> Batch:
            return filter_reads.filter_batch(
                block.read, block.stats, block.strings, expr, filter_columns
            )

        selected = _filter_mask(block, load, expr)
        mask = selected if mask is None else mask & selected
    if mask is None:
        return batch, None
    return batch, np.flatnonzero(mask)


def _depends_on_time(expr: ast.Node) -> bool:
    """Whether the value can change while the data does not (`Now()`)."""
    if isinstance(expr, ast.Call) and expr.name == "Now":
        return True
    return any(_depends_on_time(child) for child in ast.children(expr))


def _filter_mask(block: BlockSource, load: Callable[[], Batch], expr: ast.Node) -> BoolArray:
    """Which rows of the whole block `expr` selects.  Blocks never change, so the answer is
    kept with the block (as bits, an eighth of a byte per row) and a repeated filter costs no
    evaluation, as a query condition cache does; filters that read the clock are not kept.
    The part of `expr` that saved bitmaps answer (`block.answered`) is not evaluated at all."""
    answered = block.answered
    if answered is not None and answered[0] is expr:
        _, bits, rest = answered
        known: BoolArray = np.unpackbits(bits, count=block.rows).view(np.bool_)
        if rest is None:
            return known
        columns = _needed([rest])  # the rest's own columns, not those the bits answered

        def load_rest() -> Batch:
            return load() if columns is None else block.read(columns)

        return known & _filter_mask(dataclasses.replace(block, answered=None), load_rest, rest)
    if block.memo is None or _depends_on_time(expr):
        return vector.filter_mask(expr, load())

    def compute() -> npt.NDArray[np.uint8]:
        packed = np.packbits(vector.filter_mask(expr, load()))
        packed.flags.writeable = False
        return packed

    packed: npt.NDArray[np.uint8] = block.memo(
        ("filter", ast.to_source(expr)), compute, lambda p: int(p.nbytes) + 256
    )
    mask: BoolArray = np.unpackbits(packed, count=block.rows).view(np.bool_)
    return mask


# --- saved filters' bitmaps -------------------------------------------------------------------


@dataclass(frozen=True)
class SavedFilter:
    """A saved filter (a signal's filters, all of which must match), whose matches the store
    keeps per segment block as bits.  `key` is a hash of its canonical text, so that an edited
    filter gets new bitmaps; `conjuncts` are its top-level `and` operands: the bits stand in
    for them in any filter that has every one of them among its own."""

    key: str
    expr: ast.Expr
    conjuncts: frozenset[ast.Expr]


def saved_filter(filters: Sequence[str]) -> SavedFilter | None:
    """The saved filter of filter texts (parsed as a search parses them); None when it
    selects every event, or when it reads the clock (its matches change while data does
    not).  Raises QuerySyntaxError or QueryError for a filter that cannot be run."""
    expr = _and([parse_filter(text) for text in filters]).expr
    if expr is None or _depends_on_time(expr):
        return None
    vector.check(expr)
    key = hashlib.sha256(ast.to_source(expr).encode("utf-8")).hexdigest()[:32]
    return SavedFilter(key, expr, frozenset(_conjuncts(expr)))


def _conjuncts(expr: ast.Expr) -> list[ast.Expr]:
    """The operands of `expr`'s top-level `and` (nested runs flattened): a row matches `expr`
    exactly when it matches every one."""
    if isinstance(expr, ast.Logical) and expr.op == "and":
        return [part for operand in expr.operands for part in _conjuncts(operand)]
    return [expr]


def _with_bitmaps(
    blocks: Sequence[BlockSource], expr: ast.Expr | None, saved: Sequence[SavedFilter]
) -> Sequence[BlockSource]:
    """`blocks`, where saved filters whose conjuncts are all conjuncts of `expr` have bits:
    without the blocks those bits rule out (no column of them is read), and with the others
    carrying the bits (`answered`), so that only the rest of `expr` is evaluated on them."""
    if expr is None or not saved:
        return blocks
    parts = _conjuncts(expr)
    present = set(parts)
    usable = [s for s in saved if s.conjuncts <= present]
    if not usable:
        return blocks
    rests: dict[frozenset[str], ast.Expr | None] = {}
    out: list[BlockSource] = []
    for block in blocks:
        found = [] if block.bitmap is None else [(s, block.bitmap(s.key)) for s in usable]
        known = [(s, bits) for s, bits in found if bits is not None]
        if not known:
            out.append(block)
            continue
        packed = functools.reduce(np.bitwise_and, [bits for _, bits in known])
        if not packed.any():
            continue
        keys = frozenset(s.key for s, _ in known)
        if keys not in rests:
            covered = set().union(*(s.conjuncts for s, _ in known))
            rests[keys] = _and([ast.Filter(p) for p in parts if p not in covered]).expr
        out.append(dataclasses.replace(block, answered=(expr, packed, rests[keys])))
    return out


# --- search -----------------------------------------------------------------------------------


def search(
    blocks: Sequence[BlockSource],
    filters: Sequence[str | None],
    *,
    rng: Range,
    limit: int,
    timeout: float | None = None,
    saved: Sequence[SavedFilter] = (),
) -> SearchResult:
    """The newest `limit` events matching every filter in `filters`, newest first.  Blocks'
    bitmaps of the `saved` filters stand in for the parts of the filter they answer."""
    parsed = _and([parse_filter(text or "") for text in filters])
    if parsed.expr is not None:
        vector.check(parsed.expr)
    deadline = _Deadline(timeout)
    if limit <= 0:
        return SearchResult([], 0, None)
    blocks = _with_bitmaps(blocks, parsed.expr, saved)
    with vector.query_clock(), gc_paused():
        found, scanned = _newest(blocks, parsed.expr, rng, limit, deadline)
        events = _materialise(found, limit)
    next_id = events[-1]["@id"] if len(events) == limit else None
    return SearchResult(events, scanned, next_id)


@dataclass
class _Found:
    """Matching rows of one block: their keys, and the block to read them from."""

    block: BlockSource
    rows: Int64Array
    ts: Int64Array
    seq: Int64Array


def _newest(
    blocks: Sequence[BlockSource],
    expr: ast.Node | None,
    rng: Range,
    limit: int,
    deadline: _Deadline,
) -> tuple[list[_Found], int]:
    """The blocks' newest `limit` matching rows (possibly a few more), and rows examined."""
    prune = plan.derive(expr)
    needed = _needed([expr])
    order = sorted(
        _candidates(blocks, rng, prune), key=lambda b: (b.max_ts, b.max_seq), reverse=True
    )
    found: list[_Found] = []
    count = 0
    scanned = 0
    # The key of the limit-th newest match so far: a block entirely older cannot contribute.
    threshold: tuple[int, int] | None = None
    for block in order:
        if threshold is not None and (block.max_ts, block.max_seq) < threshold:
            break
        deadline.check()
        batch, rows = _matching_rows(block, expr, needed, rng, set())
        scanned += batch.n
        if not rows.size:
            continue
        ts, seq = batch.ts[rows], batch.seq[rows]
        if rows.size > limit:
            keep = np.lexsort((seq, ts))[-limit:]
            rows, ts, seq = rows[keep], ts[keep], seq[keep]
        found.append(_Found(block, rows, ts, seq))
        count += int(rows.size)
        if count >= limit:
            all_ts = np.concatenate([f.ts for f in found])
            all_seq = np.concatenate([f.seq for f in found])
            kth = np.lexsort((all_seq, all_ts))[-limit]
            threshold = (int(all_ts[kth]), int(all_seq[kth]))
    return found, scanned


def _newest_keys(found: Sequence[_Found], limit: int) -> tuple[Int64Array, Int64Array]:
    """(which found entry, position in it) of the newest `limit` rows, newest first."""
    all_ts = np.concatenate([f.ts for f in found])
    all_seq = np.concatenate([f.seq for f in found])
    source = np.concatenate([np.full(f.rows.size, i, dtype=np.int64) for i, f in enumerate(found)])
    position = np.concatenate([np.arange(f.rows.size, dtype=np.int64) for f in found])
    order = np.lexsort((all_seq, all_ts))[::-1][:limit]
    return source[order], position[order]


def _materialise(found: Sequence[_Found], limit: int) -> list[dict[str, Any]]:
    if not found:
        return []
    source, position = _newest_keys(found, limit)
    events: list[dict[str, Any] | None] = [None] * int(source.size)
    for index in np.unique(source).tolist():
        slots = np.flatnonzero(source == index)
        entry = found[index]
        rows = entry.rows[position[slots]]
        data = batches.take(entry.block.read(None), rows)
        for slot, event in zip(slots.tolist(), batches.to_events(data), strict=True):
            events[slot] = event
    return [e for e in events if e is not None]


# --- queries: analysis ------------------------------------------------------------------------


@dataclass
class _AggregateSpec:
    call: ast.Call
    arg: ast.Node | None  # None for count(*)
    state: agg.Aggregate
    rowset: bool = False


@dataclass
class _Analysis:
    query: ast.Query
    specs: list[_AggregateSpec]
    keys: list[ast.Grouping]
    interval: Decimal | None
    column_names: list[str]
    key_names: list[str]

    @property
    def aggregating(self) -> bool:
        return bool(self.specs) or bool(self.keys) or self.interval is not None


def _constant(node: ast.Node, what: str) -> Decimal:
    if isinstance(node, ast.Number):
        return node.value
    if isinstance(node, ast.Unary) and node.op == "-" and isinstance(node.operand, ast.Number):
        return -node.operand.value
    raise QueryError(f"{what} must be a number", node.span)


def _make_spec(call: ast.Call) -> _AggregateSpec:
    name = call.name
    args = call.args
    if name == "count":
        (arg,) = args
        if isinstance(arg, ast.Star):
            return _AggregateSpec(call, None, agg.Count(star=True))
        if isinstance(arg, ast.Call) and arg.name == "distinct":
            return _AggregateSpec(call, arg.args[0], agg.Distinct(arg.ci, counting=True))
        return _AggregateSpec(call, arg, agg.Count(star=False))
    if name in ("sum", "mean"):
        return _AggregateSpec(call, args[0], agg.Sum(mean=name == "mean"))
    if name in ("min", "max"):
        return _AggregateSpec(call, args[0], agg.Extreme(maximum=name == "max"))
    if name == "percentile":
        p = _constant(args[1], "the percentile")
        return _AggregateSpec(call, args[0], agg.Percentile(float(p)))
    if name in ("first", "last"):
        return _AggregateSpec(call, args[0], agg.Extremal(last=name == "last"))
    if name in ("any", "all"):
        return _AggregateSpec(call, args[0], agg.Truth(every=name == "all"))
    if name == "distinct":
        return _AggregateSpec(call, args[0], agg.Distinct(call.ci, counting=False), rowset=True)
    if name in ("top", "bottom"):
        n = _constant(args[1], f"the count of {name}()")
        if n != n.to_integral_value():
            raise QueryError(f"the count of {name}() must be a whole number", args[1].span)
        return _AggregateSpec(call, args[0], agg.Ranked(int(n), top=name == "top"), rowset=True)
    raise QueryError(f"the aggregate {name}() is not supported", call.span)


def _aggregate_calls(node: ast.Node, out: list[ast.Call]) -> None:
    if isinstance(node, ast.Call) and node.aggregate:
        if node.name != "interval" and node not in out:
            out.append(node)
        return
    for child in ast.children(node):
        _aggregate_calls(child, out)


def _name(node: ast.Node, alias: str | None) -> str:
    return alias if alias is not None else ast.to_source(node)


def _analyse(q: ast.Query) -> _Analysis:
    if q.source is None:
        raise QueryError("a query needs `from stream`", q.span)
    calls: list[ast.Call] = []
    for column in q.columns:
        if isinstance(column.expr, ast.Star):
            raise QueryError("`select *` is not supported; name the columns", column.span)
        _aggregate_calls(column.expr, calls)
    if q.having is not None:
        _aggregate_calls(q.having, calls)
    specs = [_make_spec(call) for call in calls]
    rowsets = [s for s in specs if s.rowset]
    if rowsets and (len(specs) > 1 or len(q.columns) > 1 or q.columns[0].expr != rowsets[0].call):
        raise QueryError(
            "distinct(), top() and bottom() must be the only column of their query",
            rowsets[0].call.span,
        )
    keys: list[ast.Grouping] = []
    interval: Decimal | None = None
    for grouping in q.group_by:
        if isinstance(grouping, ast.TimeGrouping):
            if interval is not None:
                raise QueryError("only one time() grouping is allowed", grouping.span)
            interval = grouping.interval.ticks
            if interval <= 0:
                raise QueryError("a time() grouping needs a positive interval", grouping.span)
        else:
            keys.append(grouping)
    for expr in [q.where, *(g.expr for g in keys), *(s.arg for s in specs)]:
        if expr is not None:
            vector.check(expr)
    if not specs and not keys and interval is None:
        for column in q.columns:
            vector.check(column.expr)
    else:
        # Columns and `having` are evaluated per group after aggregation: a dry run with
        # undefined values rejects, before reading anything, what cannot be (a property that
        # is neither aggregated nor a group key).
        dry = GroupEvaluator(
            {s.call: UNDEFINED for s in specs},
            {g.expr: UNDEFINED for g in keys},
            {g.alias: UNDEFINED for g in keys if g.alias is not None}
            | {_name(c.expr, c.alias): UNDEFINED for c in q.columns},
            interval,
        )
        for node in [*(c.expr for c in q.columns), q.having]:
            if node is not None:
                dry.eval(node)
    return _Analysis(
        query=q,
        specs=specs,
        keys=keys,
        interval=interval,
        column_names=[_name(c.expr, c.alias) for c in q.columns],
        key_names=[_name(g.expr, g.alias) for g in keys],
    )


# --- queries: partial states ------------------------------------------------------------------


@dataclass
class KeyTable:
    """Group keys numbered once and for all (for as long as the table lives): a block's
    distinct keys are looked up here once, the numbers are kept with the block, and every
    later query groups that block's rows with numpy alone.  Thread-safe; only ever grows
    (whoever owns it replaces it when it is too large)."""

    _serials = itertools.count()

    def __init__(self) -> None:
        self.serial = next(KeyTable._serials)  # names this table in block memos
        self._index: dict[Any, int] = {}
        self.shown: list[tuple[Any, ...]] = []
        self.hashed: list[Any] = []
        self._lock = threading.Lock()
        self._ranks: Int64Array | None = None
        # String keys by their UTF-8 bytes as well (native): a block's strings are looked up
        # without a Python string hashed per key.  `_index` stays the authority.
        self._strings = _native.StringIds()

    def __len__(self) -> int:
        return len(self.shown)

    def ranks(self) -> Int64Array:
        """Each key's rank in `aggregates.order_key` order of its first component (equal
        keys, equal ranks); kept until the table grows, so that a repeated query orders its
        groups with one integer sort."""
        with self._lock:
            size = len(self.shown)
            found = self._ranks
            if found is not None and found.size == size:
                return found
            values = [shown[0] for shown in self.shown[:size]]
        ranks = _dense_ranks(values)
        ranks.flags.writeable = False
        self._ranks = ranks
        return ranks

    def ids(
        self,
        keys: Sequence[Any],
        hashed: Sequence[Any],
        strings: tuple[int, Int64Array, bytes] | None = None,
    ) -> Int64Array:
        """The numbers of one grouping's keys (`keys` as shown, `hashed` as hashable), new
        ones numbered now.  `strings` = (first, offsets, data): keys first, first + 1, ...
        are strings that are their own hashable keys, with these UTF-8 bytes (a string
        list); they are looked up by their bytes, the others by `hashed`."""
        if strings is None:
            return self._hashed_ids(keys, hashed)
        first, offsets, data = strings
        stop = first + offsets.size - 1
        if first == 0 and stop == len(keys):
            return self._string_ids(keys, hashed, offsets, data)
        # In key order, so that new keys are numbered as the plain lookup would number them.
        return np.concatenate(
            [
                self._hashed_ids(keys[:first], hashed[:first]),
                self._string_ids(keys[first:stop], hashed[first:stop], offsets, data),
                self._hashed_ids(keys[stop:], hashed[stop:]),
            ]
        )

    def _hashed_ids(self, keys: Sequence[Any], hashed: Sequence[Any]) -> Int64Array:
        with self._lock:
            index = self._index
            found: list[int | None] = list(map(index.get, hashed))
            if None in found:
                for i, number in enumerate(found):
                    if number is None:
                        found[i] = self._intern(hashed[i], keys[i])
        return np.array(found, dtype=np.int64)

    def _intern(self, key: Any, shown: Any) -> int:
        """The number of `key` (hashable form; `shown` as displayed), numbered now if new.
        The caller holds the lock."""
        number = self._index.get(key)
        if number is None:
            number = self._index[key] = len(self.shown)
            self.shown.append((shown,))
            self.hashed.append(key)
        return number

    def _string_ids(
        self, keys: Sequence[Any], hashed: Sequence[Any], offsets: Int64Array, data: bytes
    ) -> Int64Array:
        with self._lock:
            found: Int64Array = self._strings.find(offsets, data)
            missing = np.flatnonzero(found < 0)
            if missing.size:
                numbers = [self._intern(hashed[i], keys[i]) for i in missing.tolist()]
                added = np.array(numbers, dtype=np.int64)
                found[missing] = added
                self._strings.add(offsets, data, missing, added)
        return found


@dataclass
class Partial:
    """Groups seen, with their display and hashable keys, and one state per aggregate.

    Groups are numbered densely in the order first seen.  With a `table`, groups may also
    be interned by their number in that table (`intern_numbers`), which needs no Python work
    per row or per known key; their keys are then copied from the table only when asked for
    (`keys`, `shown`), so a merge or a `limit` of many groups builds no lists per group."""

    states: list[agg.Aggregate]
    table: KeyTable | None = None
    index: dict[Any, int] = field(default_factory=dict)
    display: list[tuple[Any, ...]] = field(default_factory=list)
    hashed: list[Any] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # table number of each group
    rows: int = 0
    _local: Int64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def size(self) -> int:
        """The number of groups."""
        return len(self.numbers) if self.table is not None else len(self.display)

    def keys(self) -> tuple[list[tuple[Any, ...]], list[Any]]:
        """Every group's display key and hashable key."""
        table = self.table
        if table is not None and len(self.display) < len(self.numbers):
            copied = self.numbers[len(self.display) :]
            self.display.extend([table.shown[i] for i in copied])
            self.hashed.extend([table.hashed[i] for i in copied])
        return self.display, self.hashed

    def shown(self, gs: Sequence[int]) -> list[tuple[Any, ...]]:
        """The display keys of groups `gs`."""
        table = self.table
        if table is None or len(self.display) >= len(self.numbers):
            return [self.display[g] for g in gs]
        numbers = self.numbers
        return [table.shown[numbers[g]] for g in gs]

    def _grown(self) -> None:
        size = self.size
        for state in self.states:
            state.grow(size)

    def intern(self, keys: Sequence[tuple[Any, ...]], hashed: Sequence[Any]) -> Int64Array:
        self.keys()  # groups interned by number so far get their keys before the table goes
        if len(self.index) != len(self.display):
            self.index = {key: g for g, key in enumerate(self.hashed)}
        self.table = None  # groups added here have no table numbers
        ids = np.empty(len(keys), dtype=np.int64)
        index = self.index
        display = self.display
        for i, (shown, key) in enumerate(zip(keys, hashed, strict=True)):
            g = index.get(key)
            if g is None:
                g = index[key] = len(display)
                display.append(shown)
                self.hashed.append(key)
            elif shown is not display[g] and shown != display[g]:
                display[g] = _least(display[g], shown)  # `ci` groups: other spellings
            ids[i] = g
        self._grown()
        return ids

    def intern_numbers(self, numbers: Int64Array) -> Int64Array:
        """Group ids of rows whose groups have these numbers in `self.table`."""
        table = self.table
        assert table is not None
        if self._local.size < len(table):
            grown = np.full(max(len(table), 2 * self._local.size), -1, dtype=np.int64)
            grown[: self._local.size] = self._local
            self._local = grown
        local = self._local[numbers]
        missing = local < 0
        if missing.any():
            unseen = numbers[missing]
            if len(table) <= 8 * unseen.size:  # counting beats sorting over a small table
                new = np.flatnonzero(np.bincount(unseen, minlength=len(table)))
            else:
                new = np.unique(unseen)
            start = len(self.numbers)
            self._local[new] = np.arange(start, start + new.size, dtype=np.int64)
            self.numbers.extend(new.tolist())
            self._grown()
            local = self._local[numbers]
        return local

    def merge(self, other: Partial) -> None:
        if self.table is not None and other.table is self.table:
            mapping = self.intern_numbers(np.asarray(other.numbers, dtype=np.int64))
        else:
            mapping = self.intern(*other.keys())
        for mine, theirs in zip(self.states, other.states, strict=True):
            mine.merge(theirs, mapping)
        self.rows += other.rows


def _slice_origin(start: int | None) -> int:
    """Ticks since 0001-01-01 where slice 0 starts."""
    return 0 if start is None else start + UNIX_EPOCH_DOTNET_TICKS


def _fold_block(
    a: _Analysis,
    partial: Partial,
    block: BlockSource,
    filter_columns: set[str] | None,
    columns: set[str] | None,
    rng: Range,
    origin: int,
) -> None:
    q = a.query
    only_count = (
        q.where is None
        and not a.keys
        and a.interval is None
        and all(isinstance(s.state, agg.Count) and s.state.star for s in a.specs)
        and rng.covers(block)
    )
    if only_count:
        # Nothing to read: the block's row count is the answer.
        gids = partial.intern([()], [()])
        for state in partial.states:
            assert isinstance(state, agg.Count)
            state.counts[gids[0]] += block.rows
        partial.rows += block.rows
        return
    batch, selected = _selected(block, q.where, filter_columns, rng, columns)
    all_rows = selected is None or selected.size == batch.n
    rows = np.zeros(0, dtype=np.int64) if selected is None else selected
    count = batch.n if all_rows else int(rows.size)
    if not count:
        return
    partial.rows += count
    ts = seq = _NO_ROWS
    if a.interval is not None or any(state.uses_time for state in partial.states):
        # Only then: a block read through the cache decodes its ts and seq on first use.
        ts = batch.ts if all_rows else batch.ts[rows]
        seq = batch.seq if all_rows else batch.seq[rows]
    parts: list[_Keys] = []
    evaluated: dict[ast.Node, Values] = {}
    if a.interval is not None:
        width = int(a.interval)
        uniq, inverse = _dense_codes((ts + (UNIX_EPOCH_DOTNET_TICKS - origin)) // width)
        slices = [("t", int(s)) for s in uniq.tolist()]
        parts.append(_Keys(inverse, slices, slices))
    if partial.table is not None:
        # One plain grouping, numbered by the key table: numpy only, per row and per key.
        grouping = a.keys[0]
        keys = _group_codes(block, batch, grouping)
        numbers = _table_numbers(block, keys, grouping, partial.table)
        codes = keys.codes if all_rows else keys.codes[rows]
        # Interned per distinct key of the block (every key occurs in it), not per row.
        if all_rows:
            local = partial.intern_numbers(numbers)
        else:
            used = np.flatnonzero(np.bincount(codes, minlength=numbers.size))
            local = np.full(numbers.size, -1, dtype=np.int64)
            local[used] = partial.intern_numbers(numbers[used])
        gids = local[codes]
    else:
        for grouping in a.keys:
            parts.append(_group_codes(block, batch, grouping).rows(None if all_rows else rows))
        local, shown, hashed = _combine(parts, count)
        gids = partial.intern(shown, hashed)[local]
    for spec, state in zip(a.specs, partial.states, strict=True):
        values_arg: Values | None = None
        if spec.arg is not None:
            values_arg = evaluated.get(spec.arg)
            if values_arg is None:
                values_arg = _values(block, batch, spec.arg)
                if not all_rows:
                    values_arg = values_arg.take(rows)
                evaluated[spec.arg] = values_arg
        state.update(gids, values_arg, ts, seq)


_NO_ROWS: Final[Int64Array] = np.zeros(0, dtype=np.int64)


def _dense_codes(values: Int64Array) -> tuple[Int64Array, Int64Array]:
    """(distinct values ascending, each row's index among them), like np.unique with
    return_inverse but by counting when the values span a small range (time slices do)."""
    low = int(values.min())
    span = int(values.max()) - low
    if span > 4 * values.size + 4096:
        uniq, inverse = np.unique(values, return_inverse=True)
        return uniq, inverse.astype(np.int64).reshape(-1)
    offsets = values - low
    used = np.flatnonzero(np.bincount(offsets, minlength=span + 1))
    remap = np.zeros(span + 1, dtype=np.int64)
    remap[used] = np.arange(used.size, dtype=np.int64)
    return used + low, remap[offsets]


def _values_size(values: Values) -> int:
    size = values.n * 9 + (values.exact.nbytes if values.exact is not None else 0)
    if values.has_strings():
        size += values.string_bytes()
    return size + 256


def _is_leaf(expr: ast.Node) -> bool:
    return isinstance(expr, ast.Property | ast.BuiltIn)


def _values(block: BlockSource, batch: Batch, expr: ast.Node) -> Values:
    """`expr` over the whole block; a column's or built-in's Values are kept with the block."""
    if block.memo is None or not _is_leaf(expr):
        return vector.evaluate(expr, batch)
    found: Values = block.memo(
        ("values", ast.to_source(expr)), lambda: vector.evaluate(expr, batch), _values_size
    )
    return found


@dataclass(frozen=True)
class _Keys:
    """One grouping over some rows: a code per row, and per code the key as shown, as a
    one-element row key (`shown`, made when first asked for: grouping through a key table
    needs it for new keys only), and as a hashable key (`aggregates.hashable`)."""

    codes: Int64Array
    keys: list[Any]
    hashed: list[Any]
    # (first, offsets, data): keys first, first + 1, ... are strings grouped exactly, with
    # these UTF-8 bytes (`Values.group_key_strings`).
    strings: tuple[int, Int64Array, bytes] | None = None

    @staticmethod
    def of(codes: Int64Array, keys: list[Any], ci: bool) -> _Keys:
        if ci:
            return _Keys(codes, keys, [agg.hashable(k, ci) for k in keys])
        # A string is its own hashable key; counted at C speed, so that many strings and a
        # few other keys (rows without the property) cost no Python step per string.
        others = len(keys) - operator.countOf(map(type, keys), str)
        if not others:
            return _Keys(codes, keys, keys)
        hashed = list(keys)
        # `Values.group_codes` puts other keys before and after the strings: look at the ends.
        front, back, fixed = 0, len(keys) - 1, 0
        while front <= back and type(keys[front]) is not str:
            hashed[front] = agg.hashable(keys[front], ci)
            front, fixed = front + 1, fixed + 1
        while back >= front and type(keys[back]) is not str:
            hashed[back] = agg.hashable(keys[back], ci)
            back, fixed = back - 1, fixed + 1
        if fixed != others:  # keys in some other order: every one
            hashed = [k if type(k) is str else agg.hashable(k, ci) for k in keys]
        return _Keys(codes, keys, hashed)

    @functools.cached_property
    def shown(self) -> list[tuple[Any, ...]]:
        return [(k,) for k in self.keys]

    def rows(self, rows: Int64Array | None) -> _Keys:
        if rows is None:
            return self
        return _Keys(self.codes[rows], self.keys, self.hashed)


def _group_codes(block: BlockSource, batch: Batch, grouping: ast.Grouping) -> _Keys:
    """The grouping over every row of the block (kept with the block for plain columns)."""

    def compute() -> _Keys:
        values = _values(block, batch, grouping.expr)
        if grouping.ci:
            codes, keys = _ci_codes(values)
            strings = None
        else:
            codes, keys = values.group_codes()
            strings = values.group_key_strings()
        codes.flags.writeable = False
        found = _Keys.of(codes, keys, grouping.ci)
        return found if strings is None else dataclasses.replace(found, strings=strings)

    if block.memo is None or not _is_leaf(grouping.expr):
        return compute()

    def size(found: _Keys) -> int:
        strings = 0 if found.strings is None else found.strings[1].nbytes + len(found.strings[2])
        return found.codes.nbytes + 160 * len(found.keys) + strings + 256

    memo_key = ("codes", ast.to_source(grouping.expr), grouping.ci)
    found: _Keys = block.memo(memo_key, compute, size)
    return found


def _ci_codes(values: Values) -> tuple[Int64Array, list[Any]]:
    """Group codes ignoring case, each group shown as its least spelling (aggregates.order_key
    order), so that the key shown does not depend on the order blocks are read in."""
    codes, keys = values.group_codes()
    index: dict[Any, int] = {}
    shown: list[Any] = []
    remap = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        folded = agg.hashable(key, True)
        j = index.get(folded)
        if j is None:
            j = index[folded] = len(shown)
            shown.append(key)
        elif agg.order_key(key) < agg.order_key(shown[j]):
            shown[j] = key
        remap[i] = j
    return remap[codes], shown


def _least(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    """Component by component, the lesser of two spellings of the same group key."""
    if a == b:
        return a
    return tuple(
        y if type(x) is not type(y) or agg.order_key(y) < agg.order_key(x) else x
        for x, y in zip(a, b, strict=True)
    )


def _table_numbers(
    block: BlockSource, keys: _Keys, grouping: ast.Grouping, table: KeyTable
) -> Int64Array:
    """The key-table numbers of a block's distinct keys (kept with the block)."""

    def compute() -> Int64Array:
        numbers = table.ids(keys.keys, keys.hashed, keys.strings)
        numbers.flags.writeable = False
        return numbers

    if block.memo is None:
        return compute()
    memo_key = ("numbers", ast.to_source(grouping.expr), grouping.ci, table.serial)
    found: Int64Array = block.memo(memo_key, compute, lambda n: int(n.nbytes) + 256)
    return found


def _combine(parts: Sequence[_Keys], n: int) -> tuple[Int64Array, list[tuple[Any, ...]], list[Any]]:
    """One code per row for the combination of every grouping's code; the display key and
    the hashable key of each combined code."""
    if not parts:
        return np.zeros(n, dtype=np.int64), [()], [()]
    if len(parts) == 1:
        part = parts[0]
        used = np.flatnonzero(np.bincount(part.codes, minlength=len(part.keys)))
        if used.size == len(part.keys):
            return part.codes, part.shown, part.hashed
        remap = np.full(len(part.keys), -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        chosen = used.tolist()
        return (
            remap[part.codes],
            [part.shown[i] for i in chosen],
            [part.hashed[i] for i in chosen],
        )
    combined = parts[0].codes
    for part in parts[1:]:
        combined = combined * (len(part.keys) + 1) + part.codes
        _, combined = np.unique(combined, return_inverse=True)
        combined = combined.astype(np.int64)
    _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    shown: list[tuple[Any, ...]] = []
    hashed: list[Any] = []
    for row in first.tolist():
        codes = [int(part.codes[row]) for part in parts]
        shown.append(tuple(part.keys[c] for part, c in zip(parts, codes, strict=True)))
        hashed.append(tuple(part.hashed[c] for part, c in zip(parts, codes, strict=True)))
    return inverse.astype(np.int64), shown, hashed


def _fresh_partial(a: _Analysis, table: KeyTable | None) -> Partial:
    return Partial([s.state.fresh() for s in a.specs], table)


# --- queries: running -------------------------------------------------------------------------


def query(
    blocks: Sequence[BlockSource],
    text: str,
    *,
    rng: Range,
    start: int | None = None,
    timeout: float | None = None,
    map_fn: MapFn[Any, Any] | None = None,
    workers: int = 1,
    key_table: KeyTable | None = None,
    extra_filters: Sequence[str] = (),
    saved: Sequence[SavedFilter] = (),
) -> QueryResult:
    """Runs the `select` query `text` over `blocks` (see the module documentation), on the
    rows that also match every filter of `extra_filters` (a signal's filters), as if they
    were `and`ed to its `where`.  Blocks' bitmaps of the `saved` filters stand in for the
    parts of that filter they answer.

    `key_table`, kept by the caller from query to query, numbers group keys once: queries
    grouped by one plain property then group a block with numpy alone."""
    with vector.query_clock(), gc_paused():
        return _query(
            blocks,
            text,
            rng=rng,
            start=start,
            deadline=_Deadline(timeout),
            map_fn=map_fn,
            workers=workers,
            key_table=key_table,
            extra_filters=extra_filters,
            saved=saved,
        )


def _query(
    blocks: Sequence[BlockSource],
    text: str,
    *,
    rng: Range,
    start: int | None,
    deadline: _Deadline,
    map_fn: MapFn[Any, Any] | None,
    workers: int,
    key_table: KeyTable | None,
    extra_filters: Sequence[str],
    saved: Sequence[SavedFilter],
) -> QueryResult:
    parsed = parse_query(text)
    if extra_filters:
        where = [ast.Filter(parsed.where), *(parse_filter(f) for f in extra_filters)]
        parsed = dataclasses.replace(parsed, where=_and(where).expr)
    a = _analyse(parsed)
    blocks = _with_bitmaps(blocks, a.query.where, saved)
    if not a.aggregating:
        return _projection(blocks, a, rng, deadline)
    q = a.query
    filter_columns = _needed([q.where])
    columns = _needed([*(g.expr for g in a.keys), *(s.arg for s in a.specs)])
    prune = plan.derive(q.where)
    chosen = _candidates(blocks, rng, prune)
    origin = _slice_origin(start)
    plain = (
        len(a.keys) == 1 and a.interval is None and not a.keys[0].ci and _is_leaf(a.keys[0].expr)
    )
    table = key_table if plain else None

    def run(share: Sequence[BlockSource]) -> Partial:
        partial = _fresh_partial(a, table)
        for block in share:
            deadline.check()
            _fold_block(a, partial, block, filter_columns, columns, rng, origin)
        return partial

    tasks = _split(chosen, max(1, workers) * _TASKS_PER_WORKER)
    mapper: MapFn[Any, Any] = map_fn if map_fn is not None and len(tasks) > 1 else _serial_map
    partials = mapper(vector.in_context(run), tasks)  # the workers see this query's Now()
    total = _fresh_partial(a, table)
    for partial in partials:
        total.merge(partial)
    deadline.check()
    if not total.size and not a.keys and a.interval is None:
        total.intern([()], [()])  # an aggregate over no rows still has its one row
    return _finish(a, total, origin)


def _split(items: Sequence[_T], parts: int) -> list[list[_T]]:
    if not items:
        return []
    size = math.ceil(len(items) / parts)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _simple_rows(a: _Analysis, total: Partial) -> list[tuple[int | None, list[Any]]] | None:
    """Rows when every column is a bare aggregate or a group key and there is no `having`:
    aggregate results come out of numpy for all groups at once (no per-group evaluation).
    None when the query needs the general path."""
    q = a.query
    if q.having is not None or any(s.rowset for s in a.specs):
        return None
    calls: dict[ast.Node, int] = {s.call: i for i, s in enumerate(a.specs)}
    key_index = {g.expr: i for i, g in enumerate(a.keys)}
    if not all(c.expr in calls or c.expr in key_index for c in q.columns):
        return None
    display, _ = total.keys()
    gs = np.arange(len(display), dtype=np.int64)
    results_of = [total.states[i].results_json(gs) for i in range(len(a.specs))]
    key_offset = 1 if a.interval is not None else 0
    # Column by column, then zipped into rows: no per-group Python beyond the zip.
    keys = [[shown[key_offset + j] for shown in display] for j in range(len(a.keys))]
    columns = list(keys)
    for column in q.columns:
        i = calls.get(column.expr)
        columns.append(results_of[i] if i is not None else keys[key_index[column.expr]])
    slices = [s[0][1] for s in display] if key_offset else [None] * len(display)
    return list(zip(slices, map(list, zip(*columns, strict=True)), strict=True))


def _dense_ranks(values: Sequence[Any]) -> Int64Array:
    """Each value's rank in `aggregates.order_key` order, equal values sharing a rank."""
    n = len(values)
    if not n:
        return np.zeros(0, dtype=np.int64)
    # Strings (the usual group key) compare directly; the few other values by their
    # order_key, before the strings (undefined, null, booleans, numbers) or after them
    # (arrays, objects).
    if set(map(type, values)) <= {str}:
        texts, others = list(range(n)), []
    else:
        texts = [i for i, v in enumerate(values) if isinstance(v, str)]
        others = [i for i, v in enumerate(values) if not isinstance(v, str)]
    other_keys = {i: agg.order_key(values[i]) for i in others}
    before = sorted((i for i in others if other_keys[i][0] < 4), key=other_keys.__getitem__)
    after = sorted((i for i in others if other_keys[i][0] > 4), key=other_keys.__getitem__)
    texts.sort(key=values.__getitem__)
    order = before + texts + after
    keys: list[Any] = [other_keys[i] for i in before]
    keys += [values[i] for i in texts]
    keys += [other_keys[i] for i in after]
    # A new rank wherever the key changes (a tuple never equals a string: runs part too).
    steps = [False, *map(operator.ne, keys[1:], keys[:-1])]
    ranks = np.zeros(n, dtype=np.int64)
    ranks[np.asarray(order, dtype=np.int64)] = np.cumsum(np.asarray(steps, dtype=np.int64))
    return ranks


def _number_ranks(values: npt.NDArray[np.float64], shown: BoolArray) -> Int64Array:
    """Ranks of numbers shown as numbers, after those shown as null (`order_key` order)."""
    ranks = np.zeros(values.size, dtype=np.int64)
    _, inverse = np.unique(values[shown], return_inverse=True)
    ranks[shown] = inverse.reshape(-1) + 1
    return ranks


def _limited_rows(a: _Analysis, total: Partial) -> list[list[Any]] | None:
    """Rows of a query whose columns are bare aggregates or group keys, with no `having`
    and no time slices: the groups are ordered with numpy (an integer rank per ordering
    column) and only the `limit` rows returned are built.  None when the query needs the
    general path."""
    q = a.query
    if a.interval is not None or q.having is not None or any(s.rowset for s in a.specs):
        return None
    calls: dict[ast.Node, int] = {s.call: i for i, s in enumerate(a.specs)}
    key_index = {g.expr: i for i, g in enumerate(a.keys)}
    if not all(c.expr in calls or c.expr in key_index for c in q.columns):
        return None
    names = [*a.key_names, *a.column_names]
    # (column index, descending), most significant first; as `_ordered`, keys come last.
    orderings: list[tuple[int, bool]] = []
    for item in q.order_by:
        if isinstance(item, ast.TimeOrdering):
            continue
        if item.alias not in names:
            raise QueryError(f"`order by {item.alias}` names no column of the query", item.span)
        if item.ci:
            return None
        orderings.append((names.index(item.alias), item.descending))
    orderings.extend((i, False) for i in range(len(a.keys)))
    n = total.size
    everything = np.arange(n, dtype=np.int64)

    def key_ranks(j: int) -> Int64Array:
        table = total.table
        if j == 0 and len(a.keys) == 1 and table is not None and len(table) <= 4 * n + 1024:
            return table.ranks()[np.asarray(total.numbers, dtype=np.int64)]
        return _dense_ranks([shown[j] for shown in total.keys()[0]])

    def ranks_of(column: int) -> Int64Array | None:
        if column < len(a.keys):
            return key_ranks(column)
        expr = q.columns[column - len(a.keys)].expr
        i = calls.get(expr)
        if i is None:
            return key_ranks(key_index[expr])
        numbers = total.states[i].results_numbers(everything)
        return None if numbers is None else _number_ranks(*numbers)

    sort_keys: list[Int64Array] = []
    for index, descending in orderings:
        ranks = ranks_of(index)
        if ranks is None:
            return None
        sort_keys.append(-ranks if descending else ranks)
    # lexsort is stable (equal rows keep group order, as list.sort does) and takes the most
    # significant key last.
    if len(sort_keys) == 1:
        gs = np.argsort(sort_keys[0], kind="stable")[: q.limit]
    else:
        gs = np.lexsort(sort_keys[::-1])[: q.limit] if sort_keys else everything[: q.limit]
    chosen = gs.tolist()
    shown = total.shown(chosen)
    keys = [[key[j] for key in shown] for j in range(len(a.keys))]
    results: dict[int, list[Any]] = {}
    columns = list(keys)
    for column in q.columns:
        i = calls.get(column.expr)
        if i is None:
            columns.append(keys[key_index[column.expr]])
            continue
        if i not in results:
            results[i] = total.states[i].results_json(gs)
        columns.append(results[i])
    rows = [list(row) for row in zip(*columns, strict=True)]
    _json_columns(rows, range(len(a.keys)))
    return rows


_JSON_SCALARS: Final = (str, int, float, bool, type(None))


def _json_row(row: list[Any]) -> list[Any]:
    return [v if type(v) in _JSON_SCALARS else to_json(v) for v in row]


def _json_columns(rows: list[list[Any]], columns: Iterable[int]) -> None:
    """Makes columns `columns` of `rows` JSON-ready, in place (strings, the usual keys, stay)."""
    for j in columns:
        for row in rows:
            value = row[j]
            if type(value) is not str:
                row[j] = to_json(value)


def _finish(a: _Analysis, total: Partial, origin: int) -> QueryResult:
    q = a.query
    limited = _limited_rows(a, total)
    if limited is not None:
        return QueryResult([*a.key_names, *a.column_names], limited)
    key_offset = 1 if a.interval is not None else 0
    simple = _simple_rows(a, total)
    results: list[tuple[int | None, list[Any]]] = simple or []  # (slice, row values)
    for g, shown in enumerate(total.keys()[0] if simple is None else ()):
        aggregates: dict[ast.Node, Any] = {
            s.call: state.result(g) for s, state in zip(a.specs, total.states, strict=True)
        }
        keys: dict[ast.Node, Any] = {}
        aliases: dict[str, Any] = {}
        for grouping, value in zip(a.keys, shown[key_offset:], strict=True):
            keys[grouping.expr] = value
            if grouping.alias is not None:
                aliases[grouping.alias] = value
        ev = GroupEvaluator(aggregates, keys, aliases, a.interval)
        row: list[Any] = list(shown[key_offset:])
        for column, name in zip(q.columns, a.column_names, strict=True):
            value = ev.eval(column.expr)
            aliases[name] = value
            row.append(value)
        if q.having is not None and ev.eval(q.having) is not True:
            continue
        slice_index = shown[0][1] if a.interval is not None else None
        spec = a.specs[0] if a.specs and a.specs[0].rowset else None
        if spec is not None:
            values = row[-1]
            for value in values:
                results.append((slice_index, [*row[:-1], value]))
        else:
            results.append((slice_index, row))
    names = [*a.key_names, *a.column_names]
    results = _ordered(a, names, results)
    if a.interval is None:
        if simple is not None:
            # Aggregate columns are JSON-ready already; only group keys may need converting.
            rows = [row for _, row in results[: q.limit]]
            _json_columns(rows, range(len(a.keys)))
        else:
            rows = [_json_row(row) for _, row in results[: q.limit]]
        return QueryResult(names, rows)
    width = int(a.interval)
    slices: list[dict[str, Any]] = []
    flat: list[list[Any]] = []
    current: int | None = None
    for slice_index, row in results:
        if slice_index != current or not slices:
            current = slice_index
            assert slice_index is not None
            start = origin + slice_index * width - UNIX_EPOCH_DOTNET_TICKS
            slices.append({"Time": format_ticks(start), "Rows": []})
        if len(slices[-1]["Rows"]) < q.limit:
            converted = _json_row(row)
            slices[-1]["Rows"].append(converted)
            flat.append([slices[-1]["Time"], *converted])
    return QueryResult(["time", *names], flat, slices)


def _ordered(
    a: _Analysis, names: list[str], results: list[tuple[int | None, list[Any]]]
) -> list[tuple[int | None, list[Any]]]:
    q = a.query
    time_descending = False
    # Default: by slice, then group keys; `order by` aliases come first among the keys.
    orderings: list[tuple[int, bool, bool]] = []  # (column index, ci, descending)
    for item in q.order_by:
        if isinstance(item, ast.TimeOrdering):
            time_descending = item.descending
            continue
        if item.alias not in names:
            raise QueryError(f"`order by {item.alias}` names no column of the query", item.span)
        orderings.append((names.index(item.alias), item.ci, item.descending))
    for i in range(len(a.key_names)):
        orderings.append((i, False, False))
    for index, ci, descending in reversed(orderings):
        _sort_rows(results, index, ci, descending)
    if a.interval is not None:
        results.sort(key=lambda r: r[0] or 0, reverse=time_descending)
    return results


def _row_key(index: int, ci: bool) -> Callable[[tuple[int | None, list[Any]]], tuple[Any, ...]]:
    def key(row: tuple[int | None, list[Any]]) -> tuple[Any, ...]:
        value = row[1][index]
        return agg.order_key(fold_deep(value) if ci else value)

    return key


def _sort_rows(
    results: list[tuple[int | None, list[Any]]], index: int, ci: bool, descending: bool
) -> None:
    """Sorts rows by one column (aggregates.order_key order), stably, in place."""
    if ci:
        results.sort(key=_row_key(index, ci), reverse=descending)
        return
    # Strings (the usual group key) compare directly; the few other values by order_key
    # (kinds before strings: undefined, null, booleans, numbers; arrays and objects after).
    texts = [row for row in results if type(row[1][index]) is str]
    if len(texts) == len(results):
        results.sort(key=lambda row: row[1][index], reverse=descending)
        return
    texts.sort(key=lambda row: row[1][index])
    others = [row for row in results if type(row[1][index]) is not str]
    others.sort(key=_row_key(index, ci))
    before = [row for row in others if agg.order_key(row[1][index])[0] < 4]
    after = [row for row in others if agg.order_key(row[1][index])[0] > 4]
    ordered = before + texts + after
    if descending:
        # reverse=True keeps equal rows in their order; so must this.
        ordered = _reverse_stable(ordered, index)
    results[:] = ordered


def _reverse_stable(
    rows: list[tuple[int | None, list[Any]]], index: int
) -> list[tuple[int | None, list[Any]]]:
    """Ascending rows turned descending, equal rows keeping their relative order."""
    out: list[tuple[int | None, list[Any]]] = []
    i = len(rows)
    while i > 0:
        j = i - 1
        key = agg.order_key(rows[j][1][index])
        while j > 0 and agg.order_key(rows[j - 1][1][index]) == key:
            j -= 1
        out.extend(rows[j:i])
        i = j
    return out


def _projection(
    blocks: Sequence[BlockSource], a: _Analysis, rng: Range, deadline: _Deadline
) -> QueryResult:
    """`select expr, ... from stream [where ...]`: the newest matching rows."""
    q = a.query
    columns_needed = _needed([c.expr for c in q.columns])
    found, _ = _newest(blocks, q.where, rng, q.limit, deadline)
    if not found:
        return QueryResult(a.column_names, [])
    source, position = _newest_keys(found, q.limit)
    rows_out: list[list[Any] | None] = [None] * int(source.size)
    for index in np.unique(source).tolist():
        slots = np.flatnonzero(source == index)
        entry = found[index]
        data = batches.take(entry.block.read(columns_needed), entry.rows[position[slots]])
        evaluated = [vector.evaluate(c.expr, data).to_python() for c in q.columns]
        for j, slot in enumerate(slots.tolist()):
            rows_out[slot] = [column[j] for column in evaluated]
    results: list[tuple[int | None, list[Any]]] = [(None, r) for r in rows_out if r is not None]
    if q.order_by:
        results = _ordered(a, a.column_names, results)
    return QueryResult(a.column_names, [[to_json(v) for v in row] for _, row in results])


__all__ = [
    "UNDEFINED",
    "BlockSource",
    "QueryResult",
    "QueryTimeout",
    "Range",
    "SavedFilter",
    "SearchResult",
    "query",
    "saved_filter",
    "search",
]
