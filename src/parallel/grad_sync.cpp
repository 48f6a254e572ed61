#include "parallel/grad_sync.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <utility>

#include "core/error.h"
#include "parallel/bucket_plan.h"
#include "parallel/communicator.h"
#include "parallel/process_grid.h"

namespace l4::parallel {
namespace {

// ZeRO-2 reduce-scatters outstanding at once (each holds a flattened copy of its bucket's gradients).
constexpr size_t kZeroBucketsInFlight = 2;

using torch::autograd::variable_list;

class ReadyHook final : public torch::autograd::FunctionPostHook {
 public:
  explicit ReadyHook(std::function<void()> on_ready) : on_ready_(std::move(on_ready)) {}
  variable_list operator()(const variable_list& outputs, const variable_list& inputs) override {
    on_ready_();
    return outputs;
  }

 private:
  std::function<void()> on_ready_;
};

}  // namespace

struct GradSync::State {
  struct BucketRun {
    Bucket spec;
    Communicator* comm = nullptr;
    // ZeRO-2: the bucket is a contiguous range [flat_begin, flat_end) of the partition's flat space,
    // reduce-scattered so that each rank receives the part it owns (counts[r] elements) straight into its
    // gradient chunk; the full gradients are freed as soon as the bucket is flattened.
    bool zero = false;
    int64_t flat_begin = 0, flat_end = 0;
    int64_t shard_offset = 0;  // where this rank's part lands in its chunk
    std::vector<int64_t> counts;
    std::vector<size_t> flat_order;  // items by flat position (spec.items is in fill order)
    size_t ready = 0;
    at::Tensor flat;
    at::Tensor received;  // zero: this rank's part of the sum, added into grad_shard by finish()
    std::unique_ptr<Work> work;
  };

  std::vector<SyncParam> params;
  const ProcessGrid* grid = nullptr;
  at::Tensor grad_shard;  // ZeRO-2: this rank's chunk of the summed replicated gradients
  GradSyncOptions options;
  std::vector<BucketRun> buckets;
  std::vector<size_t> bucket_of;  // param index -> bucket index
  // The buckets this backward reduces, in launch order: all of them, or (a micro-batch before the last
  // under ZeRO-2) only the reduce-scattered ones.
  std::vector<size_t> queue;
  size_t next_launch = 0;  // index into queue
  size_t launched_in_backward = 0;
  bool armed = false;
  bool shard_open = false;  // ZeRO-2: grad_shard holds this step's sum so far
  std::deque<size_t> zero_in_flight;  // ZeRO-2 buckets launched and not completed, oldest first
  // grad_accumulator() returns std::shared_ptr<Node> in older LibTorch (2.9, 2.11) and
  // c10::intrusive_ptr<Node> in newer ones (2.13): hold whatever this LibTorch hands out.
  using AccumulatorPtr =
      decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));
  std::vector<std::pair<AccumulatorPtr, uintptr_t>> hooks;

  // ZeRO-2: a zero gradient chunk at the first reduction of a step; later micro-batches add into it.
  void open_shard() {
    if (!options.shard_replicated_grads || shard_open) return;
    const ZeroPartition& zero = *options.shard_replicated_grads;
    const at::TensorOptions opts =
        zero.params().empty() ? at::TensorOptions(at::kFloat) : zero.params().front().options().requires_grad(false);
    grad_shard = at::zeros({zero.chunk()}, opts);
    shard_open = true;
  }

  void set_queue(bool zero_only) {
    queue.clear();
    for (size_t b = 0; b < buckets.size(); ++b) {
      if (!zero_only || buckets[b].zero) queue.push_back(b);
    }
    next_launch = 0;
  }

  // Arms the gradient hooks for the coming backward.
  void arm(bool zero_only) {
    for (auto& run : buckets) {
      L4_ASSERT(!run.work, "a bucket is still in flight from a previous backward");
      run.ready = 0;
    }
    set_queue(zero_only);
    launched_in_backward = 0;
    open_shard();
    armed = true;
  }

  // Launches what the hooks did not (everything without overlap), waits for all of this backward's buckets.
  void reduce(bool zero_only, bool overlap) {
    at::NoGradGuard no_grad;
    if (!overlap) {
      set_queue(zero_only);  // nothing was launched during backward
      open_shard();
    }
    launched_in_backward = next_launch;
    for (; next_launch < queue.size(); ++next_launch) launch(queue[next_launch]);
    for (size_t b : queue) finish(b);
    zero_in_flight.clear();
    armed = false;
  }

  void launch(size_t b) {
    BucketRun& run = buckets[b];
    std::vector<at::Tensor> pieces;
    pieces.reserve(run.spec.items.size() + 1);
    for (size_t i : run.zero ? run.flat_order : run.spec.items) {
      const at::Tensor& p = params[i].param;
      const at::Tensor& g = p.grad();
      pieces.push_back(g.defined() ? g.detach().reshape({-1}) : at::zeros({p.numel()}, p.options()));
    }
    if (run.zero) {
      const int64_t filled = run.flat_end - run.flat_begin;
      int64_t pieces_numel = 0;
      for (const at::Tensor& piece : pieces) pieces_numel += piece.numel();
      if (filled > pieces_numel) pieces.push_back(at::zeros({filled - pieces_numel}, pieces.front().options()));
    }
    run.flat = at::cat(pieces);
    pieces.clear();
    if (run.zero) {
      // The optimizer reads this rank's chunk only: the full gradients can go now, during backward.
      for (size_t i : run.spec.items) params[i].param.mutable_grad().reset();
      const int64_t mine = run.counts[static_cast<size_t>(options.shard_replicated_grads->rank())];
      run.received = at::empty({mine}, run.flat.options());
      run.work = run.comm->reduce_scatter_v_async(run.flat, run.counts, run.received, ReduceOp::kSum);
      // Bound the flattened copies alive at once: the oldest reduce-scatter is completed (and its copy
      // freed) once more than kZeroBucketsInFlight are out. Every rank launches the same buckets in the same
      // order, so the rank waiting here only waits for others to reach a launch it has passed.
      zero_in_flight.push_back(b);
      while (zero_in_flight.size() > kZeroBucketsInFlight) {
        finish(zero_in_flight.front());
        zero_in_flight.pop_front();
      }
    } else {
      run.work = run.comm->all_reduce_async(run.flat, ReduceOp::kSum);
    }
  }

  // Launches, in bucket order, every bucket whose gradients are all there.
  void launch_ready() {
    while (next_launch < queue.size() &&
           buckets[queue[next_launch]].ready == buckets[queue[next_launch]].spec.items.size()) {
      launch(queue[next_launch++]);
    }
  }

  void finish(size_t b) {
    BucketRun& run = buckets[b];
    if (!run.work) return;  // a reduce-scatter completed early (zero_in_flight)
    run.work->wait();
    run.work.reset();
    if (run.zero) {
      grad_shard.narrow(0, run.shard_offset, run.received.numel()).add_(run.received);
      run.flat = at::Tensor();
      run.received = at::Tensor();
      return;
    }
    if (options.reduction == GradReduction::kAverage) run.flat.div_(grid->device().size());
    int64_t offset = 0;
    for (size_t i : run.spec.items) {
      at::Tensor& p = params[i].param;
      const at::Tensor slice = run.flat.narrow(0, offset, p.numel()).view(p.sizes());
      offset += p.numel();
      if (p.grad().defined()) {
        p.mutable_grad().detach().copy_(slice);
      } else {
        p.mutable_grad() = slice.clone();
      }
    }
    run.flat = at::Tensor();
  }
};

