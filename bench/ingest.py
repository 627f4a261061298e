"""End-to-end ingest benchmark: seqfast against the anchors (chDB, DuckDB) on the same CLEF file.

    python3 bench/ingest.py [--events 1000000] [--seed 1] [--batch-bytes 1000000]
                            [--anchors | --no-anchors] [--repeat 3] [--json OUT]

1. Makes (or reuses) the seeded corpus ``bench/.data/clef-v<gen>-n<events>-s<seed>.ndjson``
   and reads it once so that every load starts from the page cache.
2. seqfast, in a fresh subprocess: opens a store in a new directory and feeds the file to
   ``store.ingest_clef(payload)`` in batches of about ``--batch-bytes`` (split on line
   boundaries) from ``--threads`` threads at once. The load is timed from the first byte read
   to the last ``ingest_clef`` call returning (each call returns once its events are durable);
   closing the store (which waits for background flushes and merges) is timed separately.
   Reported: events/s, MB/s, CPU seconds, ``store.stats()`` before closing and after
   reopening the closed store (bytes on disk come from the latter, falling back to the former,
   then to the directory's size), and peak RSS (``ru_maxrss`` of the subprocess).
3. The anchors, each in its own subprocess, on the same file (see ``anchors.py``).
4. Prints a table and ratios (with date and machine) and, with ``--json``, writes everything.

Runs are interleaved (seqfast, chDB, DuckDB, seqfast, ...) and medians are reported: the machine
is shared and noisy. If seqfast cannot be imported (not built yet), its part is reported as
"seqfast not built" and the rest still runs (``--require-seqfast`` turns that into a failure).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anchors
import corpus

Result = dict[str, Any]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
NOT_BUILT = "seqfast not built"


# -------------------------------------------------------------------------------------------------
# Machine description


def machine_info() -> Result:
    """CPU model, cores, memory, OS and Python of this machine."""
    info: Result = {
        "cpu_model": platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        cpu: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model", "stepping") and key not in cpu:
                cpu[key] = value.strip()
        if "model name" in cpu:
            info["cpu_model"] = cpu["model name"]
            info["cpu_family"] = cpu.get("cpu family")
            info["cpu_model_number"] = cpu.get("model")
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / (1 << 20), 1)
    with contextlib.suppress(OSError):
        info["hypervisor"] = "hypervisor" in Path("/proc/cpuinfo").read_text()
    return info


def machine_line(info: Result) -> str:
    fam = ""
    if info.get("cpu_family"):
        fam = f" (family {info['cpu_family']} model {info['cpu_model_number']})"
    mem = f", {info['memory_gib']} GiB RAM" if "memory_gib" in info else ""
    vm = ", virtual machine" if info.get("hypervisor") else ""
    return (
        f"{info['cpu_model']}{fam}, {info['logical_cpus']} logical CPUs{mem}{vm}; "
        f"Python {info['python']}"
    )


# -------------------------------------------------------------------------------------------------
# seqfast child


def _import_seqfast() -> Any:
    """Import seqfast (installed, else from the repository) and check for the embedded API."""
    try:
        import seqfast
    except ImportError:
        sys.path.insert(0, str(REPO_ROOT))
        import seqfast
    if not callable(getattr(seqfast, "open", None)):
        raise ImportError("seqfast has no open() (embedded API missing)")
    return seqfast


def _child_seqfast(path: Path, store_dir: Path, batch_bytes: int, threads: int) -> Result:
    try:
        seqfast = _import_seqfast()
    except Exception as exc:  # ImportError, or a broken extension module
        return {"error": f"{NOT_BUILT}: {type(exc).__name__}: {exc}"}

    lock = threading.Lock()
    counts = [0] * threads
    batches = [0] * threads
    errors: list[BaseException] = []
    stop = threading.Event()

    with path.open("rb") as f:

        def next_batch() -> bytes:
            with lock:
                chunk = f.read(batch_bytes)
                if chunk and not chunk.endswith(b"\n"):
                    chunk += f.readline()
                return chunk

        def feed(i: int) -> None:
            try:
                while not stop.is_set():
                    chunk = next_batch()
                    if not chunk:
                        return
                    counts[i] += store.ingest_clef(chunk)
                    batches[i] += 1
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        rss_open = None
        with seqfast.open(str(store_dir)) as store:
            rss_open = anchors.peak_rss_mb()
            workers = [threading.Thread(target=feed, args=(i,)) for i in range(threads)]
            cpu0 = anchors.cpu_seconds()
            t0 = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            ingest_seconds = time.perf_counter() - t0
            cpu_ingest = anchors.cpu_seconds() - cpu0
            if errors:
                raise errors[0]
            stats = dict(store.stats())
            t_close = time.perf_counter()
        close_seconds = time.perf_counter() - t_close
    cpu_total = anchors.cpu_seconds() - cpu0
    peak = anchors.peak_rss_mb()

    stats_after: Result | None = None
    reopen_error = None
    try:
        with seqfast.open(str(store_dir)) as store:
            stats_after = dict(store.stats())
    except Exception as exc:
        reopen_error = f"{type(exc).__name__}: {exc}"
    final = stats_after or stats
    return {
        "engine": "seqfast",
        "label": "seqfast",
        "version": f"seqfast {getattr(seqfast, '__version__', '?')}",
        "threads": threads,
        "batch_bytes": batch_bytes,
        "batches": sum(batches),
        "events": sum(counts),
        "load_seconds": ingest_seconds,
        "cpu_seconds": cpu_ingest,
        "close_seconds": close_seconds,
        "end_to_end_seconds": ingest_seconds + close_seconds,
        "cpu_seconds_incl_close": cpu_total,
        "stats": stats,
        "stats_after_close": stats_after,
        "reopen_error": reopen_error,
        "bytes_on_disk": final.get("bytes_on_disk", anchors.dir_bytes(store_dir)),
        "segments": final.get("segments"),
        "dir_bytes": anchors.dir_bytes(store_dir),
        "rss_after_open_mb": rss_open,
        "peak_rss_mb": peak,
        "location": str(store_dir),
    }


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ingest.py _child")
    parser.add_argument("file", type=Path)
    parser.add_argument("store", type=Path)
    parser.add_argument("--batch-bytes", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    result = _child_seqfast(args.file, args.store, args.batch_bytes, args.threads)
    args.result.write_text(json.dumps(result, default=str))
    return 3 if "error" in result else 0


def run_seqfast(
    path: Path, workdir: Path, batch_bytes: int, threads: int, keep: bool = False
) -> Result:
    """Ingest ``path`` into a fresh seqfast store in a subprocess; returns its figures, or
    ``{"error": ...}`` when seqfast cannot be imported."""
    workdir.mkdir(parents=True, exist_ok=True)
    store_dir = Path(tempfile.mkdtemp(prefix="seqfast-store-", dir=workdir))
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "_child",
            str(path),
            str(store_dir),
            "--batch-bytes",
            str(batch_bytes),
            "--threads",
            str(threads),
            "--result",
            str(result_file),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if result_file.exists():
            result: Result = json.loads(result_file.read_text())
        else:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-20:]
            result = {"error": f"seqfast run failed (exit {proc.returncode}):\n" + "\n".join(tail)}
    if keep and "error" not in result:
        result["location"] = str(store_dir)
    else:
        shutil.rmtree(store_dir, ignore_errors=True)
        result.pop("location", None)
    if "error" not in result:
        result["file"] = str(path)
        result["file_bytes"] = path.stat().st_size
        events, secs, cpu = result["events"], result["load_seconds"], result["cpu_seconds"]
        result["events_per_second"] = events / secs if secs else None
        result["mb_per_second"] = result["file_bytes"] / 1e6 / secs if secs else None
        result["events_per_cpu_second"] = events / cpu if cpu else None
        result["bytes_per_event"] = result["bytes_on_disk"] / events if events else None
    return result


# -------------------------------------------------------------------------------------------------
# Report


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(seqfast: Result | None, anchor_results: list[Result]) -> Result:
    """seqfast relative to each anchor: >1 is better for rates, <1 is better for sizes/RSS."""
    out: Result = {}
    if not seqfast or "error" in seqfast:
        return out
    for a in anchor_results:
        out[a["engine"]] = {
            "events_per_second": _ratio(seqfast["events_per_second"], a["events_per_second"]),
            "events_per_cpu_second": _ratio(
                seqfast["events_per_cpu_second"], a["events_per_cpu_second"]
            ),
            "bytes_per_event": _ratio(seqfast["bytes_per_event"], a["bytes_per_event"]),
            "peak_rss": _ratio(seqfast["peak_rss_mb"], a["peak_rss_mb"]),
        }
    return out


def format_report(report: Result) -> str:
    c = report["corpus"]
    lines = [
        f"# seqfast ingest benchmark — {report['date']}",
        "",
        f"machine: {machine_line(report['machine'])}",
        f"load average before/after: {report['loadavg_before']} / {report['loadavg_after']}",
        f"corpus: {c['file']} — {c['events']:,} events, {c['bytes'] / 1e6:,.1f} MB "
        f"({c['bytes_per_event']:.1f} B/event), seed {c['seed']}, generator v{c['generator']}",
        f"seqfast: {report['settings']['threads']} feeding threads, "
        f"~{report['settings']['batch_bytes']:,} B batches; anchors: "
        f"{report['settings']['anchor_threads']} threads; {report['settings']['repeat']} run(s) "
        "each, interleaved; medians",
        "",
        "| system | runs | load s median (min–max) | events/s | MB/s | events/CPU-s | "
        "B/event on disk | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = []
    sf = report.get("seqfast")
    if sf is not None:
        rows.append(sf)
    rows.extend(report.get("anchors", []))
    for r in rows:
        if "error" in r:
            first = r["error"].splitlines()[0]
            lines.append(f"| seqfast | 0 | {first} | | | | | |")
            continue
        lines.append(
            f"| {r['label']} ({r['version']}) | {r.get('runs', 1)} | "
            f"{r['load_seconds']:.2f} ({r['load_seconds_min']:.2f}–{r['load_seconds_max']:.2f}) | "
            f"{_fmt(r['events_per_second'], ',.0f')} | {_fmt(r['mb_per_second'], '.1f')} | "
            f"{_fmt(r['events_per_cpu_second'], ',.0f')} | {_fmt(r['bytes_per_event'], '.1f')} | "
            f"{_fmt(r['peak_rss_mb'], ',.0f')} |"
        )
        if r is sf and r.get("end_to_end_seconds"):
            # The same runs, timed until close() has written every event into segments.
            e2e = r["end_to_end_seconds"]
            cpu = r.get("cpu_seconds_incl_close")
            lines.append(
                f"| {r['label']}, until all in segments | {r.get('runs', 1)} | {e2e:.2f} | "
                f"{r['events'] / e2e:,.0f} | {r['file_bytes'] / e2e / 1e6:.1f} | "
                f"{_fmt(r['events'] / cpu if cpu else None, ',.0f')} | "
                f"{_fmt(r['bytes_per_event'], '.1f')} | {_fmt(r['peak_rss_mb'], ',.0f')} |"
            )
    lines.append("")
    for a in report.get("anchors", []):
        extra = ""
        if a["engine"] == "chdb":
            extra = (
                f"; OPTIMIZE FINAL {a['optimize_seconds']:.2f} s (not counted), "
                f"{a['bytes_on_disk_before_optimize'] / a['events']:.1f} B/event before it; "
                f"schema pre-scan {a['prescan_seconds']:.1f} s (not counted"
                + ("; cached from an earlier run)" if a.get("prescan_cached") else ")")
            )
        lines.append(
            f"{a['engine']}: {a['columns']} columns, CPU {a['cpu_seconds']:.2f} s{extra}; "
            f"database kept at {a['location']}"
        )
    if sf is not None and "error" not in sf:
        lines.append(
            f"seqfast: close {sf['close_seconds']:.2f} s (not counted), CPU {sf['cpu_seconds']:.2f}"
            f" s; stats() before close {json.dumps(sf.get('stats'), default=str)}"
        )
        if sf.get("stats_after_close") is not None:
            after = json.dumps(sf["stats_after_close"], default=str)
            lines.append(f"seqfast: stats() after close and reopen {after}")
        elif sf.get("reopen_error"):
            lines.append(f"seqfast: reopening the store failed: {sf['reopen_error']}")
    lines.append("")
    rat = report.get("ratios") or {}
    if rat:
        lines.append("ratios (seqfast / anchor):")
        for engine, r in rat.items():
            lines.append(
                f"  vs {engine}: events/s ×{_fmt(r['events_per_second'], '.2f')}, "
                f"events/CPU-s ×{_fmt(r['events_per_cpu_second'], '.2f')}, "
                f"B/event ×{_fmt(r['bytes_per_event'], '.2f')}, "
                f"peak RSS ×{_fmt(r['peak_rss'], '.2f')}"
            )
    elif sf is not None and "error" in sf:
        lines.append(f"ratios: n/a ({sf['error'].splitlines()[0]})")
    return "\n".join(lines)


def _summarize(runs: list[Result]) -> Result:
    out = anchors.summarize(runs)
    # Keep the per-run stats of the last run rather than a "median" of nested dicts.
    for key in ("stats", "stats_after_close"):
        if key in runs[-1]:
            out[key] = runs[-1][key]
    return out


# -------------------------------------------------------------------------------------------------
# Main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        return _child_main(argv[1:])
    parser = argparse.ArgumentParser(
        description="End-to-end ingest benchmark: seqfast's embedded store (store.ingest_clef "
        "from several threads) against chDB and DuckDB loading the same seeded CLEF corpus. "
        "Every load runs in its own subprocess; medians of interleaved runs are reported.",
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="corpus size (1000000)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (1)")
    parser.add_argument(
        "--corpus", type=Path, help="use this CLEF file instead of the generated corpus"
    )
    parser.add_argument(
        "--batch-bytes", type=int, default=1_000_000, help="seqfast batch size in bytes (1000000)"
    )
    parser.add_argument("--threads", type=int, default=2, help="seqfast feeding threads (2)")
    parser.add_argument(
        "--anchors",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also load the anchors chDB and DuckDB (default: yes)",
    )
    parser.add_argument("--anchor-threads", type=int, default=2, help="anchor threads (2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per system (3)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=BENCH_DIR / ".data",
        help="where the corpus, stores and anchor databases go (bench/.data)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the last seqfast store")
    parser.add_argument(
        "--require-seqfast", action="store_true", help="exit 2 if seqfast cannot be run"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the full report as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.threads < 1 or args.batch_bytes < 1:
        parser.error("--repeat, --threads and --batch-bytes must be positive")

    if args.corpus is not None:
        path = args.corpus.resolve()
        gen_seconds = None
    else:
        t0 = time.perf_counter()
        path = corpus.corpus_path(args.events, args.seed, args.workdir)
        gen_seconds = time.perf_counter() - t0
    anchors.warm_page_cache(path)
    events = anchors.count_lines(path)
    size = path.stat().st_size
    report: Result = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "corpus": {
            "file": str(path),
            "events": events,
            "bytes": size,
            "bytes_per_event": size / events if events else 0.0,
            "seed": None if args.corpus else args.seed,
            "generator": corpus.GENERATOR_VERSION if args.corpus is None else None,
            "generation_seconds": gen_seconds,
        },
        "settings": {
            "batch_bytes": args.batch_bytes,
            "threads": args.threads,
            "anchor_threads": args.anchor_threads,
            "repeat": args.repeat,
        },
    }
    print(f"corpus {path} ({events:,} events, {size / 1e6:,.1f} MB)", file=sys.stderr)

    seqfast_runs: list[Result] = []
    seqfast_error: Result | None = None
    anchor_runs: dict[str, list[Result]] = {}
    anchor_workdir = args.workdir / "anchors" / path.stem
    store_workdir = args.workdir / "ingest"
    for rep in range(args.repeat):
        if seqfast_error is None:
            keep = args.keep and rep == args.repeat - 1
            r = run_seqfast(path, store_workdir, args.batch_bytes, args.threads, keep)
            if "error" in r:
                seqfast_error = r
                print(f"seqfast: {r['error']}", file=sys.stderr)
            else:
                seqfast_runs.append(r)
                _progress("seqfast", rep, args.repeat, r)
        if args.anchors:
            for engine, load in sorted(anchors.ENGINES.items()):
                r = load(path, anchor_workdir, args.anchor_threads)
                anchor_runs.setdefault(engine, []).append(r)
                _progress(engine, rep, args.repeat, r)

    report["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    report["seqfast"] = _summarize(seqfast_runs) if seqfast_runs else seqfast_error
    report["anchors"] = [anchors.summarize(runs) for _, runs in sorted(anchor_runs.items())]
    report["ratios"] = ratios(report["seqfast"], report["anchors"])
    report["runs"] = {"seqfast": seqfast_runs, **anchor_runs}
    if report["seqfast"] is not None and "error" not in report["seqfast"]:
        got = report["seqfast"]["events"]
        if got != events:
            print(f"WARNING: seqfast ingested {got:,} events, file has {events:,}", file=sys.stderr)
    print(format_report(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
    if args.require_seqfast and seqfast_error is not None:
        return 2
    return 0


def _progress(name: str, rep: int, repeat: int, r: Result) -> None:
    print(
        f"{name} run {rep + 1}/{repeat}: {r['load_seconds']:.2f} s, "
        f"{r['events_per_second']:,.0f} events/s, {r['events_per_cpu_second']:,.0f} events/CPU-s, "
        f"{r['bytes_per_event']:.1f} B/event, peak RSS {r['peak_rss_mb']:,.0f} MB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    raise SystemExit(main())
