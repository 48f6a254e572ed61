"""Damaged checkpoints: every one damaged must stop the run (exit 1 listing each and why), never restart from
step 1 beside them (rotation would then delete them); rotation after a fallback keeps the last good
checkpoint and removes a damaged one only once a later good one exists; an edited trainer_state.json or
manifest.json is damage (CRC), not a new truth."""
import json
import os
import shutil

from adv_common import check, finish, metrics_steps, prepare_corpus, recipe, run, step_dirs, work_dir

work = work_dir("damaged")
train, evaluation = prepare_corpus(work)
cfg = recipe(work, train, evaluation)
ckpt, run_dir = f"{work}/ckpt", f"{work}/run"
rc, out, err = run(["train", "--config", cfg, "train.steps=6"])
check(rc == 0 and step_dirs(ckpt) == ["step_0000002", "step_0000004", "step_0000006"], "6 steps, checkpoints 2, 4, 6",
      (step_dirs(ckpt), err))
pristine = f"{work}/pristine"
shutil.copytree(ckpt, pristine)


def reset():
    shutil.rmtree(ckpt)
    shutil.copytree(pristine, ckpt)


def edit_json(path, key, value):
    with open(path) as f:
        data = json.load(f)
    data[key] = value
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


# --- every checkpoint damaged, each a different way: exit 1 naming each, nothing restarted or deleted ---------
os.truncate(f"{ckpt}/step_0000002/rank_00000.h5", 1000)
os.remove(f"{ckpt}/step_0000004/trainer_state.json")
edit_json(f"{ckpt}/step_0000006/trainer_state.json", "step", 60)
lines_before = len(metrics_steps(run_dir))
rc, out, err = run(["train", "--config", cfg, "train.steps=8"])
check(rc == 1 and "every checkpoint is damaged" in err, "all damaged: exit 1", (rc, err[-2000:]))
check("step_0000002/rank_00000.h5: size" in err and "step_0000004/trainer_state.json: missing" in err
      and "step_0000006/trainer_state.json: fails its CRC32 check" in err,
      "all damaged: each checkpoint named with why it was rejected", err[-3000:])
check(step_dirs(ckpt) == ["step_0000002", "step_0000004", "step_0000006"] and
      len(metrics_steps(run_dir)) == lines_before, "all damaged: no step trained, no checkpoint deleted",
      (step_dirs(ckpt), metrics_steps(run_dir)))
rc, out, err = run(["train", "--config", cfg, "train.steps=2", "checkpoint.resume=none",
                    f"checkpoint.dir={work}/fresh"])
check(rc == 0, "checkpoint.resume=none with a fresh checkpoint.dir still trains from scratch", err[-2000:])

# --- an edited step in trainer_state.json (or manifest.json) is damage: fallback to the previous one --------
for victim, name in (("trainer_state.json", "step"), ("manifest.json", "step")):
    reset()
    edit_json(f"{ckpt}/step_0000006/{victim}", name, 5)
    rc, out, err = run(["train", "--config", cfg, "train.steps=6"])
    check(rc == 0 and f"step_0000006/{victim}: fails its CRC32 check" in err and "resumed from" in err and
          "step_0000004" in err.split("resumed from")[1][:200], f"edited {victim}: rejected by CRC, resumed at step 4",
          err[-2500:])

# --- rotation after a fallback: keep_last 2, step 6 damaged, resume to 5 -> 4 and 5 stay, 6 stays until ----
# --- a good later step exists; then it goes ---------------------------------------------------------------
reset()
os.truncate(f"{ckpt}/step_0000006/rank_00000.h5", os.path.getsize(f"{ckpt}/step_0000006/rank_00000.h5") // 2)
rc, out, err = run(["train", "--config", cfg, "train.steps=5", "checkpoint.keep_last=2"])
check(rc == 0 and "resumed from" in err, "fallback to step 4, train to 5", err[-2000:])
check(step_dirs(ckpt) == ["step_0000004", "step_0000005", "step_0000006"],
      "rotation keeps the last good (4), the new (5) and the not yet superseded damaged one (6)", step_dirs(ckpt))
rc, out, err = run(["train", "--config", cfg, "train.steps=8", "checkpoint.keep_last=2"])
check(rc == 0 and step_dirs(ckpt) == ["step_0000006", "step_0000008"],
      "a good step 6 and 8 written: the damaged copy is gone, keep_last 2 holds", (step_dirs(ckpt), err[-2000:]))
finish()
