#!/usr/bin/env python3
"""e2e: `llama4 generate --image` user errors exit 1 with a message naming the culprit: a missing image, a
corrupt image (both named by file), a text-only model directory (named), more <|image|> placeholders in
the prompt than images (both counts). Uses the tiny multimodal model of the generate_image oracle."""
import os
import subprocess
import sys

BINARY = os.environ["L4_BINARY"]
DATA = os.path.join(os.environ["L4_TEST_DATA_DIR"], "generate_image")
MODEL, TEXT_MODEL = os.path.join(DATA, "model"), os.path.join(DATA, "text_model")
IMAGE = os.path.join(DATA, "images", "a.png")
failures = []


def expect_error(name, model, prompt, images, needles):
    args = [BINARY, "generate", "--model", model, "--prompt", prompt, "--max-tokens", "4"]
    for image in images:
        args += ["--image", image]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    ok = r.returncode == 1 and all(n in r.stderr for n in needles) and "terminate" not in r.stderr
    print(("ok:   " if ok else "FAIL: ") + f"{name}: exit {r.returncode}, stderr names {needles}")
    if not ok:
        print("  stderr:", r.stderr[-1500:])
        failures.append(name)


def main():
    missing = os.path.join(DATA, "images", "no_such_image.png")
    expect_error("missing image", MODEL, "What is this?", [missing], ["no_such_image.png"])
    expect_error("corrupt image", MODEL, "What is this?", [os.path.join(DATA, "images", "corrupt.png")],
                 ["corrupt.png"])
    expect_error("text-only model", TEXT_MODEL, "What is this?", [IMAGE], [TEXT_MODEL, "vision"])
    expect_error("placeholder count", MODEL, "<|image|> or <|image|>?", [IMAGE],
                 ["has 2 image placeholders", "1 images"])
    # Text-only generation on the multimodal directory still works (no vision tower needed).
    r = subprocess.run([BINARY, "generate", "--model", MODEL, "--prompt", "Hello", "--max-tokens", "3"],
                       capture_output=True, text=True, timeout=300)
    print(("ok:   " if r.returncode == 0 else "FAIL: ") + "text prompt on the multimodal directory")
    if r.returncode != 0:
        failures.append("text prompt on the multimodal directory")
    print("FAILED: " + ", ".join(failures) if failures else "all ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
