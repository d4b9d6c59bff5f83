#!/usr/bin/env bash
# Builds the documentation site into site/ (open site/index.html; it needs no server and fetches
# nothing): sets up .venv with the docs extra as scripts/setup.sh does, then `mkdocs build --strict`,
# which fails on a broken link, a missing API reference or a tutorial cell that raises.
# The command pages are written from the CLI's parser while it builds (scripts/docs_hooks.py).
# Extra arguments go to `mkdocs build` (e.g. `-d /tmp/site`). `python scripts/docs_screenshots.py` then takes
# docs/screenshots/ again from the built site (headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh docs
export NO_MKDOCS_2_WARNING=1 MPLBACKEND=Agg
exec .venv/bin/mkdocs build --strict -d site/ "$@"
