#include "kernels/swiglu.h"

#include <torch/autograd.h>

#include "core/error.h"
#include "kernels/fused_switch.h"
#include "kernels/kernel_loops.h"

namespace l4::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// [rows, width] view of a contiguous tensor.
at::Tensor as_rows(const at::Tensor& t) {
  return t.view({-1, t.size(-1)});
}

// A 2-D operand the loops accept: rows contiguous (stride(1) == 1), any row spacing.
bool rows_contiguous(const at::Tensor& t) {
  return t.dim() == 2 && (t.size(1) <= 1 || t.stride(1) == 1);
}

class FusedSwiglu : public torch::autograd::Function<FusedSwiglu> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    at::Tensor out = at::empty_like(gate);
    at::Tensor out_rows = as_rows(out);
    detail::swiglu_forward(as_rows(gate), as_rows(up), out_rows);
    ctx->save_for_backward({gate, up});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& gate = saved[0];
    const at::Tensor& up = saved[1];
    at::Tensor grad_gate = at::empty_like(gate), grad_up = at::empty_like(up);
    at::Tensor grad_gate_rows = as_rows(grad_gate), grad_up_rows = as_rows(grad_up), no_hidden;
    detail::swiglu_backward(as_rows(grads[0].contiguous()), as_rows(gate), as_rows(up), grad_gate_rows,
                            grad_up_rows, no_hidden);
    return {grad_gate, grad_up};
  }
};

}  // namespace

at::Tensor swiglu_composite(const at::Tensor& gate, const at::Tensor& up) {
  return at::silu(gate) * up;
}

at::Tensor swiglu(const at::Tensor& gate, const at::Tensor& up) {
  if (gate.sizes() != up.sizes() || gate.dim() == 0 || gate.numel() == 0 || !fused_applies({gate, up})) {
    return swiglu_composite(gate, up);
  }
  return FusedSwiglu::apply(gate.contiguous(), up.contiguous());
}

void swiglu_concat_forward_out(const at::Tensor& gate_up, at::Tensor& hidden) {
  const int64_t ffn = hidden.size(1);
  L4_ASSERT(gate_up.dim() == 2 && gate_up.size(1) == 2 * ffn && hidden.size(0) == gate_up.size(0),
            "gate_up {} does not match hidden {}", c10::str(gate_up.sizes()), c10::str(hidden.sizes()));
  const at::Tensor gate = gate_up.narrow(1, 0, ffn), up = gate_up.narrow(1, ffn, ffn);
  if (rows_contiguous(gate_up) && rows_contiguous(hidden) && fused_applies({gate_up, hidden})) {
    detail::swiglu_forward(gate, up, hidden);
    return;
  }
  at::mul_out(hidden, up, at::silu(gate));
}

void swiglu_concat_backward_out(const at::Tensor& grad_hidden, const at::Tensor& gate_up,
                                at::Tensor& grad_gate_up, at::Tensor& hidden) {
  const int64_t ffn = hidden.size(1);
  L4_ASSERT(gate_up.dim() == 2 && gate_up.size(1) == 2 * ffn && grad_gate_up.sizes() == gate_up.sizes() &&
                grad_hidden.sizes() == hidden.sizes() && hidden.size(0) == gate_up.size(0),
            "swiglu backward: gate_up {}, grad_gate_up {}, grad_hidden {}, hidden {} do not match",
            c10::str(gate_up.sizes()), c10::str(grad_gate_up.sizes()), c10::str(grad_hidden.sizes()),
            c10::str(hidden.sizes()));
  const at::Tensor gate = gate_up.narrow(1, 0, ffn), up = gate_up.narrow(1, ffn, ffn);
  at::Tensor grad_gate = grad_gate_up.narrow(1, 0, ffn), grad_up = grad_gate_up.narrow(1, ffn, ffn);
  if (rows_contiguous(gate_up) && rows_contiguous(grad_gate_up) && rows_contiguous(grad_hidden) &&
      rows_contiguous(hidden) && fused_applies({grad_hidden, gate_up, grad_gate_up, hidden})) {
    detail::swiglu_backward(grad_hidden, gate, up, grad_gate, grad_up, hidden);
    return;
  }
  const at::Tensor activated = at::silu(gate);
  at::mul_out(hidden, up, activated);
  at::silu_backward_out(grad_gate, grad_hidden * up, gate);
  at::mul_out(grad_up, grad_hidden, activated);
}

}  // namespace l4::kernels
