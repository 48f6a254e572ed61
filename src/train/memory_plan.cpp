#include "train/memory_plan.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "lora/lora_modules.h"
#include "model/param_count.h"
#include "train/flops.h"

namespace l4::train {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

int dtype_bytes(const std::string& dtype, const std::string& key) {
  if (dtype == "float32") return 4;
  if (dtype == "bfloat16") return 2;
  L4_FAIL("{}: expected float32 or bfloat16, got '{}'", key, dtype);
}

// Process footprint besides tensors: LibTorch, MPI and the loader on the host (measured RSS of a run with
// a tiny model), or the CUDA context, NCCL's buffers and the caching allocator's slack on a GPU.
constexpr double kHostRuntimeBytes = 0.2 * kGiB;
// Peak RSS over the live peak of a CPU step, as a share of what the step allocates and frees (activations,
// casts, loss): 0.15-0.33 in nine measured runs (scripts/bench/plan_vs_rss.py). With eager unmapping
// instead of the heap, a LoRA run peaked at 3.13 GiB against a live figure of 3.24 and 4.06 RSS.
constexpr double kHostHeapSlack = 0.25;
constexpr double kCudaRuntimeBytes = 2.0 * kGiB;

}  // namespace

PlanInputs plan_inputs_from_recipe(const config::Recipe& recipe, int64_t world) {
  PlanInputs in;
  in.arch = recipe.arch;
  in.source = recipe.source;
  in.world = world;
  in.expert_parallel = recipe.parallel.expert_parallel;
  in.seq_len = recipe.data.seq_len;
  in.packed_documents = recipe.data.pack;
  in.micro_batch = recipe.train.micro_batch;
  in.global_batch = recipe.train.global_batch;
  in.device = config::name_of(recipe.train.device);
  in.model_dtype = config::name_of(recipe.model.dtype);
  in.precision = config::name_of(recipe.train.precision);
  in.lora_rank = recipe.lora.rank;
  in.lora_targets = recipe.lora.targets;
  in.lora_dropout = recipe.lora.dropout;
  in.lora_base_dtype = config::name_of(recipe.lora.base_dtype);
  in.freeze_vision = recipe.model.freeze_vision;
  in.bucket_mb = recipe.parallel.bucket_mb;
  in.capacity_factor = recipe.parallel.capacity_factor;
  in.chunked_cross_entropy = recipe.train.loss_chunk_tokens > 0;
  // 16-bit trainable parameters get an fp32 master and fp32 AdamW state (train/optimizer_setup.h); only
  // tensors stored in 16 bits are charged for it.
  in.fp32_master_weights = recipe.model.dtype != config::DType::kFloat32;
  if (in.chunked_cross_entropy) in.cross_entropy_chunk = recipe.train.loss_chunk_tokens;
  in.activation_checkpointing = config::name_of(recipe.train.activation_checkpointing);
  in.zero = recipe.optimizer.zero;
  return in;
}

void validate_plan_inputs(const PlanInputs& in) {
  const config::TextConfig& t = in.arch.text_config;
  const std::string where = in.source.empty() ? "plan" : in.source;
  L4_CHECK(in.world >= 1, "{}: --world must be at least 1, got {}", where, in.world);
  L4_CHECK(in.expert_parallel >= 1 && in.world % in.expert_parallel == 0,
           "{}: parallel.expert_parallel={} must divide the world size {} (--world)", where,
           in.expert_parallel, in.world);
  L4_CHECK(t.num_local_experts % in.expert_parallel == 0,
           "{}: parallel.expert_parallel={} must divide num_local_experts={}", where, in.expert_parallel,
           t.num_local_experts);
  L4_CHECK(in.seq_len >= 1 && in.micro_batch >= 1, "{}: data.seq_len and train.micro_batch must be positive",
           where);
  L4_CHECK(in.global_batch % (in.micro_batch * in.world) == 0,
           "{}: train.global_batch={} must be a multiple of train.micro_batch={} x {} ranks (--world)", where,
           in.global_batch, in.micro_batch, in.world);
  L4_CHECK(in.device == "cpu" || in.device == "cuda", "{}: train.device must be cpu or cuda, got '{}'", where,
           in.device);
  L4_CHECK(in.precision == "fp32" || in.precision == "bf16",
           "{}: train.precision must be fp32 or bf16, got '{}'", where, in.precision);
  dtype_bytes(in.model_dtype, where + ": model.dtype");
  dtype_bytes(in.lora_base_dtype, where + ": lora.base_dtype");
  L4_CHECK(in.activation_checkpointing == "none" || in.activation_checkpointing == "moe" ||
               in.activation_checkpointing == "full",
           "{}: activation checkpointing must be none, moe or full, got '{}'", where,
           in.activation_checkpointing);
  L4_CHECK(in.zero >= 0 && in.zero <= 2, "{}: ZeRO stage must be 0, 1 or 2, got {}", where, in.zero);
  L4_CHECK(in.cross_entropy_chunk >= 1, "{}: the cross-entropy chunk must be positive", where);
  L4_CHECK(in.buckets_in_flight >= 0, "{}: buckets in flight must be >= 0 (0: all)", where);
  L4_CHECK(in.gpu_memory_gb > 0, "{}: --gpu-memory-gb must be positive, got {}", where, in.gpu_memory_gb);
  L4_CHECK(in.lora_rank >= 0, "{}: lora.rank must be >= 0, got {}", where, in.lora_rank);
}

