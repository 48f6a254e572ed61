// Expert parallelism in the real model: for every ep the world allows, the ranks each run their share of
// one global batch (expert shards behind ExpertDispatch, GradSync with the token-weighted loss of the
// trainer) and must match one process on the whole batch: first logits, every loss of 5 AdamW steps and
// every final parameter (expert shards gathered). Also capacity-factor dropping and loading a sharded
// checkpoint reading only this rank's expert rows.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adamw.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "checkpoint/model_weights.h"
#include "checkpoint/safetensors.h"
#include "model/expert_parallel.h"
#include "model/llama4.h"
#include "model/loss.h"
#include "model/placed.h"
#include "model/recompute.h"
#include "model/weights.h"
#include "mpi/mpi_test_util.h"
#include "parallel/grad_sync.h"
#include "parallel/process_grid.h"

namespace l4::model {
namespace {

using parallel::testing::max_over_ranks;
using parallel::testing::valid_eps;
using parallel::testing::world;

constexpr int64_t kRowsPerRank = 2, kSeqLen = 16, kVocab = 64, kSteps = 5;
constexpr uint64_t kSeed = 1234;
constexpr double kTol = 1e-5;

// The tiny MoE architecture (configs/tiny.yaml's features, smaller): both layers MoE, top-1 of 4 experts,
// chunked attention, QK norm. A large init range so that logits and routing are far from uniform.
config::TextConfig tiny_config(int64_t intermediate = 32) {
  config::TextConfig c;
  c.vocab_size = kVocab;
  c.hidden_size = 32;
  c.intermediate_size = intermediate;
  c.intermediate_size_mlp = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 1;
  c.interleave_moe_layer_step = 1;
  c.attention_chunk_size = 8;
  c.use_qk_norm = true;
  c.initializer_range = 0.2;
  c.pad_token_id = 0;
  c.resolve();
  return c;
}

// The same global batch on every rank (rows in global order).
struct Batch {
  at::Tensor input_ids, labels, doc_ids;  // [R, T]; doc_ids undefined without packing
  Batch rows(int64_t begin, int64_t end) const {
    return {input_ids.slice(0, begin, end), labels.slice(0, begin, end),
            doc_ids.defined() ? doc_ids.slice(0, begin, end) : at::Tensor()};
  }
};

// packed: rows hold several documents (runs of equal doc ids) and SFT masks (prompt tokens -100), with a
// different number of loss tokens in every row.
Batch make_batch(int64_t rows, bool packed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(99);
  Batch b;
  b.input_ids = at::randint(1, kVocab, {rows, kSeqLen}, gen, at::kLong);
  b.labels = at::randint(1, kVocab, {rows, kSeqLen}, gen, at::kLong);
  if (packed) {
    b.doc_ids = at::zeros({rows, kSeqLen}, at::kLong);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t split = 3 + 2 * r;  // document boundary moves with the row
      b.doc_ids[r].slice(0, split).fill_(1);
      b.labels[r].slice(0, 0, 1 + r * 3).fill_(kIgnoreIndex);  // prompt of growing length
      b.labels[r].slice(0, split, split + 2).fill_(kIgnoreIndex);
    }
  }
  return b;
}

using Tweak = std::function<void(Llama4Impl&)>;

// Routes (nearly) every token to expert 0: a large constant hidden channel read by the router's row 0.
Tweak skew_routing(double strength) {
  return [strength](Llama4Impl& m) {
    torch::NoGradGuard no_grad;
    m.model->embed_tokens->weight.select(1, 0).fill_(5.0);
    for (auto& layer : m.model->decoder_layers) {
      if (layer->moe) layer->moe->router->weight[0][0].fill_(strength);
    }
  };
}

struct RunResult {
  std::vector<double> losses;
  at::Tensor first_logits;                        // this rank's rows
  std::vector<at::Tensor> first_counts;           // per MoE layer, this rank's (token, slot) pairs per expert
  std::map<std::string, at::Tensor> params;       // full tensors (expert shards gathered)
  std::map<std::string, at::Tensor> first_grads;  // reduced gradients of the first step, full tensors
};

// Expert shards of every rank of the EP group in one [E, ...] tensor (collective over the group).
at::Tensor full_tensor(const PlacedParam& p, const at::Tensor& t, const parallel::ProcessGrid* grid) {
  return grid && p.placement.is_sharded() && grid->layout().ep > 1 ? grid->gather_experts(t) : t;
}

// One training run of kSteps AdamW steps. grid == nullptr: one process on the whole batch. Otherwise this
// rank's rows of the global batch, experts sharded over grid->ep_comm(); the loss of each rank is its loss
// sum over the global loss tokens and GradSync sums (as the trainer does).
RunResult train(const config::TextConfig& config, const Batch& global, const parallel::ProcessGrid* grid,
                const Tweak& tweak = nullptr) {
  ModelOptions options;
  Batch local = global;
  if (grid) {
    options.experts = {grid->expert_begin(), grid->experts_per_rank()};
    const int64_t per_rank = global.input_ids.size(0) / grid->host().size();
    local = global.rows(grid->host().rank() * per_rank, (grid->host().rank() + 1) * per_rank);
  }
  Llama4 model(config, options);
  model->init_parameters(kSeed);
  if (tweak) tweak(*model);
  if (grid && grid->layout().ep > 1) install_expert_parallel(*model, grid->ep_comm());

  std::vector<parallel::SyncParam> sync;
  std::vector<at::Tensor> params;
  const std::vector<PlacedParam> placed = placed_parameters(*model);
  for (const PlacedParam& p : placed) {
    sync.push_back({p.name, p.param, p.placement});
    params.push_back(p.param);
  }
  std::unique_ptr<parallel::GradSync> grad_sync;
  if (grid) {
    parallel::GradSyncOptions sync_options;
    sync_options.reduction = parallel::GradReduction::kSum;
    sync_options.bucket_mb = 0.01;  // several buckets
    sync_options.overlap = true;    // as the trainer: buckets reduced from gradient hooks during backward
    grad_sync = std::make_unique<parallel::GradSync>(sync, *grid, sync_options);
  }
  // eps 1e-6: entries whose gradient cancels to ~1e-9 (summation-order noise of relative size 1e-7 of the
  // terms) would otherwise get noise-driven AdamW steps of a sizeable fraction of lr in either run.
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-3).weight_decay(0.1).eps(1e-6));

  RunResult result;
  for (int64_t step = 0; step < kSteps; ++step) {
    optimizer.zero_grad();
    const at::Tensor logits =
        model->forward(local.input_ids, std::nullopt,
                       local.doc_ids.defined() ? std::optional<at::Tensor>(local.doc_ids) : std::nullopt);
    const LossSum sums = cross_entropy_sum(logits, local.labels);
    at::Tensor totals = at::stack({sums.sum.detach().to(at::kDouble), sums.count.to(at::kDouble)});
    if (grid) grid->host().all_reduce(totals, parallel::ReduceOp::kSum);
    const double global_tokens = totals[1].item<double>();
    if (grad_sync) grad_sync->prepare();
    (sums.sum / global_tokens).backward();
    if (grad_sync) grad_sync->sync();
    if (step == 0) {
      for (const PlacedParam& p : placed) {
        const at::Tensor g = p.param.grad().defined() ? p.param.grad() : at::zeros_like(p.param);
        result.first_grads[p.name] = full_tensor(p, g.detach().clone(), grid);
      }
    }
    optimizer.step();
    result.losses.push_back(totals[0].item<double>() / global_tokens);
    if (step == 0) {
      result.first_logits = logits.detach().clone();
      for (const at::Tensor& c : model->expert_token_counts()) result.first_counts.push_back(c.clone());
    }
  }
  for (const PlacedParam& p : placed) result.params[p.name] = full_tensor(p, p.param.detach(), grid);
  return result;
}

