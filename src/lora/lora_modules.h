// LoRA (low-rank adaptation) for the Llama 4 text model, with PEFT's math and layout so adapters
// round-trip through `peft`:
//   LoraLinear   y = x W^T + scale * B(A(dropout(x)))          A [r, in] Kaiming-uniform, B [out, r] zero
//   LoraExperts  for an expert tensor W [E, in, out] (x W_e, HF layout): y_e = x W_e + scale * (x B_e) A_e
//                with B_e [in, r] zero and A_e [r, out] Kaiming-uniform: PEFT's target_parameters form for
//                3-D parameters (its "swapped" in/out features), computed inside the sparse expert matmuls.
// scale = alpha / r, or alpha / sqrt(r) with rsLoRA. Base weights stay where they were (same names), frozen,
// optionally held in bf16; every other parameter of the language model is frozen. LoRA adapts the language
// model only: the vision tower and projector train or not as model.freeze_vision says.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "config/recipe.h"
#include "model/llama4.h"
#include "model/placed.h"

namespace l4::lora {

struct LoraOptions {
  int64_t rank = 8;
  double alpha = 16.0;
  double dropout = 0.0;
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  bool rslora = false;
  at::ScalarType base_dtype = at::kFloat;  // frozen base weights of wrapped layers
  double scale() const;
};

// From the recipe's lora section (`where` names the recipe in errors).
LoraOptions options_from_recipe(const config::LoraSection& section, const std::string& where);

class LoraLinearImpl : public model::LinearImpl {
 public:
  // Takes over `base_weight` [out, in] (no copy unless converted to base_dtype).
  LoraLinearImpl(const at::Tensor& base_weight, const LoraOptions& options);
  at::Tensor forward(const at::Tensor& x) const override;
  // scale * B A, [out, in], in the LoRA dtype.
  at::Tensor delta_weight() const;
  model::Linear lora_A{nullptr}, lora_B{nullptr};
  double scale, dropout;
};
TORCH_MODULE(LoraLinear);

// Registered as "lora" inside an Experts module; parameters gate_up_proj_A/B, down_proj_A/B (whichever are
// targeted), dim 0 = local experts: they have the experts' placement and shard with them.
class LoraExpertsImpl : public torch::nn::Module, public model::PlacedModule {
 public:
  LoraExpertsImpl(const model::ExpertsImpl& experts, bool gate_up, bool down, const LoraOptions& options);
  parallel::Placement placement() const override { return placement_; }
  // The LoRA-aware model::run_experts: same contract, plus the low-rank terms of each expert's rows.
  at::Tensor run(const at::Tensor& rows_sorted_by_expert, const std::vector<int64_t>& rows_per_expert,
                 const at::Tensor& gate_up_proj, const at::Tensor& down_proj) const;
  // scale * B_e A_e for every local expert, [E, in, out]; undefined when that tensor is not targeted.
  at::Tensor delta_gate_up() const;
  at::Tensor delta_down() const;
  at::Tensor gate_up_proj_A, gate_up_proj_B, down_proj_A, down_proj_B;  // undefined when not targeted
  double scale;

 private:
  parallel::Placement placement_;
};
TORCH_MODULE(LoraExperts);

// What LoRA wraps in a model, by canonical name: linear modules ("model.layers.0.self_attn.q_proj") and
// expert parameters ("model.layers.1.feed_forward.experts.gate_up_proj"), in module order (gate_up_proj
// before down_proj).
struct LoraInjection {
  std::vector<std::string> linear_modules;
  std::vector<std::string> expert_params;
};

// Whether a target (a module name, a dotted suffix or ancestor such as "shared_expert", or a glob over full
// names) selects `name`. Expert tensors are selected only by targets that mention "experts" (or globs).
bool target_matches(const std::string& target, const std::string& name, bool is_expert_param);

// Wraps the targeted layers of the language model, freezes its other parameters, seeds A (Kaiming-uniform,
// as PEFT; per tensor and global expert, so any expert layout starts alike) and zeroes B, and makes each MoE
// layer with LoRA experts run them inside its expert matmuls (expert_runner). Install an expert-parallel
// runner afterwards, with the layer's previous runner as its local computation. Throws l4::Error for a
// target that selects nothing, or rank < 1.
LoraInjection apply_lora(model::Llama4Impl& model, const LoraOptions& options, uint64_t seed);

// apply_lora as a model::build adapter.
model::Adapter lora_adapter(const LoraOptions& options, uint64_t seed);

// What LoRA wrapped in `model` (empty without LoRA).
LoraInjection lora_injection(model::Llama4Impl& model);

// The layer's LoRA experts, or nullptr.
LoraExpertsImpl* find_lora_experts(model::MoeImpl& moe);

// Every parameter with LoRA folded into the base weights, under canonical names (model dtype, fp32 when the
// base is bf16 and the model fp32); the LoRA tensors themselves are left out. The model is unchanged.
std::vector<std::pair<std::string, at::Tensor>> merged_state(model::Llama4Impl& model);

// The linear LoRA modules by canonical name, and the LoRA experts of one Experts module.
std::map<std::string, LoraLinearImpl*> lora_linears(model::Llama4Impl& model);

}  // namespace l4::lora
