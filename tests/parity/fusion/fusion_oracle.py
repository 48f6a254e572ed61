"""Reference data for the early-fusion parity test, made by transformers 5.17.

A tiny random Llama4ForConditionalGeneration (small vision and text config, MoE and dense layers, a NoPE
layer, chunked attention) is saved with save_pretrained; a prompt with TWO images (tiles from
Llama4ImageProcessor, token layout from Llama4Processor) goes through it in fp32.

Writes to --out:
  model/                  the multimodal HF model directory (config.json + model.safetensors)
  text_model/             its language model alone, saved as a text-only Llama4ForCausalLM directory
  io.safetensors          input_ids, pixel_values (float32), logits, grad_weights (the fixed random weights
                          w of the loss sum(logits * w)), and grad.<name> for every vision_model.* and
                          multi_modal_projector.* parameter
  info.json               image_token_index, tile counts, the state-dict names of the saved model
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vision"))
import vision_oracle  # noqa: E402  (installs the torchvision shim before transformers is imported)

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (Llama4Config, Llama4ForCausalLM, Llama4ForConditionalGeneration,  # noqa: E402
                          Llama4ImageProcessor, Llama4Processor)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4321)

    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  image_size=336, patch_size=14, vision_output_dim=48, projector_input_dim=48,
                  projector_output_dim=48, pixel_shuffle_ratio=0.5, norm_eps=1e-5,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    small_ids = {name: 100 + i for i, name in enumerate(vision_oracle.SPECIAL_IDS)}
    text = dict(vocab_size=128, hidden_size=40, intermediate_size=24, intermediate_size_mlp=48,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=10,
                num_local_experts=2, num_experts_per_tok=1, interleave_moe_layer_step=2,
                attention_chunk_size=16, no_rope_layers=[1, 0], attn_temperature_tuning=True, floor_scale=4,
                rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
                pad_token_id=small_ids["<|finetune_right_pad|>"], bos_token_id=small_ids["<|begin_of_text|>"],
                eos_token_id=[small_ids["<|eot|>"]], tie_word_embeddings=False)
    config = Llama4Config(vision_config=vision, text_config=text, image_token_index=small_ids["<|patch|>"],
                          boi_token_index=small_ids["<|image_start|>"],
                          eoi_token_index=small_ids["<|image_end|>"], tie_word_embeddings=False)
    config._attn_implementation = "eager"
    config.text_config._attn_implementation = "eager"
    config.vision_config._attn_implementation = "eager"
    model = Llama4ForConditionalGeneration(config).eval()
    vision_oracle.randomise(model, gen)

    # Two images through the real preprocessing: a 2x3 grid (7 tiles with the global one) and one tile.
    pil = [Image.fromarray(vision_oracle.smooth(500, 700, 11)), Image.fromarray(vision_oracle.smooth(200, 300, 12))]
    image_processor = Llama4ImageProcessor()
    processor = Llama4Processor(image_processor=image_processor,
                                tokenizer=vision_oracle.tiny_tokenizer(small_ids))
    prompt = ("<|begin_of_text|><|header_start|>user<|header_end|>Describe<|image|>and<|image|>"
              "compare<|eot|><|header_start|>assistant<|header_end|>them")
    inputs = processor(text=prompt, images=pil, return_tensors="pt")
    pixel_values = inputs["pixel_values"].float()  # HF normalises in bf16; the model sees these values
    input_ids = inputs["input_ids"]

    logits = model(input_ids=input_ids, pixel_values=pixel_values).logits
    weights = torch.randn(logits.shape, generator=gen)
    (logits * weights).sum().backward()
    grads = {f"grad.{n}": p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None and (n.startswith("vision_model.") or n.startswith("multi_modal_projector."))}
    assert len(grads) == sum(1 for n, _ in model.named_parameters()
                             if n.startswith("vision_model.") or n.startswith("multi_modal_projector."))

    model.save_pretrained(os.path.join(out, "model"))
    with safe_open(os.path.join(out, "model", "model.safetensors"), "pt") as f:
        saved_names = sorted(f.keys())
    assert isinstance(model.language_model, Llama4ForCausalLM)
    model.language_model.save_pretrained(os.path.join(out, "text_model"))

    save_file({"input_ids": input_ids.contiguous(), "pixel_values": pixel_values.contiguous(),
               "logits": logits.detach().contiguous(), "grad_weights": weights.contiguous(),
               **{k: v.contiguous() for k, v in grads.items()}}, os.path.join(out, "io.safetensors"))
    with open(os.path.join(out, "info.json"), "w") as f:
        json.dump({"image_token_index": small_ids["<|patch|>"], "tiles": int(pixel_values.shape[0]),
                   "grids": inputs.get("aspect_ratios", torch.zeros(0)).tolist() if "aspect_ratios" in inputs
                   else [], "patch_tokens": int((input_ids == small_ids["<|patch|>"]).sum()),
                   "saved_names": saved_names}, f, indent=1)
    print(f"fusion oracle: wrote {out}: {pixel_values.shape[0]} tiles, {len(saved_names)} tensors")


if __name__ == "__main__":
    main()
