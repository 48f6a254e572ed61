"""`llama4 generate` options against transformers' generate on the bundled tiny base model:
  * greedy with --system: the ids equal HF's greedy generation on apply_chat_template([system, user]);
  * --temperature/--top-k/--top-p/--seed: the sampled ids equal HF's generate(do_sample=True) after
    torch.manual_seed(seed) (same warpers, same generator), and another seed samples otherwise;
  * --interactive: each turn equals HF's greedy answer to the whole conversation so far (the reply of the
    previous turn included), while our KV cache is kept across turns;
  * --stop ends the answer before a text that spans several tokens (streamed text never shows it);
  * --max-tokens is the older name of --max-new-tokens; bad sampling settings end in exit 1 naming the flag."""
import os
import subprocess
import sys

import torch
from transformers import Llama4ForCausalLM, PreTrainedTokenizerFast

BINARY = os.environ["L4_BINARY"]
SOURCE = os.environ["L4_SOURCE_DIR"]
MODEL = os.path.join(SOURCE, "data", "models", "tiny-base")
failures = []


def check(condition, what):
    print(("ok:   " if condition else "FAIL: ") + what)
    if not condition:
        failures.append(what)


def ours(*args, stdin=None):
    r = subprocess.run([BINARY, "generate", "--model", MODEL, *args], capture_output=True, text=True,
                       input=stdin, timeout=300)
    return r


def ids_of(r):
    return [[int(x) for x in line.split()] for line in r.stdout.strip("\n").split("\n")]


def main():
    torch.set_num_threads(1)
    tok = PreTrainedTokenizerFast.from_pretrained(MODEL)
    model = Llama4ForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    stops = [tok.convert_tokens_to_ids(t) for t in ("<|eot|>", "<|end_of_text|>")] + list(model.config.eos_token_id)

    def hf(messages, new, **sampling):
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        ids = ids["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=new, eos_token_id=stops, pad_token_id=stops[0],
                                 do_sample=bool(sampling), **sampling)
        gen = out[0, ids.shape[1]:].tolist()
        return gen[:-1] if gen and gen[-1] in stops else gen  # HF keeps the stop token; we leave it out

    system, question = "You answer briefly.", "Where do rivers flow?"
    r = ours("--system", system, "--prompt", question, "--max-new-tokens", "24", "--ids")
    theirs = hf([{"role": "system", "content": system}, {"role": "user", "content": question}], 24)
    check(r.returncode == 0 and ids_of(r) == [theirs], f"greedy with --system equals HF ({len(theirs)} tokens)")

    sampling = dict(temperature=0.8, top_k=40, top_p=0.9)
    flags = ["--temperature", "0.8", "--top-k", "40", "--top-p", "0.9", "--max-new-tokens", "24", "--ids"]
    for seed in (5, 6):
        torch.manual_seed(seed)
        theirs = hf([{"role": "user", "content": question}], 24, **sampling)
        r = ours("--prompt", question, "--seed", str(seed), *flags)
        check(r.returncode == 0 and ids_of(r) == [theirs], f"sampled ids equal HF's for seed {seed}")
    a, b = ours("--prompt", question, "--seed", "5", *flags), ours("--prompt", question, "--seed", "6", *flags)
    check(ids_of(a) != ids_of(b), "another seed samples another answer")
    greedy = ours("--prompt", question, "--max-new-tokens", "24", "--ids")
    check(ids_of(a) != ids_of(greedy), "sampling differs from greedy")

    turns = ["Where do rivers flow?", "And what do they carry?", "Name one."]
    r = ours("--interactive", "--max-new-tokens", "16", "--ids", stdin="\n".join(turns) + "\n")
    got = ids_of(r) if r.returncode == 0 else []
    conversation, equal = [], len(got) == len(turns)
    for i, text in enumerate(turns):
        conversation.append({"role": "user", "content": text})
        theirs = hf(conversation, 16)
        equal &= i < len(got) and got[i] == theirs
        conversation.append({"role": "assistant", "content": tok.decode(theirs)})
    check(equal, f"--interactive: each of {len(turns)} turns equals HF's greedy answer to the conversation so far")

    text = ours("--prompt", question, "--max-new-tokens", "24")
    answer = text.stdout.rstrip("\n")
    pieces = [tok.decode([t]) for t in ids_of(greedy)[0]]
    # A stop text made of the end of one token and the start of the next, from the middle of the answer.
    mid = len(pieces) // 2
    stop = pieces[mid][-2:] + pieces[mid + 1][:2]
    cut = answer[: answer.find(stop)]
    r = ours("--prompt", question, "--max-new-tokens", "24", "--stop", stop)
    check(text.returncode == 0 and r.returncode == 0 and r.stdout.rstrip("\n") == cut and stop not in r.stdout,
          f"--stop {stop!r} (spanning two tokens) ends the answer before it: {r.stdout.strip()!r}")
    r = ours("--prompt", question, "--max-new-tokens", "24", "--stop", "this text never comes")
    check(r.stdout.rstrip("\n") == answer, "a stop text that never appears changes nothing")

    alias = ours("--prompt", question, "--max-tokens", "24", "--ids")
    check(alias.returncode == 0 and alias.stdout == greedy.stdout, "--max-tokens equals --max-new-tokens")
    for bad, named in [(["--top-k", "5"], "--temperature"), (["--temperature", "1", "--top-p", "1.5"], "--top-p"),
                       (["--temperature", "-1"], "--temperature"), (["--temperature", "1", "--top-k", "-2"], "--top-k"),
                       (["--max-new-tokens", "100000"], "max_position_embeddings"),
                       (["--max-tokens", "3", "--max-new-tokens", "3"], "--max-new-tokens")]:
        r = ours("--prompt", question, *bad)
        check(r.returncode == 1 and named in r.stderr, f"{' '.join(bad)}: exit 1 naming {named} ({r.returncode})")
    r = ours("--max-new-tokens", "3")
    check(r.returncode == 1 and "--interactive" in r.stderr, "no --prompt and no --interactive: exit 1")
    print("FAIL" if failures else "PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
