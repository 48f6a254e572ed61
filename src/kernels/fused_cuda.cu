// The fused RMSNorm, rotary embedding and SwiGLU loops on CUDA (contracts in fused_cuda.h). Math in float32
// for bfloat16 tensors; products and sums are rounded one by one (__fmul_rn / __fadd_rn, which the compiler
// never contracts into an FMA), as LibTorch's separate elementwise kernels round them, so float32 results
// stay within 1e-6 of the composite expressions. RMSNorm takes one thread block per row; RoPE and SwiGLU one
// thread per element (grid-stride). The weight gradient of RMSNorm is summed per fixed chunk of rows into
// float64 partials and then over the chunks, so it does not depend on scheduling (no atomics).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/fused_cuda.h"

namespace l4::kernels::detail {
namespace {

constexpr int kThreads = 256;            // per block; a multiple of the warp size
constexpr int64_t kWeightGradRows = 64;  // rows per partial sum of the RMSNorm weight gradient (at least)

// The value a T tensor holds after storing v (round to nearest even for bfloat16).
template <typename T>
__device__ __forceinline__ float round_to(float v) {
  return static_cast<float>(static_cast<T>(v));
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block of each thread's v; every thread gets the total. shared holds 33 floats.
__device__ float block_sum(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = (blockDim.x + 31) >> 5;
    v = warp_sum(lane < warps ? shared[lane] : 0.0f);
    if (lane == 0) shared[32] = v;
  }
  __syncthreads();
  const float total = shared[32];
  __syncthreads();  // shared may be reused by the caller's next block_sum
  return total;
}

int blocks_for(int64_t n) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)));
}

// ---- RMSNorm -------------------------------------------------------------------------------------------

template <typename T>
__global__ void rms_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ weight,
                                        T* __restrict__ y, float* __restrict__ rstd, int64_t dim, float eps) {
  __shared__ float shared[33];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * dim;
  T* yr = y + row * dim;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = static_cast<float>(xr[i]);
    sum = __fadd_rn(sum, __fmul_rn(v, v));
  }
  // mean(x^2) as sum / dim, + eps, then 1 / sqrt: the CPU loop's order of operations.
  const float inv_rms = 1.0f / sqrtf(block_sum(sum, shared) / static_cast<float>(dim) + eps);
  if (threadIdx.x == 0) rstd[row] = inv_rms;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = __fmul_rn(static_cast<float>(xr[i]), inv_rms);
    // The normalised x is cast to x's dtype before the weight multiplies it.
    if (weight != nullptr) v = __fmul_rn(round_to<T>(v), static_cast<float>(weight[i]));
    yr[i] = static_cast<T>(v);
  }
}

template <typename T>
__global__ void rms_norm_backward_kernel(const T* __restrict__ grad_y, const T* __restrict__ x,
                                         const T* __restrict__ weight, const float* __restrict__ rstd,
                                         T* __restrict__ grad_x, int64_t dim) {
  __shared__ float shared[33];
  const int64_t row = blockIdx.x;
  const T* g = grad_y + row * dim;
  const T* xr = x + row * dim;
  const float inv_rms = rstd[row];
  // gn: the gradient reaching the normalised x (in x's dtype when a weight multiplied it).
  float dot = 0.0f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float gn = static_cast<float>(g[i]);
    if (weight != nullptr) gn = round_to<T>(__fmul_rn(gn, static_cast<float>(weight[i])));
    dot = __fadd_rn(dot, __fmul_rn(gn, static_cast<float>(xr[i])));
  }
  // d/dx [x * r] with r = (mean(x^2) + eps)^-1/2: r * gn - x * r^3 * sum(gn * x) / dim.
  const float coef =
      __fmul_rn(__fmul_rn(__fmul_rn(__fmul_rn(inv_rms, inv_rms), inv_rms), block_sum(dot, shared)),
                1.0f / static_cast<float>(dim));
  T* gx = grad_x + row * dim;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float gn = static_cast<float>(g[i]);
    if (weight != nullptr) gn = round_to<T>(__fmul_rn(gn, static_cast<float>(weight[i])));
    gx[i] = static_cast<T>(__fsub_rn(__fmul_rn(gn, inv_rms), __fmul_rn(static_cast<float>(xr[i]), coef)));
  }
}

// partial[c, i] = sum over the rows of chunk c of grad_y[r, i] * (x[r, i] * rstd[r] as stored in T).
template <typename T>
__global__ void rms_norm_weight_grad_kernel(const T* __restrict__ grad_y, const T* __restrict__ x,
                                            const float* __restrict__ rstd, double* __restrict__ partial,
                                            int64_t rows, int64_t dim, int64_t rows_per_chunk) {
  const int64_t column = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (column >= dim) return;
  const int64_t chunk = blockIdx.y;
  const int64_t chunk_end = (chunk + 1) * rows_per_chunk;
  const int64_t row_end = chunk_end < rows ? chunk_end : rows;
  double acc = 0.0;
  for (int64_t r = chunk * rows_per_chunk; r < row_end; ++r) {
    const float normed = round_to<T>(__fmul_rn(static_cast<float>(x[r * dim + column]), rstd[r]));
    acc += static_cast<double>(static_cast<float>(grad_y[r * dim + column])) * static_cast<double>(normed);
  }
  partial[chunk * dim + column] = acc;
}

