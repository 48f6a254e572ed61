"""Sizes that cannot fit the machine's memory are refused before anything is allocated: train (one rank and
two under mpirun), generate and forward end in exit 1 naming the keys that drive the size and the bytes
needed vs available, within a small peak RSS (the model was never built); the overrides
(train.skip_memory_check, L4_SKIP_MEMORY_CHECK) start the same run anyway, and a normal run is not refused."""
import os
import resource
import subprocess

from adv_common import (BINARY, ENV, SOURCE, check, copy_tiny_base, edit_config, expect_user_error, finish,
                        metrics_steps, prepare_corpus, recipe, run, work_dir, write_safetensors)

work = work_dir("memory")
train, evaluation = prepare_corpus(work)
cfg = recipe(work, train, evaluation)
SMALL_RSS_KIB = 1536 * 1024  # LibTorch loaded, nothing built: far below any refused size


def peak_child_rss_kib():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def refused(args, what, needles, env=None, np=1):
    """exit 1 naming `needles`, no hang, small peak RSS, and no run directory made."""
    run_dir = f"{work}/{what.replace(' ', '_')}/run"
    full = [*args, f"logging.run_dir={run_dir}", f"checkpoint.dir={work}/{what.replace(' ', '_')}/ckpt"] \
        if args[0] == "train" else args
    if env is None and np == 1:
        ok = expect_user_error(full, what, needles)
    else:
        cmd = [BINARY, *full] if np == 1 else ["mpirun", "-np", str(np), "--oversubscribe", "--bind-to", "none",
                                               *(["--allow-run-as-root"] if os.geteuid() == 0 else []),
                                               BINARY, *full]
        try:
            r = subprocess.run(cmd, cwd=SOURCE, env=dict(ENV, **(env or {})), capture_output=True, text=True,
                               timeout=180)
            missing = [n for n in needles if n not in r.stderr]
            ok = check(r.returncode == 1 and not missing, what + ": exit 1 naming " + ", ".join(needles),
                       f"rc {r.returncode}, missing {missing}: {r.stderr[-1500:]}")
        except subprocess.TimeoutExpired:
            ok = check(False, what + ": exit 1", "hung")
    rss = peak_child_rss_kib()
    check(rss < SMALL_RSS_KIB, f"{what}: refused before allocating (peak child RSS {rss // 1024} MiB)")
    if args[0] == "train":
        check(not os.path.exists(run_dir), f"{what}: no run directory made", run_dir)
    return ok


# --- train: activations of micro_batch x seq_len, on the tiny model (seq_len within max_position_embeddings)
refused(["train", "--config", cfg, "train.micro_batch=400000", "train.global_batch=400000"],
        "train huge micro_batch", ["train.micro_batch x data.seq_len", "400000 x 64", "bytes)",
                                   "train.skip_memory_check: true"])
refused(["train", "--config", cfg, "data.seq_len=4096", "train.micro_batch=2048", "train.global_batch=2048"],
        "train huge seq_len", ["train.micro_batch x data.seq_len", "2048 x 4096", "bytes)", "MemAvailable"])
refused(["train", "--config", cfg, "data.prefetch=1000000000000"], "train huge data.prefetch",
        ["data.prefetch", "1000000000000 steps kept ready", "bytes)"])
refused(["train", "--config", cfg, "train.micro_batch=400000", "train.global_batch=800000"],
        "train huge micro_batch on 2 ranks", ["train.micro_batch x data.seq_len", "x 2 rank(s) on this machine"],
        np=2)
# A budget smaller than the machine (L4_MEMORY_LIMIT_BYTES): the model itself is what does not fit.
refused(["train", "--config", cfg], "train under a 20 MB budget",
        ["the model size, model.config (hidden_size 64", "L4_MEMORY_LIMIT_BYTES", "(20000000 bytes)"],
        env={"L4_MEMORY_LIMIT_BYTES": "20000000"})

# --- loading a model: generate / forward on an HF directory whose config.json is enormous
huge = copy_tiny_base(work, "huge")
edit_config(huge, lambda c: (c["text_config"] if "text_config" in c else c).update(vocab_size=4_000_000_000))
refused(["generate", "--model", huge, "--prompt", "hi", "--max-new-tokens", "2"], "generate huge config.json",
        [f"{huge}/config.json", "vocab_size 4000000000", "bytes)", "L4_SKIP_MEMORY_CHECK=1"])
ids = os.path.join(work, "ids.safetensors")
write_safetensors(ids, {"input_ids": {"dtype": "I64", "shape": [1, 2], "data_offsets": [0, 16]}},
                  (1).to_bytes(8, "little") + (2).to_bytes(8, "little"))
refused(["forward", "--model", huge, "--input", ids, "--output", f"{work}/logits.safetensors"],
        "forward huge config.json", [f"{huge}/config.json", "vocab_size 4000000000", "bytes)"])
check(not os.path.exists(f"{work}/logits.safetensors"), "forward refused: no output written")
refused(["generate", "--config", cfg, "--prompt", "hi", "--max-new-tokens", "2"], "generate --config, 1 MB budget",
        [cfg, "the model size", "train.skip_memory_check: true"], env={"L4_MEMORY_LIMIT_BYTES": "1000000"})
tiny = os.path.join(SOURCE, "data/models/tiny-base")
refused(["generate", "--model", tiny, "--prompt", "hi", "--max-new-tokens", "2"], "generate --model, 1 MB budget",
        [f"{tiny}/config.json", "(1000000 bytes)"], env={"L4_MEMORY_LIMIT_BYTES": "1000000"})
r = subprocess.run([BINARY, "generate", "--model", tiny, "--prompt", "hi", "--max-new-tokens", "2"], cwd=SOURCE,
                   env=dict(ENV, L4_MEMORY_LIMIT_BYTES="1000000", L4_SKIP_MEMORY_CHECK="1"), capture_output=True,
                   text=True, timeout=120)
check(r.returncode == 0, "L4_SKIP_MEMORY_CHECK=1 loads the same model under the 1 MB budget", r.stderr[-1500:])

# Last (their peak RSS is a real run's): the overrides start the same runs; a normal run is not refused.
r = subprocess.run([BINARY, "train", "--config", cfg, "train.skip_memory_check=true", "train.steps=2",
                    f"logging.run_dir={work}/skip/run", f"checkpoint.dir={work}/skip/ckpt"], cwd=SOURCE,
                   env=dict(ENV, L4_MEMORY_LIMIT_BYTES="20000000"), capture_output=True, text=True, timeout=300)
check(r.returncode == 0 and metrics_steps(f"{work}/skip/run") == [1, 2],
      "train.skip_memory_check: true trains under the same 20 MB budget", r.stderr[-1500:])
r = subprocess.run([BINARY, "train", "--config", cfg, "train.steps=2", f"logging.run_dir={work}/normal/run",
                    f"checkpoint.dir={work}/normal/ckpt"], cwd=SOURCE, env=ENV, capture_output=True, text=True,
                   timeout=300)
check(r.returncode == 0 and metrics_steps(f"{work}/normal/run") == [1, 2], "the normal recipe is not refused",
      r.stderr[-1500:])

finish()
