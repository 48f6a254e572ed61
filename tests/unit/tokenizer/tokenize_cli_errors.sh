#!/usr/bin/env bash
# `llama4 tokenize` on a broken tokenizer file exits 1 and names the file and the line or key.
set -uo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=$L4_SOURCE_DIR/data/tokenizer/tokenizer.model
failures=0

expect_error() {  # file, expected text in stderr
  local err rc
  err=$("$L4_BINARY" tokenize --tokenizer "$1" --text "hello" 2>&1 >/dev/null)
  rc=$?
  if [[ $rc -ne 1 || $err != *"$1"* || $err != *"$2"* ]]; then
    echo "FAIL: $1: rc=$rc, stderr: $err (wanted '$2')" >&2
    failures=$((failures + 1))
  else
    echo "ok: $err"
  fi
}

sed '5s/.*/not*base64 4/' "$model" >"$tmp/bad_base64.model"
expect_error "$tmp/bad_base64.model" ":5: invalid base64"
sed '7s/ .*/ 2/' "$model" >"$tmp/dup_rank.model"
expect_error "$tmp/dup_rank.model" ":7: duplicate rank 2"
head -c 1000 "$L4_SOURCE_DIR/data/tokenizer/tokenizer.json" >"$tmp/broken.json"
expect_error "$tmp/broken.json" "not valid JSON"
echo '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": null}' >"$tmp/no_pre.json"
expect_error "$tmp/no_pre.json" "key 'pre_tokenizer' is missing"

# A good tokenizer still works: exit 0 and one line of ids.
out=$("$L4_BINARY" tokenize --tokenizer "$model" --text "hello" --ids-only) || failures=$((failures + 1))
[[ $out =~ ^[0-9]+( [0-9]+)*$ ]] || { echo "FAIL: unexpected output '$out'" >&2; failures=$((failures + 1)); }
exit $((failures > 0))
