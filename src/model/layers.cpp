#include "model/layers.h"

#include <ATen/autocast_mode.h>

#include "kernels/rms_norm.h"
#include "kernels/swiglu.h"
#include "model/weight_cast.h"

namespace l4::model {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, const at::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}, options));
}

at::Tensor LinearImpl::forward(const at::Tensor& x) const {
  return at::linear(x, compute_weight(weight));
}

EmbeddingImpl::EmbeddingImpl(int64_t num_embeddings, int64_t dim, const at::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty({num_embeddings, dim}, options));
}

at::Tensor EmbeddingImpl::forward(const at::Tensor& ids) const {
  return at::embedding(weight, ids);
}

at::Tensor rms_norm(const at::Tensor& x, double eps) { return kernels::rms_norm(x, at::Tensor(), eps); }

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, const at::TensorOptions& options) : eps(eps_) {
  weight = register_parameter("weight", torch::empty({dim}, options));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) const {
  const at::Tensor y = kernels::rms_norm(x, weight, eps);
  // Under autocast the consumers are matmuls that would each cast (and save) their own bf16 copy of y:
  // one cast here serves them all, with the same values.
  const at::DeviceType device = y.device().type();
  if (y.scalar_type() == at::kFloat && at::autocast::is_autocast_enabled(device)) {
    return y.to(at::autocast::get_autocast_dtype(device));
  }
  return y;
}

MlpImpl::MlpImpl(int64_t hidden, int64_t intermediate, const at::TensorOptions& options) {
  gate_proj = register_module("gate_proj", Linear(hidden, intermediate, options));
  up_proj = register_module("up_proj", Linear(hidden, intermediate, options));
  down_proj = register_module("down_proj", Linear(intermediate, hidden, options));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) const {
  return down_proj->forward(kernels::swiglu(gate_proj->forward(x), up_proj->forward(x)));
}

}  // namespace l4::model
