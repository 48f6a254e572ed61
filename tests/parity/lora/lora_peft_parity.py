#!/usr/bin/env python3
"""PEFT parity of our LoRA: a tiny random HF Llama4ForCausalLM (MoE and dense layers, a NoPE layer),
our tool attaches LoRA on q/k/v/o, the shared expert and the routed experts (target_parameters) with
random non-zero adapter values and writes logits, a PEFT adapter and a merged model. Checks:
  1. peft==0.21.0 loads the adapter (every tensor, none left over) and its logits equal ours (<= 1e-4);
  2. transformers loads our merged model and its logits equal ours-with-adapter (<= 1e-4);
  3. `llama4 merge-lora` of base + adapter gives the same (<= 1e-4).
Run for plain and rsLoRA scaling, and with one expert tensor targeted alone."""
import argparse
import json
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file

TOL = 1e-4


def make_base(path, dtype=None, max_shard_size=None):
    """A tiny random Llama4ForCausalLM saved to `path` (in `dtype` and shards of `max_shard_size` when given)."""
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    torch.manual_seed(0)
    cfg = Llama4TextConfig(
        vocab_size=101, hidden_size=16, intermediate_size=12, intermediate_size_mlp=20, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=4, num_local_experts=3, num_experts_per_tok=1,
        interleave_moe_layer_step=2, attention_chunk_size=4, no_rope_layers=[1, 1, 0], floor_scale=4,
        attn_scale=0.2, initializer_range=0.2, max_position_embeddings=64, tie_word_embeddings=False)
    model = Llama4ForCausalLM(cfg).eval()
    with torch.no_grad():  # HF leaves the expert tensors at zeros/empty until _init_weights; make them real
        for name, p in model.named_parameters():
            if "experts" in name:
                p.normal_(0.0, 0.2)
    if dtype is not None:
        model.to(dtype)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(path, safe_serialization=True, **kwargs)


def hf_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def check_case(args, base, name, rank, alpha, rslora, targets):
    from peft import PeftModel, get_peft_model_state_dict
    from transformers import Llama4ForCausalLM

    out = os.path.join(args.out, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(1)
    ids = torch.randint(0, 101, (2, 11))
    save_file({"input_ids": ids}, os.path.join(out, "input.safetensors"))
    subprocess.run([args.tool, base, out, str(rank), str(alpha), "1" if rslora else "0", *targets], check=True)
    ours = load_file(os.path.join(out, "logits.safetensors"))["logits"]
    adapter = os.path.join(out, "adapter")
    config = json.load(open(os.path.join(adapter, "adapter_config.json")))
    print(f"[{name}] target_modules={config['target_modules']} target_parameters={config['target_parameters']}")

    base_model = Llama4ForCausalLM.from_pretrained(base).eval()
    plain = hf_logits(base_model, ids)
    peft_model = PeftModel.from_pretrained(base_model, adapter).eval()
    # Every stored tensor landed in the PEFT model, with the same values, and PEFT has no other LoRA tensor.
    stored = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    live = {k: v for k, v in get_peft_model_state_dict(peft_model).items()}
    live = {("base_model.model." + k if not k.startswith("base_model.model.") else k): v for k, v in live.items()}
    assert set(stored) == set(live), f"adapter keys differ: {sorted(set(stored) ^ set(live))}"
    for k in stored:
        assert torch.equal(stored[k], live[k].cpu()), f"{k} differs after loading"
    peft_out = hf_logits(peft_model, ids)
    d_peft = (peft_out - ours).abs().max().item()
    d_effect = (plain - ours).abs().max().item()

    merged = Llama4ForCausalLM.from_pretrained(os.path.join(out, "merged")).eval()
    d_merged = (hf_logits(merged, ids) - ours).abs().max().item()

    cli_out = os.path.join(out, "merged_cli")
    subprocess.run([args.binary, "merge-lora", "--model", base, "--adapter", adapter, "--output", cli_out],
                   check=True)
    cli_model = Llama4ForCausalLM.from_pretrained(cli_out).eval()
    d_cli = (hf_logits(cli_model, ids) - ours).abs().max().item()
    print(f"[{name}] max-abs: peft {d_peft:.3e}  merged {d_merged:.3e}  merge-lora CLI {d_cli:.3e}  "
          f"(adapter effect {d_effect:.3e})")
    assert d_effect > 1e-2, "the adapter should change the logits"
    for label, d in (("peft", d_peft), ("merged", d_merged), ("merge-lora", d_cli)):
        assert d <= TOL, f"{name}: {label} logits differ by {d}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--binary", default=os.environ.get("L4_BINARY", "build/bin/llama4"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, "base")
    shutil.rmtree(base, ignore_errors=True)
    make_base(base)
    everything = ["q_proj", "k_proj", "v_proj", "o_proj", "shared_expert", "experts"]
    check_case(args, base, "all", 2, 6, False, everything)
    check_case(args, base, "rslora", 4, 3, True, everything + ["feed_forward.gate_proj", "feed_forward.down_proj"])
    check_case(args, base, "down_only", 2, 4, False, ["v_proj", "experts.down_proj"])
    print("PEFT parity OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