std::vector<PlanTensor> plan_tensors(const PlanInputs& in) {
  config::TextConfig t = in.arch.text_config;
  t.resolve();
  const int64_t d = t.hidden_size, hd = t.resolved_head_dim(), f = t.intermediate_size;
  const int64_t local = t.num_local_experts / in.expert_parallel;
  const int md = dtype_bytes(in.model_dtype, "model.dtype");
  const int bd = dtype_bytes(in.lora_base_dtype, "lora.base_dtype");
  constexpr int kLoraBytes = 4;  // LoRA tensors are fp32 whatever the model dtype (lora/lora_modules.h)
  const bool lora = in.lora_rank > 0;
  const int64_t r = in.lora_rank;
  std::map<std::string, bool> target_used;
  for (const auto& target : in.lora_targets) target_used[target] = false;
  auto selected = [&](const std::string& name, bool expert) {
    bool any = false;
    for (const auto& target : in.lora_targets) {
      if (lora::target_matches(target, name, expert)) target_used[target] = any = true;
    }
    return lora && any;
  };

  std::vector<PlanTensor> out;
  auto add = [&](const std::string& name, int64_t numel, int bytes, bool trainable, bool expert,
                 bool matmul) {
    out.push_back({name, numel, bytes, trainable, expert, matmul});
  };
  // A Linear [out, in]; under LoRA a targeted one keeps its base (frozen, lora.base_dtype) and gains A, B.
  auto linear = [&](const std::string& name, int64_t out_features, int64_t in_features) {
    if (selected(name, false)) {
      add(name + ".weight", out_features * in_features, bd, false, false, true);
      add(name + ".lora_A.weight", r * in_features, kLoraBytes, true, false, true);
      add(name + ".lora_B.weight", out_features * r, kLoraBytes, true, false, true);
    } else {
      add(name + ".weight", out_features * in_features, md, !lora, false, true);
    }
  };
  auto mlp = [&](const std::string& prefix, int64_t hidden) {
    linear(prefix + ".gate_proj", hidden, d);
    linear(prefix + ".up_proj", hidden, d);
    linear(prefix + ".down_proj", d, hidden);
  };

  add("model.embed_tokens.weight", t.vocab_size * d, md, !lora, false, false);
  for (int64_t i = 0; i < t.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i);
    linear(p + ".self_attn.q_proj", t.num_attention_heads * hd, d);
    linear(p + ".self_attn.k_proj", t.num_key_value_heads * hd, d);
    linear(p + ".self_attn.v_proj", t.num_key_value_heads * hd, d);
    linear(p + ".self_attn.o_proj", d, t.num_attention_heads * hd);
    if (t.is_moe_layer(i)) {
      const std::string experts = p + ".feed_forward.experts";
      const bool gate_up = selected(experts + ".gate_up_proj", true);
      const bool down = selected(experts + ".down_proj", true);
      const bool wrapped = gate_up || down;  // both base tensors then move to lora.base_dtype
      add(experts + ".gate_up_proj", local * d * 2 * f, wrapped ? bd : md, !lora, true, true);
      add(experts + ".down_proj", local * f * d, wrapped ? bd : md, !lora, true, true);
      if (gate_up) {
        add(experts + ".lora.gate_up_proj_A", local * r * 2 * f, kLoraBytes, true, true, true);
        add(experts + ".lora.gate_up_proj_B", local * d * r, kLoraBytes, true, true, true);
      }
      if (down) {
        add(experts + ".lora.down_proj_A", local * r * d, kLoraBytes, true, true, true);
        add(experts + ".lora.down_proj_B", local * f * r, kLoraBytes, true, true, true);
      }
      add(p + ".feed_forward.router.weight", t.num_local_experts * d, md, !lora, false, true);
      mlp(p + ".feed_forward.shared_expert", f);
    } else {
      mlp(p + ".feed_forward", t.intermediate_size_mlp);
    }
    add(p + ".input_layernorm.weight", d, md, !lora, false, false);
    add(p + ".post_attention_layernorm.weight", d, md, !lora, false, false);
  }
  add("model.norm.weight", d, md, !lora, false, false);
  add("lm_head.weight", t.vocab_size * d, md, !lora, false, true);
  if (in.arch.vision_config) {
    // The projector always trains; the tower unless model.freeze_vision.
    const int64_t vision = model::count_params(in.arch).vision_params;
    const int64_t projector = in.arch.vision_config->vision_output_dim * d;
    add("vision_model", vision - projector, md, !in.freeze_vision, false, true);
    add("multi_modal_projector.linear_1.weight", projector, md, true, false, true);
  }
  std::vector<std::string> unused;
  for (const auto& [target, used] : target_used) {
    if (!used) unused.push_back(target);
  }
  L4_CHECK(!lora || unused.empty(), "{}: lora.targets: '{}' select(s) no layer of this architecture",
           in.source.empty() ? "plan" : in.source, fmt::join(unused, "', '"));
  return out;
}

