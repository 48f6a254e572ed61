#include "model/grouped_experts.h"

#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/torch.h>

#include "core/error.h"
#include "kernels/swiglu.h"
#include "model/weight_cast.h"

namespace l4::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::vector<int64_t> offsets_of(const std::vector<int64_t>& counts) {
  std::vector<int64_t> offsets(counts.size() + 1, 0);
  for (size_t e = 0; e < counts.size(); ++e) offsets[e + 1] = offsets[e] + counts[e];
  return offsets;
}

class GroupedExpertMlp : public torch::autograd::Function<GroupedExpertMlp> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& rows, const std::vector<int64_t>& counts,
                            const at::Tensor& gate_up_proj, const at::Tensor& down_proj) {
    const int64_t ffn = down_proj.size(1);
    const std::vector<int64_t> offsets = offsets_of(counts);
    at::Tensor out = at::empty({rows.size(0), down_proj.size(2)}, rows.options());
    at::Tensor gate_up = at::empty({rows.size(0), 2 * ffn}, rows.options());  // saved pre-activations
    for (size_t e = 0; e < counts.size(); ++e) {
      if (counts[e] == 0) continue;
      const at::Tensor expert_rows = rows.narrow(0, offsets[e], counts[e]);
      at::Tensor expert_gate_up = gate_up.narrow(0, offsets[e], counts[e]);
      at::mm_out(expert_gate_up, expert_rows, gate_up_proj[e]);
      at::Tensor hidden = at::empty({counts[e], ffn}, rows.options());
      kernels::swiglu_concat_forward_out(expert_gate_up, hidden);
      at::Tensor expert_out = out.narrow(0, offsets[e], counts[e]);
      at::mm_out(expert_out, hidden, down_proj[e]);
    }
    ctx->save_for_backward({rows, gate_up_proj, down_proj, gate_up});
    ctx->saved_data["counts"] = c10::IValue(counts);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& rows = saved[0];
    const at::Tensor& gate_up_proj = saved[1];
    const at::Tensor& down_proj = saved[2];
    const at::Tensor& gate_up = saved[3];
    const std::vector<int64_t> counts = ctx->saved_data["counts"].toIntVector();
    const std::vector<int64_t> offsets = offsets_of(counts);
    const at::Tensor grad_out = grads[0].contiguous();
    const int64_t ffn = down_proj.size(1);
    const bool need_rows = ctx->needs_input_grad(0);
    // Indices count the tensor inputs only (rows, gate_up_proj, down_proj): the row counts are not one.
    const bool need_weights = ctx->needs_input_grad(1) || ctx->needs_input_grad(2);

    at::Tensor grad_rows = need_rows ? at::empty_like(rows) : at::Tensor();
    at::Tensor grad_gate_up_proj = need_weights ? at::empty_like(gate_up_proj) : at::Tensor();
    at::Tensor grad_down_proj = need_weights ? at::empty_like(down_proj) : at::Tensor();
    at::Tensor grad_gate_up = at::empty({rows.size(0), 2 * ffn}, rows.options());
    for (size_t e = 0; e < counts.size(); ++e) {
      if (counts[e] == 0) {
        if (need_weights) {  // an expert without rows gets a zero gradient, as autograd would give it
          grad_gate_up_proj[e].zero_();
          grad_down_proj[e].zero_();
        }
        continue;
      }
      const at::Tensor expert_rows = rows.narrow(0, offsets[e], counts[e]);
      const at::Tensor expert_grad_out = grad_out.narrow(0, offsets[e], counts[e]);
      const at::Tensor pre = gate_up.narrow(0, offsets[e], counts[e]);
      const at::Tensor grad_hidden = expert_grad_out.mm(down_proj[e].t());
      at::Tensor expert_grad_gate_up = grad_gate_up.narrow(0, offsets[e], counts[e]);
      at::Tensor hidden = at::empty({counts[e], ffn}, rows.options());  // the forward's, recomputed
      kernels::swiglu_concat_backward_out(grad_hidden, pre, expert_grad_gate_up, hidden);
      if (need_weights) {
        at::Tensor grad_down = grad_down_proj[e];
        at::mm_out(grad_down, hidden.t(), expert_grad_out);
      }
      if (need_weights) {
        at::Tensor grad_w = grad_gate_up_proj[e];
        at::mm_out(grad_w, expert_rows.t(), expert_grad_gate_up);
      }
      if (need_rows) {
        at::Tensor expert_grad_rows = grad_rows.narrow(0, offsets[e], counts[e]);
        at::mm_out(expert_grad_rows, expert_grad_gate_up, gate_up_proj[e].t());
      }
    }
    return {grad_rows, at::Tensor(), grad_gate_up_proj, grad_down_proj};
  }
};

}  // namespace

at::Tensor grouped_expert_mlp(const at::Tensor& rows, const std::vector<int64_t>& rows_per_expert,
                              const at::Tensor& gate_up_proj, const at::Tensor& down_proj) {
  L4_ASSERT(static_cast<int64_t>(rows_per_expert.size()) == gate_up_proj.size(0),
            "{} row counts for {} experts", rows_per_expert.size(), gate_up_proj.size(0));
  int64_t total = 0;
  for (int64_t n : rows_per_expert) total += n;
  L4_ASSERT(total == rows.size(0), "row counts sum to {}, not {}", total, rows.size(0));
  const at::DeviceType device = rows.device().type();
  if (!at::autocast::is_autocast_enabled(device)) {
    const at::ScalarType dtype = rows.scalar_type();
    L4_ASSERT(gate_up_proj.scalar_type() == dtype && down_proj.scalar_type() == dtype,
              "expert weights ({}, {}) and rows ({}) differ in dtype",
              c10::toString(gate_up_proj.scalar_type()), c10::toString(down_proj.scalar_type()),
              c10::toString(dtype));
    return GroupedExpertMlp::apply(rows.contiguous(), rows_per_expert, gate_up_proj, down_proj);
  }
  // Under autocast: the differentiable casts a matmul would make, then the node itself without autocast
  // (its out= matmuls must see one dtype).
  const at::ScalarType dtype = at::autocast::get_autocast_dtype(device);
  auto cast = [dtype](const at::Tensor& t) { return t.scalar_type() == dtype ? t : t.to(dtype); };
  // The weights' casts come from the step's cache (one per optimizer step).
  const at::Tensor rows_cast = cast(rows).contiguous(), gate_up_cast = cast_weight(gate_up_proj, dtype),
                   down_cast = cast_weight(down_proj, dtype);
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  return GroupedExpertMlp::apply(rows_cast, rows_per_expert, gate_up_cast, down_cast);
}

}  // namespace l4::model
