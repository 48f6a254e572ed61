"""Resuming a run with another identity: other LoRA settings, another base model (model.init, or the seed of
a seeded one), other training data. Each exits 1 naming the field and both values (checkpoint.resume_mode:
strict, the default) and leaves the checkpoints as they were; checkpoint.resume_mode: weights_only starts a
new run from the weights present in both, loudly, and refuses to write into the source's checkpoint.dir."""
import os

from adv_common import check, finish, metrics_steps, prepare_corpus, recipe, run, step_dirs, work_dir

work = work_dir("identity")
train, evaluation = prepare_corpus(work)
other_train, _ = prepare_corpus(work, "other", offset=200_000)
cfg = recipe(work, train, evaluation)
ckpt = f"{work}/ckpt"
rc, out, err = run(["train", "--config", cfg])
check(rc == 0 and step_dirs(ckpt) == ["step_0000002", "step_0000004"], "train 4 steps", err[-2000:])
snapshot = {d: sorted(os.listdir(f"{ckpt}/{d}")) for d in step_dirs(ckpt)}
mtimes = {d: os.path.getmtime(f"{ckpt}/{d}/manifest.json") for d in step_dirs(ckpt)}

cases = [
    ("LoRA added (lora.rank)", ["lora.rank=4", "lora.alpha=8", "lora.targets=[q_proj,v_proj]"],
     ["lora:", '"none"', "rank=4 alpha=8 rslora=false targets=[q_proj, v_proj]"]),
    ("another base model (model.init)", ["model.init=data/models/tiny-base"], ["base_model:", "seeded init", "sha256:"]),
    ("another seed of a seeded base", ["train.seed=99"], ["base_model:", "train.seed=1234", "train.seed=99"]),
    ("other training data", [f"data.train={other_train}"], ["train_data:", "sha256:"]),
]
for what, overrides, expected in cases:
    rc, out, err = run(["train", "--config", cfg, "train.steps=6", *overrides])
    check(rc == 1 and "saved by another run" in err and "checkpoint.resume_mode: weights_only" in err and
          all(e in err for e in expected), f"strict resume refuses {what}", (rc, err[-2000:]))
check({d: sorted(os.listdir(f"{ckpt}/{d}")) for d in step_dirs(ckpt)} == snapshot and
      all(os.path.getmtime(f"{ckpt}/{d}/manifest.json") == t for d, t in mtimes.items()),
      "refused resumes leave every checkpoint untouched", step_dirs(ckpt))

# weights_only into the same checkpoint.dir: refused (the new run's saves would mix with the old run's)
rc, out, err = run(["train", "--config", cfg, "train.steps=6", f"data.train={other_train}",
                    "checkpoint.resume_mode=weights_only"])
check(rc == 1 and "give the new run its own checkpoint.dir" in err, "weights_only into the source's checkpoint.dir", err[-1500:])

# weights_only from the old run into a new one: step 0, fresh state, loud
new = [f"checkpoint.dir={work}/ckpt_narrow", f"logging.run_dir={work}/run_narrow", f"data.train={other_train}",
       "checkpoint.resume_mode=weights_only", f"checkpoint.resume={ckpt}/step_0000004", "train.steps=2"]
rc, out, err = run(["train", "--config", cfg, *new])
check(rc == 0 and "weights_only" in err and "NEW run at step 0" in err and metrics_steps(f"{work}/run_narrow") == [1, 2],
      "weights_only starts a new run at step 1 from the old weights, logged", (rc, err[-2000:]))
# ... and once it has its own checkpoints it resumes from them exactly, not from the source again
rc, out, err = run(["train", "--config", cfg, *new[:-1], "train.steps=4"])
check(rc == 0 and metrics_steps(f"{work}/run_narrow") == [1, 2, 3, 4] and "ckpt_narrow/step_0000002" in err,
      "the weights_only run resumes from its own checkpoint afterwards", (metrics_steps(f"{work}/run_narrow"), err[-2000:]))
# the unchanged recipe still resumes strictly
rc, out, err = run(["train", "--config", cfg, "train.steps=6"])
check(rc == 0 and metrics_steps(f"{work}/run")[-2:] == [5, 6], "the same run resumes", err[-1500:])

# A LoRA run resumed with narrower targets (it used to rewrite its final checkpoint with fewer adapters, exit 0):
# refused and untouched; weights_only carries the adapters both have into a new run.
lora = [f"checkpoint.dir={work}/ckpt_lora", f"logging.run_dir={work}/run_lora", "lora.rank=4", "lora.alpha=8"]
rc, out, err = run(["train", "--config", cfg, *lora, "lora.targets=[q_proj,v_proj,o_proj]"])
check(rc == 0 and step_dirs(f"{work}/ckpt_lora") == ["step_0000002", "step_0000004"], "a LoRA run trains 4 steps",
      (rc, err[-2000:]))
lora_snapshot = {d: sorted(os.listdir(f"{work}/ckpt_lora/{d}")) for d in step_dirs(f"{work}/ckpt_lora")}
rc, out, err = run(["train", "--config", cfg, *lora, "lora.targets=[q_proj]", "train.steps=6"])
check(rc == 1 and "lora:" in err and "targets=[q_proj]" in err and "targets=[q_proj, v_proj, o_proj]" in err,
      "strict resume refuses narrower lora.targets, naming both", (rc, err[-2000:]))
check({d: sorted(os.listdir(f"{work}/ckpt_lora/{d}")) for d in step_dirs(f"{work}/ckpt_lora")} == lora_snapshot,
      "the LoRA run's checkpoints stay as they were")
rc, out, err = run(["train", "--config", cfg, "lora.rank=4", "lora.alpha=8", "lora.targets=[q_proj]",
                    f"checkpoint.dir={work}/ckpt_lora_q", f"logging.run_dir={work}/run_lora_q",
                    "checkpoint.resume_mode=weights_only", f"checkpoint.resume={work}/ckpt_lora/step_0000004",
                    "train.steps=2"])
check(rc == 0 and metrics_steps(f"{work}/run_lora_q") == [1, 2],
      "weights_only with narrower lora.targets trains a new run from the adapters both have", (rc, err[-2000:]))
finish()
