#!/usr/bin/env bash
# A failing rank must end the whole job quickly with a non-zero status and one message naming it.
# Usage: abort_test.sh PROBE MPIEXEC [mpiexec flags...]
set -uo pipefail
probe=$1
shift
launcher=("$@")
export OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1
fail() {
  echo "FAIL: $*"
  echo "---- output ----"
  cat "$out"
  exit 1
}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# 1. Rank 1 throws in step 3 while rank 0 waits in an all-reduce. The timeout only guards against a hang.
timeout 60 "${launcher[@]}" -np 2 "$probe" throw 1 3 >"$out" 2>&1
rc=$?
[[ $rc -ne 124 ]] || fail "job hung after rank 1 threw"
[[ $rc -ne 0 ]] || fail "job exited 0 after rank 1 threw"
n=$(grep -c "llama4: rank 1/2 failed: injected failure in step 3" "$out")
[[ $n -eq 1 ]] || fail "expected the failure message exactly once, found $n"
grep -q "llama4: rank 0" "$out" && fail "rank 0 reported a failure of its own"
echo "throw: exit $rc, message printed once by rank 1"

# 2. Rank 1 stops communicating in step 3: rank 0's watchdog (2 s) aborts the job.
timeout 60 "${launcher[@]}" -np 2 "$probe" hang 1 3 >"$out" 2>&1
rc=$?
[[ $rc -ne 124 ]] || fail "job hung although the collective timeout was 2 s"
[[ $rc -ne 0 ]] || fail "job exited 0 after a collective timed out"
grep -q "llama4: rank 0: collective all_reduce.* on communicator 'world' did not complete within 2 s" "$out" ||
  fail "watchdog message missing"
echo "hang: exit $rc, watchdog fired on rank 0"
