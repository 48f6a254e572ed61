// A tiny training-like loop for the failure test: every step all-reduces a tensor.
//   abort_probe throw R S   rank R throws an l4::Error in step S (run_or_abort must end the job)
//   abort_probe hang R S    rank R stops calling collectives in step S (the watchdog must end the job)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/error.h"
#include "parallel/failure.h"
#include "parallel/mpi_runtime.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: abort_probe throw|hang RANK STEP\n");
    return 2;
  }
  const std::string mode = argv[1];
  const int bad_rank = std::atoi(argv[2]);
  const int bad_step = std::atoi(argv[3]);
  auto& runtime = l4::parallel::init_distributed({/*collective_timeout_s=*/mode == "hang" ? 2.0 : 0.0});
  l4::parallel::Communicator& world = runtime.world();
  l4::parallel::run_or_abort(world, [&] {
    for (int step = 1; step <= 10; ++step) {
      if (world.rank() == bad_rank && step == bad_step) {
        if (mode == "throw") L4_FAIL("injected failure in step {}", step);
        std::this_thread::sleep_for(std::chrono::seconds(120));
      }
      at::Tensor t = torch::ones({4});
      world.all_reduce(t, l4::parallel::ReduceOp::kSum);
    }
  });
  std::printf("rank %d finished\n", world.rank());
  return 0;
}
