"""`llama4 train` with train.device=cuda on the tiny model, one process: the fp32 losses and gradient norms
of 6 steps equal the CPU run's, the evaluation at the end runs on the GPU, the checkpoint written from
the GPU resumes on the CPU with the same final loss, and bf16 autocast trains with finite losses.
Without a usable CUDA device it checks the clear error instead and exits 77 (ctest: skipped)."""
import json
import os
import subprocess
import sys
import tempfile

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
SKIPPED = 77
failures = []


def check(ok, what, detail=""):
    print(("ok:   " if ok else "FAIL: ") + what + ("" if ok else "\n  " + str(detail)[-3000:]), flush=True)
    if not ok:
        failures.append(what)


def train(recipe, *overrides):
    r = subprocess.run([BINARY, "train", "--config", recipe, *overrides], cwd=SOURCE, capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="2", OMPI_MCA_ess_singleton_isolated="1"), timeout=600)
    return r.returncode, r.stdout + r.stderr


def metrics(run_dir):
    rows = {}
    path = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(path):
        for line in open(path):
            row = json.loads(line)
            rows.setdefault(row["step"], {}).update(row)
    return rows


work = tempfile.mkdtemp(prefix="l4_train_cuda_")
with open(os.path.join(SOURCE, "data/corpus/web_bible_en.txt"), "rb") as f:
    data = f.read(120_000)
corpus = os.path.join(work, "corpus.txt")
with open(corpus, "wb") as f:
    f.write(data[: data.rfind(b"\n") + 1])
recipe = os.path.join(work, "recipe.yaml")
with open(recipe, "w") as f:
    f.write(f"""model: {{config: configs/tiny.yaml}}
tokenizer: {{path: data/tokenizer}}
data: {{sources: [{corpus}], format: text, train: {work}/train, eval: {work}/eval, eval_fraction: 0.1, seq_len: 64}}
optimizer: {{lr: 3.0e-3, weight_decay: 0.01}}
schedule: {{warmup_steps: 2}}
train: {{steps: 6, global_batch: 8, micro_batch: 4, eval_batches: 2}}
checkpoint: {{resume: none}}
logging: {{peak_tflops: 1.0, tensorboard: false}}
""")


def paths(tag):
    return [f"checkpoint.dir={work}/{tag}/ckpt", f"logging.run_dir={work}/{tag}/run"]


r = subprocess.run([BINARY, "prepare", "--config", recipe], cwd=SOURCE, capture_output=True, text=True)
check(r.returncode == 0, "prepare the corpus slice", r.stderr)
rc, out = train(recipe, *paths("probe"), "train.device=cuda", "train.steps=1")
if "no CUDA device is usable" in out:
    check(rc == 1, "train.device=cuda without a GPU: exit 1 with a clear message", out)
    print("SKIPPED: no usable CUDA device (the CUDA comparison runs on a GPU machine)")
    sys.exit(1 if failures else SKIPPED)
check(rc == 0, "one CUDA step", out)
rc, out = train(recipe, *paths("cpu"))
check(rc == 0, "6 steps on the CPU", out)
rc, out = train(recipe, *paths("cuda"), "train.device=cuda")
check(rc == 0 and "(cuda:0)" in out, "6 steps on CUDA", out)
cpu, gpu = metrics(f"{work}/cpu/run"), metrics(f"{work}/cuda/run")
pairs = [(s, cpu[s].get("loss"), gpu.get(s, {}).get("loss")) for s in sorted(cpu) if "loss" in cpu[s]]
check(len(pairs) == 6 and all(g is not None and abs(c - g) <= 1e-4 for _, c, g in pairs),
      "fp32 losses on CUDA equal the CPU's within 1e-4", pairs)
norms = [(s, cpu[s]["grad_norm"], gpu[s]["grad_norm"]) for s in sorted(cpu) if "grad_norm" in cpu[s] and s in gpu]
check(norms and all(abs(c - g) <= 1e-3 * max(c, 1e-6) for _, c, g in norms), "gradient norms within 1e-3 relative", norms)
check(abs(cpu[6].get("eval_loss", 0) - gpu[6].get("eval_loss", 1)) <= 1e-4, "eval loss on CUDA equals the CPU's",
      (cpu.get(6), gpu.get(6)))
print("cuda vs cpu losses:", [(s, round(c, 6), round(g, 6)) for s, c, g in pairs], flush=True)

# The checkpoint written from the GPU (tensors copied off the device) resumes on the CPU: two more steps
# give the losses the GPU run gives for the same two steps.
rc, out = train(recipe, *paths("cuda"), "train.device=cuda", "train.steps=8", "checkpoint.resume=auto")
check(rc == 0 and "resumed from" in out, "CUDA run resumes its own checkpoint on CUDA", out)
rc, out = train(recipe, f"checkpoint.dir={work}/cuda/ckpt", f"logging.run_dir={work}/resume_cpu/run", "train.steps=8",
                "checkpoint.resume=" + os.path.join(work, "cuda/ckpt/step_0000006"))
check(rc == 0 and "resumed from" in out, "the CUDA checkpoint of step 6 resumes on the CPU", out)
on_gpu, on_cpu = metrics(f"{work}/cuda/run"), metrics(f"{work}/resume_cpu/run")
check(all(abs(on_gpu[s]["loss"] - on_cpu[s]["loss"]) <= 1e-4 for s in (7, 8)),
      "steps 7-8 after the resume: CPU equals CUDA within 1e-4", (on_gpu.get(7), on_cpu.get(7)))

rc, out = train(recipe, *paths("bf16"), "train.device=cuda", "train.precision=bf16")
bf16 = metrics(f"{work}/bf16/run")
check(rc == 0 and len([s for s in bf16 if "loss" in bf16[s]]) == 6 and
      all(abs(bf16[s]["loss"] - cpu[s]["loss"]) <= 0.05 * cpu[s]["loss"] for s in bf16 if "loss" in bf16[s]),
      "bf16 autocast on CUDA: 6 steps, losses within 5% of the fp32 CPU run", out)

print(f"{len(failures)} failure(s)" if failures else "all checks passed")
sys.exit(1 if failures else 0)
