#!/usr/bin/env python3
"""Draws a run's curves from <run_dir>/metrics.jsonl into <run_dir>/metrics.png (or --output):
train and eval loss, eval exact match (overall and per task), learning rate, tokens/s.   usage: scripts/plot_metrics.py RUN_DIR [--output FILE]"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir")
    parser.add_argument("--output")
    args = parser.parse_args()
    path = os.path.join(args.run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        sys.exit(f"{path}: no such file (is {args.run_dir} a run_dir of llama4 train?)")
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{number}: not JSON: {e}")

    def series(key):
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        return [p[0] for p in points], [p[1] for p in points]

    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    for key, label in (("loss", "train"), ("eval_loss", "eval")):
        x, y = series(key)
        if x:
            axes[0].plot(x, y, marker="o" if key == "eval_loss" else None, label=label)
    axes[0].set_title("loss")
    axes[0].legend()
    tasks = sorted({k.split("/", 1)[1] for r in rows for k in r if k.startswith("eval_exact_match/")})
    for key, label in [("eval_exact_match", "all")] + [(f"eval_exact_match/{t}", t) for t in tasks]:
        x, y = series(key)
        if x:
            axes[1].plot(x, y, marker="o", linewidth=2.5 if label == "all" else 1, label=label)
    axes[1].set_title("eval exact match")
    axes[1].set_ylim(-0.02, 1.02)
    if tasks:
        axes[1].legend(fontsize=7, ncol=2)
    for ax, key in ((axes[2], "lr"), (axes[3], "tokens_per_s")):
        x, y = series(key)
        ax.plot(x, y)
        ax.set_title(key)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    output = args.output or os.path.join(args.run_dir, "metrics.png")
    fig.savefig(output, dpi=100)
    print(output)


if __name__ == "__main__":
    main()
