#include "model/recompute.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>

#include <torch/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <algorithm>

#include "core/error.h"
#include "model/llama4.h"

namespace l4::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the backward needs besides the saved tensors: the function and the state it ran under.
struct RecomputeState : torch::CustomClassHolder {
  TensorFn fn;
  size_t num_inputs = 0;
  at::Device device = at::kCPU;
  at::Tensor cpu_rng;     // CPU generator state before the forward
  at::Tensor device_rng;  // the accelerator's generator state (undefined on CPU runs)
  bool autocast = false;
  at::ScalarType autocast_dtype = at::kBFloat16;
};

at::Generator device_generator(const at::Device& device) {
  return at::globalContext().defaultGenerator(device);
}

at::Generator cpu_generator() {
  return at::detail::getDefaultCPUGenerator();
}  // shares the global one

// Sets the generators to the forward's states for the life of the guard, then back to where they were.
class RngReplay {
 public:
  explicit RngReplay(const RecomputeState& state) : state_(state) {
    cpu_now_ = cpu_generator().get_state();
    cpu_generator().set_state(state.cpu_rng);
    if (state.device_rng.defined()) {
      at::Generator gen = device_generator(state.device);
      device_now_ = gen.get_state();
      gen.set_state(state.device_rng);
    }
  }
  ~RngReplay() {
    cpu_generator().set_state(cpu_now_);
    if (device_now_.defined()) device_generator(state_.device).set_state(device_now_);
  }

 private:
  const RecomputeState& state_;
  at::Tensor cpu_now_, device_now_;
};

// The forward's autocast setting for the recompute (the backward runs outside the caller's autocast scope).
class AutocastReplay {
 public:
  explicit AutocastReplay(const RecomputeState& state) : type_(state.device.type()) {
    was_enabled_ = at::autocast::is_autocast_enabled(type_);
    was_dtype_ = at::autocast::get_autocast_dtype(type_);
    at::autocast::set_autocast_dtype(type_, state.autocast_dtype);
    at::autocast::set_autocast_enabled(type_, state.autocast);
    if (state.autocast) at::autocast::increment_nesting();
    nested_ = state.autocast;
  }
  ~AutocastReplay() {
    if (nested_ && at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(type_, was_enabled_);
    at::autocast::set_autocast_dtype(type_, was_dtype_);
  }

 private:
  at::DeviceType type_;
  bool was_enabled_ = false, nested_ = false;
  at::ScalarType was_dtype_;
};

class Recompute : public torch::autograd::Function<Recompute> {
 public:
  // tensors = inputs followed by params; only the inputs are passed to fn.
  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<RecomputeState> state,
                               at::TensorList tensors) {
    const std::vector<at::Tensor> inputs(tensors.begin(), tensors.begin() + state->num_inputs);
    variable_list outputs = state->fn(inputs);  // autograd is off inside a Function's forward
    ctx->save_for_backward(tensors.vec());
    ctx->set_materialize_grads(false);
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return outputs;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto state =
        c10::static_intrusive_pointer_cast<RecomputeState>(ctx->saved_data["state"].toCapsule());
    const variable_list saved = ctx->get_saved_variables();
    // Fresh leaves in place of the inputs; the params themselves are read by fn.
    std::vector<at::Tensor> leaves;
    for (size_t i = 0; i < state->num_inputs; ++i) {
      leaves.push_back(saved[i].detach().requires_grad_(ctx->needs_input_grad(i)));
    }
    variable_list outputs;
    {
      const RngReplay rng(*state);
      const AutocastReplay autocast(*state);
      const c10::AutoGradMode grad_mode(true);
      outputs = state->fn(leaves);
    }
    L4_ASSERT(outputs.size() == grads.size(), "recompute gave {} outputs, the forward {}", outputs.size(),
              grads.size());
    variable_list roots, root_grads;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (!grads[i].defined() || !outputs[i].requires_grad()) continue;
      roots.push_back(outputs[i]);
      root_grads.push_back(grads[i]);
    }
    // The gradients go back through this node (not into .grad from a nested backward): each parameter's
    // gradient accumulator then runs once per backward, as gradient hooks (bucketed all-reduce) expect.
    std::vector<size_t> wanted;
    variable_list targets;
    for (size_t i = 0; i < saved.size(); ++i) {
      const at::Tensor& t = i < leaves.size() ? leaves[i] : saved[i];
      if (!ctx->needs_input_grad(i) || !t.requires_grad()) continue;
      wanted.push_back(i);
      targets.push_back(t);
    }
    variable_list result(saved.size() + 1);  // the state (no gradient), then one per tensor
    if (roots.empty() || targets.empty()) return result;
    const variable_list found = torch::autograd::grad(roots, targets, root_grads, /*retain_graph=*/false,
                                                      /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t j = 0; j < wanted.size(); ++j) result[wanted[j] + 1] = found[j];
    return result;
  }
};

}  // namespace

std::vector<at::Tensor> checkpointed(const TensorFn& fn, const std::vector<at::Tensor>& inputs,
                                     const std::vector<at::Tensor>& params) {
  L4_ASSERT(!inputs.empty() && inputs[0].defined(), "checkpointed: the first input must be a tensor");
  auto state = c10::make_intrusive<RecomputeState>();
  state->fn = fn;
  state->num_inputs = inputs.size();
  state->device = inputs[0].device();
  state->cpu_rng = cpu_generator().get_state();
  if (!state->device.is_cpu()) state->device_rng = device_generator(state->device).get_state();
  state->autocast = at::autocast::is_autocast_enabled(state->device.type());
  state->autocast_dtype = at::autocast::get_autocast_dtype(state->device.type());
  variable_list tensors = inputs;
  for (const at::Tensor& p : params) {
    const bool is_input =
        std::any_of(inputs.begin(), inputs.end(), [&](const at::Tensor& t) { return t.is_same(p); });
    if (p.requires_grad() && !is_input) tensors.push_back(p);
  }
  return Recompute::apply(state, at::TensorList(tensors));
}

void recompute_experts(Llama4Impl& model) {
  for (auto& layer : model.model->decoder_layers) {
    if (!layer->moe) continue;
    MoeImpl* moe = layer->moe.get();
    const ExpertRunner inner = moe->expert_runner;
    moe->expert_runner = [moe, inner](const at::Tensor& rows, const std::vector<int64_t>& counts,
                                      const at::Tensor& gate_up, const at::Tensor& down) {
      if (!c10::GradMode::is_enabled() || !moe->is_training()) return inner(rows, counts, gate_up, down);
      const TensorFn fn = [inner, counts](const std::vector<at::Tensor>& in) {
        return std::vector<at::Tensor>{inner(in[0], counts, in[1], in[2])};
      };
      // The expert weights come in as inputs; the parameters listed are the adapters' (LoRA A/B) and the
      // weights themselves, whose gradients flow through the inputs.
      return checkpointed(fn, {rows, gate_up, down}, moe->experts->parameters())[0];
    };
  }
}

}  // namespace l4::model
