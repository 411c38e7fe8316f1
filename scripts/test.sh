#!/usr/bin/env bash
# Run every check: ruff, mypy (strict) and the test suite against real Redis, Cassandra and
# RabbitMQ servers that the suite starts on loopback and stops afterwards.
# Extra arguments go to pytest (e.g. scripts/test.sh -k queue).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test-tools
echo "== lock"
# uv.lock must still be the resolution of pyproject.toml (scripts/lock.sh re-locks).
UV_PYTHON_DOWNLOADS=never .cache/uv/bin/uv lock --check --python "${PYTHON:-python3}" --quiet
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest --durations=25 "$@"
