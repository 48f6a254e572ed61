#include "kernels/rope_cpu.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/empty_like.h>
#include <ATen/record_function.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <vector>

#include "kernels/row_io.h"

#if defined(CPU_CAPABILITY_AVX2)
#include <immintrin.h>
#endif

namespace l4::kernels::detail {
namespace {

using Vec = at::vec::Vectorized<float>;

// (v0, v1, v2, v3, ...) -> (v1, v0, v3, v2, ...): the partner of each element of an interleaved pair.
inline Vec swap_pairs(const Vec& v) {
#if defined(CPU_CAPABILITY_AVX2)
  return Vec(_mm256_permute_ps(static_cast<__m256>(v), 0xB1));
#else
  float values[Vec::size()];
  v.store(values);
  for (int i = 0; i < Vec::size(); i += 2) std::swap(values[i], values[i + 1]);
  return Vec::loadu(values);
#endif
}

// backward == false: out = x * cos + swap(x) * sin.  backward == true: out = x * cos + swap(x * sin).
// Same float products and sum as the composite (and as autograd's backward of it), so fp32 results agree
// to the last bit.
template <typename T, bool backward>
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t batch = x.size(0), tokens = x.size(1), heads = x.size(2), dim = x.size(3);
  const bool batched_tables = cos.size(0) != 1;
  at::Tensor out = at::empty_like(x);
  const T* x_data = x.const_data_ptr<T>();
  T* out_data = out.mutable_data_ptr<T>();
  const float* cos_data = cos.const_data_ptr<float>();
  const float* sin_data = sin.const_data_ptr<float>();
  const int64_t row = heads * dim;
  const int64_t grain = grain_rows(row);
  at::parallel_for(0, batch * tokens, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(2 * dim);
    for (int64_t bt = begin; bt < end; ++bt) {
      const int64_t table_row = batched_tables ? bt : bt % tokens;
      const float* c = cos_data + table_row * dim;
      const float* s = sin_data + table_row * dim;
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t offset = bt * row + h * dim;
        const float* xv = RowIO<T>::read(x_data + offset, scratch.data(), dim);
        float* o = RowIO<T>::target(out_data + offset, scratch.data() + dim);
        int64_t i = 0;
        for (; i + Vec::size() <= dim; i += Vec::size()) {
          const Vec v = Vec::loadu(xv + i), cv = Vec::loadu(c + i), sv = Vec::loadu(s + i);
          const Vec rotated = backward ? swap_pairs(v * sv) : swap_pairs(v) * sv;
          (v * cv + rotated).store(o + i);
        }
        for (; i < dim; i += 2) {  // dim is even; Vec::size() too, so pairs never straddle the tail
          o[i] = xv[i] * c[i] + (backward ? xv[i + 1] * s[i + 1] : xv[i + 1] * s[i]);
          o[i + 1] = xv[i + 1] * c[i + 1] + (backward ? xv[i] * s[i] : xv[i] * s[i + 1]);
        }
        RowIO<T>::write(o, out_data + offset, dim);
      }
    }
  });
  return out;
}

}  // namespace

at::Tensor rope_forward_cpu(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  RECORD_FUNCTION("l4::kernels::rope_forward", c10::ArrayRef<const c10::IValue>{});  // named in profiles
  if (x.scalar_type() == at::kBFloat16) return rotate<c10::BFloat16, false>(x, cos, sin);
  TORCH_INTERNAL_ASSERT(x.scalar_type() == at::kFloat);
  return rotate<float, false>(x, cos, sin);
}

at::Tensor rope_backward_cpu(const at::Tensor& grad, const at::Tensor& cos, const at::Tensor& sin) {
  RECORD_FUNCTION("l4::kernels::rope_backward", c10::ArrayRef<const c10::IValue>{});  // named in profiles
  if (grad.scalar_type() == at::kBFloat16) return rotate<c10::BFloat16, true>(grad, cos, sin);
  TORCH_INTERNAL_ASSERT(grad.scalar_type() == at::kFloat);
  return rotate<float, true>(grad, cos, sin);
}

}  // namespace l4::kernels::detail
