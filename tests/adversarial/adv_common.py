"""Shared set-up of the adversarial tests: a small prepared corpus, a tiny recipe, and runners for the CLI
(one process, or 2 ranks under mpirun) with the check() reporting of tests/e2e."""
import json
import os
import subprocess
import sys
import tempfile

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
ROOT_FLAGS = ["--allow-run-as-root"] if os.geteuid() == 0 else []
ENV = dict(os.environ, OMP_NUM_THREADS="1")
failures = []


def check(ok, what, detail=""):
    print(("ok:   " if ok else "FAIL: ") + what + ("" if ok else "\n  " + str(detail)[-3000:]), flush=True)
    if not ok:
        failures.append(what)
    return ok


def finish():
    print(f"{len(failures)} failure(s)" if failures else "all checks passed", flush=True)
    sys.exit(1 if failures else 0)


def popen(args, np=1, **kwargs):
    cmd = [BINARY, *args] if np == 1 else ["mpirun", "-np", str(np), "--oversubscribe", "--bind-to", "none",
                                           *ROOT_FLAGS, BINARY, *args]
    return subprocess.Popen(cmd, cwd=SOURCE, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)


def run(args, np=1, timeout=300):
    p = popen(args, np)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def work_dir(tag):
    return tempfile.mkdtemp(prefix=f"l4_adv_{tag}_")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def prepare_corpus(work, name="data", offset=0, size=120_000):
    """A slice of the bundled corpus prepared into <work>/<name>/{train,eval}; returns (train, eval)."""
    corpus = os.path.join(work, f"{name}.txt")
    with open(os.path.join(SOURCE, "data/corpus/web_bible_en.txt"), "rb") as f:
        f.seek(offset)
        data = f.read(size)
    with open(corpus, "wb") as f:
        f.write(data[data.find(b"\n") + 1: data.rfind(b"\n") + 1])
    train, evaluation = os.path.join(work, name, "train"), os.path.join(work, name, "eval")
    r = subprocess.run([BINARY, "prepare", "--input", corpus, "--output", train, "--eval-output", evaluation,
                        "--eval-fraction", "0.1", "--tokenizer", "data/tokenizer", "--format", "text"],
                       cwd=SOURCE, capture_output=True, text=True, env=ENV)
    if not check(r.returncode == 0, f"prepare {name}", r.stderr):
        finish()
    return train, evaluation


def recipe(work, train, evaluation, name="recipe.yaml", extra=""):
    """The tiny model (full training), seq_len 64: a step takes well under a second on one core."""
    return write(os.path.join(work, name), f"""model: {{config: configs/tiny.yaml}}
tokenizer: {{path: data/tokenizer}}
data: {{train: {train}, eval: {evaluation}, seq_len: 64}}
optimizer: {{lr: 1.0e-3}}
train: {{steps: 4, global_batch: 4, micro_batch: 2, eval_batches: 1}}
checkpoint: {{dir: {work}/ckpt, every: 2, keep_last: 3}}
logging: {{run_dir: {work}/run, peak_tflops: 0.3}}
{extra}""")


def metrics_steps(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    return [json.loads(line)["step"] for line in open(path) if '"loss"' in line]


def step_dirs(ckpt):
    return sorted(d for d in os.listdir(ckpt) if d.startswith("step_") and not d.endswith(".tmp")) \
        if os.path.isdir(ckpt) else []


def expect_user_error(args, what, needles, timeout=120):
    """The CLI must end in exit 1 with a message naming each of `needles` (file, flag, key, what was expected):
    never exit 2 (internal error), a signal (crash) or a hang."""
    try:
        rc, out, err = run(args, timeout=timeout)
    except subprocess.TimeoutExpired:
        return check(False, what + ": exit 1", "hung (no exit within the timeout)")
    missing = [n for n in needles if n not in err]
    return check(rc == 1 and not missing, what + ": exit 1 naming " + ", ".join(needles),
                 f"rc {rc}, missing {missing}: {err[-1500:]}")


# --- safetensors and HF model directories written by hand (no torch import: the tests stay fast) -------------
def read_safetensors(path):
    """(header dict, data bytes) of a safetensors file."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n)), f.read()


def write_safetensors(path, header, data):
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + data)
    return path


def float_tensors(tensors):
    """{name: shape} -> (header, data) of float32 zeros-with-a-ramp (values do not matter to these tests)."""
    import struct
    header, data = {}, b""
    for name, shape in tensors.items():
        count = 1
        for d in shape:
            count *= d
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [len(data), len(data) + 4 * count]}
        data += struct.pack(f"<{count}f", *[0.01 * (i % 7) for i in range(count)])
    return header, data


def copy_tiny_base(work, name):
    """A copy of the bundled tiny base model (HF directory) to damage."""
    import shutil
    dst = os.path.join(work, name)
    shutil.copytree(os.path.join(SOURCE, "data/models/tiny-base"), dst)
    return dst


def edit_config(model_dir, edit):
    path = os.path.join(model_dir, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    edit(cfg)
    write(path, json.dumps(cfg, indent=1))


def write_adapter(directory, tensors, rank=4, targets=("q_proj", "v_proj"), config=True):
    """A PEFT LoRA adapter directory: adapter_config.json (unless config=False) and adapter_model.safetensors
    holding `tensors` ({name without the base_model.model. prefix: shape})."""
    os.makedirs(directory, exist_ok=True)
    if config:
        write(os.path.join(directory, "adapter_config.json"), json.dumps(
            {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": list(targets),
             "lora_dropout": 0.0, "bias": "none", "task_type": "CAUSAL_LM"}))
    header, data = float_tensors({"base_model.model." + k: v for k, v in tensors.items()})
    write_safetensors(os.path.join(directory, "adapter_model.safetensors"), header, data)
    return directory


def good_lora_tensors(rank=4):
    """LoRA A/B for q_proj [64, 64] and v_proj [32, 64] of layer 0 of the tiny base."""
    return {"model.layers.0.self_attn.q_proj.lora_A.weight": [rank, 64],
            "model.layers.0.self_attn.q_proj.lora_B.weight": [64, rank],
            "model.layers.0.self_attn.v_proj.lora_A.weight": [rank, 64],
            "model.layers.0.self_attn.v_proj.lora_B.weight": [32, rank]}
