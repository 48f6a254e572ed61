#!/usr/bin/env python3
"""`llama4 train` under mpirun with expert parallelism: the losses (and eval loss) of
`mpirun -np 2 ... parallel.expert_parallel=2` equal a one-process run within 1e-5 (training and eval losses),
and an ep=2 run stopped at step 2 and resumed (expert shards saved and restored per rank) continues with the
same losses; with a capacity factor the metrics carry the drop rate. An eval set whose last batch leaves one
rank without a row (5 rows, 2 ranks, micro-batches of 1) completes with the one-process eval loss: every rank
runs as many forwards (their expert exchanges are collectives).

Environment (set by ctest): L4_BINARY, L4_SOURCE_DIR; MPIEXEC and MPIEXEC_FLAGS from the command line."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from cli_runs import prepare_small_corpus, run  # noqa: E402

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
MPIEXEC = sys.argv[1]
MPI_FLAGS = sys.argv[2:]
STEPS = 4
TOL = 1e-5


def losses(run_dir):
    out = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            step = rec.get("step")
            for key in ("loss", "eval_loss"):
                if key in rec:
                    out[(key, step)] = rec[key]
    return out


def main():
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, eval_dir = prepare_small_corpus(BINARY, SOURCE, tmp, eval_fraction=0.2)
        recipe = os.path.join(tmp, "recipe.yaml")
        with open(recipe, "w") as f:
            f.write(f"""model: {{config: {SOURCE}/configs/tiny.yaml}}
tokenizer: {{path: {SOURCE}/data/tokenizer}}
data: {{train: {train_dir}, eval: {eval_dir}, seq_len: 64}}
optimizer: {{lr: 3.0e-3}}
schedule: {{warmup_steps: 1}}
train: {{steps: {STEPS}, global_batch: 4, micro_batch: 1, eval_every: 2, eval_batches: 0}}
logging: {{tensorboard: false, peak_tflops: 1.0}}
checkpoint: {{resume: none}}
""")

        def train(name, np, ep, extra=()):
            run_dir = os.path.join(tmp, name)
            cmd = [BINARY, "train", "--config", recipe, f"logging.run_dir={run_dir}",
                   f"parallel.expert_parallel={ep}", *extra]
            if np > 1:
                cmd = [MPIEXEC, "-np", str(np), *MPI_FLAGS, *cmd]
            run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
            return run_dir

        single = losses(train("single", 1, 1))
        ep2 = losses(train("ep2", 2, 2))
        assert len(single) >= STEPS + 2, single
        worst = max(abs(single[k] - ep2[k]) for k in single)
        print(f"ep=2 on 2 ranks vs one process: {len(single)} losses, max |diff| {worst:.2e}")
        assert set(single) == set(ep2), (single, ep2)
        assert worst <= TOL, worst

        # Stop at step 2 with a checkpoint, resume: the expert shards and their optimizer state come back.
        ckpt = os.path.join(tmp, "ckpt")
        resumed_dir = train("resumed", 2, 2, [f"checkpoint.dir={ckpt}", "train.stop_at_step=2"])
        train("resumed", 2, 2, [f"checkpoint.dir={ckpt}", "checkpoint.resume=auto"])
        resumed = losses(resumed_dir)
        worst = max(abs(single[k] - resumed[k]) for k in single)
        print(f"ep=2 stopped at step 2 and resumed vs one process: max |diff| {worst:.2e}")
        assert set(single) == set(resumed), (single, resumed)
        assert worst <= TOL, worst

        # Capacity factor: every step logs the job-wide share of dropped (token, expert) rows.
        capped = train("capped", 2, 2, ["parallel.capacity_factor=0.5"])
        with open(os.path.join(capped, "metrics.jsonl")) as f:
            rates = [json.loads(line)["expert_drop_rate"] for line in f if "loss" in json.loads(line)]
        print(f"ep=2, capacity factor 0.5: drop rates {rates}")
        assert len(rates) == STEPS and all(0.0 < r < 1.0 for r in rates), rates

        # Eval of 5 unpacked rows on 2 ranks: batches of 4 then 1 (rank 0 gets no row in the second).
        records = os.path.join(tmp, "five.jsonl")
        with open(os.path.join(tmp, "corpus.txt"), encoding="utf-8") as f:
            text = f.read()
        with open(records, "w", encoding="utf-8") as f:
            for line in text.splitlines()[:5]:
                f.write(json.dumps({"text": line[:200]}) + "\n")
        odd_eval = os.path.join(tmp, "odd_eval")
        run([BINARY, "prepare", "--input", records, "--output", odd_eval, "--tokenizer",
             os.path.join(SOURCE, "data/tokenizer")])

        def eval_loss(np, ep):
            cmd = [BINARY, "eval", "--config", recipe, f"data.eval={odd_eval}", "data.pack=false",
                   f"parallel.expert_parallel={ep}", "parallel.timeout_s=60"]
            if np > 1:
                cmd = [MPIEXEC, "-np", str(np), *MPI_FLAGS, *cmd]
            out = run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
            return float(out.split("eval_loss")[1].split()[0])

        one, two = eval_loss(1, 1), eval_loss(2, 2)
        print(f"eval of 5 rows: one process {one:.6f}, ep=2 on 2 ranks {two:.6f}")
        assert abs(one - two) <= TOL, (one, two)


if __name__ == "__main__":
    main()
