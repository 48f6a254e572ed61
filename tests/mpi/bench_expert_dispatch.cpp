// Benchmark (not a test): share of an MoE layer's forward + backward time spent in the all-to-all
// exchanges of ExpertDispatch. Run under mpirun; rank 0 prints one JSON line.
//   bench_expert_dispatch [tokens_per_rank=4096] [hidden=256] [intermediate=512] [experts=16] [iters=10]
// Defaults follow configs/small.yaml (16 experts, top-1, hidden 256, expert intermediate 512).
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "mpi/timed_communicator.h"
#include "parallel/communicator.h"
#include "parallel/expert_dispatch.h"
#include "parallel/mpi_runtime.h"
#include "parallel/process_grid.h"
#include "unit/parallel/moe_reference.h"

namespace {

using l4::parallel::Communicator;
using l4::parallel::ReduceOp;

using l4::parallel::testing::now_s;
using l4::parallel::testing::TimedCommunicator;

}  // namespace

int main(int argc, char** argv) {
  auto arg = [&](int i, int64_t fallback) { return argc > i ? std::atoll(argv[i]) : fallback; };
  const int64_t tokens = arg(1, 4096), hidden = arg(2, 256), inter = arg(3, 512), experts = arg(4, 16);
  const int iters = static_cast<int>(arg(5, 10));
  auto& runtime = l4::parallel::init_distributed();
  Communicator& world = runtime.world();
  l4::parallel::ProcessGrid grid(world, world.size(), experts);
  TimedCommunicator timed(grid.ep_comm());
  l4::parallel::ExpertDispatch dispatch(timed, experts);
  auto w = l4::parallel::testing::make_expert_weights(grid.expert_begin(), grid.experts_per_rank(), hidden, inter,
                                                      1, true);
  torch::manual_seed(world.rank());
  const at::Tensor x0 = torch::randn({tokens, hidden});
  const at::Tensor ids = torch::randint(0, experts, {tokens}, torch::kLong);
  double total = 0.0;
  for (int it = 0; it <= iters; ++it) {
    world.barrier();
    const double a2a_before = timed.a2a_seconds;
    const double t0 = now_s();
    at::Tensor x = x0.clone().requires_grad_();
    const at::Tensor out = dispatch(x, ids, [&](const at::Tensor& rows, const std::vector<int64_t>& c) {
      return l4::parallel::testing::run_experts(rows, c, w);
    });
    out.sum().backward();
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
        "{\"ranks\": %d, \"tokens_per_rank\": %lld, \"hidden\": %lld, \"intermediate\": %lld, \"experts\": %lld, "
        "\"moe_ms\": %.3f, \"all_to_all_ms\": %.3f, \"all_to_all_share\": %.3f}\n",
        world.size(), static_cast<long long>(tokens), static_cast<long long>(hidden), static_cast<long long>(inter),
        static_cast<long long>(experts), 1e3 * t[0].item<double>() / iters, 1e3 * t[1].item<double>() / iters,
        t[1].item<double>() / t[0].item<double>());
  }
  return 0;
}
