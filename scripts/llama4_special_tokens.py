"""The Llama 4 special-token names in id order (Meta's llama_models/llama4/tokenizer.py layout).

2048 slots appended after the base ranks: basic (5), text post-train (75), vision (1054), reasoning (10),
then <|reserved_special_token_i|> for the rest.
"""
from transformers.models.llama4.processing_llama4 import chat_template as LLAMA4_CHAT_TEMPLATE  # noqa: F401

NUM_SPECIAL_SLOTS = 2048

O200K_PATTERN = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"\s*[\r\n]+",
    r"\s+(?!\S)",
    r"\s+",
])


def _reserved(name, count, start=0):
    return [f"<|{name}_reserved_special_token_{i}|>" for i in range(start, start + count)]


def llama4_special_tokens():
    basic = ["<|begin_of_text|>", "<|end_of_text|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"]
    text = (["<|header_start|>", "<|header_end|>", "<|eom|>", "<|eot|>", "<|step|>"] +
            _reserved("text_post_train", 6) +
            ["<|python_start|>", "<|python_end|>", "<|finetune_right_pad|>"] +
            _reserved("text_post_train", 61, 8))
    vision = (["<|image_start|>", "<|image_end|>"] + _reserved("vision", 2) +
              ["<|tile_x_separator|>", "<|tile_y_separator|>"] + _reserved("vision", 4, 2) +
              ["<|image|>"] + _reserved("vision", 1, 6) + ["<|patch|>"] + _reserved("vision", 1041, 7))
    reasoning = _reserved("reasoning", 8) + ["<|reasoning_thinking_start|>", "<|reasoning_thinking_end|>"]
    named = basic + text + vision + reasoning
    tokens = named + [f"<|reserved_special_token_{i}|>" for i in range(NUM_SPECIAL_SLOTS - len(named))]
    assert len(tokens) == NUM_SPECIAL_SLOTS and len(set(tokens)) == NUM_SPECIAL_SLOTS
    assert tokens.index("<|eot|>") == 8 and tokens.index("<|patch|>") == 92
    assert tokens.index("<|finetune_right_pad|>") == 18 and tokens.index("<|image_start|>") == 80
    assert tokens.index("<|reasoning_thinking_end|>") == 1143 and tokens[1144] == "<|reserved_special_token_0|>"
    return tokens
