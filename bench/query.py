"""End-to-end query benchmark: seqfast against the anchors (chDB, DuckDB) on the same events.

    python3 bench/query.py [--quick] [--events 1000000 --events 10000000] [--seed 1]
                           [--runs 7] [--json OUT] [--markdown OUT] [--profile Q6 ...]

For each corpus size (1M and 10M events; ``--quick``: 1M only):

1. Makes (or reuses) the seeded corpus ``bench/.data/clef-v<gen>-n<events>-s<seed>.ndjson``
   (``corpus.py``), the anchor databases ``bench/.data/anchors/<corpus stem>/`` (``anchors.py``:
   chDB typed MergeTree and a DuckDB table, loaded with 2 threads) and a seqfast store
   ``bench/.data/seqfast/<corpus stem>/store``: ``seqfast.open(dir)``, ``ingest_clef`` in ~1 MB
   chunks from 2 threads, ``close()``, so that every event is in a segment when it is reopened.
   Each is reused while its ``manifest.json`` matches the corpus file.
2. Starts one worker process per engine, each opening its database once (read-only for the
   anchors).  The parent sends "run query Q with t threads" to the workers in turn and reads the
   time the worker measured with ``time.perf_counter`` around the call *and* the conversion of
   its result into Python values (``fetchall`` for DuckDB, the ``JSONCompact`` text parsed with
   orjson for chDB, ``Store.query``/``Store.search`` results for seqfast).
3. Per query: one warm-up run of every configuration, whose answers are normalised and compared
   (counts, group keys and values, event identities); then ``--runs`` timed runs, interleaved
   across configurations (seqfast, chDB 1 and 2 threads, DuckDB 1 and 2 threads) so that noise
   from other processes on the machine falls on all of them alike.  Medians are reported.
4. Prints a table with seqfast / chDB ratios and the peak RSS of each worker; ``--json`` and
   ``--markdown`` write the report.  Any disagreement between engines is printed as MISMATCH and
   makes the exit status 1.

The queries (Seq syntax for seqfast, SQL for the anchors):

Q1 count by level (a missing ``@l`` is Information); Q2 count where Application = 'web' and
StatusCode >= 500; Q3 count where the template is like '%timeout%' (case-sensitive); Q4 count of
a case-insensitive text search for "timeout" -- seqfast: ``where "timeout"``, i.e. in the
rendered message or the exception, checked against an independent rendering of the corpus in
Python; anchors: ``ILIKE`` on ``@mt`` or ``@x`` (the template, not the rendered message: the
counts differ and are compared only between the anchors); Q5 count per minute; Q6 p95 of
Elapsed by RequestPath (every group; the nearest-rank percentile, as seqfast defines it); Q7 every
event of one trace id (full events); Q8 the latest 50 errors (full events).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import hashlib
import io
import json
import math
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anchors
import corpus
import orjson

Result = dict[str, Any]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"
QUERY_KEYS = ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7", "Q8")
TICKS_PER_US = 10
_STORE_MANIFEST_VERSION = 1
_ORACLE_VERSION = 1
_LOAD_CHUNK_BYTES = 1_000_000
# Relative tolerance for comparing p95 values: the engines compute them in binary floating
# point, seqfast's numbers may go through decimals.
_FLOAT_TOLERANCE = 1e-9


# -------------------------------------------------------------------------------------------------
# The queries


@dataclass(frozen=True)
class Params:
    """What the queries of one corpus are parameterised with (from `corpus_facts`)."""

    trace_id: str
    start: str  # inclusive, ISO-8601, on a minute boundary before the first event
    end: str  # exclusive, after the last event


@dataclass(frozen=True)
class QuerySpec:
    key: str
    title: str
    seqfast: str  # Seq syntax: a query for Store.query, a filter for Store.search
    chdb: str
    duckdb: str
    shape: str  # how answers are normalised and compared: count, groups, floats, events
    search_limit: int = 0  # > 0: seqfast runs Store.search with this limit
    seqfast_range: bool = False  # pass start/end to seqfast (time slices need a lower bound)
    # Whether seqfast's answer is compared with the anchors' (else with the corpus oracle).
    same_semantics: bool = True


def build_queries(p: Params) -> list[QuerySpec]:
    t = "bench.events"  # chDB (anchors.CHDB_DATABASE, anchors.CHDB_TABLE)
    d = "events"  # DuckDB
    # chDB's typed schema stores a missing string property as '' (its columns are not Nullable).
    return [
        QuerySpec(
            key="Q1",
            title="count by level (missing @l = Information)",
            seqfast="select count(*) from stream group by @Level",
            chdb=f"SELECT if(`@l` = '', 'Information', `@l`) AS level, count() FROM {t} "
            "GROUP BY level",
            duckdb=f"SELECT coalesce(\"@l\", 'Information') AS level, count(*) FROM {d} "
            "GROUP BY level",
            shape="groups",
        ),
        QuerySpec(
            key="Q2",
            title="Application = 'web' and StatusCode >= 500",
            seqfast="select count(*) from stream where Application = 'web' and StatusCode >= 500",
            chdb=f"SELECT count() FROM {t} WHERE Application = 'web' AND StatusCode >= 500",
            duckdb=f"SELECT count(*) FROM {d} WHERE Application = 'web' AND StatusCode >= 500",
            shape="count",
        ),
        QuerySpec(
            key="Q3",
            title="template like '%timeout%'",
            seqfast="select count(*) from stream where @MessageTemplate like '%timeout%'",
            chdb=f"SELECT count() FROM {t} WHERE `@mt` LIKE '%timeout%'",
            duckdb=f"SELECT count(*) FROM {d} WHERE \"@mt\" LIKE '%timeout%'",
            shape="count",
        ),
        QuerySpec(
            key="Q4",
            title='text "timeout" (seqfast: message or exception; anchors: ILIKE @mt or @x)',
            seqfast='select count(*) from stream where "timeout"',
            chdb=f"SELECT count() FROM {t} WHERE `@mt` ILIKE '%timeout%' OR `@x` ILIKE '%timeout%'",
            duckdb=f"SELECT count(*) FROM {d} WHERE \"@mt\" ILIKE '%timeout%' "
            "OR \"@x\" ILIKE '%timeout%'",
            shape="count",
            same_semantics=False,
        ),
        QuerySpec(
            key="Q5",
            title="count per minute",
            seqfast="select count(*) from stream group by time(1m)",
            chdb=f"SELECT toUnixTimestamp(toStartOfMinute(`@t`)) AS m, count() FROM {t} GROUP BY m",
            # Integer bucketing: DuckDB's date_trunc on TIMESTAMPTZ is ten times slower (perf.md).
            duckdb=f'SELECT epoch_us("@t") // 60000000 * 60 AS m, count(*) FROM {d} GROUP BY m',
            shape="groups",
            seqfast_range=True,
        ),
        QuerySpec(
            key="Q6",
            title="p95(Elapsed) by RequestPath, every group",
            seqfast="select percentile(Elapsed, 95) from stream group by RequestPath "
            "limit 10000000",
            # The nearest-rank p95 (seqfast's percentile): DuckDB's quantile_disc is that;
            # ClickHouse's quantileExact takes the value at floor(level * n) (0-based), one past
            # the nearest rank when level * n is whole, which a level just below 0.95 avoids
            # (exact below 10^10 values; checked against 1..3000 values).
            chdb=f"SELECT RequestPath, quantileExact(0.949999999999)(Elapsed) FROM {t} "
            "GROUP BY RequestPath",
            duckdb=f'SELECT RequestPath, quantile_disc("Elapsed", 0.95) FROM {d} '
            "GROUP BY RequestPath",
            shape="floats",
        ),
        QuerySpec(
            key="Q7",
            title="needle: all events of one trace id",
            seqfast=f"@TraceId = '{p.trace_id}'",
            chdb=f"SELECT * FROM {t} WHERE `@tr` = '{p.trace_id}' ORDER BY `@t` DESC",
            duckdb=f'SELECT * FROM {d} WHERE "@tr" = \'{p.trace_id}\' ORDER BY "@t" DESC',
            shape="events",
            search_limit=10_000,
        ),
        QuerySpec(
            key="Q8",
            title="latest 50 errors, full events",
            seqfast="@Level = 'Error'",
            chdb=f"SELECT * FROM {t} WHERE `@l` = 'Error' ORDER BY `@t` DESC LIMIT 50",
            duckdb=f'SELECT * FROM {d} WHERE "@l" = \'Error\' ORDER BY "@t" DESC LIMIT 50',
            shape="events",
            search_limit=50,
        ),
    ]


# -------------------------------------------------------------------------------------------------
# Answers: normalisation (pure) and comparison


def iso_to_us(text: str) -> int:
    """Microseconds since 1970 of ISO-8601 UTC text (``T`` or blank separator, up to 7
    fractional digits, truncated to 6), as DuckDB stores ``@t``."""
    text = text.strip().replace(" ", "T")
    for suffix in ("Z", "+00:00"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    base, _, frac = text.partition(".")
    seconds = dt.datetime.fromisoformat(base).replace(tzinfo=dt.UTC).timestamp()
    return int(seconds) * 1_000_000 + int((frac + "000000")[:6])


def _scalar(value: Any) -> Any:
    """A result cell as a plain, comparable Python value."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, str):
        # chDB's JSONCompact quotes 64-bit integers unless told otherwise.
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    return str(value)


