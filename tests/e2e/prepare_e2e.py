"""`llama4 prepare` from the command line: --config recipes, bad records (file:line, exit 1, nothing left
behind), --skip-bad-records, corrupt images, replacing a dataset, refusing a foreign directory; JSONL of every
record kind without --format, directories of text files, the train_on / overlong / text_doc_bytes choices."""
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
    r = run("--input", chat, "--output", out, "--tokenizer", TOKENIZER, "--skip-bad-records")
    check(r.returncode == 0 and json.load(open(os.path.join(out, "meta.json")))["num_documents"] == 3,
          "chat JSONL is recognised without --format", r)

    # Every JSONL record kind without --format: chat, ShareGPT, Alpaca, text.
    kinds = {
        "messages": {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]},
        "sharegpt": {"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]},
        "alpaca": {"instruction": "Say hello.", "input": "", "output": "Hello."},
        "text": {"text": "A plain pretraining document."},
    }
    datasets = {}
    for name, record in kinds.items():
        path = os.path.join(tmp, f"{name}.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps(record) + "\n" + json.dumps(record) + "\n")
        r = run("--input", path, "--output", os.path.join(tmp, f"kind_{name}"), "--tokenizer", TOKENIZER)
        ok = r.returncode == 0
        if ok:
            datasets[name] = json.load(open(os.path.join(tmp, f"kind_{name}", "meta.json")))
            ok = datasets[name]["num_documents"] == 2
        check(ok, f"prepare --input {name}.jsonl --output D --tokenizer T works without --format", r)
    if len(datasets) == 4:
        kind_of = {n: list(m["sources"][0]["kinds"].keys()) for n, m in datasets.items()}
        check(kind_of == {"messages": ["chat"], "sharegpt": ["sharegpt"], "alpaca": ["alpaca"], "text": ["text"]},
              f"meta.json records each file's record kind: {kind_of}")
        check(datasets["messages"]["num_tokens"] == datasets["sharegpt"]["num_tokens"],
              "ShareGPT human/gpt give the same tokens as chat user/assistant")

    # A malformed record of each kind: file:line and exit 1, or skipped and counted.
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write("\n".join([json.dumps(kinds["sharegpt"]), json.dumps({"conversations": [{"from": "robot", "value": "x"}]}),
                           json.dumps({"instruction": "no output"}),
                           json.dumps({"messages": [{"role": "user", "content": "q", "name": "me"}]}),
                           json.dumps({"prompt": "p", "completion": "c"})]) + "\n")
    r = run("--input", bad, "--output", out, "--tokenizer", TOKENIZER)
    check(r.returncode == 1 and f"{bad}:2: conversations[0]: unknown \"from\" 'robot'" in r.stderr,
          "a bad ShareGPT record stops prepare with file:line", r)
    r = run("--input", bad, "--output", out, "--tokenizer", TOKENIZER, "--skip-bad-records")
    check(r.returncode == 0 and "skipped 4 bad record(s)" in r.stdout and f"{bad}:3: \"output\" is missing" in r.stdout
          and f"{bad}:4: messages[0]: unknown key 'name'" in r.stdout and f"{bad}:5: expected a record with" in r.stdout,
          "--skip-bad-records counts bad Alpaca, chat (unknown message key) and unknown records", r)

    # A directory of .txt files, in path order; the text split size as a flag and as a recipe key.
    corpus = os.path.join(tmp, "corpus")
    os.makedirs(os.path.join(corpus, "sub"))
    for name, text in [("b.txt", "second file\n"), ("a.txt", "x" * 50 + "\n" + "y" * 50 + "\n"),
                       ("sub/c.txt", "third\n"), ("skip.md", "not text input\n")]:
        open(os.path.join(corpus, name), "w").write(text)
    r = run("--input", corpus, "--output", os.path.join(tmp, "dir_out"), "--tokenizer", TOKENIZER,
            "--text-doc-bytes", "40")
    meta = json.load(open(os.path.join(tmp, "dir_out", "meta.json"))) if r.returncode == 0 else {}
    check(r.returncode == 0 and [os.path.relpath(s["path"], corpus) for s in meta["sources"]] == ["a.txt", "b.txt", "sub/c.txt"]
          and meta["num_documents"] == 4 and "from 3 file(s)" in r.stdout,
          "a directory stands for its .txt files in path order (a.txt split at 40 bytes into 2 documents)", r)
    r = run("--input", os.path.join(tmp, "nothing_here"), "--output", out, "--tokenizer", TOKENIZER)
    check(r.returncode == 1 and "nothing_here: input file not found" in r.stderr, "a missing directory is named", r)

    # train_on and overlong from the command line.
    long_chat = os.path.join(tmp, "long.jsonl")
    turns = [{"role": "system", "content": "Be brief."}]
    for i in range(6):
        turns += [{"role": "user", "content": f"Question number {i}, asked at some length to use tokens?"},
                  {"role": "assistant", "content": f"Answer number {i}, also long enough to matter here."}]
    open(long_chat, "w").write(json.dumps({"messages": turns}) + "\n")
    r = run("--input", long_chat, "--output", os.path.join(tmp, "long_split"), "--tokenizer", TOKENIZER, "--seq-len", "64")
    meta = json.load(open(os.path.join(tmp, "long_split", "meta.json"))) if r.returncode == 0 else {}
    check(r.returncode == 0 and meta["num_documents"] > 1 and "1 split at turns" in r.stdout
          and meta["seq_len"] == 64 and meta["overlong"] == "split",
          "--seq-len splits a long conversation at turns into several documents", r)
    r = run("--input", long_chat, "--output", os.path.join(tmp, "long_drop"), "--tokenizer", TOKENIZER, "--seq-len", "64",
            "--overlong", "drop")
    check(r.returncode == 0 and "1 left out" in r.stdout
          and json.load(open(os.path.join(tmp, "long_drop", "meta.json")))["num_documents"] == 0,
          "--overlong drop leaves the conversation out", r)
    r = run("--input", long_chat, "--output", out, "--tokenizer", TOKENIZER, "--train-on", "last")
    check(r.returncode == 1 and "--train-on: expected one of assistant, all, last_turn, got 'last'" in r.stderr,
          "a bad --train-on value lists the choices", r)
    r = run("--input", long_chat, "--output", out, "--tokenizer", TOKENIZER, "--overlong", "drop")
    check(r.returncode == 1 and "--overlong needs --seq-len" in r.stderr, "--overlong without --seq-len is refused", r)

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
    r = run("--config", recipe, "data.train_on=assistnt")
    check(r.returncode == 1 and "data.train_on: expected one of assistant, all, last_turn, got 'assistnt' "
          "(did you mean 'assistant'?)" in r.stderr, "data.train_on is validated like data.format", r)
    r = run("--config", recipe, "data.overlong=cut")
    check(r.returncode == 1 and "data.overlong: expected one of split, truncate, drop" in r.stderr,
          "data.overlong is validated", r)
    r = run("--config", recipe, "--train-on", "all")
    check(r.returncode == 1 and "--train-on is for the --input form" in r.stderr, "flags and --config do not mix", r)
    text_recipe = os.path.join(tmp, "t.yaml")
    with open(text_recipe, "w") as f:
        f.write(f"""model: {{config: {SOURCE}/configs/tiny.yaml}}
tokenizer: {{path: {TOKENIZER}}}
data: {{sources: [{corpus}], train: {tmp}/cfg_text, text_doc_bytes: 40}}
""")
    r = run("--config", text_recipe)
    check(r.returncode == 0 and json.load(open(f"{tmp}/cfg_text/meta.json"))["num_documents"] == 4,
          "data.text_doc_bytes sets the text split size; data.sources takes a directory", r)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("all prepare CLI checks passed")
