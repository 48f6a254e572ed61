// Benchmark (not a test): forward + backward of packed attention, causal segments vs dense masks, on one
// thread, alternating the two (A B A B ...) and reporting the median CPU time of each. Prints one JSON line
// per layer kind (chunked = RoPE layers, global = NoPE layers) with the FLOPs the causal work needs
// (12 * head_dim * heads * causal query-key pairs: 4 forward, 8 backward) per CPU second.
//   build/bin/bench_attention SEQ_LEN BATCH CHUNK LENGTHS|one [rounds=5] [heads=8] [kv_heads=2] [head_dim=32]
// LENGTHS: a file of document lengths in tokens, one per line, packed in file order as `prepare` packs
// (a document that fits is never split: the row is closed and the document starts the next one; longer
// documents fill the row and continue; a closed row's padding counts as one more document).
// `one`: one document per row (the last row ends with a 1-token document, so that the rows count as packed).
#include <time.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/attention.h"

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Rows of `seq_len` tokens as lists of document lengths.
std::vector<std::vector<int64_t>> pack(const std::vector<int64_t>& docs, int64_t seq_len, int64_t rows) {
  std::vector<std::vector<int64_t>> out(1);
  int64_t used = 0;
  size_t next = 0;
  int64_t left = 0;  // tokens of the current document not yet placed
  while (static_cast<int64_t>(out.size()) <= rows) {
    if (left == 0) left = docs[next++ % docs.size()];
    const int64_t space = seq_len - used;
    if (left <= seq_len && left > space) {  // fits a row but not this one: close it (padding)
      out.back().push_back(space);
      out.emplace_back();
      used = 0;
      continue;
    }
    const int64_t take = std::min(left, space);
    out.back().push_back(take);
    used += take;
    left -= take;
    if (used == seq_len) {
      out.emplace_back();
      used = 0;
    }
  }
  out.resize(rows);
  return out;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 5) {
    std::fprintf(
        stderr,
        "usage: bench_attention SEQ_LEN BATCH CHUNK LENGTHS|one [rounds] [heads] [kv_heads] [head_dim]\n");
    return 2;
  }
  const int64_t seq_len = std::stoll(argv[1]), batch = std::stoll(argv[2]), chunk = std::stoll(argv[3]);
  const std::string source = argv[4];
  const int rounds = argc > 5 ? std::stoi(argv[5]) : 5;
  const int64_t heads = argc > 6 ? std::stoll(argv[6]) : 8, kv_heads = argc > 7 ? std::stoll(argv[7]) : 2,
                head_dim = argc > 8 ? std::stoll(argv[8]) : 32;
  at::set_num_threads(1);

  // One document per row, except a 1-token document ending the last row: the batch counts as packed.
  std::vector<std::vector<int64_t>> rows(batch, std::vector<int64_t>{seq_len});
  rows.back() = {seq_len - 1, 1};
  if (source != "one") {
    std::ifstream in(source);
    L4_CHECK(in.good(), "{}: cannot read document lengths", source);
    std::vector<int64_t> docs;
    for (int64_t n; in >> n;) {
      L4_CHECK(n > 0, "{}: document lengths must be positive, got {}", source, n);
      docs.push_back(n);
    }
    L4_CHECK(!docs.empty(), "{}: no document lengths", source);
    rows = pack(docs, seq_len, batch);
  }
  std::vector<at::Tensor> id_rows;
  int64_t documents = 0;
  for (const auto& lengths : rows) {
    std::vector<at::Tensor> parts;
    for (size_t d = 0; d < lengths.size(); ++d) parts.push_back(torch::full({lengths[d]}, int64_t(d)));
    id_rows.push_back(torch::cat(parts));
    documents += static_cast<int64_t>(lengths.size());
  }
  const at::Tensor doc_ids = torch::stack(id_rows);

  l4::config::TextConfig config;
  config.hidden_size = heads * head_dim;
  config.num_attention_heads = heads;
  config.num_key_value_heads = kv_heads;
  config.head_dim = head_dim;
  config.attention_chunk_size = chunk;
  config.num_hidden_layers = 1;
  config.resolve();

  torch::manual_seed(1);
  const at::Tensor q = torch::randn({batch, seq_len, heads, head_dim});
  const at::Tensor k = torch::randn({batch, seq_len, kv_heads, head_dim});
  const at::Tensor v = torch::randn({batch, seq_len, kv_heads, head_dim});
  const at::Tensor grad = torch::randn({batch, seq_len, heads * head_dim});

  for (const bool chunked : {true, false}) {
    // Causal pairs the attention needs: per segment (document, or document's chunk) L (L + 1) / 2.
    double pairs = 0;
    for (const auto& lengths : rows) {
      for (int64_t length : lengths) {
        while (length > 0) {
          const double piece = static_cast<double>(chunked ? std::min(length, chunk) : length);
          pairs += piece * (piece + 1) / 2;
          length -= static_cast<int64_t>(piece);
        }
      }
    }
    const double flops = 12.0 * double(head_dim) * double(heads) * pairs;
    std::vector<double> times[2];
    for (int round = 0; round <= rounds; ++round) {
      for (const int mode : {0, 1}) {
        // A fresh context per step, as in training: masks and plans are built inside the timed step.
        l4::model::AttentionContext context(config, torch::ones({head_dim / 2}), batch, seq_len, torch::kCPU,
                                            std::nullopt, doc_ids);
        context.packed_attention =
            mode == 0 ? l4::model::PackedAttention::kMasks : l4::model::PackedAttention::kSegments;
        const at::Tensor qq = q.detach().requires_grad_(), kk = k.detach().requires_grad_(),
                         vv = v.detach().requires_grad_();
        const double start = cpu_seconds();
        l4::model::causal_attention(qq, kk, vv, context, chunked, 0.125).backward(grad);
        const double took = cpu_seconds() - start;
        if (round > 0) times[mode].push_back(took);  // round 0 warms up
      }
    }
    for (auto& t : times) std::sort(t.begin(), t.end());
    const double masks = times[0][times[0].size() / 2], segments = times[1][times[1].size() / 2];
    std::printf(
        "{\"layer\": \"%s\", \"seq_len\": %lld, \"batch\": %lld, \"chunk\": %lld, \"docs\": \"%s\", "
        "\"documents\": %lld, \"masks_s\": %.4f, \"segments_s\": %.4f, \"speedup\": %.2f, "
        "\"masks_gflops\": %.2f, \"segments_gflops\": %.2f}\n",
        chunked ? "chunked" : "global", (long long)seq_len, (long long)batch, (long long)chunk,
        source.c_str(), (long long)documents, masks, segments, masks / segments, flops / masks / 1e9,
        flops / segments / 1e9);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_attention: %s\n", e.what());
  return 1;
}