// ---- RoPE ----------------------------------------------------------------------------------------------

// x [B, T, H, D] contiguous; cos/sin float32 [B or 1, T, 1, D]. The backward takes the sine of the partner
// element (the rotation by minus the angle), the forward its own.
template <typename T, bool kBackward>
__global__ void rope_kernel(const T* __restrict__ x, const float* __restrict__ cos,
                            const float* __restrict__ sin, T* __restrict__ out, int64_t n, int64_t seq,
                            int64_t heads, int64_t dim, bool tables_per_batch) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = e % dim;
    const int64_t t = (e / (dim * heads)) % seq;
    const int64_t b = e / (dim * heads * seq);
    const int64_t table_row = ((tables_per_batch ? b : 0) * seq + t) * dim;
    const float own = static_cast<float>(x[e]);
    const float partner = static_cast<float>(x[e ^ 1]);  // D is even and every row starts at an even index
    const float s = kBackward ? sin[table_row + (d ^ 1)] : sin[table_row + d];
    out[e] = static_cast<T>(__fadd_rn(__fmul_rn(own, cos[table_row + d]), __fmul_rn(partner, s)));
  }
}

// ---- SwiGLU --------------------------------------------------------------------------------------------

// A [rows, width] operand with contiguous rows spaced `stride` apart.
template <typename T>
struct Rows {
  T* data;
  int64_t stride;
  __device__ T& at(int64_t r, int64_t c) const { return data[r * stride + c]; }
};

template <typename T>
Rows<T> rows_of(const at::Tensor& t) {
  return {static_cast<T*>(t.data_ptr()), t.stride(0)};
}

template <typename T>
__global__ void swiglu_forward_kernel(Rows<const T> gate, Rows<const T> up, Rows<T> out, int64_t rows,
                                      int64_t width) {
  const int64_t n = rows * width;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / width, c = e % width;
    const float x = static_cast<float>(gate.at(r, c));
    // silu(x) = x / (1 + exp(-x)), as LibTorch computes it.
    const float silu = __fdiv_rn(x, __fadd_rn(1.0f, expf(-x)));
    out.at(r, c) = static_cast<T>(__fmul_rn(silu, static_cast<float>(up.at(r, c))));
  }
}

template <typename T>
__global__ void swiglu_backward_kernel(Rows<const T> grad, Rows<const T> gate, Rows<const T> up,
                                       Rows<T> grad_gate, Rows<T> grad_up, Rows<T> hidden, bool with_hidden,
                                       int64_t rows, int64_t width) {
  const int64_t n = rows * width;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / width, c = e % width;
    const float x = static_cast<float>(gate.at(r, c));
    const float u = static_cast<float>(up.at(r, c));
    const float d = static_cast<float>(grad.at(r, c));
    const float denominator = __fadd_rn(1.0f, expf(-x));
    const float sigmoid = __fdiv_rn(1.0f, denominator), silu = __fdiv_rn(x, denominator);
    // silu'(x) = sigmoid(x) * (1 + x * (1 - sigmoid(x))).
    const float slope = __fmul_rn(sigmoid, __fadd_rn(1.0f, __fmul_rn(x, __fsub_rn(1.0f, sigmoid))));
    grad_gate.at(r, c) = static_cast<T>(__fmul_rn(__fmul_rn(d, u), slope));
    grad_up.at(r, c) = static_cast<T>(__fmul_rn(d, silu));
    if (with_hidden) hidden.at(r, c) = static_cast<T>(__fmul_rn(silu, u));
  }
}