namespace {

// Bytes autograd keeps per token, module by module, as this code base's forward runs (model/, lora/).
// `r`: residual-stream bytes (the model dtype: the embedding's output); `c`: matmul-output bytes (2 under
// bf16 autocast, else r). Under autocast every matmul casts its float32 input to a bf16 copy of its own.
class ActivationLedger {
 public:
  ActivationLedger(const PlanInputs& in, const std::vector<PlanTensor>& tensors)
      : in_(in), autocast_(in.precision == "bf16") {
    t_ = in.arch.text_config;
    t_.resolve();
    r_ = dtype_bytes(in.model_dtype, "model.dtype");
    c_ = autocast_ ? 2 : r_;
    for (const auto& tensor : tensors) by_name_[tensor.name] = &tensor;
  }

  // Saved bytes per token of decoder layer i (routed experts separately: they scale with top-k).
  struct Layer {
    double attention = 0;
    double ffn = 0;        // dense MLP, or the MoE's router and shared expert
    double routed = 0;     // the routed experts' internals (what `moe` recomputation drops)
    double moe_input = 0;  // rows the routed experts read (kept when they are recomputed)
  };

  Layer layer(int64_t i) const {
    const std::string p = "model.layers." + std::to_string(i);
    const double d = static_cast<double>(t_.hidden_size);
    const double q = static_cast<double>(t_.num_attention_heads * t_.resolved_head_dim());
    const double kv = static_cast<double>(t_.num_key_value_heads * t_.resolved_head_dim());
    Layer out;
    // Attention: RMSNorm, q/k/v inputs, QK-norm float32 copies, SDPA's q, k, v, output and log-sum-exp,
    // the output re-laid for o_proj and o_proj's input.
    out.attention = rms_norm(p + ".input_layernorm.weight", d);
    out.attention +=
        inputs({p + ".self_attn.q_proj", p + ".self_attn.k_proj", p + ".self_attn.v_proj"}, d, r_);
    const bool rope = t_.is_rope_layer(i);
    if (rope && t_.use_qk_norm) out.attention += 4.0 * (q + kv);
    out.attention += c_ * (q + 2 * kv) + c_ * q + 4.0 * t_.num_attention_heads;
    // Packed rows (several documents) attend by causal segments: SDPA keeps gathered copies of q, k, v in
    // place of the originals (counted above) and the outputs return by an index_select that keeps only its
    // index, so packing adds nothing per layer (no [T, T] mask).
    out.attention += inputs({p + ".self_attn.o_proj"}, q, c_);
    if (t_.is_moe_layer(i)) {
      const double f = static_cast<double>(t_.intermediate_size);
      const double k = rows_per_token();
      const std::string ff = p + ".feed_forward";
      out.ffn = rms_norm(p + ".post_attention_layernorm.weight", d);
      // The router, the shared expert's gate/up and (full fine-tuning) the gate multiply read the normed x.
      out.ffn +=
          inputs({ff + ".router", ff + ".shared_expert.gate_proj", ff + ".shared_expert.up_proj"}, d, r_,
                 /*extra_uncast_reader=*/trainable(ff + ".router.weight"));
      out.ffn += swiglu(ff + ".shared_expert", f);
      const bool lora_experts = by_name_.count(ff + ".experts.lora.gate_up_proj_A") ||
                                by_name_.count(ff + ".experts.lora.down_proj_A");
      const double x_cast = autocast_ && r_ == 4 ? 2 : r_;
      out.moe_input = k * r_ * d;
      if (!lora_experts) {
        // GroupedExpertMlp saves its rows (cast under autocast) and the gate/up pre-activations.
        out.routed = k * (x_cast * d + c_ * 2 * f);
      } else {
        // LoRA experts run per expert through autograd: x for B's gradient, the gate/up output, silu(gate),
        // the hidden rows for the down B (when targeted), and the rank-r products.
        const bool gu = by_name_.count(ff + ".experts.lora.gate_up_proj_A") > 0;
        const bool dn = by_name_.count(ff + ".experts.lora.down_proj_A") > 0;
        const double rank = static_cast<double>(in_.lora_rank);
        out.routed = k * ((gu ? x_cast * d + c_ * rank : 0) + c_ * 3 * f + (dn ? c_ * (f + rank) : 0));
      }
    } else {
      const double f = static_cast<double>(t_.intermediate_size_mlp);
      out.ffn = rms_norm(p + ".post_attention_layernorm.weight", d);
      out.ffn += inputs({p + ".feed_forward.gate_proj", p + ".feed_forward.up_proj"}, d, r_);
      out.ffn += swiglu(p + ".feed_forward", f);
    }
    return out;
  }

