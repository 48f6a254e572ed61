// A training / fine-tuning recipe (one YAML file per run), see README "Configuration".
// Paths are taken relative to the current directory, as torchtune and torchtitan do.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/model_arch.h"
#include "config/options.h"
#include "config/yaml_document.h"

namespace l4::config {

struct ModelSection {
  std::string config;  // configs/*.yaml or an HF config.json: the architecture
  std::string hf_dir;  // HF model directory: architecture and initial weights
  std::string init;    // HF model directory whose weights initialise the model (architecture from `config`)
  DType dtype = DType::kFloat32;  // parameter storage dtype
  bool freeze_vision = false;
  // Inline architecture (alternative to `config`), in the configs/*.yaml layout.
  template <class V>
  void visit(V& v) {
    v("config", config);
    v("hf_dir", hf_dir);
    v("init", init);
    v("dtype", dtype);
    v("freeze_vision", freeze_vision);
    v.skip("text_config");            // inline architecture, read by load_recipe
    v.skip("text_config_overrides");  // text_config keys changed on top of `config` / `hf_dir`
    v.skip("vision_config");
    v.skip("boi_token_index");
    v.skip("eoi_token_index");
    v.skip("image_token_index");
  }
};

struct TokenizerSection {
  std::string path;  // tokenizer.model, tokenizer.json or a directory holding one
  template <class V>
  void visit(V& v) {
    v("path", path);
  }
};

struct DataSection {
  std::vector<std::string> sources;       // raw inputs for `llama4 prepare --config`
  std::string format = "auto";            // auto | text | jsonl | chat | parquet
  std::string train;                      // prepared dataset directory
  std::string eval;                       // prepared eval dataset directory (optional)
  std::vector<std::string> eval_sources;  // raw inputs held out whole: every record goes to `eval`
  double eval_fraction = 0.05;            // share of records hashed into the eval split by prepare
  int64_t seq_len = 512;
  bool pack = true;
  bool shuffle = true;
  bool skip_bad_records = false;
  int64_t prefetch = 2;  // batches kept ready by the loader thread

