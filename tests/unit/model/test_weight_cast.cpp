// The step's weight-cast cache: one compute-dtype copy per weight across micro-batches, a fresh one after
// the weights change (optimizer step, or any in-place update), and gradients identical to casting per use.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/layers.h"
#include "model/weight_cast.h"

namespace l4::model {
namespace {

// bf16 autocast on the CPU for one micro-batch's forward, as the trainer's scope.
class Bf16Autocast {
 public:
  Bf16Autocast() {
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::increment_nesting();
  }
  ~Bf16Autocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCPU, false);
  }
};

Linear make_linear() {
  torch::manual_seed(7);
  Linear linear(8, 4, at::TensorOptions().dtype(at::kFloat));
  torch::NoGradGuard no_grad;
  linear->weight.normal_();
  return linear;
}

// Two micro-batches' forward and backward; returns the weight's accumulated gradient.
at::Tensor two_micro_batches(Linear& linear, const at::Tensor& x) {
  linear->weight.mutable_grad() = at::Tensor();
  for (int64_t i = 0; i < 2; ++i) {
    at::Tensor loss;
    {
      const Bf16Autocast autocast;
      loss = linear->forward(x[i]).to(at::kFloat).pow(2).sum();
    }
    loss.backward();
  }
  return linear->weight.grad().clone();
}

TEST(WeightCast, TwoMicroBatchesInOneStepUseOneCast) {
  Linear linear = make_linear();
  const at::Tensor x = torch::randn({2, 3, 8});
  const int64_t before = weight_casts_made();
  const at::Tensor uncached_grad = two_micro_batches(linear, x);
  EXPECT_EQ(weight_casts_made() - before, 2) << "without a scope every use casts";

  const int64_t start = weight_casts_made();
  at::Tensor cached_grad;
  {
    const WeightCastScope scope;
    cached_grad = two_micro_batches(linear, x);
  }
  EXPECT_EQ(weight_casts_made() - start, 1) << "one cast for both micro-batches of the step";
  // The same bf16 values either way, so the same gradient bit for bit.
  EXPECT_TRUE(torch::equal(cached_grad, uncached_grad));
}

TEST(WeightCast, OptimizerStepInvalidatesTheCast) {
  Linear linear = make_linear();
  const at::Tensor x = torch::randn({2, 3, 8});
  torch::optim::SGD sgd(std::vector<at::Tensor>{linear->weight}, torch::optim::SGDOptions(0.5));
  {
    const WeightCastScope scope;
    two_micro_batches(linear, x);
  }
  sgd.step();  // the trainer's step: after the scope closed
  const WeightCastScope scope;
  const Bf16Autocast autocast;
  const at::Tensor expected = at::linear(x[0].to(at::kBFloat16), linear->weight.detach().to(at::kBFloat16));
  EXPECT_TRUE(torch::equal(linear->forward(x[0]), expected)) << "the next forward sees the new weights";
}

TEST(WeightCast, InPlaceUpdateInsideAScopeMakesAFreshCast) {
  Linear linear = make_linear();
  const at::Tensor x = torch::randn({3, 8});
  const WeightCastScope scope;
  const Bf16Autocast autocast;
  const at::Tensor first = linear->forward(x);
  {
    torch::NoGradGuard no_grad;
    linear->weight.mul_(2.0);  // bumps the version counter
  }
  const at::Tensor second = linear->forward(x);
  EXPECT_TRUE(
      torch::equal(second, at::linear(x.to(at::kBFloat16), linear->weight.detach().to(at::kBFloat16))));
  EXPECT_FALSE(torch::equal(first, second));
}

TEST(WeightCast, FrozenWeightsAreCachedToo) {
  Linear linear = make_linear();
  linear->weight.set_requires_grad(false);
  const at::Tensor x = torch::randn({3, 8});
  const WeightCastScope scope;
  const int64_t start = weight_casts_made();
  const Bf16Autocast autocast;
  const at::Tensor a = linear->forward(x), b = linear->forward(x);
  EXPECT_EQ(weight_casts_made() - start, 1);
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(WeightCast, NoAutocastLeavesFloat32WeightsAlone) {
  Linear linear = make_linear();
  const WeightCastScope scope;
  EXPECT_TRUE(compute_weight(linear->weight).is_same(linear->weight));
}

}  // namespace
}  // namespace l4::model
