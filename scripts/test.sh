#!/usr/bin/env bash
# Install everything the test suite needs into .venv and run all checks: lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

.venv/bin/ruff check live_server tests scripts
.venv/bin/ruff format --check live_server tests scripts
.venv/bin/mypy
.venv/bin/pytest "$@"
