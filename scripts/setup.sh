#!/usr/bin/env bash
# Creates .venv beside the project and installs layerlab into it (editable), with the extras given
# as arguments (e.g. `scripts/setup.sh test`). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
# torch first, pinned to a CPU-capable release that pip can resolve quickly; a CUDA machine can
# install its own build beforehand (any torch>=2.2 already present is kept).
if ! "$VPY" -c "import torch" 2>/dev/null; then
    "$VPY" -m pip install -q "torch==${LAYERLAB_TORCH_VERSION:-2.13.0}"
fi
extras=$(IFS=,; echo "$*")
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
"$VPY" -m pip install -q -e "$spec"
