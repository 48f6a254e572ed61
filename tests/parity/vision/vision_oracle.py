"""Reference data for the vision parity tests, made by transformers 5.17 (Llama4ImageProcessor,
Llama4Processor, Llama4VisionModel, Llama4MultiModalProjector, Llama4ForConditionalGeneration) from images
and tiny random models generated here.

Writes to --out:
  images/*.png|jpg           test images (PIL), of varied sizes, aspect ratios and PNG colour types
  decode.json, decode.pt     per image: PIL's convert("RGB") pixels (what HF processors see)
  preprocess.json/.pt        per image: HF pixel_values (bfloat16) and tile grid
  sizes.json                 canvas and resize target chosen by HF for many (height, width) pairs and options
  tokens.json                special-token ids, a chat with images: ids before and after the processor's
                             expansion
  tower.json/.pt             tiny vision tower + projector: weights, inputs, features, gradients; tiny full
                             model: the fused input embeddings and logits for a prompt with two images
  full_model.pt              the tiny full model's weights (for a logits check once the text model exists)
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torchvision_shim  # noqa: E402

SHIM = torchvision_shim.install()  # before transformers is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.transforms.v2 import functional as tvF  # noqa: E402
from transformers import Llama4ImageProcessor, Llama4Processor, PreTrainedTokenizerFast  # noqa: E402
from transformers import Llama4Config, Llama4ForConditionalGeneration  # noqa: E402
from transformers.image_utils import load_image  # noqa: E402
from transformers.models.llama4.modeling_llama4 import (  # noqa: E402
    Llama4MultiModalProjector,
    Llama4VisionModel,
)


def save_tensors(path, tensors):
    torch.save({k: v.contiguous() for k, v in tensors.items()}, path)


def smooth(h, w, seed):
    """A smooth colourful image with a little noise (like a photo)."""
    rs = np.random.RandomState(seed)
    y = np.linspace(0, 1, h, dtype=np.float64)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float64)[None, :]
    f = rs.uniform(1, 6, size=3)
    img = np.stack([np.sin(f[0] * x * 6 + y * 3), np.cos(f[1] * y * 5 - x * 2),
                    np.sin(f[2] * (x + y) * 4)], -1)
    img = (img + 1) * 127.5 + rs.normal(0, 6, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def noise(h, w, seed):
    return np.random.RandomState(seed).randint(0, 256, size=(h, w, 3), dtype=np.uint8)


def make_images(out):
    """(name, PIL image, format) for the decode and preprocessing cases."""
    cases = [
        ("tiny_1x1", Image.fromarray(noise(1, 1, 1)), "png"),
        ("tiny_5x7", Image.fromarray(noise(5, 7, 2)), "png"),
        ("strip_1x900", Image.fromarray(noise(1, 900, 3)), "png"),
        ("strip_900x1", Image.fromarray(noise(900, 1, 4)), "png"),
        ("strip_3x2000", Image.fromarray(smooth(3, 2000, 5)), "png"),
        ("exact_336x336", Image.fromarray(noise(336, 336, 6)), "png"),
        ("exact_672x1008", Image.fromarray(smooth(672, 1008, 7)), "png"),
        ("exact_1344x336", Image.fromarray(noise(1344, 336, 8)), "png"),
        ("near_337x335", Image.fromarray(noise(337, 335, 9)), "png"),
        ("landscape_500x700", Image.fromarray(noise(500, 700, 10)), "png"),
        ("portrait_700x500", Image.fromarray(smooth(700, 500, 11)), "png"),
        ("small_200x300", Image.fromarray(smooth(200, 300, 12)), "png"),
        ("wide_300x2900", Image.fromarray(noise(300, 2900, 13)), "png"),
        ("huge_2100x3300", Image.fromarray(smooth(2100, 3300, 14)), "png"),
        ("grey_123x456", Image.fromarray(smooth(123, 456, 15)[:, :, 0], mode="L"), "png"),
        ("grey_alpha_250x90", Image.fromarray(noise(250, 90, 16)[:, :, :2], mode="LA"), "png"),
        ("rgba_400x333", Image.fromarray(np.concatenate([noise(400, 333, 17), noise(400, 333, 18)[:, :, :1]],
                                                        -1), mode="RGBA"), "png"),
        ("palette_350x710",
         Image.fromarray(smooth(350, 710, 19)).quantize(colors=200, method=Image.Quantize.MEDIANCUT), "png"),
        ("grey_1bit_77x41", Image.fromarray(noise(77, 41, 20)[:, :, 0] > 127), "png"),
        ("jpeg_480x640", Image.fromarray(smooth(480, 640, 21)), "jpg"),
        ("jpeg_grey_300x200", Image.fromarray(smooth(300, 200, 22)[:, :, 1], mode="L"), "jpg"),
    ]
    # A palette image with transparency (tRNS chunk): alpha is dropped by convert("RGB").
    pal = Image.fromarray(noise(60, 80, 23)).quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    pal.info["transparency"] = 3
    cases.append(("palette_trns_60x80", pal, "png"))
    # EXIF orientations 2..8: transformers' load_image() turns the pixels upright (exif_transpose).
    for orientation in range(2, 9):
        image = Image.fromarray(noise(9, 14, 30 + orientation))
        cases.append((f"exif{orientation}_9x14", image, "png", orientation))
    cases.append(("exif6_jpeg_120x200", Image.fromarray(smooth(120, 200, 40)), "jpg", 6))
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    written = []
    for name, img, fmt, *orientation in cases:
        path = os.path.join(out, "images", f"{name}.{fmt}")
        kwargs = {}
        if orientation:
            exif = Image.Exif()
            exif[0x0112] = orientation[0]
            kwargs["exif"] = exif.tobytes()
        if "transparency" in img.info:
            kwargs["transparency"] = img.info["transparency"]
        if fmt == "png":
            img.save(path, format="PNG", compress_level=1, **kwargs)
        else:
            img.save(path, format="JPEG", quality=92, **kwargs)
        written.append((name, path, fmt))
    return written


def decode_and_preprocess(out, images):
    processor = Llama4ImageProcessor()
    decode_meta, decode_tensors = [], {}
    pre_meta, pre_tensors = [], {}
    for name, path, fmt in images:
        mode = Image.open(path).mode
        pil = load_image(path)  # what HF does with a file: open, exif_transpose, convert("RGB")
        rgb = np.asarray(pil)
        decode_meta.append({"name": name, "file": os.path.relpath(path, out), "format": fmt,
                            "mode": mode, "height": rgb.shape[0], "width": rgb.shape[1]})
        decode_tensors[name] = torch.from_numpy(rgb.copy())
        result = processor(images=[pil], return_tensors="pt")
        pv = result["pixel_values"]
        grid = result["aspect_ratios"][0].tolist()
        pre_meta.append({"name": name, "file": os.path.relpath(path, out), "format": fmt,
                         "grid": grid, "tiles": pv.shape[0], "dtype": str(pv.dtype)})
        pre_tensors[name] = pv
    with open(os.path.join(out, "decode.json"), "w") as f:
        json.dump(decode_meta, f, indent=1)
    save_tensors(os.path.join(out, "decode.pt"), decode_tensors)
    with open(os.path.join(out, "preprocess.json"), "w") as f:
        json.dump({"torchvision_shim": SHIM, "cases": pre_meta}, f, indent=1)
    save_tensors(os.path.join(out, "preprocess.pt"), pre_tensors)


def size_sweep(out):
    """HF's canvas and resize target for many sizes: the processor runs on zero-stride dummy images and its
    first resize call (the aspect-preserving one) is recorded."""
    calls = []
    real_resize = tvF.resize

    def recording_resize(image, size, **kwargs):
        calls.append([int(size[0]), int(size[1])])
        return torch.zeros(image.shape[:-2] + (int(size[0]), int(size[1])), dtype=image.dtype)

    rs = np.random.RandomState(11)
    sizes = set()
    special = [1, 2, 3, 13, 167, 168, 335, 336, 337, 500, 671, 672, 673, 1007, 1008, 1009, 1344, 1345, 4000,
               9000]
    for h in special:
        for w in special:
            sizes.add((h, w))
    while len(sizes) < 800:
        h, w = (int(np.exp(rs.uniform(0, np.log(6000)))) for _ in range(2))
        sizes.add((max(h, 1), max(w, 1)))
    # Sizes whose resize target differs between float32 and float64 arithmetic (found by search): HF computes
    # some of the scales as float32 tensors, and these pin that down.
    for h, w in [(400, 4700), (480, 5800), (552, 4876), (552, 5612), (585, 5655), (608, 5624), (616, 5984),
                 (639, 5751), (780, 4608), (831, 4986), (1036, 2960), (1152, 3504)]:
        sizes.add((h, w))
        sizes.add((w, h))
    # Sizes where h * (canvas / w) lands on or next to an integer.
    for w in (7, 49, 97, 700, 703, 999, 1001, 2000, 3001):
        for k in range(1, 8):
            h = (k * w) // 3 + 1
            sizes.add((h, w))
            sizes.add((w, h))
    variants = [{"max_patches": 16, "resize_to_max_canvas": False},
                {"max_patches": 16, "resize_to_max_canvas": True},
                {"max_patches": 6, "resize_to_max_canvas": False},
                {"max_patches": 1, "resize_to_max_canvas": False}]
    results = []
    tvF.resize = recording_resize
    try:
        for variant in variants:
            processor = Llama4ImageProcessor(**variant)
            # Normalisation cannot change sizes; skipping it keeps the sweep fast.
            processor.rescale_and_normalize = lambda images, *args, **kwargs: images
            rows = []
            for h, w in sorted(sizes):
                if variant["max_patches"] != 16 and (h * 7 + w) % 5:
                    continue  # the smaller variants check a fifth of the sizes
                calls.clear()
                img = torch.zeros(3, 1, 1, dtype=torch.uint8).expand(3, h, w)
                result = processor(images=[img], return_tensors="pt", input_data_format="channels_first")
                grid = result["aspect_ratios"][0].tolist()
                resized = calls[0] if calls else [h, w]  # no call: HF skips resizing to the same size
                rows.append([h, w, grid[0], grid[1], resized[0], resized[1]])
            results.append({**variant, "rows": rows})
    finally:
        tvF.resize = real_resize
    with open(os.path.join(out, "sizes.json"), "w") as f:
        json.dump(results, f)


SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|header_start|>", "<|header_end|>", "<|eot|>",
           "<|image_start|>", "<|image_end|>", "<|tile_x_separator|>", "<|tile_y_separator|>", "<|image|>",
           "<|patch|>", "<|finetune_right_pad|>"]
SPECIAL_IDS = {"<|begin_of_text|>": 200000, "<|end_of_text|>": 200001, "<|header_start|>": 200005,
               "<|header_end|>": 200006, "<|eot|>": 200008, "<|finetune_right_pad|>": 200018,
               "<|image_start|>": 200080, "<|image_end|>": 200081, "<|tile_x_separator|>": 200084,
               "<|tile_y_separator|>": 200085, "<|image|>": 200090, "<|patch|>": 200092}


def tiny_tokenizer(special_ids):
    """A word-level tokenizer with the given ids for the special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "user", "assistant", "system", "Describe", "these", "two", "images", "and", "compare",
             "them", "please", "Now", "this", "one", "too", "."]
    vocab = {w: i for i, w in enumerate(words)}
    vocab.update(special_ids)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot|>",
                                   pad_token="<|finetune_right_pad|>", unk_token="[UNK]",
                                   additional_special_tokens=[s for s in SPECIAL if s not in
                                                              ("<|begin_of_text|>", "<|eot|>",
                                                               "<|finetune_right_pad|>")])
    for s, i in special_ids.items():
        assert fast.convert_tokens_to_ids(s) == i, (s, fast.convert_tokens_to_ids(s), i)
    return fast


