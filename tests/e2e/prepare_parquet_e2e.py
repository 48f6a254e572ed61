"""`llama4 prepare` on Parquet files written by pyarrow: the same records as JSONL and as Parquet (each
record kind, each codec, data pages v1 and v2, several row groups) give identical datasets, found without
--format; a malformed row is named file:row N and stops prepare (exit 1) or is skipped and counted.
Exit code 77 (reported as skipped) when pyarrow is not installed."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:
    print("pyarrow is not installed: skipped")
    sys.exit(77)
import h5py
import numpy as np

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
TOKENIZER = os.path.join(SOURCE, "data", "tokenizer", "tokenizer.json")
failures = []


def run(*args):
    return subprocess.run([BINARY, "prepare", *args], capture_output=True, text=True, cwd=SOURCE, timeout=300)


def check(condition, what, result=None):
    if not condition:
        detail = f"\n  rc={result.returncode}\n  stdout={result.stdout[-800:]}\n  stderr={result.stderr[-800:]}" if result else ""
        failures.append(what + detail)
        print("FAIL:", what + detail)
    else:
        print("ok:  ", what)


def contents(directory):
    """All documents' tokens and loss masks, in order."""
    meta = json.load(open(os.path.join(directory, "meta.json")))
    tokens, masks, offsets = [], [], []
    for shard in meta["shards"]:
        with h5py.File(os.path.join(directory, shard["file"]), "r") as f:
            tokens.append(f["tokens"][:])
            masks.append(f["loss_mask"][:])
            offsets.append(f["doc_offsets"][:])
    return meta["num_documents"], np.concatenate(tokens).tolist(), np.concatenate(masks).tolist()


RECORDS = {
    "chat": [{"id": i, "messages": [{"role": "user", "content": f"Question {i} 🦙?"},
                                    {"role": "assistant", "content": f"Answer {i % 3}."}]} for i in range(30)],
    "sharegpt": [{"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": f"q{i}"},
                                    {"from": "gpt", "value": "yes" if i % 2 else "no"}]} for i in range(30)],
    "alpaca": [{"instruction": f"Task {i}.", "input": "" if i % 2 else f"with input {i}", "output": f"done {i}",
                "text": "a rendered prompt that is ignored"} for i in range(30)],
    "text": [{"text": f"Document {i}. " + "words " * (i % 9)} for i in range(30)],
}
WRITERS = [("snappy", "1.0"), ("zstd", "2.0"), ("gzip", "1.0"), ("none", "2.0")]

tmp = tempfile.mkdtemp(prefix="l4_parquet_e2e_")
try:
    for kind, records in RECORDS.items():
        jsonl = os.path.join(tmp, f"{kind}.jsonl")
        with open(jsonl, "w") as f:
            f.write("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
        r = run("--input", jsonl, "--output", os.path.join(tmp, f"{kind}_jsonl"), "--tokenizer", TOKENIZER)
        check(r.returncode == 0, f"{kind}: JSONL prepared", r)
        reference = contents(os.path.join(tmp, f"{kind}_jsonl"))
        for codec, page_version in WRITERS:
            name = f"{kind}_{codec}_v{page_version[0]}"
            path = os.path.join(tmp, name + ".parquet")
            pq.write_table(pa.Table.from_pylist(records), path, compression=codec, data_page_version=page_version,
                           row_group_size=7)
            r = run("--input", path, "--output", os.path.join(tmp, name), "--tokenizer", TOKENIZER)
            ok = r.returncode == 0 and contents(os.path.join(tmp, name)) == reference
            check(ok, f"{name}.parquet gives the documents of {kind}.jsonl (no --format)", r)

    # A malformed row: file:row N (rows counted from 0), exit 1; or skipped and counted.
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            {"messages": [{"role": "user", "content": "q"}, {"role": "robot", "content": "a"}]},
            {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "a"}]}]
    bad = os.path.join(tmp, "bad.parquet")
    pq.write_table(pa.Table.from_pylist(rows), bad)
    r = run("--input", bad, "--output", os.path.join(tmp, "bad_out"), "--tokenizer", TOKENIZER)
    check(r.returncode == 1 and f"{bad}:row 1: messages[1]: unknown role 'robot'" in r.stderr
          and not os.path.exists(os.path.join(tmp, "bad_out")), "a bad Parquet row stops prepare with file:row", r)
    r = run("--input", bad, "--output", os.path.join(tmp, "bad_out"), "--tokenizer", TOKENIZER, "--skip-bad-records")
    check(r.returncode == 0 and "skipped 2 bad record(s)" in r.stdout and f"{bad}:row 2: messages[0]: \"content\" is missing"
          in r.stdout, "--skip-bad-records skips and counts bad Parquet rows (null content named)", r)

    # Not a Parquet file, and a codec this reader does not have: errors naming the file.
    fake = os.path.join(tmp, "fake.parquet")
    open(fake, "w").write("id,text\n1,hello\n")
    r = run("--input", fake, "--output", os.path.join(tmp, "fake_out"), "--tokenizer", TOKENIZER)
    check(r.returncode == 1 and f"{fake}: not a Parquet file" in r.stderr, "a file that is not Parquet is named", r)
    brotli = os.path.join(tmp, "brotli.parquet")
    pq.write_table(pa.Table.from_pylist(RECORDS["text"]), brotli, compression="brotli")
    r = run("--input", brotli, "--output", os.path.join(tmp, "brotli_out"), "--tokenizer", TOKENIZER)
    check(r.returncode == 1 and "BROTLI compression is not supported" in r.stderr and "pq.write_table" in r.stderr
          and brotli in r.stderr, "an unsupported codec names the file and the command that rewrites it", r)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("all Parquet prepare checks passed")
