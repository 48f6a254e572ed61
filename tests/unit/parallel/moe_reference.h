// Test helpers shared by the unit and MPI tests of parallel/: a grouped SwiGLU expert block (the MoE
// layer's local-expert seam) and an independent single-process reference that loops over experts with
// index masks.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "parallel/rank_rng.h"

namespace l4::parallel::testing {

struct ExpertWeights {
  at::Tensor w1, w3, w2;  // [E, D, H], [E, D, H], [E, H, D]
};

inline ExpertWeights make_expert_weights(int64_t begin, int64_t count, int64_t d, int64_t h, uint64_t seed,
                                         bool requires_grad) {
  ExpertWeights w{at::empty({count, d, h}), at::empty({count, d, h}), at::empty({count, h, d})};
  init_experts(w.w1, begin, seed, "experts.gate_proj", normal_init(0.3));
  init_experts(w.w3, begin, seed, "experts.up_proj", normal_init(0.3));
  init_experts(w.w2, begin, seed, "experts.down_proj", normal_init(0.3));
  if (requires_grad) {
    w.w1.requires_grad_();
    w.w3.requires_grad_();
    w.w2.requires_grad_();
  }
  return w;
}

// rows sorted by local expert, rows_per_expert[j] rows for expert j of `w`.
inline at::Tensor run_experts(const at::Tensor& rows, const std::vector<int64_t>& rows_per_expert,
                              const ExpertWeights& w) {
  std::vector<at::Tensor> outs;
  int64_t offset = 0;
  for (size_t j = 0; j < rows_per_expert.size(); ++j) {
    const at::Tensor x = rows.narrow(0, offset, rows_per_expert[j]);
    offset += rows_per_expert[j];
    outs.push_back(at::matmul(at::silu(at::matmul(x, w.w1[j])) * at::matmul(x, w.w3[j]), w.w2[j]));
  }
  if (outs.empty()) return rows.new_zeros({0, w.w2.size(2)});
  return at::cat(outs);
}

// Which rows survive a capacity limit, computed the obvious way: per expert, the first `capacity` rows.
inline std::vector<bool> reference_kept(const std::vector<int64_t>& ids, int64_t num_experts, double factor) {
  std::vector<bool> kept(ids.size(), true);
  if (factor <= 0) return kept;
  const auto capacity =
      static_cast<int64_t>(std::ceil(factor * static_cast<double>(ids.size()) / static_cast<double>(num_experts)));
  std::vector<int64_t> used(num_experts, 0);
  for (size_t i = 0; i < ids.size(); ++i) kept[i] = used[ids[i]]++ < capacity;
  return kept;
}

// Single-process MoE over all experts of `w`: row i -> expert ids[i]; rows not kept give zeros.
inline at::Tensor reference_moe(const at::Tensor& x, const std::vector<int64_t>& ids, const ExpertWeights& w,
                                const std::vector<bool>& kept) {
  at::Tensor out = at::zeros({x.size(0), w.w2.size(2)}, x.options());
  for (int64_t e = 0; e < w.w1.size(0); ++e) {
    std::vector<int64_t> rows;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] == e && kept[i]) rows.push_back(static_cast<int64_t>(i));
    }
    if (rows.empty()) continue;
    const at::Tensor index = at::tensor(rows, at::kLong);
    const at::Tensor xe = x.index_select(0, index);
    const at::Tensor ye = at::matmul(at::silu(at::matmul(xe, w.w1[e])) * at::matmul(xe, w.w3[e]), w.w2[e]);
    out = out.index_add(0, index, ye);
  }
  return out;
}

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0 && b.numel() == 0) return 0.0;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace l4::parallel::testing