struct Errors {
  double logits = 0, loss = 0, params = 0, grads = 0;
  std::string worst_param;  // on this rank
};

// Every rank runs the single-process reference on the whole batch itself, then compares.
Errors compare(const config::TextConfig& config, const Batch& global, const parallel::ProcessGrid& grid,
               const Tweak& tweak, const std::function<void(const RunResult&)>& check_reference = nullptr,
               const Tweak& run_only = nullptr) {
  const RunResult reference = train(config, global, nullptr, tweak);
  if (check_reference) check_reference(reference);
  const RunResult run = train(config, global, &grid, [&](Llama4Impl& m) {
    if (tweak) tweak(m);
    if (run_only) run_only(m);
  });
  Errors e;
  const int64_t per_rank = global.input_ids.size(0) / grid.host().size();
  const int64_t begin = grid.host().rank() * per_rank;
  const at::Tensor my_rows = reference.first_logits.slice(0, begin, begin + per_rank);
  e.logits = (run.first_logits - my_rows).abs().max().item<double>();
  for (int64_t s = 0; s < kSteps; ++s) {
    e.loss = std::max(e.loss, std::abs(run.losses[s] - reference.losses[s]));
  }
  for (const auto& [name, value] : reference.params) {
    const at::Tensor& mine = run.params.at(name);
    EXPECT_EQ(mine.sizes(), value.sizes()) << name;
    if (mine.sizes() != value.sizes()) continue;
    // Gradients relative to the tensor's largest entry (a scale error would hide behind AdamW otherwise).
    const at::Tensor& g = reference.first_grads.at(name);
    const double scale = std::max(g.abs().max().item<double>(), 1e-12);
    e.grads = std::max(e.grads, (run.first_grads.at(name) - g).abs().max().item<double>() / scale);
    const double diff = (mine - value).abs().max().item<double>();
    if (diff > e.params) e.worst_param = name;
    e.params = std::max(e.params, diff);
  }
  e.logits = max_over_ranks(e.logits, grid.host());
  e.loss = max_over_ranks(e.loss, grid.host());
  e.params = max_over_ranks(e.params, grid.host());
  e.grads = max_over_ranks(e.grads, grid.host());
  return e;
}

