#include "model/chunked_loss.h"

#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include "core/error.h"
#include "model/weight_cast.h"

namespace l4::model {
namespace {

// The dtype the unchunked lm_head would run its matmul in.
at::ScalarType compute_dtype(const at::Tensor& hidden, const at::Tensor& weight) {
  const at::DeviceType device = hidden.device().type();
  if (at::autocast::is_autocast_enabled(device)) return at::autocast::get_autocast_dtype(device);
  return at::promote_types(hidden.scalar_type(), weight.scalar_type());
}

struct Flat {
  at::Tensor hidden;   // [N, D]
  at::Tensor targets;  // [N] int64
};

Flat flatten(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
             int64_t chunk_tokens) {
  L4_CHECK(chunk_tokens > 0, "cross-entropy chunk must be positive, got {}", chunk_tokens);
  L4_CHECK(weight.dim() == 2 && hidden.size(-1) == weight.size(1),
           "chunked cross-entropy: hidden {} does not match the output projection {}",
           c10::str(hidden.sizes()), c10::str(weight.sizes()));
  const at::Tensor flat_targets = targets.reshape({-1}).to(at::kLong);
  L4_CHECK(hidden.numel() / hidden.size(-1) == flat_targets.numel(),
           "chunked cross-entropy: hidden {} and targets {} cover different positions",
           c10::str(hidden.sizes()), c10::str(targets.sizes()));
  return {hidden.reshape({-1, hidden.size(-1)}), flat_targets};
}

// Chunks [begin, end) of N positions that hold at least one counted target (one host read for all chunks).
std::vector<std::pair<int64_t, int64_t>> counted_chunks(const at::Tensor& targets, int64_t chunk_tokens) {
  const int64_t n = targets.numel();
  const int64_t chunks = (n + chunk_tokens - 1) / chunk_tokens;
  std::vector<std::pair<int64_t, int64_t>> out;
  if (n == 0) return out;
  const at::Tensor counted = at::constant_pad_nd(targets.ne(kIgnoreIndex), {0, chunks * chunk_tokens - n}, 0)
                                 .view({chunks, chunk_tokens})
                                 .any(1)
                                 .to(at::kCPU)
                                 .contiguous();
  const bool* any = counted.data_ptr<bool>();
  for (int64_t c = 0; c < chunks; ++c) {
    if (any[c]) out.emplace_back(c * chunk_tokens, std::min(n, (c + 1) * chunk_tokens));
  }
  return out;
}

// log-softmax of one chunk's logits in float32, and the targets with ignored positions clamped to 0.
struct ChunkLogProbs {
  at::Tensor log_probs;  // [n, V] float32
  at::Tensor mask;       // [n] bool: counted
  at::Tensor index;      // [n] int64: target, 0 where ignored
  at::Tensor logits;     // [n, V] compute dtype, only when asked for (greedy predictions)
};

// Rows of 16-bit logits widened to float32 at a time for the log-softmax: the whole chunk is never held in
// both widths plus the output (ATen's CPU log-softmax cannot read bf16 and write float32).
constexpr int64_t kWidenRows = 64;

ChunkLogProbs chunk_log_probs(const at::Tensor& hidden, const at::Tensor& weight_c, const at::Tensor& targets,
                              at::ScalarType dtype, bool keep_logits = false) {
  const at::Tensor logits = at::matmul(hidden.to(dtype), weight_c.t());
  ChunkLogProbs out;
  if (keep_logits) out.logits = logits;
  if (logits.scalar_type() == at::kFloat) {
    out.log_probs = at::log_softmax(logits, -1);
  } else {
    out.log_probs = at::empty(logits.sizes(), logits.options().dtype(at::kFloat));
    for (int64_t r = 0; r < logits.size(0); r += kWidenRows) {
      const int64_t rows = std::min(kWidenRows, logits.size(0) - r);
      at::Tensor block = out.log_probs.narrow(0, r, rows);
      at::log_softmax_out(block, logits.narrow(0, r, rows).to(at::kFloat), -1);
    }
  }
  out.mask = targets.ne(kIgnoreIndex);
  out.index = targets.masked_fill(out.mask.logical_not(), 0);
  return out;
}

at::Tensor chunk_nll_sum(const ChunkLogProbs& c) {
  return -(c.log_probs.gather(1, c.index.unsqueeze(1)).squeeze(1) * c.mask.to(at::kFloat)).sum();
}

// d(-log p_t)/d logits = softmax - onehot(t) on counted rows (zero elsewhere), from the chunk's
// log-probabilities (overwritten: they are not needed again), in float32.
at::Tensor nll_logit_gradient(ChunkLogProbs& c) {
  at::Tensor grad_logits = c.log_probs.exp_();
  grad_logits.scatter_add_(1, c.index.unsqueeze(1),
                           at::full({c.index.size(0), 1}, -1.0, grad_logits.options()));
  return grad_logits.mul_(c.mask.to(at::kFloat).unsqueeze(1));
}

// The loss's gradients for an upstream gradient of 1, accumulated chunk by chunk.
struct UnitGradients {
  at::Tensor hidden;  // [N, D] in hidden's dtype, or undefined
  at::Tensor weight;  // [V, D] float32, or undefined

  UnitGradients(const at::Tensor& h, const at::Tensor& w, bool want_hidden, bool want_weight)
      : hidden(want_hidden ? at::zeros_like(h) : at::Tensor()),
        weight(want_weight ? at::zeros(w.sizes(), w.options().dtype(at::kFloat)) : at::Tensor()) {}

