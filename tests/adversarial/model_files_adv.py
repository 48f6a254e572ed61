"""Damaged HF model directories through every command that reads one (generate, forward, merge-lora --model):
a truncated shard, a tensor whose shape disagrees with config.json, an index naming a missing shard, and
config.json with a missing or an invalid field. Each must end in exit 1 naming the file (and the tensor or
key) and what was expected: never exit 2, a crash or a hang."""
import json
import os

from adv_common import (check, copy_tiny_base, edit_config, expect_user_error, finish, float_tensors,
                        good_lora_tensors, read_safetensors, run, work_dir, write, write_adapter, write_safetensors)

work = work_dir("model_files")
WEIGHTS = "model.safetensors"
forward_input = write_safetensors(f"{work}/input.safetensors",  # input_ids int64 [1, 4] = 0, 1, 2, 3
                                  {"input_ids": {"dtype": "I64", "shape": [1, 4], "data_offsets": [0, 32]}},
                                  b"".join(i.to_bytes(8, "little") for i in range(4)))
adapter = write_adapter(f"{work}/adapter", good_lora_tensors())


def commands(model):
    """The three commands that read a model directory, each with a fresh output path."""
    tag = os.path.basename(model)
    return [("generate", ["generate", "--model", model, "--prompt", "hello", "--max-new-tokens", "2"]),
            ("forward", ["forward", "--model", model, "--input", forward_input, "--output",
                         f"{work}/{tag}_logits.safetensors"]),
            ("merge-lora", ["merge-lora", "--model", model, "--adapter", adapter, "--output", f"{work}/{tag}_merged"])]


# Sanity: the undamaged copy works with all three (else the cases below prove nothing).
good = copy_tiny_base(work, "good")
for name, args in commands(good):
    rc = run(args)[0]
    check(rc == 0, f"undamaged model: {name} succeeds", rc)

# 1. truncated shard
m = copy_tiny_base(work, "truncated")
os.truncate(f"{m}/{WEIGHTS}", os.path.getsize(f"{m}/{WEIGHTS}") // 2)
cases = [(m, "truncated shard", [WEIGHTS])]

# 2. a tensor of the wrong shape for config.json (same byte count, so the file itself is consistent)
m = copy_tiny_base(work, "wrong_shape")
header, blob = read_safetensors(f"{m}/{WEIGHTS}")
header["model.layers.0.self_attn.o_proj.weight"]["shape"] = [32, 128]  # not adapted: merge-lora must still check
write_safetensors(f"{m}/{WEIGHTS}", header, blob)
cases.append((m, "tensor of the wrong shape", [WEIGHTS, "model.layers.0.self_attn.o_proj.weight", "expects [64, 64]"]))

# 3. an index naming a shard that is not there
m = copy_tiny_base(work, "missing_shard")
header, blob = read_safetensors(f"{m}/{WEIGHTS}")
os.rename(f"{m}/{WEIGHTS}", f"{m}/model-00001-of-00002.safetensors")
weight_map = {k: "model-00001-of-00002.safetensors" for k in header if k != "__metadata__"}
weight_map["lm_head.weight"] = "model-00002-of-00002.safetensors"
write(f"{m}/model.safetensors.index.json", json.dumps({"metadata": {}, "weight_map": weight_map}))
cases.append((m, "index naming a missing shard", ["model-00002-of-00002.safetensors"]))

# 4. config.json with a missing field, and with an invalid one
m = copy_tiny_base(work, "config_missing")
edit_config(m, lambda c: c.pop("hidden_size"))
# (HF's default then applies, 5120: the weights no longer fit the config, which the message says)
cases.append((m, "config.json without hidden_size", [WEIGHTS, "config", "expects [64, 5120]"]))
m = copy_tiny_base(work, "config_invalid")
edit_config(m, lambda c: c.update(num_attention_heads="four"))
cases.append((m, "config.json with num_attention_heads: \"four\"", ["config.json", "num_attention_heads"]))
m = copy_tiny_base(work, "config_heads")
edit_config(m, lambda c: c.update(num_key_value_heads=3))
cases.append((m, "config.json with num_key_value_heads not dividing the heads", ["config.json", "num_key_value_heads"]))

for model, what, needles in cases:
    for name, args in commands(model):
        expect_user_error(args, f"{what}: {name}", needles)
        if name == "merge-lora":
            out = args[args.index("--output") + 1]
            check(not os.path.exists(out) and not os.path.exists(out + ".incomplete"),
                  f"{what}: merge-lora leaves no output behind", os.listdir(work))
finish()
