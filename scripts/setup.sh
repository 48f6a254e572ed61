#!/usr/bin/env bash
# One-time (and idempotent) set-up: Debian packages, the Python oracle venv, CMake configure and build.
# Re-running with nothing to do is a quick no-op. Logs go to build/setup.log.
#
# Environment knobs:
#   L4_BUILD_DIR   build directory (default: build)
#   L4_BUILD_TYPE  CMake build type (default: Release)
#   L4_VENV        Python venv (default: .venv)
#   Torch_DIR      use your own LibTorch instead of the venv's torch
#   L4_SKIP_APT=1  never touch system packages
#   L4_JOBS        parallel build jobs (default: number of cores)
#   L4_BUILD_TARGETS  build only these targets (space-separated; default: all)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${L4_BUILD_DIR:-$ROOT/build}
VENV=${L4_VENV:-$ROOT/.venv}
BUILD_TYPE=${L4_BUILD_TYPE:-Release}
JOBS=${L4_JOBS:-$(nproc)}
mkdir -p "$BUILD_DIR"
LOG=$BUILD_DIR/setup.log
: >"$LOG"

step() { printf '[setup] %s\n' "$*"; }
fail() {
  printf '[setup] FAILED: %s (log: %s)\n' "$1" "$LOG" >&2
  tail -n 25 "$LOG" >&2 || true
  exit 1
}

# --- 1. Debian packages --------------------------------------------------------------------------
APT_PACKAGES=(cmake ninja-build ccache g++ libopenmpi-dev openmpi-bin libyaml-cpp-dev libhdf5-dev libfmt-dev
  libgtest-dev nlohmann-json3-dev libpcre2-dev libstb-dev libzstd-dev zlib1g-dev python3-venv)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})) && [[ "${L4_SKIP_APT:-0}" != 1 ]]; then
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || fail "missing packages (${missing[*]}) and no sudo: install them as root"
    SUDO=(sudo -n)
  fi
  step "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq >>"$LOG" 2>&1 || fail "apt-get update"
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1 ||
    fail "apt-get install ${missing[*]}"
fi

# --- 2. Python venv with the pinned oracles ------------------------------------------------------
REQ=$ROOT/scripts/requirements.txt
STAMP=$VENV/.l4-requirements.sha256
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || ! -f $STAMP || $(cat "$STAMP") != "$want" ]]; then
  step "creating Python venv $VENV (pinned oracles, CPU torch)"
  PY=${L4_PYTHON:-python3}
  [[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV" >>"$LOG" 2>&1 || fail "python venv"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >>"$LOG" 2>&1 ||
    fail "pip install -r scripts/requirements.txt"
  echo "$want" >"$STAMP"
fi

# --- 3. Configure and build ----------------------------------------------------------------------
if [[ -z "${Torch_DIR:-}" ]]; then
  Torch_DIR=$("$VENV/bin/python" -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')
fi
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  step "configuring ($BUILD_TYPE) in $BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DTorch_DIR="$Torch_DIR" \
    -DL4_PYTHON="$VENV/bin/python" ${L4_CMAKE_ARGS:-} >>"$LOG" 2>&1 || fail "cmake configure"
fi
# L4_BUILD_TARGETS narrows the build (the quickstart needs only the llama4 binary; tests need all).
TARGETS=()
for t in ${L4_BUILD_TARGETS:-}; do TARGETS+=(--target "$t"); done
step "building (-j$JOBS${L4_BUILD_TARGETS:+, targets: $L4_BUILD_TARGETS})"
cmake --build "$BUILD_DIR" -j "$JOBS" "${TARGETS[@]}" >>"$LOG" 2>&1 || fail "build"
step "ready: $BUILD_DIR/bin/llama4"
