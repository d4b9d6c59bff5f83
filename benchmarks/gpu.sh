#!/usr/bin/env bash
# Every GPU measurement of layerlab's speed goals in one go, on a machine with a CUDA GPU and torch;
# no network needed, nothing installed: layerlab runs from this checkout (PYTHONPATH=src).
#
#   bash benchmarks/gpu.sh [--data-dir DIR] [--dry-run] [--only TEXT] [--out FILE]
#
#   --data-dir DIR  the four Fashion-MNIST IDX .gz files (default $LAYERLAB_DATA_DIR, else
#                   /usr/share/datasets/fashion-mnist, else benchmarks/data/fashion-mnist)
#   --dry-run       every case on the CPU, 2,000 training images, one epoch, without the cases'
#                   --cuda-graph and --amp: checks the script and its report (numbers mean nothing)
#   --only TEXT     only the cases whose name contains TEXT
#   --out FILE      the report (default benchmarks/results/gpu-<device>.md)
#
# The cases (benchmarks/gpu_bench.py): the article recipes at batch 32, eager and with --cuda-graph;
# the fast presets with --cuda-graph, bf16 and larger batches; and the plain-PyTorch CUDA-graph
# loop they are measured against. Meant to end within 5 minutes on one H100-class GPU (not yet
# timed on one).
#
# Besides torch, layerlab imports numpy, safetensors, rich, pillow, matplotlib and tomli-w. A GPU
# image without tomli-w takes it from benchmarks/wheels/*.whl when its wheel is there (`pip
# download tomli-w -d benchmarks/wheels` on a machine with network); without either, a stand-in
# that writes the flat TOML of a run's config.toml is used for this script only.
set -euo pipefail
CALLER_PWD=$PWD
cd "$(dirname "$0")/.."
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$CALLER_PWD/$1" ;; esac; }

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }
DATA_DIR=${LAYERLAB_DATA_DIR:-}
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --data-dir) DATA_DIR=$(abspath "${2:?--data-dir needs a folder}"); shift ;;
        --dry-run) ARGS+=(--dry-run) ;;
        --only) ARGS+=(--only "${2:?--only needs a text}"); shift ;;
        --out) ARGS+=(--out "$(abspath "${2:?--out needs a file}")"); shift ;;
        -h|--help) usage 0 ;;
        *) echo "gpu.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
    esac
    shift
done
if [ -z "$DATA_DIR" ]; then
    for d in /usr/share/datasets/fashion-mnist benchmarks/data/fashion-mnist; do
        [ -f "$d/train-images-idx3-ubyte.gz" ] && { DATA_DIR=$d; break; }
    done
fi
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    [ -f "${DATA_DIR:-.}/$f" ] || { echo "gpu.sh: Fashion-MNIST's $f not found in '${DATA_DIR:-}'; pass --data-dir DIR" >&2; exit 2; }
done

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
# a pure-Python wheel imports straight from its zip file
for w in benchmarks/wheels/*.whl; do
    [ -f "$w" ] && export PYTHONPATH="$PWD/$w${PYTHONPATH:+:$PYTHONPATH}"
done
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! "$PY" -c "import tomli_w" 2> /dev/null; then
    SHIM=$(mktemp -d "${TMPDIR:-/tmp}/layerlab-gpu.XXXXXX")
    trap 'rm -rf "$SHIM"' EXIT
    cat > "$SHIM/tomli_w.py" <<'PYEOF'
"""Stand-in for tomli-w when it is not installed (benchmarks/gpu.sh only): dumps() for the tables of
scalars and lists that layerlab writes to a run's config.toml."""
import json
import math


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def dumps(d, **_):
    lines = [f"{k} = {_value(v)}" for k, v in d.items() if not isinstance(v, dict) and v is not None]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_value(vv)}" for kk, vv in v.items() if vv is not None]
    return "\n".join(lines).lstrip("\n") + "\n"
PYEOF
    export PYTHONPATH="$SHIM:$PYTHONPATH"
    echo "gpu.sh: tomli-w is not installed here; using a stand-in for writing config.toml"
fi
"$PY" -c "import sys; sys.exit(sys.version_info < (3, 11))" || { echo "gpu.sh: layerlab needs Python 3.11 or newer ($PY is older); set PYTHON=" >&2; exit 2; }
if ! missing=$("$PY" - <<'PYEOF'
import importlib.util
names = ["torch", "numpy", "safetensors", "rich", "PIL", "matplotlib", "tomli_w"]
gone = [n for n in names if importlib.util.find_spec(n) is None]
print(" ".join(gone))
raise SystemExit(1 if gone else 0)
PYEOF
); then
    echo "gpu.sh: $PY cannot import: $missing (a pure-Python one can come as a wheel in benchmarks/wheels/)" >&2
    exit 2
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PY" benchmarks/gpu_bench.py --data-dir "$DATA_DIR" "${ARGS[@]}"