void expect_close(const Errors& e, int ep, const char* what) {
  if (world().rank() == 0) {
    std::printf("[ep=%d world=%d %s] max |diff| logits %.2e, losses %.2e, params %.2e (%s); grads rel %.2e\n",
                ep, world().size(), what, e.logits, e.loss, e.params, e.worst_param.c_str(), e.grads);
  }
  EXPECT_LE(e.logits, kTol) << what << " ep=" << ep;
  EXPECT_LE(e.loss, kTol) << what << " ep=" << ep;
  EXPECT_LE(e.params, kTol) << what << " ep=" << ep;
  EXPECT_LE(e.grads, 1e-4) << what << " ep=" << ep;
}

int64_t layer0_share(const RunResult& r, int64_t expert) {
  const at::Tensor& c = r.first_counts.at(0);
  return c[expert].item<int64_t>() * 100 / c.sum().item<int64_t>();
}

TEST(ExpertParallelModel, MatchesOneProcessOnTheGlobalBatch) {
  const config::TextConfig config = tiny_config();
  const Batch global = make_batch(kRowsPerRank * world().size(), /*packed=*/false);
  for (int ep : valid_eps(world().size(), config.num_local_experts)) {
    parallel::ProcessGrid grid(world(), ep, config.num_local_experts);
    expect_close(compare(config, global, grid, nullptr), ep, "balanced");
  }
}

TEST(ExpertParallelModel, UnevenRoutingMatches) {
  const config::TextConfig config = tiny_config();
  const Batch global = make_batch(kRowsPerRank * world().size(), false);
  for (int ep : valid_eps(world().size(), config.num_local_experts)) {
    parallel::ProcessGrid grid(world(), ep, config.num_local_experts);
    const Errors e = compare(config, global, grid, skew_routing(0.5), [](const RunResult& ref) {
      EXPECT_GT(layer0_share(ref, 0), 50) << "expert 0 should get most tokens";
      EXPECT_LT(layer0_share(ref, 0), 100) << "some tokens should go elsewhere";
    });
    expect_close(e, ep, "uneven");
  }
}

TEST(ExpertParallelModel, RankSendingNothingToOthersMatches) {
  const config::TextConfig config = tiny_config();
  const Batch global = make_batch(kRowsPerRank * world().size(), false);
  for (int ep : valid_eps(world().size(), config.num_local_experts)) {
    parallel::ProcessGrid grid(world(), ep, config.num_local_experts);
    // Every token goes to expert 0 (rank 0 of each EP group): that rank sends nothing, the others receive
    // nothing and send everything.
    const Errors e = compare(config, global, grid, skew_routing(5.0), [](const RunResult& ref) {
      for (const at::Tensor& c : ref.first_counts) EXPECT_EQ(c[0].item<int64_t>(), c.sum().item<int64_t>());
    });
    expect_close(e, ep, "all to expert 0");
  }
}

