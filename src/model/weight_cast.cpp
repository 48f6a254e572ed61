#include "model/weight_cast.h"

#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>

#include <atomic>
#include <mutex>
#include <unordered_map>

#include "core/error.h"

namespace l4::model {
namespace {

struct Entry {
  at::Tensor source;  // keeps the key's TensorImpl alive (no address reuse while cached)
  uint32_t version = 0;
  at::Tensor cast;
};

struct Cache {
  std::mutex mutex;
  bool open = false;
  std::unordered_map<const c10::TensorImpl*, Entry> entries;  // one dtype per scope: the autocast dtype
};

Cache& cache() {
  static Cache instance;
  return instance;
}

std::atomic<int64_t> casts_made{0};

at::Tensor make_cast(const at::Tensor& w, at::ScalarType dtype) {
  casts_made.fetch_add(1, std::memory_order_relaxed);
  return w.to(dtype);
}

}  // namespace

at::Tensor cast_weight(const at::Tensor& w, at::ScalarType dtype) {
  if (!w.defined() || w.scalar_type() == dtype) return w;
  Cache& c = cache();
  std::unique_lock<std::mutex> lock(c.mutex);
  if (!c.open) {
    lock.unlock();
    return make_cast(w, dtype);
  }
  // A cast made without a graph (no-grad, or inside a custom autograd function) does not serve a caller
  // that needs the gradient to reach w.
  const bool need_graph = w.requires_grad() && c10::GradMode::is_enabled();
  const uint32_t version = w._version();
  auto it = c.entries.find(w.unsafeGetTensorImpl());
  if (it != c.entries.end() && it->second.version == version && it->second.cast.scalar_type() == dtype &&
      (!need_graph || it->second.cast.requires_grad())) {
    return it->second.cast;
  }
  at::Tensor cast = make_cast(w, dtype);
  c.entries[w.unsafeGetTensorImpl()] = Entry{w, version, cast};
  return cast;
}

at::Tensor compute_weight(const at::Tensor& w) {
  if (!w.defined() || w.scalar_type() != at::kFloat) return w;
  const at::DeviceType device = w.device().type();
  if (!at::autocast::is_autocast_enabled(device)) return w;
  return cast_weight(w, at::autocast::get_autocast_dtype(device));
}

WeightCastScope::WeightCastScope() {
  Cache& c = cache();
  const std::lock_guard<std::mutex> lock(c.mutex);
  L4_ASSERT(!c.open, "a weight cast scope is already open");
  c.open = true;
}

WeightCastScope::~WeightCastScope() {
  Cache& c = cache();
  std::unordered_map<const c10::TensorImpl*, Entry> dropped;
  {
    const std::lock_guard<std::mutex> lock(c.mutex);
    c.open = false;
    dropped.swap(c.entries);
  }
}

int64_t weight_casts_made() {
  return casts_made.load(std::memory_order_relaxed);
}

}  // namespace l4::model
