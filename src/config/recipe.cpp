#include "config/recipe.h"

#include <algorithm>
#include <cmath>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/file_io.h"
#include "core/strings.h"

namespace l4::config {
namespace {

class Checker {
 public:
  Checker(const YamlDocument& doc, ConfigErrors& errors) : doc_(doc), errors_(errors) {}

  void require(bool ok, const std::string& key, const std::string& problem) {
    if (!ok) errors_.add(doc_.location(key), key, problem);
  }
  void one_of(const std::string& value, const std::vector<std::string>& allowed, const std::string& key) {
    if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
    require(false, key,
            fmt::format("expected one of {}, got '{}'{}", join(allowed, ", "), value,
                        did_you_mean(value, allowed)));
  }
  void positive(double value, const std::string& key) {
    require(value > 0, key, fmt::format("must be > 0, got {}", value));
  }
  void non_negative(double value, const std::string& key) {
    require(value >= 0, key, fmt::format("must be >= 0, got {}", value));
  }
  void betas(const std::vector<double>& values, const std::string& key, bool allow_empty) {
    if (allow_empty && values.empty()) return;
    bool ok = values.size() == 2;
    for (double b : values) ok = ok && b >= 0 && b < 1;
    require(ok, key, fmt::format("expected two numbers in [0, 1), got [{}]", fmt::join(values, ", ")));
  }