namespace {

// Parameters share a bucket only when they reduce over the same group in the same dtype; under ZeRO-2
// the partition's parameters form buckets of their own (reduce-scattered, not all-reduced).
constexpr int kZeroBucketKey = 1 << 20;
int bucket_key(const SyncParam& p, bool zero) {
  if (zero) return kZeroBucketKey;
  const int group = p.placement.is_sharded() ? 1 + static_cast<int>(p.placement.group) : 0;
  return group * 1000 + static_cast<int>(p.param.scalar_type());
}

}  // namespace

GradSync::GradSync(std::vector<SyncParam> params, const ProcessGrid& grid, GradSyncOptions options)
    : state_(std::make_shared<State>()) {
  L4_CHECK(options.bucket_mb > 0, "gradient bucket size must be positive, got {} MB", options.bucket_mb);
  State& s = *state_;
  s.grid = &grid;
  s.options = options;
  s.params = std::move(params);
  // Index into the ZeRO partition of each parameter, -1 for those all-reduced.
  std::vector<int64_t> zero_index(s.params.size(), -1);
  if (options.shard_replicated_grads) {
    const ZeroPartition& zero = *options.shard_replicated_grads;
    L4_CHECK(zero.world_size() == grid.device().size() && zero.rank() == grid.device().rank(),
             "GradSync: the ZeRO partition is for rank {} of {}, the device channel is rank {} of {}",
             zero.rank(), zero.world_size(), grid.device().rank(), grid.device().size());
    size_t replicated = 0;
    for (size_t i = 0; i < s.params.size(); ++i) {
      const SyncParam& p = s.params[i];
      if (p.placement.is_sharded()) continue;
      L4_CHECK(replicated < zero.params().size() && zero.params()[replicated].is_same(p.param),
               "GradSync: replicated parameter '{}' is not the ZeRO partition's parameter {}", p.name, replicated);
      zero_index[i] = static_cast<int64_t>(replicated++);
    }
    L4_CHECK(replicated == zero.params().size(),
             "GradSync: {} replicated parameters, the ZeRO partition has {}", replicated,
             zero.params().size());
  }
  std::vector<BucketItem> items;
  for (size_t i = 0; i < s.params.size(); ++i) {
    const SyncParam& p = s.params[i];
    L4_CHECK(p.param.defined() && p.param.requires_grad(),
             "GradSync: parameter '{}' must be a tensor that requires grad", p.name);
    items.push_back({p.param.numel() * static_cast<int64_t>(p.param.element_size()), bucket_key(p, zero_index[i] >= 0)});
  }
  const auto bucket_bytes = static_cast<int64_t>(std::max(1.0, options.bucket_mb * 1024.0 * 1024.0));
  s.bucket_of.assign(s.params.size(), 0);
  // One list of buckets in the order backward fills them, all-reduced and reduce-scattered ones
  // interleaved: every rank launches them in this one order, so collectives on different communicators
  // can never be queued in different orders on two ranks (NCCL would deadlock).
  for (Bucket& spec : plan_buckets(items, bucket_bytes)) {
    State::BucketRun run;
    run.zero = spec.key == kZeroBucketKey;
    run.comm = run.zero ? &grid.device() : &grid.replica_group(s.params[spec.items.front()].placement);
    for (size_t i : spec.items) s.bucket_of[i] = s.buckets.size();
    if (run.zero) {
      const ZeroPartition& zero = *options.shard_replicated_grads;
      run.flat_order = spec.items;
      std::sort(run.flat_order.begin(), run.flat_order.end(),
                [&](size_t a, size_t b) { return zero_index[a] < zero_index[b]; });
      const auto first = static_cast<size_t>(zero_index[run.flat_order.front()]);
      const auto last = static_cast<size_t>(zero_index[run.flat_order.back()]);
      run.flat_begin = zero.param_offset(first);
      run.flat_end = zero.param_offset(last) + zero.params()[last].numel();
      L4_ASSERT(last - first + 1 == run.flat_order.size(), "a ZeRO-2 bucket must be a contiguous run of parameters");
      // The bucket holding the last parameter also carries the padding up to world * chunk.
      if (last + 1 == zero.params().size()) run.flat_end = zero.world_size() * zero.chunk();
      for (int r = 0; r < zero.world_size(); ++r) {
        const int64_t own_begin = r * zero.chunk(), own_end = own_begin + zero.chunk();
        const int64_t begin = std::max(run.flat_begin, own_begin), end = std::min(run.flat_end, own_end);
        run.counts.push_back(std::max<int64_t>(0, end - begin));
        if (r == zero.rank() && begin < end) run.shard_offset = begin - own_begin;
      }
    }
    run.spec = std::move(spec);
    s.buckets.push_back(std::move(run));
  }
  if (options.overlap) {
    // Post hooks on the gradient accumulators fire once the parameter's .grad holds this backward's sum
    // (the technique of PyTorch DDP's reducer). The hooks hold the state weakly: they go quiet if this
    // object dies before the parameters do.
    std::weak_ptr<State> weak = state_;
    for (size_t i = 0; i < s.params.size(); ++i) {
      auto accumulator = torch::autograd::impl::grad_accumulator(s.params[i].param);
      L4_CHECK(accumulator, "GradSync: parameter '{}' is not a leaf", s.params[i].name);
      const uintptr_t key = accumulator->add_post_hook(std::make_unique<ReadyHook>([weak, i] {
        auto state = weak.lock();
        if (!state || !state->armed) return;
        auto& run = state->buckets[state->bucket_of[i]];
        ++run.ready;
        state->launch_ready();
      }));
      s.hooks.emplace_back(accumulator, key);
    }
  }
}

