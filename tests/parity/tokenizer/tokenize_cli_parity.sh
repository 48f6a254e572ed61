#!/usr/bin/env bash
# `llama4 tokenize --file F --ids-only` prints, line for line, the ids HF tokenizers gives each line.
set -euo pipefail
data=$L4_TEST_DATA_DIR/tokenizer
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$L4_BINARY" tokenize --tokenizer "$L4_SOURCE_DIR/data/tokenizer/tokenizer.json" --file "$data/lines.txt" --ids-only >"$out"
if ! diff -q "$out" "$data/lines_hf_ids.txt" >/dev/null; then
  echo "llama4 tokenize --ids-only differs from HF tokenizers:" >&2
  diff "$out" "$data/lines_hf_ids.txt" | head -20 >&2
  exit 1
fi
echo "ok: $(wc -l <"$out") lines identical"
