#!/usr/bin/env python3
"""`llama4 train` with optimizer.zero 1 and 2 against zero 0 (checkpoint tensors compared: model and AdamW
state, assembled from every rank's file), with gradient clipping active:
  - full fine-tuning on 2 and 4 ranks, LoRA on 2 and 4 ranks, expert_parallel 2 on 4 ranks: after 5 steps
    every parameter and optimizer tensor equals the zero 0 run's within 1e-6;
  - resume exactness: zero 1 and zero 2 stopped at step 3 and resumed on the same world size equal the
    uninterrupted run bit for bit;
  - the AdamW state bytes each rank logs equal `llama4 plan`'s optimizer figure;
  - elastic: a zero 1 checkpoint written by 4 ranks at step 3 continues on 2 ranks under zero 1 and under
    zero 2 to the same tensors (1e-6) as the same checkpoint continued on 2 ranks under zero 0; and a zero 0
    checkpoint from 2 ranks continues under zero 1 on 4 ranks as under zero 0 on 4 ranks;
  - bf16 full fine-tuning (model.dtype bfloat16: fp32 masters, sharded under ZeRO): zero 1 and zero 2 on 2
    ranks equal zero 0 after 5 steps (parameters, AdamW state and the full masters the checkpoints hold),
    the logged state bytes (masters included) equal the plan's, and zero 1 stopped at step 3 and resumed
    equals the uninterrupted run bit for bit.

Under zero 1 the tensors come out bit for bit equal. Zero 2 may differ in a few elements: MPI's
reduce-scatter can add the ranks' gradients in another order than its all-reduce (4 ranks), and with
gradient accumulation (2 ranks run 2 micro-batches of 1 row) zero 2 reduces each micro-batch over the ranks
before adding the micro-batches, where zero 0 adds a rank's micro-batches first. Where the sum cancels to
|g| ~ AdamW's eps the update m / (sqrt(v) + eps) magnifies that last-bit difference, and five steps carry it
on (measured: 7.5e-9 on 4 ranks, 3.1e-6 on 2 ranks with accumulation). There the bound is
1e-5 (or the difference between zero 0 on 2 and 4 ranks, if larger); a wrongly mapped slice moves
weights by the learning rate (3e-3).

Environment (set by ctest): L4_BINARY, L4_SOURCE_DIR; MPIEXEC and MPIEXEC_FLAGS from the command line."""
import json
import os
import re
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from cli_runs import prepare_small_corpus, run  # noqa: E402
from checkpoint_tensors import compare, load_checkpoint, max_diff  # noqa: E402

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
MPIEXEC = sys.argv[1]
MPI_FLAGS = sys.argv[2:]
STEPS = 5
TOL = 1e-6
REORDERED_TOL = 1e-5  # zero 2: measured up to 3.1e-6; a misplaced slice moves weights by ~lr


