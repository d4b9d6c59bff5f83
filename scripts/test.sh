#!/usr/bin/env bash
# The test suite, from a fresh clone: creates .venv, installs layerlab with its test extra, the real
# Fashion-MNIST files (for the few real-data tests), Chromium (for the report-rendering test) and PostgreSQL
# (for the test of `layerlab tune` on a database server), then checks lint, formatting, the import
# contracts and types (ruff, import-linter, mypy: configured in pyproject.toml; each failure stops the
# script), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
bash scripts/apt-install.sh dataset-fashion-mnist chromium postgresql
.venv/bin/ruff check src tests benchmarks scripts examples
.venv/bin/ruff format --check src tests benchmarks scripts examples
.venv/bin/lint-imports --no-cache
.venv/bin/mypy     # the type checker on src/ (configured in pyproject.toml)
exec .venv/bin/python -m pytest "$@"
