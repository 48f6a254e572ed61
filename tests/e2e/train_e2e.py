"""`llama4 train` end to end on a slice of the bundled corpus, under mpirun:
exact resume (bitwise), elastic resume onto 1 and 4 ranks, SIGTERM preemption, kill -9 during a checkpoint
write, non-finite loss, an incompatible checkpoint, per-layer learning rates as printed, TensorBoard files
read back by the tensorboard package, and falling eval loss on a short pretraining run."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
EP = 2  # the reference runs shard the experts over both ranks
ROOT_FLAGS = ["--allow-run-as-root"] if os.geteuid() == 0 else []
failures = []


def check(ok, what, detail=""):
    print(("ok:   " if ok else "FAIL: ") + what + ("" if ok else "\n  " + str(detail)[-3000:]), flush=True)
    if not ok:
        failures.append(what)


def descendants(pid):
    """Every process below `pid`, from /proc (children first found, then theirs)."""
    parent_of = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent_of[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [], [pid]
    while frontier:
        kids = [c for c, parent in parent_of.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def wait_gone(pids, timeout=20):
    """Until none of `pids` runs (a zombie waiting to be reaped no longer runs)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        running = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                        running.append(pid)
            except OSError:
                pass
        if not running:
            return
        time.sleep(0.1)


def mpirun(np, args, env=None, **kwargs):
    cmd = ["mpirun", "-np", str(np), "--oversubscribe", "--bind-to", "none", *ROOT_FLAGS, BINARY, *args]
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.Popen(cmd, cwd=SOURCE, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kwargs)


def run(np, args, env=None, timeout=300):
    p = mpirun(np, args, env)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def metrics(run_dir):
    rows = {}
    path = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(path):
        for line in open(path):
            row = json.loads(line)
            if "loss" in row:
                rows[row["step"]] = row
    return rows


def manifest(ckpt_dir, step):
    with open(os.path.join(ckpt_dir, f"step_{step:07d}", "manifest.json")) as f:
        return json.load(f)


def model_crcs(m):
    return {name: [p["crc32"] for p in t["pieces"]] for name, t in m["tensors"].items()}