  int64_t text_doc_bytes = 2048;       // text: a document ends at the first line end after this many bytes
  std::string train_on = "assistant";  // assistant | all | last_turn: conversation tokens that are targets
  std::string overlong = "split";      // split | truncate | drop: documents longer than seq_len
  template <class V>
  void visit(V& v) {
    v("sources", sources);
    v("format", format);
    v("train", train);
    v("eval", eval);
    v("eval_sources", eval_sources);
    v("eval_fraction", eval_fraction);
    v("seq_len", seq_len);
    v("pack", pack);
    v("shuffle", shuffle);
    v("skip_bad_records", skip_bad_records);
    v("prefetch", prefetch);
    v("text_doc_bytes", text_doc_bytes);
    v("train_on", train_on);
    v("overlong", overlong);
  }
};

struct ParallelSection {
  int64_t expert_parallel = 1;   // experts sharded over groups of this many consecutive ranks
  double capacity_factor = 0.0;  // 0 = dropless; > 0 drops tokens beyond capacity deterministically
  double bucket_mb = 25.0;       // gradient all-reduce bucket size
  bool overlap_grad_sync = true;
  double timeout_s = 600.0;  // collective timeout before the job is aborted
  template <class V>
  void visit(V& v) {
    v("expert_parallel", expert_parallel);
    v("capacity_factor", capacity_factor);
    v("bucket_mb", bucket_mb);
    v("overlap_grad_sync", overlap_grad_sync);
    v("timeout_s", timeout_s);
  }
};

struct LoraSection {
  int64_t rank = 0;  // 0 disables LoRA (full fine-tune / pretraining)
  double alpha = 16.0;
  double dropout = 0.0;
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
  bool rslora = false;                 // scale alpha / sqrt(rank) instead of alpha / rank
  DType base_dtype = DType::kFloat32;  // frozen base weights
  template <class V>
  void visit(V& v) {
    v("rank", rank);
    v("alpha", alpha);
    v("dropout", dropout);
    v("targets", targets);
    v("rslora", rslora);
    v("base_dtype", base_dtype);
  }
};

struct ParamGroupRule {
  std::string match;  // glob over parameter names ("*.router.*")
  std::optional<double> lr;
  std::optional<double> lr_scale;
  std::optional<double> weight_decay;
  std::vector<double> betas;  // empty: the optimizer's
  template <class V>
  void visit(V& v) {
    v("match", match);
    v("lr", lr);
    v("lr_scale", lr_scale);
    v("weight_decay", weight_decay);
    v("betas", betas);
  }
};

struct OptimizerSection {
  double lr = 3e-4;
  std::vector<double> betas = {0.9, 0.95};
  double eps = 1e-8;
  double weight_decay = 0.1;
  double layer_decay = 1.0;  // lr_i = lr * layer_decay^(num_layers - i); embed i=0, head i=num_layers
  std::vector<ParamGroupRule> param_groups;  // first match wins, applied after layer_decay
  // ZeRO stage over the data-parallel ranks: 0 off; 1 shards the AdamW state of the replicated parameters;
  // 2 also reduce-scatters their gradients. Expert shards keep their state as without ZeRO.
  int64_t zero = 0;
  template <class V>
  void visit(V& v) {
    v("lr", lr);
    v("betas", betas);
    v("eps", eps);
    v("weight_decay", weight_decay);
    v("layer_decay", layer_decay);
    v("zero", zero);
    v.list("param_groups", param_groups);
  }
};

struct ScheduleSection {
  int64_t warmup_steps = 0;
  Decay decay = Decay::kCosine;
  double min_lr_ratio = 0.1;
  template <class V>
  void visit(V& v) {
    v("warmup_steps", warmup_steps);
    v("decay", decay);
    v("min_lr_ratio", min_lr_ratio);
  }
};

struct TrainSection {
  int64_t steps = 100;
  int64_t global_batch = 8;  // rows per optimizer step over all ranks
  int64_t micro_batch = 4;   // rows per forward/backward on one rank
  double grad_clip = 1.0;    // global L2 norm; 0 disables
  int64_t seed = 1234;
  int64_t eval_every = 0;    // 0: only at the end
  int64_t eval_batches = 0;  // 0: the whole eval split
  Precision precision = Precision::kFp32;
  DeviceKind device = DeviceKind::kCpu;
  OnNan on_nan = OnNan::kStop;
  int64_t stop_at_step = 0;    // > 0: checkpoint and end after this step (schedule still uses steps)
  double aux_loss_coef = 0.0;  // switch-style router load-balancing loss
  double z_loss_coef = 0.0;    // router z-loss
  // Tokens per cross-entropy chunk: only one chunk's [tokens, vocab] logits exist at a time (forward and
  // backward); 0 projects the whole batch to logits at once.
  int64_t loss_chunk_tokens = 1024;
  ActivationCheckpointing activation_checkpointing = ActivationCheckpointing::kNone;
  // true: start even when the memory estimate exceeds what the machine offers (train/memory_check.h).
  bool skip_memory_check = false;
  template <class V>
  void visit(V& v) {
    v("steps", steps);
    v("global_batch", global_batch);
    v("micro_batch", micro_batch);
    v("grad_clip", grad_clip);
    v("seed", seed);
    v("eval_every", eval_every);
    v("eval_batches", eval_batches);
    v("precision", precision);
    v("device", device);
    v("on_nan", on_nan);
    v("stop_at_step", stop_at_step);
    v("aux_loss_coef", aux_loss_coef);
    v("z_loss_coef", z_loss_coef);
    v("loss_chunk_tokens", loss_chunk_tokens);
    v("activation_checkpointing", activation_checkpointing);
    v("skip_memory_check", skip_memory_check);
  }
};

struct CheckpointSection {
  std::string dir;
  int64_t every = 0;  // 0: only at the end and on signals
  int64_t keep_last = 3;
  std::string resume = "auto";  // auto | none | <path to step_N directory>
  // strict: a checkpoint of another run (base model, LoRA, data) is refused; weights_only: its model tensors
  // present in both start a new run (fresh optimizer, data position, step 0).
  std::string resume_mode = "strict";
  template <class V>
  void visit(V& v) {
    v("dir", dir);
    v("every", every);
    v("keep_last", keep_last);
    v("resume", resume);
    v("resume_mode", resume_mode);
  }
};

struct LoggingSection {
  std::string run_dir = "runs/default";
  int64_t every = 1;
  bool tensorboard = true;
  LogLevel level = LogLevel::kInfo;
  double peak_tflops = 0.0;  // per-rank peak for MFU; 0 measures it with a short GEMM probe at start
  int64_t profile_step = 0;  // > 0: LibTorch profiler trace of this step, <run_dir>/profile_step_N_rankR.json
  template <class V>
  void visit(V& v) {
    v("run_dir", run_dir);
    v("every", every);
    v("tensorboard", tensorboard);
    v("level", level);
    v("peak_tflops", peak_tflops);
    v("profile_step", profile_step);
  }
};

struct Recipe {
  ModelSection model;
  TokenizerSection tokenizer;
  DataSection data;
  ParallelSection parallel;
  LoraSection lora;
  OptimizerSection optimizer;
  ScheduleSection schedule;
  TrainSection train;
  CheckpointSection checkpoint;
  LoggingSection logging;

  // Resolved architecture (from model.config, model.hf_dir, or inline model.text_config).
  ModelArch arch;
  std::string source;  // recipe file

  template <class V>
  void visit(V& v) {
    v.section("model", model);
    v.section("tokenizer", tokenizer);
    v.section("data", data);
    v.section("parallel", parallel);
    v.section("lora", lora);
    v.section("optimizer", optimizer);
    v.section("schedule", schedule);
    v.section("train", train);
    v.section("checkpoint", checkpoint);
    v.section("logging", logging);
  }
};

// Loads a recipe, applies "a.b=v" overrides, resolves the architecture and validates everything.
// All problems are reported together in one l4::Error, each as "location: key.path: problem".
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text (a checkpoint's config snapshot); `origin` names it in messages.
Recipe parse_recipe(const std::string& yaml, const std::string& origin,
                    const std::vector<std::string>& overrides = {});

// The fully resolved recipe (defaults included) as YAML, architecture inlined under model.arch.
std::string recipe_to_yaml(const Recipe& recipe);

}  // namespace l4::config
