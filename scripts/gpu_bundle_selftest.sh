#!/usr/bin/env bash
# Checks the .gpu_deps bundle (scripts/gpu_deps.sh) on this CPU machine as a GPU machine would use it:
# inside a private mount namespace (root, `unshare -m`) the Debian dev packages of ours, Open MPI and its
# helpers are hidden behind empty directories and files, then scripts/gpu_check.sh configures against the
# bundle with the CPU LibTorch (L4_GPU_CHECK_CPU=1), builds the tests that link each bundled library
# without a GPU (yaml-cpp, fmt, GoogleTest, nlohmann-json: test_config; PCRE2 through pkgconf:
# test_tokenizer; static HDF5 with szip/zlib: test_data_io; Open MPI, relocated, as an isolated singleton:
# test_parallel) and runs them with only the bundle's run-time libraries.
# Build dir: build-bundle-check/ (L4_BUNDLE_CHECK_DIR); more targets: L4_BUNDLE_CHECK_TARGETS.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${L4_BUNDLE_CHECK_DIR:-$ROOT/build-bundle-check}
TARGETS=${L4_BUNDLE_CHECK_TARGETS:-test_config test_tokenizer test_data_io test_parallel}
if [[ ${1:-} != --inside ]]; then
  [[ $(id -u) == 0 ]] || { echo "needs root (a private mount namespace)" >&2; exit 1; }
  exec unshare -m "$0" --inside
fi
E=$(mktemp -d)
A=/usr/lib/x86_64-linux-gnu
for d in /usr/include/yaml-cpp /usr/include/fmt /usr/include/hdf5 /usr/include/gtest /usr/include/gmock \
  /usr/include/nlohmann /usr/include/stb $A/cmake/yaml-cpp $A/cmake/fmt $A/cmake/GTest /usr/share/cmake/nlohmann_json \
  $A/openmpi /usr/share/openmpi /etc/openmpi $A/pmix2 $A/hwloc $A/hdf5; do
  [[ -d $d ]] && mount --bind "$E" "$d"
done
for f in /usr/include/pcre2.h /usr/include/zlib.h /usr/include/szlib.h /usr/include/hdf5.h $A/libyaml-cpp.so* \
  $A/libfmt.so* $A/libgtest*.a $A/libpcre2-8.a $A/pkgconfig/libpcre2-8.pc $A/libhdf5*.a $A/libhdf5_serial.so* \
  $A/libsz.* $A/libaec.* $A/libz.a $A/libmpi.so* $A/libopen-pal.so* $A/libopen-rte.so* $A/libmca_common_* \
  $A/libpmix.so* $A/libhwloc.so* $A/libevent_core* $A/libevent_pthreads* /usr/bin/mpicxx /usr/bin/mpicc \
  /usr/bin/mpic++ /usr/bin/h5cc /usr/bin/pkg-config /usr/bin/pkgconf /usr/bin/orted /usr/bin/mpirun /usr/bin/mpiexec; do
  [[ -e $f ]] && mount --bind /dev/null "$(readlink -f "$f")"
done
cd "$ROOT"
L4_GPU_CHECK_CPU=1 L4_GPU_PYTHON=${L4_GPU_PYTHON:-$ROOT/.venv/bin/python} L4_GPU_BUILD_DIR=$BUILD \
  scripts/gpu_check.sh --configure-only
L=$ROOT/.gpu_deps/root/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$BUILD/runtime-lib PKG_CONFIG_LIBDIR=$L/pkgconfig PKG_CONFIG_SYSROOT_DIR=$ROOT/.gpu_deps/root
# As scripts/gpu_check.sh runs programs: Open MPI relocated into the bundle, a singleton without orted.
export OPAL_PREFIX=$ROOT/.gpu_deps/root/usr OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_mca_base_component_show_load_errors=0
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "${L4_JOBS:-1}" --target $TARGETS
for t in $TARGETS; do
  (cd "$BUILD" && "./bin/$t" --gtest_brief=1 >"$BUILD/$t.out" 2>&1) && echo "ok:   $t" ||
    { tail -n 20 "$BUILD/$t.out"; echo "FAIL: $t"; exit 1; }
done
echo "bundle self-test passed: $TARGETS built and ran against .gpu_deps only"
