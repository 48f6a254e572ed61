"""Running `llama4` from the MPI script tests: a command that must succeed, and the small prepared corpus
(the first 40 kB of the bundled English Bible, 400-byte documents) their training runs read."""
import os
import subprocess
import sys


def run(cmd, **kw):
    """Runs `cmd`; on a non-zero exit, stops the test with the command and the tails of its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, **kw)
    if proc.returncode != 0:
        sys.exit(f"FAILED ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def prepare_small_corpus(binary, source, tmp, eval_fraction=0.0):
    """Writes the corpus to `tmp`/corpus.txt and prepares it there; returns (train_dir, eval_dir or None)."""
    corpus = os.path.join(tmp, "corpus.txt")
    with open(os.path.join(source, "data/corpus/web_bible_en.txt"), encoding="utf-8") as f:
        text = f.read(40000)
    with open(corpus, "w", encoding="utf-8") as f:
        f.write(text[: text.rfind("\n") + 1])
    train_dir = os.path.join(tmp, "train")
    eval_dir = os.path.join(tmp, "eval") if eval_fraction > 0 else None
    split = ["--eval-output", eval_dir, "--eval-fraction", str(eval_fraction)] if eval_dir else []
    run([binary, "prepare", "--input", corpus, "--output", train_dir, *split,
         "--tokenizer", os.path.join(source, "data/tokenizer"), "--format", "text", "--text-doc-bytes", "400"])
    return train_dir, eval_dir
