"""Every recipe in recipes/ validates (`llama4 train --config R --print-config`), and `llama4 plan` gives
each GPU recipe a layout within its GPUs' memory (80 GiB; 141 for full fine-tuning) on the world size its
comment states. The Scout and Maverick
recipes take their architecture from configs/ and only their weights (model.init) from a checkpoint
directory, so both work without the checkpoint."""
import glob
import json
import os
import subprocess
import sys

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
failures = []


def run(*args):
    return subprocess.run([BINARY, *args], cwd=SOURCE, capture_output=True, text=True, timeout=120)


recipes = sorted(glob.glob(os.path.join(SOURCE, "recipes", "*.yaml")))
if len(recipes) < 5:
    failures.append(f"expected at least 5 recipes, found {len(recipes)}")
for recipe in recipes:
    name = os.path.basename(recipe)
    r = run("train", "--config", recipe, "--print-config")
    ok = r.returncode == 0 and "train:" in r.stdout and "text_config:" in r.stdout
    print(("ok:   " if ok else "FAIL: ") + name + ("" if ok else "\n" + r.stderr[-2000:]))
    if not ok:
        failures.append(name)

# recipe, world size, plan flags for the memory features the recipes cannot name yet (and the GPU memory:
# full fine-tuning with fp32 master weights needs 141 GB GPUs)
GPU_LAYOUTS = [
    ("scout_lora_sft.yaml", 8, ["--activation-checkpointing", "full"]),
    ("scout_full_sft.yaml", 32, ["--activation-checkpointing", "full", "--zero", "2",
                                 "--buckets-in-flight", "2", "--gpu-memory-gb", "141"]),
    ("maverick_lora_sft_multinode.yaml", 32, ["--activation-checkpointing", "full"]),
]
for name, world, flags in GPU_LAYOUTS:
    r = run("plan", "--config", f"recipes/{name}", "--world", str(world), "--json", *flags)
    if r.returncode != 0:
        print(f"FAIL: plan {name}\n{r.stderr[-2000:]}")
        failures.append(f"plan {name}")
        continue
    plan = json.loads(r.stdout)
    total = plan["per_rank_bytes"]["total"] / 1024 ** 3
    ok = plan["fits"] and plan["inputs"]["device"] == "cuda" and plan["inputs"]["seq_len"] == 8192
    print(("ok:   " if ok else "FAIL: ") + f"plan {name} on {world} GPUs: {total:.1f} GiB per GPU")
    if not ok:
        failures.append(f"plan {name}")

print(f"{len(failures)} failed" if failures else "all recipes validate")
sys.exit(1 if failures else 0)
