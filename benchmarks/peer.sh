#!/usr/bin/env bash
# Peer benchmark: the article's own Keras programs against layerlab's article recipe, on the same
# Fashion-MNIST files, on this machine, one program after the other (never at the same time).
#
#   bash benchmarks/peer.sh [cnn|lstm|all] [--fast] [--epochs N] [--limit-train N] [--data-dir DIR]
#                           [--out DIR] [--seed S] [--note TEXT] [--no-setup]
#
#   cnn|lstm|all     which model(s) (default all: CNN, then LSTM)
#   --fast           time to accuracy: the Keras program's epochs against layerlab's fast presets
#                    (article_cnn_fast, article_lstm_fast: the article's layers, their own batch
#                    size, schedule and epochs) instead of the article recipe; the report gives
#                    Keras's training seconds over the preset's, and whether the preset reached
#                    the Keras program's accuracy (CNN 0.897, LSTM 0.886)
#   --epochs N       epochs per run (default 10, the article's); with --fast, the Keras program's
#   --limit-train N  train on the first N images only: a quick harness check, NOT the article's
#                    recipe (the report says so in bold)
#   --data-dir DIR   folder with the four Fashion-MNIST IDX .gz files
#                    (default $LAYERLAB_DATA_DIR, else /usr/share/datasets/fashion-mnist)
#   --out DIR        results folder (default benchmarks/results/<UTC time>-<models>-e<N>[-limit<N>])
#   --seed S         Keras seed (default 0); given explicitly, also passed to layerlab (whose
#                    config's seed stands otherwise)
#   --note TEXT      a line to print at the top of the report (e.g. "measured under load")
#   --layerlab-args "FLAGS"  extra flags for `layerlab train` (e.g. "--threads 1"); the report
#                    names them, since the run is then no longer what a user gets by default
#   --no-setup       skip scripts/setup.sh and the TensorFlow install check
#
# Writes RESULTS/report.md (the tables), epochs.csv, results.json, machine.json, and raw/ (the
# Keras JSON, layerlab's metrics.csv, both logs). See benchmarks/README.md.
# For testing the harness with a stand-in: LAYERLAB_CLI=path replaces .venv/bin/layerlab and
# PEER_CONFIG_DIR=dir replaces the packaged presets article_cnn and article_lstm (with --fast:
# article_cnn_fast, article_lstm_fast) with dir/<name>.toml.
set -euo pipefail
CALLER_PWD=$PWD
cd "$(dirname "$0")/.."
ROOT=$PWD

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

MODELS=all FAST=0 EPOCHS=10 LIMIT=0 SEED=0 SEED_GIVEN=0 OUT="" NOTE="" SETUP=1 LL_ARGS=""
DATA_DIR=${LAYERLAB_DATA_DIR:-/usr/share/datasets/fashion-mnist}
ORIG_ARGS=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        cnn|lstm|all) MODELS=$1 ;;
        --fast) FAST=1 ;;
        --epochs) EPOCHS=${2:?--epochs needs a number}; shift ;;
        --limit-train) LIMIT=${2:?--limit-train needs a number}; shift ;;
        --data-dir) DATA_DIR=${2:?--data-dir needs a folder}; shift ;;
        --out) OUT=${2:?--out needs a folder}; shift ;;
        --seed) SEED=${2:?--seed needs a number}; SEED_GIVEN=1; shift ;;
        --note) NOTE=${2:?--note needs a text}; shift ;;
        --layerlab-args) LL_ARGS=${2?--layerlab-args needs flags}; shift ;;
        --no-setup) SETUP=0 ;;
        -h|--help) usage 0 ;;
        *) echo "peer.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
    esac
    shift
done
for n in "$EPOCHS" "$LIMIT" "$SEED"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { echo "peer.sh: '$n' is not a whole number" >&2; exit 2; }
done
[ "$EPOCHS" -ge 1 ] || { echo "peer.sh: --epochs must be at least 1" >&2; exit 2; }
# Relative paths given on the command line are relative to where the command was typed.
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$CALLER_PWD/$1" ;; esac; }
DATA_DIR=$(abspath "$DATA_DIR")
[ -n "$OUT" ] && OUT=$(abspath "$OUT")
case "$MODELS" in all) MODEL_LIST="cnn lstm" ;; *) MODEL_LIST=$MODELS ;; esac
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    [ -f "$DATA_DIR/$f" ] || { echo "peer.sh: $DATA_DIR/$f not found; pass --data-dir or set LAYERLAB_DATA_DIR (Debian: apt install dataset-fashion-mnist)" >&2; exit 2; }
done
DATA_DIR=$(cd "$DATA_DIR" && pwd)

