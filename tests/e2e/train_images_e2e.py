#!/usr/bin/env python3
"""e2e: `llama4 train` on a chat dataset with images (data/domain, prepared by `llama4 prepare`) with the
tiny multimodal architecture: the loss is finite and decreases over 10 steps with the vision tower
trained, and with model.freeze_vision the tower's parameters are left out of training. The batches do carry
image tiles: a text-only architecture on the same data is a user error."""
import json
import math
import os
import subprocess
import sys
import tempfile

RECIPE = """model:
  config: {arch}
  freeze_vision: {freeze}
data:
  train: {data}
  seq_len: 256
optimizer:
  lr: 3.0e-3
schedule:
  warmup_steps: 1
train:
  steps: 10
  global_batch: 4
  micro_batch: 2
  seed: 7
logging:
  run_dir: {run}
  tensorboard: false
  peak_tflops: 1.0
"""


def main():
    binary, src = os.environ["L4_BINARY"], os.environ["L4_SOURCE_DIR"]
    ok = True
    with tempfile.TemporaryDirectory() as work:
        # A subset of the domain data (images resolve against the JSONL's directory).
        with open(os.path.join(src, "data", "domain", "train.jsonl")) as f:
            lines = [line for line in f if '"image"' in line][:48]
        with open(os.path.join(work, "train.jsonl"), "w") as f:
            f.writelines(lines)
        os.symlink(os.path.join(src, "data", "domain", "images"), os.path.join(work, "images"))
        data = os.path.join(work, "prepared")
        proc = subprocess.run([binary, "prepare", "--input", os.path.join(work, "train.jsonl"), "--output", data,
                               "--tokenizer", os.path.join(src, "data", "tokenizer"), "--format", "chat"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"prepare failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
            return 1
        for freeze in ("false", "true"):
            run = os.path.join(work, "run_" + freeze)
            recipe = os.path.join(work, f"recipe_{freeze}.yaml")
            with open(recipe, "w") as f:
                f.write(RECIPE.format(arch=os.path.join(src, "configs", "tiny.yaml"), freeze=freeze, data=data,
                                      run=run))
            proc = subprocess.run([binary, "train", "--config", recipe], capture_output=True, text=True)
            log = proc.stdout + proc.stderr
            if proc.returncode != 0:
                print(f"[freeze_vision={freeze}] train failed ({proc.returncode}):\n{log[-3000:]}")
                ok = False
                continue
            with open(os.path.join(run, "metrics.jsonl")) as f:
                losses = [json.loads(line)["loss"] for line in f if '"loss"' in line]
            first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
            print(f"[freeze_vision={freeze}] {len(losses)} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f} "
                  f"(first 3 mean {first:.4f}, last 3 mean {last:.4f})")
            ok &= len(losses) == 10 and all(math.isfinite(x) for x in losses) and last < first
            want = "vision tower frozen" if freeze == "true" else "vision tower trained"
            if want not in log:
                print(f"[freeze_vision={freeze}] log lacks '{want}':\n{log[-2000:]}")
                ok = False
        # The same data on the text part alone (tiny.yaml without its vision_config).
        with open(os.path.join(src, "configs", "tiny.yaml")) as f:
            text_arch = f.read().split("vision_config:")[0]
        arch = os.path.join(work, "tiny_text.yaml")
        with open(arch, "w") as f:
            f.write(text_arch)
        recipe = os.path.join(work, "recipe_text.yaml")
        with open(recipe, "w") as f:
            f.write(RECIPE.format(arch=arch, freeze="false", data=data, run=os.path.join(work, "run_text")))
        proc = subprocess.run([binary, "train", "--config", recipe], capture_output=True, text=True)
        if proc.returncode != 1 or "no vision_config" not in proc.stdout + proc.stderr:
            print(f"[text-only arch] expected exit 1 about the missing vision_config: {proc.returncode}\n"
                  f"{(proc.stdout + proc.stderr)[-2000:]}")
            ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
