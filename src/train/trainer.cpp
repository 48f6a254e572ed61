#include "train/trainer.h"

#include <ATen/autocast_mode.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>

#include <torch/csrc/autograd/profiler_legacy.h>

#include "checkpoint/state.h"
#include "checkpoint/training_checkpoint.h"
#include "core/error.h"
#include "core/launch_env.h"
#include "core/log.h"
#include "core/strings.h"
#include "core/timer.h"
#include "data/sharded_loader.h"
#include "model/build.h"
#include "model/chunked_loss.h"
#include "model/expert_parallel.h"
#include "model/loss.h"
#include "model/weight_cast.h"
#include "parallel/communicator.h"
#include "parallel/device_channel.h"
#include "parallel/failure.h"
#include "parallel/grad_sync.h"
#include "parallel/mpi_runtime.h"
#include "parallel/process_grid.h"
#include "parallel/zero_partition.h"
#include "restore/restore.h"
#include "train/collective_strings.h"
#include "train/exact_match.h"
#include "train/flops.h"
#include "train/gemm_probe.h"
#include "train/lr_schedule.h"
#include "train/memory_check.h"
#include "train/metrics_log.h"
#include "train/optimizer_setup.h"
#include "train/rng_state.h"
#include "train/run_identity.h"
#include "train/run_lock.h"
#include "train/signals.h"
#include "train/task_scores.h"
#include "train/training_state.h"
#include "vision/image_preprocess.h"

namespace l4::train {
namespace {

// bf16 compute for the forward pass; parameters and optimizer state stay in their own dtype (fp32).
class AutocastScope {
 public:
  AutocastScope(bool enabled, at::DeviceType device) : enabled_(enabled), device_(device) {
    if (!enabled_) return;
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_, false);
  }

