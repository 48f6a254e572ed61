#!/usr/bin/env bash
# The GPU check: one script, run from the repository root on a CUDA machine that has Python with a CUDA
# torch wheel (its LibTorch and nvidia-nccl wheel are what we link), a C++ compiler, the CUDA toolkit,
# cmake and ninja, but no network and none of our Debian dev packages: those come from the bundle that
# scripts/gpu_deps.sh makes (.gpu_deps/, carried along with the working tree). Phases, each timed, all
# within L4_GPU_CHECK_BUDGET_S (default 470 s):
#   env        python / torch / GPU / compiler / CUDA toolkit / NCCL / bundle, glibc and libstdc++ versions
#   configure  CMake: the CUDA LibTorch of that python, NCCL from its wheel, the bundle, L4_BUILD_TESTS=ON
#   build      llama4 and the gpu-labelled tests only, -j$(nproc)
#   tests      ctest -L gpu (a skipped test fails the check here: the point is to use the GPU)
#   peak       measured bf16 GEMM peak: 8192^3 matmuls in torch
#   bench      llama4 prepare + train recipes/bench_gpu.yaml (1.5B MoE, bf16, 20 steps): tokens/s, MFU
# Prints markdown tables and writes gpu_check.log and gpu_check.md to $OUT if set, else to the build dir.
#
# Usage: scripts/gpu_check.sh [--dry-run] [--configure-only] [--skip-bench]
#   --dry-run         env phase and the plan only: checks the bundle and the machine, builds nothing
#   --configure-only  stop after CMake (with L4_GPU_CHECK_CPU=1: check the bundle's CMake side on a CPU box)
# Knobs: L4_GPU_PYTHON (python3), L4_GPU_BUILD_DIR (build-gpu), L4_GPU_DEPS_DIR (.gpu_deps), L4_JOBS (nproc),
#        L4_GPU_CHECK_BUDGET_S (470), L4_BENCH_STEPS (20), L4_BENCH_ARGS (extra recipe overrides).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DRY=0 BENCH=1 CONFIGURE_ONLY=0
# L4_GPU_CHECK_CPU=1 accepts a CPU-only torch (no GPU, no NCCL): to exercise the bundle without a GPU.
CPU_OK=${L4_GPU_CHECK_CPU:-0}
for arg in "$@"; do
  case $arg in
    --dry-run) DRY=1 ;;
    --configure-only) CONFIGURE_ONLY=1 ;;
    --skip-bench) BENCH=0 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
PY=${L4_GPU_PYTHON:-python3}
BUILD=${L4_GPU_BUILD_DIR:-$ROOT/build-gpu}
DEPS=${L4_GPU_DEPS_DIR:-$ROOT/.gpu_deps}
R=$DEPS/root
MA=x86_64-linux-gnu
L=$R/usr/lib/$MA
JOBS=${L4_JOBS:-$(nproc)}
BUDGET=${L4_GPU_CHECK_BUDGET_S:-470}
BENCH_STEPS=${L4_BENCH_STEPS:-20}
START=$(date +%s)
REPORT=${OUT:-$BUILD}
mkdir -p "$REPORT"
LOG=$REPORT/gpu_check.log
MD=$REPORT/gpu_check.md
exec > >(tee "$LOG") 2>&1

