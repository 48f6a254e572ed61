#!/usr/bin/env python3
"""Single-thread tokenisation throughput: `llama4 tokenize --file F --ids-only` vs tiktoken and HF tokenizers
on the same text, each line encoded on its own (ordinary text, no special tokens).

Usage: scripts/bench/tokenizer_bench.py [--binary build/bin/llama4] [--tokenizer data/tokenizer] [files...]
The llama4 time is the whole process (start-up, load, encode, printing the ids); "net" subtracts the same
command run on a one-line file (process start-up with LibTorch loaded, tokenizer load).
Times are CPU seconds (user + system), which stay meaningful on a shared, loaded machine.
"""
import argparse
import base64
import glob
import os
import resource
import subprocess
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))


def measure(binary, tokenizer_dir, files=None, quick=False):
    """MB/s (of UTF-8 text per CPU second) by tokenizer; the same text for all."""
    files = files or sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt")))
    text = "".join(open(f, encoding="utf-8").read() for f in files)
    if quick:
        text = text[: len(text) // 4]
    path = "/tmp/l4_bench_corpus.txt"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    mb = len(text.encode()) / 1e6
    lines = text.split("\n")
    seconds = {}

    tiny = "/tmp/l4_bench_one_line.txt"
    with open(tiny, "w") as f:
        f.write("x\n")

    def child_cpu():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def run(fmt, file):
        t0 = child_cpu()
        subprocess.run([binary, "tokenize", "--tokenizer", os.path.join(tokenizer_dir, fmt), "--file", file,
                        "--ids-only"], check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
        return child_cpu() - t0

    for fmt in ("tokenizer.model", "tokenizer.json"):
        total = min(run(fmt, path) for _ in range(2))
        fixed = min(run(fmt, tiny) for _ in range(3))
        seconds[f"llama4 ({fmt}, whole process)"] = total
        seconds[f"llama4 ({fmt}, net of start-up+load)"] = total - fixed

    import tiktoken
    from llama4_special_tokens import O200K_PATTERN
    ranks = {}
    for line in open(os.path.join(tokenizer_dir, "tokenizer.model"), "rb").read().splitlines():
        if line:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    enc = tiktoken.Encoding(name="bench", pat_str=O200K_PATTERN, mergeable_ranks=ranks, special_tokens={})
    t0 = time.process_time()
    for line in lines:
        enc.encode_ordinary(line)
    seconds["tiktoken encode_ordinary"] = time.process_time() - t0

    from tokenizers import Tokenizer
    hf = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    hf.encode_special_tokens = True
    t0 = time.process_time()
    for line in lines:
        hf.encode(line, add_special_tokens=False)
    seconds["HF tokenizers encode"] = time.process_time() - t0
    return {name: mb / s for name, s in seconds.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "bin", "llama4"))
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "data", "tokenizer"))
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    for name, mbps in measure(args.binary, args.tokenizer, args.files).items():
        print(f"  {name:<44} {mbps:6.2f} MB/s")


if __name__ == "__main__":
    main()
