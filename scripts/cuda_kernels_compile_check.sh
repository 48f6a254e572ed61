#!/usr/bin/env bash
# Compile check of the fused CUDA kernels (src/kernels/fused_cuda.cu) on a machine without a GPU or a CUDA
# LibTorch: nvcc compiles the file for sm_80 against the venv's LibTorch headers, with every warning of
# our own code an error. The CPU wheel ships c10/cuda's headers but not the one its CMake generates
# (c10/cuda/impl/cuda_cmake_macros.h), so a stand-in of it goes into an include directory of the check's
# own. Nothing is linked (no libtorch_cuda here); on a GPU machine CMake builds and links the file and the
# gpu-labelled tests run it (scripts/gpu_check.sh). Output in build-cuda-check/.
# Set L4_SKIP_CUDA_CHECK=1 to skip (e.g. no CUDA toolkit installed).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${L4_VENV:-$ROOT/.venv}
OUT=${L4_CUDA_CHECK_DIR:-$ROOT/build-cuda-check}
say() { printf '[cuda-check] %s\n' "$*"; }

if [[ "${L4_SKIP_CUDA_CHECK:-0}" == 1 ]]; then
  say "skipped (L4_SKIP_CUDA_CHECK=1)"
  exit 0
fi
NVCC=${CUDA_HOME:+$CUDA_HOME/bin/nvcc}
NVCC=${NVCC:-$(command -v nvcc || true)}
[[ -x $NVCC ]] || { say "FAILED: no nvcc (set CUDA_HOME, or L4_SKIP_CUDA_CHECK=1)"; exit 1; }

SOURCE=src/kernels/fused_cuda.cu
OBJECT=$OUT/fused_cuda.o
newest=$(cd "$ROOT" && ls -t "$SOURCE" src/kernels/fused_cuda.h scripts/cuda_kernels_compile_check.sh | head -1)
if [[ -f $OBJECT && $OBJECT -nt $ROOT/$newest ]]; then
  say "up to date: $OBJECT"
  exit 0
fi

TORCH=$("$VENV/bin/python" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torch").origin))')
ABI=$("$VENV/bin/python" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
STD=$("$VENV/bin/python" -c 'import torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); print(20 if v >= (2, 14) else 17)')
mkdir -p "$OUT/shim/c10/cuda/impl"
if [[ ! -f $TORCH/include/c10/cuda/impl/cuda_cmake_macros.h ]]; then
  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' >"$OUT/shim/c10/cuda/impl/cuda_cmake_macros.h"
fi

say "nvcc $($NVCC --version | grep -o 'release [0-9.]*'): compiling $SOURCE (sm_80, C++$STD)"
# Warnings of LibTorch's headers are theirs (-isystem); warnings of ours fail the check (-Werror).
"$NVCC" -std=c++"$STD" -O2 -c "$ROOT/$SOURCE" -o "$OBJECT" -gencode arch=compute_80,code=sm_80 \
  -I"$ROOT/src" -isystem "$TORCH/include" -isystem "$TORCH/include/torch/csrc/api/include" -isystem "$OUT/shim" \
  -D_GLIBCXX_USE_CXX11_ABI="$ABI" -Werror all-warnings -diag-suppress 3306 \
  -Xcompiler -fPIC,-Wall,-Wextra,-Wno-unused-parameter
say "ok: $OBJECT"