  // The final norm and lm_head's input.
  double head() const {
    return rms_norm("model.norm.weight", static_cast<double>(t_.hidden_size)) +
           inputs({"lm_head"}, static_cast<double>(t_.hidden_size), r_);
  }

  // Expert rows one token sends (top-k), capped by the capacity factor.
  double rows_per_token() const {
    const double k = static_cast<double>(t_.num_experts_per_tok);
    return in_.capacity_factor > 0 ? k * std::min(1.0, in_.capacity_factor) : k;
  }

  // Weight copies a forward keeps for backward: a weight whose dtype is not the matmul's compute dtype is
  // converted (LoRA's as_dtype to the input's dtype, then autocast's bf16 cast), and the copy is saved.
  // Returns {all layers, the largest single layer}.
  std::pair<double, double> weight_copies(const std::vector<PlanTensor>& tensors) const {
    std::map<std::string, double> per_layer;
    for (const auto& tensor : tensors) {
      // Text-model matmul weights; LoRA's own small tensors are not counted.
      if (!tensor.matmul || tensor.name.find(".lora") != std::string::npos) continue;
      if (tensor.name.rfind("model.", 0) != 0 && tensor.name != "lm_head.weight") continue;
      // The dtype of the input this weight meets: attention outputs and SwiGLU hidden rows are in c.
      const bool reads_c = tensor.name.find("o_proj") != std::string::npos ||
                           tensor.name.find("down_proj") != std::string::npos;
      const int x_bytes = reads_c ? c_ : r_;
      const bool wrapped = is_wrapped(tensor.name);
      bool copied;
      if (wrapped) {  // as_dtype(weight, x dtype), then autocast's cast when x is float32
        copied = tensor.dtype_bytes != x_bytes || (autocast_ && x_bytes != 2);
      } else {  // model-dtype weights meet inputs of their own dtype; only autocast casts them
        copied = autocast_ && tensor.dtype_bytes != 2;
      }
      if (!copied) continue;
      const double bytes = static_cast<double>(tensor.numel) * (autocast_ ? 2 : x_bytes);
      const size_t layer_end = tensor.name.find('.', std::string("model.layers.").size());
      const std::string key =
          tensor.name.rfind("model.layers.", 0) == 0 ? tensor.name.substr(0, layer_end) : "head";
      per_layer[key] += bytes;
    }
    double total = 0, largest = 0;
    for (const auto& [key, bytes] : per_layer) {
      total += bytes;
      largest = std::max(largest, bytes);
    }
    return {total, largest};
  }

  int compute_bytes() const { return c_; }
  int residual_bytes() const { return r_; }

 private:
  bool trainable(const std::string& name) const {
    auto it = by_name_.find(name);
    return it != by_name_.end() && it->second->trainable;
  }
  bool is_wrapped(const std::string& weight_name) const {
    // "x.weight" of a LoRA linear has "x.lora_A.weight"; an expert tensor has "...experts.lora.<t>_A".
    const std::string base =
        weight_name.size() > 7 && weight_name.compare(weight_name.size() - 7, 7, ".weight") == 0
            ? weight_name.substr(0, weight_name.size() - 7)
            : weight_name;
    if (by_name_.count(base + ".lora_A.weight")) return true;
    const size_t experts = weight_name.rfind(".experts.");
    if (experts == std::string::npos) return false;
    const std::string prefix = weight_name.substr(0, experts + 9);
    return by_name_.count(prefix + "lora.gate_up_proj_A") || by_name_.count(prefix + "lora.down_proj_A");
  }

  // RMSNorm keeps its float32 input (pow) and, when its weight trains, the normalised rows.
  double rms_norm(const std::string& weight, double width) const {
    return 4.0 * width + (trainable(weight) ? r_ * width : 0.0);
  }

