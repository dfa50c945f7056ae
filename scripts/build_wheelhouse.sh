#!/usr/bin/env bash
# Builds a wheelhouse for installing AUTO-PRUNE where there is no internet (e.g. a GPU cluster):
# on a connected machine,
#   bash scripts/build_wheelhouse.sh DIR [--python-version 3.12] [--platform manylinux_2_28_x86_64]
# then copy DIR and this repository over and run there
#   bash scripts/install.sh --wheelhouse DIR
# Without --python-version/--platform the wheels match this machine. With them pip takes binary
# wheels only (it cannot build for another interpreter), so every dependency must publish one.
# For CUDA builds of torch, add --index-url https://download.pytorch.org/whl/cu128 (passed to pip).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/build_wheelhouse.sh DIR [pip download options]" >&2; exit 2; }
DIR="$1"; shift
mkdir -p "$DIR"
PIP_ARGS=("$@")
for arg in "${PIP_ARGS[@]}"; do
  case "$arg" in --python-version|--platform) PIP_ARGS+=("--only-binary=:all:"); break ;; esac
done
PYTHON="${PYTHON:-python3}"
# The same pins as scripts/install.sh, setuptools for the project's metadata, and every
# dependency of pyproject.toml with its dev extra.
REQUIREMENTS="$(mktemp)"; trap 'rm -f "$REQUIREMENTS"' EXIT
"$PYTHON" - "$REQUIREMENTS" <<'PY'
import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
pins = ["torch==2.14.1", "torchvision==0.29.1", "setuptools>=68"]
requirements = pins + [r for r in project["dependencies"] if not r.startswith(("torch>", "torchvision>"))]
requirements += project["optional-dependencies"]["dev"]
open(sys.argv[1], "w").write("\n".join(requirements) + "\n")
PY
"$PYTHON" -m pip download -d "$DIR" -r "$REQUIREMENTS" "${PIP_ARGS[@]}"
echo "wheelhouse ready: $DIR ($(ls "$DIR" | wc -l) files); install offline with: bash scripts/install.sh --wheelhouse $DIR"
