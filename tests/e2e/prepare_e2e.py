"""`llama4 prepare` from the command line: --config recipes, bad records (file:line, exit 1, nothing left
behind), --skip-bad-records, corrupt images, replacing a dataset, refusing a foreign directory."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
TOKENIZER = os.path.join(SOURCE, "data", "tokenizer", "tokenizer.json")
failures = []


def run(*args, cwd=None):
    return subprocess.run([BINARY, "prepare", *args], capture_output=True, text=True, cwd=cwd or SOURCE, timeout=300)


def check(condition, what, result=None):
    if not condition:
        detail = f"\n  rc={result.returncode}\n  stdout={result.stdout[-800:]}\n  stderr={result.stderr[-800:]}" if result else ""
        failures.append(what + detail)
        print("FAIL:", what + detail)
    else:
        print("ok:  ", what)


def leftovers(path):
    return [p for p in (path, path + ".incomplete", path + ".parts") if os.path.exists(p)]


tmp = tempfile.mkdtemp(prefix="l4_prepare_e2e_")
try:
    images = os.path.join(tmp, "images")
    shutil.copytree(os.path.join(SOURCE, "data", "domain", "images"), images,
                    ignore=lambda d, names: [n for n in names if not n.startswith("img_000")])
    with open(os.path.join(images, "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nthis is not a png")
    good = lambda i: json.dumps({"messages": [  # noqa: E731
        {"role": "user", "content": [{"type": "image", "path": f"images/img_000{i}.png"},
                                     {"type": "text", "text": f"Question {i}?"}]},
        {"role": "assistant", "content": f"Answer {i}."}]})
    bad_role = json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]})
    broken = json.dumps({"messages": [{"role": "user", "content": [{"type": "image", "path": "images/broken.png"}]},
                                      {"role": "assistant", "content": "?"}]})
    chat = os.path.join(tmp, "chat.jsonl")
    with open(chat, "w") as f:
        f.write("\n".join([good(0), bad_role, good(1), broken, good(2)]) + "\n")
    out = os.path.join(tmp, "out")

    r = run("--input", chat, "--format", "chat", "--output", out, "--tokenizer", TOKENIZER)
    check(r.returncode == 1 and f"{chat}:2: messages[0]: unknown role 'robot'" in r.stderr,
          "a bad record stops prepare with file:line: problem", r)
    check(not leftovers(out), "a failed prepare leaves no dataset, .incomplete or .parts directory")

    r = run("--input", chat, "--format", "chat", "--output", out, "--tokenizer", TOKENIZER, "--skip-bad-records")
    check(r.returncode == 0 and "skipped 2 bad record(s)" in r.stdout and f"{chat}:4: " in r.stdout
          and "broken.png" in r.stdout, "--skip-bad-records skips, counts and reports (corrupt image named)", r)
    meta = json.load(open(os.path.join(out, "meta.json")))
    sha = hashlib.sha256(open(TOKENIZER, "rb").read()).hexdigest()
    check(meta["num_documents"] == 3 and meta["num_images"] == 3 and meta["tokenizer"]["sha256"] == sha
          and meta["sources"][0]["skipped"] == 2, "meta.json: counts, images, tokenizer sha256, skipped records")

    # Re-preparing replaces the dataset; a directory that is not a dataset is never overwritten.
    r = run("--input", chat, "--format", "chat", "--output", out, "--tokenizer", TOKENIZER, "--skip-bad-records")
    check(r.returncode == 0 and os.path.exists(os.path.join(out, "meta.json")) and not leftovers(out + ".old"),
          "prepare over a previous dataset replaces it", r)
    foreign = os.path.join(tmp, "foreign")
    os.makedirs(foreign)
    open(os.path.join(foreign, "keep.txt"), "w").write("mine")
    r = run("--input", chat, "--format", "chat", "--output", foreign, "--tokenizer", TOKENIZER, "--skip-bad-records")
    check(r.returncode == 1 and "refusing to overwrite" in r.stderr and os.path.exists(os.path.join(foreign, "keep.txt")),
          "a foreign directory is not overwritten", r)

    r = run("--input", os.path.join(tmp, "missing.txt"), "--output", out, "--tokenizer", TOKENIZER)
    check(r.returncode == 1 and "missing.txt: input file not found" in r.stderr, "a missing input is named", r)
    r = run("--input", chat, "--output", out, "--tokenizer", TOKENIZER)
    check(r.returncode == 1 and "--format jsonl or --format chat" in r.stderr, "JSONL without --format is refused", r)

    # --config: the recipe's sources -> data.train / data.eval, with overrides.
    recipe = os.path.join(tmp, "r.yaml")
    with open(recipe, "w") as f:
        f.write(f"""model: {{config: {SOURCE}/configs/tiny.yaml}}
tokenizer: {{path: {TOKENIZER}}}
data:
  sources: [{chat}]
  format: chat
  train: {tmp}/cfg/train
  eval: {tmp}/cfg/eval
  eval_fraction: 0.5
""")
    r = run("--config", recipe, "data.skip_bad_records=true")
    train, evl = json.load(open(f"{tmp}/cfg/train/meta.json")), json.load(open(f"{tmp}/cfg/eval/meta.json"))
    check(r.returncode == 0 and train["num_documents"] + evl["num_documents"] == 3 and train["split"] == "train"
          and evl["split"] == "eval", "--config prepares data.train and data.eval (override applied)", r)
    r = run("--config", recipe)
    check(r.returncode == 1 and f"{chat}:2:" in r.stderr, "--config without skip_bad_records stops at the bad record", r)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("all prepare CLI checks passed")
