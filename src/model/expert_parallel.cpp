#include "model/expert_parallel.h"

#include "core/error.h"
#include "model/llama4.h"
#include "parallel/communicator.h"

namespace l4::model {

namespace {

// [0, D] computed from the received rows and the weights rather than allocated: the backward of the row
// exchanges contains collectives, so the output must stay connected to the graph even on a rank that
// received no rows, or that rank would skip the reverse exchange its peers wait in.
at::Tensor empty_expert_output(const at::Tensor& rows, const at::Tensor& gate_up_proj,
                               const at::Tensor& down_proj) {
  const auto gate_up = rows.matmul(gate_up_proj[0]).chunk(2, -1);
  return (gate_up[1] * at::silu(gate_up[0])).matmul(down_proj[0]);
}

}  // namespace

ExpertParallelRunner::ExpertParallelRunner(parallel::Communicator& ep_comm, int64_t num_experts,
                                           parallel::DispatchOptions options)
    : dispatch_(ep_comm, num_experts, options) {}

at::Tensor ExpertParallelRunner::operator()(const at::Tensor& rows_sorted_by_expert,
                                            const std::vector<int64_t>& rows_per_expert,
                                            const at::Tensor& gate_up_proj, const at::Tensor& down_proj,
                                            const ExpertRunner& local) {
  const int64_t num_experts = dispatch_.num_experts();
  L4_ASSERT(static_cast<int64_t>(rows_per_expert.size()) == num_experts, "{} row counts for {} experts",
            rows_per_expert.size(), num_experts);
  L4_ASSERT(gate_up_proj.size(0) == dispatch_.local_experts(), "model holds {} experts, dispatch expects {}",
            gate_up_proj.size(0), dispatch_.local_experts());
  // Expert id of every row (the rows are already grouped by expert; the dispatch's stable sort keeps them).
  const at::Tensor counts = torch::tensor(rows_per_expert, torch::kLong);
  const at::Tensor expert_ids = torch::repeat_interleave(torch::arange(num_experts, torch::kLong), counts);
  const auto local_compute = [&](const at::Tensor& rows, const std::vector<int64_t>& rows_per_local_expert) {
    if (rows.size(0) == 0) return empty_expert_output(rows, gate_up_proj, down_proj);
    return local(rows, rows_per_local_expert, gate_up_proj, down_proj);
  };
  at::Tensor out = dispatch_(rows_sorted_by_expert, expert_ids, local_compute);
  stats_.rows += dispatch_.last_stats().rows;
  stats_.dropped += dispatch_.last_stats().dropped;
  return out;
}

std::shared_ptr<ExpertParallelRunner> install_expert_parallel(Llama4Impl& model,
                                                              parallel::Communicator& ep_comm,
                                                              parallel::DispatchOptions options) {
  const int64_t num_experts = model.text_config().num_local_experts;
  auto runner = std::make_shared<ExpertParallelRunner>(ep_comm, num_experts, options);
  const ExpertShard& shard = model.expert_shard();
  const int64_t local = num_experts / ep_comm.size();
  L4_CHECK(shard.begin == ep_comm.rank() * local && shard.count == local,
           "expert parallelism over {} ranks: rank {} must hold experts [{}, {}), the model holds [{}, {})",
           ep_comm.size(), ep_comm.rank(), ep_comm.rank() * local, (ep_comm.rank() + 1) * local, shard.begin,
           shard.begin + shard.count);
  for (auto& layer : model.model->decoder_layers) {
    if (!layer->moe) continue;
    const ExpertRunner local = layer->moe->expert_runner;
    layer->moe->expert_runner = [runner, local](const at::Tensor& rows, const std::vector<int64_t>& counts,
                                                const at::Tensor& gate_up, const at::Tensor& down) {
      return (*runner)(rows, counts, gate_up, down, local);
    };
  }
  return runner;
}

}  // namespace l4::model
