#!/usr/bin/env python3
"""e2e: a LoRA run on a multimodal base keeps what it trained through export. A tiny random HF
Llama4ForConditionalGeneration (configs/tiny.yaml's architecture) is the base; `llama4 train` runs LoRA with
the vision tower frozen, so the LoRA matrices and the projector train. Then:
  1. `export --peft` writes an adapter with the projector as modules_to_save and multimodal target names
     (language model only), which peft==0.21.0 loads onto the HF base: logits on an image prompt equal ours;
  2. `export` writes a full Llama4ForConditionalGeneration directory with the trained projector, which
     transformers loads: logits equal ours;
  3. `merge-lora` of base + adapter gives the same model.
"Ours" is `llama4 forward --config` on the run's checkpoint (the model as training left it); tolerance
1e-4 (fp32). The projector must have moved away from the base's, or the checks would prove little."""
import json
import os
import subprocess
import sys
import tempfile

import torch
import yaml
from safetensors.torch import load_file, save_file

TOL = 1e-4

RECIPE = """model:
  hf_dir: {base}
  freeze_vision: true
tokenizer: {{path: {tokenizer}}}
data:
  train: {data}
  seq_len: 256
lora:
  rank: 4
  alpha: 8.0
  targets: [q_proj, v_proj, shared_expert, experts]
optimizer:
  lr: 1.0e-2
  weight_decay: 0.0
schedule: {{warmup_steps: 0, decay: constant}}
train: {{steps: 4, global_batch: 4, micro_batch: 2, seed: 3}}
checkpoint: {{dir: {run}/ckpt, every: 0}}
logging: {{run_dir: {run}, tensorboard: false, peak_tflops: 1.0}}
"""


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"FAILED ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        sys.exit(1)
    return proc.stdout + proc.stderr


def make_base(src, path):
    """configs/tiny.yaml as a random HF multimodal model (experts drawn too: HF leaves them empty)."""
    from transformers import Llama4Config, Llama4ForConditionalGeneration

    with open(os.path.join(src, "configs", "tiny.yaml")) as f:
        arch = yaml.safe_load(f)
    config = Llama4Config(text_config=arch["text_config"], vision_config=arch["vision_config"],
                          boi_token_index=arch["boi_token_index"], eoi_token_index=arch["eoi_token_index"],
                          image_token_index=arch["image_token_index"], tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Llama4ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "experts" in name or "multi_modal_projector" in name:
                p.normal_(0.0, 0.05)
    model.save_pretrained(path, safe_serialization=True)
    return arch


def image_prompt(arch):
    """One tile: <|image_start|>, its <|patch|> tokens, <|image_end|> between text ids; random pixels."""
    v = arch["vision_config"]
    per_tile = int((v["image_size"] // v["patch_size"]) ** 2 * v["pixel_shuffle_ratio"] ** 2)
    gen = torch.Generator().manual_seed(5)
    text = torch.randint(0, 8000, (12,), generator=gen)
    ids = torch.cat([text[:6], torch.tensor([arch["boi_token_index"]]),
                     torch.full((per_tile,), arch["image_token_index"]), torch.tensor([arch["eoi_token_index"]]),
                     text[6:]]).unsqueeze(0).long()
    pixels = torch.randn(1, 3, v["image_size"], v["image_size"], generator=gen)
    return ids, pixels


def hf_logits(model, ids, pixels):
    with torch.no_grad():
        return model(input_ids=ids, pixel_values=pixels).logits.float()


def main():
    from peft import PeftModel
    from transformers import Llama4ForConditionalGeneration

    binary, src = os.environ["L4_BINARY"], os.environ["L4_SOURCE_DIR"]
    torch.set_num_threads(2)
    ok = True
    with tempfile.TemporaryDirectory() as work:
        base = os.path.join(work, "base")
        arch = make_base(src, base)
        with open(os.path.join(src, "data", "domain", "train.jsonl")) as f:
            lines = [line for line in f if '"image"' in line][:16]
        with open(os.path.join(work, "train.jsonl"), "w") as f:
            f.writelines(lines)
        os.symlink(os.path.join(src, "data", "domain", "images"), os.path.join(work, "images"))
        data = os.path.join(work, "prepared")
        run([binary, "prepare", "--input", os.path.join(work, "train.jsonl"), "--output", data, "--tokenizer",
             os.path.join(src, "data", "tokenizer"), "--format", "chat"])
        run_dir = os.path.join(work, "run")
        recipe = os.path.join(work, "recipe.yaml")
        with open(recipe, "w") as f:
            f.write(RECIPE.format(base=base, tokenizer=os.path.join(src, "data", "tokenizer"), data=data,
                                  run=run_dir))
        run([binary, "train", "--config", recipe])
        ckpt = os.path.join(run_dir, "ckpt")
        adapter, merged, merged2 = (os.path.join(work, n) for n in ("adapter", "merged", "merged2"))
        run([binary, "export", "--checkpoint", ckpt, "--output", adapter, "--peft"])
        run([binary, "export", "--checkpoint", ckpt, "--output", merged])
        run([binary, "merge-lora", "--model", base, "--adapter", adapter, "--output", merged2])

        config = json.load(open(os.path.join(adapter, "adapter_config.json")))
        tensors = load_file(os.path.join(adapter, "adapter_model.safetensors"))
        projector = "multi_modal_projector.linear_1.weight"
        print(f"adapter: modules_to_save={config['modules_to_save']}, {len(tensors)} tensors, "
              f"target_modules[:2]={config['target_modules'][:2]}")
        ok &= config["modules_to_save"] == ["multi_modal_projector"]
        ok &= ("base_model.model." + projector) in tensors
        ok &= all(t.startswith("language_model.") for t in config["target_modules"] + config["target_parameters"])
        base_projector = load_file(os.path.join(base, "model.safetensors"))[projector]
        trained = tensors["base_model.model." + projector]
        moved = (trained - base_projector).abs().max().item()
        print(f"projector moved by max-abs {moved:.3g} from the base's")
        ok &= moved > 1e-4
        for name, directory in (("export", merged), ("merge-lora", merged2)):
            weights = load_file(os.path.join(directory, "model.safetensors"))
            same = torch.equal(weights[projector], trained)
            print(f"{name}: {len(weights)} tensors, trained projector {'kept' if same else 'LOST'}")
            ok &= same

        ids, pixels = image_prompt(arch)
        save_file({"input_ids": ids, "pixel_values": pixels}, os.path.join(work, "in.safetensors"))
        run([binary, "forward", "--config", recipe, "--input", os.path.join(work, "in.safetensors"), "--output",
             os.path.join(work, "ours.safetensors")])
        ours = load_file(os.path.join(work, "ours.safetensors"))["logits"]

        base_model = Llama4ForConditionalGeneration.from_pretrained(base, attn_implementation="eager").eval()
        before = hf_logits(base_model, ids, pixels)
        peft_model = PeftModel.from_pretrained(base_model, adapter).eval()
        results = {"peft (base + adapter)": hf_logits(peft_model, ids, pixels)}
        for name, directory in (("transformers (export)", merged), ("transformers (merge-lora)", merged2)):
            loaded = Llama4ForConditionalGeneration.from_pretrained(directory, attn_implementation="eager").eval()
            results[name] = hf_logits(loaded, ids, pixels)
        changed = (ours - before).abs().max().item()
        print(f"ours vs the untrained base: max-abs {changed:.3g}")
        ok &= changed > 1e-3
        for name, logits in results.items():
            diff = (logits - ours).abs().max().item()
            print(f"{name} vs ours: logits max-abs {diff:.3g}")
            ok &= diff <= TOL
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
