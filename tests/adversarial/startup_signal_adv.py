"""SIGTERM / SIGINT sent to launch/mpirun.sh while the ranks are still starting (handlers installed first
thing in main, before MPI, the model and the data): every rank must see the stop, end before the first step
with exit 0 and a clear line, and write nothing (no checkpoint, no metrics step). A run resumed from a
checkpoint and stopped during start-up keeps that checkpoint as the latest."""
import os
import signal
import subprocess
import time

from adv_common import BINARY, ENV, SOURCE, check, finish, metrics_steps, prepare_corpus, recipe, run, step_dirs, \
    work_dir

work = work_dir("startup_signal")
train, evaluation = prepare_corpus(work, size=30_000)
cfg = recipe(work, train, evaluation)
SIGUSR1_BIT = 1 << (signal.SIGUSR1 - 1)


def descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def ranks_catching_usr1(pid):
    """Rank processes (llama4) under the launcher that already catch SIGUSR1."""
    found = 0
    for child in descendants(pid):
        try:
            if os.path.basename(os.readlink(f"/proc/{child}/exe")) != os.path.basename(BINARY):
                continue
            with open(f"/proc/{child}/status") as f:
                caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
            found += bool(caught & SIGUSR1_BIT)
        except (OSError, StopIteration):
            pass
    return found


def start_then_signal(tag, sig, extra=()):
    p = subprocess.Popen([f"{SOURCE}/launch/mpirun.sh", "-n", "2", "-t", "1", "--", "train", "--config", cfg,
                          f"checkpoint.dir={work}/{tag}/ckpt", f"logging.run_dir={work}/{tag}/run", *extra],
                         cwd=SOURCE, env=dict(ENV, L4_BINARY=BINARY), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and ranks_catching_usr1(p.pid) < 2:
        time.sleep(0.005)
    seen = ranks_catching_usr1(p.pid)
    p.send_signal(sig)  # the launcher only, as a scheduler or a user would
    out, err = p.communicate(timeout=180)
    return seen, p.returncode, out, err


for i, sig in enumerate([signal.SIGTERM, signal.SIGTERM, signal.SIGINT]):
    tag = f"fresh{i}"
    seen, rc, out, err = start_then_signal(tag, sig)
    name = signal.Signals(sig).name
    check(seen == 2, f"{name} try {i + 1}: both ranks catch the stop signal early in start-up")
    check(rc == 0 and "stopped before the first step" in out and "stop requested before the first step" in err,
          f"{name} try {i + 1}: exit 0 with a clear line", (rc, out[-500:], err[-2000:]))
    check(step_dirs(f"{work}/{tag}/ckpt") == [] and metrics_steps(f"{work}/{tag}/run") == [],
          f"{name} try {i + 1}: no checkpoint and no step written", sorted(os.listdir(work)))

# Earlier still: the launcher signalled while mpirun and the ranks are only starting (before any handler
# exists). The stop must not be lost nor kill anything: exit 0, stopped before the first step or preempted
# after it with a checkpoint.
for i, delay in enumerate([0.05, 0.2, 0.5]):  # 0.05 s: the launcher's shell is itself starting
    tag = f"early{i}"
    p = subprocess.Popen([f"{SOURCE}/launch/mpirun.sh", "-n", "2", "-t", "1", "--", "train", "--config", cfg,
                          f"checkpoint.dir={work}/{tag}/ckpt", f"logging.run_dir={work}/{tag}/run",
                          "train.steps=400", "checkpoint.every=0"],
                         cwd=SOURCE, env=dict(ENV, L4_BINARY=BINARY), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(delay)
    p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    steps = step_dirs(f"{work}/{tag}/ckpt")
    ok = p.returncode == 0 and (("stopped before the first step" in out and steps == []) or
                                ("preempted at step" in out and len(steps) == 1))
    check(ok, f"SIGTERM {delay} s after the launcher started: exit 0, stopped (checkpoint {steps})",
          (p.returncode, out[-500:], err[-2000:]))

# Counts the launcher computes with (ranks, threads, the stop's waits) are refused unless whole numbers: bash
# arithmetic would read a word as 0 and never send a stop, or misplace the ranks. Nothing starts.
for flags, env, name in [(["-n", "two"], {}, "-n (ranks)"), (["-n", "0"], {}, "-n (ranks)"),
                         (["-p", "1.5"], {}, "-p (ranks per node)"), (["-t", "-1"], {}, "-t (threads per rank)"),
                         ([], {"L4_STOP_REMOTE_WAIT_S": "2.5"}, "L4_STOP_REMOTE_WAIT_S"),
                         ([], {"L4_STOP_GRACE_S": "sixty"}, "L4_STOP_GRACE_S")]:
    p = subprocess.run([f"{SOURCE}/launch/mpirun.sh", *flags, "--", "train", "--config", cfg,
                        f"logging.run_dir={work}/refused/run"], cwd=SOURCE,
                       env=dict(ENV, L4_BINARY=BINARY, **env), capture_output=True, text=True, timeout=60)
    check(p.returncode == 1 and f"{name} must be a whole number" in p.stderr and
          not os.path.exists(f"{work}/refused/run"), f"launcher refuses {flags or env}: exit 1 naming {name}",
          (p.returncode, p.stderr[-500:]))

# Resumed run stopped during start-up: its checkpoint stays the latest, untouched.
rc, out, err = run(["train", "--config", cfg, "train.stop_at_step=2", f"checkpoint.dir={work}/resumed/ckpt",
                    f"logging.run_dir={work}/resumed/run"])
check(rc == 0 and step_dirs(f"{work}/resumed/ckpt") == ["step_0000002"], "a checkpoint to resume from", err[-1500:])
manifest = f"{work}/resumed/ckpt/step_0000002/manifest.json"
before = os.stat(manifest).st_mtime_ns if os.path.exists(manifest) else None
seen, rc, out, err = start_then_signal("resumed", signal.SIGTERM)
check(rc == 0 and "stopped before the first step (step 2)" in out, "resumed run stopped in start-up: exit 0",
      (rc, out[-500:], err[-2000:]))
check(step_dirs(f"{work}/resumed/ckpt") == ["step_0000002"] and os.path.exists(manifest) and
      os.stat(manifest).st_mtime_ns == before and
      open(f"{work}/resumed/ckpt/latest").read().strip() == "step_0000002",
      "resumed run stopped in start-up: its checkpoint stays the latest, untouched",
      sorted(os.listdir(f"{work}/resumed/ckpt")))
finish()