GradSync::~GradSync() {
  for (auto& [accumulator, key] : state_->hooks) accumulator->del_post_hook(key);
}

at::Tensor GradSync::replicated_grad_shard() const {
  return state_->grad_shard;
}

size_t GradSync::num_buckets() const {
  return state_->buckets.size();
}
size_t GradSync::buckets_launched_in_backward() const {
  return state_->launched_in_backward;
}

void GradSync::prepare() {
  L4_CHECK(state_->options.overlap, "GradSync::prepare() is for overlap mode");
  state_->arm(/*zero_only=*/false);
}

void GradSync::prepare_micro_batch() {
  State& s = *state_;
  L4_CHECK(s.options.overlap && s.options.shard_replicated_grads,
           "GradSync::prepare_micro_batch() is for ZeRO-2 in overlap mode");
  s.arm(/*zero_only=*/true);
}

void GradSync::reduce_micro_batch() {
  State& s = *state_;
  L4_CHECK(s.options.shard_replicated_grads, "GradSync::reduce_micro_batch() is for ZeRO-2");
  L4_CHECK(!s.options.overlap || s.armed, "GradSync in overlap mode: call prepare_micro_batch() before backward");
  s.reduce(/*zero_only=*/true, s.options.overlap);
}

void GradSync::sync() {
  State& s = *state_;
  L4_CHECK(!s.options.overlap || s.armed, "GradSync in overlap mode: call prepare() before backward");
  s.reduce(/*zero_only=*/false, s.options.overlap);
  if (s.options.shard_replicated_grads) {
    if (s.options.reduction == GradReduction::kAverage) s.grad_shard.div_(s.grid->device().size());
    s.shard_open = false;  // the next step starts a fresh sum
  }
}

