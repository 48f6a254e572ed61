#!/usr/bin/env python3
"""Reference token ids for the tokenizer parity tests.

For the bundled tokenizer (data/tokenizer) and a second one trained here on the multilingual corpus
(o200k split regex, so non-Latin scripts get real merges), writes under --out:
  tokenizer_cases.json  cases (base64 bytes) and, per tokenizer, ids from
                        tiktoken: Encoding(same ranks, O200K pattern, Llama 4 specials) behind Meta's
                                  400k/25k input slicing (llama_models Tokenizer.encode)
                        HF tokenizers: Tokenizer.from_file(tokenizer.json)
                        each with special tokens as text and parsed, plus decode texts of id sequences
                        that cut UTF-8 sequences (replacement characters).
  chat_cases.json       transformers apply_chat_template ids (real Llama 4 template) and assistant masks.
  lines.txt / lines_hf_ids.txt  one case per line and HF ids per line, for the CLI test.
Inputs with invalid UTF-8 are given to the references as bytes.decode("utf-8", errors="replace").
"""
import argparse
import base64
import json
import os
import random
import shutil
import sys

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, HERE)

import tiktoken  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from llama4_special_tokens import LLAMA4_CHAT_TEMPLATE, O200K_PATTERN, llama4_special_tokens  # noqa: E402
from tokenizer_corpus import LANGUAGES, build_corpus  # noqa: E402
import train_tokenizer  # noqa: E402


def meta_split(s, max_len):
    """llama_models Tokenizer._split_whitespaces_or_nonwhitespaces, verbatim logic."""
    current_len = 0
    current_is_space = s[0].isspace() if len(s) > 0 else False
    start = 0
    for i in range(len(s)):
        is_space = s[i].isspace()
        if current_is_space ^ is_space:
            current_len = 1
            current_is_space = is_space
        else:
            current_len += 1
            if current_len > max_len:
                yield s[start:i]
                start = i
                current_len = 1
    yield s[start:]


def meta_encode(enc, s, parse_special):
    allowed = "all" if parse_special else set()
    out = []
    for i in range(0, len(s), 400_000):
        for sub in meta_split(s[i:i + 400_000], 25_000):
            out += enc.encode(sub, allowed_special=allowed, disallowed_special=())
    return out


def tiktoken_encoding(model_path):
    ranks = {}
    with open(model_path, "rb") as f:
        for line in f.read().splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    specials = {name: len(ranks) + i for i, name in enumerate(llama4_special_tokens())}
    return tiktoken.Encoding(name="l4", pat_str=O200K_PATTERN, mergeable_ranks=ranks, special_tokens=specials)


def reference_ids(model_path, json_path, texts):
    enc = tiktoken_encoding(model_path)
    hf = Tokenizer.from_file(json_path)
    out = {"tiktoken": [], "tiktoken_special": [], "hf": [], "hf_special": [], "hf_bos": []}
    for text in texts:
        out["tiktoken"].append(meta_encode(enc, text, False))
        out["tiktoken_special"].append(meta_encode(enc, text, True))
        hf.encode_special_tokens = True  # special-token text stays text
        out["hf"].append(hf.encode(text, add_special_tokens=False).ids)
        out["hf_bos"].append(hf.encode(text, add_special_tokens=True).ids)
        hf.encode_special_tokens = False
        out["hf_special"].append(hf.encode(text, add_special_tokens=False).ids)
    # Decoding id sequences that cut multi-byte characters apart.
    rng = random.Random(1234)
    n_base = len(enc._mergeable_ranks)
    high = [enc._mergeable_ranks[bytes([b])] for b in range(0x80, 0x100)]
    decode_cases = []
    for _ in range(40):
        ids = [rng.choice(high) if rng.random() < 0.5 else rng.randrange(n_base) for _ in range(rng.randint(1, 8))]
        if rng.random() < 0.2:
            ids.append(n_base + 8)  # <|eot|>
        decode_cases.append({
            "ids": ids,
            "tiktoken": base64.b64encode(enc.decode(ids).encode()).decode(),
            "hf": base64.b64encode(hf.decode(ids, skip_special_tokens=False).encode()).decode(),
        })
    out["decode"] = decode_cases
    return out


def train_multilingual(out_dir, cases):
    """A second tokenizer trained on the parity corpus itself, written in both formats."""
    path = os.path.join(out_dir, "multilingual_train.txt")
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(20):
            for name, data in cases:
                if not name.startswith("long_"):
                    f.write(data.decode("utf-8", errors="replace") + "\n")
    tok = train_tokenizer.build([path], 1024)
    tdir = os.path.join(out_dir, "multilingual")
    os.makedirs(tdir, exist_ok=True)
    tok.save(os.path.join(tdir, "tokenizer.json"))
    train_tokenizer.write_tiktoken(tok, 1024, os.path.join(tdir, "tokenizer.model"))
    return tdir


