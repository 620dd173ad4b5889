#!/usr/bin/env bash
# Builds the double-click application: dist/gradcam-inspector/gradcam-inspector (one folder).
#
#   packaging/build.sh            # from the repository root or anywhere; Python 3.11 needed
#
# It uses the venv in $VENV (default: .venv in the repository, created when missing), installs
# the project with its `build` extra (PyInstaller) into it, runs PyInstaller with
# packaging/gradcam_inspector.spec, runs the bundle's --self-test and prints the bundle's size
# by top folder. Work files go to build/pyinstaller, the bundle to dist/ (both git-ignored).
# Environment: VENV (venv folder), PYTHON (interpreter that creates it, default python3.11),
# SKIP_SELF_TEST=1 (do not run the bundle after building).
#
# The bundle keeps the CUDA libraries (about 2.9 GB of its 4.4 GB): the CUDA build of torch
# cannot be imported without them (libtorch_cuda.so links cuDNN, cuBLAS, ...), so there is no
# switch to drop them. A CPU-only bundle needs CPU builds of torch and torchvision in the venv
# (not tried here, where that index cannot be reached):
#   python3.11 -m venv .venv-cpu
#   .venv-cpu/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
#   VENV=.venv-cpu packaging/build.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
DIST="$ROOT/dist"
WORK="$ROOT/build/pyinstaller"
APP="$DIST/gradcam-inspector"

cd "$ROOT"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "== creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
echo "== installing the project with the build extra"
"$VENV/bin/python" -m pip install --quiet -e ".[build]"

echo "== running PyInstaller (several minutes: torch is large)"
start=$(date +%s)
"$VENV/bin/python" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "$WORK" packaging/gradcam_inspector.spec
echo "== built $APP in $(($(date +%s) - start)) s"

if [[ "${SKIP_SELF_TEST:-0}" != 1 ]]; then
    echo "== self-test of the bundle"
    "$APP/gradcam-inspector" --self-test
fi

echo "== bundle size by top folder (_internal/...)"
du -sh "$APP"
du -s --block-size=1M "$APP/_internal"/* | sort -rn | head -15 \
    | awk '{printf "%8d MB  %s\n", $1, $2}'