  // What a group of linears reading the same input [width, x_bytes] keeps: trained weights need the input
  // (one shared tensor, or one bf16 cast each under autocast); LoRA linears need dropout(x) for A (a mask
  // and a tensor each when dropout > 0) and A's rank-r output for B; frozen, unwrapped ones keep nothing.
  double inputs(const std::vector<std::string>& linears, double width, int x_bytes,
                bool extra_uncast_reader = false) const {
    bool shared = extra_uncast_reader;
    double bytes = 0;
    const bool cast_each = autocast_ && x_bytes != 2;
    for (const auto& name : linears) {
      const std::string a = name + ".lora_A.weight";
      if (by_name_.count(a)) {
        const double rank = static_cast<double>(in_.lora_rank);
        bytes += (cast_each ? 2 : x_bytes) * rank;  // A's output, saved by B
        if (in_.lora_dropout > 0) {
          bytes += width + (cast_each ? 2 : x_bytes) * width;  // mask + the dropped copy
        } else if (cast_each) {
          bytes += 2 * width;
        } else {
          shared = true;
        }
      } else if (trainable(name + ".weight")) {
        if (cast_each) {
          bytes += 2 * width;
        } else {
          shared = true;
        }
      }
    }
    return bytes + (shared ? x_bytes * width : 0.0);
  }

  // SwiGLU after its input linears: silu keeps gate, the product keeps up and silu(gate) (gate and up are
  // kept whenever anything upstream trains), and down_proj's input is kept if down trains or has LoRA.
  double swiglu(const std::string& prefix, double width) const {
    return c_ * 3 * width + inputs({prefix + ".down_proj"}, width, c_);
  }

  const PlanInputs& in_;
  config::TextConfig t_;
  bool autocast_;
  int r_ = 4, c_ = 4;
  std::map<std::string, const PlanTensor*> by_name_;
};

double sum_bytes(const std::vector<PlanTensor>& tensors, bool trainable_only,
                 int kind /*0 all,1 repl,2 expert*/) {
  double total = 0;
  for (const auto& t : tensors) {
    if (trainable_only && !t.trainable) continue;
    if (kind == 1 && t.expert) continue;
    if (kind == 2 && !t.expert) continue;
    total += static_cast<double>(t.numel) * t.dtype_bytes;
  }
  return total;
}

}  // namespace

