#!/usr/bin/env python3
"""Oracle for `llama4 prepare`: runs it on small inputs and checks the shards with h5py against
references computed here with Hugging Face tokenizers / transformers.

Under --out it writes inputs/, the prepared datasets (text, text_eval, jsonl, chat, chat_eval) and
expected.json (per dataset: the documents' tokens and loss masks, in order) for the C++ loader test.
Expected documents:
  text / jsonl records: HF Tokenizer.from_file(tokenizer.json).encode(text).ids with
    encode_special_tokens (special-token text in raw data stays text; its post-processor prepends
    <|begin_of_text|>) + <|end_of_text|>, every token a target;
  chat records: transformers apply_chat_template (the Llama 4 template), assistant mask from the same
    template with {% generation %} around assistant turns;
  split: FNV-1a 64 + splitmix64 of the record bytes < eval_fraction -> eval (a re-implementation);
  text records: lines up to a blank line or to the first line end after --text-doc-bytes bytes.
Exits non-zero with a message on any difference.
"""
import argparse
import json
import os
import subprocess
import sys

import h5py
import numpy as np

os.environ["TOKENIZERS_PARALLELISM"] = "false"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "parity", "tokenizer"))
TOKENIZER_DIR = os.path.join(ROOT, "data", "tokenizer")
TEXT_DOC_BYTES = 200
EVAL_FRACTION = 0.3
M64 = (1 << 64) - 1


def record_hash_unit(data: bytes) -> float:
    h = 0xCBF29CE484222325
    for c in data:
        h = ((h ^ c) * 0x100000001B3) & M64
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & M64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & M64
    h ^= h >> 31
    return (h >> 11) * 2.0**-53


TEXT = """The first paragraph is short.
It has two lines.

Ünïcödé paragraph — with “quotes”, emoji 🦙 and CJK 漢字 text.

""" + "\n".join(f"Verse {i}: and the llama walked {i} steps across the plain." for i in range(40)) + """

Special-token text stays text: <|eot|> <|image|> <|begin_of_text|>
"""

JSONL = [{"text": "Plain pretraining record."}, {"text": "Tabs\tand\nnewlines\r\nkept."},
         {"text": "Special <|eot|> text is not a special token."}, {"text": "Emoji 🦙🦙 and Ελληνικά."}] + \
        [{"text": f"Record number {i} " + "word " * (i % 17)} for i in range(30)]

CHATS = [
    [{"role": "user", "content": "What colour is the sky?"}, {"role": "assistant", "content": "Blue."}],
    [{"role": "system", "content": "  Answer briefly.  "}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"},
     {"role": "assistant", "content": "6"}],
    [{"role": "user", "content": [{"type": "text", "text": "Split "}, {"type": "text", "text": "parts."}]},
     {"role": "assistant", "content": "Joined."}],
    [{"role": "user", "content": "Run it."}, {"role": "ipython", "content": "42\n"},
     {"role": "assistant", "content": "The result is 42."}],
] + [[{"role": "user", "content": f"Count to {i}."}, {"role": "assistant", "content": " ".join(map(str, range(1, i + 1)))}]
     for i in range(1, 25)]


