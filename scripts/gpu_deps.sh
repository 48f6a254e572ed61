#!/usr/bin/env bash
# Bundles, for a GPU machine without network or our Debian dev packages, the third-party pieces the build
# needs besides LibTorch, CUDA and NCCL (those come with the machine's Python torch wheel): it runs here, on
# Debian, `apt-get download`s the packages and `dpkg -x`es the files the build and its tests use into
# .gpu_deps/root (ignored by git, carried with the working tree; scripts/gpu_check.sh uses it there).
#
# What goes in, and in which form:
#   static archives  HDF5 (libhdf5_serial.a + szip/libaec + zlib), PCRE2-8, GoogleTest: nothing to load;
#   headers only     nlohmann-json, stb, Open MPI's mpi.h;
#   shared libraries yaml-cpp and fmt (their CMake packages name the .so), Open MPI (libmpi and the
#                    plugins it loads, with hwloc, libevent, libudev), found at run time through RPATH /
#                    LD_LIBRARY_PATH; pkgconf (CMake's FindPkgConfig finds PCRE2 with it).
# A static archive does not lower the C library the machine needs: its objects reference the same
# versioned glibc symbols at the final link. So the manifest records the newest GLIBC_ / GLIBCXX_ symbol
# version the bundle's binaries require, and gpu_check.sh compares it with the machine's. Build the bundle
# on the oldest Debian you can (Debian 12: glibc 2.36 headers, symbols up to 2.34 needed; Ubuntu 22.04 has
# 2.35); Debian 13's packages need glibc 2.38 or newer.
#
# Package names are resolved with apt-cache from the -dev packages' own dependencies (libfmt9 or libfmt10,
# libyaml-cpp0.7 or 0.8, libopenmpi3 or libopenmpi40, ...), so it works on Debian 12 and 13.
# Usage: scripts/gpu_deps.sh [--force]   (re-downloads even if the bundle's manifest is current)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${L4_GPU_DEPS_DIR:-$ROOT/.gpu_deps}
MAX_MB=${L4_GPU_DEPS_MAX_MB:-60}
say() { printf '[gpu-deps] %s\n' "$*"; }
die() { printf '[gpu-deps] FAILED: %s\n' "$*" >&2; exit 1; }

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "needs Debian's apt-get and dpkg-deb"
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
[[ $MA == x86_64-linux-gnu ]] || die "the GPU machines are x86-64; this host is $MA"

# --- 1. package names ---------------------------------------------------------------------------------
# The direct dependencies of $1 whose names match the extended regex $2.
deps_of() {
  apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances "$1" \
    2>/dev/null | awk '$1 ~ /^\|?Depends:$/ && $2 !~ /^</ {print $2}' | grep -E "$2" | sort -u || true
}
one_dep() {
  local found
  found=$(deps_of "$1" "$2" | head -1)
  [[ -n $found ]] || die "cannot resolve a dependency of $1 matching /$2/ (apt-get update?)"
  echo "$found"
}

DEV=(libyaml-cpp-dev libfmt-dev libhdf5-dev libaec-dev zlib1g-dev libgtest-dev nlohmann-json3-dev libpcre2-dev
  libstb-dev libopenmpi-dev)
OMPI_RT=$(one_dep libopenmpi-dev '^libopenmpi[0-9]+$')
RUNTIME=(
  "$(one_dep libyaml-cpp-dev '^libyaml-cpp[0-9.]+$')"
  "$(one_dep libfmt-dev '^libfmt[0-9]+$')"
  "$OMPI_RT"
  openmpi-common
  "$(one_dep "$OMPI_RT" '^libhwloc[0-9]+$')"
  "$(one_dep "$OMPI_RT" '^libevent-core-')"
  "$(one_dep "$OMPI_RT" '^libevent-pthreads-')"
  "$(one_dep "$(one_dep "$OMPI_RT" '^libhwloc[0-9]+$')" '^libudev[0-9]+$')"
  pkgconf-bin
)
PKGS=("${DEV[@]}" "${RUNTIME[@]}" "$(one_dep pkgconf-bin '^libpkgconf[0-9]+$')")
# Open MPI 4 (Debian 12) loads PMIx only as a plugin, which an isolated singleton never needs; Open MPI 5
# (Debian 13, untested here) links PMIx and PRRTE into libmpi.
if [[ $OMPI_RT != libopenmpi3 ]]; then
  mapfile -t -O "${#PKGS[@]}" PKGS < <(deps_of "$OMPI_RT" '^lib(pmix|prrte)[0-9]')
fi

versions=()
for p in "${PKGS[@]}"; do
  v=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')
  [[ -n $v && $v != "(none)" ]] || die "package $p has no candidate version (apt-get update?)"
  versions+=("$p=$v")
done
want=$(printf '%s\n' "${versions[@]}" | sort | sha256sum | cut -c1-16)
if [[ ${1:-} != --force && -f $DEST/manifest.txt ]] && grep -q "^bundle_id: $want$" "$DEST/manifest.txt"; then
  say "up to date: $DEST ($(du -sm "$DEST" | cut -f1) MB)"
  exit 0
fi

# --- 2. download and unpack ---------------------------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "downloading ${#versions[@]} packages: ${PKGS[*]}"
(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "${versions[@]}" >/dev/null) || die "apt-get download (network, or run apt-get update)"
mkdir -p "$tmp/x"
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/x"; done

