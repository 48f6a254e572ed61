// Refuses, before the model is built, a run whose memory estimate clearly exceeds what this machine
// offers: the `llama4 plan` figures of the recipe's layout (plus the batches the loader keeps ready) for
// every rank started on this machine, against MemAvailable and the cgroup limit (core/memory_budget.h).
// Only the host is checked: on CUDA runs the model is built and loaded on the host first (plan.host_load);
// the device's own memory is left to the `llama4 plan` verdict.
#pragma once

#include <cstdint>
#include <string>

#include "config/recipe.h"
#include "core/memory_budget.h"
#include "train/memory_plan.h"

namespace l4::train {

// Host bytes of the batches data.prefetch keeps ready on one rank (int64 ids, labels, positions, documents
// and tasks per token).
int64_t prefetch_bytes(const config::Recipe& recipe, int64_t world);

// Host bytes one rank needs: the plan's peak on CPU runs (the host load on CUDA runs), or only the weights
// when evaluating, plus the prefetched batches.
int64_t host_bytes_needed(const MemoryPlan& plan, const config::Recipe& recipe, bool eval_only);

// The keys that drive the size, largest share first, each with its bytes.
std::string memory_drivers(const MemoryPlan& plan, const config::Recipe& recipe, bool eval_only);

// l4::Error (naming the keys and the bytes needed vs available) when `ranks_here` ranks of this layout
// need more than `available`; nothing when train.skip_memory_check or L4_SKIP_MEMORY_CHECK is set, or when
// the layout cannot be planned (the trainer reports that itself).
void check_training_memory(const config::Recipe& recipe, int64_t world, int64_t ranks_here, bool eval_only,
                           const AvailableMemory& available);

}  // namespace l4::train
