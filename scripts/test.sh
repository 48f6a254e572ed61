#!/usr/bin/env bash
# Set-up, build, then every test (labels unit, parity, mpi, e2e). Extra arguments go to ctest,
# e.g. scripts/test.sh -L unit   or   scripts/test.sh -R Config
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
BUILD_DIR=${L4_BUILD_DIR:-$ROOT/build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "${L4_TEST_JOBS:-2}" "$@"
