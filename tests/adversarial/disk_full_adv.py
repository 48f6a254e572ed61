"""A full disk (ENOSPC) while writing: checkpoint save, export, merge-lora and prepare must end in exit 1 with
"disk full (no space left on device) writing <path>", leave no half-written output (no step_N.tmp, no
<dir>.incomplete) and keep what was there (the previous checkpoint, which still loads; `latest` pointing at
it). The full disk is a small tmpfs mounted in a private user + mount namespace (`unshare -rm`, no root
needed where user namespaces are allowed); the file size limit (`prlimit --fsize`, EFBIG) is checked too,
and stands in for the tmpfs where namespaces are not allowed."""
import os
import shlex
import shutil
import subprocess

from adv_common import (BINARY, ENV, SOURCE, check, copy_tiny_base, finish, good_lora_tensors, prepare_corpus,
                        recipe, run, step_dirs, work_dir, write_adapter)

work = work_dir("disk_full")
train, evaluation = prepare_corpus(work, size=30_000)
cfg = recipe(work, train, evaluation)
FULL = "disk full (no space left on device) writing "


def namespaces_work():
    probe = os.path.join(work, "probe")
    os.makedirs(probe, exist_ok=True)
    r = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
                       capture_output=True, text=True)
    return r.returncode == 0


def on_small_disk(mount, size, commands):
    """Runs each argument list of `commands` (llama4 subcommands) with a `size`-byte tmpfs mounted at `mount`,
    inside a private namespace; returns [(rc, stdout, stderr)] and the sorted file list under `mount` as the
    namespace saw it at the end (the tmpfs vanishes with it)."""
    os.makedirs(mount, exist_ok=True)
    script = [f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(mount)} || exit 97"]
    for i, args in enumerate(commands):
        script.append(f"{shlex.join([BINARY, *args])} >{work}/out{i} 2>{work}/err{i}; echo $? >{work}/rc{i}")
    script.append(f"find {shlex.quote(mount)} -mindepth 1 | sort >{work}/listing; "
                  f"cat {shlex.quote(mount)}/ckpt/latest >{work}/latest 2>/dev/null; true")
    r = subprocess.run(["unshare", "-rm", "sh", "-c", "\n".join(script)], cwd=SOURCE, env=ENV, capture_output=True,
                       text=True, timeout=600)
    if not check(r.returncode == 0, f"tmpfs of {size} bytes mounted", r.stderr):
        return [(None, "", "")] * len(commands), []
    read = lambda name: open(os.path.join(work, name)).read()
    results = [(int(read(f"rc{i}")), read(f"out{i}"), read(f"err{i}")) for i in range(len(commands))]
    listing = [p[len(mount) + 1:] for p in read("listing").split()]
    return results, listing


# A good checkpoint (outside any small disk) to export, and an adapter to merge.
rc, out, err = run(["train", "--config", cfg, "train.steps=2", f"checkpoint.dir={work}/good/ckpt",
                    f"logging.run_dir={work}/good/run"])
check(rc == 0 and step_dirs(f"{work}/good/ckpt") == ["step_0000002"], "a checkpoint to export", err[-1500:])
good_step = f"{work}/good/ckpt/step_0000002"
checkpoint_bytes = sum(os.path.getsize(os.path.join(good_step, f)) for f in os.listdir(good_step))
base = copy_tiny_base(work, "base")
adapter = write_adapter(f"{work}/adapter", good_lora_tensors())

