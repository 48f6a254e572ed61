#include "train/memory_check.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/log.h"

namespace l4::train {
namespace {

constexpr int64_t kBatchBytesPerToken = 5 * 8;  // input_ids, labels, position_ids, doc_ids, task_ids

}  // namespace

int64_t prefetch_bytes(const config::Recipe& recipe, int64_t world) {
  const int64_t rows = std::max<int64_t>(1, recipe.train.global_batch / std::max<int64_t>(1, world));
  // Saturating: a prefetch count meant to be "unbounded" must not wrap around to a small number.
  const double bytes = static_cast<double>(recipe.data.prefetch) * static_cast<double>(rows) *
                       static_cast<double>(recipe.data.seq_len) * kBatchBytesPerToken;
  return bytes >= 9e18 ? int64_t{9'000'000'000'000'000'000} : static_cast<int64_t>(bytes);
}

int64_t host_bytes_needed(const MemoryPlan& plan, const config::Recipe& recipe, bool eval_only) {
  const int64_t prefetch = eval_only ? 0 : prefetch_bytes(recipe, plan.inputs.world);
  if (eval_only || plan.inputs.device == "cuda") return plan.host_load + prefetch;
  return plan.total + prefetch;
}

std::string memory_drivers(const MemoryPlan& plan, const config::Recipe& recipe, bool eval_only) {
  std::vector<std::pair<int64_t, std::string>> parts;
  const bool host_training = !eval_only && plan.inputs.device == "cpu";
  const int64_t model =
      host_training ? plan.weights + plan.optimizer + plan.gradients + plan.grad_buckets : plan.weights;
  parts.push_back(
      {model, fmt::format("the model size, model.config (hidden_size {}, num_hidden_layers {}, "
                          "num_local_experts {}, vocab_size {}): {} of weights{}",
                          recipe.arch.text_config.hidden_size, recipe.arch.text_config.num_hidden_layers,
                          recipe.arch.text_config.num_local_experts, recipe.arch.text_config.vocab_size,
                          format_bytes(model), host_training ? ", gradients and optimizer state" : "")});
  if (host_training) {
    const int64_t step = plan.activations + plan.weight_copies +
                         std::max(plan.loss, plan.backward_workspace) + plan.allocator_slack +
                         plan.all_to_all;
    parts.push_back(
        {step, fmt::format("train.micro_batch x data.seq_len ({} x {} tokens per micro-batch): {} "
                           "of activations and loss",
                           recipe.train.micro_batch, recipe.data.seq_len, format_bytes(step))});
  }
  if (!eval_only) {
    const int64_t prefetch = prefetch_bytes(recipe, plan.inputs.world);
    parts.push_back({prefetch, fmt::format("data.prefetch x train.global_batch / ranks x data.seq_len ({} "
                                           "steps kept ready): {}",
                                           recipe.data.prefetch, format_bytes(prefetch))});
  }
  std::stable_sort(parts.begin(), parts.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::string out;
  for (const auto& [bytes, text] : parts) out += (out.empty() ? "" : "; ") + text;
  return out;
}

void check_training_memory(const config::Recipe& recipe, int64_t world, int64_t ranks_here, bool eval_only,
                           const AvailableMemory& available) {
  if (recipe.train.skip_memory_check || memory_check_skipped_by_env() || available.bytes < 0) return;
  MemoryPlan plan;
  try {
    plan = plan_memory(plan_inputs_from_recipe(recipe, world));
  } catch (const Error& e) {
    L4_LOG_DEBUG("memory check skipped: the layout cannot be planned: {}", e.what());
    return;
  }
  const int64_t per_rank = host_bytes_needed(plan, recipe, eval_only);
  const double total = static_cast<double>(per_rank) * static_cast<double>(std::max<int64_t>(1, ranks_here));
  const int64_t needed = total >= 9e18 ? int64_t{9'000'000'000'000'000'000} : static_cast<int64_t>(total);
  L4_LOG_DEBUG("memory check: {} per rank x {} rank(s) on this machine; {} available ({})",
               format_bytes(per_rank), ranks_here, format_bytes(available.bytes), available.source);
  const std::string what = fmt::format("{}: {} ({} per rank x {} rank(s) on this machine)", recipe.source,
                                       eval_only ? "evaluation" : "training", format_bytes(per_rank),
                                       std::max<int64_t>(1, ranks_here));
  require_memory(needed, available, what, memory_drivers(plan, recipe, eval_only),
                 "set train.skip_memory_check: true to start anyway");
}

}  // namespace l4::train
