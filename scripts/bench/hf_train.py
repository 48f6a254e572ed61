#!/usr/bin/env python3
"""The reference side of the training benchmark: a PyTorch training loop over HF `transformers` (optionally with
a trainable `peft` adapter), on the same prepared token shards, batch shape, optimizer and precision as
`llama4 train`. Eager by default; `--compile inductor` runs the model under `torch.compile` (the first step
then includes compiling forward and backward: it is a warm-up step, reported apart as `first_step_s`).
Prints one JSON object with per-step times and losses. sparse_torch_train.py reuses this loop.

Rows are consecutive seq_len-token slices of the shards' token stream with plain causal attention (HF has no
document masking without a dense 4-D mask); the work per token is the same model, so throughput compares.
"""
import argparse
import glob
import json
import os
import sys
import time


def token_rows(data_dir, seq_len, count):
    import h5py
    import numpy as np

    need = count * seq_len
    parts, have = [], 0
    for path in sorted(glob.glob(os.path.join(data_dir, "shard_*.h5"))):
        with h5py.File(path, "r") as f:
            tokens = f["tokens"][: need - have].astype(np.int64)
        parts.append(tokens)
        have += len(tokens)
        if have >= need:
            break
    stream = np.concatenate(parts)
    if len(stream) < need:  # a small dataset repeats, as the trainer's loader does
        stream = np.tile(stream, need // len(stream) + 1)
    return stream[:need].reshape(count, seq_len)


def argument_parser(description=__doc__):
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF model directory")
    ap.add_argument("--adapter", help="PEFT adapter directory: train only its LoRA weights")
    ap.add_argument("--data", required=True, help="prepared dataset directory (shard_*.h5)")
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--global-batch", type=int, required=True)
    ap.add_argument("--micro-batch", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True, help="steps in all, warm-up included")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa or eager)")
    ap.add_argument("--compile", default="none", choices=["none", "inductor", "aot_eager"],
                    help="torch.compile backend for the model (none: eager)")
    return ap


def train(args, prepare=None):
    """The training loop; prepare(model) may change the loaded model and returns facts for the JSON output."""
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.model, dtype=torch.float32, attn_implementation=args.attn)
    facts = prepare(model) if prepare else {}
    if args.adapter:
        import peft
        model = peft.PeftModel.from_pretrained(model, args.adapter, is_trainable=True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if args.compile != "none":
        model = torch.compile(model, backend=args.compile)  # the same parameters, compiled on the first call
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    accumulation = args.global_batch // args.micro_batch
    rows = torch.from_numpy(token_rows(args.data, args.seq_len, args.steps * args.global_batch))

    step_times, losses = [], []
    for step in range(args.steps):
        start = time.perf_counter()
        batch = rows[step * args.global_batch:(step + 1) * args.global_batch]
        total = 0.0
        for micro in batch.split(args.micro_batch):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                loss = model(input_ids=micro, labels=micro).loss / accumulation
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_times.append(time.perf_counter() - start)
        losses.append(total)
        print(f"hf step {step + 1}/{args.steps} loss {total:.4f} {step_times[-1]:.2f}s", file=sys.stderr, flush=True)
    print(json.dumps({"step_time_s": step_times, "loss": losses, "first_step_s": step_times[0],
                      "compile": args.compile, "trainable_params": sum(p.numel() for p in params),
                      "tokens_per_step": args.global_batch * args.seq_len,
                      "torch": torch.__version__, "transformers": transformers.__version__, **facts}))


if __name__ == "__main__":
    train(argument_parser().parse_args())
