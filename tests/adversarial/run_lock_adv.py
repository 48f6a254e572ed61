"""Two runs into one run directory: the second exits 1 naming the holder (host, pid) while the first keeps
going; the lock is released at exit; a stale lock (dead pid on this host) is taken over with a warning; under
mpirun rank 0 decides for every rank."""
import os
import signal
import socket
import subprocess
import time

from adv_common import check, finish, metrics_steps, popen, prepare_corpus, recipe, run, work_dir

work = work_dir("lock")
train, evaluation = prepare_corpus(work)
cfg = recipe(work, train, evaluation)
lock = f"{work}/run/.llama4.lock"

first = popen(["train", "--config", cfg, "train.steps=400", "checkpoint.every=0"], np=2)
deadline = time.time() + 120
while time.time() < deadline and len(metrics_steps(f"{work}/run")) < 2:
    time.sleep(0.2)
holder = open(lock).read().split() if os.path.exists(lock) else []
check(len(holder) == 2 and holder[0] == socket.gethostname(), "the running job holds run_dir/.llama4.lock (host pid)",
      holder)
for np in (1, 2):
    rc, out, err = run(["train", "--config", cfg, "train.steps=400"], np=np)
    check(rc == 1 and "in use by another training run" in err and holder and f"pid {holder[1]}" in err
          and socket.gethostname() in err, f"a second run on {np} rank(s) into the same run_dir exits 1 naming the holder",
          (rc, err[-1500:]))
rc, out, err = run(["train", "--config", cfg, "train.steps=400", f"logging.run_dir={work}/other_run"])
check(rc == 1 and f"{work}/ckpt: the directory is in use" in err, "the same checkpoint.dir alone is refused too", err[-1500:])
steps = metrics_steps(f"{work}/run")
check(first.poll() is None and steps == list(range(1, len(steps) + 1)),
      "the first run goes on, its metrics.jsonl is not interleaved", steps)
first.send_signal(signal.SIGUSR1)  # mpirun forwards it to the ranks
first.communicate(timeout=120)
check(first.returncode == 0 and not os.path.exists(lock) and not os.path.exists(f"{work}/ckpt/.llama4.lock"),
      "the locks are released when the run ends", first.returncode)

# a stale lock: a pid that has exited, on this host
dead = subprocess.Popen(["true"])
dead.wait()
os.makedirs(f"{work}/run", exist_ok=True)
with open(lock, "w") as f:
    f.write(f"{socket.gethostname()} {dead.pid}\n")
rc, out, err = run(["train", "--config", cfg, "train.steps=2", "checkpoint.resume=none", f"checkpoint.dir={work}/c2"])
check(rc == 0 and "stale run lock" in err and f"pid {dead.pid}" in err and not os.path.exists(lock),
      "a stale lock is taken over with a warning", (rc, err[-1500:]))
# a lock of another host cannot be checked: refused
with open(lock, "w") as f:
    f.write("some-other-host 1\n")
rc, out, err = run(["train", "--config", cfg, "train.steps=2", "checkpoint.resume=none", f"checkpoint.dir={work}/c3"])
check(rc == 1 and "host some-other-host" in err and os.path.exists(lock), "a lock held on another host is refused", err[-1500:])
finish()
