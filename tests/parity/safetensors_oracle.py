#!/usr/bin/env python3
"""Safetensors / HF checkpoint oracle for tests/unit/checkpoint (parity label).

Default mode (--out DIR) writes, with the reference libraries:
  dtypes/python.safetensors  every dtype, written by safetensors.torch.save_file, with metadata
  causal/                    a tiny bf16 Llama4ForCausalLM saved by transformers' save_pretrained, sharded
  multimodal/                a tiny fp32 Llama4ForConditionalGeneration, sharded
  malformed/*.safetensors    hand-made edge cases, with verdicts.json = does the safetensors library accept it
For each of dtypes/causal/multimodal, expected.bin + manifest.json hold what the Python libraries read back
(dtype, shape, raw little-endian bytes) so the C++ reader is compared byte for byte without using itself.

--check-written OURS --reference DIR: reads what the C++ writer produced in OURS with the Python libraries
and compares it exactly with the reference files (exit 1 on any difference).
"""
import argparse
import json
import os
import shutil
import struct
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.uint16: "U16", torch.uint32: "U32", torch.uint64: "U64",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
}


def raw_bytes(t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def write_expected(out_dir, tensors, extra=None):
    """tensors: {name: (tensor, file it lives in)} as the Python libraries read them."""
    manifest = {"tensors": {}}
    with open(os.path.join(out_dir, "expected.bin"), "wb") as blob:
        offset = 0
        for name in sorted(tensors):
            t, file = tensors[name]
            data = raw_bytes(t)
            blob.write(data)
            manifest["tensors"][name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "offset": offset,
                                         "nbytes": len(data), "file": file}
            offset += len(data)
    manifest.update(extra or {})
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)


def read_dir(model_dir):
    """Every tensor of an HF directory as the Python safetensors library reads it, via the index if any."""
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(os.path.join(model_dir, "model.safetensors")):
        files = {"model.safetensors": None}
    else:
        weight_map = json.load(open(index_path))["weight_map"]
        files = {}
        for name, file in weight_map.items():
            files.setdefault(file, []).append(name)
    out = {}
    for file, names in files.items():
        with safe_open(os.path.join(model_dir, file), framework="pt") as f:
            for name in names or f.keys():
                out[name] = (f.get_tensor(name), file)
    return out


def every_dtype():
    g = torch.Generator().manual_seed(1)
    ints = torch.arange(-6, 6).reshape(3, 4)
    return {
        "f64": torch.randn(2, 3, generator=g, dtype=torch.float64),
        "f32": torch.randn(4, 5, generator=g),
        "f32_special": torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-45]),
        "f16": torch.randn(3, 2, generator=g).half(),
        "bf16": torch.randn(5, 3, generator=g).bfloat16(),
        "i64": torch.tensor([-2**63, 0, 2**63 - 1]),
        "i32": ints.int(), "i16": ints.short(), "i8": ints.to(torch.int8),
        "u8": torch.arange(250, 256).to(torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "u16": torch.arange(0, 6).to(torch.uint16), "u32": torch.arange(0, 6).to(torch.uint32),
        "u64": torch.arange(0, 6).to(torch.uint64),
        "f8_e4m3": torch.randn(2, 2, generator=g).to(torch.float8_e4m3fn),
        "f8_e5m2": torch.randn(2, 2, generator=g).to(torch.float8_e5m2),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "experts": torch.randn(6, 3, 4, generator=g).bfloat16(),
    }


def tiny_text_config():
    from transformers import Llama4TextConfig
    return Llama4TextConfig(vocab_size=64, hidden_size=16, intermediate_size=8, intermediate_size_mlp=24,
                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=4,
                            num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2,
                            max_position_embeddings=64, attention_chunk_size=8)


def canonical(name):
    for prefix in ("language_model.model.", "language_model.lm_head."):
        if name.startswith(prefix):
            return name[len("language_model."):]
    return name


def save_models(out):
    from transformers import (Llama4Config, Llama4ForCausalLM, Llama4ForConditionalGeneration,
                              Llama4VisionConfig)
    torch.manual_seed(0)
    text = Llama4ForCausalLM(tiny_text_config()).to(torch.bfloat16)
    text.save_pretrained(os.path.join(out, "causal"), max_shard_size="4KB")
    vision = Llama4VisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                image_size=28, patch_size=14, pixel_shuffle_ratio=0.5, projector_input_dim=32,
                                projector_output_dim=32, vision_output_dim=32)
    mm = Llama4ForConditionalGeneration(Llama4Config(text_config=tiny_text_config().to_dict(),
                                                     vision_config=vision.to_dict()))
    mm.save_pretrained(os.path.join(out, "multimodal"), max_shard_size="8KB")
    for sub, model, layout in (("causal", text, "Llama4ForCausalLM"),
                               ("multimodal", mm, "Llama4ForConditionalGeneration")):
        params = {canonical(k): {"shape": list(v.shape), "dtype": DTYPE_NAMES[v.dtype]}
                  for k, v in model.state_dict().items()}
        write_expected(os.path.join(out, sub), read_dir(os.path.join(out, sub)),
                       {"layout": layout, "model_params": params})


def raw_file(path, header, data, header_len=None):
    header = header.encode() if isinstance(header, str) else header
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header) if header_len is None else header_len) + header + data)


