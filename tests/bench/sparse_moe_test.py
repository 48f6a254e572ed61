"""The benchmark's sparse PyTorch reference (scripts/bench/sparse_moe.py) computes what HF transformers computes:
a small random Llama 4 text model saved to an HF directory is loaded twice, once as is and once with the sparse
MoE forward; logits and loss must agree within 1e-5 and the gradients within 1e-4 relative, for top-1 and
top-2 routing and for both expert kernels (torch._grouped_mm where it runs, the per-expert loop always)."""
import os
import sys
import tempfile

import torch
import yaml
from transformers import Llama4ForCausalLM, Llama4TextConfig
from transformers.models.llama4.modeling_llama4 import Llama4TextExperts

SOURCE = os.environ.get("L4_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(SOURCE, "scripts", "bench"))
import sparse_moe  # noqa: E402

failures = []


def check(ok, message):
    print(("ok:   " if ok else "FAIL: ") + message, flush=True)
    if not ok:
        failures.append(message)


def save_random_model(directory, top_k):
    """configs/tiny.yaml's text model with 8 experts, random weights large enough to spread the routing."""
    with open(os.path.join(SOURCE, "configs", "tiny.yaml")) as f:
        text = yaml.safe_load(f)["text_config"]
    text.update(num_local_experts=8, num_experts_per_tok=top_k, vocab_size=512, bos_token_id=1,
                eos_token_id=2, pad_token_id=3)
    torch.manual_seed(top_k)
    model = Llama4ForCausalLM(Llama4TextConfig(**text)).float()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    model.save_pretrained(directory)


def run(model, tokens):
    """Logits, loss and gradients of one training-mode forward/backward; counts calls of HF's experts."""
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in model.modules()
             if isinstance(m, Llama4TextExperts)]
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(input_ids=tokens, labels=tokens)
    out.loss.backward()
    for h in hooks:
        h.remove()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.logits.detach(), out.loss.item(), grads, len(calls)


def main():
    modes = ["loop"] + (["grouped"] if sparse_moe.grouped_mm_available() else [])
    print(f"torch {torch.__version__}; sparse expert kernels: {', '.join(modes)}")
    torch.manual_seed(0)
    tokens = torch.randint(4, 512, (2, 40))  # 40 > attention_chunk_size 16: chunked attention included
    with tempfile.TemporaryDirectory() as tmp:
        for top_k in (1, 2):
            directory = os.path.join(tmp, f"top{top_k}")
            save_random_model(directory, top_k)
            hf = Llama4ForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="sdpa")
            ref_logits, ref_loss, ref_grads, hf_calls = run(hf, tokens)
            check(hf_calls == 2, f"top-{top_k}: HF runs its dense experts in both MoE layers ({hf_calls} calls)")
            for mode in modes:
                sparse = Llama4ForCausalLM.from_pretrained(directory, dtype=torch.float32,
                                                           attn_implementation="sdpa")
                replaced, used = sparse_moe.use_sparse_experts(sparse, mode)
                check(replaced == 2 and used == mode, f"top-{top_k} {mode}: both MoE layers replaced ({replaced})")
                logits, loss, grads, calls = run(sparse, tokens)
                check(calls == 0, f"top-{top_k} {mode}: HF's dense experts are not run ({calls} calls)")
                diff = (logits - ref_logits).abs().max().item()
                check(diff <= 1e-5, f"top-{top_k} {mode}: logits max-abs diff {diff:.2e} <= 1e-5")
                check(abs(loss - ref_loss) <= 1e-5, f"top-{top_k} {mode}: loss {loss:.6f} vs HF {ref_loss:.6f}")
                check(grads.keys() == ref_grads.keys(), f"top-{top_k} {mode}: the same parameters get gradients")
                worst, worst_name = 0.0, ""
                for name, ref in ref_grads.items():
                    if name not in grads:
                        continue
                    rel = ((grads[name] - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item()
                    if rel > worst:
                        worst, worst_name = rel, name
                check(worst <= 1e-4, f"top-{top_k} {mode}: worst gradient rel diff {worst:.2e} ({worst_name}) <= 1e-4")
    try:
        sparse_moe.use_sparse_experts(torch.nn.Linear(1, 1), "dense")
        check(False, "an unknown mode is refused")
    except ValueError as e:
        check("grouped, loop" in str(e), f"an unknown mode is refused: {e}")
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
