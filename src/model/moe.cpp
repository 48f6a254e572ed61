#include "model/moe.h"

#include <torch/torch.h>

#include <limits>

#include "core/error.h"
#include "model/grouped_experts.h"

namespace l4::model {

at::Tensor run_experts(const at::Tensor& rows_sorted_by_expert, const std::vector<int64_t>& rows_per_expert,
                       const at::Tensor& gate_up_proj, const at::Tensor& down_proj) {
  return grouped_expert_mlp(rows_sorted_by_expert, rows_per_expert, gate_up_proj, down_proj);
}

namespace {

// x.index_select(0, perm) for a permutation, with the backward as the inverse gather (index_select's own
// backward is an index_add, slow on the CPU).
class PermuteRows : public torch::autograd::Function<PermuteRows> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& perm, const at::Tensor& inverse) {
    ctx->saved_data["inverse"] = inverse;
    return x.index_select(0, perm);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    return {grads[0].index_select(0, ctx->saved_data["inverse"].toTensor()), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

ExpertsImpl::ExpertsImpl(int64_t first, int64_t held, int64_t total, int64_t hidden, int64_t intermediate,
                         const at::TensorOptions& options)
    : first_(first), total_(total) {
  gate_up_proj = register_parameter("gate_up_proj", torch::empty({held, hidden, 2 * intermediate}, options));
  down_proj = register_parameter("down_proj", torch::empty({held, intermediate, hidden}, options));
}

parallel::Placement ExpertsImpl::placement() const {
  return parallel::Placement::sharded(parallel::ShardGroup::kExpertParallel, 0, first_, total_);
}

MoeImpl::MoeImpl(const config::TextConfig& config, const at::TensorOptions& options, const ExpertShard& shard)
    : num_experts_(config.num_local_experts), top_k_(config.num_experts_per_tok) {
  L4_CHECK(top_k_ >= 1 && top_k_ <= num_experts_,
           "model config: num_experts_per_tok ({}) must be between 1 and num_local_experts ({})", top_k_,
           num_experts_);
  const int64_t held = shard.count > 0 ? shard.count : num_experts_;
  L4_CHECK(shard.begin >= 0 && shard.count >= 0 && shard.begin + held <= num_experts_,
           "expert shard [{}, {}) does not fit num_local_experts ({})", shard.begin, shard.begin + held,
           num_experts_);
  const int64_t d = config.hidden_size;
  experts = register_module("experts",
                            Experts(shard.begin, held, num_experts_, d, config.intermediate_size, options));
  router = register_module("router", Linear(d, num_experts_, options));
  shared_expert = register_module("shared_expert", Mlp(d, config.intermediate_size, options));
}

at::Tensor MoeImpl::forward(const at::Tensor& x) {
  const int64_t d = x.size(-1);
  const at::Tensor flat = x.reshape({-1, d});
  const at::Tensor logits = router->forward(flat);  // [N, E]
  const auto [top_logits, top_experts] = logits.topk(top_k_, /*dim=*/1);
  // Sigmoid in float32 as HF does, then back to the model dtype that scales the input.
  const at::Tensor gates = torch::sigmoid(top_logits.to(torch::kFloat)).to(flat.scalar_type());

  // Pair p = token * k + slot, rows scaled by their gate (HF scales the input, in the model dtype).
  const int64_t n = flat.size(0);
  const at::Tensor pair_rows =
      top_k_ == 1 ? flat * gates : (flat.unsqueeze(1) * gates.unsqueeze(2)).reshape({-1, d});
  // Sort the pairs by expert (stable: tokens stay in order within an expert).
  const at::Tensor pair_expert = top_experts.reshape({-1});
  const at::Tensor order = pair_expert.argsort(/*stable=*/true);
  const at::Tensor inverse =
      torch::empty_like(order).scatter_(0, order, torch::arange(n * top_k_, order.options()));
  const at::Tensor counts = torch::bincount(pair_expert, {}, num_experts_);
  const at::Tensor counts_cpu = counts.to(torch::kCPU);
  const std::vector<int64_t> rows_per_expert(counts_cpu.data_ptr<int64_t>(),
                                             counts_cpu.data_ptr<int64_t>() + num_experts_);
  const at::Tensor rows = PermuteRows::apply(pair_rows, order, inverse);
  const at::Tensor routed = expert_runner(rows, rows_per_expert, experts->gate_up_proj, experts->down_proj);
  at::Tensor routed_pairs = PermuteRows::apply(routed, inverse, order);
  if (top_k_ > 1) routed_pairs = routed_pairs.view({n, top_k_, d}).sum(1);
  const at::Tensor out = shared_expert->forward(flat) + routed_pairs;

  last_expert_counts = counts.detach();
  last_router_loss = at::Tensor();
  if (loss_options.aux_loss_coef != 0.0 || loss_options.z_loss_coef != 0.0) {
    const at::Tensor logits32 = logits.to(torch::kFloat);
    at::Tensor loss = torch::zeros({}, logits32.options());
    if (loss_options.aux_loss_coef != 0.0) {
      const at::Tensor fraction = counts.to(torch::kFloat) / static_cast<double>(flat.size(0) * top_k_);
      const at::Tensor mean_prob = torch::softmax(logits32, -1).mean(0);
      loss = loss + loss_options.aux_loss_coef * num_experts_ * (fraction * mean_prob).sum();
    }
    if (loss_options.z_loss_coef != 0.0) {
      loss = loss + loss_options.z_loss_coef * torch::logsumexp(logits32, -1).pow(2).mean();
    }
    last_router_loss = loss;
  }
  return out.view(x.sizes());
}

at::Tensor moe_dense_reference(MoeImpl& moe, const at::Tensor& x) {
  const int64_t d = x.size(-1);
  const at::Tensor flat = x.reshape({-1, d});
  const at::Tensor logits = moe.router->forward(flat);
  const auto [top_logits, top_experts] = logits.topk(moe.top_k(), 1);
  const at::Tensor scores = torch::sigmoid(
      torch::full_like(logits, -std::numeric_limits<double>::infinity()).scatter(1, top_experts, top_logits));
  // [E, N, D]: every expert sees every token, scaled by its gate (0 where not chosen).
  const at::Tensor inputs = flat.unsqueeze(0) * scores.t().unsqueeze(2);
  const at::Tensor gate_up = torch::bmm(inputs, moe.experts->gate_up_proj);
  const auto halves = gate_up.chunk(2, -1);
  const at::Tensor routed = torch::bmm(halves[1] * at::silu(halves[0]), moe.experts->down_proj).sum(0);
  return (moe.shared_expert->forward(flat) + routed).view(x.sizes());
}

}  // namespace l4::model
