#include "model/vision_encoder.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "core/error.h"

namespace l4::model {
namespace {

// HF builds every vision LayerNorm as nn.LayerNorm(hidden_size), i.e. with eps 1e-5 whatever norm_eps says.
constexpr double kLayerNormEps = 1e-5;

int64_t checked_int(double value, const char* what) {
  const double rounded = std::round(value);
  L4_CHECK(std::abs(value - rounded) < 1e-9 && rounded > 0,
           "vision_config: {} = {} is not a positive integer", what, value);
  return static_cast<int64_t>(rounded);
}

}  // namespace

void validate_vision_config(const config::VisionConfig& c) {
  L4_CHECK(c.hidden_size > 0 && c.num_attention_heads > 0 && c.hidden_size % c.num_attention_heads == 0,
           "vision_config.hidden_size ({}) must be a positive multiple of num_attention_heads ({})",
           c.hidden_size, c.num_attention_heads);
  L4_CHECK(
      (c.hidden_size / c.num_attention_heads) % 4 == 0,
      "vision_config: head_dim = hidden_size / num_attention_heads = {} must be a multiple of 4 (2D RoPE)",
      c.hidden_size / c.num_attention_heads);
  L4_CHECK(c.patch_size > 0 && c.image_size > 0 && c.image_size % c.patch_size == 0,
           "vision_config.image_size ({}) must be a positive multiple of patch_size ({})", c.image_size,
           c.patch_size);
  L4_CHECK(c.num_channels > 0 && c.num_hidden_layers >= 0,
           "vision_config: num_channels and num_hidden_layers must be positive");
  L4_CHECK(c.pixel_shuffle_ratio > 0 && c.pixel_shuffle_ratio <= 1,
           "vision_config.pixel_shuffle_ratio must be in (0, 1], got {}", c.pixel_shuffle_ratio);
  // The patch grid must shrink to whole tokens, and the shuffled width must be the adapter's input.
  checked_int(static_cast<double>(c.image_size / c.patch_size) * c.pixel_shuffle_ratio,
              "image_size / patch_size * pixel_shuffle_ratio");
  const int64_t shuffled = checked_int(c.hidden_size / (c.pixel_shuffle_ratio * c.pixel_shuffle_ratio),
                                       "hidden_size / pixel_shuffle_ratio^2");
  L4_CHECK(
      shuffled == c.intermediate_size,
      "vision_config: the adapter's fc1 takes intermediate_size ({}) inputs, which must equal hidden_size / "
      "pixel_shuffle_ratio^2 = {}",
      c.intermediate_size, shuffled);
  L4_CHECK(
      c.projector_input_dim == c.projector_output_dim,
      "vision_config: projector_input_dim ({}) must equal projector_output_dim ({}) (adapter fc2 is square)",
      c.projector_input_dim, c.projector_output_dim);
}

// --- building blocks -------------------------------------------------------------------------------------

VisionLinearImpl::VisionLinearImpl(int64_t in_features, int64_t out_features, bool with_bias,
                                   const at::TensorOptions& options) {
  weight = register_parameter("weight", at::empty({out_features, in_features}, options));
  if (with_bias) bias = register_parameter("bias", at::empty({out_features}, options));
}

at::Tensor VisionLinearImpl::forward(const at::Tensor& x) const {
  return at::linear(x, weight, bias);
}

VisionLayerNormImpl::VisionLayerNormImpl(int64_t dim, double eps_, const at::TensorOptions& options)
    : eps(eps_) {
  weight = register_parameter("weight", at::empty({dim}, options));
  bias = register_parameter("bias", at::empty({dim}, options));
}

at::Tensor VisionLayerNormImpl::forward(const at::Tensor& x) const {
  return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

UnfoldConvolutionImpl::UnfoldConvolutionImpl(const config::VisionConfig& config,
                                             const at::TensorOptions& options)
    : patch_size(config.patch_size) {
  linear = register_module("linear", VisionLinear(config.num_channels * patch_size * patch_size,
                                                  config.hidden_size, false, options));
}

at::Tensor UnfoldConvolutionImpl::forward(const at::Tensor& pixels) const {
  const at::Tensor patches =
      at::im2col(pixels, {patch_size, patch_size}, {1, 1}, {0, 0}, {patch_size, patch_size});
  return linear->forward(patches.permute({0, 2, 1}));
}

// --- attention -------------------------------------------------------------------------------------------

at::Tensor vision_rope_table(const config::VisionConfig& config) {
  // Follows HF Llama4VisionRotaryEmbedding._compute_freqs_ci op by op (float32), so the angles round alike.
  const int64_t side = config.image_size / config.patch_size;
  at::Tensor idx = at::arange(side * side, at::kInt).reshape({side * side, 1});
  idx = at::cat({idx, idx.slice(0, 0, 1)}, 0);
  idx.index_put_({side * side, 0}, -2);  // the CLS token
  const at::Tensor fx = idx.remainder(side);
  const at::Tensor fy = idx.div(side, "floor");
  const int64_t freq_dim = config.hidden_size / config.num_attention_heads / 2;
  const at::Tensor exponents = at::arange(0, freq_dim, 2).slice(0, 0, freq_dim / 2).to(at::kFloat) / freq_dim;
  const at::Tensor rope_freq = at::pow(config.rope_parameters.rope_theta, exponents).reciprocal() * 1.0;
  const at::Tensor freqs_x = ((fx + 1).unsqueeze(-1) * rope_freq.view({1, 1, -1})).repeat_interleave(2, -1);
  const at::Tensor freqs_y = ((fy + 1).unsqueeze(-1) * rope_freq.view({1, 1, -1})).repeat_interleave(2, -1);
  at::Tensor freqs =
      at::cat({freqs_x, freqs_y}, -1).to(at::kFloat).contiguous().slice(-1, 0, at::indexing::None, 2);
  freqs = freqs.masked_fill(idx.reshape({-1, 1, 1}) < 0, 0);
  const at::Tensor table = at::view_as_complex(at::stack({at::cos(freqs), at::sin(freqs)}, -1).contiguous());
  return table.squeeze(1);  // [side^2 + 1, head_dim / 2]
}

VisionAttentionImpl::VisionAttentionImpl(const config::VisionConfig& config, const at::TensorOptions& options)
    : num_heads(config.num_attention_heads),
      head_dim(config.hidden_size / config.num_attention_heads),
      dropout(config.attention_dropout) {
  const int64_t d = config.hidden_size;
  q_proj = register_module("q_proj", VisionLinear(d, num_heads * head_dim, true, options));
  k_proj = register_module("k_proj", VisionLinear(d, num_heads * head_dim, true, options));
  v_proj = register_module("v_proj", VisionLinear(d, num_heads * head_dim, true, options));
  o_proj = register_module("o_proj", VisionLinear(num_heads * head_dim, d, true, options));
}

at::Tensor VisionAttentionImpl::forward(const at::Tensor& x, const at::Tensor& rope) const {
  const int64_t n = x.size(0), s = x.size(1);
  const at::Tensor q = q_proj->forward(x).view({n, s, num_heads, head_dim});
  const at::Tensor k = k_proj->forward(x).view({n, s, num_heads, head_dim});
  const at::Tensor v = v_proj->forward(x).view({n, s, num_heads, head_dim});
  // Rotate interleaved pairs as complex numbers in float32 (HF vision_apply_rotary_emb).
  const at::Tensor freqs = rope.view({1, s, 1, head_dim / 2});
  auto rotate = [&](const at::Tensor& t) {
    const at::Tensor c = at::view_as_complex(t.to(at::kFloat).reshape({n, s, num_heads, head_dim / 2, 2}));
    return at::view_as_real(c * freqs).flatten(3).to(t.scalar_type());
  };
  const at::Tensor qr = rotate(q).transpose(1, 2), kr = rotate(k).transpose(1, 2);
  const at::Tensor out =
      at::scaled_dot_product_attention(qr, kr, v.transpose(1, 2), std::nullopt, is_training() ? dropout : 0.0,
                                       false, 1.0 / std::sqrt(static_cast<double>(head_dim)));
  return o_proj->forward(out.transpose(1, 2).reshape({n, s, num_heads * head_dim}));
}

VisionMlpImpl::VisionMlpImpl(const config::VisionConfig& config, const at::TensorOptions& options) {
  fc1 = register_module("fc1", VisionLinear(config.hidden_size, config.intermediate_size, true, options));
  fc2 = register_module("fc2", VisionLinear(config.intermediate_size, config.hidden_size, true, options));
}

at::Tensor VisionMlpImpl::forward(const at::Tensor& x) const {
  return fc2->forward(at::gelu(fc1->forward(x)));
}

VisionEncoderLayerImpl::VisionEncoderLayerImpl(const config::VisionConfig& config,
                                               const at::TensorOptions& options) {
  self_attn = register_module("self_attn", VisionAttention(config, options));
  mlp = register_module("mlp", VisionMlp(config, options));
  input_layernorm =
      register_module("input_layernorm", VisionLayerNorm(config.hidden_size, kLayerNormEps, options));
  post_attention_layernorm = register_module("post_attention_layernorm",
                                             VisionLayerNorm(config.hidden_size, kLayerNormEps, options));
}

at::Tensor VisionEncoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& rope) const {
  const at::Tensor h = x + self_attn->forward(input_layernorm->forward(x), rope);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

VisionEncoderImpl::VisionEncoderImpl(const config::VisionConfig& config, const at::TensorOptions& options) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i)
    layers->push_back(VisionEncoderLayer(config, options));
}

