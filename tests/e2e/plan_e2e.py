"""`llama4 plan` on the command line: clear errors for impossible layouts, the JSON object, and its per-rank
total against the measured peak RSS of real CPU training runs (within 20%: how far the plan is trusted at
scale). The runs train configs/small.yaml (full fine-tuning in float32; LoRA with a bf16 base) for two
steps on a slice of the bundled corpus."""
import json
import os
import subprocess
import sys
import tempfile

import yaml

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
failures = []


def check(ok, message):
    print(("ok:   " if ok else "FAIL: ") + message)
    if not ok:
        failures.append(message)


def plan(*args):
    return subprocess.run([BINARY, "plan", *args], cwd=SOURCE, capture_output=True, text=True, timeout=120)


r = plan("--config", "recipes/lora_sft_tiny.yaml", "--world", "3")
check(r.returncode == 1 and "expert_parallel=2 must divide the world size 3" in r.stderr,
      f"--world 3 with expert_parallel 2 is a user error: {r.stderr.strip()}")
r = plan("--config", "recipes/lora_sft_tiny.yaml")
check(r.returncode == 1 and "--world" in r.stderr, f"missing --world: {r.stderr.strip()}")
r = plan("--config", "recipes/lora_sft_tiny.yaml", "--world", "2", "--activation-checkpointing", "layers")
check(r.returncode == 1 and "none, moe or full" in r.stderr, f"bad recomputation mode: {r.stderr.strip()}")
r = plan("--config", "recipes/lora_sft_tiny.yaml", "--world", "2", "--json")
document = json.loads(r.stdout) if r.returncode == 0 else {}
check(document.get("inputs", {}).get("local_experts") == 2 and document.get("fits") is True,
      "JSON plan of the tiny LoRA recipe on 2 ranks")
r = plan("--config", "recipes/lora_sft_tiny.yaml", "--world", "2")
check(r.returncode == 0 and "verdict: fits 80 GiB" in r.stdout and "peak total" in r.stdout, "text plan")


def peak_rss(command):
    """Peak RSS in bytes of one child process (its own rusage, read by a fresh Python)."""
    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
             "sys.stderr.write(r.stderr[-3000:])\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 if r.returncode == 0 else -1)\n")
    r = subprocess.run([sys.executable, "-c", probe, *command], cwd=SOURCE, capture_output=True, text=True,
                       timeout=900, env=dict(os.environ, OMP_NUM_THREADS="2"))
    rss = int(r.stdout.strip() or -1)
    if rss < 0:
        print(r.stderr)
    return rss


with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "data")
    r = subprocess.run([BINARY, "prepare", "--input", "data/corpus/python_docs_en.txt", "--output", data,
                        "--tokenizer", "data/tokenizer"], cwd=SOURCE, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "prepare a slice of the corpus")
    lora = {"rank": 16, "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "shared_expert", "experts"],
            "base_dtype": "bfloat16"}
    for name, extra in [("small, full fine-tuning, fp32", {}), ("small, LoRA, bf16 base", {"lora": lora})]:
        recipe = {"model": {"config": "configs/small.yaml"}, "tokenizer": {"path": "data/tokenizer"},
                  "data": {"train": data, "eval": "", "seq_len": 1024, "prefetch": 1},
                  "train": {"steps": 2, "global_batch": 4, "micro_batch": 4},
                  "checkpoint": {"dir": ""},
                  "logging": {"run_dir": os.path.join(tmp, "run"), "tensorboard": False, "peak_tflops": 1.0},
                  **extra}
        path = os.path.join(tmp, "recipe.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(recipe, f)
        r = plan("--config", path, "--world", "1", "--json")
        planned = json.loads(r.stdout)["per_rank_bytes"]["total"] if r.returncode == 0 else 0
        measured = peak_rss([BINARY, "train", "--config", path])
        ratio = planned / measured if measured > 0 else 0
        check(0.8 <= ratio <= 1.2,
              f"{name}: planned {planned / 2**30:.2f} GiB, measured peak RSS {measured / 2**30:.2f} GiB "
              f"(ratio {ratio:.2f})")

print(f"{len(failures)} failed" if failures else "plan checks passed")
sys.exit(1 if failures else 0)
