#include "kernels/rms_norm_cpu.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/record_function.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/row_io.h"

namespace l4::kernels::detail {
namespace {

using Vec = at::vec::Vectorized<float>;

// Rows split into at most one chunk per thread, fixed by the sizes alone: each chunk owns one row of
// weight-gradient partial sums, and the sum over chunks is the same whichever thread ran which chunk.
struct RowChunks {
  int64_t count;
  int64_t rows_each;
  RowChunks(int64_t rows, int64_t dim) {
    const int64_t min_rows = grain_rows(dim);
    const int64_t by_size = std::max<int64_t>(1, rows / min_rows);
    count = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), by_size));
    rows_each = (rows + count - 1) / count;
  }
};

float sum_of_squares(const float* x, int64_t n) {
  Vec acc(0.0f);
  int64_t i = 0;
  for (; i + Vec::size() <= n; i += Vec::size()) {
    const Vec v = Vec::loadu(x + i);
    acc = acc + v * v;
  }
  float total = at::vec::vec_reduce_all<float>([](Vec& a, Vec& b) { return a + b; }, acc);
  for (; i < n; ++i) total += x[i] * x[i];
  return total;
}

float dot(const float* a, const float* b, int64_t n) {
  Vec acc(0.0f);
  int64_t i = 0;
  for (; i + Vec::size() <= n; i += Vec::size()) acc = acc + Vec::loadu(a + i) * Vec::loadu(b + i);
  float total = at::vec::vec_reduce_all<float>([](Vec& x, Vec& y) { return x + y; }, acc);
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

// out = a * s (s a scalar), elementwise.
void scale(const float* a, float s, float* out, int64_t n) {
  int64_t i = 0;
  const Vec sv(s);
  for (; i + Vec::size() <= n; i += Vec::size()) (Vec::loadu(a + i) * sv).store(out + i);
  for (; i < n; ++i) out[i] = a[i] * s;
}

// out = a * b, elementwise.
void multiply(const float* a, const float* b, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + Vec::size() <= n; i += Vec::size()) (Vec::loadu(a + i) * Vec::loadu(b + i)).store(out + i);
  for (; i < n; ++i) out[i] = a[i] * b[i];
}

template <typename T>
void forward_rows(const at::Tensor& x, const at::Tensor& weight, double eps, at::Tensor& y,
                  at::Tensor& rstd) {
  const int64_t dim = x.size(-1), rows = x.numel() / std::max<int64_t>(dim, 1);
  const T* x_data = x.const_data_ptr<T>();
  T* y_data = y.mutable_data_ptr<T>();
  float* rstd_data = rstd.mutable_data_ptr<float>();
  const bool has_weight = weight.defined();
  std::vector<float> weight_f(has_weight ? dim : 0);
  if (has_weight) at::vec::convert(weight.const_data_ptr<T>(), weight_f.data(), dim);
  const float eps_f = static_cast<float>(eps);
  const int64_t grain = grain_rows(dim);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(2 * dim);
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = RowIO<T>::read(x_data + r * dim, scratch.data(), dim);
      // mean(x^2) as sum / dim, + eps, rsqrt: LibTorch's order of float operations.
      const float inv_rms = 1.0f / std::sqrt(sum_of_squares(xr, dim) / static_cast<float>(dim) + eps_f);
      rstd_data[r] = inv_rms;
      float* yr = RowIO<T>::target(y_data + r * dim, scratch.data() + dim);
      scale(xr, inv_rms, yr, dim);
      if (has_weight) {
        RowIO<T>::round(yr, dim);  // the normalised x is cast to x's dtype before the weight multiplies it
        multiply(yr, weight_f.data(), yr, dim);
      }
      RowIO<T>::write(yr, y_data + r * dim, dim);
    }
  });
}

