"""Reference sampling by transformers 5.17's logits warpers (TemperatureLogitsWarper, TopKLogitsWarper,
TopPLogitsWarper, in generate's order) on random logits with ties and peaked rows.

Writes to --out:
  cases.json          per case: temperature, top_k, top_p, seed
  sampling.safetensors  "logits" [R, V]; per case "<i>.warped" [R, V] (HF's scores, -inf where removed) and
                      "<i>.draws" [R, D] int64: D tokens drawn per row with torch.multinomial(probs[1, V]) from
                      the global generator seeded with the case's seed, rows one after another
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

CASES = [
    dict(temperature=1.0, top_k=0, top_p=1.0, seed=1),
    dict(temperature=0.7, top_k=0, top_p=1.0, seed=2),
    dict(temperature=1.0, top_k=5, top_p=1.0, seed=3),
    dict(temperature=1.3, top_k=1, top_p=1.0, seed=4),
    dict(temperature=1.0, top_k=0, top_p=0.9, seed=5),
    dict(temperature=0.6, top_k=0, top_p=0.5, seed=6),
    dict(temperature=0.8, top_k=40, top_p=0.95, seed=7),
    dict(temperature=1.0, top_k=3, top_p=0.01, seed=8),
    dict(temperature=2.0, top_k=2000, top_p=0.999, seed=9),
]
DRAWS = 6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    out = parser.parse_args().out
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 1003, generator=g) * 3
    logits[1] = torch.round(logits[1])  # many ties, also at the k-th score
    logits[2, 7] = 40.0  # one token holds nearly all the mass
    logits[3] = 0.0  # uniform
    tensors = {"logits": logits}
    for i, case in enumerate(CASES):
        scores = logits.clone()
        if case["temperature"] != 1.0:
            scores = TemperatureLogitsWarper(case["temperature"])(None, scores)
        if case["top_k"]:
            scores = TopKLogitsWarper(case["top_k"])(None, scores)
        if case["top_p"] < 1.0:
            scores = TopPLogitsWarper(case["top_p"])(None, scores)
        tensors[f"{i}.warped"] = scores
        torch.manual_seed(case["seed"])
        draws = torch.zeros(logits.shape[0], DRAWS, dtype=torch.int64)
        for r in range(logits.shape[0]):
            probs = torch.nn.functional.softmax(scores[r : r + 1], dim=-1)
            for d in range(DRAWS):
                draws[r, d] = torch.multinomial(probs, num_samples=1).item()
        tensors[f"{i}.draws"] = draws
    save_file(tensors, os.path.join(out, "sampling.safetensors"))
    json.dump(CASES, open(os.path.join(out, "cases.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
