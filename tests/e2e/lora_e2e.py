"""LoRA fine-tuning through the CLI on a tiny random HF base model:
  * `llama4 train` with lora.rank > 0 stops at step 3 (train.stop_at_step) and resumes to step 6; its final
    adapter equals that of an uninterrupted run (bitwise), and checkpoints hold only LoRA tensors and their
    optimizer state, never a base weight;
  * `llama4 export --peft` loads in peft==0.21.0, `llama4 export` (merged) in transformers, with equal logits;
  * `llama4 generate` (greedy) answers the same with --adapter as from the merged model;
  * on a sharded bf16 base, `llama4 export` writes bf16 HF shards with an index, untouched tensors bytewise,
    the others PEFT's fp32 merge rounded to bf16, and refuses an output inside the base directory;
  * a full fine-tuning run on that base exports streamed from its checkpoint, bytewise equal to the export that
    builds the model whole (--in-memory)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
TOKENIZER_DIR = os.path.join(SOURCE, "data", "tokenizer")
failures = []


def run(*args, cwd):
    r = subprocess.run([BINARY, *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
    return r


def check(condition, what):
    print(("ok:   " if condition else "FAIL: ") + what)
    if not condition:
        failures.append(what)


def make_base(path):
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    torch.manual_seed(0)
    cfg = Llama4TextConfig(vocab_size=10240, hidden_size=32, intermediate_size=32, intermediate_size_mlp=64,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                           num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2,
                           attention_chunk_size=8, no_rope_layers=[1, 0], floor_scale=8,
                           bos_token_id=8192, eos_token_id=[8193, 8199, 8200], pad_token_id=8210,
                           max_position_embeddings=256, tie_word_embeddings=False)
    model = Llama4ForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "experts" in name:
                p.normal_(0.0, 0.02)
    model.save_pretrained(path, safe_serialization=True)
    for f in os.listdir(TOKENIZER_DIR):
        shutil.copy(os.path.join(TOKENIZER_DIR, f), path)


def recipe(tmp, name, data):
    text = f"""
