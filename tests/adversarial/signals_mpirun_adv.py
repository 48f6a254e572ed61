"""SIGTERM (and SIGINT) sent to launch/mpirun.sh on 2 ranks, at random steps: each try must end with exit 0
and a checkpoint that loads (llama4 eval reads every tensor of it). Open MPI alone kills the ranks soon after
forwarding SIGTERM; the launcher turns both into SIGUSR1, which the ranks' handler answers with a checkpoint."""
import os
import random
import signal
import subprocess
import time

from adv_common import BINARY, ENV, SOURCE, check, finish, metrics_steps, prepare_corpus, recipe, run, step_dirs, work_dir

TRIES = int(os.environ.get("L4_ADV_SIGNAL_TRIES", "10"))
work = work_dir("signals")
train, evaluation = prepare_corpus(work)
cfg = recipe(work, train, evaluation)
rng = random.Random(7)
passed = {signal.SIGTERM: 0, signal.SIGINT: 0}
tries = [signal.SIGTERM] * TRIES + [signal.SIGINT]
for i, sig in enumerate(tries):
    tag = f"{work}/t{i}"
    target = rng.randint(1, 6)
    p = subprocess.Popen([f"{SOURCE}/launch/mpirun.sh", "-n", "2", "-t", "1", "--", "train", "--config", cfg,
                          f"checkpoint.dir={tag}/ckpt", f"logging.run_dir={tag}/run", "train.steps=400",
                          "checkpoint.every=0"], cwd=SOURCE, env=dict(ENV, L4_BINARY=BINARY),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(metrics_steps(f"{tag}/run")) < target and p.poll() is None:
        time.sleep(0.05)
    time.sleep(rng.random() * 0.3)  # anywhere inside a step
    p.send_signal(sig)  # the launcher only, as a scheduler or a user would
    out, err = p.communicate(timeout=180)
    steps = step_dirs(f"{tag}/ckpt")
    ok = p.returncode == 0 and "preempted at step" in out and len(steps) == 1
    if ok:
        r = subprocess.run([BINARY, "eval", "--config", cfg, f"checkpoint.dir={tag}/ckpt", f"logging.run_dir={tag}/run"],
                           cwd=SOURCE, capture_output=True, text=True, env=ENV)
        ok = r.returncode == 0 and f"step {int(steps[0][5:])}  eval_loss" in r.stdout
        err += r.stderr
    passed[sig] += ok
    check(ok, f"{signal.Signals(sig).name} try {i + 1} after step >= {target}: exit 0, checkpoint {steps} loads",
          (p.returncode, out[-500:], err[-2000:]))
print(f"SIGTERM: {passed[signal.SIGTERM]}/{TRIES} tries exit 0 with a loadable checkpoint; "
      f"SIGINT: {passed[signal.SIGINT]}/1", flush=True)
finish()
