#!/usr/bin/env python3
"""Measured peak RSS of real CPU training runs against `llama4 plan`'s per-rank total.

Each case trains a few steps of configs/tiny.yaml or configs/small.yaml (full fine-tuning or LoRA, fp32 or a
bf16 base, several seq_len x micro_batch) on one process under /usr/bin/time -v, and runs `llama4 plan
--world 1 --json` on the same recipe. Prints a markdown table (measured, planned, ratio) and writes it to
--out. Needs a prepared text dataset (--data, made by `llama4 prepare`).

  scripts/bench/plan_vs_rss.py --data runs/data/corpus/train [--only small] [--out bench/plan_vs_rss.md]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIB = 1024.0 ** 3

# name, architecture, seq_len, micro_batch, extra recipe sections
CASES = [
    ("tiny full fp32", "tiny", 512, 4, {}),
    ("small full fp32", "small", 1024, 4, {}),
    ("small full fp32", "small", 2048, 4, {}),
    ("small full fp32", "small", 1024, 16, {}),
    ("small full bf16 autocast", "small", 2048, 4, {"train": {"precision": "bf16"}}),
    ("small LoRA fp32", "small", 2048, 4,
     {"lora": {"rank": 16, "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "shared_expert", "experts"]}}),
    ("small LoRA bf16 base", "small", 2048, 8,
     {"lora": {"rank": 16, "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "shared_expert", "experts"],
               "base_dtype": "bfloat16"}}),
    ("small LoRA bf16 model", "small", 2048, 8,
     {"model": {"dtype": "bfloat16"},
      "lora": {"rank": 16, "dropout": 0.05, "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "shared_expert",
                                                        "experts"], "base_dtype": "bfloat16"}}),
    ("small LoRA bf16 model", "small", 4096, 4,
     {"model": {"dtype": "bfloat16"},
      "lora": {"rank": 16, "dropout": 0.05, "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "shared_expert",
                                                        "experts"], "base_dtype": "bfloat16"}}),
]


def merge(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict):
            merge(base.setdefault(key, {}), value)
        else:
            base[key] = value
    return base


def run_case(binary, data, work, index, case, threads, cache):
    name, arch, seq_len, micro_batch, extra = case
    recipe = merge({
        "model": {"config": os.path.join(ROOT, "configs", f"{arch}.yaml")},
        "tokenizer": {"path": os.path.join(ROOT, "data", "tokenizer")},
        "data": {"train": data, "eval": "", "seq_len": seq_len, "prefetch": 1},
        "train": {"steps": 3, "global_batch": micro_batch, "micro_batch": micro_batch},
        "checkpoint": {"dir": ""},
        "logging": {"run_dir": os.path.join(work, f"run{index}"), "tensorboard": False, "peak_tflops": 1.0},
    }, extra)
    path = os.path.join(work, f"recipe{index}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(recipe, f)
    plan = json.loads(subprocess.run([binary, "plan", "--config", path, "--world", "1", "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    key = json.dumps([name, arch, seq_len, micro_batch, extra], sort_keys=True)
    if key not in cache:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        r = subprocess.run(["/usr/bin/time", "-v", binary, "train", "--config", path], capture_output=True,
                           text=True, env=env, cwd=ROOT)
        if r.returncode != 0:
            sys.exit(f"{name}: training failed\n{r.stderr[-3000:]}")
        cache[key] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) * 1024.0
    return name, seq_len, micro_batch, cache[key], plan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared text dataset (llama4 prepare)")
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "bin", "llama4"))
    parser.add_argument("--only", default="", help="substring of the case names to run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="")
    parser.add_argument("--rss-cache", default="", help="JSON file keeping measured RSS between runs (re-plans only)")
    args = parser.parse_args()
    cache = {}
    if args.rss_cache and os.path.exists(args.rss_cache):
        with open(args.rss_cache) as f:
            cache = json.load(f)
    lines = ["| case | seq_len x micro_batch | measured peak RSS (GiB) | plan total (GiB) | plan / measured "
             "| weights+grads+optimizer | activations | loss | gradient buckets |",
             "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as work:
        for i, case in enumerate(CASES):
            if args.only and args.only not in case[0]:
                continue
            name, seq_len, micro_batch, rss, plan = run_case(args.binary, args.data, work, i, case, args.threads,
                                                             cache)
            if args.rss_cache:
                with open(args.rss_cache, "w") as f:
                    json.dump(cache, f, indent=1)
            b = plan["per_rank_bytes"]
            state = b["weights"] + b["gradients"] + b["optimizer"]
            lines.append(f"| {name} | {seq_len} x {micro_batch} | {rss / GIB:.2f} | {b['total'] / GIB:.2f} | "
                         f"{b['total'] / rss:.2f} | {state / GIB:.2f} | "
                         f"{(b['activations'] + b['weight_copies']) / GIB:.2f} | {b['loss'] / GIB:.2f} | "
                         f"{b['grad_buckets'] / GIB:.2f} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