 private:
  bool enabled_;
  at::DeviceType device_;
};

// The loader's tensors on the training device (the loader itself works on the CPU).
data::Batch to_device(const data::Batch& batch, at::Device device) {
  if (device.is_cpu()) return batch;
  data::Batch out = batch;
  for (at::Tensor* t : {&out.input_ids, &out.labels, &out.position_ids, &out.doc_ids, &out.task_ids,
                        &out.pixel_tiles, &out.patch_positions}) {
    if (t->defined()) *t = t->to(device, /*non_blocking=*/false);
  }
  return out;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// Test hook: L4_TEST_STALL=<rank>:<step>:<seconds> makes that rank sleep before that step, as a rank stuck
// outside the collectives would (the others then time out in the step's first collective).
void stall_for_tests(int rank, int64_t step) {
  static const char* spec = std::getenv("L4_TEST_STALL");
  if (spec == nullptr) return;
  int stall_rank = -1;
  long long stall_step = -1;
  double seconds = 0;
  if (std::sscanf(spec, "%d:%lld:%lf", &stall_rank, &stall_step, &seconds) != 3) return;
  if (rank == stall_rank && step == stall_step) ::sleep(static_cast<unsigned>(seconds));
}

struct StepResult {
  double loss = 0.0;      // token-weighted mean over the global batch
  double aux_loss = 0.0;  // router loss, averaged over micro-batches and ranks
  double grad_norm = 0.0;
  int64_t loss_tokens = 0;
  int64_t tokens = 0;  // rows x seq_len over the global batch
};

// Every collective says its channel: grid_.host() for control traffic in CPU tensors (stop agreement, loss
// totals, strings, checkpoint coordination), the grid's device channel (through GradSync and the expert
// exchange) for gradients and activations.
class Trainer {
 public:
  Trainer(const config::Recipe& recipe, const parallel::ProcessGrid& grid, const at::Device& device)
      : recipe_(recipe), grid_(grid), host_(grid.host()), device_(device), rng_(device) {}

  int run(const TrainerOptions& options) {
    const config::TrainSection& t = recipe_.train;
    L4_CHECK(t.global_batch % (t.micro_batch * host_.size()) == 0,
             "{}: train.global_batch={} must be a multiple of train.micro_batch={} x {} ranks",
             recipe_.source, t.global_batch, t.micro_batch, host_.size());
    // Before anything is allocated: a size that cannot fit this machine ends here, naming its keys.
    check_training_memory(recipe_, host_.size(), detect_launch_env().local_size, options.eval_only,
                          available_host_memory());
    torch::manual_seed(static_cast<uint64_t>(t.seed));
    model_ = model::build(recipe_.arch, restore::model_options(recipe_, grid_, device_));
    for (model::PlacedParam& p : model::trainable_parameters(*model_)) {
      trainable_.push_back({p.name, p.param, p.placement});
    }
    const auto names = param_names();
    settings_ = resolve_param_settings(names, recipe_.optimizer, recipe_.arch.text_config.num_hidden_layers);
    if (options.print_param_groups) {
      if (host_.rank() == 0) std::fputs(format_param_settings(settings_, recipe_.optimizer).c_str(), stdout);
      return 0;
    }
    std::shared_ptr<parallel::ZeroPartition> zero;
    ZeroSetup zero_setup;
    if (recipe_.optimizer.zero >= 1) {
      std::vector<at::Tensor> replicated;
      for (const NamedParam& p : trainable_) {
        if (!p.placement.is_sharded()) replicated.push_back(p.param);
      }
      zero = std::make_shared<parallel::ZeroPartition>(std::move(replicated), grid_.device().rank(),
                                                       grid_.device().size());
      zero_setup.partition = zero;
      zero_setup.comm = &grid_.device();
      if (recipe_.optimizer.zero >= 2)
        zero_setup.grad_shard = [this] { return grad_sync_->replicated_grad_shard(); };
    }
    optimizer_ = std::make_unique<OptimizerSetup>(trainable_, settings_, recipe_.optimizer.eps, zero_setup);
    parallel::GradSyncOptions sync_options;
    sync_options.bucket_mb = recipe_.parallel.bucket_mb;
    // Overlap needs every parameter to get a gradient on every rank; a rank whose experts receive no rows
    // leaves their LoRA tensors without one, so LoRA under expert parallelism syncs after backward.
    sync_options.overlap = recipe_.parallel.overlap_grad_sync &&
                           !(recipe_.lora.rank > 0 && recipe_.parallel.expert_parallel > 1);
    overlap_ = sync_options.overlap;
    sync_options.reduction = parallel::GradReduction::kSum;  // each rank's loss is already / global tokens
    if (recipe_.optimizer.zero >= 2) sync_options.shard_replicated_grads = zero;
    std::vector<parallel::SyncParam> sync;
    for (const NamedParam& p : trainable_) sync.push_back({p.name, p.param, p.placement});
    grad_sync_ = std::make_unique<parallel::GradSync>(std::move(sync), grid_, sync_options);
    if (options.eval_only) return evaluate_and_print();
    install_stop_signal_handlers();  // (again: main installs them first for `llama4 train`)
    take_run_locks();
    identity_ = run_identity(recipe_);
    loader_ = std::make_unique<data::ShardedLoader>(
        data::loader_options_from_recipe(recipe_, /*eval=*/false, host_.rank(), host_.size()));
    if (host_.rank() == 0) {
      metrics_ = std::make_unique<MetricsLog>(recipe_.logging.run_dir, recipe_.logging.tensorboard);
      peak_flops_ =
          recipe_.logging.peak_tflops > 0
              ? recipe_.logging.peak_tflops * 1e12
              : measure_gemm_peak_flops(t.precision == config::Precision::kBf16 ? "bfloat16" : "float32",
                                        device_.is_cpu() ? "cpu" : "cuda");
    }
    flops_per_token_ = training_flops_per_token(recipe_.arch, recipe_.data.seq_len);
    resume();
    return loop();
  }

 private:
  std::vector<std::string> param_names() const {
    std::vector<std::string> names;
    for (const auto& p : trainable_) names.push_back(p.name);
    return names;
  }

  // The model input of a loader batch: its image tiles go through the vision tower (early fusion).
  model::ModelInput model_input(const data::Batch& batch) {
    model::ModelInput input;
    input.input_ids = batch.input_ids;
    input.position_ids = batch.position_ids;
    input.doc_ids = batch.doc_ids;
    if (batch.pixel_tiles.defined() && batch.pixel_tiles.size(0) > 0) {
      L4_CHECK(model_->has_vision(),
               "the batch has {} image tiles but the model has no vision_config (use an architecture with a "
               "vision tower, or a text-only dataset)",
               batch.pixel_tiles.size(0));
      const int64_t image_size = model_->arch().vision_config->image_size;
      L4_CHECK(
          batch.pixel_tiles.size(2) == image_size && batch.pixel_tiles.size(3) == image_size,
          "{}: the dataset's image tiles are {}x{} pixels but the model's vision_config.image_size is {}",
          recipe_.data.train, batch.pixel_tiles.size(2), batch.pixel_tiles.size(3), image_size);
      // HF normalises in bf16 (the values the model was trained on); the tower casts to its own dtype.
      input.pixel_values = vision::normalize_tiles(batch.pixel_tiles);
    }
    return input;
  }

  // Sum and count of the batch's cross-entropy: through the chunked projection when train.loss_chunk_tokens
  // is positive (no [tokens, vocab] logits), else from the whole logits.
  model::LossSum loss_sum(const data::Batch& batch) {
    const int64_t chunk = recipe_.train.loss_chunk_tokens;
    if (chunk == 0) return model::cross_entropy_sum(model_->forward(model_input(batch)), batch.labels);
    return model::chunked_cross_entropy_sum(model_->hidden_states(model_input(batch)),
                                            model_->lm_head->weight, batch.labels, chunk);
  }

  // --- the loop -------------------------------------------------------------------------------------
  int loop() {
    const config::TrainSection& t = recipe_.train;
    const int64_t last = t.stop_at_step > 0 ? t.stop_at_step : t.steps;
    L4_LOG_INFO(
        "training steps {}..{} of {} on {} rank(s) ({}), expert_parallel={}, global batch {} x {} tokens",
        counters_.step + 1, last, t.steps, host_.size(), device_.str(), recipe_.parallel.expert_parallel,
        t.global_batch, recipe_.data.seq_len);
    Stopwatch run_clock;
    const double elapsed_before = counters_.elapsed_s;
    const int64_t first_step = counters_.step;
    while (counters_.step < last) {
      stall_for_tests(host_.rank(), counters_.step + 1);
      const bool stop = agree_to_stop();  // collective: once per iteration on every rank
      if (stop && counters_.step == first_step) {
        // Stopped during start-up: nothing was trained since the last checkpoint (if any), so there is
        // nothing to save; the next start resumes from where this one would have.
        L4_LOG_INFO(
            "stop requested before the first step (signal {}): exiting without a checkpoint, "
            "nothing trained since step {}",
            stop_signal(), counters_.step);
        if (host_.rank() == 0)
          std::printf("stopped before the first step (step %lld)\n", static_cast<long long>(counters_.step));
        return 0;
      }
      if (stop) {
        save();
        L4_LOG_INFO("preempted at step {} (checkpoint written)", counters_.step);
        if (host_.rank() == 0)
          std::printf("preempted at step %lld\n", static_cast<long long>(counters_.step));
        return 0;
      }
      const data::LoaderState before = loader_->state();
      const data::StepBatch batch = loader_->next_step();
      std::optional<torch::autograd::profiler::RecordProfile> profile;
      if (counters_.step + 1 == recipe_.logging.profile_step) {
        profile.emplace(fmt::format("{}/profile_step_{}_rank{}.json", recipe_.logging.run_dir,
                                    counters_.step + 1, host_.rank()));
      }
      Stopwatch step_clock;
      const double multiplier = lr_multiplier(recipe_.schedule, counters_.step, t.steps);
      optimizer_->set_lr_multiplier(multiplier);
      if (model_->expert_exchange()) model_->expert_exchange()->reset_stats();
      StepResult result = forward_backward(batch);
      if (!std::isfinite(result.loss) || !std::isfinite(result.grad_norm)) {
        optimizer_->zero_grad();
        if (t.on_nan == config::OnNan::kStop) {
          loader_->load_state(before);  // the checkpoint is the last good state, before this batch
          save();
          L4_FAIL(
              "non-finite {} at step {} (loss {}, grad norm {}); checkpoint of the last good state written",
              std::isfinite(result.loss) ? "gradient" : "loss", counters_.step + 1, result.loss,
              result.grad_norm);
        }
        ++counters_.skipped_steps;
        L4_LOG_WARN("step {}: non-finite loss or gradient, update skipped (train.on_nan: skip)",
                    counters_.step + 1);
        ++counters_.step;
        continue;
      }
      optimizer_->step();
      optimizer_->zero_grad();
      if (!state_bytes_logged_) log_optimizer_state_bytes();
      ++counters_.step;
      const double step_time = step_clock.seconds();
      profile.reset();  // writes the trace
      counters_.tokens_seen += result.tokens;
      counters_.elapsed_s = elapsed_before + run_clock.seconds();
      std::vector<std::pair<std::string, double>> values = {
          {"loss", result.loss},
          {"lr", recipe_.optimizer.lr * multiplier},
          {"grad_norm", result.grad_norm},
          {"tokens", static_cast<double>(result.tokens)},
          {"tokens_per_s", result.tokens / step_time},
          {"mfu", peak_flops_ > 0
                      ? result.tokens / step_time * flops_per_token_ / (peak_flops_ * host_.size())
                      : 0.0},
          {"step_time_s", step_time},
          {"elapsed_s", counters_.elapsed_s}};
      if (recipe_.train.aux_loss_coef > 0 || recipe_.train.z_loss_coef > 0)
        values.push_back({"aux_loss", result.aux_loss});
      if (model_->expert_exchange() && recipe_.parallel.capacity_factor > 0) {
        const parallel::DispatchStats drops =
            parallel::sum_over_ranks(model_->expert_exchange()->stats(), host_);
        values.push_back({"expert_drop_rate", drops.drop_rate()});
      }
      const int64_t step = counters_.step;
      if (t.eval_every > 0 && step % t.eval_every == 0) add_eval(values);
      if (step % recipe_.logging.every == 0 || step == last) log_step(values, step_time);
      if (recipe_.checkpoint.every > 0 && step % recipe_.checkpoint.every == 0 && step < last) save();
    }
    if (t.stop_at_step > 0 && t.stop_at_step < t.steps) {
      save();
      L4_LOG_INFO("stopped at step {} (train.stop_at_step), checkpoint written", counters_.step);
      return 0;
    }
    if (t.eval_every == 0 && !recipe_.data.eval.empty()) {
      std::vector<std::pair<std::string, double>> values;
      add_eval(values);
      if (metrics_) metrics_->log(counters_.step, values);
    }
    save();
    L4_LOG_INFO("done: {} steps, {} tokens in {}", counters_.step, counters_.tokens_seen,
                format_duration(counters_.elapsed_s));
    return 0;
  }

  StepResult forward_backward(const data::StepBatch& batch) {
    StepResult result;
    const double denominator = static_cast<double>(std::max<int64_t>(1, batch.global_loss_tokens));
    const size_t micro_steps = batch.micro.size();
    const double aux_weight = 1.0 / static_cast<double>(std::max<size_t>(1, micro_steps) * host_.size());
    double local_loss_sum = 0.0, local_aux = 0.0;
    model_->train();
    // One compute-dtype copy of each weight for every micro-batch and recompute of this step; closed before
    // the optimizer changes the weights.
    std::optional<model::WeightCastScope> casts(std::in_place);
    for (size_t i = 0; i < micro_steps; ++i) {
      const data::Batch micro = to_device(batch.micro[i], device_);
      at::Tensor loss;
      {
        AutocastScope autocast(recipe_.train.precision == config::Precision::kBf16, device_.type());
        const model::LossSum sums = loss_sum(micro);
        local_loss_sum += sums.sum.item<double>();
        loss = sums.sum / denominator;
        const at::Tensor aux = model_->router_loss();
        if (aux.defined()) {
          local_aux += aux.item<double>() * aux_weight;
          loss = loss + aux * aux_weight;
        }
      }
      const bool last = i + 1 == micro_steps;
      // ZeRO-2 reduce-scatters the replicated gradients after every micro-batch (their full size never
      // accumulates); the rest accumulate in .grad until the last one.
      const bool zero2 = recipe_.optimizer.zero >= 2;
      if (overlap_ && last) grad_sync_->prepare();
      if (overlap_ && !last && zero2) grad_sync_->prepare_micro_batch();
      loss.backward();
      if (!last && zero2) grad_sync_->reduce_micro_batch();
    }
    casts.reset();
    grad_sync_->sync();
    at::Tensor totals = at::tensor({local_loss_sum, local_aux}, at::kDouble);
    host_.all_reduce(totals, parallel::ReduceOp::kSum);
    result.loss = totals[0].item<double>() / denominator;
    result.aux_loss = totals[1].item<double>();
    result.loss_tokens = batch.global_loss_tokens;
    result.tokens = batch.global_rows * recipe_.data.seq_len;
    result.grad_norm = recipe_.train.grad_clip > 0 ? grad_sync_->clip_grad_norm(recipe_.train.grad_clip)
                                                   : grad_sync_->grad_norm();
    return result;
  }

  bool agree_to_stop() {
    at::Tensor flag = at::full({1}, stop_requested() ? 1 : 0, at::kLong);
    host_.all_reduce(flag, parallel::ReduceOp::kMax);  // a signal on any rank stops every rank
    return flag.item<int64_t>() > 0;
  }

  void log_step(const std::vector<std::pair<std::string, double>>& values, double step_time) {
    if (!metrics_) return;
    const int64_t step = counters_.step;
    metrics_->log(step, values);
    auto get = [&](const char* key) {
      for (const auto& [k, v] : values) {
        if (k == key) return v;
      }
      return std::nan("");
    };
    const int64_t last = recipe_.train.stop_at_step > 0 ? recipe_.train.stop_at_step : recipe_.train.steps;
    std::string line =
        fmt::format("step {}/{} | loss {:.4f} | lr {:.2e} | grad {:.3f} | {:.0f} tok/s | mfu {:.1f}%", step,
                    recipe_.train.steps, get("loss"), get("lr"), get("grad_norm"), get("tokens_per_s"),
                    100.0 * get("mfu"));
    if (std::isfinite(get("eval_loss"))) line += fmt::format(" | eval {:.4f}", get("eval_loss"));
    line += " | eta " + format_duration((last - step) * step_time);
    if (::isatty(STDOUT_FILENO)) {
      const int width = 20, done = static_cast<int>(width * step / std::max<int64_t>(1, last));
      std::printf("\r[%s%s] %s", std::string(done, '#').c_str(), std::string(width - done, '.').c_str(),
                  line.c_str());
      if (step == last) std::printf("\n");
      std::fflush(stdout);
    } else {
      L4_LOG_INFO("{}", line);
    }
  }

  // --- evaluation -----------------------------------------------------------------------------------
  int evaluate_and_print() {
    L4_CHECK(!recipe_.data.eval.empty(), "{}: data.eval is empty: nothing to evaluate", recipe_.source);
    resume();
    const EvalResult result = evaluate();
    if (host_.rank() == 0) {
      std::printf("step %lld  eval_loss %.6f  eval_ppl %.4f  exact_match %.4f\n",
                  static_cast<long long>(counters_.step), result.loss, std::exp(result.loss),
                  result.exact_match);
      for (const TaskScore& task : result.tasks) {
        std::printf("  task %-24s eval_loss %.6f  exact_match %.4f  documents %lld  tokens %lld\n",
                    task.name.c_str(), task.loss, task.exact_match, static_cast<long long>(task.documents),
                    static_cast<long long>(task.tokens));
      }
    }
    return 0;
  }

  void add_eval(std::vector<std::pair<std::string, double>>& values) {
    if (recipe_.data.eval.empty()) return;
    const EvalResult result = evaluate();
    values.push_back({"eval_loss", result.loss});
    values.push_back({"eval_ppl", std::exp(result.loss)});
    values.push_back({"eval_exact_match", result.exact_match});
    if (result.tasks.size() > 1) {
      for (const TaskScore& task : result.tasks) {
        values.push_back({"eval_loss/" + task.name, task.loss});
        values.push_back({"eval_exact_match/" + task.name, task.exact_match});
      }
    }
  }

  struct EvalResult {
    double loss = 0.0;
    double exact_match = 0.0;      // fraction of documents whose every target token is predicted exactly
    std::vector<TaskScore> tasks;  // the same per task of the eval data
  };

  EvalResult evaluate() {
    ExactMatchCounter exact;
    data::ShardedLoader eval_loader(
        data::loader_options_from_recipe(recipe_, /*eval=*/true, host_.rank(), host_.size()));
    TaskScores per_task(eval_loader.task_names());
    torch::NoGradGuard no_grad;
    const model::WeightCastScope casts;  // the weights do not change during evaluation
    model_->eval();
    double loss_sum = 0.0;
    int64_t tokens = 0;
    for (int64_t b = 0; recipe_.train.eval_batches == 0 || b < recipe_.train.eval_batches; ++b) {
      const data::StepBatch batch = eval_loader.next_step();
      if (batch.end_of_data) break;
      // Agreed before any forward: the MoE exchanges inside a forward need every rank of the group.
      const int64_t forwards = expert_exchange_forwards(static_cast<int64_t>(batch.micro.size()));
      for (const auto& cpu_micro : batch.micro) {
        const data::Batch micro = to_device(cpu_micro, device_);
        AutocastScope autocast(recipe_.train.precision == config::Precision::kBf16, device_.type());
        const int64_t chunk = recipe_.train.loss_chunk_tokens;
        if (chunk == 0) {
          const at::Tensor logits = model_->forward(model_input(micro));
          const model::LossSum sums = model::cross_entropy_sum(logits, micro.labels);
          loss_sum += sums.sum.item<double>();
          tokens += sums.count.item<int64_t>();
          exact.add(logits, micro.labels, micro.doc_ids);
          per_task.add(logits, micro.labels, micro.doc_ids, micro.task_ids);
        } else {
          const model::ChunkedEval chunked = model::chunked_cross_entropy_eval(
              model_->hidden_states(model_input(micro)), model_->lm_head->weight, micro.labels, chunk);
          loss_sum += chunked.loss.sum.item<double>();
          tokens += chunked.loss.count.item<int64_t>();
          exact.add_predictions(chunked.predictions, micro.labels, micro.doc_ids);
          per_task.add_tokens(chunked.token_nll, chunked.predictions, micro.labels, micro.doc_ids,
                              micro.task_ids);
        }
      }
      run_padding_forwards(forwards - static_cast<int64_t>(batch.micro.size()));
    }
    at::Tensor totals = at::tensor({loss_sum, static_cast<double>(tokens)}, at::kDouble);
    host_.all_reduce(totals, parallel::ReduceOp::kSum);
    model_->train();
    return {totals[0].item<double>() / std::max(1.0, totals[1].item<double>()), exact.accuracy(host_),
            per_task.result(host_)};
  }

  // The last eval batch may be short, leaving ranks with different numbers of micro-batches (a rank may
  // get none). The MoE layers' exchanges are collectives over the expert-parallel group, so every rank
  // must run as many forwards, side by side: the most micro-batches of any rank is agreed on first, and
  // ranks with fewer run discarded forwards of one padding row after their own. Without exchanges each
  // rank runs its own.
  int64_t expert_exchange_forwards(int64_t micro_batches) {
    if (!model_->expert_exchange()) return micro_batches;
    at::Tensor most = at::full({1}, micro_batches, at::kLong);
    host_.all_reduce(most, parallel::ReduceOp::kMax);
    return most.item<int64_t>();
  }

  void run_padding_forwards(int64_t count) {
    if (count <= 0) return;
    L4_LOG_DEBUG("eval: {} padding forward(s) to match the other ranks' expert exchanges", count);
    const int64_t pad_id = recipe_.arch.text_config.pad_token_id.value_or(0);
    for (int64_t i = 0; i < count; ++i) {
      AutocastScope autocast(recipe_.train.precision == config::Precision::kBf16, device_.type());
      model_->forward(
          at::full({1, recipe_.data.seq_len}, pad_id, at::TensorOptions(at::kLong).device(device_)));
    }
  }

  // Once per run, after the first update (when the state exists): AdamW state (and fp32 master) bytes per
  // rank, which ZeRO shards (collective on the host channel).
  void log_optimizer_state_bytes() {
    state_bytes_logged_ = true;
    at::Tensor bytes = at::full({1}, optimizer_->state_bytes(), at::kLong);
    at::Tensor most = bytes.clone();
    host_.all_reduce(bytes, parallel::ReduceOp::kMin);
    host_.all_reduce(most, parallel::ReduceOp::kMax);
    L4_LOG_INFO("optimizer state (optimizer.zero={}): {} to {} bytes per rank", recipe_.optimizer.zero,
                bytes.item<int64_t>(), most.item<int64_t>());
  }

  // --- checkpoints ---------------------------------------------------------------------------------
  // The components of a checkpoint, in a fixed order (model tensors, optimizer, loader, RNG, counters).
  std::vector<checkpoint::Stateful*> components() {
    model_state_ = std::make_unique<restore::ModelState>(*model_);
    loader_state_ = std::make_unique<LoaderComponent>(loader_.get());
    return {model_state_.get(), optimizer_.get(), loader_state_.get(), &rng_, &counters_};
  }

  void save() {
    if (recipe_.checkpoint.dir.empty()) return;
    checkpoint::StateWriter writer([this](const parallel::Placement& p) { return grid_.first_replica(p); });
    for (const checkpoint::Stateful* component : components()) component->save_state(writer);
    checkpoint::SaveRequest request;
    request.dir = recipe_.checkpoint.dir;
    request.step = counters_.step;
    request.keep_last = recipe_.checkpoint.keep_last;
    request.layout = {{"world_size", host_.size()},
                      {"expert_parallel", recipe_.parallel.expert_parallel},
                      {"arch", config::model_arch_to_yaml(recipe_.arch)}};
    request.config_yaml = config::recipe_to_yaml(recipe_);
    request.identity = identity_;
    writer.fill(request);
    checkpoint::SaveCollective collective;
    collective.rank = host_.rank();
    collective.world_size = host_.size();
    collective.barrier = [this] { host_.barrier(); };
    collective.gather_to_root = [this](const std::string& s) {
      std::vector<std::string> all = all_gather_strings(host_, s);
      return host_.rank() == 0 ? all : std::vector<std::string>{};
    };
    const int64_t bytes = state_bytes(request.pieces);
    const Stopwatch clock;
    const std::string path = checkpoint::save_checkpoint(request, collective);
    // Collective: computed on every rank, whichever ranks log.
    const std::string rate = throughput_per_rank(bytes, clock.seconds());
    L4_LOG_INFO("checkpoint {} written: {}", path, rate);
  }

  static int64_t state_bytes(const std::vector<checkpoint::TensorPiece>& pieces) {
    int64_t bytes = 0;
    for (const auto& piece : pieces) bytes += static_cast<int64_t>(piece.tensor.nbytes());
    return bytes;
  }

  // "0.84 GB in 1.20 s (0.70 GB/s in all; 0.33-0.36 GB/s per rank with data)": the tensor bytes of a
  // checkpoint the ranks write or read, over the slowest rank's time for the whole save or load (CRCs, fsync
  // and barriers included), and the range of the per-rank rates of the ranks that have bytes. Collective on
  // the host channel: call it on every rank, outside a log statement (ranks that do not log skip its
  // arguments).
  std::string throughput_per_rank(int64_t bytes, double seconds) {
    const auto opts = at::TensorOptions().dtype(at::kDouble);
    const double rate = static_cast<double>(bytes) / std::max(seconds, 1e-9);
    at::Tensor total = at::full({1}, static_cast<double>(bytes), opts);
    at::Tensor slowest = at::tensor({seconds, bytes > 0 ? rate : 0.0}, opts);
    at::Tensor lowest = at::full({1}, bytes > 0 ? rate : std::numeric_limits<double>::max(), opts);
    host_.all_reduce(total, parallel::ReduceOp::kSum);
    host_.all_reduce(slowest, parallel::ReduceOp::kMax);
    host_.all_reduce(lowest, parallel::ReduceOp::kMin);
    constexpr double kGB = 1e9;
    const double all = total.item<double>(), time = slowest[0].item<double>();
    if (all <= 0) return "no tensor bytes";
    return fmt::format("{:.3f} GB in {:.2f} s ({:.2f} GB/s in all; {:.2f}-{:.2f} GB/s per rank with data)", all / kGB,
                       time, all / kGB / std::max(time, 1e-9), lowest.item<double>() / kGB,
                       slowest[1].item<double>() / kGB);
  }

  // Rank 0 takes the run and checkpoint directories; the other ranks wait for its verdict.
  void take_run_locks() {
    std::string refusal;
    if (host_.rank() == 0) {
      try {
        run_locks_.acquire(recipe_.logging.run_dir);
        run_locks_.acquire(recipe_.checkpoint.dir);
      } catch (const Error& e) {
        refusal = e.what();
      }
    }
    refusal = broadcast_string(host_, refusal);
    if (!refusal.empty()) throw Error(refusal);
  }

  void resume() {
    // Every rank resumes from the checkpoint rank 0 picks (training checks it belongs to this run).
    std::string path, refusal;
    bool weights_only = false;
    if (host_.rank() == 0) {
      try {
        const ResumeChoice choice = loader_ ? choose_resume(recipe_, identity_)
                                            : ResumeChoice{restore::resume_path(recipe_.checkpoint)};
        path = choice.path;
        weights_only = choice.weights_only;
        if (weights_only) {
          L4_LOG_WARN(
              "checkpoint.resume_mode: weights_only: {} was saved by another run ({}); starting a NEW run "
              "at step 0 from its model weights, with a fresh optimizer and data position",
              path, join(choice.differences, "; "));
        }
      } catch (const Error& e) {
        refusal = e.what();
      }
    }
    refusal = broadcast_string(host_, refusal);
    if (!refusal.empty()) throw Error(refusal);
    path = broadcast_string(host_, path);
    if (path.empty()) return;
    weights_only = broadcast_string(host_, weights_only ? "1" : "") == "1";
    const Stopwatch clock;
    // Rank 0 verified the whole checkpoint when it picked it (checkpoint.resume: auto); each rank then reads
    // and CRC-checks only the pieces it loads (an explicitly named checkpoint is checked that way only),
    // instead of every rank reading every rank's files.
    const checkpoint::Checkpoint ckpt =
        restore::open_checkpoint(path, &recipe_.arch, checkpoint::Verify::kMetadata);
    const checkpoint::StateReader reader(ckpt, host_.rank(), host_.size());
    if (weights_only) {
      const std::vector<std::string> skipped = restore::load_matching_weights(reader, *model_);
      L4_LOG_WARN(
          "weights_only: loaded the model tensors of {} present in both runs; {} left as initialised{}{}",
          ckpt.path, skipped.size(), skipped.empty() ? "" : ": ", join(skipped, ", "));
      return;
    }
    for (checkpoint::Stateful* component : components()) component->load_state(reader);
    const std::string rate = throughput_per_rank(ckpt.bytes_read, clock.seconds());  // collective
    L4_LOG_INFO("resumed from {} (step {}, saved on {} rank(s)): {}", ckpt.path,
                counters_.step, ckpt.manifest.value("world_size", 0), rate);
  }

  const config::Recipe& recipe_;
  const parallel::ProcessGrid& grid_;
  parallel::Communicator& host_;
  const at::Device device_;
  model::Llama4 model_{nullptr};
  std::vector<NamedParam> trainable_;  // in named_parameters() order, with placements
  std::vector<ParamSetting> settings_;
  std::unique_ptr<OptimizerSetup> optimizer_;
  std::unique_ptr<parallel::GradSync> grad_sync_;
  bool state_bytes_logged_ = false;
  std::unique_ptr<data::ShardedLoader> loader_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<restore::ModelState> model_state_;
  std::unique_ptr<LoaderComponent> loader_state_;
  RngState rng_;
  TrainingCounters counters_;
  RunLocks run_locks_;       // released when the trainer ends, whichever way
  nlohmann::json identity_;  // what this run trains: saved with every checkpoint, compared on resume
  bool overlap_ = false;     // gradient all-reduce overlapped with backward
  double peak_flops_ = 0.0;
  double flops_per_token_ = 0.0;
};

}  // namespace

int run_training(const config::Recipe& recipe, const TrainerOptions& options) {
  parallel::DistributedOptions distributed;
  distributed.collective_timeout_s = recipe.parallel.timeout_s;
  distributed.roll_call_dir = recipe.logging.run_dir + "/.collectives";
  parallel::Communicator& host = parallel::init_distributed(distributed).world();
  int exit_code = 0;
  parallel::run_or_abort(host, [&] {
    // One rank per device: the GPU is the local rank's; its collectives go over NCCL, control over MPI.
    const at::Device device = parallel::rank_device(recipe.train.device, detect_launch_env(), recipe.source);
    const parallel::ProcessGrid grid(host, parallel::make_device_channel(host, device),
                                     static_cast<int>(recipe.parallel.expert_parallel),
                                     recipe.arch.text_config.num_local_experts);
    exit_code = run_training(recipe, grid, device, options);
  });
  return exit_code;
}

int run_training(const config::Recipe& recipe, const parallel::ProcessGrid& grid, const at::Device& device,
                 const TrainerOptions& options) {
  return Trainer(recipe, grid, device).run(options);
}

}  // namespace l4::train
