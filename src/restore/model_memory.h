// Refuses to build a model whose weights cannot fit this machine's memory (generate, forward, export,
// eval through a restore): the parameter bytes from the architecture's shapes against what the host
// offers (core/memory_budget.h), before anything is allocated, naming the config keys that drive the size.
#pragma once

#include <cstdint>
#include <string>

#include "config/model_arch.h"
#include "core/memory_budget.h"

namespace l4::restore {

// Bytes of the model's parameters stored `dtype_bytes` wide (the vision tower only when `vision`).
int64_t model_weight_bytes(const config::ModelArch& arch, bool vision, int dtype_bytes);

// l4::Error naming `config_source` (a config.json or recipe), its size keys and the bytes needed vs
// available when the weights exceed `available`; nothing when L4_SKIP_MEMORY_CHECK is set or the
// figure is unknown. `override_hint` says how to start anyway.
void check_model_memory(const config::ModelArch& arch, bool vision, int dtype_bytes,
                        const std::string& config_source, const AvailableMemory& available,
                        const std::string& override_hint);

}  // namespace l4::restore
