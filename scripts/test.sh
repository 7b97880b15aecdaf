#!/usr/bin/env bash
# Install everything the test suite needs into .venv (the versions of requirements.lock) and run
# all checks: lint, types, tests. Arguments go to pytest (e.g. `-m "not slow"`).
set -euo pipefail
cd "$(dirname "$0")/.."

# The page's tests run in Debian's Chromium, and the page needs its npm packages (VAD, ONNX).
# The tests of several processes start private PostgreSQL and Redis servers of their own.
need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v npm >/dev/null || need_apt+=(nodejs npm)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
command -v redis-server >/dev/null || need_apt+=(redis-server)
if ((${#need_apt[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    apt=(env DEBIAN_FRONTEND=noninteractive apt-get -y -qq)
    $sudo "${apt[@]}" install "${need_apt[@]}" >/dev/null ||
        { $sudo "${apt[@]}" update && $sudo "${apt[@]}" install "${need_apt[@]}" >/dev/null; }
fi
bash scripts/install.sh --test

.venv/bin/ruff check live_server tests scripts
.venv/bin/ruff format --check live_server tests scripts
.venv/bin/mypy
.venv/bin/pytest "$@"
