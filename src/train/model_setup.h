// Builds the model a recipe trains on this rank: architecture, initial weights (seeded init, or the HF
// weights of model.init / model.hf_dir), which parameters train, and how each one's gradient is
// synchronised (replicated over the world, or an expert shard over its expert-data-parallel group).
#pragma once

#include <string>
#include <vector>

#include "config/recipe.h"
#include "data/sharded_loader.h"
#include "model/expert_parallel.h"
#include "model/llama4_model.h"
#include "model/llama4_multimodal.h"
#include "parallel/grad_sync.h"
#include "parallel/process_grid.h"
#include "train/optimizer_setup.h"

namespace l4::train {

struct ModelSetup {
  model::Llama4ForCausalLM model{nullptr};
  // Architectures with a vision_config: the same text model wrapped with the vision tower and projector.
  model::Llama4ForConditionalGeneration multimodal{nullptr};
  std::vector<NamedParam> trainable;        // in named_parameters() order
  std::vector<parallel::SyncParam> sync;    // the same parameters with their gradient kind
  // Rows [expert_begin, expert_begin + local_experts) of every expert tensor live on this rank.
  int64_t expert_begin = 0;
  int64_t local_experts = 0;
  // Exchanges the MoE rows over the expert-parallel group (ep > 1 or a capacity factor); null otherwise.
  // Its stats() give the capacity drop rate.
  std::shared_ptr<model::ExpertParallelRunner> expert_runner;
  // Whether `name` is an expert tensor (dim 0 indexes experts, sharded under expert parallelism).
  static bool is_expert_param(const std::string& name);
  // Logits [B, T, V] for a loader batch: early fusion of its pixel_tiles when the model has a vision
  // tower; an l4::Error for image tiles without one.
  at::Tensor forward(const data::Batch& batch);
};

ModelSetup build_model(const config::Recipe& recipe, const parallel::ProcessGrid& grid);

}  // namespace l4::train