def tokens(out, images):
    by_name = {name: path for name, path, _ in images}
    chosen = ["landscape_500x700", "small_200x300", "strip_1x900", "exact_336x336", "huge_2100x3300"]
    tokenizer = tiny_tokenizer(SPECIAL_IDS)
    image_processor = Llama4ImageProcessor()
    processor = Llama4Processor(image_processor=image_processor, tokenizer=tokenizer)
    messages = [
        {"role": "system", "content": "system"},
        {"role": "user", "content": [{"type": "text", "text": "Describe these two images "},
                                     {"type": "image"}, {"type": "text", "text": " and "}, {"type": "image"},
                                     {"type": "text", "text": " please ."}]},
        {"role": "assistant", "content": "them"},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Now this one"},
                                     {"type": "image"}, {"type": "image"},
                                     {"type": "text", "text": "too ."}]},
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    pil = [load_image(by_name[n]) for n in chosen]
    result = processor(text=prompt, images=pil, return_tensors="pt")
    placeholder_ids = tokenizer(prompt)["input_ids"]
    data = {
        "special_ids": SPECIAL_IDS,
        "images": [os.path.relpath(by_name[n], out) for n in chosen],
        "grids": image_processor(images=pil, return_tensors="pt")["aspect_ratios"].tolist(),
        "prompt": prompt,
        "placeholder_ids": placeholder_ids,
        "input_ids": result["input_ids"][0].tolist(),
        "pixel_values_tiles": int(result["pixel_values"].shape[0]),
    }
    with open(os.path.join(out, "tokens.json"), "w") as f:
        json.dump(data, f)


