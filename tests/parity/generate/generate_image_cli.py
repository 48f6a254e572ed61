#!/usr/bin/env python3
"""`llama4 generate --image` (greedy, --ids) on the tiny multimodal HF directory of generate_image_oracle.py:
the token ids equal transformers' generate for each case, and a prompt holding its own <|image|>
placeholder gives the same answer as the images put before the text."""
import json
import os
import subprocess
import sys

BINARY = os.environ["L4_BINARY"]
DATA = os.path.join(os.environ["L4_TEST_DATA_DIR"], "generate_image")
failures = []


def generate(text, images, max_tokens):
    args = [BINARY, "generate", "--model", os.path.join(DATA, "model"), "--prompt", text, "--max-tokens",
            str(max_tokens), "--ids"]
    for image in images:
        args += ["--image", os.path.join(DATA, image)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-2000:])
        return None
    return [int(t) for t in r.stdout.split()]


def check(condition, what):
    print(("ok:   " if condition else "FAIL: ") + what)
    if not condition:
        failures.append(what)


def main():
    with open(os.path.join(DATA, "cases.json")) as f:
        cases = json.load(f)
    for c in cases:
        got = generate(c["text"], c["images"], c["max_new_tokens"])
        check(got == c["generated"], f"{c['name']}: generate --image ids equal HF generate over "
              f"{len(c['generated'])} tokens ({len(c['images'])} image(s), "
              f"{len(c['input_ids'])}-token prompt)")
        if got != c["generated"]:
            print(f"  ours {got}\n  HF   {c['generated']}")
    c = cases[0]
    inline = generate("<|image|>" + c["text"], c["images"], c["max_new_tokens"])
    check(inline == c["generated"], "a typed <|image|> placeholder gives the same answer")
    print("FAILED:\n  " + "\n  ".join(failures) if failures else "all ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
