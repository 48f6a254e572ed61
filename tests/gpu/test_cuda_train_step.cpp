// Training on CUDA follows the CPU: the first backward's gradients agree to the fp32 gradient tolerance,
// and a few AdamW steps (the trainer's OptimizerSetup, parameter groups from the default recipe) give the
// same losses, which go down.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "gpu/gpu_test_util.h"
#include "model/llama4.h"
#include "model/loss.h"
#include "train/optimizer_setup.h"
#include "train/param_groups.h"

namespace l4::train {
namespace {

struct TrainRun {
  std::vector<double> losses;
  std::map<std::string, at::Tensor> first_grads;  // on the CPU
};

TrainRun train(const config::TextConfig& config, at::Device device, int steps) {
  model::Llama4 model(config);
  model->init_parameters(/*seed=*/9);
  model->set_router_loss({0.01, 0.001});
  model->to(device);
  model->train();
  std::vector<NamedParam> params;
  std::vector<std::string> names;
  for (const auto& item : model->named_parameters()) {
    params.push_back({item.key(), item.value(), parallel::Placement::replicated()});
    names.push_back(item.key());
  }
  config::OptimizerSection opt;
  opt.lr = 1e-2;
  OptimizerSetup optimizer(params, resolve_param_settings(names, opt, config.num_hidden_layers), opt.eps);
  torch::manual_seed(21);
  const at::Tensor ids = torch::randint(0, config.vocab_size, {4, 12}, torch::kLong).to(device);
  TrainRun run;
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    const at::Tensor logits = model->forward(ids);
    const at::Tensor loss = model::causal_lm_loss(logits, ids) + model->router_loss();
    loss.backward();
    run.losses.push_back(loss.item<double>());
    if (step == 0) {
      for (const auto& p : params) {
        if (p.param.grad().defined()) run.first_grads[p.name] = p.param.grad().to(torch::kCPU).clone();
      }
    }
    optimizer.step();
  }
  return run;
}

TEST(CudaTrainStep, GradientsAndAdamWStepsEqualTheCpu) {
  L4_SKIP_WITHOUT_CUDA();
  testing::use_ieee_fp32_on_gpu();
  const config::TextConfig config = testing::tiny_text_config();
  const int steps = 5;
  const TrainRun cpu = train(config, torch::kCPU, steps);
  const TrainRun gpu = train(config, torch::kCUDA, steps);

  ASSERT_EQ(gpu.first_grads.size(), cpu.first_grads.size());
  double worst = 0.0;
  for (const auto& [name, want] : cpu.first_grads) {
    ASSERT_TRUE(gpu.first_grads.count(name)) << name;
    const double scale = std::max(want.abs().max().item<double>(), 1e-6);
    const double rel = (gpu.first_grads.at(name) - want).abs().max().item<double>() / scale;
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-4) << name;
  }
  std::printf("first-step gradients: worst max-abs error relative to the tensor's scale %.3g\n", worst);

  for (int s = 0; s < steps; ++s) {
    std::printf("step %d: loss cpu %.7f cuda %.7f\n", s + 1, cpu.losses[s], gpu.losses[s]);
    EXPECT_NEAR(gpu.losses[s], cpu.losses[s], s == 0 ? 1e-5 : 1e-4) << "step " << s + 1;
  }
  EXPECT_LT(gpu.losses.back(), gpu.losses.front() - 0.05);
}

}  // namespace
}  // namespace l4::train
