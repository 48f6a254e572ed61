#!/usr/bin/env bash
# Compiles every LibTorch-using translation unit of src/ against other LibTorch releases than the one we
# link (syntax and semantics, no code generation, no link), so an API that changed between releases
# breaks CI instead of a user's build on their cluster.
#
#   scripts/libtorch_compat_check.sh [VERSION ...]      (default: $L4_COMPAT_TORCH or "2.9.1")
#
# For each version, the torch wheel from PyPI (`pip download --no-deps`: CUDA wheels included, only their
# headers are used) is unpacked once into a cache outside the checkout ($L4_COMPAT_CACHE, default
# ~/.cache/llama4/libtorch/<version>/include; ~60 MB each, the wheel itself is deleted). The compile
# commands come from the configured build (build/compile_commands.json): the same flags, with the linked
# LibTorch's include directories swapped for the cached ones, the precompiled header rebuilt against them,
# and -fsyntax-only. Knobs: L4_BUILD_DIR, L4_VENV, L4_JOBS, L4_COMPAT_CXX (another compiler, e.g. g++-14),
# L4_COMPAT_TESTS=1 (tests/ too), L4_COMPAT_ONLY=REGEX (those sources only), L4_SKIP_TORCH_COMPAT=1 (skip).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${L4_BUILD_DIR:-$ROOT/build}
VENV=${L4_VENV:-$ROOT/.venv}
CACHE=${L4_COMPAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llama4/libtorch}
JOBS=${L4_JOBS:-$(nproc)}
say() { printf '[torch-compat] %s\n' "$*"; }

if [[ "${L4_SKIP_TORCH_COMPAT:-0}" == 1 ]]; then
  say "skipped (L4_SKIP_TORCH_COMPAT=1)"
  exit 0
fi
[[ -f $BUILD_DIR/compile_commands.json ]] ||
  { say "FAILED: $BUILD_DIR/compile_commands.json missing: run scripts/setup.sh first"; exit 1; }
read -r -a versions <<<"${*:-${L4_COMPAT_TORCH:-2.9.1}}"