  void add_chunk(ChunkLogProbs& c, const at::Tensor& h_c, const at::Tensor& weight_c, int64_t begin,
                 at::ScalarType dtype) {
    const at::Tensor g = nll_logit_gradient(c).to(dtype);
    if (hidden.defined()) hidden.slice(0, begin, begin + h_c.size(0)).copy_(at::matmul(g, weight_c));
    if (weight.defined()) weight.add_(at::matmul(g.t(), h_c));
  }
};

// With gradients wanted, forward computes them right away from the chunk's log-probabilities, so that
// backward only scales them by the upstream gradient: each chunk's logits are made once per step, not
// again in backward (for the small benchmark model that is a third of the output projection's matmul
// work, ~6% of a dense step). The loss is a scalar, so its gradients are the unit ones times that scalar.
// Holding them from forward to backward costs no peak memory: the loss is the last op of the forward
// pass and the first of the backward pass, and backward would allocate the same tensors. Without
// gradients (evaluation under no-grad), backward is never run and forward makes only the loss.
class ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden,
                            const at::Tensor& weight, const at::Tensor& targets, int64_t chunk_tokens,
                            bool grad_enabled) {
    const at::ScalarType dtype = compute_dtype(hidden, weight);
    // Below autocast: the casts are explicit and the same whatever the caller's autocast state.
    c10::impl::ExcludeDispatchKeyGuard below(c10::autocast_dispatch_keyset);
    const at::Tensor weight_c = cast_weight(weight, dtype);
    const bool want_hidden = grad_enabled && hidden.requires_grad();
    const bool want_weight = grad_enabled && weight.requires_grad();
    UnitGradients grads(hidden, weight, want_hidden, want_weight);
    at::Tensor sum = at::zeros({}, hidden.options().dtype(at::kFloat));
    for (const auto& [begin, end] : counted_chunks(targets, chunk_tokens)) {
      const at::Tensor h_c = hidden.slice(0, begin, end).to(dtype);
      ChunkLogProbs c = chunk_log_probs(h_c, weight_c, targets.slice(0, begin, end), dtype);
      sum += chunk_nll_sum(c);
      if (want_hidden || want_weight) grads.add_chunk(c, h_c, weight_c, begin, dtype);
    }
    ctx->save_for_backward({grads.hidden, grads.weight});
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    return sum;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &unit_hidden = saved[0], &unit_weight = saved[1];
    const auto weight_dtype = static_cast<at::ScalarType>(ctx->saved_data["weight_dtype"].toInt());
    const at::Tensor grad_sum = grad_outputs[0].to(at::kFloat);
    at::Tensor grad_hidden, grad_weight;
    if (ctx->needs_input_grad(0)) {
      L4_ASSERT(unit_hidden.defined(), "chunked cross-entropy: no gradient for hidden was made in forward");
      grad_hidden = (unit_hidden.to(at::kFloat) * grad_sum).to(unit_hidden.scalar_type());
    }
    if (ctx->needs_input_grad(1)) {
      L4_ASSERT(unit_weight.defined(),
                "chunked cross-entropy: no gradient for the weight was made in forward");
      grad_weight = (unit_weight * grad_sum).to(weight_dtype);
    }
    return {grad_hidden, grad_weight, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

LossSum chunked_cross_entropy_sum(const at::Tensor& hidden, const at::Tensor& weight,
                                  const at::Tensor& targets, int64_t chunk_tokens) {
  const Flat flat = flatten(hidden, weight, targets, chunk_tokens);
  const at::Tensor sum = ChunkedCrossEntropy::apply(flat.hidden, weight, flat.targets, chunk_tokens,
                                                    c10::GradMode::is_enabled());
  return {sum, flat.targets.ne(kIgnoreIndex).sum()};
}

ChunkedEval chunked_cross_entropy_eval(const at::Tensor& hidden, const at::Tensor& weight,
                                       const at::Tensor& targets, int64_t chunk_tokens) {
  torch::NoGradGuard no_grad;
  const Flat flat = flatten(hidden, weight, targets, chunk_tokens);
  const at::ScalarType dtype = compute_dtype(hidden, weight);
  c10::impl::ExcludeDispatchKeyGuard below(c10::autocast_dispatch_keyset);
  const at::Tensor weight_c = cast_weight(weight, dtype);
  at::Tensor sum = at::zeros({}, hidden.options().dtype(at::kFloat));
  at::Tensor predictions = at::full_like(flat.targets, -1);
  at::Tensor token_nll = at::zeros(flat.targets.sizes(), hidden.options().dtype(at::kFloat));
  for (const auto& [begin, end] : counted_chunks(flat.targets, chunk_tokens)) {
    const ChunkLogProbs c =
        chunk_log_probs(flat.hidden.slice(0, begin, end), weight_c, flat.targets.slice(0, begin, end), dtype,
                        /*keep_logits=*/true);
    sum += chunk_nll_sum(c);
    predictions.slice(0, begin, end).copy_(c.logits.argmax(-1));
    token_nll.slice(0, begin, end)
        .copy_(-(c.log_probs.gather(1, c.index.unsqueeze(1)).squeeze(1) * c.mask.to(at::kFloat)));
  }
  return {{sum, flat.targets.ne(kIgnoreIndex).sum()},
          predictions.view(targets.sizes()),
          token_nll.view(targets.sizes())};
}

}  // namespace l4::model
