#!/usr/bin/env python3
"""`llama4 merge-lora` on a sharded bf16 base against peft==0.21.0's merge_and_unload(). A tiny random HF
Llama4ForCausalLM (MoE and dense layers) is saved in bf16 as several shards with an index; peft attaches
LoRA to the attention, the shared expert, the dense MLP and both routed-expert tensors (target_parameters),
with random non-zero factors, and saves the adapter. We merge with a small --max-shard-size. Checks:
  1. the output is HF-sharded: model-0000i-of-0000n.safetensors (n > 1) and an index whose weight_map names
     every tensor once, in the shard that holds it, and whose metadata.total_size is the sum of their bytes;
  2. every output tensor has the base's dtype (bf16) and shape; tensors no adapter touches are bytewise the
     base's; merged tensors equal peft's merged weights within bf16 rounding;
  3. transformers loads the directory and its logits equal peft's merged model within bf16 tolerance, while
     the adapter moves them by much more than that;
  4. refusals: an output directory inside the base directory, and a --max-shard-size that is not a size;
     a shard size that fits everything gives the single model.safetensors."""
import argparse
import json
import os
import shutil
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lora_peft_parity  # noqa: E402  (the same tiny base as the LoRA parity test)
from safetensors import safe_open

# bf16 logits of a 3-layer model with weights of std 0.2: one bf16 ulp at |logit| ~ 1 is 2**-7 ~ 8e-3;
# rounding of the merged weights (ours in fp32 then cast, peft's in bf16) moves logits by a few ulps.
LOGIT_TOL = 6e-2
TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "shared_expert.gate_proj", "shared_expert.up_proj",
                  "shared_expert.down_proj", "feed_forward.gate_proj", "feed_forward.down_proj"]
TARGET_PARAMETERS = ["feed_forward.experts.gate_up_proj", "feed_forward.experts.down_proj"]


def make_base(path):
    """The LoRA parity test's tiny base, in bf16 and split into many small shards."""
    lora_peft_parity.make_base(path, dtype=torch.bfloat16, max_shard_size="4KB")


def make_adapter(base, path):
    from peft import LoraConfig, get_peft_model
    from transformers import Llama4ForCausalLM

    model = Llama4ForCausalLM.from_pretrained(base, dtype=torch.bfloat16).eval()
    config = LoraConfig(r=2, lora_alpha=6, target_modules=TARGET_MODULES, target_parameters=TARGET_PARAMETERS)
    peft_model = get_peft_model(model, config)
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(0.0, 0.3)
    peft_model.save_pretrained(path)


def read_dir(directory):
    """name -> (dtype, shape, raw bytes as uint8 tensor, file) for every tensor of an HF directory."""
    out = {}
    for f in sorted(os.listdir(directory)):
        if not f.endswith(".safetensors"):
            continue
        with safe_open(os.path.join(directory, f), "pt") as st:
            for k in st.keys():
                t = st.get_tensor(k)
                out[k] = (t.dtype, tuple(t.shape), t.contiguous().view(torch.uint8).flatten().clone(), f, t)
    return out


