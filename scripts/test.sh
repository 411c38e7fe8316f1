#!/usr/bin/env bash
# Run every check: ruff, mypy (strict) and the test suite against real Redis and Cassandra
# servers that the suite starts on loopback and stops afterwards.
# Extra arguments go to pytest (e.g. scripts/test.sh -k queue).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