TEST(ExpertParallelModel, PackedRowsWithLossMasksMatch) {
  const config::TextConfig config = tiny_config();
  const Batch global = make_batch(kRowsPerRank * world().size(), /*packed=*/true);
  // Ranks hold different numbers of loss tokens: the token-weighted global loss must still match.
  const at::Tensor per_rank_tokens = (global.labels != kIgnoreIndex).view({world().size(), -1}).sum(1);
  if (world().size() > 1) {
    ASSERT_NE(per_rank_tokens[0].item<int64_t>(), per_rank_tokens[1].item<int64_t>());
  }
  for (int ep : valid_eps(world().size(), config.num_local_experts)) {
    parallel::ProcessGrid grid(world(), ep, config.num_local_experts);
    expect_close(compare(config, global, grid, skew_routing(0.5)), ep, "packed + SFT masks");
  }
}

// Activation checkpointing under expert parallelism: the recomputes repeat the layers' row exchanges in
// backward (full) or only the local expert matmuls (moe), in the same order on every rank; the run (with the
// gradient buckets reduced from accumulator hooks during backward) equals one process without
// recomputation, also when one rank receives no rows.
TEST(ExpertParallelModel, RecomputeMatchesOneProcessWithout) {
  const config::TextConfig config = tiny_config();
  const Batch global = make_batch(kRowsPerRank * world().size(), /*packed=*/true);
  const Tweak full = [](Llama4Impl& m) { m.model->recompute_layers = true; };
  const Tweak moe = [](Llama4Impl& m) { recompute_experts(m); };
  for (int ep : valid_eps(world().size(), config.num_local_experts)) {
    parallel::ProcessGrid grid(world(), ep, config.num_local_experts);
    expect_close(compare(config, global, grid, skew_routing(0.5), nullptr, full), ep, "full recompute");
    expect_close(compare(config, global, grid, skew_routing(5.0), nullptr, full), ep,
                 "full recompute, all to expert 0");
    expect_close(compare(config, global, grid, skew_routing(0.5), nullptr, moe), ep, "moe recompute");
  }
}

// Capacity dropping: each rank keeps at most ceil(cf * N / E) of its N rows per expert. The EP run on rank
// r must equal one process with the same capacity on rank r's rows alone (capacity is per source rank),
// be deterministic, and report exactly the drops the routing counts imply.
TEST(ExpertParallelModel, CapacityDroppingIsDeterministicAndCounted) {
  const config::TextConfig config = tiny_config();
  const double cf = 1.0;
  const Batch global = make_batch(kRowsPerRank * world().size(), false);
  const Batch local = global.rows(world().rank() * kRowsPerRank, (world().rank() + 1) * kRowsPerRank);
  for (int ep : valid_eps(world().size(), config.num_local_experts)) {
    parallel::ProcessGrid grid(world(), ep, config.num_local_experts);
    ModelOptions options;
    options.experts = {grid.expert_begin(), grid.experts_per_rank()};
    Llama4 model(config, options);
    model->init_parameters(kSeed);
    skew_routing(0.5)(*model);
    auto runner = install_expert_parallel(*model, grid.ep_comm(), {cf});
    torch::NoGradGuard no_grad;
    const at::Tensor first = model->forward(local.input_ids);
    const parallel::DispatchStats stats = runner->stats();
    int64_t expected_drops = 0;
    const int64_t n = local.input_ids.numel() * config.num_experts_per_tok;
    const auto capacity = static_cast<int64_t>(std::ceil(cf * n / config.num_local_experts));
    for (const at::Tensor& counts : model->expert_token_counts()) {
      for (int64_t e = 0; e < counts.size(0); ++e) {
        expected_drops += std::max<int64_t>(0, counts[e].item<int64_t>() - capacity);
      }
    }
    runner->reset_stats();
    const at::Tensor second = model->forward(local.input_ids);

    // One process, the full model, the same capacity, this rank's rows only.
    parallel::SelfCommunicator self;
    Llama4 single(config);
    single->init_parameters(kSeed);
    skew_routing(0.5)(*single);
    auto single_runner = install_expert_parallel(*single, self, {cf});
    const at::Tensor reference = single->forward(local.input_ids);

    const parallel::DispatchStats total = parallel::sum_over_ranks(stats, world());
    const parallel::DispatchStats expected_total =
        parallel::sum_over_ranks({stats.rows, expected_drops}, world());
    const double repeat = max_over_ranks((first - second).abs().max().item<double>(), world());
    const double vs_single = max_over_ranks((first - reference).abs().max().item<double>(), world());
    const double stats_differ = max_over_ranks(stats.dropped != runner->stats().dropped ? 1.0 : 0.0, world());
    if (world().rank() == 0) {
      std::printf("[ep=%d world=%d capacity %.1f] drop rate %.4f (%lld of %lld), vs one process %.2e\n", ep,
                  world().size(), cf, total.drop_rate(), static_cast<long long>(total.dropped),
                  static_cast<long long>(total.rows), vs_single);
    }
    EXPECT_GT(total.dropped, 0);
    EXPECT_EQ(total.dropped, expected_total.dropped);
    EXPECT_EQ(total.rows, static_cast<int64_t>(world().size()) * n * 2);  // two MoE layers
    EXPECT_EQ(repeat, 0.0);
    EXPECT_EQ(stats_differ, 0.0);
    EXPECT_LE(vs_single, kTol);
  }
}