def legacy_variant(src_dir, out_dir):
    """The same tokenizer with merges as "left right" strings and ignore_merges off (older HF files)."""
    with open(os.path.join(src_dir, "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
    j["model"]["ignore_merges"] = False
    # Make the last merged token unreachable (drop its merge) and call it "qqqq": with ignore_merges off,
    # HF must not emit it for the word "qqqq" even though the word is in the vocab.
    vocab = j["model"]["vocab"]
    last = max(vocab, key=vocab.get)
    assert "".join(j["model"]["merges"][-1].split(" ")) == last
    j["model"]["merges"].pop()
    vocab["qqqq"] = vocab.pop(last)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    shutil.copy(os.path.join(src_dir, "tokenizer.model"), os.path.join(out_dir, "tokenizer.model"))
    return out_dir


def converted_variant(src_dir, out_dir):
    """tokenizer.json made from tokenizer.model by transformers' own TikTokenConverter (as the HF Llama 4
    files were): merges recovered from ranks, ignore_merges, ByteLevel + BOS template post-processor."""
    from tokenizers import processors
    from transformers.convert_slow_tokenizer import TikTokenConverter
    model = os.path.join(src_dir, "tokenizer.model")
    tok = TikTokenConverter(vocab_file=model, pattern=O200K_PATTERN,
                            extra_special_tokens=llama4_special_tokens()).converted()
    bos = llama4_special_tokens()[0]
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                      special_tokens=[(bos, tok.token_to_id(bos))])])
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    shutil.copy(model, os.path.join(out_dir, "tokenizer.model"))
    return out_dir


def fuzz_cases(n, seed=7):
    """Random lines over a pool that stresses the split regex: case changes, contractions, marks, digits
    of several scripts, Unicode spaces, CR/LF, punctuation next to slashes, emoji, special-token text."""
    pool = (list("aAbBzZ'’sStTdDlLmMvVrReE") + list(" \t\r\n\u00a0\u3000\u2028\u180e\u200b\u0085") +
            list("0123456789٠١٢३४๔") + list(".,;:!?-_/\\()[]{}<>|\"#@$%^&*~`+=") +
            list("éÉßøØñÑçÇαΩжЖשا中文日本ひらカタ한국ไทยहिन") + ["\u0301", "\u0308", "\u094d", "\u0e31", "\u200d"] +
            ["🦙", "👍🏽", "🏳️‍🌈", "<|eot|>", "<|begin_of_text|>", "'s", "'LL", "  ", "\r\n", "//", "\n\n\n"])
    rng = random.Random(seed)
    return [(f"fuzz_{i}", "".join(rng.choice(pool) for _ in range(rng.randint(1, 60))).encode()) for i in range(n)]


CONVERSATIONS = [
    ("no_system", [{"role": "user", "content": "Hello!"},
                   {"role": "assistant", "content": "Hi there, how can I help?"}], False),
    ("system_trimmed", [{"role": "system", "content": "  You are a helpful assistant.\n\n"},
                        {"role": "user", "content": "What is 2 + 2?"},
                        {"role": "assistant", "content": "2 + 2 = 4."},
                        {"role": "user", "content": "And times 3?"}], True),
    ("multi_turn_whitespace", [{"role": "user", "content": "  leading spaces and a trailing newline\n"},
                               {"role": "assistant", "content": "\nAnswer starts with a newline.  "},
                               {"role": "user", "content": "Merci ! ¿Qué tal? नमस्ते 👨‍👩‍👧"},
                               {"role": "assistant", "content": "De rien. 🦙"}], False),
    ("tool_turn", [{"role": "system", "content": "You can call tools."},
                   {"role": "user", "content": "Weather in París?"},
                   {"role": "assistant", "content": "",
                    "tool_calls": [{"type": "function", "function": {
                        "name": "get_weather", "arguments": {"city": "París", "units": ["c", 1, 2.5, None, True]}}}]},
                   {"role": "tool", "content": "{\"temp\": 21, \"note\": \"sunny\\nwarm\"}"},
                   {"role": "assistant", "content": "It is 21 °C and sunny."}], True),
    ("ipython_role", [{"role": "user", "content": "Run it."},
                      {"role": "ipython", "content": "42\n"},
                      {"role": "assistant", "content": "The result is 42."}], False),
    ("images", [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                             {"type": "text", "text": "Compare these two pictures."}]},
                {"role": "assistant", "content": "The first is brighter."}], True),
    ("special_text_in_content", [{"role": "user", "content": "Say <|eot|> literally"},
                                 {"role": "assistant", "content": "OK: <|eot|>"}], False),
    ("generation_prompt_only", [{"role": "user", "content": "Write a haiku about llamas."}], True),
]


