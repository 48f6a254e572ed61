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
  chat records with images: transformers Llama4Processor (Llama4ImageProcessor tiling, <|image|>
    expansion) on the rendered template; the stored uint8 tiles, normalised, against its pixel_values;
  ShareGPT / Alpaca records (no --format): the same template on the messages they stand for (human/gpt ->
    user/assistant, tool -> the template's ipython turn; Alpaca: user = instruction + "\n" + input when the
    input is not empty, assistant = output);
  --train-on all: every token a target; --train-on last_turn: only the last {% generation %} span;
  --seq-len N (overlong split): the leading system turn plus as many whole exchanges (a user turn and what
    follows it) as the template renders within N tokens, an exchange alone over N cut at N, pieces without
    targets left out (the rule written again here, token counts from transformers);
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
sys.path.insert(0, os.path.join(ROOT, "tests", "parity", "vision"))
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


# Long conversations for the overlong split (seq_len SPLIT_SEQ_LEN): several exchanges, one exchange longer
# than the limit on its own, one conversation that fits.
SPLIT_SEQ_LEN = 96
LONG_CHATS = [
    [{"role": "system", "content": "You answer questions about llamas."}] +
    [m for i in range(5) for m in ({"role": "user", "content": f"Tell me fact number {i} about llamas, please."},
                                   {"role": "assistant", "content": f"Fact {i}: llamas " + "hum and " * (i + 2) + "spit."})],
    [{"role": "user", "content": "Short?"}, {"role": "assistant", "content": "Yes."}],
    [{"role": "user", "content": "Write a long answer."}, {"role": "assistant", "content": "word " * 150},
     {"role": "user", "content": "Now a short one."}, {"role": "assistant", "content": "Done."}],
]
ALPACA = [{"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
          {"instruction": "Name a colour.", "input": "", "output": "Blue"},
          {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5", "text": "rendered, ignored"}]


def to_sharegpt(messages):
    names = {"user": "human", "assistant": "gpt", "system": "system", "ipython": "tool"}
    text = lambda c: c if isinstance(c, str) else "".join(p["text"] for p in c)  # noqa: E731
    return {"conversations": [{"from": names[m["role"]], "value": text(m["content"])} for m in messages]}


def alpaca_messages(record):
    user = record["instruction"] + ("\n" + record["input"] if record.get("input") else "")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]


def last_run_only(mask):
    """Keeps the last run of ones (the last assistant turn's {% generation %} span)."""
    out, end = [0] * len(mask), len(mask)
    while end > 0 and not mask[end - 1]:
        end -= 1
    begin = end
    while begin > 0 and mask[begin - 1]:
        begin -= 1
    out[begin:end] = [1] * (end - begin)
    return out


def split_reference(encode_chat, messages, seq_len):
    ids, mask = encode_chat(messages)
    if len(ids) <= seq_len:
        return [(ids, mask)]
    first = 0
    while first < len(messages) and messages[first]["role"] == "system":
        first += 1
    system, exchanges = messages[:first], []
    for m in messages[first:]:
        if not exchanges or m["role"] == "user":
            exchanges.append([])
        exchanges[-1].append(m)
    piece = lambda b, e: system + [m for ex in exchanges[b:e] for m in ex]  # noqa: E731
    pieces, b = [], 0
    while b < len(exchanges):
        e = b + 1
        ids, mask = encode_chat(piece(b, e))
        if len(ids) > seq_len:
            ids, mask = ids[:seq_len], mask[:seq_len]
        else:
            while e < len(exchanges):
                longer = encode_chat(piece(b, e + 1))
                if len(longer[0]) > seq_len:
                    break
                ids, mask = longer
                e += 1
        if any(mask[1:]):
            pieces.append((ids, mask))
        b = e
    return pieces


def make_images(inputs):
    """Small domain-like PNGs (one tile) and two wide/tall ones (several tiles + a global tile)."""
    from make_domain_data import png_bytes
    rng = np.random.default_rng(5)
    names = []
    for i, (h, w) in enumerate([(128, 128), (96, 160), (240, 500), (700, 200)]):
        img = np.full((h, w, 3), 255, np.uint8)
        for _ in range(6):
            y, x = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 20))
            img[y:y + 20, x:x + 20] = rng.integers(0, 255, size=3)
        name = f"images/im{i}.png"
        os.makedirs(os.path.join(inputs, "images"), exist_ok=True)
        with open(os.path.join(inputs, name), "wb") as f:
            f.write(png_bytes(img))
        names.append(name)
    return names


