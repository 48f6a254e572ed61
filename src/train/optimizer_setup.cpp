#include "train/optimizer_setup.h"

#include <map>

#include "core/error.h"

namespace l4::train {
namespace {

bool is_16_bit(const at::Tensor& p) {
  return p.scalar_type() == at::kBFloat16 || p.scalar_type() == at::kHalf;
}

// The dtype of a parameter's optimizer state (and master): fp32 for 16-bit parameters.
at::ScalarType state_dtype(const at::Tensor& p) {
  return is_16_bit(p) ? at::kFloat : p.scalar_type();
}

}  // namespace

OptimizerSetup::OptimizerSetup(const std::vector<NamedParam>& params,
                               const std::vector<ParamSetting>& settings, double eps)
    : params_(params) {
  L4_ASSERT(params.size() == settings.size(), "{} params vs {} settings", params.size(), settings.size());
  const std::vector<ParamGroup> groups = group_settings(settings);
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < params.size(); ++i) {
    position[params[i].name] = i;
    index_of_impl_[params[i].param.unsafeGetTensorImpl()] = i;
  }
  master_.resize(params.size());
  group_of_param_.assign(params.size(), 0);
  std::vector<torch::optim::OptimizerParamGroup> torch_groups;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<at::Tensor> tensors;
    for (const auto& name : groups[g].names) {
      const size_t i = position.at(name);
      tensors.push_back(params[i].param);
      group_of_param_[i] = static_cast<int64_t>(g);
    }
    auto options = std::make_unique<torch::optim::AdamWOptions>(groups[g].lr);
    options->betas({groups[g].beta1, groups[g].beta2}).eps(eps).weight_decay(groups[g].weight_decay);
    torch_groups.emplace_back(std::move(tensors), std::move(options));
    base_lr_.push_back(groups[g].lr);
  }
  optimizer_ = std::make_unique<torch::optim::AdamW>(torch_groups, torch::optim::AdamWOptions(0.0).eps(eps));
}

OptimizerSetup::~OptimizerSetup() = default;

void OptimizerSetup::set_lr_multiplier(double multiplier) {
  auto& groups = optimizer_->param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(base_lr_[g] * multiplier);
  }
}

size_t OptimizerSetup::index_of(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].name == name) return i;
  }
  L4_FAIL("optimizer has no parameter '{}'", name);
}

double OptimizerSetup::current_lr(const std::string& name) const {
  const size_t g = static_cast<size_t>(group_of_param_[index_of(name)]);
  return static_cast<const torch::optim::AdamWOptions&>(optimizer_->param_groups()[g].options()).lr();
}

