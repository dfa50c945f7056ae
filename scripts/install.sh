#!/usr/bin/env bash
# Installs AUTO-PRUNE's dependencies into ./.venv (or $VENV), idempotently.
#   bash scripts/install.sh                      # from the package index
#   bash scripts/install.sh --wheelhouse DIR     # offline, from wheels only (scripts/build_wheelhouse.sh)
# torch/torchvision are pinned to the releases that pip finds on this kind of machine's
# disk; elsewhere pip downloads the same releases.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELHOUSE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wheelhouse) [ $# -ge 2 ] || { echo "install.sh: --wheelhouse needs a folder" >&2; exit 2; }
                  WHEELHOUSE="$2"; shift 2 ;;
    *) echo "install.sh: unknown argument '$1' (expected --wheelhouse DIR)" >&2; exit 2 ;;
  esac
done
TORCH_PINS=("torch==2.14.1" "torchvision==0.29.1")
VENV="${VENV:-.venv}"
if [ -n "$WHEELHOUSE" ]; then
  if [ ! -d "$WHEELHOUSE" ] || [ -z "$(ls "$WHEELHOUSE"/*.whl 2>/dev/null)" ]; then
    echo "install.sh: --wheelhouse $WHEELHOUSE holds no wheels (build one with scripts/build_wheelhouse.sh)" >&2
    exit 2
  fi
  # Wheels from the folder only: no index, no network, and no build isolation (which would fetch
  # setuptools); the wheelhouse carries setuptools for building the project's metadata.
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$(cd "$WHEELHOUSE" && pwd)"
  unset PIP_INDEX_URL PIP_EXTRA_INDEX_URL
fi
# Fashion-MNIST, the embedded default dataset (Debian package, MIT licence); offline, bring it yourself.
if [ -z "$WHEELHOUSE" ] && [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist) \
    || echo "warning: could not install dataset-fashion-mnist; pass data.root=<IDX folder> instead" >&2
fi
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
. "$VENV/bin/activate"
if [ -n "$WHEELHOUSE" ]; then
  fail() { echo "install.sh: the wheelhouse $WHEELHOUSE lacks a wheel this install needs (see pip's message" \
                "above); rebuild it with scripts/build_wheelhouse.sh for this Python and platform" >&2; exit 1; }
  python -m pip install -q "setuptools>=68" || fail
  python -m pip install -q "${TORCH_PINS[@]}" || fail
  python -m pip install -q --no-build-isolation -e ".[dev]" || fail
else
  python -m pip install -q --upgrade pip
  python -m pip install -q "${TORCH_PINS[@]}"
  python -m pip install -q -e ".[dev]"
fi