# --- bookkeeping --------------------------------------------------------------------------------------
PHASE_ROWS=() MISSING=() FAILED=0
PHASE="" PHASE_T0=0
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
begin() { PHASE=$1; PHASE_T0=$(now); printf '\n== [%s] %s (%.0f s left of %s)\n' "$1" "$2" "$(remaining)" "$BUDGET"; }
end() {  # end STATUS [NOTE]
  local t
  t=$(elapsed "$PHASE_T0")
  PHASE_ROWS+=("| $PHASE | $1 | $t | ${2:-} |")
  printf -- '-- [%s] %s in %s s %s\n' "$PHASE" "$1" "$t" "${2:-}"
  [[ $1 == ok || $1 == skipped || $1 == planned ]] || FAILED=1
}
missing() { MISSING+=("$1"); printf '   MISSING: %s\n' "$1"; }
# A GPU-only requirement: tolerated (reported) under L4_GPU_CHECK_CPU=1.
missing_gpu() { if ((CPU_OK)); then printf "   accepted without it (L4_GPU_CHECK_CPU=1): %s\n" "$1"; else missing "$1"; fi; }
remaining() { echo $((BUDGET - ($(date +%s) - START))); }
# Seconds a phase may take: at most $1, leaving $2 for the phases after it (never less than 20).
allow() { local r=$(($(remaining) - $2)); ((r > $1)) && r=$1; ((r < 20)) && r=20; echo "$r"; }
version_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1) == "$2" ]]; }
finish() {
  {
    echo "## GPU check ($(date -u +%Y-%m-%dT%H:%MZ), $(hostname))"
    echo
    echo "| phase | status | seconds | note |"
    echo "|---|---|---|---|"
    printf '%s\n' "${PHASE_ROWS[@]}"
    if ((${#MISSING[@]})); then
      echo
      echo "Missing on this machine:"
      printf -- '- %s\n' "${MISSING[@]}"
    fi
    [[ -f $BUILD/bench_table.md ]] && { echo; cat "$BUILD/bench_table.md"; }
  } >"$MD.tmp"
  mv "$MD.tmp" "$MD"
  # The phase logs travel back with the report (a GPU machine's build dir is gone after the run).
  if [[ $REPORT != "$BUILD" ]]; then
    for f in configure build tests peak bench_prepare bench_train; do
      [[ -f $BUILD/$f.log ]] && tail -c 2000000 "$BUILD/$f.log" >"$REPORT/$f.log"
    done
    [[ -f $BUILD/bench_run/metrics.jsonl ]] && cp "$BUILD/bench_run/metrics.jsonl" "$REPORT/bench_metrics.jsonl"
  fi
  echo
  cat "$MD"
  echo
  echo "log: $LOG, tables: $MD, total $(($(date +%s) - START)) s"
  exit "$1"
}

# --- env ----------------------------------------------------------------------------------------------
begin env "machine, toolchain and bundle"
GPU_NAME="" TORCH_OK=0
if command -v "$PY" >/dev/null 2>&1; then
  # Everything about torch in one interpreter start (importing torch takes seconds).
  eval "$("$PY" - <<'PY' 2>/dev/null
import glob, os, shlex, sys
out = {}
try:
    import torch
    out["TORCH_VERSION"] = torch.__version__
    out["TORCH_CUDA"] = torch.version.cuda or ""
    out["TORCH_PREFIX"] = torch.utils.cmake_prefix_path
    out["TORCH_LIB"] = os.path.join(os.path.dirname(torch.__file__), "lib")
    out["TORCH_ABI"] = str(int(torch._C._GLIBCXX_USE_CXX11_ABI))
    out["CUDA_AVAILABLE"] = "1" if torch.cuda.is_available() else "0"
    if torch.cuda.is_available():
        out["GPU_NAME"] = torch.cuda.get_device_name(0)
        out["GPU_MEM_GB"] = "%.0f" % (torch.cuda.get_device_properties(0).total_memory / 2**30)
except Exception as e:  # reported below
    out["TORCH_ERROR"] = repr(e)
# NCCL headers and library of the nvidia-nccl wheel (nvidia/nccl/{include,lib} in site-packages).
for base in sys.path:
    for header in glob.glob(os.path.join(base, "nvidia", "**", "nccl.h"), recursive=True):
        lib = os.path.join(os.path.dirname(os.path.dirname(header)), "lib")
        if glob.glob(os.path.join(lib, "libnccl.so*")):
            out["NCCL_ROOT"] = os.path.dirname(lib)
            break
    if "NCCL_ROOT" in out:
        break
for mod, key in (("cmake", "CMAKE_BIN_DIR"), ("ninja", "BIN_DIR")):
    try:
        m = __import__(mod)
        out["PIP_" + mod.upper() + "_BIN"] = getattr(m, key)
    except Exception:
        pass
for k, v in out.items():
    print(f"{k}={shlex.quote(str(v))}")
PY
)"
  if [[ -n ${TORCH_VERSION:-} ]]; then
    echo "   torch ${TORCH_VERSION} (CUDA ${TORCH_CUDA:-none}), LibTorch cmake prefix ${TORCH_PREFIX}"
    [[ -n ${TORCH_CUDA:-} ]] || missing_gpu "a CUDA build of torch in $PY (found ${TORCH_VERSION}, CPU only)"
    if [[ ${CUDA_AVAILABLE:-0} == 1 ]]; then
      TORCH_OK=1
      echo "   GPU: ${GPU_NAME} (${GPU_MEM_GB} GiB)"
    else
      missing_gpu "a usable CUDA device (torch.cuda.is_available() is false)"
    fi
  else
    missing "torch in $PY (${TORCH_ERROR:-import failed})"
  fi
else
  missing "python ($PY; set L4_GPU_PYTHON)"
fi
for b in "${PIP_CMAKE_BIN:-}" "${PIP_NINJA_BIN:-}"; do [[ -n $b && -d $b ]] && PATH=$b:$PATH; done
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | sed 's/^/   /'
for tool in cmake ninja; do
  if command -v $tool >/dev/null 2>&1; then echo "   $tool $($tool --version | head -1)"; else missing "$tool (pip install $tool)"; fi
done
CXX_BIN=${CXX:-$(command -v g++ || command -v c++ || true)}
if [[ -n $CXX_BIN ]]; then echo "   C++ compiler $CXX_BIN: $("$CXX_BIN" --version | head -1)"; else missing "a C++17 compiler (g++)"; fi
CUDA_ROOT=${CUDA_HOME:-${CUDA_PATH:-}}
if [[ -z $CUDA_ROOT ]]; then
  for c in /usr/local/cuda "$(dirname "$(dirname "$(readlink -f "$(command -v nvcc || echo /x/bin/nvcc)")")")"; do
    [[ -f $c/include/cuda_runtime_api.h ]] && { CUDA_ROOT=$c; break; }
  done
fi
if [[ -n $CUDA_ROOT && -f $CUDA_ROOT/include/cuda_runtime_api.h ]]; then
  PATH=$CUDA_ROOT/bin:$PATH
  echo "   CUDA toolkit $CUDA_ROOT ($("$CUDA_ROOT/bin/nvcc" --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'no nvcc'))"
else
  missing_gpu "the CUDA toolkit (headers and nvcc; set CUDA_HOME)"
fi
if [[ -n ${NCCL_ROOT:-} ]]; then echo "   NCCL $NCCL_ROOT"; else missing_gpu "NCCL headers and library (pip package nvidia-nccl-cu13 in $PY)"; fi

# The bundle and whether this machine's C library and libstdc++ can run it.
if [[ -f $DEPS/manifest.txt ]]; then
  echo "   bundle $DEPS: $(du -sm "$DEPS" | cut -f1) MB, $(grep '^built_on' "$DEPS/manifest.txt")"
  for f in usr/include/yaml-cpp/yaml.h usr/include/fmt/format.h usr/include/hdf5/serial/hdf5.h usr/include/gtest/gtest.h \
    usr/include/nlohmann/json.hpp usr/include/pcre2.h usr/include/stb/stb_image.h usr/bin/pkgconf \
    "usr/lib/$MA/hdf5/serial/libhdf5.a" "usr/lib/$MA/libpcre2-8.a" "usr/lib/$MA/libgtest.a" \
    "usr/lib/$MA/openmpi/include/mpi.h" "usr/lib/$MA/openmpi/lib/libmpi.so" "usr/lib/$MA/libsz.a" "usr/lib/$MA/libz.a"; do
    [[ -e $R/$f ]] || missing "bundle file $f (re-run scripts/gpu_deps.sh)"
  done
  GLIBC_HAVE=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
  [[ -n $GLIBC_HAVE ]] || GLIBC_HAVE=$(ldd --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+$')
  GLIBC_NEED=$(awk '/^glibc_needed:/ {print $2}' "$DEPS/manifest.txt")
  GLIBCXX_NEED=$(awk '/^glibcxx_needed:/ {print $2}' "$DEPS/manifest.txt")
  STDCXX=$([[ -n $CXX_BIN ]] && readlink -f "$("$CXX_BIN" -print-file-name=libstdc++.so.6)" || true)
  GLIBCXX_HAVE=$([[ -f $STDCXX ]] && grep -aoE 'GLIBCXX_3\.4\.[0-9]+' "$STDCXX" | sed 's/GLIBCXX_//' | sort -uV | tail -1)
  echo "   glibc: machine ${GLIBC_HAVE:-?}, bundle needs ${GLIBC_NEED}; libstdc++ GLIBCXX: machine ${GLIBCXX_HAVE:-?}, bundle needs ${GLIBCXX_NEED}"
  if [[ -n $GLIBCXX_HAVE ]] && ! version_ge "$GLIBCXX_HAVE" "$GLIBCXX_NEED"; then
    missing "libstdc++ with GLIBCXX_$GLIBCXX_NEED (the machine's is GLIBCXX_$GLIBCXX_HAVE): build the bundle on an older Debian"
  fi
  # Run-time library directory: the bundle's shared libraries, except where this machine's C library is
  # too old for one and the machine has its own copy (same soname, same ABI): then the machine's is used.
  RUNTIME_LIB=$BUILD/runtime-lib
  rm -rf "$RUNTIME_LIB"
  mkdir -p "$RUNTIME_LIB"
  for so in "$L"/*.so.*; do
    name=$(basename "$so")
    need=$(objdump -T "$so" 2>/dev/null | grep -oE 'GLIBC_[0-9.]+' | sed 's/GLIBC_//' | sort -uV | tail -1)
    if [[ -n $need && -n $GLIBC_HAVE ]] && ! version_ge "$GLIBC_HAVE" "$need"; then
      soname=$(objdump -p "$so" 2>/dev/null | awk '/SONAME/ {print $2}')
      if [[ $name == "$soname" ]] && grep -q "^[[:space:]]*$soname " <<<"$(ldconfig -p 2>/dev/null)"; then
        echo "   $soname: the bundle's needs glibc $need, using this machine's own copy"
        continue
      elif [[ $name == "$soname" ]]; then
        missing "$soname: the bundle's copy needs glibc $need (machine: $GLIBC_HAVE) and the machine has none; build the bundle on an older Debian or install it"
      fi
    fi
    ln -sf "$so" "$RUNTIME_LIB/$name"
  done
else
  missing "the dependency bundle $DEPS (run scripts/gpu_deps.sh on Debian and carry .gpu_deps)"
fi
if ((${#MISSING[@]})); then end missing "${#MISSING[@]} missing"; else end ok "${GPU_NAME:-}"; fi

# Where the build and every program it starts find the bundle.
export PKG_CONFIG_LIBDIR=$L/pkgconfig PKG_CONFIG_PATH="" PKG_CONFIG_SYSROOT_DIR=$R
export LD_LIBRARY_PATH=${RUNTIME_LIB:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Open MPI from the bundle: relocated, and a singleton that starts no orted (none installed here).
export OPAL_PREFIX=$R/usr OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_mca_base_component_show_load_errors=0
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}

PY_PATH=$(command -v "$PY" || echo "$PY")
[[ $PY_PATH == /* ]] || PY_PATH=$ROOT/$PY_PATH
CMAKE_ARGS=(-S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DL4_BUILD_TESTS=ON
  -DL4_WITH_NCCL="$( ((CPU_OK)) && echo AUTO || echo ON)"
  -DTorch_DIR="${TORCH_PREFIX:-?}/Torch" -DNCCL_ROOT="${NCCL_ROOT:-?}" -DL4_PYTHON="$PY_PATH"
  -DCMAKE_PREFIX_PATH="$R/usr"
  -DCUDAToolkit_ROOT="${CUDA_ROOT:-}" -DCUDA_TOOLKIT_ROOT_DIR="${CUDA_ROOT:-}"
  -DCMAKE_CUDA_COMPILER="${CUDA_ROOT:-}/bin/nvcc" -DCMAKE_CXX_COMPILER="${CXX_BIN:-g++}"
  # Open MPI: headers and library named directly (no mpicxx wrapper on the machine).
  -DMPI_SKIP_COMPILER_WRAPPER=ON -DMPI_CXX_SKIP_MPICXX=ON -DMPI_CXX_HEADER_DIR="$L/openmpi/include"
  -DMPI_CXX_LIB_NAMES=mpi -DMPI_mpi_LIBRARY="$L/openmpi/lib/libmpi.so"
  # HDF5 as a static archive, with the szip and zlib archives it needs at the end of every link.
  -DHDF5_USE_STATIC_LIBRARIES=ON -DHDF5_C_INCLUDE_DIR="$R/usr/include/hdf5/serial"
  -DHDF5_hdf5_LIBRARY_RELEASE="$L/hdf5/serial/libhdf5.a" -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON
  -DCMAKE_CXX_STANDARD_LIBRARIES="$L/libsz.a $L/libaec.a $L/libz.a -lm -ldl"
  -DPKG_CONFIG_EXECUTABLE="$R/usr/bin/pkgconf" -DSTB_INCLUDE_DIR="$R/usr/include/stb")
TARGETS=(llama4 test_gpu_model test_gpu_nccl)

if ((DRY)); then
  begin plan "what a real run does (dry run: nothing is built)"
  echo "   configure: cmake ${CMAKE_ARGS[*]}"
  echo "   build:     cmake --build $BUILD -j$JOBS --target ${TARGETS[*]}"
  echo "   tests:     (cd $BUILD && ctest -L gpu --output-on-failure)   skipped tests fail the check"
  echo "   peak:      $PY: 8192^3 bf16 torch.matmul, best of repeated timings"
  echo "   bench:     llama4 prepare/train --config recipes/bench_gpu.yaml train.steps=$BENCH_STEPS logging.peak_tflops=<peak>"
  echo "   env:       LD_LIBRARY_PATH=$LD_LIBRARY_PATH OPAL_PREFIX=$OPAL_PREFIX PKG_CONFIG_SYSROOT_DIR=$R"
  # The bundle's pkgconf must run and find PCRE2 (what CMake asks it).
  if [[ -x $R/usr/bin/pkgconf ]] && out=$("$R/usr/bin/pkgconf" --libs --cflags libpcre2-8 2>&1); then
    echo "   pkgconf libpcre2-8: $out"
  else
    missing "a working bundled pkgconf for libpcre2-8 (${out:-not found})"
  fi
  if ((${#MISSING[@]})); then end planned "a real run here would stop at: ${MISSING[0]}"; else end planned; fi
  # A dry run fails only when the bundle itself is broken; the GPU pieces are expected to be absent here.
  FAILED=0
  for m in "${MISSING[@]}"; do [[ $m == *bundle* || $m == *pkgconf* || $m == libstdc* ]] && FAILED=1; done
  finish $FAILED
fi
if ((${#MISSING[@]})); then
  echo "stopping: the machine lacks what the build needs (listed above)"
  finish 1
fi

# --- configure and build ------------------------------------------------------------------------------
begin configure "CMake (Release, CUDA LibTorch, NCCL, bundle)"
t=$(allow 150 330)
if timeout "$t" cmake "${CMAKE_ARGS[@]}" >"$BUILD/configure.log" 2>&1; then
  grep -E "llama4: (NCCL communicator|fused CUDA kernels)|Found (Torch|CUDA|MPI|HDF5|GTest)" "$BUILD/configure.log" | sed 's/^/   /'
  end ok
else
  tail -n 40 "$BUILD/configure.log"
  end FAILED "see $BUILD/configure.log"
  finish 1
fi
if ((CONFIGURE_ONLY)); then finish $FAILED; fi
grep -q "llama4: NCCL communicator 1" "$BUILD/configure.log" ||
  { echo "   NCCL communicator not built: test_gpu_nccl is left out"; TARGETS=(llama4 test_gpu_model); }

begin build "${TARGETS[*]} (-j$JOBS)"
t=$(allow 330 150)
if timeout "$t" cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" >"$BUILD/build.log" 2>&1; then
  end ok "$(grep -c 'Building CXX' "$BUILD/build.log") C++ files"
else
  grep -E "error|Error|undefined reference" "$BUILD/build.log" | head -n 30
  tail -n 15 "$BUILD/build.log"
  end FAILED "$([[ $(remaining) -le 150 ]] && echo 'timed out or ')see $BUILD/build.log"
  finish 1
fi
BIN=$BUILD/bin/llama4

# --- gpu tests ----------------------------------------------------------------------------------------
begin tests "ctest -L gpu"
t=$(allow 180 120)
(cd "$BUILD" && timeout "$t" ctest -L gpu --output-on-failure --timeout 170 -V) >"$BUILD/tests.log" 2>&1
rc=$?
grep -E "^\s*[0-9]+/[0-9]+ Test|tests passed|max \||step [0-9]:|worst|cuda vs cpu|: (ok|FAIL): |SKIPPED|FAILED|Failure" \
  "$BUILD/tests.log" | grep -vE "^\s*[0-9]+: \[ *(RUN|OK) " | sed 's/^/   /' | head -n 80
skipped=$(grep -cE "\*\*\*Skipped|\[  SKIPPED \] [A-Za-z]" "$BUILD/tests.log")
total=$(grep -oE "tests passed, [0-9]+ tests failed out of [0-9]+" "$BUILD/tests.log" | grep -oE "[0-9]+$")
if ((rc == 0 && (skipped == 0 || CPU_OK))); then
  end ok "${total:-?} tests passed"
else
  ((rc == 0)) && end FAILED "$skipped test(s) skipped: the GPU was not used" || end FAILED "see $BUILD/tests.log"
fi

# --- benchmark ----------------------------------------------------------------------------------------
if ((BENCH == 0 || TORCH_OK == 0)); then
  begin bench "skipped ($( ((BENCH)) && echo 'no GPU' || echo '--skip-bench'))"
  end skipped
  finish $FAILED
fi
begin peak "bf16 GEMM peak (8192^3 torch.matmul)"
PEAK_TFLOPS=$(timeout "$(allow 60 100)" "$PY" - <<'PY' 2>"$BUILD/peak.log"
import time, torch
n = 8192
a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
for _ in range(3):
    c = a @ b
torch.cuda.synchronize()
best = 0.0
deadline = time.time() + 5
while time.time() < deadline:
    t0 = time.time()
    for _ in range(10):
        c = a @ b
    torch.cuda.synchronize()
    best = max(best, 10 * 2 * n**3 / (time.time() - t0))
print("%.1f" % (best / 1e12))
PY
)
if [[ -n $PEAK_TFLOPS ]]; then
  end ok "${PEAK_TFLOPS} TFLOPS"
else
  cat "$BUILD/peak.log"
  end FAILED "see $BUILD/peak.log"
  PEAK_TFLOPS=0  # the trainer then measures its own peak
fi

begin bench "llama4 train recipes/bench_gpu.yaml ($BENCH_STEPS steps, bf16)"
RUN_DIR=$BUILD/bench_run
rm -rf "$RUN_DIR"
BENCH_OVERRIDES=("data.train=$BUILD/bench_data/train" "logging.run_dir=$RUN_DIR" "train.steps=$BENCH_STEPS"
  "logging.peak_tflops=$PEAK_TFLOPS")
# shellcheck disable=SC2206
BENCH_OVERRIDES+=(${L4_BENCH_ARGS:-})
"$BIN" info --config configs/bench_gpu.yaml 2>&1 | sed 's/^/   /' | head -n 12
if [[ ! -f $BUILD/bench_data/prepared ]]; then
  timeout "$(allow 90 90)" "$BIN" prepare --config recipes/bench_gpu.yaml "${BENCH_OVERRIDES[@]}" \
    >"$BUILD/bench_prepare.log" 2>&1 && touch "$BUILD/bench_data/prepared" ||
    { tail -n 20 "$BUILD/bench_prepare.log"; end FAILED "prepare: see $BUILD/bench_prepare.log"; finish 1; }
fi
# Peak device memory while training, sampled by nvidia-smi where it exists.
MEM_LOG=$BUILD/bench_memory.csv
: >"$MEM_LOG"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$MEM_LOG" 2>/dev/null &
  SMI_PID=$!
fi
timeout "$(allow 240 10)" "$BIN" train --config recipes/bench_gpu.yaml "${BENCH_OVERRIDES[@]}" >"$BUILD/bench_train.log" 2>&1
rc=$?
[[ -n ${SMI_PID:-} ]] && kill "$SMI_PID" 2>/dev/null
grep -E "step [0-9]+/|training steps|error|Error" "$BUILD/bench_train.log" | tail -n 8 | sed 's/^/   /'
if ((rc != 0)) || [[ ! -s $RUN_DIR/metrics.jsonl ]]; then
  tail -n 20 "$BUILD/bench_train.log"
  end FAILED "train exit $rc: see $BUILD/bench_train.log"
  finish 1
fi
# Medians over the steps after the first 3 (allocator warm-up, kernel selection).
"$PY" - "$RUN_DIR/metrics.jsonl" "$MEM_LOG" "$BUILD/bench_table.md" "${GPU_NAME:-?}" "$PEAK_TFLOPS" "$BENCH_STEPS" <<'PY'
import json, statistics, sys
metrics, mem_log, table, gpu, peak, steps = sys.argv[1:7]
rows = [json.loads(line) for line in open(metrics) if line.strip()]
rows = [r for r in rows if "tokens_per_s" in r]
steady = rows[3:] if len(rows) > 4 else rows
med = lambda k: statistics.median(r[k] for r in steady if r.get(k) is not None)
mem = [float(x) for x in open(mem_log).read().split() if x.replace(".", "", 1).isdigit()]
lines = [
    "| benchmark | value |", "|---|---|",
    f"| GPU | {gpu} |",
    f"| measured bf16 GEMM peak | {float(peak):.0f} TFLOPS |",
    "| model | configs/bench_gpu.yaml (1.52B total, 0.81B active, MoE 8 experts top-1 interleaved with dense) |",
    "| batch | 16 x 2048 tokens per step, micro-batch 4, bf16 autocast, AdamW, fp32 master weights |",
    f"| steps measured | {len(steady)} of {len(rows)} (median) |",
    f"| step time | {med('step_time_s'):.3f} s |",
    f"| tokens/s | {med('tokens_per_s'):,.0f} |",
    f"| MFU (vs measured peak) | {100 * med('mfu'):.1f} % |",
    f"| loss first -> last | {rows[0]['loss']:.3f} -> {rows[-1]['loss']:.3f} |",
]
if mem:
    lines.append(f"| peak GPU memory (nvidia-smi) | {max(mem) / 1024:.1f} GiB |")
open(table, "w").write("\n".join(lines) + "\n")
PY
end ok "$(grep -E '^\| (tokens/s|MFU)' "$BUILD/bench_table.md" | tr -d '|' | tr -s ' ' | paste -sd';')"
finish $FAILED
