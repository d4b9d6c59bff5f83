#!/usr/bin/env bash
# Installs Debian's dataset-fashion-mnist package (IDX files under /usr/share/datasets/fashion-mnist)
# when it is missing and this machine has apt-get. Elsewhere layerlab downloads the files itself
# (verified by SHA-256) or reads them from --data-dir.
set -euo pipefail
[ -d /usr/share/datasets/fashion-mnist ] && exit 0
command -v apt-get >/dev/null || { echo "no apt-get: layerlab will download Fashion-MNIST or read --data-dir" >&2; exit 0; }
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq >/dev/null || true
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null \
    || echo "could not install dataset-fashion-mnist; layerlab will try its other sources" >&2
