#!/usr/bin/env bash
# Install everything (chromium included) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
# One torch thread: on 2 busy cores, two threads can be many times slower than one.
export OMP_NUM_THREADS=1 JUPYTER_PLATFORM_DIRS=1
# Lint and format first: a second or two, and a clear message before the long part.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