model: {{hf_dir: {tmp}/base}}
tokenizer: {{path: {TOKENIZER_DIR}/tokenizer.json}}
data: {{train: {data}, seq_len: 32}}
lora: {{rank: 4, alpha: 8, targets: [q_proj, v_proj, o_proj, shared_expert, experts]}}
optimizer: {{lr: 1.0e-2}}
train: {{steps: 6, global_batch: 2, micro_batch: 2, eval_batches: 1}}
checkpoint: {{dir: {tmp}/{name}/ckpt, every: 0}}
logging: {{run_dir: {tmp}/{name}/run, tensorboard: false, peak_tflops: 1.0}}
"""
    path = os.path.join(tmp, name + ".yaml")
    open(path, "w").write(text)
    return path


def latest(tmp, name):
    ckpt = os.path.join(tmp, name, "ckpt")
    return os.path.join(ckpt, open(os.path.join(ckpt, "latest")).read().strip())


def read_ckpt_tensors(step_dir):
    import h5py

    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]
        # returning None keeps visititems going

    for f in sorted(os.listdir(step_dir)):
        if f.endswith(".h5"):
            with h5py.File(os.path.join(step_dir, f), "r") as h:
                h.visititems(visit)
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="l4_lora_e2e_")
    try:
        make_base(os.path.join(tmp, "base"))
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w") as f:
            for i in range(200):
                f.write(f"The capital of region {i % 17} is city {i % 13}. Rivers flow north in spring.\n")
        data = os.path.join(tmp, "data")
        r = run("prepare", "--input", corpus, "--format", "text", "--output", data, "--tokenizer",
                os.path.join(TOKENIZER_DIR, "tokenizer.json"), cwd=tmp)
        check(r.returncode == 0, "prepare the corpus")

        straight = recipe(tmp, "straight", data)
        check(run("train", "--config", straight, cwd=tmp).returncode == 0, "uninterrupted LoRA run")
        resumed = recipe(tmp, "resumed", data)
        r = run("train", "--config", resumed, "train.stop_at_step=3", cwd=tmp)
        check(r.returncode == 0 and latest(tmp, "resumed").endswith("3"), "LoRA run stops at step 3")
        names = json.load(open(os.path.join(latest(tmp, "resumed"), "manifest.json")))["tensors"]
        names = list(names.keys()) if isinstance(names, dict) else [t["name"] for t in names]
        check(len(names) > 0 and all("lora" in n for n in names),
              f"checkpoint holds only LoRA tensors and their optimizer state ({len(names)} entries)")
        check(any(n.startswith("optimizer.exp_avg.") for n in names), "optimizer state is saved for LoRA tensors")
        check(run("train", "--config", resumed, cwd=tmp).returncode == 0, "LoRA run resumes to the end")
        a, b = read_ckpt_tensors(latest(tmp, "straight")), read_ckpt_tensors(latest(tmp, "resumed"))
        same = len(a) > 1 and set(a) == set(b) and all((a[k] == b[k]).all() for k in a)
        check(same, f"resumed adapter equals the uninterrupted one bitwise ({len(a)} datasets)")
        r = run("train", "--config", recipe(tmp, "bf16base", data), "lora.base_dtype=bfloat16", "train.steps=2",
                cwd=tmp)
        check(r.returncode == 0, "LoRA run with the frozen base held in bf16")

        adapter, merged = os.path.join(tmp, "adapter"), os.path.join(tmp, "merged")
        check(run("export", "--checkpoint", os.path.join(tmp, "resumed", "ckpt"), "--output", adapter, "--peft",
                  cwd=tmp).returncode == 0, "export --peft")
        # The merge goes through an adapter in a scratch directory beside the output: a user's directory of the
        # name the scratch could have is left alone, and nothing of the scratch remains.
        os.makedirs(merged + ".adapter")
        open(os.path.join(merged + ".adapter", "keep.txt"), "w").write("mine")
        check(run("export", "--checkpoint", latest(tmp, "resumed"), "--output", merged, cwd=tmp).returncode == 0,
              "export merged model")
        check(os.path.exists(os.path.join(merged + ".adapter", "keep.txt")) and
              not [n for n in os.listdir(tmp) if n.startswith("merged.adapter.")],
              "merged export leaves a directory named like its scratch alone and removes the scratch")
        from peft import PeftModel
        from transformers import Llama4ForCausalLM

        ids = torch.randint(0, 8000, (1, 20), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            base = Llama4ForCausalLM.from_pretrained(os.path.join(tmp, "base")).eval()
            plain = base(input_ids=ids).logits
            peft_logits = PeftModel.from_pretrained(base, adapter).eval()(input_ids=ids).logits
            merged_logits = Llama4ForCausalLM.from_pretrained(merged).eval()(input_ids=ids).logits
        d = (peft_logits - merged_logits).abs().max().item()
        effect = (peft_logits - plain).abs().max().item()
        print(f"peft vs merged max-abs {d:.3e}, adapter effect {effect:.3e}")
        check(d <= 1e-4 and effect > 1e-4, "PEFT(base, exported adapter) equals the exported merged model")

        g1 = run("generate", "--model", merged, "--prompt", "Where do rivers flow?", "--max-tokens", "12", cwd=tmp)
        g2 = run("generate", "--model", os.path.join(tmp, "base"), "--adapter", adapter, "--prompt",
                 "Where do rivers flow?", "--max-tokens", "12", cwd=tmp)
        check(g1.returncode == 0 and g1.stdout == g2.stdout, f"generate: merged == base + adapter ({g1.stdout!r})")
        g3 = run("generate", "--model", merged, "--prompt", "x", "--image", "a.png", cwd=tmp)
        check(g3.returncode == 1 and merged in g3.stderr and "vision_config" in g3.stderr,
              "generate --image on a text-only model: exit 1 naming the model directory")

        # A bf16 base in shards: the merged export keeps bf16, is sharded as transformers does, leaves
        # untouched tensors byte for byte and holds PEFT's fp32 merge rounded to bf16.
        bf16_base = os.path.join(tmp, "base_bf16")
        Llama4ForCausalLM.from_pretrained(os.path.join(tmp, "base")).to(torch.bfloat16).save_pretrained(
            bf16_base, max_shard_size="200KB")
        r = run("train", "--config", recipe(tmp, "bf16shards", data), f"model.hf_dir={bf16_base}",
                "train.steps=2", cwd=tmp)
        check(r.returncode == 0, "LoRA run on a sharded bf16 base")
        bf16_adapter, bf16_merged = os.path.join(tmp, "bf16_adapter"), os.path.join(tmp, "bf16_merged")
        check(run("export", "--checkpoint", latest(tmp, "bf16shards"), "--output", bf16_adapter, "--peft",
                  cwd=tmp).returncode == 0, "export --peft (bf16 base)")
        r = run("export", "--checkpoint", latest(tmp, "bf16shards"), "--output", bf16_merged,
                "--max-shard-size", "500KB", cwd=tmp)
        check(r.returncode == 0, "export merged model of a bf16 base")
        r = run("export", "--checkpoint", latest(tmp, "bf16shards"), "--output", os.path.join(bf16_base, "out"),
                cwd=tmp)
        check(r.returncode == 1 and bf16_base in r.stderr and "inside" in r.stderr,
              "export into the base directory is refused, naming it")
        from safetensors.torch import load_file

        def tensors_of(directory):
            out = {}
            for f in sorted(os.listdir(directory)):
                if f.endswith(".safetensors"):
                    out.update({k: (v, f) for k, v in load_file(os.path.join(directory, f)).items()})
            return out

        ours, base_t = tensors_of(bf16_merged), tensors_of(bf16_base)
        index = json.load(open(os.path.join(bf16_merged, "model.safetensors.index.json")))
        check(len({f for _, f in ours.values()}) > 1 and index["weight_map"] == {k: f for k, (_, f) in ours.items()}
              and index["metadata"]["total_size"] == sum(t.numel() * 2 for t, _ in ours.values()),
              "bf16 export: several shards, an index naming each tensor's shard and the total size")
        check(set(ours) == set(base_t) and all(t.dtype == torch.bfloat16 for t, _ in ours.values()),
              "bf16 export: the base's tensors, every one bf16")
        reference = PeftModel.from_pretrained(Llama4ForCausalLM.from_pretrained(bf16_base, dtype=torch.float32),
                                              bf16_adapter).merge_and_unload().state_dict()
        moved = max((reference[k] - base_t[k][0].float()).abs().max().item() for k in ours)
        worst = 0.0
        for k, (t, _) in ours.items():
            ref = reference[k]
            if torch.equal(ref, base_t[k][0].float()):
                check(torch.equal(t, base_t[k][0]), f"bf16 export: untouched {k} is bytewise the base's")
            # One bf16 rounding of the fp32 merge (2**-8 relative), with room for the fp32 order of operations.
            excess = ((t.float() - ref).abs() - ref.abs() * 2 ** -8 - 1e-7).max().item()
            worst = max(worst, excess)
        print(f"bf16 export: LoRA moves weights by up to {moved:.3e}; worst excess over bf16 rounding {worst:.3e}")
        check(moved > 1e-2 and worst <= 0, "bf16 export: merged weights are PEFT's fp32 merge rounded to bf16")
        g4 = run("generate", "--model", bf16_merged, "--tokenizer", TOKENIZER_DIR, "--prompt", "Where do rivers flow?",
                 "--max-tokens", "4", "--dtype", "bfloat16", cwd=tmp)
        check(g4.returncode == 0, "generate --dtype bfloat16 on the bf16 export")

        # Full fine-tuning from the sharded bf16 base: export streams each trained tensor from the checkpoint
        # into the base's layout and dtype; building the model whole (--in-memory) gives the same bytes.
        r = run("train", "--config", recipe(tmp, "full", data), f"model.hf_dir={bf16_base}", "lora.rank=0",
                "train.steps=2", cwd=tmp)
        check(r.returncode == 0, "full fine-tuning run on a sharded bf16 base")
        streamed, in_memory = os.path.join(tmp, "full_streamed"), os.path.join(tmp, "full_in_memory")
        r1 = run("export", "--checkpoint", latest(tmp, "full"), "--output", streamed, "--max-shard-size", "500KB",
                 cwd=tmp)
        r2 = run("export", "--checkpoint", latest(tmp, "full"), "--output", in_memory, "--in-memory", cwd=tmp)
        check(r1.returncode == 0 and r2.returncode == 0 and "from " + latest(tmp, "full") in r1.stderr,
              "full fine-tuning export, streamed from the checkpoint and built in memory")
        a, b = tensors_of(streamed), tensors_of(in_memory)
        changed = [k for k in a if k in base_t and not torch.equal(a[k][0], base_t[k][0])]
        check(set(a) == set(b) == set(base_t) and all(torch.equal(a[k][0], b[k][0]) for k in a),
              "streamed full fine-tuning export equals the in-memory one bytewise, in the base's names and dtypes")
        check(len(changed) >= len(base_t) // 2,
              f"the export carries the trained weights ({len(changed)} of {len(base_t)} tensors differ from the base)")
        with torch.no_grad():
            full_logits = Llama4ForCausalLM.from_pretrained(streamed).eval()(input_ids=ids).logits
        check(torch.isfinite(full_logits).all().item(), "transformers loads the streamed full fine-tuning export")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("FAILED:\n  " + "\n  ".join(failures) if failures else "all ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
