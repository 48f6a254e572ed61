#include "train/optimizer_setup.h"

#include <torch/torch.h>

#include <algorithm>
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
                               const std::vector<ParamSetting>& settings, double eps, ZeroSetup zero)
    : params_(params), zero_(std::move(zero)) {
  zero_index_.assign(params.size(), -1);
  piece_of_param_.assign(params.size(), -1);
  if (zero_.partition) {
    const parallel::ZeroPartition& partition = *zero_.partition;
    L4_ASSERT(
        zero_.comm && zero_.comm->size() == partition.world_size() && zero_.comm->rank() == partition.rank(),
        "ZeRO needs the device channel the partition was made for");
    size_t next = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      if (params[i].placement.is_sharded()) continue;
      L4_ASSERT(next < partition.params().size() && partition.params()[next].is_same(params[i].param),
                "replicated parameter '{}' is not the ZeRO partition's parameter {}", params[i].name, next);
      L4_CHECK(params[i].param.is_contiguous(), "optimizer.zero: parameter '{}' is not contiguous",
               params[i].name);
      zero_index_[i] = static_cast<int64_t>(next++);
    }
    L4_ASSERT(next == partition.params().size(), "{} replicated parameters, the partition has {}", next,
              partition.params().size());
    zero_steps_.assign(next, 0);
    for (size_t k = 0; k < partition.pieces().size(); ++k) {
      const parallel::ZeroPartition::Piece& piece = partition.pieces()[k];
      const size_t i = static_cast<size_t>(
          std::find(zero_index_.begin(), zero_index_.end(), static_cast<int64_t>(piece.param)) -
          zero_index_.begin());
      piece_of_param_[i] = static_cast<int64_t>(k);
      param_of_piece_.push_back(i);
      // A view: AdamW updates the owned elements of the parameter in place.
      piece_views_.push_back(params[i].param.detach().view({-1}).narrow(0, piece.begin, piece.length));
    }
  }
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
      const at::Tensor t = optimized(i);
      if (t.defined()) tensors.push_back(t);
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

at::Tensor OptimizerSetup::optimized(size_t i) const {
  if (zero_index_[i] < 0) return params_[i].param;
  return piece_of_param_[i] < 0 ? at::Tensor() : piece_views_[static_cast<size_t>(piece_of_param_[i])];
}

at::Tensor OptimizerSetup::grad_of_piece(size_t k) const {
  const parallel::ZeroPartition::Piece& piece = zero_.partition->pieces()[k];
  if (zero_.grad_shard) {
    const at::Tensor shard = zero_.grad_shard();
    return shard.defined() ? shard.narrow(0, piece.shard_offset, piece.length) : at::Tensor();
  }
  const at::Tensor& grad = zero_.partition->params()[piece.param].grad();
  return grad.defined() ? grad.view({-1}).narrow(0, piece.begin, piece.length) : at::Tensor();
}

// Every rank's updated range into every rank's parameters (device channel).
void OptimizerSetup::all_gather_replicated() {
  const parallel::ZeroPartition& partition = *zero_.partition;
  const at::Tensor full = zero_.comm->all_gather(partition.chunk_from_pieces(piece_views_));
  for (size_t i = 0; i < partition.params().size(); ++i) {
    const at::Tensor& p = partition.params()[i];
    p.detach().view({-1}).copy_(full.narrow(0, partition.param_offset(i), p.numel()));
  }
}

