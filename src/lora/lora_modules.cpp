#include "lora/lora_modules.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>

#include "core/error.h"
#include "core/log.h"
#include "core/strings.h"
#include "model/dtype.h"
#include "model/weight_cast.h"

namespace l4::lora {

double LoraOptions::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

LoraOptions options_from_recipe(const config::LoraSection& section, const std::string& where) {
  L4_CHECK(section.rank >= 1, "{}: lora.rank must be >= 1 to enable LoRA (got {})", where, section.rank);
  L4_CHECK(section.dropout >= 0.0 && section.dropout < 1.0, "{}: lora.dropout must be in [0, 1) (got {})",
           where, section.dropout);
  L4_CHECK(!section.targets.empty(), "{}: lora.targets must name at least one module", where);
  LoraOptions options;
  options.rank = section.rank;
  options.alpha = section.alpha;
  options.dropout = section.dropout;
  options.targets = section.targets;
  options.rslora = section.rslora;
  options.base_dtype = model::scalar_type(section.base_dtype);
  return options;
}

namespace {

// A fresh generator per tensor (and per global expert), so the initial adapter does not depend on module
// order or on how experts are sharded.
at::Generator generator_for(uint64_t seed, const std::string& name, int64_t expert) {
  const uint64_t h =
      std::hash<std::string>{}(name) ^ (static_cast<uint64_t>(expert + 1) * 0x9E3779B97F4A7C15ull);
  return at::make_generator<at::CPUGeneratorImpl>(seed * 0x100000001B3ull ^ h);
}

// PEFT: nn.init.kaiming_uniform_(A, a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = A.size(-1).
void kaiming_uniform_(at::Tensor a, uint64_t seed, const std::string& name, int64_t expert) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(a.size(-1)));
  at::Tensor tmp = torch::empty(a.sizes(), torch::kFloat);
  tmp.uniform_(-bound, bound, generator_for(seed, name, expert));
  a.copy_(tmp);
}

// A weight in the dtype its matmul with x runs in: the autocast dtype under autocast, else x's dtype. Cast
// once per optimizer step (model::WeightCastScope), frozen bases included.
at::Tensor matmul_weight(const at::Tensor& w, const at::Tensor& x) {
  const at::DeviceType device = x.device().type();
  if (at::autocast::is_autocast_enabled(device)) {
    return model::cast_weight(w, at::autocast::get_autocast_dtype(device));
  }
  return model::cast_weight(w, x.scalar_type());
}

at::Tensor as_dtype(const at::Tensor& t, at::ScalarType dtype) {
  return t.scalar_type() == dtype ? t : t.to(dtype);
}

}  // namespace

LoraLinearImpl::LoraLinearImpl(const at::Tensor& base_weight, const LoraOptions& options)
    : model::LinearImpl(0, 0, base_weight.options()), scale(options.scale()), dropout(options.dropout) {
  const int64_t out = base_weight.size(0), in = base_weight.size(1);
  // Trainable tensors are fp32 whatever the base dtype: AdamW updates of a few 1e-5 are below a bf16 ulp.
  const auto lora_options = base_weight.options().dtype(at::kFloat);
  lora_A = register_module("lora_A", model::Linear(in, options.rank, lora_options));
  lora_B = register_module("lora_B", model::Linear(options.rank, out, lora_options));
  torch::NoGradGuard no_grad;
  weight.set_data(as_dtype(base_weight.detach(), options.base_dtype));
  weight.set_requires_grad(false);
}

at::Tensor LoraLinearImpl::forward(const at::Tensor& x) const {
  const at::Tensor base = at::linear(x, matmul_weight(weight, x));
  const at::Tensor xd = dropout > 0.0 && is_training() ? at::dropout(x, dropout, /*train=*/true) : x;
  // The fp32 adapter runs in the matmul dtype (as autocast would run it), its gradient reaching the fp32
  // tensors.
  const at::Tensor low = at::linear(xd, matmul_weight(lora_A->weight, x));
  return base + at::linear(low, matmul_weight(lora_B->weight, x)) * scale;
}

at::Tensor LoraLinearImpl::delta_weight() const {
  return lora_B->weight.matmul(lora_A->weight) * scale;
}

