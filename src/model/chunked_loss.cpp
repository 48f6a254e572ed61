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

class ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& hidden,
                            const at::Tensor& weight, const at::Tensor& targets, int64_t chunk_tokens) {
    const at::ScalarType dtype = compute_dtype(hidden, weight);
    // Below autocast: the casts are explicit, and backward (which runs outside any autocast scope) uses the
    // same dtype.
    c10::impl::ExcludeDispatchKeyGuard below(c10::autocast_dispatch_keyset);
    const at::Tensor weight_c = cast_weight(weight, dtype);
    at::Tensor sum = at::zeros({}, hidden.options().dtype(at::kFloat));
    for (const auto& [begin, end] : counted_chunks(targets, chunk_tokens)) {
      sum += chunk_nll_sum(
          chunk_log_probs(hidden.slice(0, begin, end), weight_c, targets.slice(0, begin, end), dtype));
    }
    ctx->save_for_backward({hidden, weight, targets});
    ctx->saved_data["chunk_tokens"] = chunk_tokens;
    ctx->saved_data["dtype"] = static_cast<int64_t>(dtype);
    return sum;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &weight = saved[1], &targets = saved[2];
    const int64_t chunk_tokens = ctx->saved_data["chunk_tokens"].toInt();
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    const bool want_hidden = ctx->needs_input_grad(0), want_weight = ctx->needs_input_grad(1);
    const at::Tensor grad_sum = grad_outputs[0].to(at::kFloat);
    const at::Tensor weight_c = cast_weight(weight, dtype);
    at::Tensor grad_hidden = want_hidden ? at::zeros_like(hidden) : at::Tensor();
    // Accumulated in float32 over chunks, whatever the compute dtype.
    at::Tensor grad_weight =
        want_weight ? at::zeros(weight.sizes(), weight.options().dtype(at::kFloat)) : at::Tensor();
    for (const auto& [begin, end] : counted_chunks(targets, chunk_tokens)) {
      const at::Tensor h = hidden.slice(0, begin, end).to(dtype);
      const ChunkLogProbs c = chunk_log_probs(h, weight_c, targets.slice(0, begin, end), dtype);
      // d(-log p_t)/d logits = softmax - onehot(t), on counted rows only.
      at::Tensor grad_logits = c.log_probs.exp_();  // in place: the log-probabilities are not needed again
      grad_logits.scatter_add_(1, c.index.unsqueeze(1),
                               at::full({c.index.size(0), 1}, -1.0, grad_logits.options()));
      grad_logits.mul_((c.mask.to(at::kFloat) * grad_sum).unsqueeze(1));
      const at::Tensor g = grad_logits.to(dtype);
      if (want_hidden) grad_hidden.slice(0, begin, end).copy_(at::matmul(g, weight_c));
      if (want_weight) grad_weight.add_(at::matmul(g.t(), h));
    }
    return {grad_hidden, want_weight ? grad_weight.to(weight.scalar_type()) : at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

LossSum chunked_cross_entropy_sum(const at::Tensor& hidden, const at::Tensor& weight,
                                  const at::Tensor& targets, int64_t chunk_tokens) {
  const Flat flat = flatten(hidden, weight, targets, chunk_tokens);
  const at::Tensor sum = ChunkedCrossEntropy::apply(flat.hidden, weight, flat.targets, chunk_tokens);
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
