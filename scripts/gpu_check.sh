#!/usr/bin/env bash
# Every stage's GPU path in one command, measured (llmkb/gpu_check.py says what each phase does).
#   On a CPU machine with llmkb's dependencies and internet, once:
#       bash scripts/gpu_wheels.sh && bash scripts/gpu_check.sh --prepare     # fills .gpu-carry/ (a few MB)
#   Then, on the GPU machine (torch with CUDA, transformers, peft; no internet needed; the other packages
#   it needs are those of scripts/gpu-wheels.txt: trl, datasets, dill, multiprocess), with the
#   working tree and .gpu-carry/ carried along:
#       bash scripts/gpu_check.sh [--steps 300] [--phases pretrain,generation] [--out DIR]
#   It writes DIR/results.json and DIR/summary.md (DIR: --out, else $OUT, else gpu-check/). Without a
#   GPU it runs what it can, says that no GPU was found and exits 0. PYTHON=... picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
wheels=.gpu-carry/wheels
# The carried wheels go into a folder outside the tree, only where the packages are not installed already.
if ls "$wheels"/*.whl >/dev/null 2>&1 && ! "$python" -c "import trl, datasets" >/dev/null 2>&1; then
  site=${TMPDIR:-/tmp}/llmkb-gpu-site
  echo "gpu check: installing $(ls "$wheels"/*.whl | wc -l) carried wheels into $site"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
exec "$python" -m llmkb.gpu_check "$@"