def main():
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, _ = prepare_small_corpus(BINARY, SOURCE, tmp)
        recipe = os.path.join(tmp, "recipe.yaml")
        with open(recipe, "w") as f:
            f.write(f"""model: {{config: {SOURCE}/configs/tiny.yaml}}
tokenizer: {{path: {SOURCE}/data/tokenizer}}
data: {{train: {train_dir}, seq_len: 32}}
optimizer: {{lr: 3.0e-3, weight_decay: 0.1, param_groups: [{{match: "*norm*", weight_decay: 0.0}}]}}
schedule: {{warmup_steps: 1}}
train: {{steps: {STEPS}, global_batch: 4, micro_batch: 1, grad_clip: 1.0}}
logging: {{tensorboard: false, peak_tflops: 1.0}}
checkpoint: {{every: 0, resume: auto}}
""")
        logs = {}
        lora = ["lora.rank=4", "lora.alpha=8", "lora.targets=[q_proj,v_proj,shared_expert,experts]"]

        def train(name, np_, zero, extra=(), ckpt=None):
            run_dir = os.path.join(tmp, name)
            ckpt = ckpt or os.path.join(run_dir, "ckpt")
            cmd = [BINARY, "train", "--config", recipe, f"logging.run_dir={run_dir}",
                   f"checkpoint.dir={ckpt}", f"optimizer.zero={zero}", *extra]
            if np_ > 1:
                cmd = [MPIEXEC, "-np", str(np_), *MPI_FLAGS, *cmd]
            proc = run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
            logs[name] = proc.stdout + proc.stderr
            return ckpt

        def check_state_bytes(name, np_, zero, extra):
            """The AdamW bytes each rank logs after its first step equal `llama4 plan`'s figure."""
            found = re.search(r"optimizer state \(optimizer.zero=\d\): (\d+) to (\d+) bytes per rank", logs[name])
            assert found, (name, logs[name][-2000:])
            plan = json.loads(run([BINARY, "plan", "--config", recipe, "--world", str(np_), "--json",
                                   f"optimizer.zero={zero}", *extra]).stdout)
            planned = plan["per_rank_bytes"]["optimizer"]
            print(f"{name}: AdamW state per rank {found.group(1)}..{found.group(2)} bytes, plan {planned}")
            assert int(found.group(1)) == int(found.group(2)) == planned, name

        # Equivalence after 5 steps. Zero 0 on 2 and on 4 ranks differ only in the order of addition (here
        # not at all: Open MPI's all-reduce adds pairwise like the 2-rank accumulation); zero 2 adds in
        # another order (reduce-scatter; on 2 ranks, with 2 micro-batches, the ranks' sum of each micro-batch
        # before the micro-batches'): bound REORDERED_TOL there (see the top).
        kinds = {"full": [], "lora": lora, "ep2": ["parallel.expert_parallel=2"]}
        clipped = False
        for kind, extra in kinds.items():
            base = {np_: load_checkpoint(train(f"{kind}_np{np_}_z0", np_, 0, extra), STEPS) for np_ in (2, 4)}
            for np_ in (2, 4):
                check_state_bytes(f"{kind}_np{np_}_z0", np_, 0, extra)
            floor = max_diff(base[2], base[4])
            print(f"{kind}: zero 0 on 2 vs 4 ranks (order of addition only): max |diff| {floor:.3e}")
            for np_ in (2, 4):
                for zero in (1, 2):
                    got = load_checkpoint(train(f"{kind}_np{np_}_z{zero}", np_, zero, extra), STEPS)
                    check_state_bytes(f"{kind}_np{np_}_z{zero}", np_, zero, extra)
                    tol = TOL if zero == 1 else max(REORDERED_TOL, floor)
                    compare(base[np_], got, f"{kind} on {np_} ranks: zero {zero} vs zero 0 (bound {tol:.1e})", tol)
                with open(os.path.join(tmp, f"{kind}_np{np_}_z0", "metrics.jsonl")) as f:
                    clipped = clipped or any(json.loads(line)["grad_norm"] > 1.0 for line in f)
        assert clipped, "grad_clip 1.0 never clipped: the clipping path is not exercised"

        # bf16 full fine-tuning: each rank keeps the fp32 masters of its pieces only; checkpoints gather them.
        bf16 = ["model.dtype=bfloat16"]
        base = load_checkpoint(train("bf16_np2_z0", 2, 0, bf16), STEPS)
        check_state_bytes("bf16_np2_z0", 2, 0, bf16)
        masters = [k for k in base if k.startswith("optimizer.master.")]
        assert masters and all(base[k].dtype == np.float32 for k in masters), sorted(base)[:5]
        for zero in (1, 2):
            got = load_checkpoint(train(f"bf16_np2_z{zero}", 2, zero, bf16), STEPS)
            check_state_bytes(f"bf16_np2_z{zero}", 2, zero, bf16)
            if zero == 1:
                compare(base, got, f"bf16 on 2 ranks: zero 1 vs zero 0 (bound {TOL:.1e})", TOL)
                continue
            # Zero 2 reduces each micro-batch's bf16 gradients over the ranks before adding the micro-batches
            # (zero 0: the other way round), two bf16 roundings in another order; AdamW magnifies that where
            # |g| ~ eps, so a few masters move apart by up to a few lr while nearly all stay together
            # (measured: median 2.7e-6, 1.7% above lr / 10). A misplaced slice would move about half of them.
            masters = [k for k in base if k.startswith("optimizer.master.")]
            moved = np.concatenate([np.abs(base[k] - got[k]).ravel() for k in masters])
            median, far = float(np.median(moved)), float((moved > 3.0e-4).mean())
            print(f"bf16 on 2 ranks: zero 2 vs zero 0, fp32 masters: median |diff| {median:.2e}, "
                  f"{100 * far:.2f}% above lr / 10")
            assert median <= 1e-5 and far <= 0.05, ("bf16 zero 2 masters", median, far)
        ckpt = os.path.join(tmp, "bf16_resume_z1", "ckpt")
        train("bf16_resume_z1", 2, 1, [*bf16, "train.stop_at_step=3"], ckpt)
        train("bf16_resume_z1", 2, 1, bf16, ckpt)
        full = load_checkpoint(os.path.join(tmp, "bf16_np2_z1", "ckpt"), STEPS)
        compare(full, load_checkpoint(ckpt, STEPS), "bf16 zero 1: stopped at 3 and resumed vs uninterrupted", 0.0)

        # Resume exactness on the same world size: stop at 3, resume to 5, equal bit for bit.
        for zero in (1, 2):
            full = load_checkpoint(os.path.join(tmp, f"full_np2_z{zero}", "ckpt"), STEPS)
            ckpt = os.path.join(tmp, f"resume_z{zero}", "ckpt")
            train(f"resume_z{zero}", 2, zero, ["train.stop_at_step=3"], ckpt)
            train(f"resume_z{zero}", 2, zero, [], ckpt)
            compare(full, load_checkpoint(ckpt, STEPS), f"zero {zero}: stopped at 3 and resumed vs uninterrupted", 0.0)

        # Elastic: a zero 1 checkpoint from 4 ranks continued on 2 ranks.
        src = train("elastic_src", 4, 1, ["train.stop_at_step=3"])
        continued = {}
        for zero in (0, 1, 2):
            ckpt = os.path.join(tmp, f"elastic_z{zero}_ckpt")
            shutil.copytree(src, ckpt)
            train(f"elastic_z{zero}", 2, zero, [], ckpt)
            continued[zero] = load_checkpoint(ckpt, STEPS)
        for zero in (1, 2):
            compare(continued[0], continued[zero],
                    f"zero 1 checkpoint of 4 ranks continued on 2 ranks: zero {zero} vs zero 0",
                    TOL if zero == 1 else REORDERED_TOL)
        # ... and the other way: zero 0 from 2 ranks continued under zero 1 on 4 ranks.
        src = train("elastic_back_src", 2, 0, ["train.stop_at_step=3"])
        back = {}
        for zero in (0, 1):
            ckpt = os.path.join(tmp, f"elastic_back_z{zero}_ckpt")
            shutil.copytree(src, ckpt)
            train(f"elastic_back_z{zero}", 4, zero, [], ckpt)
            back[zero] = load_checkpoint(ckpt, STEPS)
        compare(back[0], back[1], "zero 0 checkpoint of 2 ranks continued on 4 ranks: zero 1 vs zero 0", TOL)
    print("OK")


if __name__ == "__main__":
    main()
