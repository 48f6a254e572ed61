// The model on CUDA computes what it computes on the CPU: fp32 logits to the fp32 tolerance (TF32 off),
// and under bf16 autocast (the trainer's train.precision: bf16) to a tolerance relative to the logits'
// scale. Packed rows (doc_ids) exercise the per-document masks of chunked and global attention.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gpu/gpu_test_util.h"
#include "model/llama4.h"

namespace l4::model {
namespace {

struct Inputs {
  at::Tensor ids, doc_ids;
};

// Two rows of 11 tokens; row 1 packs three documents.
Inputs make_inputs(int64_t vocab) {
  torch::manual_seed(11);
  Inputs in;
  in.ids = torch::randint(0, vocab, {2, 11}, torch::kLong);
  in.doc_ids = torch::tensor({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3}, torch::kLong)
                   .view({2, 11});
  return in;
}

Llama4 make_model(const config::TextConfig& config, at::Device device) {
  Llama4 model(config);
  model->init_parameters(/*seed=*/5);  // on the CPU: identical weights whatever the device
  model->to(device);
  model->eval();
  return model;
}

at::Tensor forward(Llama4& model, const Inputs& in, at::Device device) {
  torch::NoGradGuard no_grad;
  return model->forward(in.ids.to(device), std::nullopt, in.doc_ids.to(device))
      .to(torch::kCPU, torch::kFloat);
}

TEST(CudaForward, Float32LogitsEqualTheCpu) {
  L4_SKIP_WITHOUT_CUDA();
  testing::use_ieee_fp32_on_gpu();
  const config::TextConfig config = testing::tiny_text_config();
  const Inputs in = make_inputs(config.vocab_size);
  Llama4 cpu = make_model(config, torch::kCPU);
  Llama4 gpu = make_model(config, torch::kCUDA);
  ASSERT_TRUE(gpu->lm_head->weight.is_cuda());
  const at::Tensor want = forward(cpu, in, torch::kCPU);
  const at::Tensor got = forward(gpu, in, torch::kCUDA);
  ASSERT_EQ(got.sizes(), want.sizes());
  const double err = (got - want).abs().max().item<double>();
  std::printf("fp32 logits: max |cuda - cpu| = %.3g (max |logit| %.3g)\n", err,
              want.abs().max().item<double>());
  EXPECT_LE(err, 1e-4);
}

TEST(CudaForward, Bfloat16AutocastLogitsCloseToTheCpuFloat32) {
  L4_SKIP_WITHOUT_CUDA();
  testing::use_ieee_fp32_on_gpu();
  const config::TextConfig config = testing::tiny_text_config();
  const Inputs in = make_inputs(config.vocab_size);
  Llama4 cpu = make_model(config, torch::kCPU);
  Llama4 gpu = make_model(config, torch::kCUDA);
  const at::Tensor want = forward(cpu, in, torch::kCPU);
  at::Tensor got;
  {
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    got = forward(gpu, in, torch::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
  }
  const double scale = want.abs().max().item<double>();
  const double err = (got - want).abs().max().item<double>();
  std::printf("bf16 autocast logits: max |cuda - cpu fp32| = %.3g, relative to max |logit| %.3g: %.3g\n", err,
              scale, err / scale);
  ASSERT_GT(scale, 0.0);
  EXPECT_LE(err / scale, 5e-2);
  // Mostly the same prediction (a bf16 near-tie may flip a few).
  const double agree = got.argmax(-1).eq(want.argmax(-1)).to(torch::kFloat).mean().item<double>();
  EXPECT_GE(agree, 0.9);
}

}  // namespace
}  // namespace l4::model