fetch_headers() {  # $1 = version; prints the include directory
  local version=$1 dir=$CACHE/$1
  if [[ ! -f $dir/.complete ]]; then
    say "fetching torch==$version headers (pip download, unpacked into $dir)" >&2
    local tmp
    tmp=$(mktemp -d)
    # PIP_CONSTRAINT: a site-wide cap on torch must not veto an explicit, header-only download.
    PIP_CONSTRAINT="" "$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: \
      "torch==$version" -d "$tmp" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    "$VENV/bin/python" - "$tmp" "$dir" "$version" <<'PY'
import glob, os, re, sys, zipfile
tmp, out, version = sys.argv[1:]
wheel = glob.glob(os.path.join(tmp, "torch-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("torch/include/") and not n.endswith("/")]
    for n in names:
        target = os.path.join(out, "include", n[len("torch/include/"):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(n) as src, open(target, "wb") as dst:
            dst.write(src.read())
    found = re.search(r"__version__ = '([^']+)'", z.read("torch/version.py").decode())
assert found and found.group(1).split("+")[0] == version, f"wheel is torch {found and found.group(1)}, not {version}"
print(f"{len(names)} headers of torch {found.group(1)}", file=sys.stderr)
PY
    rm -rf "$tmp"
    touch "$dir/.complete"
  fi
  echo "$dir/include"
}

status=0
for version in "${versions[@]}"; do
  include=$(fetch_headers "$version")
  out=$BUILD_DIR/torch-compat/$version
  mkdir -p "$out"
  say "torch $version: compiling src/$([[ ${L4_COMPAT_TESTS:-0} == 1 ]] && echo ' and tests/') (-fsyntax-only, $JOBS jobs)"
  "$VENV/bin/python" - "$ROOT" "$BUILD_DIR/compile_commands.json" "$include" "$out" "$JOBS" \
    "${L4_COMPAT_CXX:-}" "${L4_COMPAT_TESTS:-0}" "${L4_COMPAT_ONLY:-}" <<'PY' || status=1
import concurrent.futures, json, os, re, shlex, subprocess, sys, threading, time
root, commands_file, include, out, jobs, cxx, with_tests, only = sys.argv[1:]
entries = json.load(open(commands_file))


def torch_include(args):
    # The linked LibTorch's include root: the -isystem directory that holds ATen/ATen.h (its C++ API
    # directory lies below it).
    for i, a in enumerate(args[:-1]):
        if a == "-isystem" and os.path.isfile(os.path.join(args[i + 1], "ATen", "ATen.h")):
            return args[i + 1]
    return None


def rewrite(args, old_include):
    result, skip = [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a in ("-o", "-include"):  # object file; CMake's precompiled header (ours replaces it)
            skip = True
            continue
        if a in ("-c", "-Winvalid-pch"):
            continue
        if std and a.startswith("-std="):
            a = std
        result.append(include + a[len(old_include):] if a.startswith(old_include) else a)
    if cxx:
        result[0] = cxx
    return result


# A LibTorch whose headers demand C++20 (2.14 on) makes CMake build with C++20 (cmake/L4Dependencies.cmake).
all_h = os.path.join(include, "torch", "csrc", "api", "include", "torch", "all.h")
std = "-std=c++20" if "C++20 or later" in open(all_h).read() else None

jobs_list = []
for e in entries:
    path = os.path.relpath(e["file"], root)
    if not (path.startswith("src/") or (with_tests == "1" and path.startswith("tests/"))):
        continue
    if only and not re.search(only, path):
        continue
    args = shlex.split(e["command"])
    old = torch_include(args)
    if old is None:
        continue  # does not use LibTorch: nothing here depends on its version
    # A TU that CMake builds without the precompiled header (the kernel loops, built with their own ISA
    # flags) is checked without one too.
    jobs_list.append((path, rewrite(args, old), e["directory"], "-include" in args))
if not jobs_list:
    sys.exit("no LibTorch translation units in compile_commands.json")


def pch_key(args):
    # GCC accepts a precompiled header only where the definitions and code-generation options match the
    # ones it was made with (include directories may differ): one header per such set of flags.
    return tuple(a for a in args[:-1] if a.startswith(("-D", "-U", "-m", "-f", "-std", "-O", "-g")))


# The precompiled headers against these headers, made on demand (one per flag set of the TUs that use it).
pch_root = os.path.join(out, "pch")
os.makedirs(pch_root, exist_ok=True)
pch_lock, pch_made = threading.Lock(), {}
start = time.time()


def precompiled_header(job):
    """The directory of the PCH for this TU's flags (built once), or None when it does not compile."""
    key = pch_key(job[1])
    with pch_lock:
        if key in pch_made:
            return pch_made[key]
        pch_dir = os.path.join(pch_root, str(len(pch_made)))
        os.makedirs(pch_dir, exist_ok=True)
        with open(os.path.join(pch_dir, "pch_source.h"), "w") as f:
            f.write(f'#include "{os.path.join(root, "src/core/pch.h")}"\n')
        pch_cmd = job[1][:-1] + ["-x", "c++-header", os.path.join(pch_dir, "pch_source.h"), "-o",
                                 os.path.join(pch_dir, "pch.h.gch")]
        built = subprocess.run(pch_cmd, cwd=job[2], capture_output=True, text=True)
        if built.returncode != 0:
            print(built.stderr[:6000])  # the first errors explain the rest
            print(f"[torch-compat] the precompiled header (src/core/pch.h) does not compile against these "
                  f"headers with the flags of {job[0]}", flush=True)
            pch_made[key] = None
        else:
            with open(os.path.join(pch_dir, "pch.h"), "w") as f:
                f.write("#error the precompiled header was not used\n")
            pch_made[key] = pch_dir
        return pch_made[key]


def check(job):
    path, args, directory, uses_pch = job
    pch_dir = precompiled_header(job) if uses_pch else None
    if uses_pch and pch_dir is None:
        return path, 1, "the precompiled header does not compile (above)", False
    r, with_pch = None, False
    if pch_dir:
        cmd = args[:-1] + ["-fsyntax-only", "-include", os.path.join(pch_dir, "pch.h"), args[-1]]
        r = subprocess.run(cmd, cwd=directory, capture_output=True, text=True)
        with_pch = "the precompiled header was not used" not in r.stderr
    if not with_pch:
        # Compiled from the header text: what a build without precompiled headers sees, so a TU that
        # leans on the PCH for an include it does not name fails here.
        cmd = args[:-1] + ["-fsyntax-only", args[-1]]
        r = subprocess.run(cmd, cwd=directory, capture_output=True, text=True)
    return path, r.returncode, r.stderr, with_pch or not uses_pch


failed, without_pch = [], 0
with concurrent.futures.ThreadPoolExecutor(int(jobs)) as pool:
    for path, code, err, with_pch in pool.map(check, jobs_list):
        without_pch += not with_pch
        if code != 0:
            failed.append(path)
            print(f"--- {path}\n{err[:4000]}", flush=True)
elapsed = time.time() - start
if without_pch:
    print(f"[torch-compat] {without_pch} translation unit(s) that use the precompiled header in the build "
          f"compiled without it (flags the PCH does not accept)")
if failed:
    print(f"[torch-compat] FAILED: {len(failed)} of {len(jobs_list)} translation units: {' '.join(failed)}")
    sys.exit(1)
print(f"[torch-compat] ok: {len(jobs_list)} translation units in {elapsed:.0f} s")
PY
done
exit $status
