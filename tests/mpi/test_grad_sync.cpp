// GradSync on a tiny MoE block (replicated projection + sharded experts behind ExpertDispatch): reduced
// gradients and clipped gradients equal one process's on the global batch, with and without overlap,
// for every ep the world allows; under ZeRO-2 each rank's chunk of the replicated gradients equals the
// reference's and their full gradients are gone.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include "mpi/mpi_test_util.h"
#include "parallel/expert_dispatch.h"
#include "parallel/grad_sync.h"
#include "parallel/process_grid.h"
#include "unit/parallel/moe_reference.h"

namespace l4::parallel {
namespace {

using testing::ExpertWeights;
using testing::world;

constexpr int64_t kExperts = 4, kDim = 6, kHidden = 8, kRowsPerRank = 10;
constexpr uint64_t kSeed = 77;

struct Model {
  at::Tensor proj, bias;  // replicated
  ExpertWeights experts;  // this rank's shard (all experts in the reference)
  int64_t expert_begin = 0;
  std::vector<SyncParam> params() const {
    const Placement shard = Placement::sharded(ShardGroup::kExpertParallel, 0, expert_begin, kExperts);
    return {{"proj", proj, Placement::replicated()},
            {"bias", bias, Placement::replicated()},
            {"experts.gate_proj", experts.w1, shard},
            {"experts.up_proj", experts.w3, shard},
            {"experts.down_proj", experts.w2, shard}};
  }
};

Model make_model(int64_t expert_begin, int64_t experts) {
  Model m{at::empty({kDim, kDim}), at::empty({kDim}),
          testing::make_expert_weights(expert_begin, experts, kDim, kHidden, kSeed, true), expert_begin};
  init_replicated(m.proj, kSeed, "proj", normal_init(0.4));
  init_replicated(m.bias, kSeed, "bias", normal_init(0.1));
  m.proj.requires_grad_();
  m.bias.requires_grad_();
  return m;
}

struct Data {
  at::Tensor x, probe;
  std::vector<int64_t> ids;
};

Data make_data(int world_size) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const int64_t total = kRowsPerRank * world_size;
  Data d{at::randn({total, kDim}, gen), at::randn({total, kDim}, gen), {}};
  const at::Tensor ids = at::randint(0, kExperts, {total}, gen, at::kLong);
  for (int64_t i = 0; i < total; ++i) d.ids.push_back(i % 7 == 0 ? 1 : ids[i].item<int64_t>());
  return d;
}

// Mean over rows of <h + moe(h), probe> with h = x proj + bias.
at::Tensor loss_of(const at::Tensor& h, const at::Tensor& moe, const at::Tensor& probe) {
  return ((h + moe) * probe).sum() / h.size(0);
}

// Under ZeRO-2 (`zero` set) the replicated gradients are compared as this rank's chunk of their flat sum.
double max_grad_diff(const Model& m, const Model& ref, int64_t e0, int64_t el, const GradSync& sync,
                     const ZeroPartition* zero) {
  double err = 0;
  if (zero) {
    const ZeroPartition ref_layout({ref.proj, ref.bias}, zero->rank(), zero->world_size());
    const at::Tensor ref_chunk =
        ref_layout.flatten({ref.proj.grad(), ref.bias.grad()}).narrow(0, zero->rank() * zero->chunk(), zero->chunk());
    err = testing::max_abs_diff(sync.replicated_grad_shard(), ref_chunk);
    EXPECT_FALSE(m.proj.grad().defined() || m.bias.grad().defined()) << "ZeRO-2 frees the full gradients";
  } else {
    err = std::max(testing::max_abs_diff(m.proj.grad(), ref.proj.grad()),
                   testing::max_abs_diff(m.bias.grad(), ref.bias.grad()));
  }
  err = std::max(err, testing::max_abs_diff(m.experts.w1.grad(), ref.experts.w1.grad().narrow(0, e0, el)));
  err = std::max(err, testing::max_abs_diff(m.experts.w3.grad(), ref.experts.w3.grad().narrow(0, e0, el)));
  err = std::max(err, testing::max_abs_diff(m.experts.w2.grad(), ref.experts.w2.grad().narrow(0, e0, el)));
  return err;
}

// `micro_batches` > 1 (ZeRO-2 only): this rank's rows in that many micro-batches, the replicated gradients
// reduce-scattered after each one but the last (reduce_micro_batch) and summed in the chunk.
void run(int ep, bool overlap, GradReduction reduction, bool zero2 = false, int micro_batches = 1) {
  Communicator& comm = world();
  const int w = comm.size(), r = comm.rank();
  ProcessGrid grid(comm, ep, kExperts);
  const Data d = make_data(w);

  // Reference: one process, the global batch, loss = mean over all rows.
  Model ref = make_model(0, kExperts);
  {
    const at::Tensor h = at::matmul(d.x, ref.proj) + ref.bias;
    loss_of(h, testing::reference_moe(h, d.ids, ref.experts, std::vector<bool>(d.ids.size(), true)), d.probe)
        .backward();
  }
  std::vector<at::Tensor> ref_params;
  for (const SyncParam& p : ref.params()) ref_params.push_back(p.param);

  // Distributed: each rank its rows; loss = mean over its rows (kAverage) or rows / global count (kSum).
  Model m = make_model(grid.expert_begin(), grid.experts_per_rank());
  GradSyncOptions options{/*bucket_mb=*/0.0005, overlap, reduction};
  std::shared_ptr<const ZeroPartition> zero;
  // ZeRO-2: buckets of 40 bytes cut proj (36 floats) and bias (6) into several reduce-scatters whose
  // ranges straddle the ranks' chunks.
  if (zero2) {
    zero = std::make_shared<ZeroPartition>(std::vector<at::Tensor>{m.proj, m.bias}, r, w);
    options.shard_replicated_grads = zero;
    options.bucket_mb = 40.0 / (1024 * 1024);
  }
  GradSync sync(m.params(), grid, options);
  const int64_t off = r * kRowsPerRank;
  const at::Tensor x = d.x.narrow(0, off, kRowsPerRank);
  const std::vector<int64_t> ids(d.ids.begin() + off, d.ids.begin() + off + kRowsPerRank);
  ExpertDispatch dispatch(grid.ep_comm(), kExperts);
  const int64_t rows_per_micro = kRowsPerRank / micro_batches;
  for (int mb = 0; mb < micro_batches; ++mb) {
    const bool last = mb + 1 == micro_batches;
    if (overlap) last ? sync.prepare() : sync.prepare_micro_batch();
    const int64_t begin = mb * rows_per_micro, rows = last ? kRowsPerRank - begin : rows_per_micro;
    const at::Tensor h = at::matmul(x.narrow(0, begin, rows), m.proj) + m.bias;
    const std::vector<int64_t> mb_ids(ids.begin() + begin, ids.begin() + begin + rows);
    const at::Tensor moe = dispatch(h, torch::tensor(mb_ids, torch::kLong),
                                    [&](const at::Tensor& picked, const std::vector<int64_t>& c) {
                                      return testing::run_experts(picked, c, m.experts);
                                    });
    // This micro-batch's share of the rank's mean over its rows.
    at::Tensor loss = loss_of(h, moe, d.probe.narrow(0, off + begin, rows)) * rows / kRowsPerRank;
    if (reduction == GradReduction::kSum) loss = loss / w;
    loss.backward();
    if (!last) sync.reduce_micro_batch();
  }
  sync.sync();

  const int64_t e0 = grid.expert_begin(), el = grid.experts_per_rank();
  const double grad_err = testing::max_over_ranks(max_grad_diff(m, ref, e0, el, sync, zero.get()), comm);

  const double ref_norm = torch::nn::utils::clip_grad_norm_(ref_params, 1e9);
  const double max_norm = 0.5 * ref_norm;
  torch::nn::utils::clip_grad_norm_(ref_params, max_norm);
  const double norm = sync.clip_grad_norm(max_norm);
  const double clip_err = testing::max_over_ranks(max_grad_diff(m, ref, e0, el, sync, zero.get()), comm);
  const double norm_err = testing::max_over_ranks(std::abs(norm - ref_norm), comm);

  const std::string what = fmt::format("ep={} overlap={} sum={} zero2={} micro_batches={}", ep, overlap,
                                       reduction == GradReduction::kSum, zero2, micro_batches);
  EXPECT_GE(sync.num_buckets(), 3u) << what;
  // With overlap, the hooks must have started buckets during backward (the last one may wait for sync()).
  if (overlap) EXPECT_GE(sync.buckets_launched_in_backward(), sync.num_buckets() - 1) << what;
  EXPECT_LE(grad_err, 1e-5) << what;
  EXPECT_LE(norm_err, 1e-5 * ref_norm) << what;
  EXPECT_LE(clip_err, 1e-5) << what;
  if (r == 0) {
    std::printf("[grad_sync] %s world=%d: grad max-abs %.2e, norm %.6f vs %.6f, clipped max-abs %.2e\n",
                what.c_str(), w, grad_err, norm, ref_norm, clip_err);
  }
}

TEST(GradSync, AverageMatchesSingleProcess) {
  for (int ep : testing::valid_eps(world().size(), kExperts)) run(ep, false, GradReduction::kAverage);
}

TEST(GradSync, OverlapWithBackwardMatchesSingleProcess) {
  for (int ep : testing::valid_eps(world().size(), kExperts)) run(ep, true, GradReduction::kAverage);
}

TEST(GradSync, Zero2ReduceScattersBucketsIntoEachRanksChunk) {
  for (int ep : testing::valid_eps(world().size(), kExperts)) {
    run(ep, false, GradReduction::kAverage, /*zero2=*/true);
    run(ep, true, GradReduction::kAverage, /*zero2=*/true);
  }
  run(world().size() >= 2 ? 2 : 1, true, GradReduction::kSum, /*zero2=*/true);
}

TEST(GradSync, Zero2ReducesEveryMicroBatchIntoTheChunk) {
  for (int ep : testing::valid_eps(world().size(), kExperts)) {
    for (bool overlap : {false, true}) run(ep, overlap, GradReduction::kAverage, /*zero2=*/true, /*micro_batches=*/3);
  }
}

TEST(GradSync, SumOfTokenWeightedLossesMatchesSingleProcess) {
  run(world().size() >= 2 ? 2 : 1, false, GradReduction::kSum);
}

// Large gradients: the norm is exact to ~1e-8, whatever the tensor size. ATen's CPU norm kernels add a
// tensor in one float sequence (1.3e-4 relative off at 5M elements); GradSync must not inherit that, or
// the logged norm and the clipping scale depend on how the gradients are cut (ZeRO-2 pieces, world size).
TEST(GradSync, NormOfLargeGradientsIsExact) {
  Communicator& comm = world();
  ProcessGrid grid(comm, 1, kExperts);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  at::Tensor big = at::zeros({5'000'000}).requires_grad_();
  at::Tensor small = at::zeros({3, 7}).requires_grad_();
  big.mutable_grad() = at::randn({5'000'000}, gen) * 1e-3;  // the same on every rank: the average is itself
  small.mutable_grad() = at::randn({3, 7}, gen);
  GradSync sync({{"big", big, Placement::replicated()}, {"small", small, Placement::replicated()}}, grid);
  sync.sync();
  const double want = std::sqrt(big.grad().to(at::kDouble).square().sum().item<double>() +
                                small.grad().to(at::kDouble).square().sum().item<double>());
  const double norm = sync.grad_norm();
  EXPECT_NEAR(norm, want, 1e-7 * want);
  const double clipped = sync.clip_grad_norm(0.5 * want);
  EXPECT_NEAR(clipped, want, 1e-7 * want);
  const double scale = 0.5 * want / (want + 1e-6);  // clip_grad_norm's epsilon, as torch's
  EXPECT_NEAR(sync.grad_norm(), scale * want, 1e-7 * want);
}

}  // namespace
}  // namespace l4::parallel