LoraExpertsImpl::LoraExpertsImpl(const model::ExpertsImpl& experts, bool gate_up, bool down,
                                 const LoraOptions& options)
    : scale(options.scale()), placement_(experts.placement()) {
  const int64_t r = options.rank;
  auto add = [&](const at::Tensor& w, const std::string& name, at::Tensor& a, at::Tensor& b) {
    // W [E, in, out]: B [E, in, r] then A [E, r, out].
    // fp32 whatever the base dtype, as LoraLinear's.
    const auto options = w.options().dtype(at::kFloat);
    a = register_parameter(name + "_A", torch::empty({w.size(0), r, w.size(2)}, options));
    b = register_parameter(name + "_B", torch::zeros({w.size(0), w.size(1), r}, options));
  };
  if (gate_up) add(experts.gate_up_proj, "gate_up_proj", gate_up_proj_A, gate_up_proj_B);
  if (down) add(experts.down_proj, "down_proj", down_proj_A, down_proj_B);
}

namespace {

at::Tensor lora_matmul(const at::Tensor& x, const at::Tensor& w, const std::vector<at::Tensor>& a,
                       const std::vector<at::Tensor>& b, size_t e, double scale) {
  // w, a and b are slices of weights already in the matmul dtype (cast whole, once per step).
  at::Tensor y = x.matmul(w);
  if (!a.empty()) y = y + x.matmul(b[e]).matmul(a[e]) * scale;
  return y;
}

}  // namespace

at::Tensor LoraExpertsImpl::run(const at::Tensor& rows_sorted_by_expert,
                                const std::vector<int64_t>& rows_per_expert, const at::Tensor& gate_up_proj,
                                const at::Tensor& down_proj) const {
  L4_ASSERT(static_cast<int64_t>(rows_per_expert.size()) == gate_up_proj.size(0),
            "{} row counts for {} experts", rows_per_expert.size(), gate_up_proj.size(0));
  const auto unbind = [&](const at::Tensor& t) {
    return t.defined() ? matmul_weight(t, rows_sorted_by_expert).unbind(0) : std::vector<at::Tensor>{};
  };
  // Per-expert slices through autograd (split/unbind keep the backward one cat/stack), each expert's matmuls
  // with its low-rank terms.
  const std::vector<at::Tensor> rows = rows_sorted_by_expert.split_with_sizes(rows_per_expert, 0);
  const std::vector<at::Tensor> gate_up_w = unbind(gate_up_proj), down_w = unbind(down_proj);
  const auto gu_a = unbind(gate_up_proj_A), gu_b = unbind(gate_up_proj_B);
  const auto dn_a = unbind(down_proj_A), dn_b = unbind(down_proj_B);
  std::vector<at::Tensor> outputs;
  for (size_t e = 0; e < rows_per_expert.size(); ++e) {
    if (rows_per_expert[e] == 0) continue;
    const auto gate_up = lora_matmul(rows[e], gate_up_w[e], gu_a, gu_b, e, scale).chunk(2, -1);
    outputs.push_back(lora_matmul(gate_up[1] * at::silu(gate_up[0]), down_w[e], dn_a, dn_b, e, scale));
  }
  if (outputs.empty()) return rows_sorted_by_expert.new_zeros({0, down_proj.size(2)});
  return outputs.size() == 1 ? outputs[0] : torch::cat(outputs, 0);
}

at::Tensor LoraExpertsImpl::delta_gate_up() const {
  return gate_up_proj_A.defined() ? torch::bmm(gate_up_proj_B, gate_up_proj_A) * scale : at::Tensor();
}
at::Tensor LoraExpertsImpl::delta_down() const {
  return down_proj_A.defined() ? torch::bmm(down_proj_B, down_proj_A) * scale : at::Tensor();
}

bool target_matches(const std::string& target, const std::string& name, bool is_expert_param) {
  if (target.find_first_of("*?") != std::string::npos) return glob_match(target, name);
  if (is_expert_param && target.find("experts") == std::string::npos) return false;
  if (name == target) return true;
  const std::string dotted = "." + target;
  if (name.size() > dotted.size() && name.compare(name.size() - dotted.size(), dotted.size(), dotted) == 0) {
    return true;
  }
  return name.find(dotted + ".") != std::string::npos;  // an ancestor module ("shared_expert")
}

