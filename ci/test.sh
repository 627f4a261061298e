#!/usr/bin/env bash
# The one test command: makes (or reuses) a virtual environment, installs seqfast with its test
# extras (which builds the native extension), makes sure the services the suite talks to answer,
# and runs the whole suite.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SEQFAST_VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install --quiet -e '.[test]'

# PostgreSQL: the cluster tests run against a real server on 127.0.0.1:5432; start it if it is down.
ensure_postgres() {
    if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
        return 0
    fi
    if command -v pg_ctlcluster >/dev/null; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && return 0
        sleep 1
    done
    echo "ci/test.sh: PostgreSQL does not answer on 127.0.0.1:5432" >&2
    return 1
}
ensure_postgres

# Node.js: the API tests send events with the npm package seq-logging (tests/api/node), as a
# Node.js application would.  Install Node.js with apt-get when it is missing, then the packages
# exactly as locked.  Without Node.js that test fails and says why; the rest of the suite runs.
ensure_node_deps() {
    if ! { command -v node && command -v npm; } >/dev/null && command -v apt-get >/dev/null; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; } \
            >/dev/null || echo "ci/test.sh: could not install Node.js with apt-get" >&2
    fi
    if command -v node >/dev/null && command -v npm >/dev/null; then
        npm ci --prefix tests/api/node --no-audit --no-fund --loglevel=error \
            || echo "ci/test.sh: npm ci in tests/api/node failed" >&2
    else
        echo "ci/test.sh: Node.js (node and npm) is not available" >&2
    fi
}
ensure_node_deps

# Derandomized property tests: a run is reproducible from the commit (tests/conftest.py).
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
exec "$VENV/bin/python" -m pytest "$@"