def image_chats(names):
    img = lambda n: {"type": "image", "path": n}  # noqa: E731
    return [
        [{"role": "user", "content": [img(names[0]), {"type": "text", "text": "How many squares?"}]},
         {"role": "assistant", "content": "6"}],
        [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": [{"type": "text", "text": "Compare "}, img(names[1]), {"type": "text", "text": " and "},
                                      img(names[2]), {"type": "text", "text": "."}]},
         {"role": "assistant", "content": "The second is wider."}, {"role": "user", "content": [img(names[3])]},
         {"role": "assistant", "content": "Tall."}],
        [{"role": "user", "content": "No image here."}, {"role": "assistant", "content": "Right."}],
    ]


def hf_image_reference(inputs, auto, with_mask, chat_template, messages):
    """(ids, mask, tiles as float [n,3,336,336], grids) from transformers' Llama4Processor."""
    from PIL import Image
    from transformers import Llama4ImageProcessor, Llama4Processor
    processor = Llama4Processor(image_processor=Llama4ImageProcessor(), tokenizer=auto)
    hf_msgs = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else
                [{"type": "image"} if p["type"] == "image" else p for p in m["content"]]} for m in messages]
    paths = [p["path"] for m in messages if not isinstance(m["content"], str) for p in m["content"]
             if p["type"] == "image"]
    text = auto.apply_chat_template(hf_msgs, tokenize=False, chat_template=chat_template)
    masked = auto.apply_chat_template(hf_msgs, tokenize=True, chat_template=with_mask, return_dict=True,
                                      return_assistant_tokens_mask=True)
    if not paths:
        return list(masked["input_ids"]), list(masked["assistant_masks"]), None, []
    pil = [Image.open(os.path.join(inputs, p)).convert("RGB") for p in paths]
    result = processor(text=text, images=pil, return_tensors="pt", add_special_tokens=False)
    ids = result["input_ids"][0].tolist()
    grids = Llama4ImageProcessor()(images=pil, return_tensors="pt")["aspect_ratios"].tolist()
    image_id, start_id, end_id = (auto.convert_tokens_to_ids(t) for t in ("<|image|>", "<|image_start|>", "<|image_end|>"))
    mask, k = [], 0
    for t, m in zip(masked["input_ids"], masked["assistant_masks"]):
        if t != image_id:
            assert ids[k] == t, "unexpanded and expanded ids disagree"
            mask.append(m)
            k += 1
            continue
        assert ids[k] == start_id
        end = ids.index(end_id, k)
        mask += [0] * (end + 1 - k)
        k = end + 1
    assert k == len(ids)
    return ids, mask, result["pixel_values"].float(), grids


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

    import torchvision_shim  # the image processor's torchvision kernels; before transformers is imported
    torchvision_shim.install()
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
    image_names = make_images(inputs)
    lines["chat_images"] = [json.dumps({"messages": m}, ensure_ascii=False) for m in image_chats(image_names)]
    lines["sharegpt"] = [json.dumps(to_sharegpt(m), ensure_ascii=False) for m in CHATS]
    lines["alpaca"] = [json.dumps(r, ensure_ascii=False) for r in ALPACA]
    lines["long"] = [json.dumps({"messages": m}, ensure_ascii=False) for m in LONG_CHATS]
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
        "chat_images": ["--input", os.path.join(inputs, "chat_images.jsonl"), "--format", "chat", "--shard-mb", "0.5"],
        "sharegpt": ["--input", os.path.join(inputs, "sharegpt.jsonl")],
        "alpaca": ["--input", os.path.join(inputs, "alpaca.jsonl")],
        "chat_all": ["--input", os.path.join(inputs, "chat.jsonl"), "--train-on", "all"],
        "chat_last": ["--input", os.path.join(inputs, "chat.jsonl"), "--train-on", "last_turn"],
        "chat_split": ["--input", os.path.join(inputs, "long.jsonl"), "--seq-len", str(SPLIT_SEQ_LEN)],
    }
    for name, extra in runs.items():
        cmd = [args.llama4, "prepare", "--output", os.path.join(out, name), "--tokenizer", tok] + extra
        subprocess.run(cmd, check=True)

    expected = {"text": [], "text_eval": [], "jsonl": [], "chat": [], "chat_eval": [], "chat_images": [],
                "sharegpt": [], "alpaca": [], "chat_all": [], "chat_last": [], "chat_split": []}
    images = {name: [] for name in expected}  # per document: (float tiles or None, grids)
    for rec in text_records(TEXT):
        split = "text_eval" if record_hash_unit(rec.encode()) < EVAL_FRACTION else "text"
        expected[split].append(encode_text(rec))
    for rec in JSONL:
        expected["jsonl"].append(encode_text(rec["text"]))
    for line, messages in zip(lines["chat"], CHATS):
        split = "chat_eval" if record_hash_unit(line.encode()) < EVAL_FRACTION else "chat"
        expected[split].append(encode_chat(messages))
    for messages in CHATS:
        ids, mask = encode_chat(messages)
        expected["sharegpt"].append((ids, mask))
        expected["chat_all"].append((ids, [1] * len(ids)))
        expected["chat_last"].append((ids, last_run_only(mask)))
    for record in ALPACA:
        expected["alpaca"].append(encode_chat(alpaca_messages(record)))
    for messages in LONG_CHATS:
        expected["chat_split"] += split_reference(encode_chat, messages, SPLIT_SEQ_LEN)
    if len(expected["chat_split"]) <= len(LONG_CHATS):
        failures_setup = "chat_split: no conversation was split: the overlong rule is not exercised"
        print(failures_setup, file=sys.stderr)
        sys.exit(1)
    for messages in image_chats(image_names):
        ids, mask, tiles, grids = hf_image_reference(inputs, auto, with_mask, LLAMA4_CHAT_TEMPLATE, messages)
        expected["chat_images"].append((ids, mask))
        images["chat_images"].append((tiles, grids))
    for name in expected:
        if not images[name]:
            images[name] = [(None, [])] * len(expected[name])

    failures = []
    for name, docs in expected.items():
        ddir = os.path.join(out, name)
        meta = json.load(open(os.path.join(ddir, "meta.json")))
        tokens, masks, offsets, image_offsets, tiles, grids = [], [], [0], [0], [], []
        for shard in meta["shards"]:
            with h5py.File(os.path.join(ddir, shard["file"]), "r") as f:
                assert f["tokens"].dtype == np.uint32 and f["loss_mask"].dtype == np.uint8
                assert f["image_tiles"].shape[1:] == (3, 336, 336)
                t, m, o = f["tokens"][:], f["loss_mask"][:], f["doc_offsets"][:]
                tokens.append(t)
                masks.append(m)
                offsets += list(o[1:] + offsets[-1])
                image_offsets += list(f["image_offsets"][1:] + image_offsets[-1])
                tiles.append(f["image_tiles"][:])
                grids += f["image_grids"][:].tolist()
        tokens, masks = np.concatenate(tokens).tolist(), np.concatenate(masks).tolist()
        exp_tokens = [t for ids, _ in docs for t in ids]
        exp_masks = [m for _, mask in docs for m in mask]
        exp_offsets = np.cumsum([0] + [len(ids) for ids, _ in docs]).tolist()
        exp_tiles = [t for t, _ in images[name] if t is not None]
        exp_image_offsets = np.cumsum([0] + [0 if t is None else t.shape[0] for t, _ in images[name]]).tolist()
        checks = [("tokens", tokens, exp_tokens), ("loss_mask", masks, exp_masks),
                  ("doc_offsets", [int(v) for v in offsets], exp_offsets),
                  ("image_offsets", [int(v) for v in image_offsets], exp_image_offsets),
                  ("image_grids", grids, [g for _, gs in images[name] for g in gs]),
                  ("num_documents", meta["num_documents"], len(docs))]
        for what, got, want in checks:
            if got != want:
                first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want))) \
                    if isinstance(got, list) else None
                failures.append(f"{name}: {what} differs (first difference at {first})")
        if exp_tiles:
            import torch
            ours = torch.from_numpy(np.concatenate(tiles)).float() / 255.0
            ours = (ours - 0.5) / 0.5
            theirs = torch.cat(exp_tiles)
            err = float((ours - theirs).abs().max()) if ours.shape == theirs.shape else float("inf")
            print(f"{name}: {theirs.shape[0]} tiles, max |normalised ours - HF pixel_values| = {err:.3g}")
            if err > 1.0 / 64:  # HF's pixel_values are bfloat16: 2^-7 relative, 8e-3 absolute near 1
                failures.append(f"{name}: image tiles differ from HF pixel_values by {err}")
        print(f"{name}: {len(docs)} documents, {len(exp_tokens)} tokens, {len(meta['shards'])} shard(s): "
              f"{'ok' if not failures else 'checked'}")
    if sum(len(v) for k, v in expected.items() if k.endswith("_eval")) == 0:
        failures.append("no record went to an eval split: the split is not exercised")
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({name: [{"tokens": ids, "loss_mask": mask,
                           "tiles": 0 if images[name][i][0] is None else int(images[name][i][0].shape[0]),
                           "grids": images[name][i][1]}
                          for i, (ids, mask) in enumerate(docs)]
                   for name, docs in expected.items()}, f)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print("prepare output matches the references")


if __name__ == "__main__":
    main()
