// The Llama 4 vision tower (HF Llama4VisionModel), one 336x336 tile at a time:
//   unfold patch embedding (no bias) -> CLS token appended LAST -> + positional_embedding_vlm
//   -> layernorm_pre -> N x [pre-LN bidirectional attention with 2D RoPE, pre-LN GELU MLP] -> layernorm_post
//   -> drop CLS -> pixel shuffle (ratio 0.5) -> adapter MLP (fc1 -> GELU -> fc2 -> GELU, no biases).
// named_parameters() equal HF's names below "vision_model." ("patch_embedding.linear.weight",
// "model.layers.3.self_attn.q_proj.bias", "vision_adapter.mlp.fc1.weight", ...).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <optional>

#include "config/model_arch.h"

namespace l4::model {

// y = x W^T (+ b), HF nn.Linear. Parameters are allocated uninitialised with `options`.
class VisionLinearImpl : public torch::nn::Module {
 public:
  VisionLinearImpl(int64_t in_features, int64_t out_features, bool bias, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight, bias;  // bias undefined when absent
};
TORCH_MODULE(VisionLinear);

class VisionLayerNormImpl : public torch::nn::Module {
 public:
  VisionLayerNormImpl(int64_t dim, double eps, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(VisionLayerNorm);

// HF Llama4UnfoldConvolution: [N, C, H, W] -> non-overlapping p x p patches (C-major, then rows, then
// columns, as nn.Unfold) -> linear -> [N, (H/p)(W/p), hidden].
class UnfoldConvolutionImpl : public torch::nn::Module {
 public:
  UnfoldConvolutionImpl(const config::VisionConfig& config, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& pixels) const;
  VisionLinear linear{nullptr};
  int64_t patch_size;
};
TORCH_MODULE(UnfoldConvolution);

// 2D RoPE of the vision attention as a complex64 table [S + 1, head_dim / 2] (HF freqs_ci): pair k < D/4 of
// patch n rotates by (x + 1) w_k, pair k >= D/4 by (y + 1) w_(k - D/4), x = n mod side, y = n / side; the
// CLS row (last) is 1 (no rotation).
at::Tensor vision_rope_table(const config::VisionConfig& config);

class VisionAttentionImpl : public torch::nn::Module {
 public:
  VisionAttentionImpl(const config::VisionConfig& config, const at::TensorOptions& options);
  // x [N, S, D], rope complex [S, head_dim / 2].
  at::Tensor forward(const at::Tensor& x, const at::Tensor& rope) const;
  VisionLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t num_heads, head_dim;
  double dropout;
};
TORCH_MODULE(VisionAttention);

// fc2(gelu(fc1(x))) with biases.
class VisionMlpImpl : public torch::nn::Module {
 public:
  VisionMlpImpl(const config::VisionConfig& config, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x) const;
  VisionLinear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(VisionMlp);

class VisionEncoderLayerImpl : public torch::nn::Module {
 public:
  VisionEncoderLayerImpl(const config::VisionConfig& config, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& rope) const;
  VisionAttention self_attn{nullptr};
  VisionMlp mlp{nullptr};
  VisionLayerNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(VisionEncoderLayer);

// HF Llama4VisionEncoder (registered as "model"): the stack of layers.
class VisionEncoderImpl : public torch::nn::Module {
 public:
  VisionEncoderImpl(const config::VisionConfig& config, const at::TensorOptions& options);
  at::Tensor forward(at::Tensor x, const at::Tensor& rope) const;
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(VisionEncoder);

// [N, side * side, C] -> [N, side * side * r^2, C / r^2]; with r = 0.5 token 12i + j of a 24x24 grid holds
// the channels of patches (2i, 2j), (2i, 2j + 1), (2i + 1, 2j), (2i + 1, 2j + 1) in that order (HF
// pixel_shuffle).
at::Tensor pixel_shuffle(const at::Tensor& x, double ratio);

// HF Llama4VisionMLP2 (registered as "mlp" in the adapter): gelu(fc2(gelu(fc1(x)))), no biases.
class VisionAdapterMlpImpl : public torch::nn::Module {
 public:
  VisionAdapterMlpImpl(const config::VisionConfig& config, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x) const;
  VisionLinear fc1{nullptr}, fc2{nullptr};
  double dropout;
};
TORCH_MODULE(VisionAdapterMlp);

// HF Llama4VisionPixelShuffleMLP (registered as "vision_adapter").
class PixelShuffleMlpImpl : public torch::nn::Module {
 public:
  PixelShuffleMlpImpl(const config::VisionConfig& config, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x) const;
  VisionAdapterMlp mlp{nullptr};
  double ratio;
};
TORCH_MODULE(PixelShuffleMlp);

class VisionModelImpl : public torch::nn::Module {
 public:
  // Parameters are allocated uninitialised: load weights or call reset_parameters(). Throws l4::Error when
  // the config's sizes do not fit together (head_dim % 4, image_size % patch_size, adapter widths).
  explicit VisionModelImpl(const config::VisionConfig& config, const at::TensorOptions& options = {});

  // pixel_values [N tiles, 3, S, S] (any float dtype; cast to the model's) -> [N, tokens_per_tile,
  // projector_output_dim] with tokens_per_tile = (S / patch)^2 * ratio^2.
  at::Tensor forward(const at::Tensor& pixel_values);

  // HF initialisation: linear weights ~ N(0, initializer_range), biases 0, LayerNorms 1/0, class and
  // positional embeddings ~ N(0, hidden^-0.5).
  void reset_parameters(const std::optional<uint64_t>& seed = std::nullopt);

  const config::VisionConfig& config() const { return config_; }
  int64_t tokens_per_tile() const;

  UnfoldConvolution patch_embedding{nullptr};
  at::Tensor class_embedding, positional_embedding_vlm;
  VisionLayerNorm layernorm_pre{nullptr}, layernorm_post{nullptr};
  VisionEncoder model{nullptr};
  PixelShuffleMlp vision_adapter{nullptr};

 private:
  config::VisionConfig config_;
  at::Tensor rope_;  // complex64 [S + 1, head_dim / 2], a buffer that is not part of the state dict
};
TORCH_MODULE(VisionModel);

// CPU generator for initialisation: seeded, or seeded from the default generator.
at::Generator vision_init_generator(const std::optional<uint64_t>& seed);

// Checks the vision config's sizes (the constraints above); errors name the config fields.
void validate_vision_config(const config::VisionConfig& config);

}  // namespace l4::model