 private:
  const YamlDocument& doc_;
  ConfigErrors& errors_;
};

// The image token ids of an inline multimodal architecture (model.image_token_index, ...).
struct InlineImageTokens {
  ModelArch* arch;
  template <class V>
  void visit(V& v) {
    v("boi_token_index", arch->boi_token_index);
    v("eoi_token_index", arch->eoi_token_index);
    v("image_token_index", arch->image_token_index);
  }
};

// Loads the architecture named by the model section into recipe.arch; problems go to `errors`.
void resolve_arch(Recipe& recipe, const YamlDocument& doc, ConfigErrors& errors) {
  const ModelSection& m = recipe.model;
  if (doc.has("model.text_config")) {
    if (doc.has("model.text_config_overrides")) {
      errors.add(doc.location("model.text_config_overrides"), "model.text_config_overrides",
                 "changes the architecture of model.config or model.hf_dir; with an inline text_config, "
                 "write the values there");
    }
    ModelArch& arch = recipe.arch;
    doc.subdocument("model.text_config").read(arch.text_config, errors, Strictness::kStrict);
    if (doc.has("model.vision_config")) {
      arch.vision_config.emplace();
      doc.subdocument("model.vision_config").read(*arch.vision_config, errors, Strictness::kStrict);
    }
    InlineImageTokens tokens{&arch};
    doc.subdocument("model").read(tokens, errors, Strictness::kLenient);
    arch.source = doc.origin();
    arch.text_config.resolve();
    validate_model_arch(arch, doc, "model.text_config", "model.vision_config", errors);
    return;
  }
  std::string key, path;
  if (!m.config.empty()) {
    key = "model.config", path = m.config;
  } else if (!m.hf_dir.empty()) {
    key = "model.hf_dir", path = m.hf_dir;
  } else {
    errors.add(doc.location("model"), "model", "needs one of 'config', 'hf_dir' or an inline 'text_config'");
    return;
  }
  if (!file_exists(path)) {
    errors.add(doc.location(key), key, fmt::format("'{}' does not exist", path));
    return;
  }
  try {
    recipe.arch = load_model_arch(path);
  } catch (const Error& e) {
    errors.add(doc.location(key), key, fmt::format("invalid architecture in '{}':\n{}", path, e.what()));
    return;
  }
  // A fine-tune may change a few architecture keys of its base, e.g. a longer attention_chunk_size so
  // that the RoPE layers see a whole conversation; unknown keys are errors like everywhere else.
  if (doc.has("model.text_config_overrides")) {
    doc.subdocument("model.text_config_overrides").read(recipe.arch.text_config, errors, Strictness::kStrict);
    recipe.arch.text_config.resolve();
    validate_model_arch(recipe.arch, doc, "model.text_config_overrides", "", errors);
  }
}

void validate_recipe(const Recipe& r, const YamlDocument& doc, ConfigErrors& errors) {
  Checker c(doc, errors);
  c.require(!(!r.model.config.empty() && !r.model.hf_dir.empty()), "model.hf_dir",
            "give either model.config or model.hf_dir, not both (use model.init for weights with a config)");
  if (!r.model.hf_dir.empty() && !r.model.init.empty()) {
    c.require(false, "model.init", "model.hf_dir already provides the weights; remove model.init");
  }

  c.one_of(r.data.format, {"auto", "text", "jsonl", "chat", "parquet"}, "data.format");
  c.one_of(r.data.train_on, {"assistant", "all", "last_turn"}, "data.train_on");
  c.one_of(r.data.overlong, {"split", "truncate", "drop"}, "data.overlong");
  c.positive(static_cast<double>(r.data.text_doc_bytes), "data.text_doc_bytes");
  c.positive(static_cast<double>(r.data.seq_len), "data.seq_len");
  c.require(r.data.eval_fraction >= 0 && r.data.eval_fraction < 1, "data.eval_fraction",
            fmt::format("must be in [0, 1), got {}", r.data.eval_fraction));
  c.require(r.data.prefetch >= 1, "data.prefetch", fmt::format("must be >= 1, got {}", r.data.prefetch));
  const int64_t max_positions = r.arch.text_config.max_position_embeddings;
  c.require(r.data.seq_len <= max_positions, "data.seq_len",
            fmt::format("must be <= the model's max_position_embeddings={}, got {}", max_positions,
                        r.data.seq_len));

  const int64_t ep = r.parallel.expert_parallel;
  c.require(ep >= 1, "parallel.expert_parallel", fmt::format("must be >= 1, got {}", ep));
  const int64_t experts = r.arch.text_config.num_local_experts;
  if (ep >= 1 && experts > 0) {
    c.require(experts % ep == 0, "parallel.expert_parallel",
              fmt::format("must divide num_local_experts={}, got {}", experts, ep));
  }
  c.non_negative(r.parallel.capacity_factor, "parallel.capacity_factor");
  c.positive(r.parallel.bucket_mb, "parallel.bucket_mb");
  c.positive(r.parallel.timeout_s, "parallel.timeout_s");

  c.non_negative(static_cast<double>(r.lora.rank), "lora.rank");
  c.positive(r.lora.alpha, "lora.alpha");
  c.require(r.lora.dropout >= 0 && r.lora.dropout < 1, "lora.dropout",
            fmt::format("must be in [0, 1), got {}", r.lora.dropout));
  c.require(r.lora.rank == 0 || !r.lora.targets.empty(), "lora.targets", "must name at least one module");

  c.positive(r.optimizer.lr, "optimizer.lr");
  c.betas(r.optimizer.betas, "optimizer.betas", false);
  c.positive(r.optimizer.eps, "optimizer.eps");
  c.non_negative(r.optimizer.weight_decay, "optimizer.weight_decay");
  c.require(r.optimizer.layer_decay > 0 && r.optimizer.layer_decay <= 1, "optimizer.layer_decay",
            fmt::format("must be in (0, 1], got {}", r.optimizer.layer_decay));
  c.require(r.optimizer.zero >= 0 && r.optimizer.zero <= 2, "optimizer.zero",
            fmt::format("must be 0, 1 or 2, got {}", r.optimizer.zero));
  for (size_t i = 0; i < r.optimizer.param_groups.size(); ++i) {
    const ParamGroupRule& g = r.optimizer.param_groups[i];
    const std::string key = fmt::format("optimizer.param_groups[{}]", i);
    c.require(!g.match.empty(), key + ".match", "must be a non-empty glob over parameter names");
    if (g.lr) c.positive(*g.lr, key + ".lr");
    if (g.lr_scale) c.non_negative(*g.lr_scale, key + ".lr_scale");
    if (g.weight_decay) c.non_negative(*g.weight_decay, key + ".weight_decay");
    c.require(!(g.lr && g.lr_scale), key, "give lr or lr_scale, not both");
    c.betas(g.betas, key + ".betas", true);
  }

  c.non_negative(static_cast<double>(r.schedule.warmup_steps), "schedule.warmup_steps");
  c.require(r.schedule.min_lr_ratio >= 0 && r.schedule.min_lr_ratio <= 1, "schedule.min_lr_ratio",
            fmt::format("must be in [0, 1], got {}", r.schedule.min_lr_ratio));

  const TrainSection& t = r.train;
  c.positive(static_cast<double>(t.steps), "train.steps");
  c.positive(static_cast<double>(t.global_batch), "train.global_batch");
  c.positive(static_cast<double>(t.micro_batch), "train.micro_batch");
  if (t.global_batch > 0 && t.micro_batch > 0) {
    c.require(
        t.global_batch % t.micro_batch == 0, "train.global_batch",
        fmt::format("must be a multiple of train.micro_batch={}, got {}", t.micro_batch, t.global_batch));
  }
  c.non_negative(t.grad_clip, "train.grad_clip");
  c.non_negative(static_cast<double>(t.eval_every), "train.eval_every");
  c.non_negative(static_cast<double>(t.eval_batches), "train.eval_batches");
  c.require(t.stop_at_step >= 0 && (t.steps <= 0 || t.stop_at_step <= t.steps), "train.stop_at_step",
            fmt::format("must be in [0, train.steps={}], got {}", t.steps, t.stop_at_step));
  c.non_negative(t.aux_loss_coef, "train.aux_loss_coef");
  c.non_negative(t.z_loss_coef, "train.z_loss_coef");
  c.non_negative(t.loss_chunk_tokens, "train.loss_chunk_tokens");

  c.non_negative(static_cast<double>(r.checkpoint.every), "checkpoint.every");
  c.require(r.checkpoint.keep_last >= 1, "checkpoint.keep_last",
            fmt::format("must be >= 1, got {}", r.checkpoint.keep_last));
  c.require(!r.checkpoint.resume.empty(), "checkpoint.resume", "expected auto, none or a checkpoint path");
  c.one_of(r.checkpoint.resume_mode, {"strict", "weights_only"}, "checkpoint.resume_mode");

  c.positive(static_cast<double>(r.logging.every), "logging.every");
  c.non_negative(r.logging.peak_tflops, "logging.peak_tflops");
  c.non_negative(r.logging.profile_step, "logging.profile_step");
}

// Recipe plus the inline architecture, for printing a self-contained resolved config.
struct ResolvedRecipe {
  Recipe* recipe;
  template <class V>
  void visit(V& v) {
    struct ModelWithArch {
      Recipe* r;
      void visit(V& inner) {
        r->model.visit(inner);
        inner.section("text_config", r->arch.text_config);
        if (r->arch.vision_config) {
          inner.section("vision_config", *r->arch.vision_config);
          InlineImageTokens{&r->arch}.visit(inner);
        }
      }
    } model{recipe};
    v.section("model", model);
    v.section("tokenizer", recipe->tokenizer);
    v.section("data", recipe->data);
    v.section("parallel", recipe->parallel);
    v.section("lora", recipe->lora);
    v.section("optimizer", recipe->optimizer);
    v.section("schedule", recipe->schedule);
    v.section("train", recipe->train);
    v.section("checkpoint", recipe->checkpoint);
    v.section("logging", recipe->logging);
  }
};

}  // namespace

namespace {

Recipe read_recipe(YamlDocument doc, const std::string& origin, const std::vector<std::string>& overrides) {
  for (const auto& assignment : overrides) doc.apply_override(assignment);
  Recipe recipe;
  recipe.source = origin;
  ConfigErrors errors;
  doc.read(recipe, errors, Strictness::kStrict);
  resolve_arch(recipe, doc, errors);
  validate_recipe(recipe, doc, errors);
  errors.throw_if_any();
  return recipe;
}

}  // namespace

Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides) {
  return read_recipe(YamlDocument::load_file(path), path, overrides);
}

Recipe parse_recipe(const std::string& yaml, const std::string& origin,
                    const std::vector<std::string>& overrides) {
  return read_recipe(YamlDocument::parse(yaml, origin), origin, overrides);
}

std::string recipe_to_yaml(const Recipe& recipe) {
  Recipe copy = recipe;
  ResolvedRecipe resolved{&copy};
  return to_yaml(resolved);
}

}  // namespace l4::config