// A sharded HF checkpoint (two safetensors files and an index): each rank reads only its expert rows.
TEST(ExpertParallelModel, LoadsOnlyItsExpertRowsFromAShardedCheckpoint) {
  const config::TextConfig config = tiny_config(/*intermediate=*/128);  // experts dominate the bytes
  at::Tensor pid = at::full({1}, static_cast<int64_t>(::getpid()), at::kLong);
  world().broadcast(pid, 0);  // one directory name for all ranks
  const std::string dir = "/tmp/l4_ep_ckpt_" + std::to_string(pid.item<int64_t>());
  Llama4 full(config);
  full->init_parameters(kSeed);
  int64_t expert_bytes = 0, replicated_bytes = 0;
  for (const auto& item : full->named_parameters()) {
    const int64_t bytes = item.value().numel() * 4;
    (item.key().find(".experts.") != std::string::npos ? expert_bytes : replicated_bytes) += bytes;
  }
  if (world().rank() == 0) {
    std::filesystem::create_directories(dir);
    std::vector<std::pair<std::string, at::Tensor>> shards[2];
    nlohmann::json index = {{"metadata", {{"total_size", expert_bytes + replicated_bytes}}}};
    int i = 0;
    for (const auto& item : full->named_parameters()) {
      const int s = i++ % 2;
      shards[s].push_back({item.key(), item.value().detach()});
      index["weight_map"][item.key()] = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
    }
    for (int s = 0; s < 2; ++s) {
      const std::string file = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
      checkpoint::save_safetensors(dir + "/" + file, shards[s], {{"format", "pt"}});
    }
    std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  }
  world().barrier();
  for (int ep : valid_eps(world().size(), config.num_local_experts)) {
    parallel::ProcessGrid grid(world(), ep, config.num_local_experts);
    ModelOptions options;
    options.experts = {grid.expert_begin(), grid.experts_per_rank()};
    Llama4 model(config, options);
    const checkpoint::ModelWeights weights = checkpoint::ModelWeights::open_dir(dir);
    const auto read_bytes = [] {  // bytes this process read through read()/pread() so far
      std::ifstream io("/proc/self/io");
      std::string key;
      int64_t value = 0;
      while (io >> key >> value) {
        if (key == "rchar:") return value;
      }
      return int64_t{-1};
    };
    const int64_t before = read_bytes();
    load_weights(*model, weights);
    const int64_t read = read_bytes() - before;
    double error = 0;
    for (const auto& item : model->named_parameters()) {
      at::Tensor expected = full->named_parameters()[item.key()];
      if (item.key().find(".experts.") != std::string::npos) expected = grid.expert_shard(expected);
      error = std::max(error, (item.value() - expected).abs().max().item<double>());
    }
    const int64_t share = replicated_bytes + expert_bytes / ep;
    if (world().rank() == 0) {
      std::printf("[ep=%d rank 0] read %lld bytes; replicated %lld + expert share %lld of %lld\n", ep,
                  static_cast<long long>(read), static_cast<long long>(replicated_bytes),
                  static_cast<long long>(expert_bytes / ep), static_cast<long long>(expert_bytes));
    }
    EXPECT_EQ(max_over_ranks(error, world()), 0.0);
    if (before >= 0) {
      EXPECT_GE(read, share);
      EXPECT_LE(read, share + 16 * 1024);  // the index file and slack, far below one expert layer
    }
    EXPECT_GT(expert_bytes / config.num_local_experts, 16 * 1024);
  }
  world().barrier();
  if (world().rank() == 0) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace l4::model