template <typename T>
void backward_rows(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& weight,
                   const at::Tensor& rstd, at::Tensor& grad_x, at::Tensor& grad_weight_partial) {
  const int64_t dim = x.size(-1), rows = x.numel() / std::max<int64_t>(dim, 1);
  const T* g_data = grad_y.const_data_ptr<T>();
  const T* x_data = x.const_data_ptr<T>();
  const float* rstd_data = rstd.const_data_ptr<float>();
  T* gx_data = grad_x.mutable_data_ptr<T>();
  const bool has_weight = weight.defined();
  const bool weight_grad = grad_weight_partial.defined();
  std::vector<float> weight_f(has_weight ? dim : 0);
  if (has_weight) at::vec::convert(weight.const_data_ptr<T>(), weight_f.data(), dim);
  const RowChunks chunks(rows, dim);
  double* partial = weight_grad ? grad_weight_partial.mutable_data_ptr<double>() : nullptr;
  const float inv_dim = 1.0f / static_cast<float>(dim);
  at::parallel_for(0, chunks.count, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
    std::vector<float> scratch(4 * dim);
    float* g_buf = scratch.data();
    float* x_buf = g_buf + dim;
    float* gn = x_buf + dim;  // gradient reaching the normalised x (float)
    float* out = gn + dim;
    for (int64_t c = chunk_begin; c < chunk_end; ++c) {
      double* acc = weight_grad ? partial + c * dim : nullptr;
      const int64_t row_end = std::min(rows, (c + 1) * chunks.rows_each);
      for (int64_t r = c * chunks.rows_each; r < row_end; ++r) {
        const float* g = RowIO<T>::read(g_data + r * dim, g_buf, dim);
        const float* xr = RowIO<T>::read(x_data + r * dim, x_buf, dim);
        const float inv_rms = rstd_data[r];
        if (has_weight) {
          if (weight_grad) {
            scale(xr, inv_rms, out, dim);
            RowIO<T>::round(out, dim);  // the weight multiplied the normalised x as stored in x's dtype
            for (int64_t i = 0; i < dim; ++i)
              acc[i] += static_cast<double>(g[i]) * static_cast<double>(out[i]);
          }
          multiply(g, weight_f.data(), gn, dim);
          RowIO<T>::round(gn, dim);
        } else {
          std::copy(g, g + dim, gn);
        }
        // d/dx [x * r] with r = (mean(x^2) + eps)^-1/2: r * gn - x * r^3 * sum(gn * x) / dim.
        const float coef = inv_rms * inv_rms * inv_rms * dot(gn, xr, dim) * inv_dim;
        float* gx = RowIO<T>::target(gx_data + r * dim, out);
        const Vec r_vec(inv_rms), c_vec(coef);
        int64_t i = 0;
        for (; i + Vec::size() <= dim; i += Vec::size()) {
          (Vec::loadu(gn + i) * r_vec - Vec::loadu(xr + i) * c_vec).store(gx + i);
        }
        for (; i < dim; ++i) gx[i] = gn[i] * inv_rms - xr[i] * coef;
        RowIO<T>::write(gx, gx_data + r * dim, dim);
      }
    }
  });
}

}  // namespace

std::pair<at::Tensor, at::Tensor> rms_norm_forward_cpu(const at::Tensor& x, const at::Tensor& weight,
                                                       double eps) {
  RECORD_FUNCTION("l4::kernels::rms_norm_forward", c10::ArrayRef<const c10::IValue>{});  // named in profiles
  const int64_t dim = x.size(-1);
  at::Tensor y = at::empty_like(x);
  at::Tensor rstd = at::empty({x.numel() / std::max<int64_t>(dim, 1)}, x.options().dtype(at::kFloat));
  if (x.scalar_type() == at::kBFloat16) {
    forward_rows<c10::BFloat16>(x, weight, eps, y, rstd);
  } else {
    TORCH_INTERNAL_ASSERT(x.scalar_type() == at::kFloat);
    forward_rows<float>(x, weight, eps, y, rstd);
  }
  return {y, rstd};
}

std::pair<at::Tensor, at::Tensor> rms_norm_backward_cpu(const at::Tensor& grad_y, const at::Tensor& x,
                                                        const at::Tensor& weight, const at::Tensor& rstd,
                                                        bool need_weight_grad) {
  RECORD_FUNCTION("l4::kernels::rms_norm_backward", c10::ArrayRef<const c10::IValue>{});  // named in profiles
  const int64_t dim = x.size(-1), rows = x.numel() / std::max<int64_t>(dim, 1);
  at::Tensor grad_x = at::empty_like(x);
  at::Tensor partial;  // [chunks, dim] float64 partial sums of the weight gradient
  if (need_weight_grad && weight.defined()) {
    partial = at::zeros({RowChunks(rows, dim).count, dim}, x.options().dtype(at::kDouble));
  }
  if (x.scalar_type() == at::kBFloat16) {
    backward_rows<c10::BFloat16>(grad_y, x, weight, rstd, grad_x, partial);
  } else {
    TORCH_INTERNAL_ASSERT(x.scalar_type() == at::kFloat);
    backward_rows<float>(grad_y, x, weight, rstd, grad_x, partial);
  }
  at::Tensor grad_weight = partial.defined() ? partial.sum(0).to(weight.scalar_type()) : at::Tensor();
  return {grad_x, grad_weight};
}

}  // namespace l4::kernels::detail