def mask_template(template):
    """The real template with {% generation %} around assistant output, for HF's assistant mask."""
    header = "{{- '<|header_start|>' + message['role'] + '<|header_end|>\n\n' }}"
    eot = '{{- "<|eot|>" }}'
    start = template.index(header) + len(header)
    end = template.index(eot, start) + len(eot)
    body = template[start:end]
    t = (template[:start] + "\n{%- if message['role'] == 'assistant' %}{% generation %}" + body +
         "{% endgeneration %}{%- else %}" + body + "{%- endif %}" + template[end:])
    py_start = "{{- '<|python_start|>' }}"
    s2 = t.index(py_start)
    e2 = t.index(eot, s2) + len(eot)
    return t[:s2] + "{% generation %}" + t[s2:e2] + "{% endgeneration %}" + t[e2:]


def chat_reference(tokenizer_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    with_mask = mask_template(LLAMA4_CHAT_TEMPLATE)
    out = []
    for name, messages, gen in CONVERSATIONS:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen,
                                       chat_template=LLAMA4_CHAT_TEMPLATE)
        ids = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen,
                                      chat_template=LLAMA4_CHAT_TEMPLATE, return_dict=True)["input_ids"]
        masked = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen, chat_template=with_mask,
                                         return_dict=True, return_assistant_tokens_mask=True)
        assert tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen,
                                       chat_template=with_mask) == text, name
        assert list(masked["input_ids"]) == list(ids), name
        ours = []
        for m in messages:
            msg = {"role": m["role"], "content": "", "num_images": 0, "tool_calls": []}
            if isinstance(m["content"], str):
                msg["content"] = m["content"]
            else:
                msg["content"] = "".join(c["text"] for c in m["content"] if c["type"] == "text")
                msg["num_images"] = sum(c["type"] == "image" for c in m["content"])
            for call in m.get("tool_calls", []):
                msg["tool_calls"].append({"name": call["function"]["name"],
                                          "arguments_json": json.dumps(call["function"]["arguments"])})
            ours.append(msg)
        out.append({"name": name, "messages": ours, "add_generation_prompt": gen, "text": text,
                    "ids": list(ids), "assistant_mask": list(masked["assistant_masks"])})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer-dir", default=os.path.join(ROOT, "data", "tokenizer"))
    ap.add_argument("--corpus-lines", type=int, default=40)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    bundled = []
    corpus_dir = os.path.join(ROOT, "data", "corpus")
    for fname in sorted(os.listdir(corpus_dir)):
        with open(os.path.join(corpus_dir, fname), encoding="utf-8") as f:
            lines = f.read().split("\n")
        step = max(1, len(lines) // args.corpus_lines)
        bundled += [line for line in lines[::step][:args.corpus_lines // 3] if line]
    cases = build_corpus(bundled) + fuzz_cases(300)
    texts = [data.decode("utf-8", errors="replace") for _, data in cases]

    multilingual = train_multilingual(args.out, cases)
    tokenizers = {"bundled": args.tokenizer_dir, "multilingual": multilingual,
                  "converted": converted_variant(args.tokenizer_dir, os.path.join(args.out, "converted")),
                  "multilingual_legacy": legacy_variant(multilingual, os.path.join(args.out, "multilingual_legacy"))}
    result = {"cases": [{"name": n, "bytes_b64": base64.b64encode(d).decode()} for n, d in cases], "tokenizers": {}}
    for name, tdir in tokenizers.items():
        ref = reference_ids(os.path.join(tdir, "tokenizer.model"), os.path.join(tdir, "tokenizer.json"), texts)
        ref["dir"] = tdir
        result["tokenizers"][name] = ref
    with open(os.path.join(args.out, "tokenizer_cases.json"), "w") as f:
        json.dump(result, f)

    with open(os.path.join(args.out, "chat_cases.json"), "w") as f:
        json.dump(chat_reference(args.tokenizer_dir), f, ensure_ascii=False)

    # One line per case (cases without newlines), for the CLI --file --ids-only test.
    hf = Tokenizer.from_file(os.path.join(args.tokenizer_dir, "tokenizer.json"))
    hf.encode_special_tokens = True
    with open(os.path.join(args.out, "lines.txt"), "w", encoding="utf-8", newline="") as f, \
            open(os.path.join(args.out, "lines_hf_ids.txt"), "w") as g:
        for text in list(LANGUAGES.values()) + texts[-340:]:
            if "\n" in text or "\r" in text or len(text) > 5000:
                continue
            f.write(text + "\n")
            g.write(" ".join(map(str, hf.encode(text, add_special_tokens=False).ids)) + "\n")
    print(f"wrote {len(cases)} cases x {len(tokenizers)} tokenizers, {len(CONVERSATIONS)} chats to {args.out}")


if __name__ == "__main__":
    main()
