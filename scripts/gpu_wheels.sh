#!/usr/bin/env bash
# Download the wheels the GPU check needs beyond the GPU machine's own packages: exactly the pins of
# scripts/gpu-wheels.txt, no dependencies, built for Python 3.12 on x86-64 Linux, into .gpu-carry/wheels
# (git-ignored; a few MB). Run it on a machine with internet; scripts/gpu_check.sh installs them.
#   bash scripts/gpu_wheels.sh [FOLDER]
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.gpu-carry/wheels}
python=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
mkdir -p "$dest"
rm -f "$dest"/*.whl # one version of each package: nothing left from an older list
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dest" -r scripts/gpu-wheels.txt
ls -l "$dest"
