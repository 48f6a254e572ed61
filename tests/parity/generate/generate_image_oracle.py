"""Reference greedy generations with images, made by transformers 5.17.

A tiny random Llama4ForConditionalGeneration (small vision tower; text model with MoE and dense layers,
chunked RoPE attention, a NoPE layer with temperature tuning) over the bundled tokenizer is saved with
save_pretrained. For each case, a user prompt with its images goes through HF's chat template and
Llama4Processor, then `generate(do_sample=False)`.

Writes to --out:
  model/              the HF model directory (config.json, model.safetensors, tokenizer files)
  text_model/         its language model alone, a text-only Llama4ForCausalLM directory (no vision tower)
  images/*.png        the generated test images, and corrupt.png (a truncated PNG)
  cases.json          per case: prompt, image files, the processor's input_ids, HF's new token ids, and the
                      ids HF generates for the same prompt with another image (they must differ)
  logits.safetensors  per case "<name>": HF's logits for each generated token [N, V] (output_logits)
"""

import argparse
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "vision"))
import vision_oracle  # noqa: E402  (installs the torchvision shim before transformers is imported)

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (Llama4Config, Llama4ForConditionalGeneration, Llama4ImageProcessor,  # noqa: E402
                          Llama4Processor, PreTrainedTokenizerFast)

TOKENIZER_DIR = os.path.join(SOURCE, "data", "tokenizer")
MAX_NEW = 20
CASES = [  # name, user text, images (name, height, width, seed)
    ("one_tile", "What colour is the circle?", [("a", 200, 160, 21)]),
    ("two_images", "Which picture is brighter?", [("b", 300, 640, 22), ("a", 200, 160, 21)]),
]


def make_model(tok):
    ids = {t: tok.convert_tokens_to_ids(t) for t in
           ["<|patch|>", "<|image_start|>", "<|image_end|>", "<|finetune_right_pad|>", "<|begin_of_text|>"]}
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  image_size=336, patch_size=14, vision_output_dim=48, projector_input_dim=48,
                  projector_output_dim=48, pixel_shuffle_ratio=0.5, norm_eps=1e-5,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    text = dict(vocab_size=len(tok), hidden_size=48, intermediate_size=32, intermediate_size_mlp=64,
                num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                num_local_experts=2, num_experts_per_tok=1, interleave_moe_layer_step=2,
                attention_chunk_size=32, no_rope_layers=[1, 1, 0], attn_temperature_tuning=True,
                floor_scale=8,
                max_position_embeddings=4096, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                pad_token_id=ids["<|finetune_right_pad|>"], bos_token_id=ids["<|begin_of_text|>"],
                eos_token_id=tok.convert_tokens_to_ids(["<|end_of_text|>", "<|eom|>", "<|eot|>"]),
                tie_word_embeddings=False)
    config = Llama4Config(vision_config=vision, text_config=text, image_token_index=ids["<|patch|>"],
                          boi_token_index=ids["<|image_start|>"], eoi_token_index=ids["<|image_end|>"],
                          tie_word_embeddings=False)
    config._attn_implementation = "eager"
    config.text_config._attn_implementation = "eager"
    config.vision_config._attn_implementation = "eager"
    model = Llama4ForConditionalGeneration(config).eval()
    vision_oracle.randomise(model, torch.Generator().manual_seed(1234))
    return model


def hf_generate(model, processor, text, pil):
    content = [{"type": "image"} for _ in pil] + [{"type": "text", "text": text}]  # images first, as we do
    messages = [{"role": "user", "content": content}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=prompt, images=pil, add_special_tokens=False, return_tensors="pt")
    inputs["pixel_values"] = inputs["pixel_values"].float()  # HF normalises in bf16; the tower runs in fp32
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW, output_logits=True,
                             return_dict_in_generate=True, eos_token_id=model.config.text_config.eos_token_id,
                             pad_token_id=model.config.text_config.pad_token_id)
    prompt_len = inputs["input_ids"].shape[1]
    new = out.sequences[0, prompt_len:].tolist()
    logits = torch.cat([step[:1] for step in out.logits], 0).float()
    return prompt, inputs["input_ids"][0].tolist(), new, logits


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    out = parser.parse_args().out
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)

    tok = PreTrainedTokenizerFast.from_pretrained(TOKENIZER_DIR)
    processor = Llama4Processor(image_processor=Llama4ImageProcessor(), tokenizer=tok,
                                chat_template=tok.chat_template)
    model = make_model(tok)
    model_dir = os.path.join(out, "model")
    model.save_pretrained(model_dir)
    model.language_model.save_pretrained(os.path.join(out, "text_model"))
    for d in (model_dir, os.path.join(out, "text_model")):
        for f in os.listdir(TOKENIZER_DIR):
            shutil.copy(os.path.join(TOKENIZER_DIR, f), d)

    written = {}
    for _, _, specs in CASES:
        for name, h, w, seed in specs:
            path = os.path.join(out, "images", name + ".png")
            Image.fromarray(vision_oracle.smooth(h, w, seed)).save(path)
            written[name] = path
    other = os.path.join(out, "images", "other.png")
    Image.fromarray(vision_oracle.noise(200, 160, 99)).save(other)
    with open(written["a"], "rb") as f:
        data = f.read()
    with open(os.path.join(out, "images", "corrupt.png"), "wb") as f:
        f.write(data[: len(data) // 2])

    cases, logits = [], {}
    for name, text, specs in CASES:
        paths = [written[n] for n, _, _, _ in specs]
        pil = [Image.open(p).convert("RGB") for p in paths]
        prompt, input_ids, new, step_logits = hf_generate(model, processor, text, pil)
        _, _, new_other, _ = hf_generate(model, processor, text, [Image.open(other).convert("RGB")] + pil[1:])
        assert new != new_other, f"{name}: the image does not change the generation"
        assert len(new) >= 8, f"{name}: HF stopped after {len(new)} tokens"
        cases.append({"name": name, "text": text, "prompt": prompt,
                      "images": [os.path.relpath(p, out) for p in paths], "other_image": "images/other.png",
                      "input_ids": input_ids, "generated": new, "generated_other_image": new_other,
                      "max_new_tokens": MAX_NEW, "stop_ids": model.config.text_config.eos_token_id})
        logits[name] = step_logits.contiguous()
        print(f"{name}: prompt {len(input_ids)} tokens, HF generated {len(new)}: {new}")
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    save_file(logits, os.path.join(out, "logits.safetensors"))


if __name__ == "__main__":
    main()