at::Tensor VisionEncoderImpl::forward(at::Tensor x, const at::Tensor& rope) const {
  for (const auto& layer : *layers) x = layer->as<VisionEncoderLayerImpl>()->forward(x, rope);
  return x;
}

// --- adapter ---------------------------------------------------------------------------------------------

at::Tensor pixel_shuffle(const at::Tensor& x, double ratio) {
  // The same views and permutes as HF's pixel_shuffle, so the channel order is identical.
  const int64_t n = x.size(0), patches = x.size(1), channels = x.size(2);
  const auto side = static_cast<int64_t>(std::sqrt(static_cast<double>(patches)));
  L4_ASSERT(side * side == patches, "pixel_shuffle needs a square number of patches, got {}", patches);
  const auto scaled_side = static_cast<int64_t>(side * ratio);
  at::Tensor r = x.reshape({n, side, scaled_side, static_cast<int64_t>(channels / ratio)});
  r = r.permute({0, 2, 1, 3}).contiguous();
  r = r.view({n, scaled_side, scaled_side, static_cast<int64_t>(channels / (ratio * ratio))});
  r = r.permute({0, 2, 1, 3}).contiguous();
  return r.view({n, -1, r.size(-1)});
}

VisionAdapterMlpImpl::VisionAdapterMlpImpl(const config::VisionConfig& config,
                                           const at::TensorOptions& options)
    : dropout(config.projector_dropout) {
  fc1 = register_module("fc1",
                        VisionLinear(config.intermediate_size, config.projector_input_dim, false, options));
  fc2 = register_module(
      "fc2", VisionLinear(config.projector_output_dim, config.projector_output_dim, false, options));
}