LoraExpertsImpl* find_lora_experts(model::MoeImpl& moe) {
  for (const auto& child : moe.experts->named_children()) {
    if (child.key() == "lora") return child.value()->as<LoraExpertsImpl>();
  }
  return nullptr;
}

LoraInjection apply_lora(model::Llama4Impl& model, const LoraOptions& options, uint64_t seed) {
  L4_CHECK(options.rank >= 1, "lora: rank must be >= 1 (got {})", options.rank);
  std::map<std::string, bool> used;
  for (const auto& t : options.targets) used[t] = false;
  auto selected = [&](const std::string& name, bool expert) {
    bool any = false;
    for (const auto& t : options.targets) {
      if (target_matches(t, name, expert)) used[t] = any = true;
    }
    return any;
  };

  LoraInjection injection;
  for (const auto& p : model.model->parameters()) p.set_requires_grad(false);
  for (const auto& p : model.lm_head->parameters()) p.set_requires_grad(false);
  // Replaces parent.<child> (a Linear) by a LoraLinear holding the same weight.
  auto wrap = [&](torch::nn::Module& parent, model::Linear& slot, const std::string& child,
                  const std::string& name) {
    if (!selected(name, false)) return;
    auto lora = std::make_shared<LoraLinearImpl>(slot->weight, options);
    torch::NoGradGuard no_grad;
    kaiming_uniform_(lora->lora_A->weight, seed, name, -1);
    lora->lora_A->weight.set_requires_grad(true);
    lora->lora_B->weight.zero_();
    lora->lora_B->weight.set_requires_grad(true);
    slot = model::Linear(std::static_pointer_cast<model::LinearImpl>(lora));
    parent.replace_module(child, slot);
    injection.linear_modules.push_back(name);
  };
  auto wrap_mlp = [&](model::MlpImpl& mlp, const std::string& prefix) {
    wrap(mlp, mlp.gate_proj, "gate_proj", prefix + ".gate_proj");
    wrap(mlp, mlp.up_proj, "up_proj", prefix + ".up_proj");
    wrap(mlp, mlp.down_proj, "down_proj", prefix + ".down_proj");
  };

  auto& layers = model.model->decoder_layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string prefix = "model.layers." + std::to_string(i);
    auto& attn = *layers[i]->self_attn;
    wrap(attn, attn.q_proj, "q_proj", prefix + ".self_attn.q_proj");
    wrap(attn, attn.k_proj, "k_proj", prefix + ".self_attn.k_proj");
    wrap(attn, attn.v_proj, "v_proj", prefix + ".self_attn.v_proj");
    wrap(attn, attn.o_proj, "o_proj", prefix + ".self_attn.o_proj");
    if (layers[i]->mlp) wrap_mlp(*layers[i]->mlp, prefix + ".feed_forward");
    if (!layers[i]->moe) continue;
    auto& moe = *layers[i]->moe;
    wrap_mlp(*moe.shared_expert, prefix + ".feed_forward.shared_expert");
    const std::string experts = prefix + ".feed_forward.experts";
    const bool gate_up = selected(experts + ".gate_up_proj", true);
    const bool down = selected(experts + ".down_proj", true);
    if (!gate_up && !down) continue;
    L4_CHECK(find_lora_experts(moe) == nullptr, "lora: {} already has LoRA experts", experts);
    auto lora = moe.experts->register_module("lora", LoraExperts(*moe.experts, gate_up, down, options));
    {
      torch::NoGradGuard no_grad;
      for (const auto& [param, name] : {std::pair{lora->gate_up_proj_A, experts + ".gate_up_proj"},
                                        std::pair{lora->down_proj_A, experts + ".down_proj"}}) {
        if (!param.defined()) continue;
        for (int64_t e = 0; e < param.size(0); ++e) {
          kaiming_uniform_(param[e], seed, name, moe.experts->first_expert() + e);
        }
      }
    }
    for (auto& p : lora->parameters()) p.set_requires_grad(true);
    // Frozen base experts, optionally held in the base dtype.
    {
      torch::NoGradGuard no_grad;
      for (at::Tensor* w : {&moe.experts->gate_up_proj, &moe.experts->down_proj}) {
        if (w->scalar_type() != options.base_dtype) w->set_data(w->detach().to(options.base_dtype));
      }
    }
    LoraExpertsImpl* raw = lora.get();
    moe.expert_runner = [raw](const at::Tensor& rows, const std::vector<int64_t>& counts,
                              const at::Tensor& gate_up_w,
                              const at::Tensor& down_w) { return raw->run(rows, counts, gate_up_w, down_w); };
    if (gate_up) injection.expert_params.push_back(experts + ".gate_up_proj");
    if (down) injection.expert_params.push_back(experts + ".down_proj");
  }
  std::vector<std::string> unused;
  for (const auto& [t, hit] : used) {
    if (!hit) unused.push_back(t);
  }
  L4_CHECK(
      unused.empty(),
      "lora.targets: {} select(s) no layer; targets are module names or suffixes (q_proj, k_proj, "
      "v_proj, o_proj, gate_proj, up_proj, down_proj, shared_expert, self_attn, experts, "
      "experts.gate_up_proj, experts.down_proj) or globs over names such as model.layers.0.self_attn.q_proj",
      join(unused, ", "));
  L4_LOG_INFO("LoRA rank {} (scale {}): {} linear layers, {} expert tensors", options.rank, options.scale(),
              injection.linear_modules.size(), injection.expert_params.size());
  return injection;
}

