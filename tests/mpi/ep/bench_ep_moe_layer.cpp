// Benchmark (not a test): share of the real model's MoE layer time (router, shared expert, expert dispatch,
// local experts; forward + backward) spent in all-to-all, with the experts of an architecture file sharded
// over all ranks. Run under mpirun; rank 0 prints one JSON line.
//   cmake --build build --target bench_ep_moe_layer
//   mpirun -np 2 build/bin/bench_ep_moe_layer configs/small.yaml [tokens_per_rank=4096] [iters=10]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "config/model_arch.h"
#include "model/expert_parallel.h"
#include "model/moe.h"
#include "mpi/timed_communicator.h"
#include "parallel/communicator.h"
#include "parallel/mpi_runtime.h"
#include "parallel/process_grid.h"
#include "parallel/rank_rng.h"

namespace {

using l4::parallel::Communicator;
using l4::parallel::ReduceOp;

using l4::parallel::testing::now_s;
using l4::parallel::testing::TimedCommunicator;

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_ep_moe_layer ARCH.yaml [tokens_per_rank] [iters]\n");
    return 2;
  }
  const l4::config::TextConfig text = l4::config::load_model_arch(argv[1]).text_config;
  const int64_t tokens = argc > 2 ? std::atoll(argv[2]) : 4096;
  const int iters = argc > 3 ? std::atoi(argv[3]) : 10;
  auto& runtime = l4::parallel::init_distributed();
  Communicator& world = runtime.world();
  const int64_t experts = text.num_local_experts;
  l4::parallel::ProcessGrid grid(world, world.size(), experts);
  TimedCommunicator timed(grid.ep_comm());
  l4::model::Moe moe(text, at::TensorOptions().dtype(at::kFloat),
                     l4::model::ExpertShard{grid.expert_begin(), grid.experts_per_rank()});
  for (auto& item : moe->named_parameters()) {
    const auto init = l4::parallel::normal_init(text.initializer_range);
    if (item.key().rfind("experts.", 0) == 0) {
      l4::parallel::init_experts(item.value(), grid.expert_begin(), 7, item.key(), init);
    } else {
      l4::parallel::init_replicated(item.value(), 7, item.key(), init);
    }
  }
  std::shared_ptr<l4::model::ExpertParallelRunner> runner;
  if (world.size() > 1) {
    runner = std::make_shared<l4::model::ExpertParallelRunner>(timed, experts);
    moe->expert_runner = [runner](const at::Tensor& r, const std::vector<int64_t>& c, const at::Tensor& gu,
                                  const at::Tensor& d) { return (*runner)(r, c, gu, d); };
  }
  torch::manual_seed(world.rank());
  const at::Tensor x0 = torch::randn({tokens, text.hidden_size});
  double total = 0.0;
  for (int it = 0; it <= iters; ++it) {
    world.barrier();
    const double a2a_before = timed.a2a_seconds;
    const double t0 = now_s();
    at::Tensor x = x0.clone().requires_grad_();
    moe->forward(x).sum().backward();
    world.barrier();
    if (it == 0) {
      timed.a2a_seconds = a2a_before;  // warm-up
      continue;
    }
    total += now_s() - t0;
  }
  at::Tensor t = torch::tensor({total, timed.a2a_seconds}, torch::kDouble);
  world.all_reduce(t, ReduceOp::kAvg);
  if (world.rank() == 0) {
    std::printf(
        "{\"ranks\": %d, \"arch\": \"%s\", \"tokens_per_rank\": %lld, \"moe_layer_ms\": %.3f, "
        "\"all_to_all_ms\": %.3f, \"all_to_all_share\": %.3f}\n",
        world.size(), argv[1], static_cast<long long>(tokens), 1e3 * t[0].item<double>() / iters,
        1e3 * t[1].item<double>() / iters, t[1].item<double>() / t[0].item<double>());
  }
  return 0;
}