at::Tensor VisionAdapterMlpImpl::forward(const at::Tensor& x) const {
  at::Tensor h = at::gelu(fc1->forward(x));
  if (is_training() && dropout > 0) h = at::dropout(h, dropout, true);
  return at::gelu(fc2->forward(h));
}

PixelShuffleMlpImpl::PixelShuffleMlpImpl(const config::VisionConfig& config, const at::TensorOptions& options)
    : ratio(config.pixel_shuffle_ratio) {
  mlp = register_module("mlp", VisionAdapterMlp(config, options));
}

at::Tensor PixelShuffleMlpImpl::forward(const at::Tensor& x) const {
  return mlp->forward(pixel_shuffle(x, ratio));
}

at::Generator vision_init_generator(const std::optional<uint64_t>& seed) {
  if (seed) return at::make_generator<at::CPUGeneratorImpl>(*seed);
  // No seed: draw one from the default generator, so torch::manual_seed() still makes runs repeatable.
  at::Generator global = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(global.mutex());
  return at::make_generator<at::CPUGeneratorImpl>(
      at::check_generator<at::CPUGeneratorImpl>(global)->random64());
}

// --- the tower -------------------------------------------------------------------------------------------

VisionModelImpl::VisionModelImpl(const config::VisionConfig& config, const at::TensorOptions& options)
    : config_(config) {
  validate_vision_config(config);
  const int64_t d = config.hidden_size;
  const int64_t side = config.image_size / config.patch_size;
  patch_embedding = register_module("patch_embedding", UnfoldConvolution(config, options));
  class_embedding = register_parameter("class_embedding", at::empty({d}, options));
  positional_embedding_vlm =
      register_parameter("positional_embedding_vlm", at::empty({side * side + 1, d}, options));
  layernorm_pre = register_module("layernorm_pre", VisionLayerNorm(d, kLayerNormEps, options));
  layernorm_post = register_module("layernorm_post", VisionLayerNorm(d, kLayerNormEps, options));
  model = register_module("model", VisionEncoder(config, options));
  vision_adapter = register_module("vision_adapter", PixelShuffleMlp(config, options));
}

