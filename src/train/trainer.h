// The training loop behind `llama4 train`: gradient accumulation over micro-batches, token-weighted loss
// over the global batch, gradient sync and clipping, AdamW with per-layer learning rates, evaluation,
// metrics, and sharded checkpoints with exact resume (also onto another world size).
#pragma once

#include <ATen/core/Tensor.h>

#include "config/recipe.h"

namespace l4::parallel {
class ProcessGrid;
}

namespace l4::train {

struct TrainerOptions {
  bool print_param_groups = false;  // print every parameter's group, lr and weight decay, then exit
  bool eval_only = false;           // restore per checkpoint.resume, evaluate the eval split, print, exit
};

// Collective over the MPI world (a single process needs no launcher). Returns the exit code: 0 when the
// run finished or was preempted (checkpoint written), 1 when it stopped on a non-finite loss.
int run_training(const config::Recipe& recipe, const TrainerOptions& options = {});

// The same on a given process grid and device (run_training makes them from the launch: MPI host channel,
// NCCL device channel on GPUs).
int run_training(const config::Recipe& recipe, const parallel::ProcessGrid& grid, const at::Device& device,
                 const TrainerOptions& options = {});

}  // namespace l4::train
