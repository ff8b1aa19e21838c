#!/usr/bin/env bash
# Set up a virtualenv (.venv) with dpsched, then compare every policy on the shipped
# mixed-workload instance (150 tasks, 10 blocks, RDP curves from dp-accounting).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
.venv/bin/dpsched compare examples/mixed-150.yaml
