#!/usr/bin/env python3
"""e2e: `llama4 forward` on HF model directories this script makes (text-only Llama4ForCausalLM and
multimodal Llama4ForConditionalGeneration layouts), compared with transformers' logits."""
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file
from transformers import Llama4Config, Llama4ForCausalLM, Llama4ForConditionalGeneration, Llama4TextConfig

TEXT = dict(vocab_size=80, hidden_size=32, intermediate_size=24, intermediate_size_mlp=40, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_local_experts=3, num_experts_per_tok=1,
            interleave_moe_layer_step=2, attention_chunk_size=4, floor_scale=4, attn_scale=0.2,
            initializer_range=0.2, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=None,
            rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 32})
VISION = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, image_size=28,
              patch_size=14, vision_output_dim=16, projector_input_dim=16, projector_output_dim=16)


def randomize(model):
    torch.manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(1.0 + 0.2 * torch.randn_like(p) if p.dim() == 1 else 0.2 * torch.randn_like(p))
    return model


def check(name, model, text_model, binary, work):
    model_dir = os.path.join(work, name)
    model.save_pretrained(model_dir)
    input_ids = torch.randint(0, TEXT["vocab_size"], (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = text_model(input_ids=input_ids).logits.float()
    in_path, out_path = os.path.join(work, name + "_in.safetensors"), os.path.join(work, name + "_out.safetensors")
    save_file({"input_ids": input_ids}, in_path)
    run = subprocess.run([binary, "forward", "--model", model_dir, "--input", in_path, "--output", out_path],
                         capture_output=True, text=True)
    if run.returncode != 0:
        print(f"[{name}] llama4 forward failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
        return False
    got = load_file(out_path)["logits"]
    if got.dtype != torch.float32 or got.shape != want.shape:
        print(f"[{name}] logits {got.dtype} {tuple(got.shape)}, expected float32 {tuple(want.shape)}")
        return False
    err = (got - want).abs().max().item()
    print(f"[{name}] logits max-abs {err:.3g} (max |logit| {want.abs().max().item():.3g})")
    return err <= 1e-4


def main():
    binary = os.environ["L4_BINARY"]
    torch.set_num_threads(1)
    ok = True
    with tempfile.TemporaryDirectory() as work:
        text_config = Llama4TextConfig(**TEXT)
        text_config._attn_implementation = "eager"
        causal = randomize(Llama4ForCausalLM(text_config).eval())
        ok &= check("causal_lm", causal, causal, binary, work)

        config = Llama4Config(text_config=dict(TEXT), vision_config=VISION, tie_word_embeddings=False)
        config._attn_implementation = "eager"
        config.text_config._attn_implementation = "eager"
        multimodal = randomize(Llama4ForConditionalGeneration(config).eval())
        ok &= check("conditional_generation", multimodal, multimodal, binary, work)

        # A bad input is a user error (exit 1) naming the file.
        bad = os.path.join(work, "bad.safetensors")
        save_file({"input_ids": torch.zeros(3, dtype=torch.int64)}, bad)
        run = subprocess.run([binary, "forward", "--model", os.path.join(work, "causal_lm"), "--input", bad,
                              "--output", os.path.join(work, "x.safetensors")], capture_output=True, text=True)
        if run.returncode != 1 or "bad.safetensors" not in run.stderr + run.stdout:
            print(f"[bad input] expected exit 1 naming the file, got {run.returncode}: {run.stderr}")
            ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
