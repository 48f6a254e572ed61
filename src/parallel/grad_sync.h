// GradSync: data-parallel gradient reduction in flat buckets, and global gradient-norm clipping.
//
// Each gradient is summed over the replica group of its parameter's placement (ProcessGrid::replica_group,
// device channel): replicated parameters over the world, expert shards over the expert-data-parallel group
// (the ranks holding the same experts). With reduction kAverage both are then divided by the WORLD size: an
// expert shard's gradient already sums the contributions of every token of its EP group (the all-to-all
// brings them), so summing over its replicas covers every rank's loss once, and dividing by the world size
// gives the gradient of the mean of the per-rank losses, exactly like the replicated parameters. Use kSum
// when each rank's loss is already divided by the global token count (token-weighted mean over the global
// batch).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "parallel/placement.h"
#include "parallel/zero_partition.h"

namespace l4::parallel {

class ProcessGrid;

enum class GradReduction { kAverage, kSum };

struct SyncParam {
  std::string name;
  at::Tensor param;  // a leaf that requires grad
  Placement placement;
};

struct GradSyncOptions {
  double bucket_mb = 25.0;
  // Start each bucket's all-reduce from a gradient hook as soon as its last gradient is accumulated,
  // overlapping communication with the rest of backward. Needs every parameter to get a gradient on
  // every rank in every synced backward (ranks must launch buckets in the same order); parameters that
  // never receive one are reduced as zeros by sync().
  bool overlap = false;
  GradReduction reduction = GradReduction::kAverage;
  // ZeRO-2: the gradients of the partition's (replicated) parameters are reduce-scattered over the world
  // (device channel) instead of all-reduced, in buckets of their own: each bucket is a contiguous range of
  // the partition's flat space, and each rank receives the part of it that it owns straight into
  // replicated_grad_shard(). A bucket's full gradients are freed as soon as it is flattened, so with
  // overlap the full replicated gradients never all exist at once. Null: all-reduce as usual.
  std::shared_ptr<const ZeroPartition> shard_replicated_grads;
};

class GradSync {
 public:
  // The grid (its device channel's groups) and the parameters must outlive this object.
  GradSync(std::vector<SyncParam> params, const ProcessGrid& grid, GradSyncOptions options = {});
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Overlap mode: call before the backward whose gradients are to be reduced (with gradient
  // accumulation, before the last micro-batch only); the hooks ignore other backward passes.
  void prepare();
  // Collective: after backward, every rank. Leaves every gradient reduced (missing ones become zeros).
  void sync();
  // ZeRO-2 with gradient accumulation: after the backward of each micro-batch but the last, reduce-scatter
  // the partition's gradients into this rank's chunk (summed over the micro-batches) and free them, so the
  // full replicated gradients are never held between micro-batches; the other gradients accumulate in .grad
  // until sync(). With overlap, call prepare_micro_batch() before that backward instead of prepare().
  // Collective; every rank reduces the same number of micro-batches.
  void reduce_micro_batch();
  void prepare_micro_batch();
  // Global L2 norm of all gradients, every parameter shard counted once across ranks (collective).
  double grad_norm();
  // Scales every gradient by max_norm / (norm + 1e-6) when norm > max_norm (as torch's
  // clip_grad_norm_); returns the norm before clipping (collective).
  double clip_grad_norm(double max_norm);

  // ZeRO-2: this rank's chunk of the summed (averaged, clipped) replicated gradients after sync();
  // undefined otherwise.
  at::Tensor replicated_grad_shard() const;

  size_t num_buckets() const;
  // Buckets the gradient hooks launched during the last synced backward (overlap mode), i.e. before
  // sync() was called.
  size_t buckets_launched_in_backward() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace l4::parallel
