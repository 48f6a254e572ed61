#include "kernels/swiglu_cpu.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/record_function.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/row_io.h"

namespace l4::kernels::detail {
namespace {

using Vec = at::vec::Vectorized<float>;

// One row's row pointer of a 2-D view with contiguous rows.
template <typename T>
struct Rows {
  T* data;
  int64_t stride;
  explicit Rows(const at::Tensor& t) : data(static_cast<T*>(t.data_ptr())), stride(t.stride(0)) {
    TORCH_INTERNAL_ASSERT(t.dim() == 2 && (t.size(1) <= 1 || t.stride(1) == 1));
  }
  T* row(int64_t r) const { return data + r * stride; }
};

// silu(x) = x / (1 + exp(-x)) and its derivative sigmoid(x) * (1 + x * (1 - sigmoid(x))), as LibTorch's
// CPU kernels write them.
template <typename T>
void forward_rows(const at::Tensor& gate, const at::Tensor& up, at::Tensor& out) {
  const int64_t rows = gate.size(0), width = gate.size(1);
  const Rows<T> g_rows(gate), u_rows(up), o_rows(out);
  at::parallel_for(0, rows, grain_rows(width), [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(3 * width);
    const Vec one(1.0f);
    for (int64_t r = begin; r < end; ++r) {
      const float* g = RowIO<T>::read(g_rows.row(r), scratch.data(), width);
      const float* u = RowIO<T>::read(u_rows.row(r), scratch.data() + width, width);
      float* o = RowIO<T>::target(o_rows.row(r), scratch.data() + 2 * width);
      int64_t i = 0;
      for (; i + Vec::size() <= width; i += Vec::size()) {
        const Vec x = Vec::loadu(g + i);
        ((x / (one + x.neg().exp())) * Vec::loadu(u + i)).store(o + i);
      }
      for (; i < width; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
      RowIO<T>::write(o, o_rows.row(r), width);
    }
  });
}

template <typename T>
void backward_rows(const at::Tensor& grad, const at::Tensor& gate, const at::Tensor& up,
                   at::Tensor& grad_gate, at::Tensor& grad_up, at::Tensor& hidden) {
  const int64_t rows = gate.size(0), width = gate.size(1);
  const Rows<T> d_rows(grad), g_rows(gate), u_rows(up), dg_rows(grad_gate), du_rows(grad_up);
  const bool want_hidden = hidden.defined();
  const Rows<T> h_rows(want_hidden ? hidden : grad_up);
  at::parallel_for(0, rows, grain_rows(width), [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(6 * width);
    float* buf = scratch.data();
    const Vec one(1.0f);
    for (int64_t r = begin; r < end; ++r) {
      const float* d = RowIO<T>::read(d_rows.row(r), buf, width);
      const float* g = RowIO<T>::read(g_rows.row(r), buf + width, width);
      const float* u = RowIO<T>::read(u_rows.row(r), buf + 2 * width, width);
      float* dg = RowIO<T>::target(dg_rows.row(r), buf + 3 * width);
      float* du = RowIO<T>::target(du_rows.row(r), buf + 4 * width);
      float* h = want_hidden ? RowIO<T>::target(h_rows.row(r), buf + 5 * width) : nullptr;
      int64_t i = 0;
      for (; i + Vec::size() <= width; i += Vec::size()) {
        const Vec x = Vec::loadu(g + i), dv = Vec::loadu(d + i), uv = Vec::loadu(u + i);
        const Vec denominator = one + x.neg().exp();
        const Vec sigmoid = one / denominator, silu = x / denominator;
        (dv * uv * sigmoid * (one + x * (one - sigmoid))).store(dg + i);
        (dv * silu).store(du + i);
        if (h) (silu * uv).store(h + i);
      }
      for (; i < width; ++i) {
        const float x = g[i], e = std::exp(-x);
        const float sigmoid = 1.0f / (1.0f + e), silu = x / (1.0f + e);
        dg[i] = d[i] * u[i] * sigmoid * (1.0f + x * (1.0f - sigmoid));
        du[i] = d[i] * silu;
        if (h) h[i] = silu * u[i];
      }
      RowIO<T>::write(dg, dg_rows.row(r), width);
      RowIO<T>::write(du, du_rows.row(r), width);
      if (h) RowIO<T>::write(h, h_rows.row(r), width);
    }
  });
}

}  // namespace

void swiglu_forward_cpu(const at::Tensor& gate, const at::Tensor& up, at::Tensor& out) {
  RECORD_FUNCTION("l4::kernels::swiglu_forward", c10::ArrayRef<const c10::IValue>{});  // named in profiles
  if (gate.scalar_type() == at::kBFloat16) return forward_rows<c10::BFloat16>(gate, up, out);
  TORCH_INTERNAL_ASSERT(gate.scalar_type() == at::kFloat);
  forward_rows<float>(gate, up, out);
}

void swiglu_backward_cpu(const at::Tensor& grad, const at::Tensor& gate, const at::Tensor& up,
                         at::Tensor& grad_gate, at::Tensor& grad_up, at::Tensor& hidden) {
  RECORD_FUNCTION("l4::kernels::swiglu_backward", c10::ArrayRef<const c10::IValue>{});  // named in profiles
  if (gate.scalar_type() == at::kBFloat16)
    return backward_rows<c10::BFloat16>(grad, gate, up, grad_gate, grad_up, hidden);
  TORCH_INTERNAL_ASSERT(gate.scalar_type() == at::kFloat);
  backward_rows<float>(grad, gate, up, grad_gate, grad_up, hidden);
}

}  // namespace l4::kernels::detail
