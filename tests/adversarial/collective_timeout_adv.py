"""A rank stuck outside the collectives (L4_TEST_STALL makes one sleep before a step) while its peer waits in
the step's first collective: the job must end (no hang) and the rank that times out must print, before the
job ends, which collective timed out, which ranks did not arrive (and where they are), and the timeout key
parallel.timeout_s. Both directions: rank 1 stuck (rank 0 reports) and rank 0 stuck (rank 1 reports)."""
import subprocess

from adv_common import BINARY, ENV, ROOT_FLAGS, SOURCE, check, finish, prepare_corpus, recipe, work_dir

work = work_dir("collective_timeout")
train, evaluation = prepare_corpus(work, size=30_000)
cfg = recipe(work, train, evaluation, extra="parallel: {timeout_s: 3}\n")

for stuck, reporter in ((1, 0), (0, 1)):
    tag = f"{work}/stuck{stuck}"
    env = dict(ENV, L4_TEST_STALL=f"{stuck}:2:1000")  # far longer than the test waits
    p = subprocess.Popen(["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none", *ROOT_FLAGS,
                          BINARY, "train", "--config", cfg, f"checkpoint.dir={tag}/ckpt",
                          f"logging.run_dir={tag}/run"], cwd=SOURCE, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        check(False, f"rank {stuck} stuck: the job ends", "hung: " + err[-2000:])
        continue
    check(p.returncode not in (0, None), f"rank {stuck} stuck: the job ends with a failure exit code",
          (p.returncode, err[-1500:]))
    lines = [line for line in err.splitlines() if f"llama4: rank {reporter}: collective " in line]
    check(len(lines) >= 1, f"rank {stuck} stuck: rank {reporter} prints the timeout before the job ends",
          err[-3000:])
    line = lines[0] if lines else ""
    for needle, what in ((" #", "the collective's number"), ("on communicator 'world'", "the communicator"),
                         ("did not complete within 3 s (parallel.timeout_s)", "the timeout and its key"),
                         (f"ranks that did not arrive: {stuck} (running outside any collective", "the stuck rank"),
                         ("aborting all ranks", "what happens next")):
        check(needle in line, f"rank {stuck} stuck: the message names {what}", line or err[-2000:])
    check(f"llama4: rank {stuck}: collective " not in err, f"rank {stuck} stuck: the stuck rank reports nothing",
          err[-2000:])
finish()