def text_records(text):
    records, block = [], ""
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if line.strip(" \t") == "":
            if block:
                records.append(block)
            block = ""
            continue
        block = line if not block else block + "\n" + line
        if len(block.encode()) >= TEXT_DOC_BYTES:
            records.append(block)
            block = ""
    if block:
        records.append(block)
    return records


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--llama4", required=True)
    args = parser.parse_args()
    out = args.out
    inputs = os.path.join(out, "inputs")
    os.makedirs(inputs, exist_ok=True)

    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    from llama4_special_tokens import LLAMA4_CHAT_TEMPLATE
    from tokenizer_oracle import mask_template

    hf = Tokenizer.from_file(os.path.join(TOKENIZER_DIR, "tokenizer.json"))
    hf.encode_special_tokens = True  # raw text is never parsed for special tokens
    eos = hf.token_to_id("<|end_of_text|>")
    auto = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    with_mask = mask_template(LLAMA4_CHAT_TEMPLATE)

    def encode_text(text):
        ids = hf.encode(text).ids + [eos]
        return ids, [1] * len(ids)

    def encode_chat(messages):
        r = auto.apply_chat_template(messages, tokenize=True, chat_template=with_mask, return_dict=True,
                                     return_assistant_tokens_mask=True)
        return list(r["input_ids"]), list(r["assistant_masks"])

    with open(os.path.join(inputs, "corpus.txt"), "w", encoding="utf-8") as f:
        f.write(TEXT)
    lines = {"jsonl": [json.dumps(r, ensure_ascii=False) for r in JSONL],
             "chat": [json.dumps({"messages": m}, ensure_ascii=False) for m in CHATS]}
    for name, ls in lines.items():
        with open(os.path.join(inputs, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            f.write("\n".join(ls) + "\n")

    tok = os.path.join(TOKENIZER_DIR, "tokenizer.json")
    runs = {
        "text": ["--input", os.path.join(inputs, "corpus.txt"), "--eval-output", os.path.join(out, "text_eval"),
                 "--eval-fraction", str(EVAL_FRACTION), "--text-doc-bytes", str(TEXT_DOC_BYTES),
                 "--shard-mb", "0.001"],
        "jsonl": ["--input", os.path.join(inputs, "jsonl.jsonl"), "--format", "jsonl", "--shard-mb", "0.0005"],
        "chat": ["--input", os.path.join(inputs, "chat.jsonl"), "--format", "chat", "--eval-output",
                 os.path.join(out, "chat_eval"), "--eval-fraction", str(EVAL_FRACTION)],
    }
    for name, extra in runs.items():
        cmd = [args.llama4, "prepare", "--output", os.path.join(out, name), "--tokenizer", tok] + extra
        subprocess.run(cmd, check=True)

    expected = {"text": [], "text_eval": [], "jsonl": [], "chat": [], "chat_eval": []}
    for rec in text_records(TEXT):
        split = "text_eval" if record_hash_unit(rec.encode()) < EVAL_FRACTION else "text"
        expected[split].append(encode_text(rec))
    for rec in JSONL:
        expected["jsonl"].append(encode_text(rec["text"]))
    for line, messages in zip(lines["chat"], CHATS):
        split = "chat_eval" if record_hash_unit(line.encode()) < EVAL_FRACTION else "chat"
        expected[split].append(encode_chat(messages))

    failures = []
    for name, docs in expected.items():
        ddir = os.path.join(out, name)
        meta = json.load(open(os.path.join(ddir, "meta.json")))
        tokens, masks, offsets, image_offsets = [], [], [0], [0]
        for shard in meta["shards"]:
            with h5py.File(os.path.join(ddir, shard["file"]), "r") as f:
                assert f["tokens"].dtype == np.uint32 and f["loss_mask"].dtype == np.uint8
                assert f["image_tiles"].shape[1:] == (3, 336, 336)
                t, m, o = f["tokens"][:], f["loss_mask"][:], f["doc_offsets"][:]
                tokens.append(t)
                masks.append(m)
                offsets += list(o[1:] + offsets[-1])
                image_offsets += list(f["image_offsets"][1:] + image_offsets[-1])
        tokens, masks = np.concatenate(tokens).tolist(), np.concatenate(masks).tolist()
        exp_tokens = [t for ids, _ in docs for t in ids]
        exp_masks = [m for _, mask in docs for m in mask]
        exp_offsets = np.cumsum([0] + [len(ids) for ids, _ in docs]).tolist()
        checks = [("tokens", tokens, exp_tokens), ("loss_mask", masks, exp_masks),
                  ("doc_offsets", [int(v) for v in offsets], exp_offsets),
                  ("image_offsets", [int(v) for v in image_offsets], [0] * len(exp_offsets)),
                  ("num_documents", meta["num_documents"], len(docs))]
        for what, got, want in checks:
            if got != want:
                first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want))) \
                    if isinstance(got, list) else None
                failures.append(f"{name}: {what} differs (first difference at {first})")
        print(f"{name}: {len(docs)} documents, {len(exp_tokens)} tokens, {len(meta['shards'])} shard(s): "
              f"{'ok' if not failures else 'checked'}")
    if sum(len(v) for k, v in expected.items() if k.endswith("_eval")) == 0:
        failures.append("no record went to an eval split: the split is not exercised")
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({name: [{"tokens": ids, "loss_mask": mask} for ids, mask in docs]
                   for name, docs in expected.items()}, f)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print("prepare output matches the references")


if __name__ == "__main__":
    main()
