"""Bad tokenizer files and generate arguments: tokenizer.json / tokenizer.model missing or corrupt, a prompt
longer than the model's context, a missing --image file, --top-p out of range. Each must end in exit 1 naming
the file or flag and what was expected: never exit 2, a crash or a hang."""
import os

from adv_common import check, copy_tiny_base, edit_config, expect_user_error, finish, run, work_dir, write

work = work_dir("generate_inputs")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


def generate(model, *extra):
    return ["generate", "--model", model, "--prompt", "hello", "--max-new-tokens", "2", *extra]


good = copy_tiny_base(work, "good")
rc, out, err = run(generate(good))
check(rc == 0, "undamaged model: generate succeeds", err[-1500:])

# --- tokenizer files ------------------------------------------------------------------------------------------
m = copy_tiny_base(work, "no_tokenizer")
for name in TOKENIZER_FILES:
    os.remove(f"{m}/{name}")
expect_user_error(generate(m), "no tokenizer files in the model directory", [m, "tokenizer"])

m = copy_tiny_base(work, "json_corrupt")
with open(f"{m}/tokenizer.json", "r+b") as f:
    f.truncate(5000)  # cut mid-JSON
expect_user_error(generate(m), "truncated tokenizer.json", ["tokenizer.json"])

m = copy_tiny_base(work, "json_not_bpe")
write(f"{m}/tokenizer.json", '{"model": {"type": "Unigram", "vocab": []}}')
expect_user_error(generate(m), "tokenizer.json that is not BPE", ["tokenizer.json"])

m = copy_tiny_base(work, "model_corrupt")
os.remove(f"{m}/tokenizer.json")
write(f"{m}/tokenizer.model", "this is not base64 and no rank\n@@@@ x\n")
expect_user_error(generate(m), "corrupt tokenizer.model", ["tokenizer.model"])

expect_user_error(generate(good, "--tokenizer", f"{work}/nowhere/tokenizer.json"), "--tokenizer names a missing file",
                  [f"{work}/nowhere/tokenizer.json"])

# --- prompt and sampling arguments ----------------------------------------------------------------------------
m = copy_tiny_base(work, "short_context")
edit_config(m, lambda c: c.update(max_position_embeddings=32))
long_prompt = ["generate", "--model", m, "--prompt", "word " * 200, "--max-new-tokens", "2"]
expect_user_error(long_prompt, "prompt longer than the context", ["max_position_embeddings", "32"])
expect_user_error(generate(good, "--max-new-tokens", "5000"), "--max-new-tokens past the context",
                  ["--max-new-tokens", "4096"])

# Images need a tower: the bundled multimodal recipe as training starts it (nothing trained, nothing written).
multimodal = ["generate", "--config", "recipes/lora_sft_tiny.yaml", "checkpoint.resume=none",
              f"checkpoint.dir={work}/ckpt", f"logging.run_dir={work}/run", "--prompt", "what is it?",
              "--max-new-tokens", "2"]
expect_user_error(multimodal + ["--image", f"{work}/missing.png"], "--image names a missing file",
                  [f"{work}/missing.png"])
write(f"{work}/not_an_image.png", "plain text")
expect_user_error(multimodal + ["--image", f"{work}/not_an_image.png"], "--image that is not an image",
                  [f"{work}/not_an_image.png"])
expect_user_error(generate(good, "--image", f"{work}/missing.png"), "--image with a text-only model",
                  ["--image", good, "vision_config"])

expect_user_error(generate(good, "--temperature", "1", "--top-p", "2"), "--top-p 2", ["--top-p", "2"])
expect_user_error(generate(good, "--temperature", "1", "--top-p", "0"), "--top-p 0", ["--top-p"])
expect_user_error(generate(good, "--temperature", "-1"), "--temperature -1", ["--temperature"])
expect_user_error(generate(good, "--top-k", "x"), "--top-k x", ["--top-k"])
finish()