# ---------------------------------------------------------------- environments (idempotent)
PEER_VENV=benchmarks/.peer-venv
TF_VERSION=${PEER_TF_VERSION:-2.21.0}
if [ "$SETUP" = 1 ]; then
    echo "== layerlab environment: bash scripts/setup.sh"
    bash scripts/setup.sh
    if ! "$PEER_VENV/bin/python" -c "import sys, tensorflow as tf, keras; sys.exit(tf.__version__ != '$TF_VERSION')" 2>/dev/null; then
        echo "== peer environment: tensorflow-cpu==$TF_VERSION into $PEER_VENV (a few minutes, ~600 MB, once)"
        [ -x "$PEER_VENV/bin/python" ] || python3 -m venv "$PEER_VENV"
        "$PEER_VENV/bin/pip" install -q "tensorflow-cpu==$TF_VERSION"
    fi
fi
LAYERLAB=${LAYERLAB_CLI:-$ROOT/.venv/bin/layerlab}
[ -x "$LAYERLAB" ] || { echo "peer.sh: $LAYERLAB not found; run bash scripts/setup.sh" >&2; exit 2; }
[ -x "$PEER_VENV/bin/python" ] || { echo "peer.sh: $PEER_VENV missing; run without --no-setup once" >&2; exit 2; }
# The presets ship inside layerlab (`layerlab presets`); --config takes their names.
SUFFIX=""; [ "$FAST" = 1 ] && SUFFIX=_fast
config_for() { if [ -n "${PEER_CONFIG_DIR:-}" ]; then echo "$PEER_CONFIG_DIR/article_$1$SUFFIX.toml"; else echo "article_$1$SUFFIX"; fi; }
if [ -n "${PEER_CONFIG_DIR:-}" ]; then
    for m in $MODEL_LIST; do
        [ -f "$(config_for "$m")" ] || { echo "peer.sh: $(config_for "$m") not found" >&2; exit 2; }
    done
fi