int64_t OptimizerSetup::state_bytes() const {
  int64_t bytes = 0;
  for (const auto& [key, slot] : optimizer_->state()) {
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*slot);
    bytes += s.exp_avg().nbytes() + s.exp_avg_sq().nbytes();
  }
  for (const at::Tensor& master : master_) {
    if (master.defined()) bytes += master.nbytes();
  }
  return bytes;
}

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
  std::map<const c10::TensorImpl*, size_t> piece_index;
  for (size_t k = 0; k < piece_views_.size(); ++k) piece_index[piece_views_[k].unsafeGetTensorImpl()] = k;
  for (auto& group : optimizer_->param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    L4_ASSERT(!o.amsgrad(), "amsgrad is not used");
    std::map<c10::ScalarType, std::vector<at::Tensor>> params, grads, exp_avgs, exp_avg_sqs, steps;
    std::vector<std::pair<at::Tensor, at::Tensor>> rounded;  // (16-bit parameter, its updated master)
    for (at::Tensor& p : group.params()) {
      auto piece = piece_index.find(p.unsafeGetTensorImpl());
      at::Tensor grad = piece == piece_index.end() ? p.grad() : grad_of_piece(piece->second);
      if (!grad.defined()) continue;
      // A 16-bit parameter is updated through its fp32 master (created from it at its first update); under
      // ZeRO, `p` is the owned piece and so is its master.
      at::Tensor target = p;
      if (is_16_bit(p)) {
        const size_t i = piece == piece_index.end() ? index_of_impl_.at(p.unsafeGetTensorImpl())
                                                    : param_of_piece_[piece->second];
        at::Tensor& master = master_[i];
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
  if (zero_.partition) {
    // Every replicated parameter is updated in each step (GradSync gives each one a gradient), whichever
    // rank owns its elements; the count is what a checkpoint records for it.
    for (int64_t& count : zero_steps_) ++count;
    all_gather_replicated();
  }
}

void OptimizerSetup::zero_grad() {
  optimizer_->zero_grad(/*set_to_none=*/true);
  // Under ZeRO the optimizer holds pieces, not the replicated parameters: their gradients go here.
  for (const NamedParam& p : params_) p.param.mutable_grad().reset();
}

std::optional<OptimizerSetup::ParamState> OptimizerSetup::state(const std::string& name) const {
  const at::Tensor p = optimized(index_of(name));
  if (!p.defined()) return std::nullopt;
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
  const at::Tensor p = optimized(index_of(name));
  if (!p.defined()) return;  // ZeRO: another rank owns every element of this parameter
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
  // ZeRO: the ranks' ranges gathered into full tensors (device channel, every rank), written as the
  // parameter's own placement, so the checkpoint equals a ZeRO-0 one and loads at any world size or stage.
  at::Tensor full_avg, full_sq, full_master;
  if (zero_.partition) {
    const parallel::ZeroPartition& partition = *zero_.partition;
    // The state (and masters) of 16-bit parameters is fp32: gathered as such, not rounded to the parameters'.
    const at::ScalarType type =
        partition.params().empty() ? at::kFloat : state_dtype(partition.params().front());
    std::vector<at::Tensor> avg, sq, master;
    for (size_t k = 0; k < piece_views_.size(); ++k) {
      auto it = optimizer_->state().find(piece_views_[k].unsafeGetTensorImpl());
      if (it == optimizer_->state().end()) {
        avg.push_back(at::zeros_like(piece_views_[k]));
        sq.push_back(at::zeros_like(piece_views_[k]));
      } else {
        const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
        avg.push_back(s.exp_avg());
        sq.push_back(s.exp_avg_sq());
      }
      const at::Tensor& m = master_[param_of_piece_[k]];
      master.push_back(m.defined() ? m : at::zeros_like(piece_views_[k], at::kFloat));
    }
    full_avg = zero_.comm->all_gather(partition.chunk_from_pieces(avg, type));
    full_sq = zero_.comm->all_gather(partition.chunk_from_pieces(sq, type));
    // Every rank takes part (the partition's dtype is the same on all ranks): masters of replicated 16-bit
    // parameters are sharded like their AdamW state.
    if (!partition.params().empty() && is_16_bit(partition.params().front()))
      full_master = zero_.comm->all_gather(partition.chunk_from_pieces(master, at::kFloat));
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    const NamedParam& p = params_[i];
    std::optional<ParamState> s;
    if (zero_index_[i] >= 0) {
      const auto z = static_cast<size_t>(zero_index_[i]);
      if (zero_steps_[z] == 0) continue;
      const int64_t offset = zero_.partition->param_offset(z), numel = p.param.numel();
      s = ParamState{full_avg.narrow(0, offset, numel).view(p.param.sizes()),
                     full_sq.narrow(0, offset, numel).view(p.param.sizes()), zero_steps_[z]};
    } else {
      s = state(p.name);
    }
    if (!s) continue;
    out.tensor("optimizer.exp_avg." + p.name, s->exp_avg, p.placement);
    out.tensor("optimizer.exp_avg_sq." + p.name, s->exp_avg_sq, p.placement);
    out.tensor("optimizer.step." + p.name, at::full({}, s->step, at::kLong),
               parallel::Placement::replicated());
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    const NamedParam& p = params_[i];
    if (zero_index_[i] >= 0) {
      // The master exists from the first update on, on every rank that owns a piece; the steps count
      // (equal on all ranks) says whether it does.
      const auto z = static_cast<size_t>(zero_index_[i]);
      if (!full_master.defined() || zero_steps_[z] == 0) continue;
      out.tensor(
          "optimizer.master." + p.name,
          full_master.narrow(0, zero_.partition->param_offset(z), p.param.numel()).view(p.param.sizes()),
          p.placement);
    } else if (master_[i].defined()) {
      out.tensor("optimizer.master." + p.name, master_[i], p.placement);
    }
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
    const size_t i = index_of(p.name);
    if (zero_index_[i] >= 0) {
      // The full (replicated) state, of which this rank keeps its piece.
      zero_steps_[static_cast<size_t>(zero_index_[i])] = s.step;
      if (piece_of_param_[i] < 0) continue;
      const parallel::ZeroPartition::Piece& piece =
          zero_.partition->pieces()[static_cast<size_t>(piece_of_param_[i])];
      s.exp_avg = s.exp_avg.reshape({-1}).narrow(0, piece.begin, piece.length);
      s.exp_avg_sq = s.exp_avg_sq.reshape({-1}).narrow(0, piece.begin, piece.length);
    }
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
    if (zero_index_[i] < 0) {
      master_[i] = master.to(p.param.options().dtype(at::kFloat)).clone();
    } else if (piece_of_param_[i] >= 0) {
      // ZeRO: the full master, of which this rank keeps its piece.
      const parallel::ZeroPartition::Piece& piece =
          zero_.partition->pieces()[static_cast<size_t>(piece_of_param_[i])];
      master_[i] = master.reshape({-1})
                       .narrow(0, piece.begin, piece.length)
                       .to(p.param.options().dtype(at::kFloat))
                       .clone();
    }
  }
}

}  // namespace l4::train
