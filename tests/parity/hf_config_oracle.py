"""Writes HF config.json files with transformers itself, plus the values transformers resolves from them,
so the C++ side can check that our reader sees the same architecture."""
import argparse
import json
import os

from transformers import Llama4Config, Llama4TextConfig

TEXT_FIELDS = [
    "vocab_size", "hidden_size", "intermediate_size", "intermediate_size_mlp", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "num_local_experts",
    "num_experts_per_tok", "moe_layers", "interleave_moe_layer_step", "use_qk_norm", "no_rope_layers",
    "attention_chunk_size", "layer_types", "attn_temperature_tuning", "floor_scale", "attn_scale",
    "bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings", "max_position_embeddings",
]
VISION_FIELDS = [
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vision_output_dim",
    "image_size", "patch_size", "norm_eps", "pixel_shuffle_ratio", "projector_input_dim", "projector_output_dim",
]


def resolved(config, fields):
    out = {name: getattr(config, name) for name in fields}
    rope = dict(config.rope_parameters or {})
    out["rope_parameters"] = rope
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 16.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    text_kwargs = dict(vocab_size=1000, hidden_size=64, intermediate_size=96, intermediate_size_mlp=160,
                       num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=2, head_dim=16,
                       num_local_experts=4, num_experts_per_tok=2, interleave_moe_layer_step=2,
                       attention_chunk_size=32, floor_scale=16, use_qk_norm=False, rope_parameters=rope,
                       eos_token_id=[3, 7], pad_token_id=5, bos_token_id=1)
    expected = {}

    text = Llama4TextConfig(**text_kwargs)
    text.save_pretrained(os.path.join(args.out, "text_only"))
    expected["text_only"] = {"text": resolved(text, TEXT_FIELDS)}

    full = Llama4Config(
        text_config=dict(text_kwargs, no_rope_layers=[1, 0, 1, 1, 0, 1], moe_layers=[0, 5]),
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                           vision_output_dim=48, image_size=336, patch_size=14, projector_input_dim=48,
                           projector_output_dim=48),
        image_token_index=999)
    full.save_pretrained(os.path.join(args.out, "multimodal"))
    expected["multimodal"] = {"text": resolved(full.text_config, TEXT_FIELDS),
                              "vision": resolved(full.vision_config, VISION_FIELDS),
                              "image_token_index": full.image_token_index}
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()
