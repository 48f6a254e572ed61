// Basic building blocks with Hugging Face parameter names: bias-free Linear, Embedding, RMSNorm and the
// SwiGLU MLP. Parameters are allocated uninitialised with the given options (dtype/device, "meta" works);
// call reset_parameters() on the whole model to initialise them for training from scratch.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

namespace l4::model {

// y = x W^T, W [out, in] (nn.Linear(bias=False)).
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, const at::TensorOptions& options);
  virtual ~LinearImpl() = default;
  // Virtual so that an adapter (LoRA) can wrap a projection in place, keeping its parameter names.
  virtual at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight;
};
TORCH_MODULE(Linear);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t dim, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& ids) const;
  at::Tensor weight;
};
TORCH_MODULE(Embedding);

// w * x / sqrt(mean(x^2) + eps): normalised in fp32, cast back to x's dtype, then scaled (as HF does).
// Both run as the fused kernel of kernels/rms_norm.h on the CPU; this one is the weightless form (qk-norm).
at::Tensor rms_norm(const at::Tensor& x, double eps);

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// down(silu(gate(x)) * up(x)): dense feed-forward layers and the MoE shared expert.
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t hidden, int64_t intermediate, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x) const;
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

}  // namespace l4::model