def malformed(out):
    """Edge cases and what the reference library decides about each (True = it loads every tensor)."""
    d = os.path.join(out, "malformed")
    os.makedirs(d, exist_ok=True)
    t = lambda dtype, shape, b, e: {"dtype": dtype, "shape": shape, "data_offsets": [b, e]}
    data = bytes(range(16))
    cases = {
        "good": ({"a": t("F32", [2], 0, 8), "b": t("I64", [1], 8, 16)}, data),
        "gap": ({"a": t("F32", [1], 0, 4), "b": t("F32", [2], 8, 16)}, data),
        "overlap": ({"a": t("F32", [3], 0, 12), "b": t("F32", [2], 8, 16)}, data),
        "same_range": ({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 0, 8)}, data[:8]),
        "trailing_bytes": ({"a": t("F32", [2], 0, 8)}, data),
        "past_end": ({"a": t("F32", [4], 4, 20)}, data),
        "size_mismatch": ({"a": t("F32", [3], 0, 16)}, data),
        "bad_dtype": ({"a": t("F33", [4], 0, 16)}, data),
        "lowercase_dtype": ({"a": t("f32", [4], 0, 16)}, data),
        "negative_dim": ({"a": t("F32", [-4], 0, 16)}, data),
        "float_dim": ({"a": {"dtype": "F32", "shape": [4.0], "data_offsets": [0, 16]}}, data),
        "missing_shape": ({"a": {"dtype": "F32", "data_offsets": [0, 16]}}, data),
        "extra_field": ({"a": {**t("F32", [4], 0, 16), "extra": {"x": [1]}}}, data),
        "metadata_non_string": ({"__metadata__": {"k": 1}, "a": t("F32", [4], 0, 16)}, data),
        "metadata_null": ({"__metadata__": None, "a": t("F32", [4], 0, 16)}, data),
        "empty_header": ({}, b""),
        "zero_size_last": ({"a": t("BOOL", [16], 0, 16), "z": t("F32", [0, 5], 16, 16)}, data),
        "overflow": ({"a": t("F64", [4611686018427387904], 0, 16)}, data),
        "unpadded_trailing_spaces": ('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}   ', data),
        "duplicate_name": ('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                           '"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', data),
        "not_json": ('{"a":', data),
        "array_root": ('[1,2]', data),
    }
    verdicts = {}
    for name, (header, payload) in cases.items():
        path = os.path.join(d, name + ".safetensors")
        raw_file(path, header if isinstance(header, str) else json.dumps(header), payload)
        verdicts[name + ".safetensors"] = accepts(path)
    raw_file(os.path.join(d, "header_len_past_end.safetensors"), '{"a":1}', b"", header_len=1000)
    raw_file(os.path.join(d, "header_len_huge.safetensors"), '{}', b"", header_len=2**40)
    with open(os.path.join(d, "short.safetensors"), "wb") as f:
        f.write(b"\x02\x00\x00")
    for name in ("header_len_past_end", "header_len_huge", "short"):
        verdicts[name + ".safetensors"] = accepts(os.path.join(d, name + ".safetensors"))
    with open(os.path.join(d, "verdicts.json"), "w") as f:
        json.dump(verdicts, f, indent=1, sort_keys=True)


def accepts(path):
    try:
        with safe_open(path, framework="pt") as f:
            for k in f.keys():
                f.get_tensor(k)
        return True
    except Exception:  # the library's verdict is all we record
        return False


def generate(out):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "dtypes"))
    tensors = every_dtype()
    save_file(tensors, os.path.join(out, "dtypes", "python.safetensors"), metadata={"format": "pt", "k": "v"})
    write_expected(os.path.join(out, "dtypes"),
                   {k: (v, "python.safetensors") for k, v in load_file(os.path.join(out, "dtypes",
                                                                                   "python.safetensors")).items()},
                   {"metadata": {"format": "pt", "k": "v"}})
    save_models(out)
    malformed(out)


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and raw_bytes(a) == raw_bytes(b)


def check_written(ours, ref):
    problems = []
    mine = load_file(os.path.join(ours, "dtypes.safetensors"))
    theirs = load_file(os.path.join(ref, "dtypes", "python.safetensors"))
    if sorted(mine) != sorted(theirs):
        problems.append(f"dtypes: names {sorted(mine)} vs {sorted(theirs)}")
    problems += [f"dtypes: tensor {k} differs" for k in theirs if k in mine and not same(mine[k], theirs[k])]
    with safe_open(os.path.join(ours, "dtypes.safetensors"), framework="pt") as f:
        if f.metadata() != {"format": "pt", "k": "v"}:
            problems.append(f"dtypes: metadata {f.metadata()}")

    # The sharded directory our writer made must load in transformers exactly like the original.
    from transformers import Llama4ForCausalLM
    index = json.load(open(os.path.join(ours, "causal", "model.safetensors.index.json")))
    if len(set(index["weight_map"].values())) < 2:
        problems.append("causal: expected several shards")
    shutil.copy(os.path.join(ref, "causal", "config.json"), os.path.join(ours, "causal", "config.json"))
    a = Llama4ForCausalLM.from_pretrained(os.path.join(ours, "causal")).state_dict()
    b = Llama4ForCausalLM.from_pretrained(os.path.join(ref, "causal")).state_dict()
    if sorted(a) != sorted(b):
        problems.append("causal: parameter names differ")
    problems += [f"causal: {k} differs" for k in b if k in a and not same(a[k], b[k])]
    for p in problems:
        print("MISMATCH", p)
    print("checked", len(theirs), "dtype tensors and", len(b), "model tensors;", len(problems), "problems")
    return 1 if problems else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--check-written")
    p.add_argument("--reference")
    args = p.parse_args()
    if args.check_written:
        sys.exit(check_written(args.check_written, args.reference))
    generate(args.out)


if __name__ == "__main__":
    main()
