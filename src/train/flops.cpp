#include "train/flops.h"

#include <algorithm>

#include "model/param_count.h"

namespace l4::train {

double mean_attended_keys(int64_t seq_len, int64_t chunk) {
  if (seq_len <= 0) return 0.0;
  if (chunk <= 0 || chunk >= seq_len) return (seq_len + 1) / 2.0;
  // Full chunks attend (chunk + 1) / 2 keys on average; the ragged last chunk likewise for its length.
  const int64_t full = seq_len / chunk, rest = seq_len % chunk;
  const double total = full * (chunk * (chunk + 1) / 2.0) + rest * (rest + 1) / 2.0;
  return total / static_cast<double>(seq_len);
}

double training_flops_per_token(const config::ModelArch& arch, int64_t seq_len) {
  const config::TextConfig& t = arch.text_config;
  const model::ParamSummary summary = model::count_params(arch);
  // The embedding lookup is a gather, not a matmul; everything else a token touches is a matmul
  // (norm weights are negligible and counted for simplicity).
  const double matmul_params = static_cast<double>(summary.active_params() - t.vocab_size * t.hidden_size);
  double attention = 0.0;
  const double width = static_cast<double>(t.num_attention_heads * t.resolved_head_dim());
  for (int64_t layer = 0; layer < t.num_hidden_layers; ++layer) {
    const int64_t chunk = t.is_rope_layer(layer) && t.attention_chunk_size ? *t.attention_chunk_size : 0;
    attention += 4.0 * width * mean_attended_keys(seq_len, chunk);  // QK^T and AV, 2 FLOPs per MAC
  }
  return 6.0 * matmul_params + 3.0 * attention;
}

}  // namespace l4::train