def normalise_rows(shape: str, rows: list[list[Any]], key_null: Any = None) -> Any:
    """Tabular answers (every engine's rows, group keys first) in a comparable form.

    count: the single number.  groups/floats: {key: value} with the key as text (a missing key
    is "<none>"; ``key_null`` is the value an engine uses for a missing key, '' for chDB).
    """
    if shape == "count":
        if len(rows) != 1 or len(rows[0]) != 1:
            raise ValueError(f"expected one number, got {rows[:3]!r}")
        return _scalar(rows[0][0])
    out: dict[str, Any] = {}
    for row in rows:
        *key_cells, value = row
        key = _scalar(key_cells[0]) if len(key_cells) == 1 else [_scalar(k) for k in key_cells]
        if key is None or key == key_null:
            key = "<none>"
        text = key if isinstance(key, str) else json.dumps(key)
        value = _scalar(value)
        if shape == "floats":
            if value is None:
                continue  # a group whose values are all missing: engines differ on null/NaN
            value = float(value)
        if text in out:
            raise ValueError(f"group {text!r} appears twice")
        out[text] = value
    return out


def event_key(t_us: int, template: Any, span: Any) -> list[Any]:
    """An event's identity across engines: timestamp (µs, DuckDB's precision), template, span."""
    return [t_us, template or None, span or None]


def normalise_events(events: list[list[Any]]) -> list[list[Any]]:
    return sorted(events, key=lambda e: (e[0], str(e[1]), str(e[2])), reverse=True)


def compare(shape: str, expected: Any, got: Any) -> str | None:
    """None when the answers agree; otherwise a short description of the difference."""
    if shape == "floats":
        if set(expected) != set(got):
            missing = sorted(set(expected) - set(got))[:3]
            extra = sorted(set(got) - set(expected))[:3]
            return f"groups differ: {len(expected)} vs {len(got)}; missing {missing}, extra {extra}"
        bad = [
            k
            for k, v in expected.items()
            if not math.isclose(v, got[k], rel_tol=_FLOAT_TOLERANCE, abs_tol=1e-9)
        ]
        if bad:
            k = bad[0]
            return (
                f"{len(bad)} of {len(expected)} values differ, "
                f"e.g. {k!r}: {expected[k]} vs {got[k]}"
            )
        return None
    if expected == got:
        return None
    if shape == "groups":
        keys = sorted(set(expected) | set(got), key=str)
        diff = [(k, expected.get(k), got.get(k)) for k in keys if expected.get(k) != got.get(k)]
        return f"{len(diff)} groups differ, e.g. {diff[:3]}"
    if shape == "events":
        return f"{len(expected)} vs {len(got)} events; first {expected[:1]} vs {got[:1]}"
    return f"{expected!r} vs {got!r}"


