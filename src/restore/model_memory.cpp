#include "restore/model_memory.h"

#include <torch/torch.h>

#include "model/param_count.h"

namespace l4::restore {

int64_t model_weight_bytes(const config::ModelArch& arch, bool vision, int dtype_bytes) {
  const model::ParamSummary summary = model::count_params(arch);
  const double params =
      static_cast<double>(summary.text_params) + (vision ? static_cast<double>(summary.vision_params) : 0.0);
  const double bytes = params * dtype_bytes;
  return bytes >= 9e18 ? int64_t{9'000'000'000'000'000'000} : static_cast<int64_t>(bytes);
}

void check_model_memory(const config::ModelArch& arch, bool vision, int dtype_bytes,
                        const std::string& config_source, const AvailableMemory& available,
                        const std::string& override_hint) {
  if (memory_check_skipped_by_env()) return;
  const config::TextConfig& t = arch.text_config;
  const int64_t needed = model_weight_bytes(arch, vision, dtype_bytes);
  require_memory(
      needed, available, fmt::format("{}: the model's weights", config_source),
      fmt::format("the model size in {}: hidden_size {}, intermediate_size {}, num_hidden_layers {}, "
                  "num_local_experts {}, vocab_size {} ({}-byte parameters)",
                  config_source, t.hidden_size, t.intermediate_size, t.num_hidden_layers, t.num_local_experts,
                  t.vocab_size, dtype_bytes),
      override_hint);
}

}  // namespace l4::restore
