#!/usr/bin/env bash
# `mpirun -np 2 llama4 prepare` must write the same datasets (same documents in the same shards, same
# meta.json) as one process. Usage: prepare_mpi.sh MPIEXEC [MPIEXEC_PREFLAGS...]
set -euo pipefail
MPIEXEC=$1
shift
OUT=$L4_TEST_DATA_DIR/data_prepare_mpi
TOK=$L4_SOURCE_DIR/data/tokenizer/tokenizer.json
rm -rf "$OUT"
mkdir -p "$OUT/in"
for f in web_bible_en reina_valera_1909_es python_docs_en; do
  head -c 150000 "$L4_SOURCE_DIR/data/corpus/$f.txt" >"$OUT/in/$f.txt"
done
# Chats with images (paths relative to the JSONL file).
ln -s "$L4_SOURCE_DIR/data/domain/images" "$OUT/in/images"
sed -n 1,60p "$L4_SOURCE_DIR/data/domain/train.jsonl" >"$OUT/in/chat_a.jsonl"
sed -n 1,20p "$L4_SOURCE_DIR/data/domain/eval.jsonl" >"$OUT/in/chat_b.jsonl"

prepare() {  # prepare NAME ARGS...
  local name=$1
  shift
  "$@" "$L4_BINARY" prepare --tokenizer "$TOK" --output "$OUT/$name/train" --eval-output "$OUT/$name/eval" \
    --eval-fraction 0.1 $INPUTS
}
for kind in text chat; do
  if [[ $kind == text ]]; then
    INPUTS="--shard-mb 0.25 --input $OUT/in/web_bible_en.txt $OUT/in/reina_valera_1909_es.txt $OUT/in/python_docs_en.txt"
  else
    INPUTS="--shard-mb 2 --format chat --input $OUT/in/chat_a.jsonl $OUT/in/chat_b.jsonl"
  fi
  prepare "$kind-np1"
  prepare "$kind-np2" "$MPIEXEC" -np 2 "$@" | tee "$OUT/$kind-np2.log"
  grep -q "with 2 process(es)" "$OUT/$kind-np2.log" || { echo "mpirun did not give prepare 2 processes"; exit 1; }
done

"$L4_PYTHON" - "$OUT" <<'PY'
import json, os, sys
import h5py, numpy as np
out = sys.argv[1]
bad = []
for kind in ("text", "chat"):
    for split in ("train", "eval"):
        a, b = os.path.join(out, f"{kind}-np1", split), os.path.join(out, f"{kind}-np2", split)
        ma, mb = json.load(open(os.path.join(a, "meta.json"))), json.load(open(os.path.join(b, "meta.json")))
        if ma != mb:
            bad.append(f"{kind}/{split}: meta.json differs")
        for shard in ma["shards"]:
            with h5py.File(os.path.join(a, shard["file"])) as fa, h5py.File(os.path.join(b, shard["file"])) as fb:
                for name in fa:
                    if sorted(fa) != sorted(fb) or not np.array_equal(fa[name][:], fb[name][:]):
                        bad.append(f"{kind}/{split}/{shard['file']}: {name} differs")
        print(f"{kind}/{split}: {ma['num_documents']} documents, {ma['num_tokens']} tokens, "
              f"{len(ma['shards'])} shards compared")
        if len(ma["shards"]) < 2 and split == "train":
            bad.append(f"{kind}/{split}: expected several shards")
if bad:
    sys.exit("\n".join(bad))
print("mpirun -np 2 prepare == 1 process")
PY
