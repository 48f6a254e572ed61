// Memory and compute plan of a training layout, from shapes alone (nothing is allocated): what one rank
// holds for weights, gradients, optimizer state, activations and communication buffers, the FLOPs of a
// step and the share of all-to-all traffic. `llama4 plan` prints it before anyone books a cluster.
//
// The figures follow how this code base allocates, not a textbook model: parameters in their storage
// dtype (LoRA's frozen base in lora.base_dtype), AdamW state in the parameter dtype, every gradient bucket
// flattened at once by GradSync, the tensors autograd keeps for each module's backward, the full
// [tokens, vocab] float32 log-softmax of the loss, and the weight copies made when a weight's dtype differs
// from the compute dtype. Features the trainer does not have yet (recomputation, ZeRO, chunked
// cross-entropy, fp32 master weights) are inputs here, so a layout can be planned for them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/model_arch.h"
#include "config/recipe.h"

namespace l4::train {

// Everything the plan depends on, in one place. plan_inputs_from_recipe fills what a recipe says; the
// rest keeps the trainer's current behaviour unless set (the CLI has flags for them).
struct PlanInputs {
  config::ModelArch arch;
  std::string source;  // recipe file, for messages
  int64_t world = 1;
  int64_t expert_parallel = 1;
  int64_t seq_len = 512;
  int64_t micro_batch = 4;
  int64_t global_batch = 8;
  bool packed_documents = true;         // rows hold several documents (data.pack)
  std::string device = "cpu";           // cpu | cuda
  std::string model_dtype = "float32";  // parameter storage: float32 | bfloat16
  std::string precision = "fp32";       // fp32 | bf16 (autocast)
  int64_t lora_rank = 0;                // 0: full fine-tuning
  std::vector<std::string> lora_targets;
  double lora_dropout = 0.0;
  std::string lora_base_dtype = "float32";
  bool freeze_vision = false;
  double bucket_mb = 25.0;
  double capacity_factor = 0.0;  // > 0: expert rows per rank capped at factor x balanced share
  std::string activation_checkpointing = "none";  // train.activation_checkpointing: none | moe | full
  int64_t zero = 0;  // optimizer.zero 0 | 1 | 2: shards of replicated AdamW state (and grads)
  bool chunked_cross_entropy = false;  // train.loss_chunk_tokens > 0: no [tokens, vocab] float32 logits
  int64_t cross_entropy_chunk = 1024;  // tokens per loss chunk when chunked
  bool fp32_master_weights = false;    // fp32 master copy and AdamW state for 16-bit params
  int64_t buckets_in_flight = 0;       // gradient buckets flattened at once; 0: all of them (GradSync today)
  double gpu_memory_gb = 80.0;         // the verdict's budget per rank (GiB)
};

// Reads the recipe's layout; `world` is the number of ranks. Throws l4::Error for a world size the layout
// cannot use (expert_parallel must divide it; global_batch must be a multiple of micro_batch x world).
PlanInputs plan_inputs_from_recipe(const config::Recipe& recipe, int64_t world);

// Checks value ranges and cross-field constraints (l4::Error naming the input).
void validate_plan_inputs(const PlanInputs& inputs);

// One rank's parameter tensors as the trainer builds them (LoRA injected, experts sharded).
struct PlanTensor {
  std::string name;   // HF-style name ("model.layers.3.feed_forward.experts.gate_up_proj")
  int64_t numel = 0;  // elements on this rank
  int dtype_bytes = 4;
  bool trainable = false;
  bool expert = false;  // sharded over the expert-parallel group
  bool matmul = false;  // a matmul weight (cast to the compute dtype when its dtype differs)
};
std::vector<PlanTensor> plan_tensors(const PlanInputs& inputs);

struct MemoryPlan {
  PlanInputs inputs;
  int64_t local_experts = 0;
  int64_t accumulation = 1;  // micro-batches per step on each rank
  int64_t tokens_per_micro_batch = 0;
  // Parameter counts on this rank.
  int64_t params = 0;
  int64_t trainable_params = 0;
  // Bytes per rank.
  int64_t weights = 0;             // every parameter in its storage dtype
  int64_t weights_replicated = 0;  // of which replicated over the world
  int64_t weights_experts = 0;     // of which this rank's expert shard
  int64_t gradients = 0;           // trainable parameters' gradients (ZeRO-2: replicated ones sharded)
  int64_t optimizer = 0;           // AdamW exp_avg + exp_avg_sq (+ fp32 master), ZeRO-sharded
  int64_t activations = 0;         // saved for backward at the selected recomputation, one micro-batch
  int64_t activations_none = 0;    // ... without recomputation
  int64_t activations_moe = 0;     // ... recomputing the routed experts
  int64_t activations_full = 0;    // ... recomputing every decoder layer
  int64_t weight_copies = 0;       // compute-dtype copies of weights kept for backward (autocast, bf16 base)
  int64_t loss = 0;                // logits, log-softmax and their gradients at the loss
  int64_t backward_workspace = 0;  // gradients of one layer's activations in flight
  int64_t grad_buckets = 0;        // flattened gradient buckets during the all-reduce
  int64_t all_to_all = 0;          // one MoE layer's exchange buffers (send + receive, both directions)
  int64_t allocator_slack = 0;     // host heap kept beyond the live peak (CPU runs)
  int64_t runtime = 0;             // process / CUDA context, communicator and allocator slack
  int64_t total = 0;               // peak per rank
  int64_t host_load = 0;           // host RAM while loading weights (on GPU ranks: one tensor at a time)
  // Compute and communication per optimizer step.
  double flops_per_step = 0;    // model FLOPs, all ranks (6 x active matmul params + attention)
  double flops_per_rank = 0;    // hardware FLOPs of one rank, recomputation included
  double all_to_all_bytes = 0;  // sent by one rank per step over the expert exchange
  double grad_sync_bytes = 0;   // sent by one rank per step by the gradient all-reduce (ring)
  double all_to_all_share = 0;  // all_to_all / (all_to_all + grad_sync)
  bool fits = false;            // total <= gpu_memory_gb
};

// Throws l4::Error (naming the input) for a layout that cannot run.
MemoryPlan plan_memory(const PlanInputs& inputs);

// The human-readable table and the JSON object `llama4 plan` prints.
std::string format_plan(const MemoryPlan& plan);
std::string plan_to_json(const MemoryPlan& plan);

}  // namespace l4::train