def run(binary, *args, ok=True):
    r = subprocess.run([binary, *args], capture_output=True, text=True)
    if ok and r.returncode != 0:
        raise AssertionError(f"{args[0]} failed: {r.stderr}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--binary", default=os.environ.get("L4_BINARY", "build/bin/llama4"))
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    base, adapter, merged = (os.path.join(args.out, n) for n in ("base", "adapter", "merged"))
    make_base(base)
    make_adapter(base, adapter)
    run(args.binary, "merge-lora", "--model", base, "--adapter", adapter, "--output", merged,
        "--max-shard-size", "6KB")

    # 1. HF sharding.
    index = json.load(open(os.path.join(merged, "model.safetensors.index.json")))
    ours = read_dir(merged)
    shards = sorted(f for f in os.listdir(merged) if f.endswith(".safetensors"))
    assert len(shards) > 1 and all(f == f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
                                   for i, f in enumerate(shards)), f"shards {shards}"
    assert not os.path.exists(os.path.join(merged, "model.safetensors"))
    assert set(index["weight_map"]) == set(ours), "weight_map names every tensor"
    for name, (_, _, raw, f, _) in ours.items():
        assert index["weight_map"][name] == f, f"{name} is in {f}, index says {index['weight_map'][name]}"
    assert index["metadata"]["total_size"] == sum(v[2].numel() for v in ours.values()), "total_size"
    for f in ("config.json", "generation_config.json"):
        assert os.path.exists(os.path.join(merged, f)), f"{f} copied"

    # 2. dtypes, untouched bytes, merged weights vs peft's.
    from peft import PeftModel
    from transformers import Llama4ForCausalLM

    based = read_dir(base)
    assert set(based) == set(ours), f"tensor names differ: {sorted(set(based) ^ set(ours))}"
    peft_model = PeftModel.from_pretrained(Llama4ForCausalLM.from_pretrained(base, dtype=torch.bfloat16), adapter)
    reference = peft_model.merge_and_unload().eval()
    ref_state = reference.state_dict()
    changed = 0
    for name, (dtype, shape, raw, _, t) in ours.items():
        assert dtype == based[name][0] == torch.bfloat16 and shape == based[name][1], f"{name}: {dtype} {shape}"
        if torch.equal(raw, based[name][2]):
            assert torch.equal(ref_state[name], based[name][4]), f"{name}: peft changed it, we did not"
            continue
        changed += 1
        ref = ref_state[name].float()
        err = (t.float() - ref).abs()
        # peft rounds the delta to bf16 and then the sum; we round the fp32 sum once: they may differ by one
        # bf16 ulp of the result plus one of the delta.
        bound = (ref.abs() + (ref - based[name][4].float()).abs()) * 2 ** -7 + 1e-6
        assert bool((err <= bound).all()), f"{name}: merged weight off by {err.max().item()} (beyond bf16 rounding)"
    # Every targeted tensor moved: q/k/v/o of 3 layers; the shared expert of the MoE layer (1); gate/down of
    # the dense MLPs (layers 0 and 2); both expert tensors.
    expected_changed = 3 * 4 + 3 + 2 * 2 + 2
    print(f"{changed} merged tensors, {len(ours) - changed} untouched (bytewise equal)")
    assert changed == expected_changed, f"{changed} tensors changed, expected {expected_changed}"

    # 3. transformers loads the directory; logits vs peft's merged model.
    torch.manual_seed(1)
    ids = torch.randint(0, 101, (2, 11))
    with torch.no_grad():
        ref_logits = reference(input_ids=ids).logits.float()
        ours_model = Llama4ForCausalLM.from_pretrained(merged).eval()
        assert ours_model.dtype == torch.bfloat16, ours_model.dtype
        our_logits = ours_model(input_ids=ids).logits.float()
        plain = Llama4ForCausalLM.from_pretrained(base).eval()(input_ids=ids).logits.float()
    d = (our_logits - ref_logits).abs().max().item()
    effect = (plain - ref_logits).abs().max().item()
    print(f"logits max-abs vs peft merge_and_unload: {d:.3e} (tolerance {LOGIT_TOL}, adapter effect {effect:.3e})")
    assert effect > 10 * LOGIT_TOL, "the adapter should change the logits well beyond the tolerance"
    assert d <= LOGIT_TOL, f"logits differ by {d}"

    # 4. Refusals and the single-file layout.
    r = run(args.binary, "merge-lora", "--model", base, "--adapter", adapter, "--output",
            os.path.join(base, "merged"), ok=False)
    assert r.returncode != 0 and base in r.stderr and "inside" in r.stderr, r.stderr
    r = run(args.binary, "merge-lora", "--model", base, "--adapter", adapter, "--output", merged,
            "--max-shard-size", "5 apples", ok=False)
    assert r.returncode != 0 and "--max-shard-size" in r.stderr, r.stderr
    single = os.path.join(args.out, "single")
    run(args.binary, "merge-lora", "--model", base, "--adapter", adapter, "--output", single)
    assert sorted(f for f in os.listdir(single) if "safetensors" in f) == ["model.safetensors"]
    single_tensors = read_dir(single)
    assert all(torch.equal(single_tensors[k][2], ours[k][2]) for k in ours), "same bytes as the sharded merge"
    print("merge-lora sharded bf16 parity OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