MemoryPlan plan_memory(const PlanInputs& in) {
  validate_plan_inputs(in);
  MemoryPlan plan;
  plan.inputs = in;
  config::TextConfig t = in.arch.text_config;
  t.resolve();
  plan.local_experts = t.num_local_experts / in.expert_parallel;
  plan.accumulation = in.global_batch / (in.micro_batch * in.world);
  const double n = static_cast<double>(in.micro_batch * in.seq_len);
  plan.tokens_per_micro_batch = in.micro_batch * in.seq_len;
  const std::vector<PlanTensor> tensors = plan_tensors(in);
  const double dp = static_cast<double>(in.world);  // data-parallel degree of the replicated parameters

  // Parameters, gradients, optimizer state.
  for (const auto& tensor : tensors) {
    plan.params += tensor.numel;
    if (tensor.trainable) plan.trainable_params += tensor.numel;
  }
  plan.weights = static_cast<int64_t>(sum_bytes(tensors, false, 0));
  plan.weights_replicated = static_cast<int64_t>(sum_bytes(tensors, false, 1));
  plan.weights_experts = static_cast<int64_t>(sum_bytes(tensors, false, 2));
  const double grads_replicated = sum_bytes(tensors, true, 1), grads_experts = sum_bytes(tensors, true, 2);
  const double bucket = in.bucket_mb * 1024 * 1024;
  // ZeRO-2 reduce-scatters bucket by bucket during backward (GradSync with overlap) and frees each full
  // gradient once its bucket is flattened: this rank's chunk plus about one bucket of full gradients.
  plan.gradients = static_cast<int64_t>(in.zero >= 2 ? grads_replicated / dp +
                                                           std::min(grads_replicated, bucket) + grads_experts
                                                     : grads_replicated + grads_experts);
  double optimizer = 0;
  for (const auto& tensor : tensors) {
    if (!tensor.trainable) continue;
    const bool master = in.fp32_master_weights && tensor.dtype_bytes != 4;
    double bytes = static_cast<double>(tensor.numel) * (master ? 2 * 4 + 4 : 2 * tensor.dtype_bytes);
    if (in.zero >= 1 && !tensor.expert) bytes /= dp;
    optimizer += bytes;
  }
  plan.optimizer = static_cast<int64_t>(optimizer);

  // Activations of one micro-batch.
  const ActivationLedger ledger(in, tensors);
  const int c = ledger.compute_bytes(), r = ledger.residual_bytes();
  const double d = static_cast<double>(t.hidden_size);
  double none = 0, moe = 0, largest_layer = 0, largest_routed = 0;
  for (int64_t i = 0; i < t.num_hidden_layers; ++i) {
    const auto layer = ledger.layer(i);
    const double all = layer.attention + layer.ffn + layer.routed;
    none += all;
    moe += all - layer.routed + layer.moe_input;
    largest_layer = std::max(largest_layer, all);
    largest_routed = std::max(largest_routed, layer.routed);
  }
  const double head = ledger.head();
  const double layers = static_cast<double>(t.num_hidden_layers);
  plan.activations_none = static_cast<int64_t>(n * (none + head));
  plan.activations_moe = static_cast<int64_t>(n * (moe + largest_routed + head));
  // Full recomputation keeps each layer's input and re-runs one layer at a time in backward.
  plan.activations_full = static_cast<int64_t>(n * (layers * r * d + largest_layer + head));
  const std::string& mode = in.activation_checkpointing;
  plan.activations = mode == "full"  ? plan.activations_full
                     : mode == "moe" ? plan.activations_moe
                                     : plan.activations_none;
  const auto [copies_all, copies_layer] = ledger.weight_copies(tensors);
  plan.weight_copies = static_cast<int64_t>(mode == "full" ? copies_layer : copies_all);

  // The loss: logits [N, V] in c, a float32 copy, the float32 log-softmax (saved), and in backward the
  // gradients of log-softmax and of the logits.
  const double vocab = static_cast<double>(t.vocab_size);
  const double loss_tokens = in.chunked_cross_entropy ? std::min<double>(n, in.cross_entropy_chunk) : n;
  const double forward_loss = c + (c != 4 ? 4 : 0) + 4;
  const double backward_loss = 4 + 4 + 4 + (c != 4 ? c : 0);
  plan.loss = static_cast<int64_t>(loss_tokens * vocab * std::max(forward_loss, backward_loss));

  // Backward of the largest layer: gradients of its widest intermediates and of the residual stream.
  const double k = ledger.rows_per_token();
  const double moe_work = k * (2.0 * t.intermediate_size + 2 * d) * c + t.intermediate_size * 3.0 * c;
  const double dense_work = 3.0 * t.intermediate_size_mlp * c;
  plan.backward_workspace = static_cast<int64_t>(n * (std::max(moe_work, dense_work) + 2 * 4 * d));

  // Gradient sync flattens every bucket before the first wait: a copy of all gradients (16-bit gradients go
  // through a float32 buffer on MPI; NCCL reduces bf16 natively). ZeRO-2 reduce-scatters the replicated
  // ones bucket by bucket; a sync that flattens at most `buckets_in_flight` buckets holds only those.
  double flats[2] = {0, 0};  // replicated, experts
  for (const auto& tensor : tensors) {
    if (!tensor.trainable) continue;
    double bytes = static_cast<double>(tensor.numel) * tensor.dtype_bytes;
    if (in.device == "cpu" && tensor.dtype_bytes == 2) bytes += static_cast<double>(tensor.numel) * 4;
    flats[tensor.expert ? 1 : 0] += bytes;
  }
  const double in_flight_bucket = in.device == "cpu" ? 3 * bucket : bucket;  // bf16 + its fp32 buffer
  double buckets = (in.zero >= 2 ? std::min(flats[0], 2 * in_flight_bucket) : flats[0]) + flats[1];
  if (in.buckets_in_flight > 0) buckets = std::min(buckets, in.buckets_in_flight * in_flight_bucket);
  plan.grad_buckets = static_cast<int64_t>(buckets);
  // One MoE layer's exchange: the sorted send rows and the received rows, in each direction.
  const bool exchanges = in.expert_parallel > 1 && !t.moe_layers.empty();
  plan.all_to_all = exchanges ? static_cast<int64_t>(4 * n * k * d * r) : 0;
  plan.runtime = static_cast<int64_t>(in.device == "cuda" ? kCudaRuntimeBytes : kHostRuntimeBytes);

  const double steady = static_cast<double>(plan.weights + plan.optimizer + plan.runtime);
  const double accumulated = plan.accumulation > 1 ? static_cast<double>(plan.gradients) : 0.0;
  const double transient =
      plan.activations + plan.weight_copies + std::max<double>(plan.loss, plan.backward_workspace);
  // On the host, glibc's heap keeps what the step freed (keep_large_allocations_in_heap: blocks under
  // 32 MiB come from the heap, which is trimmed only beyond 1 GiB), so peak RSS exceeds the live peak.
  if (in.device == "cpu") plan.allocator_slack = static_cast<int64_t>(kHostHeapSlack * transient);
  const double forward_backward = accumulated + transient + plan.allocator_slack + plan.all_to_all;
  const double sync = static_cast<double>(plan.gradients + plan.grad_buckets);
  plan.total = static_cast<int64_t>(steady + std::max(forward_backward, sync));
  // Parameters are allocated where they live and filled tensor by tensor from the safetensors shards
  // (model/weights.cpp): a CPU rank holds its model, a GPU rank only the tensor being copied (its rows of
  // an expert tensor), read in the model dtype at most.
  double largest = 0;
  for (const auto& tensor : tensors) largest = std::max(largest, static_cast<double>(tensor.numel) * tensor.dtype_bytes);
  plan.host_load = static_cast<int64_t>((in.device == "cuda" ? largest : sum_bytes(tensors, false, 0)) +
                                        kHostRuntimeBytes);
  plan.fits = static_cast<double>(plan.total) <= in.gpu_memory_gb * kGiB;

  // FLOPs: the MFU definition for the step (all ranks), and what one rank executes: forward, input
  // gradients, weight gradients of trained weights only, and the recomputed forward.
  const double tokens_per_step = static_cast<double>(in.global_batch * in.seq_len);
  plan.flops_per_step = training_flops_per_token(in.arch, in.seq_len) * tokens_per_step;
  const model::ParamSummary summary = model::count_params(in.arch);
  const double active = static_cast<double>(summary.active_params() - t.vocab_size * t.hidden_size);
  double routed_active = 0;
  for (const auto& layer : summary.layers) {
    if (layer.moe)
      routed_active += static_cast<double>(t.num_experts_per_tok) * 3.0 * d * t.intermediate_size;
  }
  const double attention_forward = (training_flops_per_token(in.arch, in.seq_len) - 6.0 * active) / 3.0;
  const double trained_share = in.lora_rank > 0 ? 0.0 : 1.0;
  double per_token = 2 * active + 2 * active + 2 * active * trained_share + 3 * attention_forward;
  if (mode == "full") per_token += 2 * active + attention_forward;
  if (mode == "moe") per_token += 2 * routed_active;
  plan.flops_per_rank = per_token * tokens_per_step / static_cast<double>(in.world);

  // Bytes one rank sends per step: 4 exchanges per MoE layer and micro-batch (6 when the experts are
  // recomputed), (ep-1)/ep of the rows leaving the rank; ring all-reduce 2(p-1)/p of each gradient.
  const double ep = static_cast<double>(in.expert_parallel);
  const double moe_layers = static_cast<double>(t.moe_layers.size());
  const double exchanges_per_layer = mode == "none" ? 4 : 6;
  plan.all_to_all_bytes =
      exchanges ? exchanges_per_layer * moe_layers * plan.accumulation * n * k * d * r * (ep - 1) / ep : 0.0;
  const double edp = dp / ep;
  const double widen = in.device == "cpu" ? 2.0 : 1.0;  // MPI reduces 16-bit gradients in float32
  auto ring = [](double bytes, double p) { return p > 1 ? 2 * (p - 1) / p * bytes : 0.0; };
  plan.grad_sync_bytes = ring(grads_replicated * (r == 2 ? widen : 1.0), dp) + ring(grads_experts, edp);
  const double comm = plan.all_to_all_bytes + plan.grad_sync_bytes;
  plan.all_to_all_share = comm > 0 ? plan.all_to_all_bytes / comm : 0.0;
  return plan;
}

