#!/usr/bin/env python3
"""e2e: `llama4 forward` with pixel_values on the tiny multimodal HF directory of the fusion oracle
(transformers' Llama4ForConditionalGeneration, two images from the real processor), compared with its
logits; bad image inputs are user errors (exit 1) naming what is wrong."""
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file


def run(binary, model_dir, inputs, work, name):
    in_path, out_path = os.path.join(work, name + "_in.safetensors"), os.path.join(work, name + "_out.safetensors")
    save_file(inputs, in_path)
    proc = subprocess.run([binary, "forward", "--model", model_dir, "--input", in_path, "--output", out_path],
                          capture_output=True, text=True)
    return proc, out_path


def main():
    binary = os.environ["L4_BINARY"]
    data = os.path.join(os.environ["L4_TEST_DATA_DIR"], "fusion")
    ref = load_file(os.path.join(data, "io.safetensors"))
    model_dir, text_dir = os.path.join(data, "model"), os.path.join(data, "text_model")
    ok = True
    with tempfile.TemporaryDirectory() as work:
        inputs = {"input_ids": ref["input_ids"], "pixel_values": ref["pixel_values"].float().contiguous()}
        proc, out_path = run(binary, model_dir, inputs, work, "fused")
        if proc.returncode != 0:
            print(f"[fused] llama4 forward failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
            return 1
        got, want = load_file(out_path)["logits"], ref["logits"]
        err = (got - want).abs().max().item() if got.shape == want.shape else float("inf")
        print(f"[fused] {tuple(inputs['pixel_values'].shape)} tiles: logits max-abs {err:.3g} "
              f"(max |logit| {want.abs().max().item():.3g})")
        ok &= got.dtype == torch.float32 and err <= 1e-4

        # One tile too few: both counts named.
        with open(os.path.join(data, "info.json")) as f:
            image_token = json.load(f)["image_token_index"]
        per_tile = int((ref["input_ids"] == image_token).sum()) // ref["pixel_values"].shape[0]
        short = {"input_ids": ref["input_ids"], "pixel_values": ref["pixel_values"][1:].contiguous()}
        proc, _ = run(binary, model_dir, short, work, "short")
        text = proc.stdout + proc.stderr
        n = ref["pixel_values"].shape[0]
        if proc.returncode != 1 or str(n * per_tile) not in text or str((n - 1) * per_tile) not in text:
            print(f"[short] expected exit 1 naming {n * per_tile} and {(n - 1) * per_tile}: {proc.returncode} {text}")
            ok = False
        # Integer pixel_values and images for a text-only directory: exit 1 naming the input file.
        for name, model, pixels in [("int_pixels", model_dir, ref["pixel_values"].to(torch.uint8)),
                                    ("text_only", text_dir, ref["pixel_values"].float())]:
            proc, _ = run(binary, model, {"input_ids": ref["input_ids"], "pixel_values": pixels.contiguous()},
                          work, name)
            if proc.returncode != 1 or name + "_in.safetensors" not in proc.stdout + proc.stderr:
                print(f"[{name}] expected exit 1 naming the input: {proc.returncode} {proc.stderr}")
                ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