def randomise(module, gen):
    """Weights far from HF's tiny init so that mistakes show: N(0, 0.2) matrices, biases and norms random."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / p.shape[-1] ** 0.5) * 1.5)
            elif "layernorm" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))


def tower(out, images):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  image_size=336, patch_size=14, vision_output_dim=48, projector_input_dim=48,
                  projector_output_dim=48, pixel_shuffle_ratio=0.5, norm_eps=1e-5,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    # A small vocabulary: the special tokens get ids 100.. so that the model stays tiny.
    small_ids = {name: 100 + i for i, name in enumerate(SPECIAL_IDS)}
    text = dict(vocab_size=128, hidden_size=40, intermediate_size=24, intermediate_size_mlp=48,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=10,
                num_local_experts=2, num_experts_per_tok=1, interleave_moe_layer_step=2,
                attention_chunk_size=16, no_rope_layers=[1, 0], attn_temperature_tuning=True, floor_scale=4,
                rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
                pad_token_id=small_ids["<|finetune_right_pad|>"], bos_token_id=small_ids["<|begin_of_text|>"],
                eos_token_id=[small_ids["<|eot|>"]], tie_word_embeddings=False)
    config = Llama4Config(vision_config=vision, text_config=text, image_token_index=small_ids["<|patch|>"],
                          boi_token_index=small_ids["<|image_start|>"],
                          eoi_token_index=small_ids["<|image_end|>"])
    config.vision_config._attn_implementation = "eager"
    model = Llama4ForConditionalGeneration(config).eval()
    randomise(model.vision_model, gen)
    randomise(model.multi_modal_projector, gen)
    randomise(model.language_model, gen)
    assert isinstance(model.vision_model, Llama4VisionModel)
    assert isinstance(model.multi_modal_projector, Llama4MultiModalProjector)

    # Two real images: a 2x3 grid (7 tiles) and a single tile.
    processor = Llama4ImageProcessor()
    by_name = {name: path for name, path, _ in images}
    pil = [load_image(by_name["landscape_500x700"]), load_image(by_name["small_200x300"])]
    pre = processor(images=pil, return_tensors="pt")
    pixel_values = pre["pixel_values"].float()

    # Tower + projector alone, with gradients of a fixed random projection of the features.
    features = model.vision_model(pixel_values).last_hidden_state
    projected = model.multi_modal_projector(features.view(-1, features.size(-1)))
    weights = torch.randn(projected.shape, generator=gen)
    (projected * weights).sum().backward()
    grads = {f"grad.{n}": p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None}
    model.zero_grad()

    # The full model on a prompt with the two images: fused input embeddings and logits.
    tokenizer = tiny_tokenizer(small_ids)
    proc = Llama4Processor(image_processor=processor, tokenizer=tokenizer)
    prompt = ("<|begin_of_text|><|header_start|>user<|header_end|>Describe<|image|>and<|image|>"
              "compare<|eot|><|header_start|>assistant<|header_end|>")
    inputs = proc(text=prompt, images=pil, return_tensors="pt")
    assert torch.equal(inputs["pixel_values"].float(), pixel_values)
    with torch.no_grad():
        outputs = model(input_ids=inputs["input_ids"], pixel_values=pixel_values, output_hidden_states=True)

    state = {n: p.detach() for n, p in model.state_dict().items()
             if n.startswith("vision_model.") or n.startswith("multi_modal_projector.")}
    state["language_model.model.embed_tokens.weight"] = model.get_input_embeddings().weight.detach()
    tensors = {**state, **grads,
               "input.pixel_values": pixel_values, "input.grad_weights": weights,
               "output.features": features.detach(), "output.projected": projected.detach(),
               "fusion.input_ids": inputs["input_ids"], "fusion.inputs_embeds": outputs.hidden_states[0],
               "fusion.logits": outputs.logits}
    save_tensors(os.path.join(out, "tower.pt"), tensors)
    full_state = {n: p.detach().contiguous() for n, p in model.state_dict().items()}
    save_tensors(os.path.join(out, "full_model.pt"), full_state)
    with open(os.path.join(out, "tower.json"), "w") as f:
        json.dump({"vision_config": vision, "text_config": text, "special_ids": small_ids,
                   "image_token_index": small_ids["<|patch|>"],
                   "grids": pre["aspect_ratios"].tolist(), "full_config": config.to_dict()}, f, indent=1,
                  default=str)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    images = make_images(args.out)
    decode_and_preprocess(args.out, images)
    size_sweep(args.out)
    tokens(args.out, images)
    tower(args.out, images)
    print(f"vision oracle: wrote {args.out} (torchvision shim: {SHIM})")


if __name__ == "__main__":
    main()
