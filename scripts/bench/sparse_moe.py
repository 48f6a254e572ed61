"""A sparse PyTorch reference for the benchmark: HF transformers' Llama 4 text model with each MoE layer's
forward replaced by one that sends every token only to its chosen experts.

HF's `Llama4TextMoe` runs every token through every expert (scaled by a router score of 0 for the experts it did
not choose) so its MoE cost grows with the number of experts. Here the tokens are sorted by expert and each
expert multiplies only its own rows, with `torch._grouped_mm` where this torch has it on CPU (one call for all
experts) or else a loop over the experts' slices of the sorted tokens, as torchtitan and torchtune do. The
arithmetic per token is HF's: the sigmoid router score scales the expert's input, the shared expert is added,
so logits and loss equal HF's on the same weights (tests/bench/sparse_moe_test.py checks it).
"""
import types

import torch
import torch.nn.functional as F

# "grouped" (torch._grouped_mm) or "loop"; `use_sparse_experts` picks grouped when this torch has it.
MODES = ("grouped", "loop")


def grouped_mm_available():
    """Whether torch._grouped_mm runs here on CPU (2-D tokens x 3-D expert weights with offsets, float32)."""
    if not hasattr(torch, "_grouped_mm"):
        return False
    try:
        x, w = torch.ones(4, 8), torch.ones(2, 8, 8)
        out = torch._grouped_mm(x, w, offs=torch.tensor([1, 4], dtype=torch.int32))
        return bool(torch.equal(out, torch.full((4, 8), 8.0)))
    except RuntimeError:
        return False


def _autocast(*tensors):
    """The expert matmuls in the dtype HF's torch.bmm gets under CPU autocast (bmm autocasts, _grouped_mm not)."""
    if not torch.is_autocast_enabled("cpu"):
        return tensors
    dtype = torch.get_autocast_dtype("cpu")
    return tuple(t.to(dtype) for t in tensors)


def experts_grouped(experts, routed_in, counts):
    """All experts in two grouped matmuls over the expert-sorted rows (offs: each expert's end row)."""
    offs = torch.cumsum(counts, 0, dtype=torch.int32)
    x, gate_up_proj, down_proj = _autocast(routed_in, experts.gate_up_proj, experts.down_proj)
    gate, up = torch._grouped_mm(x, gate_up_proj, offs=offs).chunk(2, dim=-1)
    return torch._grouped_mm(up * experts.act_fn(gate), down_proj, offs=offs)


def experts_loop(experts, routed_in, counts):
    """One matmul pair per expert that received tokens, over its slice of the expert-sorted rows."""
    outputs, start = [], 0
    for expert, count in enumerate(counts.tolist()):
        if count == 0:
            continue
        rows = routed_in[start:start + count]
        start += count
        gate, up = (rows @ experts.gate_up_proj[expert]).chunk(2, dim=-1)
        outputs.append((up * experts.act_fn(gate)) @ experts.down_proj[expert])
    return torch.cat(outputs)


def sparse_moe_forward(self, hidden_states):
    """Llama4TextMoe.forward with the same result, computing only the chosen (token, expert) pairs."""
    x = hidden_states.reshape(-1, self.hidden_dim)
    router_logits = F.linear(x, self.router.weight)
    top_value, top_index = torch.topk(router_logits, self.top_k, dim=1)
    scores = torch.sigmoid(top_value.float()).to(top_value.dtype)
    chosen = top_index.reshape(-1)                    # (token, k) pairs, token-major
    order = torch.argsort(chosen, stable=True)        # pairs grouped by expert
    token = order // self.top_k
    routed_in = x[token] * scores.reshape(-1)[order].unsqueeze(1)
    counts = torch.bincount(chosen, minlength=self.num_experts)
    routed_out = self.sparse_experts(self.experts, routed_in, counts)
    out = self.shared_expert(x)
    return out.index_add(0, token, routed_out.to(out.dtype)), router_logits


def use_sparse_experts(model, mode=None):
    """Replaces the forward of every Llama4TextMoe in model; returns (number replaced, mode used)."""
    from transformers.models.llama4.modeling_llama4 import Llama4TextMoe

    if mode is None:
        mode = "grouped" if grouped_mm_available() else "loop"
    if mode not in MODES:
        raise ValueError(f"sparse experts mode '{mode}': expected one of {', '.join(MODES)}")
    if mode == "grouped" and not grouped_mm_available():
        raise RuntimeError("sparse experts mode 'grouped': torch._grouped_mm does not run on CPU in torch "
                           f"{torch.__version__}; use mode 'loop'")
    replaced = 0
    for module in model.modules():
        if isinstance(module, Llama4TextMoe):
            module.sparse_experts = experts_grouped if mode == "grouped" else experts_loop
            module.forward = types.MethodType(sparse_moe_forward, module)
            replaced += 1
    return replaced, mode
