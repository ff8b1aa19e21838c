#!/usr/bin/env bash
# Set up a virtualenv (.venv) with dpsched and its dev tools, then run the whole suite:
# ruff, mypy on src/, pytest. Used by the README quick start and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
.venv/bin/ruff check src tests benchmarks examples
.venv/bin/ruff format --check src tests benchmarks examples
.venv/bin/mypy src
.venv/bin/python -m pytest "$@"
