#!/usr/bin/env bash
# The main job: install, run the whole pipeline on the embedded default, build the site with
# the pipeline's real outputs and serve it on http://127.0.0.1:8000 (Ctrl-C stops it).
#   LLMKB_PROFILE=quick bash scripts/run.sh   # the fast profile the tests use
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${LLMKB_PROFILE:-default}
# One torch thread per stage when stages run side by side (two busy cores make two threads each many
# times slower); the pipeline gives a stage that runs alone (pretraining) every core.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
bash scripts/setup.sh
.venv/bin/llmkb pipeline --profile "$profile"
exec .venv/bin/llmkb docs serve --profile "$profile" --port "${PORT:-8000}"