def digest(answer: Any) -> str:
    """A short checksum of a normalised answer (floats to 9 significant digits)."""

    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.9g}")
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rounded(v) for v in value]
        return value

    text = json.dumps(rounded(answer), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def answer_size(shape: str, answer: Any) -> str:
    if shape == "count":
        return f"{answer:,}"
    if shape in ("groups", "floats"):
        return f"{len(answer):,} groups"
    return f"{len(answer):,} events"


# -------------------------------------------------------------------------------------------------
# Facts about the corpus: query parameters and an independent answer for Q4


_TOKEN = re.compile(r"\{\{|\}\}|\{([@$]?)([A-Za-z0-9_]+)(,[^{}:]*)?(:[^{}]*)?\}")


def rendered_message(event: dict[str, Any]) -> str:
    """The message as Seq shows it, close enough to decide whether a word occurs in it: ``@m``
    if present, else ``@mt`` with each token replaced by its ``@r`` rendering or the property's
    value (strings in quotes, other values as JSON); a token naming no property stays as it is."""
    if "@m" in event:
        return str(event["@m"])
    template = str(event.get("@mt", ""))
    renderings = iter(event.get("@r") or ())

    def token(found: re.Match[str]) -> str:
        text = found.group(0)
        if text in ("{{", "}}"):
            return text[0]
        name, fmt = found.group(2), found.group(4)
        if fmt is not None and fmt != ":l":
            # CLEF's @r holds the renderings of the tokens with a format, in template order.
            return str(next(renderings, text))
        if name not in event:
            return text
        value = event[name]
        if isinstance(value, str):
            return value if fmt == ":l" else '"' + value + '"'
        return json.dumps(value)

    return _TOKEN.sub(token, template)


def corpus_facts(path: Path, cache_dir: Path) -> Result:
    """Query parameters and the Q4 oracle for a corpus file (one pass; cached by identity).

    trace id: that of the first event with one after the middle of the file (a needle).
    Q4 oracle: events whose rendered message or exception contains "timeout", case folded.
    """
    st = path.stat()
    identity = {"file": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    cache = cache_dir / "facts.json"
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("identity") == identity and cached.get("version") == _ORACLE_VERSION:
            return dict(cached)
    t0 = time.perf_counter()
    middle = st.st_size // 2
    trace_id: str | None = None
    timeout_text = 0
    timeout_mt_or_x = 0
    first_us: int | None = None
    last_us: int | None = None
    offset = 0
    loads = orjson.loads
    with path.open("rb") as f:
        for line in f:
            offset += len(line)
            if not line.strip():
                continue
            event = loads(line)
            t_us = iso_to_us(event["@t"])
            first_us = t_us if first_us is None else min(first_us, t_us)
            last_us = t_us if last_us is None else max(last_us, t_us)
            exception = str(event.get("@x", "")).lower()
            if "timeout" in rendered_message(event).lower() or "timeout" in exception:
                timeout_text += 1
            if "timeout" in str(event.get("@mt", "")).lower() or "timeout" in exception:
                timeout_mt_or_x += 1
            if trace_id is None and offset > middle and event.get("@tr"):
                trace_id = str(event["@tr"])
    if trace_id is None or first_us is None or last_us is None:
        raise ValueError(f"{path}: no events with a trace id")
    minute = 60_000_000
    start_us = first_us // minute * minute
    end_us = (last_us // minute + 1) * minute
    facts: Result = {
        "version": _ORACLE_VERSION,
        "identity": identity,
        "seconds": time.perf_counter() - t0,
        "trace_id": trace_id,
        "start": _us_to_iso(start_us),
        "end": _us_to_iso(end_us),
        "q4_text_timeout": timeout_text,
        "q4_mt_or_x_timeout": timeout_mt_or_x,
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(facts, indent=1))
    return facts


def _us_to_iso(us: int) -> str:
    stamp = dt.datetime.fromtimestamp(us // 1_000_000, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{us % 1_000_000:06d}0Z"


# -------------------------------------------------------------------------------------------------
# The seqfast store: loaded once per corpus, then reused


def _import_seqfast() -> Any:
    try:
        import seqfast
    except ImportError:
        sys.path.insert(0, str(REPO_ROOT))
        import seqfast
    return seqfast


def _file_identity(path: Path) -> Result:
    st = path.stat()
    return {"file": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _child_load_seqfast(path: Path, store_dir: Path, threads: int) -> Result:
    """Ingests the file into a new store from `threads` threads, closes it (every event is then
    in a segment), reopens it and checks the count."""
    seqfast = _import_seqfast()
    shutil.rmtree(store_dir, ignore_errors=True)
    store_dir.mkdir(parents=True)
    lock = threading.Lock()
    errors: list[BaseException] = []
    counts = [0] * threads
    with path.open("rb") as f:

        def next_chunk() -> bytes:
            with lock:
                chunk = f.read(_LOAD_CHUNK_BYTES)
                if chunk and not chunk.endswith(b"\n"):
                    chunk += f.readline()
                return chunk

        def feed(i: int) -> None:
            try:
                while not errors and (chunk := next_chunk()):
                    counts[i] += store.ingest_clef(chunk)
            except BaseException as exc:
                errors.append(exc)

        t0 = time.perf_counter()
        store = seqfast.open(str(store_dir))
        try:
            workers = [threading.Thread(target=feed, args=(i,)) for i in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            if errors:
                raise errors[0]
        finally:
            store.close()
        seconds = time.perf_counter() - t0
    with seqfast.open(str(store_dir)) as store:
        stats = dict(store.stats())
    if stats.get("head_events"):
        raise RuntimeError(f"{stats['head_events']} events not in segments after close: {stats}")
    return {
        "events": sum(counts),
        "stored": stats.get("events"),
        "segments": stats.get("segments"),
        "bytes_on_disk": stats.get("bytes_on_disk"),
        "load_seconds": seconds,
        "peak_rss_mb": anchors.peak_rss_mb(),
        "seqfast_version": getattr(seqfast, "__version__", "?"),
    }


def format_fingerprint() -> str:
    """The segment format version: a store written under another one is loaded again
    (``--reload-seqfast`` forces that after other changes to what segments hold)."""
    _import_seqfast()
    from seqfast.storage import segment

    return f"segment format {segment.FORMAT_VERSION}"


def ensure_seqfast_store(path: Path, workdir: Path, events: int, reload: bool) -> Result:
    """The seqfast store of this corpus (loaded in a subprocess unless a matching one exists)."""
    store_dir = workdir / "store"
    manifest_file = workdir / "manifest.json"
    identity = _file_identity(path)
    fingerprint = format_fingerprint()
    if not reload and manifest_file.exists():
        manifest = json.loads(manifest_file.read_text())
        if (
            manifest.get("identity") == identity
            and manifest.get("version") == _STORE_MANIFEST_VERSION
            and manifest.get("format") == fingerprint
            and manifest.get("stored") == events
            and store_dir.exists()
        ):
            manifest["cached"] = True
            return dict(manifest)
    print(f"loading {path.name} into a seqfast store at {store_dir} ...", file=sys.stderr)
    result = _run_json_child(["_load_seqfast", str(path), str(store_dir), "--threads", "2"])
    if result.get("stored") != events:
        raise RuntimeError(f"seqfast store holds {result.get('stored')} events, expected {events}")
    manifest = {
        "version": _STORE_MANIFEST_VERSION,
        "identity": identity,
        "format": fingerprint,
        "location": str(store_dir.resolve()),
        "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **result,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    manifest_file.write_text(json.dumps(manifest, indent=1))
    manifest["cached"] = False
    return manifest


def ensure_anchors(path: Path, workdir: Path, events: int, reload: bool) -> dict[str, Result]:
    """The chDB and DuckDB databases of this corpus, as ``anchors.py`` loads them (2 threads);
    reused while their manifests name this file and its event count."""
    out: dict[str, Result] = {}
    for engine, sub in (("chdb", "chdb"), ("duckdb", "duckdb")):
        manifest_file = workdir / sub / "manifest.json"
        manifest: Result | None = None
        if not reload and manifest_file.exists():
            manifest = json.loads(manifest_file.read_text())
            loaded = manifest.get("loaded_at", "")
            stale = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            if (
                manifest.get("file") != str(path.resolve())
                or manifest.get("events") != events
                or loaded < stale
            ):
                manifest = None
        if manifest is None:
            print(f"loading {path.name} into {engine} (2 threads) ...", file=sys.stderr)
            anchors.ENGINES[engine](path, workdir, 2)
            manifest = json.loads(manifest_file.read_text())
            manifest["cached"] = False
        else:
            manifest["cached"] = True
        out[engine] = manifest
    return out


# -------------------------------------------------------------------------------------------------
# Workers: one process per engine, driven over a pipe


# The `threads` of the seqfast configuration whose decoded-column cache is emptied (untimed)
# before each run: its figures are those of decoding from the page cache, while the plain
# configuration's hot runs may find the columns, and the filter results of the same query,
# still in memory.
CLEARED = -1


class Engine:
    """One open database; `run` executes a query and returns its result as Python values."""

    name = ""
    version = ""

    def before_run(self, threads: int) -> None:
        """Untimed preparation of a run."""

    def run(self, spec: QuerySpec, threads: int) -> Any:
        raise NotImplementedError

    def normalise(self, spec: QuerySpec, raw: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SeqfastEngine(Engine):
    name = "seqfast"

    def __init__(self, location: str, params: Params) -> None:
        seqfast = _import_seqfast()
        self.version = f"seqfast {getattr(seqfast, '__version__', '?')}"
        self.store = seqfast.open(location)
        self.params = params

    def before_run(self, threads: int) -> None:
        if threads == CLEARED:
            # Not part of the public API: the store's cache of decoded block columns.
            self.store._query_state.cache.clear()

    def run(self, spec: QuerySpec, threads: int) -> Any:
        del threads  # seqfast decides its own parallelism (StoreOptions.query_threads)
        if spec.search_limit:
            # A search may answer with part of the events and an id to continue from (as Seq's
            # API pages): a client keeps asking until it has them all, and so does this.
            result = self.store.search(spec.seqfast, limit=spec.search_limit)
            events = list(result.events)
            while result.next_id is not None and len(events) < spec.search_limit:
                result = self.store.search(
                    spec.seqfast, limit=spec.search_limit - len(events), after_id=result.next_id
                )
                events.extend(result.events)
            return events
        if spec.seqfast_range:
            return self.store.query(spec.seqfast, start=self.params.start, end=self.params.end)
        return self.store.query(spec.seqfast)

    def normalise(self, spec: QuerySpec, raw: Any) -> Any:
        if spec.shape == "events":
            if spec.key == "Q7" and len(raw) >= spec.search_limit:
                raise ValueError(f"the search was cut at {spec.search_limit} events")
            return normalise_events(
                [event_key(iso_to_us(e["@t"]), e.get("@mt"), e.get("@sp")) for e in raw]
            )
        if raw.slices is not None:  # group by time(..): one slice per bucket
            rows: list[list[Any]] = []
            for piece in raw.slices:
                minute = iso_to_us(piece["Time"]) // 1_000_000
                rows.extend([minute, *r] for r in piece["Rows"])
            answer = normalise_rows(spec.shape, rows)
            return {k: v for k, v in answer.items() if v} if isinstance(answer, dict) else answer
        return normalise_rows(spec.shape, raw.rows)

    def close(self) -> None:
        self.store.close()


class ChdbEngine(Engine):
    name = "chdb"

    def __init__(self, location: str) -> None:
        import chdb
        from chdb import session

        session_class: Any = session.Session  # chdb ships no type hints
        self.session = session_class(location)
        version = self._query("SELECT version()", 1)["data"][0][0]
        self.version = f"chdb {chdb.__version__} (ClickHouse {version})"

    def _query(self, sql: str, threads: int) -> Any:
        res = self.session.query(f"{sql} SETTINGS max_threads = {threads}", "JSONCompact")
        return orjson.loads(res.bytes())

    def run(self, spec: QuerySpec, threads: int) -> Any:
        return self._query(spec.chdb, threads)

    def normalise(self, spec: QuerySpec, raw: Any) -> Any:
        names = [m["name"] for m in raw["meta"]]
        rows = raw["data"]
        if spec.shape == "events":
            it, imt, isp = names.index("@t"), names.index("@mt"), names.index("@sp")
            return normalise_events([event_key(iso_to_us(r[it]), r[imt], r[isp]) for r in rows])
        return normalise_rows(spec.shape, rows, key_null="")

    def close(self) -> None:
        self.session.close()


class DuckdbEngine(Engine):
    name = "duckdb"

    def __init__(self, location: str) -> None:
        import duckdb

        self.con = duckdb.connect(location, read_only=True)
        self.version = f"duckdb {duckdb.__version__}"
        self.threads = 0
        columns = self.con.execute("DESCRIBE events").fetchall()
        # TIMESTAMPTZ values need pytz to become Python objects; as TIMESTAMP they are the same
        # UTC instants without it.
        tz = [name for name, kind, *_ in columns if kind == "TIMESTAMP WITH TIME ZONE"]
        self.star = (
            "* REPLACE (" + ", ".join(f'"{c}"::TIMESTAMP AS "{c}"' for c in tz) + ")" if tz else "*"
        )
        # DuckDB's names are case-insensitive: of `Elapsed` (HTTP, a number) and `elapsed` (EF
        # Core, text) one is renamed, and which one depends on which it saw first.
        numeric = [
            name
            for name, kind, *_ in columns
            if name.lower().startswith("elapsed") and kind in ("DOUBLE", "BIGINT")
        ]
        if len(numeric) != 1:
            raise RuntimeError(f"cannot tell which column is Elapsed: {columns}")
        self.elapsed = numeric[0]

    def _set_threads(self, threads: int) -> None:
        if threads != self.threads:
            self.con.execute(f"SET threads = {threads}")
            self.threads = threads

    def run(self, spec: QuerySpec, threads: int) -> Any:
        self._set_threads(threads)
        sql = spec.duckdb.replace("SELECT * ", f"SELECT {self.star} ", 1)
        sql = sql.replace('"Elapsed"', f'"{self.elapsed}"')
        cur = self.con.execute(sql)
        rows = cur.fetchall()
        return [d[0] for d in cur.description], rows

    def normalise(self, spec: QuerySpec, raw: Any) -> Any:
        names, rows = raw
        if spec.shape == "events":
            it, imt, isp = names.index("@t"), names.index("@mt"), names.index("@sp")
            return normalise_events([event_key(_exact_us(r[it]), r[imt], r[isp]) for r in rows])
        return normalise_rows(spec.shape, [list(r) for r in rows])

    def close(self) -> None:
        self.con.close()


def _exact_us(stamp: dt.datetime) -> int:
    """Microseconds since 1970 of a naive UTC datetime, without float rounding."""
    delta = stamp - dt.datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _open_engine(engine: str, location: str, params: Params) -> Engine:
    if engine == "seqfast":
        return SeqfastEngine(location, params)
    if engine == "chdb":
        return ChdbEngine(location)
    return DuckdbEngine(location)


def _worker_main(argv: list[str]) -> int:
    """Serve requests (one JSON object a line on stdin) until "exit"; answers go to the original
    stdout, while anything else written to fd 1 (native libraries) goes to stderr."""
    parser = argparse.ArgumentParser(prog="query.py _worker")
    parser.add_argument("engine", choices=("seqfast", "chdb", "duckdb"))
    parser.add_argument("location")
    parser.add_argument("--params", required=True, help="JSON of Params")
    args = parser.parse_args(argv)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    params = Params(**json.loads(args.params))
    specs = {s.key: s for s in build_queries(params)}

    def reply(obj: Result) -> None:
        out.write(json.dumps(obj, default=str) + "\n")

    try:
        t0 = time.perf_counter()
        eng = _open_engine(args.engine, args.location, params)
        reply(
            {
                "ready": True,
                "version": eng.version,
                "open_seconds": time.perf_counter() - t0,
                "rss_after_open_mb": _rss_mb(),
            }
        )
    except Exception as exc:
        reply({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 3
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "exit":
            break
        if op == "rss":
            reply({"peak_rss_mb": anchors.peak_rss_mb(), "rss_mb": _rss_mb()})
            continue
        spec = specs[req["query"]]
        threads = int(req.get("threads", 1))
        try:
            if op == "profile":
                reply(_profile(eng, spec, threads, int(req.get("runs", 3))))
                continue
            eng.before_run(threads)
            t = time.perf_counter()
            raw = eng.run(spec, threads)
            seconds = time.perf_counter() - t
            resp: Result = {"seconds": seconds}
            if req.get("answer"):
                resp["answer"] = eng.normalise(spec, raw)
            reply(resp)
        except Exception as exc:
            reply({"error": f"{type(exc).__name__}: {exc}"})
    eng.close()
    return 0


def _profile(eng: Engine, spec: QuerySpec, threads: int, runs: int) -> Result:
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for _ in range(runs):
        eng.run(spec, threads)
    prof.disable()
    seconds = (time.perf_counter() - t) / runs
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)
    return {"seconds": seconds, "profile": text.getvalue()}


def profile_worker(worker: Worker, key: str, threads: int, runs: int, raw_file: Path) -> Result:
    """Profiles `runs` runs of a query in a worker, every thread of it: with py-spy (sampling,
    attached to the worker) where it is installed, else with cProfile (the calling thread
    only, so work handed to a thread pool shows as waiting)."""
    if shutil.which("py-spy") is None:
        prof = worker.request(op="profile", query=key, threads=threads, runs=runs)
        prof["profile"] = "cProfile, calling thread only:\n" + str(prof.get("profile"))
        return prof
    cmd = ["py-spy", "record", "--pid", str(worker.proc.pid), "--rate", "200", "--format", "raw"]
    spy = subprocess.Popen(
        [*cmd, "--output", str(raw_file)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    time.sleep(1.0)  # let it attach
    seconds = []
    for _ in range(runs):
        seconds.append(worker.request(op="run", query=key, threads=threads)["seconds"])
    spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
    try:
        spy.wait(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()
    text = raw_file.read_text() if raw_file.exists() else ""
    return {
        "seconds": statistics.median(seconds) if seconds else None,
        "profile": summarise_stacks(text.splitlines()) if text else "py-spy wrote nothing",
        "raw": str(raw_file),
    }


def summarise_stacks(lines: list[str], top: int = 25) -> str:
    """Own and inclusive sample counts per function from py-spy's raw (collapsed) stacks,
    leaving out threads that were idle (waiting on a lock, a queue or a pipe)."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    idle = ("Condition.wait", "_wait_for_tstate_lock", "Thread.join", "_worker_main")
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any(frames[-1].startswith(name) for name in idle):
            continue
        n = int(count)
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            incl[frame] = incl.get(frame, 0) + n
    if not total:
        return "no busy samples"

    def table(counts: dict[str, int]) -> list[str]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [f"{100 * n / total:6.1f} %  {frame}" for frame, n in ranked]

    return "\n".join([f"{total} busy samples; own time:", *table(own), "inclusive:", *table(incl)])


def _rss_mb() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


class Worker:
    """The parent's handle on a worker process."""

    def __init__(self, engine: str, location: str, params: Params, log: Path) -> None:
        self.engine = engine
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("w")
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "_worker",
            engine,
            location,
            "--params",
            json.dumps(params.__dict__),
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        hello = self._read()
        if not hello.get("ready"):
            raise RuntimeError(f"{engine} worker could not open {location}: {hello.get('error')}")
        self.version: str = hello["version"]
        self.open_seconds: float = hello["open_seconds"]
        self.rss_after_open_mb: float | None = hello["rss_after_open_mb"]

    def _read(self) -> Result:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self._log.flush()
            tail = self.log_path.read_text().strip().splitlines()[-15:]
            raise RuntimeError(
                f"{self.engine} worker died (exit {self.proc.poll()}):\n" + "\n".join(tail)
            )
        return dict(json.loads(line))

    def request(self, **req: Any) -> Result:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"op": "exit"}\n')
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


# -------------------------------------------------------------------------------------------------
# Running one corpus


@dataclass(frozen=True)
class Config:
    engine: str
    threads: int

    @property
    def label(self) -> str:
        if self.engine == "seqfast":
            return "seqfast cleared" if self.threads == CLEARED else "seqfast"
        return f"{self.engine} t={self.threads}"


CONFIGS = (
    Config("seqfast", 0),
    Config("seqfast", CLEARED),
    Config("chdb", 1),
    Config("chdb", 2),
    Config("duckdb", 1),
    Config("duckdb", 2),
)


def prepare(n: int, seed: int, reload: bool, reload_seqfast: bool, workdir: Path) -> Result:
    """The corpus of `n` events, its facts, and the three databases holding it."""
    t0 = time.perf_counter()
    path = corpus.corpus_path(n, seed, workdir)
    gen_seconds = time.perf_counter() - t0
    anchors.warm_page_cache(path)
    events = anchors.count_lines(path)
    facts = corpus_facts(path, workdir / "query" / path.stem)
    params = Params(trace_id=facts["trace_id"], start=facts["start"], end=facts["end"])
    anchor_manifests = ensure_anchors(path, workdir / "anchors" / path.stem, events, reload)
    store = ensure_seqfast_store(
        path, workdir / "seqfast" / path.stem, events, reload or reload_seqfast
    )
    return {
        "events": events,
        "file": str(path),
        "file_bytes": path.stat().st_size,
        "generation_seconds": gen_seconds,
        "facts": facts,
        "params": params.__dict__,
        "seqfast_store": store,
        "anchor_databases": anchor_manifests,
    }


def run_corpus(
    n: int,
    seed: int,
    runs: int,
    budget: float,
    reload: tuple[bool, bool],
    profile: list[str],
    workdir: Path,
    only: list[str] | None = None,
) -> Result:
    report = prepare(n, seed, *reload, workdir)
    path = Path(report["file"])
    facts = report["facts"]
    params = Params(**report["params"])
    store = report["seqfast_store"]
    anchor_manifests = report["anchor_databases"]
    specs = [s for s in build_queries(params) if not only or s.key in only]
    report["runs"] = runs
    report["budget_seconds"] = budget
    report["loadavg_before"] = [round(x, 2) for x in os.getloadavg()]
    locations = {
        "seqfast": store["location"],
        "chdb": anchor_manifests["chdb"]["location"],
        "duckdb": anchor_manifests["duckdb"]["location"],
    }
    logs = workdir / "query" / path.stem
    workers: dict[str, Worker] = {}
    errors: dict[str, str] = {}
    try:
        for engine in ("seqfast", "chdb", "duckdb"):
            try:
                workers[engine] = Worker(
                    engine, locations[engine], params, logs / f"worker-{engine}.log"
                )
            except RuntimeError as exc:
                if engine != "seqfast":
                    raise
                errors["seqfast"] = str(exc)
                print(f"seqfast: {exc}", file=sys.stderr)
        report["workers"] = {
            e: {
                "version": w.version,
                "open_seconds": w.open_seconds,
                "rss_after_open_mb": w.rss_after_open_mb,
            }
            for e, w in workers.items()
        }
        report["queries"] = [_run_query(spec, workers, runs, budget, facts) for spec in specs]
        for key in profile:
            if "seqfast" not in workers:
                continue
            for threads in (0, CLEARED):
                label = Config("seqfast", threads).label
                raw_file = logs / f"profile-{key}-{label.replace(' ', '-')}.raw"
                prof = profile_worker(workers["seqfast"], key, threads, 3, raw_file)
                report.setdefault("profiles", {})[f"{key} {label}"] = prof
                print(
                    f"--- profile of {label} {key} ({n:,} events) ---\n{prof['profile']}",
                    file=sys.stderr,
                )
        for e, w in workers.items():
            report["workers"][e].update(w.request(op="rss"))
    finally:
        for w in workers.values():
            w.close()
    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    report["errors"] = errors
    return report


def _run_query(
    spec: QuerySpec, workers: dict[str, Worker], runs: int, budget: float, facts: Result
) -> Result:
    configs = [c for c in CONFIGS if c.engine in workers]
    out: Result = {"key": spec.key, "title": spec.title, "results": {}, "mismatches": []}
    answers: dict[str, Any] = {}
    warmup: dict[str, float] = {}
    failed: dict[str, str] = {}
    # Warm-up: one run of each configuration, whose answers are checked.
    for c in configs:
        r = workers[c.engine].request(op="run", query=spec.key, threads=c.threads, answer=True)
        if "error" in r:
            failed[c.label] = r["error"]
            print(f"{spec.key} {c.label}: {r['error']}", file=sys.stderr)
            continue
        answers[c.label] = r["answer"]
        warmup[c.label] = r["seconds"]
    anchors_seen = [c.label for c in configs if c.engine != "seqfast" and c.label in answers]
    reference = answers[anchors_seen[0]] if anchors_seen else None
    for label in anchors_seen[1:]:
        diff = compare(spec.shape, reference, answers[label])
        if diff:
            out["mismatches"].append(f"{label} vs {anchors_seen[0]}: {diff}")
    for label in [c.label for c in configs if c.engine == "seqfast" and c.label in answers]:
        if spec.same_semantics:
            if reference is not None:
                diff = compare(spec.shape, reference, answers[label])
                if diff:
                    out["mismatches"].append(f"{label} vs {anchors_seen[0]}: {diff}")
        elif answers[label] != facts["q4_text_timeout"]:
            out["mismatches"].append(
                f"{label} {answers[label]} vs {facts['q4_text_timeout']} from rendering the corpus"
            )
    if (
        not spec.same_semantics
        and reference is not None
        and reference != facts["q4_mt_or_x_timeout"]
    ):
        out["mismatches"].append(
            f"{anchors_seen[0]} {reference} vs {facts['q4_mt_or_x_timeout']} from the corpus"
        )
    for m in out["mismatches"]:
        print(f"MISMATCH {spec.key}: {m}", file=sys.stderr)
    times: dict[str, list[float]] = {c.label: [] for c in configs if c.label in answers}
    live = [c for c in configs if c.label in answers]
    # A configuration whose warm-up took long gets fewer runs (at least one), so that one slow
    # query cannot take the whole benchmark's time; the table says how many it had.
    allowed = {
        label: runs if w * runs <= budget else max(1, int(budget // w))
        for label, w in warmup.items()
    }
    for rep in range(runs):
        # Rotate the order so that no configuration always runs right after another one.
        for c in live[rep % len(live) :] + live[: rep % len(live)]:
            if len(times[c.label]) >= allowed[c.label]:
                continue
            r = workers[c.engine].request(op="run", query=spec.key, threads=c.threads)
            if "error" in r:
                raise RuntimeError(f"{spec.key} {c.label} failed after its warm-up: {r['error']}")
            times[c.label].append(r["seconds"])
    for label, ts in times.items():
        out["results"][label] = {
            "median_ms": statistics.median(ts) * 1000,
            "min_ms": min(ts) * 1000,
            "max_ms": max(ts) * 1000,
            "runs": len(ts),
            "answer": answer_size(spec.shape, answers[label]),
            "digest": digest(answers[label]),
        }
    for label, err in failed.items():
        out["results"][label] = {"error": err}
    summary = ", ".join(
        f"{label} {r['median_ms']:.1f} ms"
        for label, r in out["results"].items()
        if "median_ms" in r
    )
    print(f"{spec.key}: {summary}", file=sys.stderr)
    return out


# -------------------------------------------------------------------------------------------------
# Report


def _ms(r: Result | None, runs: int | None = None) -> str:
    if r is None:
        return "-"
    if "error" in r:
        return "error"
    few = f" ({r['runs']} run{'s' if r['runs'] > 1 else ''})" if runs and r["runs"] < runs else ""
    return f"{r['median_ms']:,.1f}{few}"


def _ratio_text(a: Result | None, b: Result | None) -> str:
    if not a or not b or "median_ms" not in a or "median_ms" not in b or not b["median_ms"]:
        return "-"
    return f"×{a['median_ms'] / b['median_ms']:.2f}"


def format_corpus(rep: Result) -> str:
    lines = [
        f"### {rep['events']:,} events ({rep['file_bytes'] / 1e6:,.0f} MB of CLEF)",
        "",
        "| query | seqfast | seqfast, cache cleared | chDB t=1 | chDB t=2 | DuckDB t=1 | "
        "DuckDB t=2 | seqfast / chDB t=1 | seqfast / chDB t=2 | cleared / chDB t=2 | "
        "answer (seqfast; anchors) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    n = rep.get("runs")
    for q in rep["queries"]:
        r = q["results"]
        sf, cl = r.get("seqfast"), r.get("seqfast cleared")
        ch1, ch2 = r.get("chdb t=1"), r.get("chdb t=2")
        anchor_answer = (ch1 or {}).get("answer", "-")
        sf_answer = (sf or {}).get("answer") or ((sf or {}).get("error", "n/a"))[:60]
        flag = " **MISMATCH**" if q["mismatches"] else ""
        lines.append(
            f"| {q['key']} {q['title']} | {_ms(sf, n)} | {_ms(cl, n)} | {_ms(ch1, n)} | "
            f"{_ms(ch2, n)} | {_ms(r.get('duckdb t=1'), n)} | {_ms(r.get('duckdb t=2'), n)} | "
            f"{_ratio_text(sf, ch1)} | {_ratio_text(sf, ch2)} | {_ratio_text(cl, ch2)} | "
            f"{sf_answer}; {anchor_answer}{flag} |"
        )
    lines.append("")
    w = rep.get("workers", {})
    rss = ", ".join(
        f"{e} {v.get('peak_rss_mb', 0):,.0f} MB (after open {v.get('rss_after_open_mb') or 0:,.0f})"
        for e, v in w.items()
    )
    lines.append(f"Peak RSS of each worker process: {rss}.")
    st = rep["seqfast_store"]
    lines.append(
        f"seqfast store: {st.get('segments')} segments, "
        f"{(st.get('bytes_on_disk') or 0) / rep['events']:.1f} B/event; "
        f"load average {rep['loadavg_before']} before, {rep['loadavg_after']} after."
    )
    for q in rep["queries"]:
        for m in q["mismatches"]:
            lines.append(f"MISMATCH {q['key']}: {m}")
    return "\n".join(lines)


def format_report(report: Result) -> str:
    from ingest import machine_line

    lines = [
        f"## Query benchmark — {report['date']}",
        "",
        f"machine: {machine_line(report['machine'])}",
        f"versions: {report['versions']}",
        f"method: {report['method']}",
        "",
    ]
    for rep in report["corpora"]:
        lines.append(format_corpus(rep))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_worker":
        return _worker_main(argv[1:])
    if argv and argv[0] == "_load_seqfast":
        p = argparse.ArgumentParser(prog="query.py _load_seqfast")
        p.add_argument("file", type=Path)
        p.add_argument("store", type=Path)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--result", type=Path, required=True)
        a = p.parse_args(argv[1:])
        a.result.write_text(json.dumps(_child_load_seqfast(a.file, a.store, a.threads)))
        return 0
    parser = argparse.ArgumentParser(
        description="End-to-end query benchmark: seqfast's Store.query/Store.search against chDB "
        "and DuckDB on the same seeded CLEF corpus, same answers checked, medians of "
        "interleaved runs.",
    )
    parser.add_argument(
        "--events",
        type=int,
        action="append",
        help="corpus size (repeatable; default 1000000 and 10000000)",
    )
    parser.add_argument("--quick", action="store_true", help="1,000,000 events only")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (1)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per query (7)")
    parser.add_argument(
        "--budget",
        type=float,
        default=120.0,
        help="seconds of timed runs per query and configuration; a slower one gets fewer "
        "runs, at least one (120)",
    )
    parser.add_argument(
        "--reload", action="store_true", help="reload the seqfast store and anchor databases"
    )
    parser.add_argument(
        "--reload-seqfast", action="store_true", help="reload the seqfast store only"
    )
    parser.add_argument(
        "--query",
        action="append",
        choices=QUERY_KEYS,
        help="run only this query (repeatable; default: all)",
    )
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        choices=QUERY_KEYS,
        help="also profile this seqfast query, hot and with its cache cleared: py-spy over "
        "every thread where installed, else cProfile (repeatable)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=DATA_DIR, help="corpus, stores, databases (bench/.data)"
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="generate the corpora and load the databases, run no query",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the report as JSON")
    parser.add_argument("--markdown", type=Path, metavar="OUT", help="write the tables as Markdown")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be positive")
    sizes = [1_000_000] if args.quick else (args.events or [1_000_000, 10_000_000])
    if args.prepare_only:
        for n in sizes:
            prepare(n, args.seed, args.reload, args.reload_seqfast, args.workdir)
        return 0

    import chdb
    import duckdb
    from ingest import machine_info

    report: Result = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "versions": (
            f"CPython {platform.python_version()}, chdb {chdb.__version__}, duckdb "
            f"{duckdb.__version__}, orjson {getattr(orjson, '__version__', '?')}, "
            f"numpy {_numpy_version()}"
        ),
        "method": (
            f"hot runs; per query 1 warm-up of each configuration (answers compared), then "
            f"{args.runs} timed runs interleaved across configurations; median; in-process "
            "time.perf_counter around the call and the conversion of its result to Python values"
        ),
        "corpora": [],
    }
    mismatched = False
    for n in sizes:
        reload = (args.reload, args.reload_seqfast)
        rep = run_corpus(
            n, args.seed, args.runs, args.budget, reload, args.profile, args.workdir, args.query
        )
        report["corpora"].append(rep)
        mismatched = mismatched or any(q["mismatches"] for q in rep["queries"])
        print(format_corpus(rep), file=sys.stderr)
    text = format_report(report)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
    if args.markdown:
        args.markdown.write_text(text)
    if mismatched:
        print("query.py: engines disagree (see MISMATCH above)", file=sys.stderr)
        return 1
    return 0


def _numpy_version() -> str:
    try:
        import numpy
    except ImportError:
        return "-"
    return str(numpy.__version__)


def _run_json_child(args: list[str]) -> Result:
    with tempfile.TemporaryDirectory(prefix="query-") as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), *args, "--result", str(result_file)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not result_file.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-20:]
            raise RuntimeError(f"{args[0]} failed (exit {proc.returncode}):\n" + "\n".join(tail))
        return dict(json.loads(result_file.read_text()))


if __name__ == "__main__":
    raise SystemExit(main())