namespace {

std::string gib(double bytes) {
  return fmt::format("{:.2f}", bytes / kGiB);
}

std::string flops(double value) {
  if (value >= 1e15) return fmt::format("{:.2f} PFLOP", value / 1e15);
  if (value >= 1e12) return fmt::format("{:.2f} TFLOP", value / 1e12);
  return fmt::format("{:.2f} GFLOP", value / 1e9);
}

}  // namespace

std::string format_plan(const MemoryPlan& p) {
  const PlanInputs& in = p.inputs;
  std::string s = fmt::format(
      "plan: {} on {} rank(s), device {}\n"
      "  layout: expert_parallel {} ({} of {} experts per rank), data-parallel {}, ZeRO {}\n"
      "  model {} | {} | precision {} | seq_len {} x micro_batch {} = {} tokens, {} micro-batch(es) per "
      "step\n"
      "  activation checkpointing {} | cross-entropy {} | optimizer state {}\n",
      in.source.empty() ? "(inputs)" : in.source, in.world, in.device, in.expert_parallel, p.local_experts,
      in.arch.text_config.num_local_experts, in.world, in.zero, in.model_dtype,
      in.lora_rank > 0 ? fmt::format("LoRA r{} base {}", in.lora_rank, in.lora_base_dtype)
                       : "full fine-tuning",
      in.precision, in.seq_len, in.micro_batch, p.tokens_per_micro_batch, p.accumulation,
      in.activation_checkpointing,
      in.chunked_cross_entropy ? fmt::format("chunked ({} tokens)", in.cross_entropy_chunk) : "unchunked",
      in.fp32_master_weights ? "fp32 with master weights" : "parameter dtype");
  s += fmt::format("  parameters on this rank: {:.3f}B ({:.3f}B trainable)\n\n", p.params / 1e9,
                   p.trainable_params / 1e9);
  s += "  per rank                      GiB\n";
  auto row = [&](const std::string& name, double bytes, const std::string& note = "") {
    s += fmt::format("  {:<26}{:>9}{}\n", name, gib(bytes), note.empty() ? "" : "   " + note);
  };
  row("weights", p.weights,
      fmt::format("replicated {}, experts {}", gib(p.weights_replicated), gib(p.weights_experts)));
  row("gradients", p.gradients);
  row("optimizer state", p.optimizer);
  row("activations", p.activations,
      fmt::format("none {} | moe {} | full {}", gib(p.activations_none), gib(p.activations_moe),
                  gib(p.activations_full)));
  row("weight copies (casts)", p.weight_copies);
  row("loss (logits)", p.loss);
  row("backward workspace", p.backward_workspace);
  row("gradient buckets", p.grad_buckets);
  row("all-to-all buffers", p.all_to_all);
  if (in.device == "cpu") row("allocator slack", p.allocator_slack, "host heap kept between steps");
  row("runtime", p.runtime, in.device == "cuda" ? "CUDA context, NCCL, allocator" : "process (host RSS)");
  row("peak total", p.total);
  s += fmt::format("\n  host RAM while loading: {} GiB per rank\n", gib(p.host_load));
  s += fmt::format("  FLOPs per step: {} (model, all ranks); {} executed per rank\n", flops(p.flops_per_step),
                   flops(p.flops_per_rank));
  s += fmt::format(
      "  sent per rank and step: all-to-all {} GiB, gradient all-reduce {} GiB (all-to-all share {:.0f}%)\n",
      gib(p.all_to_all_bytes), gib(p.grad_sync_bytes), 100.0 * p.all_to_all_share);
  s += fmt::format("\nverdict: {} {:.0f} GiB per rank (peak {} GiB, {:.0f}%)\n",
                   p.fits ? "fits" : "does NOT fit", in.gpu_memory_gb, gib(p.total),
                   100.0 * p.total / (in.gpu_memory_gb * kGiB));
  return s;
}

