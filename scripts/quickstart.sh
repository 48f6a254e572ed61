#!/usr/bin/env bash
# README command 1: set-up, then the main job on the bundled defaults.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
BIN=${L4_BUILD_DIR:-$ROOT/build}/bin/llama4
cd "$ROOT"
echo "== architecture of the bundled tiny model (configs/tiny.yaml)"
"$BIN" info --config configs/tiny.yaml
echo "== Llama 4 Scout, from shapes alone"
"$BIN" info --config configs/scout.yaml | head -n 5