# ---------------------------------------------------------------- results folder
TAG="$(date -u +%Y%m%d-%H%M%S)-${MODELS}-e${EPOCHS}"
[ "$FAST" = 1 ] && TAG="$TAG-fast"
[ "$LIMIT" -gt 0 ] && TAG="$TAG-limit$LIMIT"
RES=${OUT:-benchmarks/results/$TAG}
mkdir -p "$RES/raw"
RES=$(cd "$RES" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/layerlab-peer.XXXXXX")   # layerlab run dirs (checkpoints) stay out of the repo
trap 'rm -rf "$WORK"' EXIT

python3 benchmarks/peer_tools.py machine > "$RES/machine.json"
"$ROOT/.venv/bin/python" - > "$RES/raw/layerlab_env.json" <<'EOF'
import json, platform, torch
from importlib.metadata import version, PackageNotFoundError
try:
    ll = version("layerlab")
except PackageNotFoundError:
    ll = None
print(json.dumps({"python": platform.python_version(), "torch": torch.__version__, "layerlab": ll,
                  "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
                  "mkldnn": torch.backends.mkldnn.is_available()}, indent=2))
EOF

RUN_DATA=$DATA_DIR
if [ "$LIMIT" -gt 0 ]; then
    RUN_DATA=$WORK/data-limit$LIMIT
    python3 benchmarks/peer_tools.py subset "$DATA_DIR" "$RUN_DATA" "$LIMIT"
    echo "!! --limit-train $LIMIT: training on the first $LIMIT images only. NOT the article's recipe."
fi
python3 - "$RES/run.json" "$MODEL_LIST" "$EPOCHS" "$LIMIT" "$SEED" "$DATA_DIR" "$NOTE" "$LL_ARGS" "$FAST" "${ORIG_ARGS[@]}" <<'EOF'
import json, shlex, sys
path, models, epochs, limit, seed, data_dir, note, ll_args, fast, *argv = sys.argv[1:]
json.dump({"command": shlex.join(["bash", "benchmarks/peer.sh", *argv]), "models": models.split(), "epochs": int(epochs), "limit_train": int(limit) or None,
           "layerlab_side": "fast" if fast == "1" else "recipe",
           "seed": int(seed), "data_dir": data_dir, "note": note or None, "layerlab_args": ll_args or None,
           "order": "per model: Keras first, then layerlab, never at the same time"},
          open(path, "w"), indent=2)
EOF

LOAD=$(python3 benchmarks/peer_tools.py loadavg)
NCPU=$(nproc)
echo "== results: $RES"
echo "== load average now: $LOAD on $NCPU CPUs"
if python3 -c "import sys; sys.exit(not float('${LOAD%% *}') > 0.25 * $NCPU)"; then
    echo "!! the machine is not idle (load $LOAD on $NCPU CPUs): other work will slow both sides unevenly."
fi

# Extra flags: the subset size for Keras (recorded in its JSON; the files are already cut), and
# the seed for layerlab only when asked for (otherwise its config's seed stands).
KERAS_EXTRA=() LAYERLAB_EXTRA=()
[ "$LIMIT" -gt 0 ] && KERAS_EXTRA+=(--limit-train "$LIMIT")
[ "$SEED_GIVEN" = 1 ] && LAYERLAB_EXTRA+=(--seed "$SEED")
# shellcheck disable=SC2206  # word-splitting the user's flags is the point
[ -n "$LL_ARGS" ] && LAYERLAB_EXTRA+=($LL_ARGS)
RUN_SIDE=(python3 benchmarks/peer_tools.py run)
: > "$RES/raw/sides.jsonl"
for m in $MODEL_LIST; do
    echo
    echo "== [$m] Keras (article program), $EPOCHS epoch(s)"
    "${RUN_SIDE[@]}" keras "$m" "$RES/raw/keras_$m.log" "$RES/raw/sides.jsonl" -- \
        "$PEER_VENV/bin/python" benchmarks/keras_article.py --model "$m" --epochs "$EPOCHS" \
        --data-dir "$RUN_DATA" --seed "$SEED" --out "$RES/raw/keras_$m.json" "${KERAS_EXTRA[@]}" \
        || { echo "peer.sh: the Keras $m program failed; its log is $RES/raw/keras_$m.log" >&2; exit 1; }

    echo
    # the recipe trains the Keras program's epochs; a fast preset its own
    EPOCH_ARGS=(--epochs "$EPOCHS") EPOCH_TEXT="$EPOCHS epoch(s)"
    [ "$FAST" = 1 ] && EPOCH_ARGS=() EPOCH_TEXT="the epochs it sets"
    echo "== [$m] layerlab (--config $(config_for "$m")), $EPOCH_TEXT"
    "${RUN_SIDE[@]}" layerlab "$m" "$RES/raw/layerlab_$m.log" "$RES/raw/sides.jsonl" -- \
        "$LAYERLAB" train --config "$(config_for "$m")" --data-dir "$RUN_DATA" "${EPOCH_ARGS[@]}" \
        --out "$WORK/layerlab_$m" "${LAYERLAB_EXTRA[@]}" \
        || { echo "peer.sh: layerlab train ($m) failed; its log is $RES/raw/layerlab_$m.log" >&2; exit 1; }
    # Keep the small records of the run (metrics, resolved config, summary), not its checkpoints.
    mkdir -p "$RES/raw/layerlab_$m"
    find "$WORK/layerlab_$m" -maxdepth 1 -type f \( -name '*.csv' -o -name '*.toml' -o -name '*.json' -o -name '*.jsonl' -o -name '*.txt' \) \
        -size -2M -exec cp {} "$RES/raw/layerlab_$m/" \;
    [ -f "$RES/raw/layerlab_$m/metrics.csv" ] || { echo "peer.sh: layerlab wrote no metrics.csv in its run directory" >&2; exit 1; }
done

echo
python3 benchmarks/peer_tools.py report "$RES"
