#!/usr/bin/env python3
"""Trains the bundled byte-level BPE tokenizer on data/corpus/ and writes it in both Llama 4 formats.

  data/tokenizer/tokenizer.json         HF tokenizers format (o200k split regex + byte level, ignore_merges)
  data/tokenizer/tokenizer.model        tiktoken format: base64(token bytes) + " " + rank, one line per rank
  data/tokenizer/tokenizer_config.json  bos/eos/pad and the Llama 4 chat template (transformers' own text)

8192 base tokens (ids 0..8191) + the 2048 Llama 4 special tokens at 8192..10239, names as Meta lays them
out. BPE training has no randomness; it runs single-threaded so tie-breaking never depends on threads.
Usage: scripts/train_tokenizer.py [--corpus data/corpus] [--out data/tokenizer] [--vocab 8192]
"""
import argparse
import base64
import glob
import json
import os
import sys

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama4_special_tokens import LLAMA4_CHAT_TEMPLATE, O200K_PATTERN, llama4_special_tokens  # noqa: E402


def byte_decoder():
    """Inverse of GPT-2's bytes_to_unicode: byte-level character -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def build(files, vocab_size):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(O200K_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train(files, trainer)
    assert tok.get_vocab_size() == vocab_size, f"trained {tok.get_vocab_size()} tokens, wanted {vocab_size}"
    specials = llama4_special_tokens()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bos = specials[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab_size)])
    for i, s in enumerate(specials):
        assert tok.token_to_id(s) == vocab_size + i
    return tok


def write_tiktoken(tok, vocab_size, path):
    decode = byte_decoder()
    vocab = tok.get_vocab(with_added_tokens=False)
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    assert [i for _, i in by_id] == list(range(vocab_size))
    with open(path, "w", newline="\n") as f:
        for token, rank in by_id:
            raw = bytes(decode[c] for c in token)
            f.write(f"{base64.b64encode(raw).decode()} {rank}\n")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.path.join(root, "data", "corpus"))
    ap.add_argument("--out", default=os.path.join(root, "data", "tokenizer"))
    ap.add_argument("--vocab", type=int, default=8192)
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.corpus, "*.txt")))
    assert files, f"no .txt files in {args.corpus}"
    tok = build(files, args.vocab)
    os.makedirs(args.out, exist_ok=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    write_tiktoken(tok, args.vocab, os.path.join(args.out, "tokenizer.model"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot|>",
        "pad_token": "<|finetune_right_pad|>",
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": False,
        "chat_template": LLAMA4_CHAT_TEMPLATE,
    }
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}: {args.vocab} base tokens + {len(llama4_special_tokens())} special")


if __name__ == "__main__":
    main()
