// GradSync over a one-rank communicator, step after step: every sync reduces that step's gradients, with
// and without overlap, and a parameter without a gradient is reduced as zeros.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "parallel/communicator.h"
#include "parallel/grad_sync.h"
#include "parallel/process_grid.h"

namespace l4::parallel {
namespace {

void run_steps(bool overlap) {
  SelfCommunicator world;
  const ProcessGrid grid(world, 1, 0);
  at::Tensor a = torch::ones({3}, torch::requires_grad());
  at::Tensor unused = torch::ones({2}, torch::requires_grad());
  GradSyncOptions options;
  options.overlap = overlap;
  options.reduction = GradReduction::kSum;
  GradSync sync({{"a", a, Placement::replicated()}, {"unused", unused, Placement::replicated()}}, grid,
                options);
  for (int step = 1; step <= 3; ++step) {
    a.mutable_grad() = at::Tensor();
    unused.mutable_grad() = at::Tensor();
    if (overlap) sync.prepare();
    (a * static_cast<double>(step)).sum().backward();
    sync.sync();
    EXPECT_TRUE(torch::equal(a.grad(), torch::full({3}, static_cast<double>(step)))) << "step " << step;
    ASSERT_TRUE(unused.grad().defined());
    EXPECT_TRUE(torch::equal(unused.grad(), torch::zeros({2})));
  }
}

TEST(GradSyncStepsTest, RepeatedStepsWithoutOverlap) {
  run_steps(false);
}
TEST(GradSyncStepsTest, RepeatedStepsWithOverlap) {
  run_steps(true);
}

}  // namespace
}  // namespace l4::parallel
