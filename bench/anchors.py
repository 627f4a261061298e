"""Load a CLEF file into the anchor engines (chDB and DuckDB) and measure the load.

Each load runs in its own subprocess so that its CPU time and peak RSS are its own. A load is
timed end to end: parse the newline-delimited JSON from the (page-cached) file, store it, and
flush it to disk.

* **chDB** -- a MergeTree table with one typed column per property, from a pre-scan of the file
  (not counted; cached next to the database): ``@t DateTime64(7) CODEC(Delta, ZSTD(3))``, strings
  with fewer than 10,000 distinct values ``LowCardinality(String)``, other strings ``String``,
  numbers ``Nullable(Int64)``/``Nullable(Float64)``, objects and mixed-type values as JSON text,
  everything ``CODEC(ZSTD(3))``, ``ORDER BY @t``, ``max_threads`` = threads. The load is one
  ``INSERT ... SELECT * FROM file(..., 'JSONEachRow')``; the parts are then merged with
  ``OPTIMIZE ... FINAL`` (timed separately, not counted in the load) and bytes on disk are the sum
  of ``system.parts.bytes_on_disk`` over the active parts.
* **DuckDB** -- ``CREATE TABLE events AS SELECT * FROM read_json(path,
  format='newline_delimited', sample_size=-1)`` in a database file with ``threads`` = threads,
  then ``CHECKPOINT`` (counted); bytes on disk are the database file's size after the checkpoint.

The databases are kept (``<workdir>/chdb``, ``<workdir>/duckdb/events.duckdb``) for the query
benchmarks; each has a ``manifest.json`` saying how to open it. Usage::

    python3 bench/anchors.py FILE [--engine chdb --engine duckdb] [--threads 2] [--repeat 3]

As a module: ``load_chdb(path, workdir, threads=2)`` and ``load_duckdb(path, workdir, threads=2)``
return a dict of figures (see ``_child_chdb``/``_child_duckdb`` for the keys).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "ENGINES",
    "LOW_CARDINALITY_LIMIT",
    "chdb_columns",
    "load_chdb",
    "load_duckdb",
    "prescan",
    "summarize",
    "warm_page_cache",
]

LOW_CARDINALITY_LIMIT = 10_000
CHDB_DATABASE = "bench"
CHDB_TABLE = "events"
DUCKDB_TABLE = "events"
_PRESCAN_VERSION = 1

Result = dict[str, Any]


# -------------------------------------------------------------------------------------------------
# Helpers shared by parent and children


def warm_page_cache(path: str | os.PathLike[str]) -> float:
    """Read the file once so that every load starts from the page cache; returns seconds taken."""
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass
    return time.perf_counter() - t0


def count_lines(path: str | os.PathLike[str]) -> int:
    n = 0
    last = b"\n"
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(8 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def _rss_mb() -> float | None:
    """Current resident set size (VmRSS) in MB, or None where /proc is not available."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak RSS of this process so far, in MB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file may vanish while we walk
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _rates(result: Result) -> Result:
    events = result["events"]
    secs = result["load_seconds"]
    cpu = result["cpu_seconds"]
    result["events_per_second"] = events / secs if secs else None
    result["mb_per_second"] = result["file_bytes"] / 1e6 / secs if secs else None
    result["events_per_cpu_second"] = events / cpu if cpu else None
    result["bytes_per_event"] = result["bytes_on_disk"] / events if events else None
    return result


# -------------------------------------------------------------------------------------------------
# chDB schema from a pre-scan


