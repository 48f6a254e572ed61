#!/usr/bin/env bash
# Compile-and-link check of the NCCL communicator on a machine without a GPU or a CUDA LibTorch.
#
# The LibTorch we link is the CPU build, so CMake does not build NcclCommunicator here. This script
# compiles src/parallel/nccl_communicator.cpp (with the small sources it calls) against
#   - NCCL headers + libnccl.so.2 from the pinned nvidia-nccl-cu13 wheel (pip download from the configured
#     index, extracted into .deps/nccl, ignored by git),
#   - the CUDA runtime headers and libcudart of the local CUDA toolkit (CUDA_HOME, /usr/local/cuda, or nvcc's),
#   - the venv's LibTorch headers and libraries (CPU build: the stream comes from the CUDA runtime; with a
#     CUDA LibTorch, CMake builds the same file with L4_NCCL_TORCH_CUDA and LibTorch's current stream),
# and links them into a shared library with -Wl,--no-undefined, so every NCCL/CUDA/MPI symbol must resolve.
# Output in build-nccl-check/. Set L4_SKIP_NCCL_CHECK=1 to skip (e.g. no CUDA toolkit installed).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${L4_VENV:-$ROOT/.venv}
OUT=${L4_NCCL_CHECK_DIR:-$ROOT/build-nccl-check}
DEPS=$ROOT/.deps/nccl
NCCL_WHEEL_VERSION=2.32.3
say() { printf '[nccl-check] %s\n' "$*"; }

if [[ "${L4_SKIP_NCCL_CHECK:-0}" == 1 ]]; then
  say "skipped (L4_SKIP_NCCL_CHECK=1)"
  exit 0
fi

# 1. NCCL from the wheel (once).
if [[ ! -f $DEPS/include/nccl.h || ! -f $DEPS/lib/libnccl.so.2 ]]; then
  say "fetching nvidia-nccl-cu13==$NCCL_WHEEL_VERSION"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$VENV/bin/python" -m pip download -q --no-deps "nvidia-nccl-cu13==$NCCL_WHEEL_VERSION" -d "$tmp"
  mkdir -p "$DEPS"
  "$VENV/bin/python" - "$tmp" "$DEPS" <<'PY'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "nvidia_nccl_cu13-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in ("nvidia/nccl/include/nccl.h", "nvidia/nccl/lib/libnccl.so.2"):
        target = os.path.join(sys.argv[2], name.split("nvidia/nccl/", 1)[1])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(name) as src, open(target, "wb") as dst:
            dst.write(src.read())
PY
  ln -sf libnccl.so.2 "$DEPS/lib/libnccl.so"
fi

# 2. CUDA runtime headers and library.
CUDA=${CUDA_HOME:-}
if [[ -z $CUDA ]]; then
  for c in /usr/local/cuda "$(dirname "$(dirname "$(readlink -f "$(command -v nvcc || echo /nonexistent/bin/nvcc)")")")"; do
    if [[ -f $c/include/cuda_runtime_api.h ]]; then CUDA=$c; break; fi
  done
fi
[[ -n $CUDA && -f $CUDA/include/cuda_runtime_api.h ]] ||
  { say "FAILED: no CUDA toolkit (set CUDA_HOME, or L4_SKIP_NCCL_CHECK=1)"; exit 1; }
CUDA_LIB=$CUDA/lib64
[[ -f $CUDA_LIB/libcudart.so ]] || CUDA_LIB=$CUDA/targets/x86_64-linux/lib

# 3. LibTorch of the venv.
TORCH=$("$VENV/bin/python" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torch").origin))')
ABI=$("$VENV/bin/python" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')

mkdir -p "$OUT/fmt-shim"
# LibTorch bundles its own fmt headers; the system fmt (the one we link) must come first.
FMT_DIR=$(dirname "$(echo '#include <fmt/format.h>' | g++ -E -M -x c++ - | tr ' \\' '\n\n' | grep '/fmt/format.h$' | head -1)")
ln -sfn "$FMT_DIR" "$OUT/fmt-shim/fmt"

# The sources to link: the communicator's own files and, transitively, every src/ file whose header they
# include (a helper moved into a new file must not break the link). The headers reached decide staleness.
mapfile -t CLOSURE < <("$VENV/bin/python" - "$ROOT" src/parallel/nccl_communicator.cpp src/parallel/device_channel.cpp <<'PY'
import os, re, sys
root, todo, seen = sys.argv[1], list(sys.argv[2:]), set()
while todo:
    path = todo.pop()
    if path in seen:
        continue
    seen.add(path)
    for header in re.findall(r'#include "([^"]+)"', open(os.path.join(root, path)).read()):
        for candidate in ("src/" + header, "src/" + header[:-2] + ".cpp"):
            if os.path.exists(os.path.join(root, candidate)) and candidate not in seen:
                todo.append(candidate)
print("\n".join(sorted(seen)))
PY
)
SOURCES=()
for path in "${CLOSURE[@]}"; do [[ $path == *.cpp ]] && SOURCES+=("$path"); done
LIB=$OUT/libl4_nccl_check.so
newest=$(cd "$ROOT" && ls -t "${CLOSURE[@]}" src/core/pch.h scripts/nccl_compile_check.sh | head -1)
if [[ -f $LIB && $LIB -nt $ROOT/$newest ]]; then
  say "up to date: $LIB"
  exit 0
fi

CXXFLAGS=(-std=c++17 -O1 -fPIC -Wall -Wextra -Wno-unused-parameter -D_GLIBCXX_USE_CXX11_ABI="$ABI"
  -DL4_HAVE_NCCL=1 -I"$OUT/fmt-shim" -I"$ROOT/src" -include core/pch.h -isystem "$TORCH/include"
  -isystem "$TORCH/include/torch/csrc/api/include" -isystem "$CUDA/include" -isystem "$DEPS/include"
  $(mpicxx --showme:compile | sed "s/-I/-isystem /g") -DOMPI_SKIP_MPICXX=1)
objects=()
for src in "${SOURCES[@]}"; do
  obj=$OUT/$(basename "${src%.cpp}").o
  say "compiling $src"
  g++ "${CXXFLAGS[@]}" -c "$ROOT/$src" -o "$obj"
  objects+=("$obj")
done
say "linking $(basename "$LIB") against libnccl.so.2, libcudart, LibTorch, MPI (no undefined symbols)"
g++ -shared -Wl,--no-undefined -o "$LIB" "${objects[@]}" \
  -L"$DEPS/lib" -lnccl -L"$CUDA_LIB" -lcudart -L"$TORCH/lib" -ltorch_cpu -lc10 -lfmt \
  $(mpicxx --showme:link) -Wl,-rpath,"$DEPS/lib:$CUDA_LIB:$TORCH/lib"
# Read the whole symbol list first: `nm | grep -q` under pipefail fails when grep exits early and nm gets SIGPIPE.
undefined_symbols=$(nm -D --undefined-only "$LIB")
grep -q ncclCommInitRank <<<"$undefined_symbols" || { say "FAILED: NCCL symbols not referenced"; exit 1; }
say "ok: $LIB"