model::Adapter lora_adapter(const LoraOptions& options, uint64_t seed) {
  return [options, seed](model::Llama4Impl& model) { apply_lora(model, options, seed); };
}

std::map<std::string, LoraLinearImpl*> lora_linears(model::Llama4Impl& model) {
  std::map<std::string, LoraLinearImpl*> out;
  for (const auto& item : model.named_modules()) {
    if (auto* l = dynamic_cast<LoraLinearImpl*>(item.value().get())) out[item.key()] = l;
  }
  return out;
}

LoraInjection lora_injection(model::Llama4Impl& model) {
  LoraInjection injection;
  for (const auto& item : model.named_modules()) {
    if (dynamic_cast<LoraLinearImpl*>(item.value().get())) {
      injection.linear_modules.push_back(item.key());
    } else if (auto* experts = dynamic_cast<LoraExpertsImpl*>(item.value().get())) {
      const std::string parent = item.key().substr(0, item.key().size() - std::string(".lora").size());
      if (experts->gate_up_proj_A.defined()) injection.expert_params.push_back(parent + ".gate_up_proj");
      if (experts->down_proj_A.defined()) injection.expert_params.push_back(parent + ".down_proj");
    }
  }
  return injection;
}

std::vector<std::pair<std::string, at::Tensor>> merged_state(model::Llama4Impl& model) {
  std::map<std::string, at::Tensor> deltas;
  for (const auto& item : model.named_modules()) {
    if (auto* linear = dynamic_cast<LoraLinearImpl*>(item.value().get())) {
      deltas[item.key() + ".weight"] = linear->delta_weight();
    } else if (auto* experts = dynamic_cast<LoraExpertsImpl*>(item.value().get())) {
      const std::string parent = item.key().substr(0, item.key().size() - std::string(".lora").size());
      if (experts->gate_up_proj_A.defined()) deltas[parent + ".gate_up_proj"] = experts->delta_gate_up();
      if (experts->down_proj_A.defined()) deltas[parent + ".down_proj"] = experts->delta_down();
    }
  }
  torch::NoGradGuard no_grad;
  const at::ScalarType dtype = model.lm_head->weight.scalar_type();
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    if (name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos ||
        name.find(".lora.") != std::string::npos) {
      continue;
    }
    at::Tensor t = item.value().detach();
    auto it = deltas.find(name);
    if (it != deltas.end()) t = (t.to(at::kFloat) + it->second.to(at::kFloat)).to(dtype);
    out.emplace_back(name, t);
  }
  return out;
}

}  // namespace l4::lora