def prescan(
    path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> Result:
    """Scan every event: per top-level property, the JSON types seen and (up to the
    low-cardinality limit) the distinct string values. Cached in ``cache_dir`` by file identity."""
    path = Path(path)
    st = path.stat()
    identity = {"file": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    cache = Path(cache_dir) / "prescan.json" if cache_dir is not None else None
    if cache is not None and cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("identity") == identity and cached.get("version") == _PRESCAN_VERSION:
            cached["cached"] = True
            return dict(cached)
    t0 = time.perf_counter()
    types: dict[str, set[str]] = {}
    distinct: dict[str, set[str] | None] = {}
    order: list[str] = []
    loads = orjson.loads
    limit = LOW_CARDINALITY_LIMIT
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            for key, value in loads(line).items():
                seen = types.get(key)
                if seen is None:
                    seen = types[key] = set()
                    distinct[key] = set()
                    order.append(key)
                kind = _json_kind(value)
                seen.add(kind)
                if kind == "string":
                    values = distinct[key]
                    if values is not None:
                        values.add(value)
                        if len(values) >= limit:
                            distinct[key] = None
    columns = []
    for key in order:
        values = distinct[key]
        columns.append(
            {
                "name": key,
                "kinds": sorted(types[key]),
                "distinct_strings": None if values is None else len(values),
            }
        )
    result: Result = {
        "version": _PRESCAN_VERSION,
        "identity": identity,
        "seconds": time.perf_counter() - t0,
        "columns": columns,
        "cached": False,
    }
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(result, indent=1))
    return result


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return "string_array"
        return "array"
    return "object"


def chdb_columns(scan: Result) -> list[tuple[str, str, str]]:
    """(name, ClickHouse type, codec) per property, from a pre-scan."""
    out: list[tuple[str, str, str]] = []
    for col in scan["columns"]:
        name = col["name"]
        kinds = set(col["kinds"]) - {"null"}
        codec = "CODEC(ZSTD(3))"
        if name == "@t":
            out.append((name, "DateTime64(7, 'UTC')", "CODEC(Delta, ZSTD(3))"))
            continue
        if kinds == {"string"}:
            low = col["distinct_strings"] is not None
            out.append((name, "LowCardinality(String)" if low else "String", codec))
        elif kinds == {"int"}:
            out.append((name, "Nullable(Int64)", codec))
        elif kinds and kinds <= {"int", "float"}:
            out.append((name, "Nullable(Float64)", codec))
        elif kinds == {"bool"}:
            out.append((name, "Nullable(Bool)", codec))
        elif kinds == {"string_array"}:
            out.append((name, "Array(String)", codec))
        else:  # objects, arrays of non-strings, mixed types: JSON text
            out.append((name, "String", codec))
    return out


def _ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


# -------------------------------------------------------------------------------------------------
# Children: one load each, in a fresh process


def _child_chdb(path: Path, workdir: Path, threads: int, columns: list[list[str]]) -> Result:
    import chdb
    from chdb import session

    db_dir = workdir / "chdb"
    shutil.rmtree(db_dir, ignore_errors=True)
    db_dir.mkdir(parents=True)
    table = f"{CHDB_DATABASE}.{CHDB_TABLE}"
    session_class: Any = session.Session  # chdb ships no type hints
    sess = session_class(str(db_dir))
    sess.query(f"CREATE DATABASE IF NOT EXISTS {CHDB_DATABASE}")
    ddl_cols = ",\n  ".join(f"{_ident(n)} {t} {c}" for n, t, c in columns)
    sess.query(f"CREATE TABLE {table} (\n  {ddl_cols}\n) ENGINE = MergeTree ORDER BY `@t`")
    structure = ", ".join(f"{_ident(n)} {t}" for n, t, _c in columns)
    insert = (
        f"INSERT INTO {table} SELECT * FROM file({_sql_string(str(path))}, 'JSONEachRow', "
        f"{_sql_string(structure)}) SETTINGS max_threads={threads}, "
        "date_time_input_format='best_effort', input_format_json_read_objects_as_strings=1, "
        "input_format_json_read_arrays_as_strings=1, input_format_json_read_numbers_as_strings=1"
    )
    rss_before = _rss_mb()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    sess.query(insert)
    load_seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    peak_load = peak_rss_mb()

    def parts() -> tuple[int, int, int]:
        row = sess.query(
            "SELECT count(), sum(rows), sum(bytes_on_disk) FROM system.parts "
            f"WHERE database = '{CHDB_DATABASE}' AND table = '{CHDB_TABLE}' AND active",
            "JSONCompact",
        )
        n, rows, size = json.loads(str(row))["data"][0]
        return int(n), int(rows), int(size)

    parts_before, rows, bytes_before = parts()
    t1 = time.perf_counter()
    sess.query(f"OPTIMIZE TABLE {table} FINAL SETTINGS max_threads={threads}")
    optimize_seconds = time.perf_counter() - t1
    parts_after, rows_after, bytes_on_disk = parts()
    version = str(sess.query("SELECT version()", "CSV")).strip().strip('"')
    sess.close()
    return {
        "engine": "chdb",
        "label": "chDB typed MergeTree",
        "version": f"chdb {chdb.__version__} (ClickHouse {version})",
        "threads": threads,
        "events": rows_after,
        "rows_before_optimize": rows,
        "load_seconds": load_seconds,
        "cpu_seconds": cpu,
        "bytes_on_disk": bytes_on_disk,
        "bytes_on_disk_before_optimize": bytes_before,
        "parts_before_optimize": parts_before,
        "parts_after_optimize": parts_after,
        "optimize_seconds": optimize_seconds,
        "dir_bytes": dir_bytes(db_dir),
        "columns": len(columns),
        "rss_before_load_mb": rss_before,
        "peak_rss_mb": peak_load,
        "peak_rss_incl_optimize_mb": peak_rss_mb(),
        "location": str(db_dir),
        "table": table,
        "open_with": f"chdb.session.Session({str(db_dir)!r})",
    }


def _child_duckdb(path: Path, workdir: Path, threads: int) -> Result:
    import duckdb

    db_dir = workdir / "duckdb"
    shutil.rmtree(db_dir, ignore_errors=True)
    db_dir.mkdir(parents=True)
    db_file = db_dir / "events.duckdb"
    con = duckdb.connect(str(db_file), config={"threads": threads})
    sql = (
        f"CREATE TABLE {DUCKDB_TABLE} AS SELECT * FROM read_json({_sql_string(str(path))}, "
        "format = 'newline_delimited', sample_size = -1)"
    )
    rss_before = _rss_mb()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    con.execute(sql)
    con.execute("CHECKPOINT")
    load_seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    peak = peak_rss_mb()
    fetched = con.execute(f"SELECT count(*) FROM {DUCKDB_TABLE}").fetchone()
    rows = int(fetched[0]) if fetched else 0
    columns = len(con.execute(f"DESCRIBE {DUCKDB_TABLE}").fetchall())
    t1 = time.perf_counter()
    con.close()
    close_seconds = time.perf_counter() - t1
    wal = db_file.with_name(db_file.name + ".wal")
    return {
        "engine": "duckdb",
        "label": "DuckDB table",
        "version": f"duckdb {duckdb.__version__}",
        "threads": threads,
        "events": rows,
        "load_seconds": load_seconds,
        "cpu_seconds": cpu,
        "bytes_on_disk": db_file.stat().st_size + (wal.stat().st_size if wal.exists() else 0),
        "close_seconds": close_seconds,
        "dir_bytes": dir_bytes(db_dir),
        "columns": columns,
        "rss_before_load_mb": rss_before,
        "peak_rss_mb": peak,
        "location": str(db_file),
        "table": DUCKDB_TABLE,
        "open_with": f"duckdb.connect({str(db_file)!r}, read_only=True)",
    }


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="anchors.py _child")
    parser.add_argument("engine", choices=ENGINES)
    parser.add_argument("file", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--columns", type=Path, help="chDB column list (JSON)")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.engine == "chdb":
        columns = json.loads(args.columns.read_text())
        result = _child_chdb(args.file, args.workdir, args.threads, columns)
    else:
        result = _child_duckdb(args.file, args.workdir, args.threads)
    args.result.write_text(json.dumps(result))
    return 0


# -------------------------------------------------------------------------------------------------
# Parent side


def _run_child(engine: str, path: Path, workdir: Path, threads: int, extra: list[str]) -> Result:
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="anchor-") as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "_child",
            engine,
            str(path),
            str(workdir),
            "--threads",
            str(threads),
            "--result",
            str(result_file),
            *extra,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not result_file.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            raise RuntimeError(
                f"{engine} load failed (exit {proc.returncode}):\n" + "\n".join(tail)
            )
        return dict(json.loads(result_file.read_text()))


