#!/usr/bin/env python3
"""Reference data for the Llama 4 text model parity tests, made with transformers' Llama4ForCausalLM.

For each tiny configuration writes OUT/<name>/model/ (config.json + model.safetensors via save_pretrained)
and OUT/<name>/data.safetensors holding input_ids, labels, logits, loss, rope_inv_freq and grad.<param> for
several parameters (fp32, eager attention). The "packed" case also holds a row of two documents
(packed_input_ids, packed_doc_ids) and packed_logits from HF run on each document alone.
"""
import argparse
import os

import torch
from safetensors.torch import save_file
from transformers import Llama4ForCausalLM, Llama4TextConfig

SEQ_LEN = 11
BASE = dict(
    vocab_size=96,
    hidden_size=32,
    intermediate_size=24,
    intermediate_size_mlp=40,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=1,  # GQA ratio 4
    head_dim=8,
    num_local_experts=4,
    num_experts_per_tok=1,
    rms_norm_eps=1e-5,
    attention_chunk_size=4,  # smaller than SEQ_LEN, which is not a multiple of it
    use_qk_norm=True,
    attn_temperature_tuning=True,
    floor_scale=3,  # small enough that the NoPE scaling changes within the sequence
    attn_scale=0.3,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    initializer_range=0.15,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=None,
)

CASES = {
    # MoE on every layer, layers 0-2 RoPE (chunked) and 3 NoPE with temperature tuning, qk-norm, top-1.
    "moe_every_layer": dict(),
    # Dense/MoE interleave 2, mixed NoPE layers, llama3 rope scaling, no qk-norm, top-2, no tuning.
    "interleave_llama3": dict(
        interleave_moe_layer_step=2,
        no_rope_layers=[1, 0, 1, 0],
        use_qk_norm=False,
        attn_temperature_tuning=False,
        num_experts_per_tok=2,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 16.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
    ),
    # Explicit moe_layers, NoPE first, chunk of 3, top-2 with qk-norm and tuning; GQA ratio 2.
    "mixed_top2": dict(
        num_hidden_layers=3,
        moe_layers=[0, 2],
        no_rope_layers=[0, 1, 1],
        attention_chunk_size=3,
        num_experts_per_tok=2,
        num_key_value_heads=2,
        floor_scale=2,
    ),
    # Chunk larger than the sequence (plain causal everywhere).
    "long_chunk": dict(attention_chunk_size=64, num_hidden_layers=2, no_rope_layers=[1, 0]),
}

GRAD_PARAMS = [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.1.self_attn.k_proj.weight",
    "model.layers.0.post_attention_layernorm.weight",
    "model.norm.weight",
    "lm_head.weight",
]


def make_model(overrides, seed):
    kwargs = dict(BASE)
    kwargs.update(overrides)
    config = Llama4TextConfig(**kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = Llama4ForCausalLM(config).float().eval()
    with torch.no_grad():  # norms away from 1 so that their weights matter
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    return model


def grad_names(model):
    names = [n for n in GRAD_PARAMS if n in dict(model.named_parameters())]
    for i in model.config.moe_layers:
        names += [f"model.layers.{i}.feed_forward.experts.gate_up_proj",
                  f"model.layers.{i}.feed_forward.experts.down_proj",
                  f"model.layers.{i}.feed_forward.router.weight",
                  f"model.layers.{i}.feed_forward.shared_expert.gate_proj.weight"]
        break
    nope = [i for i, r in enumerate(model.config.no_rope_layers) if not r]
    if nope:
        names.append(f"model.layers.{nope[0]}.self_attn.q_proj.weight")
    dense = [i for i in range(model.config.num_hidden_layers) if i not in model.config.moe_layers]
    if dense:
        names.append(f"model.layers.{dense[0]}.feed_forward.up_proj.weight")
    return sorted(set(names))


def run_case(name, overrides, out_dir, seed):
    model = make_model(overrides, seed)
    case_dir = os.path.join(out_dir, name)
    model.save_pretrained(os.path.join(case_dir, "model"))
    gen = torch.Generator().manual_seed(seed + 1)
    input_ids = torch.randint(0, model.config.vocab_size, (2, SEQ_LEN), generator=gen)
    labels = input_ids.clone()
    labels[0, 3] = -100
    labels[1, :2] = -100
    out = model(input_ids=input_ids, labels=labels)
    out.loss.backward()
    params = dict(model.named_parameters())
    data = {
        "input_ids": input_ids,
        "labels": labels,
        "logits": out.logits.detach().float().contiguous(),
        "loss": out.loss.detach().reshape(1),
        "rope_inv_freq": model.model.rotary_emb.inv_freq.float().contiguous(),
    }
    for n in grad_names(model):
        data["grad." + n] = params[n].grad.detach().contiguous()
    if name == "moe_every_layer":
        # Two documents in one row vs each document alone (positions restart, no cross attention).
        lengths = (6, 7)
        docs = [torch.randint(0, model.config.vocab_size, (1, n), generator=gen) for n in lengths]
        with torch.no_grad():
            alone = [model(input_ids=d).logits for d in docs]
        data["packed_input_ids"] = torch.cat(docs, dim=1)
        data["packed_doc_ids"] = torch.tensor([[0] * lengths[0] + [1] * lengths[1]])
        data["packed_logits"] = torch.cat(alone, dim=1).float().contiguous()
    save_file(data, os.path.join(case_dir, "data.safetensors"))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for i, (name, overrides) in enumerate(CASES.items()):
        run_case(name, overrides, args.out, args.seed + 10 * i)
    print(f"wrote {len(CASES)} cases to {args.out}")


if __name__ == "__main__":
    main()
