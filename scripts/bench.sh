#!/usr/bin/env bash
# Side-by-side benchmark: llama4 against HF transformers / PEFT / tiktoken / HF tokenizers in one run, on
# the same threads, config, weights and data. Prints a markdown table and writes bench/results.md and
# bench/results.json.   scripts/bench.sh [--quick] [--threads N] [--only training,tokenizer,...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
BUILD_DIR=${L4_BUILD_DIR:-$ROOT/build}
cmake --build "$BUILD_DIR" -j "${L4_JOBS:-2}" --target llama4 bench_gemm bench_loader bench_ep_moe_layer
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/bench/run_bench.py" --build "$BUILD_DIR" "$@"
