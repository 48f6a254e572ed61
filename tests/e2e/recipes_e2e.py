"""Every recipe in recipes/ validates (`llama4 train --config R --print-config`). The Scout and Maverick
recipes point at real checkpoints, so their model.hf_dir is replaced by a tiny stand-in with the same
expert count (what a user's dry run on a laptop would do)."""
import glob
import json
import os
import subprocess
import sys
import tempfile

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
failures = []

with tempfile.TemporaryDirectory() as tmp:
    def stand_in(experts, interleave):
        path = os.path.join(tmp, f"standin_{experts}")
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump({"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
                       "text_config": {"hidden_size": 64, "intermediate_size": 32, "intermediate_size_mlp": 64,
                                       "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                                       "head_dim": 16, "vocab_size": 10240, "num_local_experts": experts,
                                       "interleave_moe_layer_step": interleave, "attention_chunk_size": 16}}, f)
        return path

    stand_ins = {"scout_lora_sft.yaml": stand_in(16, 1), "maverick_lora_sft_multinode.yaml": stand_in(128, 2)}
    recipes = sorted(glob.glob(os.path.join(SOURCE, "recipes", "*.yaml")))
    if len(recipes) < 5:
        failures.append(f"expected at least 5 recipes, found {len(recipes)}")
    for recipe in recipes:
        name = os.path.basename(recipe)
        extra = []
        if name in stand_ins:
            extra = [f"model.hf_dir={stand_ins[name]}", "tokenizer.path=data/tokenizer"]
        r = subprocess.run([BINARY, "train", "--config", recipe, "--print-config", *extra], cwd=SOURCE,
                           capture_output=True, text=True, timeout=120)
        ok = r.returncode == 0 and "train:" in r.stdout and "text_config:" in r.stdout
        print(("ok:   " if ok else "FAIL: ") + name + ("" if ok else "\n" + r.stderr[-2000:]))
        if not ok:
            failures.append(name)

print(f"{len(failures)} failed" if failures else "all recipes validate")
sys.exit(1 if failures else 0)
