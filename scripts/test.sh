#!/usr/bin/env bash
# Install everything (chromium included) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
# One torch thread: on 2 busy cores, two threads can be many times slower than one.
export OMP_NUM_THREADS=1 JUPYTER_PLATFORM_DIRS=1
exec .venv/bin/python -m pytest "$@"
