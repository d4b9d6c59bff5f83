#!/usr/bin/env bash
# The main job, from a fresh clone: set up, get Fashion-MNIST, train the article's CNN with the
# article's recipe (the packaged preset article_cnn: 10 epochs, Adam 1e-3, batch 32), evaluate it on the
# test set and print the accuracy. Extra arguments go to `layerlab train` (e.g. --epochs 1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/apt-install.sh dataset-fashion-mnist
run="runs/article-cnn-$(date +%Y%m%d-%H%M%S)"
.venv/bin/layerlab train --config article_cnn --out "$run" "$@"
.venv/bin/layerlab evaluate "$run"