std::string plan_to_json(const MemoryPlan& p) {
  const PlanInputs& in = p.inputs;
  nlohmann::json inputs = {{"config", in.source},
                           {"world", in.world},
                           {"expert_parallel", in.expert_parallel},
                           {"local_experts", p.local_experts},
                           {"seq_len", in.seq_len},
                           {"micro_batch", in.micro_batch},
                           {"global_batch", in.global_batch},
                           {"accumulation", p.accumulation},
                           {"device", in.device},
                           {"model_dtype", in.model_dtype},
                           {"precision", in.precision},
                           {"lora_rank", in.lora_rank},
                           {"lora_base_dtype", in.lora_base_dtype},
                           {"activation_checkpointing", in.activation_checkpointing},
                           {"zero", in.zero},
                           {"chunked_cross_entropy", in.chunked_cross_entropy},
                           {"fp32_master_weights", in.fp32_master_weights},
                           {"buckets_in_flight", in.buckets_in_flight},
                           {"packed_documents", in.packed_documents},
                           {"gpu_memory_gb", in.gpu_memory_gb}};
  nlohmann::json bytes = {{"weights", p.weights},
                          {"weights_replicated", p.weights_replicated},
                          {"weights_experts", p.weights_experts},
                          {"gradients", p.gradients},
                          {"optimizer", p.optimizer},
                          {"activations", p.activations},
                          {"activations_none", p.activations_none},
                          {"activations_moe", p.activations_moe},
                          {"activations_full", p.activations_full},
                          {"weight_copies", p.weight_copies},
                          {"loss", p.loss},
                          {"backward_workspace", p.backward_workspace},
                          {"grad_buckets", p.grad_buckets},
                          {"all_to_all", p.all_to_all},
                          {"allocator_slack", p.allocator_slack},
                          {"runtime", p.runtime},
                          {"total", p.total},
                          {"host_load", p.host_load}};
  nlohmann::json out = {{"inputs", inputs},
                        {"params", p.params},
                        {"trainable_params", p.trainable_params},
                        {"per_rank_bytes", bytes},
                        {"flops_per_step", p.flops_per_step},
                        {"flops_per_rank", p.flops_per_rank},
                        {"all_to_all_bytes_per_rank", p.all_to_all_bytes},
                        {"grad_sync_bytes_per_rank", p.grad_sync_bytes},
                        {"all_to_all_share", p.all_to_all_share},
                        {"fits", p.fits}};
  return out.dump(2);
}

}  // namespace l4::train