// One fused AdamW kernel per group and dtype instead of torch::optim::AdamW's eight elementwise passes per
// parameter: the update is memory-bound, and on the CPU the per-tensor loop cost more than the experts'
// matmuls of a step. Same update rule and the same AdamWParamState entries (checkpoints, state()).
void OptimizerSetup::step() {
  const torch::NoGradGuard no_grad;
  auto& states = optimizer_->state();
  for (auto& group : optimizer_->param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    L4_ASSERT(!o.amsgrad(), "amsgrad is not used");
    std::map<c10::ScalarType, std::vector<at::Tensor>> params, grads, exp_avgs, exp_avg_sqs, steps;
    std::vector<std::pair<at::Tensor, at::Tensor>> rounded;  // (16-bit parameter, its updated master)
    for (at::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      // A 16-bit parameter is updated through its fp32 master (created from it at its first update).
      at::Tensor target = p, grad = p.grad();
      if (is_16_bit(p)) {
        at::Tensor& master = master_[index_of_impl_.at(p.unsafeGetTensorImpl())];
        if (!master.defined()) master = p.detach().to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
        target = master;
        grad = grad.to(at::kFloat);
        rounded.emplace_back(p, master);
      }
      auto& slot = states[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->exp_avg(torch::zeros_like(target, at::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(target, at::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*slot);
      s.step(s.step() + 1);
      const c10::ScalarType type = target.scalar_type();
      params[type].push_back(target);
      grads[type].push_back(grad);
      exp_avgs[type].push_back(s.exp_avg());
      exp_avg_sqs[type].push_back(s.exp_avg_sq());
      steps[type].push_back(torch::full({}, static_cast<double>(s.step()), p.options().dtype(torch::kFloat)));
    }
    for (auto& [type, list] : params) {
      at::_fused_adamw_(list, grads[type], exp_avgs[type], exp_avg_sqs[type], /*max_exp_avg_sqs=*/{},
                        steps[type], o.lr(), std::get<0>(o.betas()), std::get<1>(o.betas()), o.weight_decay(),
                        o.eps(),
                        /*amsgrad=*/false, /*maximize=*/false);
    }
    for (auto& [param, master] : rounded) param.copy_(master);
  }
}

void OptimizerSetup::zero_grad() {
  optimizer_->zero_grad(/*set_to_none=*/true);
}

std::optional<OptimizerSetup::ParamState> OptimizerSetup::state(const std::string& name) const {
  const at::Tensor& p = params_[index_of(name)].param;
  const auto& states = optimizer_->state();
  auto it = states.find(p.unsafeGetTensorImpl());
  if (it == states.end()) return std::nullopt;
  const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
  return ParamState{s.exp_avg(), s.exp_avg_sq(), s.step()};
}

at::Tensor OptimizerSetup::master(const std::string& name) const {
  return master_[index_of(name)];
}

void OptimizerSetup::set_state(const std::string& name, const ParamState& state) {
  const at::Tensor& p = params_[index_of(name)].param;
  L4_CHECK(state.exp_avg.sizes() == p.sizes() && state.exp_avg_sq.sizes() == p.sizes(),
           "optimizer state of '{}' has shape {} but the parameter has {}", name,
           c10::str(state.exp_avg.sizes()), c10::str(p.sizes()));
  auto s = std::make_unique<torch::optim::AdamWParamState>();
  s->step(state.step);
  const auto options = p.options().dtype(state_dtype(p));
  s->exp_avg(state.exp_avg.to(options).clone());
  s->exp_avg_sq(state.exp_avg_sq.to(options).clone());
  optimizer_->state()[p.unsafeGetTensorImpl()] = std::move(s);
}

void OptimizerSetup::save_state(checkpoint::StateWriter& out) const {
  for (const NamedParam& p : params_) {
    const auto s = state(p.name);
    if (!s) continue;
    out.tensor("optimizer.exp_avg." + p.name, s->exp_avg, p.placement);
    out.tensor("optimizer.exp_avg_sq." + p.name, s->exp_avg_sq, p.placement);
    out.tensor("optimizer.step." + p.name, at::full({}, s->step, at::kLong),
               parallel::Placement::replicated());
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (master_[i].defined())
      out.tensor("optimizer.master." + params_[i].name, master_[i], params_[i].placement);
  }
}

void OptimizerSetup::load_state(const checkpoint::StateReader& in) {
  for (const NamedParam& p : params_) {
    const std::string avg = "optimizer.exp_avg." + p.name;
    if (!in.has_tensor(avg)) continue;  // not updated yet when the checkpoint was written
    const int64_t rows = p.param.dim() > 0 ? p.param.size(0) : -1;
    ParamState s;
    s.exp_avg = in.tensor(avg, p.placement, rows);
    s.exp_avg_sq = in.tensor("optimizer.exp_avg_sq." + p.name, p.placement, rows);
    s.step = in.tensor("optimizer.step." + p.name, parallel::Placement::replicated()).item<int64_t>();
    set_state(p.name, s);
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    const NamedParam& p = params_[i];
    const std::string name = "optimizer.master." + p.name;
    master_[i] = at::Tensor();  // a checkpoint without masters: rebuilt from the loaded parameter
    if (!is_16_bit(p.param) || !in.has_tensor(name)) continue;
    const at::Tensor master = in.tensor(name, p.placement, p.param.dim() > 0 ? p.param.size(0) : -1);
    L4_CHECK(master.sizes() == p.param.sizes(),
             "checkpoint tensor '{}' has shape {} but the parameter has {}", name, c10::str(master.sizes()),
             c10::str(p.param.sizes()));
    master_[i] = master.to(p.param.options().dtype(at::kFloat)).clone();
  }
}

}  // namespace l4::train
