#!/usr/bin/env bash
# Static checks: ruff (lint and format) and mypy, in the same environment ci/test.sh makes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SEQFAST_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet -e '.[test,dev]'
"$VENV/bin/python" -m ruff check seqfast tests bench
"$VENV/bin/python" -m ruff format --check seqfast tests bench
"$VENV/bin/python" -m mypy