double GradSync::grad_norm() {
  State& s = *state_;
  at::NoGradGuard no_grad;
  // Squares summed per chunk of a gradient by ATen's cascaded sum (~1e-8 relative), the chunks' sums in
  // double, one host sync at the end. ATen's CPU norm kernels (_foreach_norm, linalg_vector_norm) add a
  // whole tensor in one float sequence: 6.5e-6 relative off at 655k elements, 1.3e-4 at 5M (measured), which
  // made the logged norm and the clipping scale depend on the tensor sizes (and so on the ZeRO-2 pieces).
  // The chunks bound the temporary squares; no full double copy of the gradients.
  auto sum_of_squares = [](const std::vector<at::Tensor>& grads) {
    constexpr int64_t kChunk = int64_t{1} << 22;
    std::vector<at::Tensor> partial;
    for (const at::Tensor& grad : grads) {
      const at::Tensor flat = grad.reshape(-1);
      for (int64_t begin = 0; begin < flat.numel(); begin += kChunk) {
        const at::Tensor chunk = flat.narrow(0, begin, std::min(kChunk, flat.numel() - begin)).to(at::kFloat);
        partial.push_back(chunk.square().sum().to(at::kDouble));
      }
    }
    return partial.empty() ? 0.0 : at::stack(partial).sum().cpu().item<double>();
  };
  std::vector<at::Tensor> replicated;
  std::map<ShardGroup, std::vector<at::Tensor>> sharded;
  for (const SyncParam& p : s.params) {
    if (!p.param.grad().defined()) continue;
    if (p.placement.is_sharded()) {
      sharded[p.placement.group].push_back(p.param.grad());
    } else {
      replicated.push_back(p.param.grad());
    }
  }
  // Replicated gradients are identical on every rank: count them locally, once. The shards of a group
  // differ across its ranks, which together hold every piece exactly once.
  double total = sum_of_squares(replicated);
  at::Device device = s.params.empty() ? at::Device(at::kCPU) : s.params.front().param.device();
  if (s.grad_shard.defined()) device = s.grad_shard.device();
  for (ShardGroup group : {ShardGroup::kExpertParallel}) {
    auto it = sharded.find(group);
    const double local = it == sharded.end() ? 0.0 : sum_of_squares(it->second);
    at::Tensor sq = at::full({1}, local, at::TensorOptions().dtype(at::kDouble).device(device));
    s.grid->shard_group(group).all_reduce(sq, ReduceOp::kSum);
    total += sq.to(at::kCPU).item<double>();
  }
  if (s.options.shard_replicated_grads) {
    // ZeRO-2: the chunks of the ranks are disjoint and together hold every replicated gradient once.
    // Summed per parameter piece, as whole gradients are above.
    std::vector<at::Tensor> pieces;
    if (s.grad_shard.defined()) {
      for (const auto& piece : s.options.shard_replicated_grads->pieces()) {
        pieces.push_back(s.grad_shard.narrow(0, piece.shard_offset, piece.length));
      }
    }
    const double local = sum_of_squares(pieces);
    at::Tensor sq = at::full({1}, local, at::TensorOptions().dtype(at::kDouble).device(device));
    s.grid->device().all_reduce(sq, ReduceOp::kSum);
    total += sq.to(at::kCPU).item<double>();
  }
  return std::sqrt(total);
}

double GradSync::clip_grad_norm(double max_norm) {
  L4_CHECK(max_norm > 0, "gradient clipping needs a positive max norm, got {}", max_norm);
  const double norm = grad_norm();
  const double scale = max_norm / (norm + 1e-6);
  if (scale < 1.0) {
    at::NoGradGuard no_grad;
    for (SyncParam& p : state_->params) {
      if (p.param.grad().defined()) p.param.mutable_grad().mul_(scale);
    }
    if (state_->grad_shard.defined()) state_->grad_shard.mul_(scale);
  }
  return norm;
}

}  // namespace l4::parallel