work = tempfile.mkdtemp(prefix="l4_train_e2e_")
try:
    corpus = os.path.join(work, "corpus.txt")
    with open(os.path.join(SOURCE, "data/corpus/web_bible_en.txt"), "rb") as f:
        data = f.read(400_000)
    with open(corpus, "wb") as f:
        f.write(data[: data.rfind(b"\n") + 1])
    recipe = os.path.join(work, "recipe.yaml")
    with open(recipe, "w") as f:
        f.write(f"""model: {{config: configs/tiny.yaml}}
tokenizer: {{path: data/tokenizer}}
data: {{sources: [{corpus}], format: text, train: {work}/train, eval: {work}/eval, eval_fraction: 0.1, seq_len: 64}}
parallel: {{expert_parallel: {EP}}}
optimizer: {{lr: 3.0e-3, weight_decay: 0.01, layer_decay: 0.8}}
schedule: {{warmup_steps: 2}}
train: {{steps: 10, global_batch: 8, micro_batch: 2}}
checkpoint: {{dir: {work}/ckpt, keep_last: 5}}
logging: {{run_dir: {work}/run, peak_tflops: 0.3}}
""")
    r = subprocess.run([BINARY, "prepare", "--config", recipe], cwd=SOURCE, capture_output=True, text=True)
    check(r.returncode == 0, "prepare the corpus slice", r.stderr)

    def paths(tag):
        return [f"checkpoint.dir={work}/{tag}/ckpt", f"logging.run_dir={work}/{tag}/run"]

    # --- exact resume: 10 steps straight vs 5 + stop + resume 5, on 2 ranks ---------------------------
    rc, out, err = run(2, ["train", "--config", recipe, *paths("straight")])
    check(rc == 0, "2 ranks, 10 steps straight", err)
    straight = metrics(f"{work}/straight/run")
    rc, out, err = run(2, ["train", "--config", recipe, *paths("split"), "train.stop_at_step=5"])
    check(rc == 0 and os.path.isdir(f"{work}/split/ckpt/step_0000005"), "stop_at_step=5 writes a checkpoint", err)
    shutil.copytree(f"{work}/split/ckpt", f"{work}/at5")
    rc, out, err = run(2, ["train", "--config", recipe, *paths("split")])
    check(rc == 0 and "resumed from" in err, "resume from step 5 on 2 ranks", err)
    split = metrics(f"{work}/split/run")
    same = sorted(straight) == list(range(1, 11)) and all(straight[s]["loss"] == split.get(s, {}).get("loss") for s in straight)
    check(same, "the 10 losses of the resumed run equal the uninterrupted run bitwise",
          [(s, straight[s]["loss"], split.get(s, {}).get("loss")) for s in straight])
    check(model_crcs(manifest(f"{work}/straight/ckpt", 10)) == model_crcs(manifest(f"{work}/split/ckpt", 10)),
          "final parameters and optimizer state identical (CRC of every tensor)")

    # --- llama4 eval reproduces the final evaluation of the run, on another world size ----------------
    final_eval = [row["eval_loss"] for row in map(json.loads, open(f"{work}/straight/run/metrics.jsonl")) if "eval_loss" in row]
    r = subprocess.run([BINARY, "eval", "--config", recipe, *paths("straight"), "parallel.expert_parallel=1"],
                       cwd=SOURCE, capture_output=True,
                       text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    m = re.search(r"step 10  eval_loss ([0-9.]+)", r.stdout)
    check(r.returncode == 0 and m and final_eval and abs(float(m.group(1)) - final_eval[-1]) <= 1e-5,
          "llama4 eval on 1 rank equals the 2-rank run's final eval loss", (final_eval, r.stdout, r.stderr[-1500:]))

    # --- elastic: the step-5 checkpoint of 2 ranks (ep=2) resumed on 1 rank and on 4 ranks (ep=2, ep=4) -
    for np, ep in ((1, 1), (4, 2), (4, 4)):
        tag = f"elastic{np}_{ep}"
        shutil.copytree(f"{work}/at5", f"{work}/{tag}/ckpt")
        rc, out, err = run(np, ["train", "--config", recipe, *paths(tag), f"parallel.expert_parallel={ep}"])
        got = metrics(f"{work}/{tag}/run")
        ok = rc == 0 and sorted(got) == list(range(6, 11)) and all(
            abs(got[s]["loss"] - straight[s]["loss"]) <= 1e-5 for s in got)
        check(ok, f"resume the 2-rank ep=2 checkpoint on {np} rank(s) with ep={ep}: losses within 1e-5",
              err if rc else [(s, got[s]["loss"], straight[s]["loss"]) for s in got])

    # --- SIGTERM: finish the step, checkpoint, exit 0, resume continues -----------------------------
    p = mpirun(2, ["train", "--config", recipe, *paths("term"), "train.steps=400"])
    deadline = time.time() + 120
    while time.time() < deadline and len(metrics(f"{work}/term/run")) < 3:
        time.sleep(0.2)
    ranks = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    for pid in ranks:
        os.kill(int(pid), signal.SIGTERM)  # as Slurm does: every task gets the signal
    out, err = p.communicate(timeout=120)
    match = re.search(r"preempted at step (\d+)", out)
    check(p.returncode == 0 and match is not None, "SIGTERM: exit 0 with 'preempted at step N'", err + out)
    if match:
        stopped = int(match.group(1))
        check(os.path.isdir(f"{work}/term/ckpt/step_{stopped:07d}"), "SIGTERM: checkpoint of that step written")
        rc, out, err = run(2, ["train", "--config", recipe, *paths("term"), f"train.steps={stopped + 2}"])
        check(rc == 0 and max(metrics(f"{work}/term/run")) == stopped + 2, "resume after SIGTERM completes", err)

    # --- kill -9 while a checkpoint is being written -------------------------------------------------
    p = mpirun(2, ["train", "--config", recipe, *paths("kill"), "checkpoint.every=2", "train.steps=6"],
               env={"L4_CHECKPOINT_TEST_DELAY_S": "60"})
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.isdir(f"{work}/kill/ckpt/step_0000004.tmp"):
        time.sleep(0.1)
    time.sleep(0.5)
    # The whole job dies at once, as when a node is lost: mpirun and every rank (the ranks need not share
    # mpirun's process group, and a rank left alive would rightly keep holding the run's lock).
    victims = descendants(p.pid)
    os.killpg(p.pid, signal.SIGKILL)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.communicate()
    wait_gone(victims)
    check(os.path.isdir(f"{work}/kill/ckpt/step_0000004.tmp"), "kill -9 left step_0000004.tmp behind")
    rc, out, err = run(2, ["train", "--config", recipe, *paths("kill"), "checkpoint.every=2", "train.steps=6"])
    resumed = re.search(r"resumed from \S*step_0000002", err) is not None
    check(rc == 0 and resumed and max(metrics(f"{work}/kill/run")) == 6,
          "after kill -9 the previous checkpoint is used and the run completes", err)

    # --- non-finite loss stops with a checkpoint and exit 1 ------------------------------------------
    rc, out, err = run(1, ["train", "--config", recipe, *paths("nan"), "parallel.expert_parallel=1", "optimizer.lr=1.0e+30",
                           "schedule.warmup_steps=0", "train.grad_clip=0"])
    check(rc == 1 and "non-finite" in err and os.path.exists(f"{work}/nan/ckpt/latest"),
          "non-finite loss: exit 1 naming the step, checkpoint of the last good state", err)

    # --- a checkpoint of another architecture is refused ---------------------------------------------
    rc, out, err = run(1, ["train", "--config", recipe, *paths("split"), "model.config=configs/small.yaml",
                           "parallel.expert_parallel=1",
                           "train.steps=12"])
    check(rc == 1 and "another architecture" in err and "hidden_size" in err,
          "incompatible checkpoint: exit 1 with the first differing field", err)

    # --- per-layer learning rates as printed ----------------------------------------------------------
    r = subprocess.run([BINARY, "train", "--config", recipe, "--print-param-groups", "parallel.expert_parallel=1",
                        "optimizer.param_groups=[{match: '*.router.*', lr_scale: 0.1}]"],
                       cwd=SOURCE, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    lines = [l.split() for l in r.stdout.splitlines()[1:] if l.strip()]
    ok = r.returncode == 0 and len(lines) > 10
    num_layers, lr, decay = 4, 3.0e-3, 0.8
    for parts in lines:
        name, layer, got = parts[0], int(parts[2]), float(parts[3])
        want = lr * decay ** (num_layers - layer) * (0.1 if ".router." in name else 1.0)
        ok = ok and abs(got - want) <= 1e-6 * want
        if name.startswith("model.layers.2."):
            ok = ok and layer == 3
    check(ok, "--print-param-groups: lr = lr * layer_decay^(L - id) x rule scale", r.stdout + r.stderr)

    # --- TensorBoard files read back by the tensorboard package ---------------------------------------
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        acc = EventAccumulator(f"{work}/straight/run/tb")
        acc.Reload()
        scalars = {e.step: e.value for e in acc.Scalars("loss")}
        ok = sorted(scalars) == sorted(straight) and all(
            abs(scalars[s] - straight[s]["loss"]) <= 1e-6 * abs(straight[s]["loss"]) for s in straight)
        check(ok, "tensorboard's event reader sees the same steps and losses as metrics.jsonl", scalars)
    except ImportError as e:
        check(False, "tensorboard package importable", e)

    # --- the curves as a picture ------------------------------------------------------------------------
    python = os.environ.get("L4_PYTHON", sys.executable)
    r = subprocess.run([python, os.path.join(SOURCE, "scripts/plot_metrics.py"), f"{work}/straight/run"],
                       capture_output=True, text=True)
    png = f"{work}/straight/run/metrics.png"
    check(r.returncode == 0 and os.path.exists(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n",
          "scripts/plot_metrics.py draws the run's curves into a PNG", r.stderr)

    # --- a short pretraining run: eval loss falls ------------------------------------------------------
    rc, out, err = run(2, ["train", "--config", recipe, *paths("pretrain"), "train.steps=100",
                           "train.eval_every=20", "logging.every=20", "schedule.warmup_steps=10"], timeout=600)
    evals = [row["eval_loss"] for _, row in sorted(metrics(f"{work}/pretrain/run").items()) if "eval_loss" in row]
    ok = rc == 0 and len(evals) == 5 and all(b <= a + 0.02 for a, b in zip(evals, evals[1:])) and evals[-1] < evals[0] - 0.5
    check(ok, "100 pretraining steps: eval loss falls monotonically (margin 0.02) and by > 0.5", (evals, err[-2000:]))
finally:
    shutil.rmtree(work, ignore_errors=True)

print(f"{len(failures)} failed" if failures else "all train checks passed")
sys.exit(1 if failures else 0)
