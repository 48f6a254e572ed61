"""Recipe values that used to be accepted or silently resolved: a key given twice (yaml-cpp keeps the first),
infinite or NaN numbers, data.prefetch 0, and data.seq_len beyond the model's max_position_embeddings. Each
exits 1 naming file:line and the key."""
import os

from adv_common import check, finish, recipe, run, work_dir, write

work = work_dir("recipe")
base = open(recipe(work, f"{work}/train", f"{work}/eval")).read()


def refused(name, text, expected, what):
    path = write(os.path.join(work, name), text)
    rc, out, err = run(["train", "--config", path, "--print-config"])
    check(rc == 1 and all(e.format(path=path) in err for e in expected), what, (rc, err))


refused("dup_top.yaml", base + "optimizer: {lr: 5.0e-3}\n",
        ["{path}:8: optimizer: duplicate key (first set at {path}:4)"], "a top-level section given twice")
refused("dup_nested.yaml", base.replace("optimizer: {lr: 1.0e-3}", "optimizer:\n  lr: 1.0e-3\n  weight_decay: 0.1\n  lr: 3.0e-3"),
        ["{path}:7: optimizer.lr: duplicate key (first set at {path}:5)"], "a nested key given twice")
refused("inf.yaml", base.replace("lr: 1.0e-3", "lr: .inf"),
        ["{path}:4: optimizer.lr: expected a finite number, got '.inf'"], "optimizer.lr: .inf")
refused("nan.yaml", base.replace("lr: 1.0e-3", "lr: nan"),
        ["{path}:4: optimizer.lr: expected a finite number, got 'nan'"], "optimizer.lr: nan")
refused("betas_inf.yaml", base.replace("lr: 1.0e-3", "lr: 1.0e-3, betas: [0.9, inf]"),
        ["optimizer.betas: expected a list of numbers, got 'inf' in it"], "an infinite value inside a list")
refused("prefetch.yaml", base.replace("seq_len: 64", "seq_len: 64, prefetch: 0"),
        ["{path}:3: data.prefetch: must be >= 1, got 0"], "data.prefetch: 0")
refused("seq_len.yaml", base.replace("seq_len: 64", "seq_len: 8192"),
        ["{path}:3: data.seq_len: must be <= the model's max_position_embeddings=4096, got 8192"],
        "data.seq_len beyond max_position_embeddings")
rc, out, err = run(["train", "--config", os.path.join(work, "recipe.yaml"), "--print-config", "optimizer.lr=.inf"])
check(rc == 1 and "optimizer.lr: expected a finite number" in err, "a non-finite command-line override", err)
rc, out, err = run(["train", "--config", os.path.join(work, "recipe.yaml"), "--print-config"])
check(rc == 0 and "resume_mode: strict" in out, "the unchanged recipe is accepted (resume_mode strict by default)", err)
finish()