def _finish(result: Result, path: Path, workdir: Path) -> Result:
    result["file"] = str(path)
    result["file_bytes"] = path.stat().st_size
    _rates(result)
    manifest = {
        k: result[k]
        for k in ("engine", "version", "location", "table", "open_with", "events", "file")
    }
    manifest["loaded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    target = Path(result["location"])
    (target if target.is_dir() else target.parent).joinpath("manifest.json").write_text(
        json.dumps(manifest, indent=1)
    )
    return result


def load_chdb(
    path: str | os.PathLike[str], workdir: str | os.PathLike[str], threads: int = 2
) -> Result:
    """Load ``path`` into a typed chDB MergeTree table under ``workdir/chdb`` (replacing any
    previous load) in a subprocess; return the figures and the database's location."""
    path = Path(path).resolve()
    workdir = Path(workdir).resolve()
    scan = prescan(path, workdir)
    columns = chdb_columns(scan)
    cols_file = workdir / "chdb-columns.json"
    workdir.mkdir(parents=True, exist_ok=True)
    cols_file.write_text(json.dumps(columns))
    result = _run_child("chdb", path, workdir, threads, ["--columns", str(cols_file)])
    result["prescan_seconds"] = scan["seconds"]
    result["prescan_cached"] = scan["cached"]
    return _finish(result, path, workdir)


def load_duckdb(
    path: str | os.PathLike[str], workdir: str | os.PathLike[str], threads: int = 2
) -> Result:
    """Load ``path`` into a DuckDB database file under ``workdir/duckdb`` (replacing any previous
    load) in a subprocess; return the figures and the database's location."""
    path = Path(path).resolve()
    workdir = Path(workdir).resolve()
    return _finish(_run_child("duckdb", path, workdir, threads, []), path, workdir)


ENGINES: dict[str, Callable[[str | os.PathLike[str], str | os.PathLike[str], int], Result]] = {
    "chdb": load_chdb,
    "duckdb": load_duckdb,
}


def summarize(runs: list[Result]) -> Result:
    """Median of the numeric figures over repeated runs of one engine (plus min/max of the load
    time); non-numeric fields are taken from the last run."""
    out: Result = dict(runs[-1])
    for key, value in runs[-1].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
            out[key] = statistics.median(values)
    times = [r["load_seconds"] for r in runs]
    out["runs"] = len(runs)
    out["load_seconds_min"] = min(times)
    out["load_seconds_max"] = max(times)
    out["load_seconds_all"] = times
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(results: list[Result]) -> str:
    head = (
        "| engine | threads | runs | load s (median) | events/s | MB/s | events/CPU-s | "
        "B/event on disk | peak RSS MB |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r['label']} ({r['version']}) | {r['threads']} | {r.get('runs', 1)} | "
            f"{_fmt(r['load_seconds'], '.2f')} | {_fmt(r['events_per_second'], ',.0f')} | "
            f"{_fmt(r['mb_per_second'], '.1f')} | {_fmt(r['events_per_cpu_second'], ',.0f')} | "
            f"{_fmt(r['bytes_per_event'], '.1f')} | {_fmt(r['peak_rss_mb'], ',.0f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        return _child_main(argv[1:])
    parser = argparse.ArgumentParser(
        description="Load a CLEF file into chDB (typed MergeTree) and DuckDB, one subprocess per "
        "load, and report load time, events/s, CPU, bytes on disk and peak RSS.",
    )
    parser.add_argument("file", type=Path, help="newline-delimited CLEF file")
    parser.add_argument(
        "--engine",
        action="append",
        choices=sorted(ENGINES),
        help="engine to load (repeatable; default: all)",
    )
    parser.add_argument("--threads", type=int, default=2, help="engine threads (default 2)")
    parser.add_argument("--repeat", type=int, default=1, help="loads per engine; medians reported")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where the databases are kept (default: bench/.data/anchors/<file stem>)",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    path = args.file.resolve()
    workdir = args.workdir or Path(__file__).resolve().parent / ".data" / "anchors" / path.stem
    warm_page_cache(path)
    results = []
    for engine in args.engine or sorted(ENGINES):
        runs = []
        for i in range(args.repeat):
            r = ENGINES[engine](path, workdir, args.threads)
            print(
                f"{engine} run {i + 1}/{args.repeat}: {r['load_seconds']:.2f} s, "
                f"{r['events_per_second']:,.0f} events/s, {r['bytes_per_event']:.1f} B/event, "
                f"peak RSS {r['peak_rss_mb']:,.0f} MB",
                file=sys.stderr,
            )
            runs.append(r)
        results.append(summarize(runs))
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