// Runs launch(T{}, stream) for `work` items on like's device and its current stream, with T = float or
// c10::BFloat16 after like's dtype (the callers admit no other), then checks the launches; nothing to do
// when work is 0.
template <typename Launch>
void launch_for(const at::Tensor& like, int64_t work, Launch&& launch) {
  if (work == 0) return;
  const c10::cuda::CUDAGuard guard(like.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (like.scalar_type() == at::kBFloat16) {
    launch(c10::BFloat16{}, stream);
  } else {
    TORCH_CHECK(like.scalar_type() == at::kFloat, "fused CUDA kernels: float32 or bfloat16, not ",
                like.scalar_type());
    launch(float{}, stream);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

std::pair<at::Tensor, at::Tensor> rms_norm_forward_cuda(const at::Tensor& x, const at::Tensor& weight,
                                                        double eps) {
  const int64_t dim = x.size(-1), rows = x.numel() / std::max<int64_t>(dim, 1);
  at::Tensor y = at::empty_like(x);
  at::Tensor rstd = at::empty({rows}, x.options().dtype(at::kFloat));
  launch_for(x, rows, [&](auto tag, cudaStream_t stream) {
    using T = decltype(tag);
    rms_norm_forward_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        x.const_data_ptr<T>(), weight.defined() ? weight.const_data_ptr<T>() : nullptr,
        y.mutable_data_ptr<T>(), rstd.mutable_data_ptr<float>(), dim, static_cast<float>(eps));
  });
  return {y, rstd};
}

std::pair<at::Tensor, at::Tensor> rms_norm_backward_cuda(const at::Tensor& grad_y, const at::Tensor& x,
                                                         const at::Tensor& weight, const at::Tensor& rstd,
                                                         bool need_weight_grad) {
  const int64_t dim = x.size(-1), rows = x.numel() / std::max<int64_t>(dim, 1);
  at::Tensor grad_x = at::empty_like(x);
  at::Tensor grad_weight;
  const bool weight_grad = need_weight_grad && weight.defined();
  // Fixed by the sizes alone (so is the sum's order); at most 65535 chunks, the grid's y limit.
  const int64_t rows_per_chunk = std::max<int64_t>(kWeightGradRows, (rows + 65534) / 65535);
  const int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  at::Tensor partial = weight_grad
                           ? at::zeros({std::max<int64_t>(chunks, 1), dim}, x.options().dtype(at::kDouble))
                           : at::Tensor();
  launch_for(x, rows, [&](auto tag, cudaStream_t stream) {
    using T = decltype(tag);
    rms_norm_backward_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        grad_y.const_data_ptr<T>(), x.const_data_ptr<T>(),
        weight.defined() ? weight.const_data_ptr<T>() : nullptr, rstd.const_data_ptr<float>(),
        grad_x.mutable_data_ptr<T>(), dim);
    if (weight_grad) {
      const dim3 grid(static_cast<unsigned>((dim + kThreads - 1) / kThreads), static_cast<unsigned>(chunks));
      rms_norm_weight_grad_kernel<T><<<grid, kThreads, 0, stream>>>(
          grad_y.const_data_ptr<T>(), x.const_data_ptr<T>(), rstd.const_data_ptr<float>(),
          partial.mutable_data_ptr<double>(), rows, dim, rows_per_chunk);
    }
  });
  if (weight_grad) grad_weight = partial.sum(0).to(weight.scalar_type());
  return {grad_x, grad_weight};
}

namespace {

template <bool kBackward>
at::Tensor rope_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  at::Tensor out = at::empty_like(x);
  const int64_t n = x.numel();
  launch_for(x, n, [&](auto tag, cudaStream_t stream) {
    using T = decltype(tag);
    rope_kernel<T, kBackward><<<blocks_for(n), kThreads, 0, stream>>>(
        x.const_data_ptr<T>(), cos.const_data_ptr<float>(), sin.const_data_ptr<float>(),
        out.mutable_data_ptr<T>(), n, x.size(1), x.size(2), x.size(3), cos.size(0) != 1);
  });
  return out;
}

}  // namespace

at::Tensor rope_forward_cuda(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return rope_cuda</*kBackward=*/false>(x, cos, sin);
}

at::Tensor rope_backward_cuda(const at::Tensor& grad, const at::Tensor& cos, const at::Tensor& sin) {
  return rope_cuda</*kBackward=*/true>(grad, cos, sin);
}

void swiglu_forward_cuda(const at::Tensor& gate, const at::Tensor& up, at::Tensor& out) {
  const int64_t rows = gate.size(0), width = gate.size(1);
  launch_for(gate, rows * width, [&](auto tag, cudaStream_t stream) {
    using T = decltype(tag);
    swiglu_forward_kernel<T><<<blocks_for(rows * width), kThreads, 0, stream>>>(
        rows_of<const T>(gate), rows_of<const T>(up), rows_of<T>(out), rows, width);
  });
}

void swiglu_backward_cuda(const at::Tensor& grad, const at::Tensor& gate, const at::Tensor& up,
                          at::Tensor& grad_gate, at::Tensor& grad_up, at::Tensor& hidden) {
  const int64_t rows = gate.size(0), width = gate.size(1);
  launch_for(gate, rows * width, [&](auto tag, cudaStream_t stream) {
    using T = decltype(tag);
    const bool with_hidden = hidden.defined();
    swiglu_backward_kernel<T><<<blocks_for(rows * width), kThreads, 0, stream>>>(
        rows_of<const T>(grad), rows_of<const T>(gate), rows_of<const T>(up), rows_of<T>(grad_gate),
        rows_of<T>(grad_up), with_hidden ? rows_of<T>(hidden) : Rows<T>{nullptr, 0}, with_hidden, rows,
        width);
  });
}

}  // namespace l4::kernels::detail
