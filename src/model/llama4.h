// The Llama 4 model: the one root module every command builds (model/build.h). The text decoder with its
// untied lm_head (HF Llama4ForCausalLM) and, for architectures with a vision_config, the vision tower and
// projector whose features early fusion writes over the <|patch|> positions (HF
// Llama4ForConditionalGeneration). Parameter names are the canonical checkpoint names, whatever the HF
// layout: "model.layers.3.self_attn.q_proj.weight", "lm_head.weight", "vision_model.*",
// "multi_modal_projector.*" (checkpoint/name_mapping.h maps them to either layout).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model_arch.h"
#include "config/options.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "model/layers.h"
#include "model/moe.h"
#include "model/vision_encoder.h"
#include "model/vision_projector.h"
#include "parallel/expert_dispatch.h"

namespace l4::parallel {
class Communicator;
}

namespace l4::model {

class Llama4Impl;
class ExpertParallelRunner;

// Everything one forward pass takes; only input_ids is required.
struct ModelInput {
  at::Tensor input_ids;      // [B, T] int64
  at::Tensor pixel_values;   // [tiles, 3, S, S] normalised (one tile per 144-token block of <|patch|> ids, in
                             // row-major order); undefined: text only (<|patch|> ids keep their embeddings)
  at::Tensor position_ids;   // [B, T]; undefined: the offset within the document
  at::Tensor doc_ids;        // [B, T] packed rows (a document is a run of equal ids); undefined: one per row
  KvCache* cache = nullptr;  // generation: continue the cached sequence
};

// Changes a freshly built model in place after its weights are loaded (e.g. LoRA, lora::lora_adapter()).
using Adapter = std::function<void(Llama4Impl& model)>;

struct ModelOptions {
  // --- the modules (Llama4Impl's constructor) ---
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  // Routed experts held by this rank (expert parallelism); default all. Parameter names are unchanged,
  // expert tensors are [held, ...] with a sharded placement.
  ExpertShard experts;
  // Build the vision tower and projector when the architecture has a vision_config.
  bool vision = true;

  // --- model::build only ---
  std::string weights_dir;     // HF model directory with the initial weights; empty: the seeded init
  // false: no weights are read and none initialised; the parameters stay as allocated, their pages
  // untouched (costing no memory), for a caller that fills what it needs (export from a checkpoint).
  bool fill_weights = true;
  uint64_t seed = 0;           // seeded init (layout-independent, parallel/rank_rng.h)
  bool freeze_vision = false;  // the tower runs without autograd; the projector still trains
  RouterLossOptions router_loss;
  // Activations recomputed in backward (train.activation_checkpointing); installed after the adapters.
  config::ActivationCheckpointing recompute = config::ActivationCheckpointing::kNone;
  std::vector<Adapter> adapters;  // applied in order, after the weights
  // Expert parallelism: routed rows are exchanged over this group (device channel) when it is set; it must
  // hold ranks for exactly the shard in `experts`. Also set it (with ep = 1) to drop rows for capacity.
  parallel::Communicator* expert_group = nullptr;
  parallel::DispatchOptions dispatch;
};

class Llama4Impl : public torch::nn::Module {
 public:
  // Parameters are allocated uninitialised: load weights or call init_parameters() / reset_parameters().
  Llama4Impl(const config::ModelArch& arch, const ModelOptions& options = {});
  // A text-only model (no vision_config).
  explicit Llama4Impl(const config::TextConfig& text, const ModelOptions& options = {})
      : Llama4Impl(text_only(text), options) {}

  // Logits [B, T, V] in the model dtype.
  at::Tensor forward(const ModelInput& input);
  // Text only, for tests and tools.
  at::Tensor forward(const at::Tensor& input_ids,
                     const std::optional<at::Tensor>& position_ids = std::nullopt,
                     const std::optional<at::Tensor>& doc_ids = std::nullopt);
  // Final-normed hidden states [B, T, D]: what lm_head sees (the loss can project them in chunks).
  at::Tensor hidden_states(const ModelInput& input);
  // The decoder's input: text embeddings with the image features scattered in ([B, T, D]).
  at::Tensor embeddings(const at::Tensor& input_ids, const at::Tensor& pixel_values);

  bool has_vision() const { return !vision_model.is_empty(); }
  // A frozen vision tower runs without autograd and its parameters do not require grad.
  void set_freeze_vision(bool frozen);
  bool vision_frozen() const { return freeze_vision_; }

  // HF-style initialisation from the global generator (tests against HF): normal(0, initializer_range)
  // for matrices and experts, ones for norms; the tower and projector from seed + 1 and seed + 2.
  void reset_parameters(const std::optional<uint64_t>& seed = std::nullopt);
  // The same rules drawn per tensor (and per expert) from generators seeded by (seed, name[, expert]), see
  // parallel/rank_rng.h: the values do not depend on the expert shard, so every expert-parallel layout
  // starts from the weights of the single-process model. Tower and projector as reset_parameters.
  void init_parameters(uint64_t seed);

  // Router load balancing (off by default) and metrics of the last forward pass.
  void set_router_loss(const RouterLossOptions& options);
  // Replaces the local expert computation of every MoE layer (default: run_experts).
  void set_expert_runner(const ExpertRunner& runner);
  // Sum over MoE layers of their weighted router losses; undefined when disabled.
  at::Tensor router_loss() const;
  // One int64 [E] tensor per MoE layer, in layer order: (token, slot) pairs routed to each expert.
  std::vector<at::Tensor> expert_token_counts() const;
  // The exchange of routed rows between ranks, when model::build installed one (its drop statistics).
  const std::shared_ptr<ExpertParallelRunner>& expert_exchange() const { return expert_exchange_; }
  void set_expert_exchange(std::shared_ptr<ExpertParallelRunner> exchange) {
    expert_exchange_ = std::move(exchange);
  }

  const config::ModelArch& arch() const { return arch_; }
  const config::TextConfig& text_config() const { return model->config(); }
  // First routed expert held and how many (count = num_local_experts without expert parallelism).
  const ExpertShard& expert_shard() const { return shard_; }
  // Where parameters and inputs live.
  at::Device device() const { return lm_head->weight.device(); }

  TextModel model{nullptr};
  Linear lm_head{nullptr};
  VisionModel vision_model{nullptr};                   // null without a vision tower
  MultiModalProjector multi_modal_projector{nullptr};  // null without a vision tower

 private:
  static config::ModelArch text_only(const config::TextConfig& text) {
    config::ModelArch arch;
    arch.text_config = text;
    return arch;
  }

  config::ModelArch arch_;
  ExpertShard shard_;
  bool freeze_vision_ = false;
  std::shared_ptr<ExpertParallelRunner> expert_exchange_;
};
TORCH_MODULE(Llama4);

}  // namespace l4::model
