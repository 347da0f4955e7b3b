#!/usr/bin/env bash
# Install llmkb and everything its main job and tests need into ./.venv (idempotent).
#   bash scripts/setup.sh            # Python packages only
#   bash scripts/setup.sh --browser  # also Debian's chromium for the browser tests (needs root or sudo)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info >= (3, 11), "llmkb needs Python >= 3.11"'
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch 2.13.0 is the release these pages were measured with; a CPU build of it may already lie on disk.
.venv/bin/python -c 'import torch' 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[dev]"

if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ -z "$sudo" ] || command -v sudo >/dev/null; then
    $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing and there is no root or sudo here: the browser tests will be skipped" >&2
  fi
fi

# axe-core for the accessibility check (tests/test_browser_a11y.py), from the npm registry into the
# gitignored .browser-tools/. Pinned: a new axe release can add rules, and the check should change
# only when we choose to upgrade.
AXE_VERSION=4.14.1
if [ "${1:-}" = "--browser" ]; then
  if ! command -v npm >/dev/null; then
    echo "npm is missing: the accessibility test will be skipped, or fail where CI is set (apt-get install -y npm)" >&2
  elif ! grep -qs "\"version\": \"$AXE_VERSION\"" .browser-tools/node_modules/axe-core/package.json; then
    npm install --prefix .browser-tools --no-save --no-audit --no-fund --ignore-scripts --silent "axe-core@$AXE_VERSION"
  fi
fi
