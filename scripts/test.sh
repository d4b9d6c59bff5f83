#!/usr/bin/env bash
# The test suite, from a fresh clone: creates .venv, installs layerlab with its test extra and the
# real Fashion-MNIST files (for the few real-data tests), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
bash scripts/install-fashion-mnist.sh
exec .venv/bin/python -m pytest "$@"