if namespaces_work():
    mnt = os.path.join(work, "small")
    # --- checkpoint save: room for the step-2 checkpoint, not for the step-4 one --------------------------------
    (t, ev), listing = on_small_disk(mnt, int(checkpoint_bytes * 1.6), [
        ["train", "--config", cfg, f"checkpoint.dir={mnt}/ckpt", f"logging.run_dir={work}/ckpt_run"],
        ["eval", "--config", cfg, f"checkpoint.dir={mnt}/ckpt", f"logging.run_dir={work}/ckpt_run"]])
    check(t[0] == 1 and FULL + f"{mnt}/ckpt/step_0000004.tmp/" in t[2],
          "checkpoint save on a full disk: exit 1, 'disk full ... writing <step_0000004.tmp file>'", t[:1] + t[2:])
    check("Traceback" not in t[2] and "internal error" not in t[2], "checkpoint save: a user error, not a crash",
          t[2][-1500:])
    check(not [p for p in listing if ".tmp" in p] and "ckpt/step_0000002/manifest.json" in listing,
          "checkpoint save: no step_N.tmp left, the previous checkpoint stays", listing)
    check(open(f"{work}/latest").read().strip() == "step_0000002", "checkpoint save: latest still names step 2",
          open(f"{work}/latest").read())
    check(ev[0] == 0 and "step 2  eval_loss" in ev[1], "the previous checkpoint still loads (eval)", ev)

    # --- export / merge-lora / prepare into a 256 KiB disk ---------------------------------------------------
    (ex, mg), listing = on_small_disk(mnt, 256 * 1024, [
        ["export", "--checkpoint", good_step, "--output", f"{mnt}/export"],
        ["merge-lora", "--model", base, "--adapter", adapter, "--output", f"{mnt}/merged"]])
    # The prepared corpus is small: 16 KiB hold its meta.json but not its shard.
    (pr,), listing_prepare = on_small_disk(mnt, 16 * 1024, [
        ["prepare", "--input", f"{work}/data.txt", "--output", f"{mnt}/prepared", "--tokenizer", "data/tokenizer",
         "--format", "text"]])
    listing += listing_prepare
    for (rc, out, err), name in ((ex, "export"), (mg, "merged"), (pr, "prepared")):
        check(rc == 1 and FULL + f"{mnt}/{name}" in err,
              f"{name} on a full disk: exit 1, 'disk full ... writing {mnt}/{name}...'", (rc, err[-1500:]))
    check(listing == [], "export, merge-lora and prepare leave nothing on the full disk (no .incomplete)", listing)
else:
    print("note: user namespaces are not allowed here: the full disk is checked through the file size limit "
          "only", flush=True)

# --- the file size limit (EFBIG, SIGXFSZ ignored): named as such, nothing half-written ------------------------
if shutil.which("prlimit"):
    limit = ["prlimit", f"--fsize={64 * 1024}", "--"]
    r = subprocess.run([*limit, BINARY, "export", "--checkpoint", good_step, "--output", f"{work}/export_big"],
                       cwd=SOURCE, env=ENV, capture_output=True, text=True, timeout=300)
    check(r.returncode == 1 and "file size limit exceeded" in r.stderr and f"{work}/export_big" in r.stderr,
          "export beyond the file size limit: exit 1 naming it and the file", (r.returncode, r.stderr[-1500:]))
    check(not [d for d in os.listdir(work) if d.startswith("export_big")], "export_big: nothing left behind",
          sorted(os.listdir(work)))
    # Training: above what MPI's start-up writes (PMIx segments), below the size of one checkpoint file.
    limit = ["prlimit", f"--fsize={checkpoint_bytes // 2}", "--"]
    r = subprocess.run([*limit, BINARY, "train", "--config", cfg, f"checkpoint.dir={work}/fsize/ckpt",
                        f"logging.run_dir={work}/fsize/run"], cwd=SOURCE, env=ENV, capture_output=True, text=True,
                       timeout=300)
    check(r.returncode == 1 and "file size limit exceeded" in r.stderr and f"{work}/fsize/ckpt/step_0000002.tmp/"
          in r.stderr, "checkpoint beyond the file size limit: exit 1 naming it", (r.returncode, r.stderr[-1500:]))
    left = os.listdir(f"{work}/fsize/ckpt") if os.path.isdir(f"{work}/fsize/ckpt") else ["(no checkpoint dir)"]
    check(step_dirs(f"{work}/fsize/ckpt") == [] and not [d for d in left if ".tmp" in d] and left != ["(no checkpoint dir)"],
          "checkpoint beyond the file size limit: no step directory, no .tmp left",
          sorted(left))
finish()