int64_t VisionModelImpl::tokens_per_tile() const {
  const int64_t side = config_.image_size / config_.patch_size;
  const auto shuffled_side = static_cast<int64_t>(side * config_.pixel_shuffle_ratio);
  return shuffled_side * shuffled_side;
}

at::Tensor VisionModelImpl::forward(const at::Tensor& pixel_values) {
  const int64_t size = config_.image_size;
  L4_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == config_.num_channels &&
               pixel_values.size(2) == size && pixel_values.size(3) == size,
           "vision model: pixel_values must be [tiles, {}, {}, {}], got {}", config_.num_channels, size, size,
           c10::str(pixel_values.sizes()));
  const at::Tensor& w = patch_embedding->linear->weight;
  if (!rope_.defined() || rope_.device() != w.device()) rope_ = vision_rope_table(config_).to(w.device());

  const int64_t n = pixel_values.size(0);
  at::Tensor h = patch_embedding->forward(pixel_values.to(w.options()));
  h = at::cat({h, class_embedding.expand({n, 1, class_embedding.size(0)})}, 1);  // CLS goes last
  h = h + positional_embedding_vlm.to(h.scalar_type());
  h = layernorm_pre->forward(h);
  h = model->forward(h, rope_);
  h = layernorm_post->forward(h);
  h = h.slice(1, 0, -1);  // drop CLS
  return vision_adapter->forward(h);
}

void VisionModelImpl::reset_parameters(const std::optional<uint64_t>& seed) {
  at::NoGradGuard no_grad;
  at::Generator gen = vision_init_generator(seed);
  auto normal = [&](at::Tensor& t, double std) {
    t.copy_(at::normal(0.0, std, t.sizes(), gen, at::TensorOptions().dtype(at::kFloat)));
  };
  const double scale = 1.0 / std::sqrt(static_cast<double>(config_.hidden_size));
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<VisionLinearImpl>()) {
      normal(linear->weight, config_.initializer_range);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* norm = module->as<VisionLayerNormImpl>()) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
    }
  }
  normal(class_embedding, scale);
  normal(positional_embedding_vlm, scale);
}

}  // namespace l4::model
