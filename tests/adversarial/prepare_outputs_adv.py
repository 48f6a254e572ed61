"""prepare with its train and eval outputs in one directory would write both splits' shards over each other:
exit 1 naming both, from flags and from a recipe, before anything is written."""
import os

from adv_common import BINARY, ENV, SOURCE, check, finish, work_dir, write
import subprocess

work = work_dir("prepare")
corpus = write(os.path.join(work, "c.txt"), "In the beginning.\nAnd the earth was without form.\n" * 50)


def prepare(args):
    return subprocess.run([BINARY, "prepare", *args], cwd=SOURCE, capture_output=True, text=True, env=ENV)


out_dir = os.path.join(work, "ds")
r = prepare(["--input", corpus, "--output", out_dir, "--eval-output", out_dir + "/", "--tokenizer", "data/tokenizer",
             "--format", "text"])
check(r.returncode == 1 and out_dir in r.stderr and "same directory" in r.stderr and not os.path.exists(out_dir + "/meta.json"),
      "flags: --output and --eval-output the same directory", r.stderr)
r = prepare(["--input", corpus, "--output", out_dir, "--eval-output", f"{work}/x/../ds", "--tokenizer",
             "data/tokenizer", "--format", "text"])
check(r.returncode == 1 and "same directory" in r.stderr, "flags: the same directory spelt differently", r.stderr)
recipe = write(os.path.join(work, "r.yaml"), f"""model: {{config: configs/tiny.yaml}}
tokenizer: {{path: data/tokenizer}}
data: {{sources: [{corpus}], format: text, train: {out_dir}, eval: {out_dir}, eval_fraction: 0.1, seq_len: 64}}
""")
r = prepare(["--config", recipe])
check(r.returncode == 1 and f"'{out_dir}'" in r.stderr and "data.eval" in r.stderr, "recipe: data.train == data.eval",
      r.stderr)
r = prepare(["--input", corpus, "--output", out_dir, "--eval-output", f"{work}/ev", "--tokenizer", "data/tokenizer",
             "--format", "text"])
check(r.returncode == 0, "distinct directories still prepare", r.stderr)
finish()
