#!/usr/bin/env bash
# The one benchmark command: makes (or reuses) the virtual environment ci/test.sh uses, installs
# seqfast with its bench extra (which builds the native extension), and runs a benchmark.
#
#   ci/bench.sh [ARGS...]            end-to-end ingest benchmark: bench/ingest.py ARGS
#   ci/bench.sh ingest [ARGS...]     the same
#   ci/bench.sh anchors FILE [ARGS]  load a CLEF file into chDB and DuckDB: bench/anchors.py
#   ci/bench.sh query [ARGS...]      end-to-end query benchmark against chDB and DuckDB:
#                                    bench/query.py ARGS (--quick: 1M events only)
#   ci/bench.sh corpus N [SEED ...]  generate a corpus: bench/corpus.py
#   ci/bench.sh micro [ARGS...]      pytest-benchmark micro-benchmarks under bench/ (pytest ARGS)
#   ci/bench.sh failover [ARGS...]   cluster failover after SIGKILL/SIGTERM: bench/failover.py
#                                    (needs PostgreSQL on 127.0.0.1:5432, database `test`)
#
# Examples: ci/bench.sh --events 100000 --repeat 1;  ci/bench.sh --json bench/.data/ingest.json
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SEQFAST_VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install --quiet -e '.[bench]'

cmd=ingest
case "${1:-}" in
    ingest|anchors|corpus|query|micro|failover) cmd=$1; shift ;;
esac

case "$cmd" in
    micro)
        status=0
        "$VENV/bin/python" -m pytest bench -p no:cacheprovider --benchmark-only "$@" || status=$?
        if [ "$status" -eq 5 ]; then  # pytest: no tests collected
            echo "ci/bench.sh: no micro-benchmarks under bench/" >&2
            status=0
        fi
        exit "$status"
        ;;
    *)
        exec "$VENV/bin/python" "bench/$cmd.py" "$@"
        ;;
esac
