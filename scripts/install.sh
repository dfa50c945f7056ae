#!/usr/bin/env bash
# Installs AUTO-PRUNE's dependencies into ./.venv (idempotent).
# torch/torchvision are pinned to the releases that pip finds on this kind of machine's
# disk; elsewhere pip downloads the same releases.
set -euo pipefail
cd "$(dirname "$0")/.."
# Fashion-MNIST, the embedded default dataset (Debian package, MIT licence).
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist) \
    || echo "warning: could not install dataset-fashion-mnist; pass data.root=<IDX folder> instead" >&2
fi
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python -m pip install -q -e ".[dev]"