# --- 3. keep what the build and the run need ----------------------------------------------------------
L=usr/lib/$MA
KEEP=(
  # yaml-cpp, fmt: headers, CMake packages, shared libraries
  usr/include/yaml-cpp "$L/cmake/yaml-cpp" "$L/libyaml-cpp.so*"
  usr/include/fmt "$L/cmake/fmt" "$L/libfmt.so*"
  # HDF5 (C library, static) with szip (libaec) and zlib
  usr/include/hdf5/serial "$L/libhdf5_serial.a" "$L/hdf5/serial/libhdf5.a" "$L/libsz.a" "$L/libaec.a" "$L/libz.a"
  usr/include/zlib.h usr/include/zconf.h
  # GoogleTest (static), nlohmann-json, stb (headers)
  usr/include/gtest "$L/libgtest.a" "$L/libgtest_main.a" "$L/cmake/GTest"
  usr/include/nlohmann usr/share/cmake/nlohmann_json
  usr/include/stb
  # PCRE2 8-bit (static) and its pkg-config file, pkgconf to read it
  "usr/include/pcre2.h" "$L/libpcre2-8.a" "$L/pkgconfig/libpcre2-8.pc" usr/bin/pkgconf "$L/libpkgconf.so*"
  # Open MPI: headers, libmpi and the libraries and plugins it loads, help texts
  "$L/openmpi/include" "$L/openmpi/lib/libmpi.so" "$L/libmpi.so.*" "$L/libopen-pal.so*" "$L/libopen-rte.so*"
  "$L/libmca_common_sm.so*" "$L/libmca_common_monitoring.so*" "$L/libmca_common_ompio.so*"
  "$L/libopen-pal.so*" "$L/openmpi/lib/openmpi3" "$L/openmpi/lib/openmpi5" "$L/libpmix.so*" "$L/pmix2"
  "$L/libprrte.so*" usr/share/openmpi usr/share/pmix
  "$L/libhwloc.so*" "$L/libevent_core-*.so*" "$L/libevent_pthreads-*.so*" "$L/libudev.so*"
)
rm -rf "$DEST.new"
mkdir -p "$DEST.new/root"
shopt -s nullglob
for pattern in "${KEEP[@]}"; do
  for path in "$tmp"/x/$pattern; do
    [[ -e $path || -L $path ]] || continue
    rel=${path#"$tmp"/x/}
    mkdir -p "$DEST.new/root/$(dirname "$rel")"
    cp -a "$path" "$DEST.new/root/$rel"
  done
done
shopt -u nullglob
R=$DEST.new/root
# Not needed: Fortran and Java bindings, OpenSHMEM, plugins for fabrics a one-node GPU check never uses.
find "$R" \( -name '*.mod' -o -name '*fortran*' -o -name '*java*' -o -name '*oshmem*' -o -name 'mca_*_ucx.so' \
  -o -name 'mca_*_ofi.so' -o -name 'mca_*_psm*.so' -o -name 'mca_*_openib.so' -o -name 'mca_*_verbs*.so' \
  -o -name 'mca_*_portals4.so' -o -name 'mca_*_usnic.so' -o -name 'mca_*_slurm.so' -o -name 'mca_*_lsf.so' \
  -o -name 'mca_*_tm.so' -o -name 'mca_*_gridengine.so' -o -name 'mca_*_alps.so' -o -name 'mca_ras_simulator.so' \) \
  -print0 | xargs -0 rm -rf
# Debian points libmpi.so at /etc/alternatives; the bundle uses Open MPI's own lib/libmpi.so link.
find "$R" -xtype l -print0 | xargs -0 -r rm -f
[[ -f $R/usr/include/hdf5/serial/hdf5.h && -f $R/$L/hdf5/serial/libhdf5.a ]] || die "HDF5 missing from the bundle"
[[ -f $R/$L/openmpi/include/mpi.h && -e $R/$L/openmpi/lib/libmpi.so ]] || die "Open MPI missing from the bundle"

# --- 4. manifest: what is inside and the newest glibc / libstdc++ symbol versions it needs -------------
newest() { grep -oE "$1_[0-9]+(\.[0-9]+)*" | sed "s/^$1_//" | sort -uV | tail -1; }
symbols=$(find "$R" -type f \( -name '*.so*' -o -path '*/bin/*' \) -print0 |
  xargs -0 -r objdump -T 2>/dev/null | grep -oE 'GLIBC(XX)?_[0-9.]+' || true)
{
  echo "bundle_id: $want"
  echo "built_on: $(. /etc/os-release && echo "$PRETTY_NAME") ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo "multiarch: $MA"
  echo "glibc_needed: $(echo "$symbols" | newest GLIBC)"
  echo "glibcxx_needed: $(echo "$symbols" | newest GLIBCXX)"
  echo "openmpi_runtime: $OMPI_RT"
  printf 'package: %s\n' "${versions[@]}"
} >"$R/../manifest.txt"
rm -rf "$DEST"
mv "$DEST.new" "$DEST"
size=$(du -sm "$DEST" | cut -f1)
say "bundle $DEST: ${size} MB, $(find "$DEST/root" -type f | wc -l) files; needs glibc >= $(grep glibc_needed "$DEST/manifest.txt" | cut -d' ' -f2), libstdc++ GLIBCXX >= $(grep glibcxx_needed "$DEST/manifest.txt" | cut -d' ' -f2)"
((size <= MAX_MB)) || die "bundle is ${size} MB, over the ${MAX_MB} MB budget"
