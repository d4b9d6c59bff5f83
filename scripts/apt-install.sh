#!/usr/bin/env bash
# Best effort: installs the given Debian packages that are missing, when this machine has apt-get.
#   dataset-fashion-mnist  the Fashion-MNIST IDX files, /usr/share/datasets/fashion-mnist (elsewhere
#                          layerlab downloads them, verified by SHA-256, or reads --data-dir)
#   chromium               headless browser for the test that renders `layerlab report` (skipped without it)
#   postgresql             a throwaway server for the test of `layerlab tune` on a database (skipped without it)
# Never fails: without a package, layerlab and its tests say what is missing.
set -uo pipefail
missing=()
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || { echo "no apt-get: not installing ${missing[*]}" >&2; exit 0; }
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq >/dev/null 2>&1 || true
for pkg in "${missing[@]}"; do
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 \
        || echo "could not install $pkg; continuing without it" >&2
done
exit 0
