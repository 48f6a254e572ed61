"""Bad adapters and export/merge-lora outputs: adapter_config.json missing, adapter tensors of the wrong rank or
shape, an adapter for another base (names that match nothing), export into an existing non-empty directory,
export into its checkpoint directory, merge-lora into its --model directory. Each must end in exit 1 naming the
file or flag and what was expected (never exit 2, a crash or a hang), and a refused output leaves the
directory as it was. --overwrite replaces an output whole, leaving no staging or old copy behind."""
import os

from adv_common import (check, copy_tiny_base, expect_user_error, finish, good_lora_tensors, prepare_corpus, recipe,
                        run, step_dirs, work_dir, write, write_adapter)

work = work_dir("adapters_export")
base = copy_tiny_base(work, "base")


def merge(adapter, output=None, *extra):
    return ["merge-lora", "--model", base, "--adapter", adapter, "--output", output or f"{work}/merged_unused", *extra]


def generate(adapter):
    return ["generate", "--model", base, "--adapter", adapter, "--prompt", "hello", "--max-new-tokens", "2"]


good = write_adapter(f"{work}/good", good_lora_tensors())
rc, out, err = run(merge(good, f"{work}/merged"))
check(rc == 0 and os.path.exists(f"{work}/merged/model.safetensors"), "a good adapter merges", err[-1500:])

# --- adapters ---------------------------------------------------------------------------------------------------
cases = []
cases.append((write_adapter(f"{work}/no_config", good_lora_tensors(), config=False), "adapter_config.json missing",
              ["adapter_config.json"]))
wrong_rank = good_lora_tensors(rank=8)  # the files hold rank 8, adapter_config.json says r = 4
cases.append((write_adapter(f"{work}/wrong_rank", wrong_rank, rank=4), "adapter tensors of another rank than r",
              ["adapter_model.safetensors", "q_proj.lora_A", "expected [4, 64]"]))
wrong_shape = dict(good_lora_tensors(), **{"model.layers.0.self_attn.q_proj.lora_A.weight": [4, 32]})
cases.append((write_adapter(f"{work}/wrong_shape", wrong_shape), "adapter tensor of the wrong shape",
              ["adapter_model.safetensors", "q_proj.lora_A", "expected [4, 64]"]))
other_base = {k.replace("self_attn.q_proj", "attention.wq").replace("self_attn.v_proj", "attention.wv"): v
              for k, v in good_lora_tensors().items()}
cases.append((write_adapter(f"{work}/other_base", other_base, targets=("wq", "wv")), "adapter for another base",
              [f"{work}/other_base/adapter_", "wq"]))
for adapter, what, needles in cases:
    expect_user_error(merge(adapter), f"{what}: merge-lora", needles)
    expect_user_error(generate(adapter), f"{what}: generate --adapter", needles)
check(not os.path.exists(f"{work}/merged_unused") and not os.path.exists(f"{work}/merged_unused.incomplete"),
      "refused merges leave no output behind", sorted(os.listdir(work)))

# --- merge-lora outputs -----------------------------------------------------------------------------------------
expect_user_error(merge(good, base), "merge-lora --output == --model", ["--output", base, "base model directory"])
expect_user_error(merge(good, f"{base}/sub"), "merge-lora --output inside --model", ["--output", base])
stamp = write(f"{work}/merged/stamp.txt", "old output")
expect_user_error(merge(good, f"{work}/merged"), "merge-lora into a non-empty directory",
                  [f"{work}/merged", "use --overwrite to replace it"])
check(os.path.exists(stamp), "refused merge-lora leaves the old output untouched")
rc, out, err = run(merge(good, f"{work}/merged", "--overwrite"))
check(rc == 0 and not os.path.exists(stamp) and os.path.exists(f"{work}/merged/model.safetensors") and
      not {"merged.incomplete", "merged.old"} & set(os.listdir(work)),
      "merge-lora --overwrite replaces the directory whole", (rc, err[-1500:], sorted(os.listdir(work))))

# --- export outputs ---------------------------------------------------------------------------------------------
train, evaluation = prepare_corpus(work, size=30_000)
cfg = recipe(work, train, evaluation, extra="lora: {rank: 4, alpha: 8, targets: [q_proj, v_proj]}\n")
rc, out, err = run(["train", "--config", cfg, "train.steps=2"])
ckpt = f"{work}/ckpt/" + (step_dirs(f"{work}/ckpt") or ["none"])[-1]
if not check(rc == 0 and os.path.isdir(ckpt), "train 2 LoRA steps for a checkpoint", err[-1500:]):
    finish()
export = ["export", "--checkpoint", ckpt, "--output"]
expect_user_error(export + [f"{ckpt}/merged"], "export --output inside its checkpoint", ["--output", ckpt])
expect_user_error(export + [f"{ckpt}/adapter", "--peft"], "export --peft --output inside its checkpoint",
                  ["--output", ckpt])
check(sorted(os.listdir(ckpt)) == sorted(x for x in os.listdir(ckpt) if "merged" not in x and "adapter" not in x),
      "refused exports write nothing into the checkpoint", os.listdir(ckpt))
out_dir = f"{work}/exported"
os.makedirs(out_dir)
stamp = write(f"{out_dir}/notes.txt", "someone's file")
for flags, what in (([], "export"), (["--peft"], "export --peft")):
    expect_user_error(export + [out_dir, *flags], f"{what} into a non-empty directory",
                      [out_dir, "use --overwrite to replace it"])
check(os.listdir(out_dir) == ["notes.txt"] and not os.path.exists(out_dir + ".incomplete"),
      "refused exports leave the directory untouched and no staging", os.listdir(out_dir))
rc, out, err = run(export + [out_dir, "--peft", "--overwrite"])
check(rc == 0 and sorted(os.listdir(out_dir)) == ["adapter_config.json", "adapter_model.safetensors"],
      "export --peft --overwrite replaces the directory whole", (rc, err[-1500:], os.listdir(out_dir)))
rc, out, err = run(export + [out_dir, "--overwrite"])
check(rc == 0 and "model.safetensors" in os.listdir(out_dir) and "adapter_config.json" not in os.listdir(out_dir)
      and not {"exported.incomplete", "exported.old"} & set(os.listdir(work)),
      "export --overwrite of an export replaces it whole", (rc, err[-1500:], os.listdir(out_dir)))
finish()
